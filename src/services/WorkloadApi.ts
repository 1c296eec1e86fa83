/**
 * The SPIFFE Workload API of one volume: a unix socket in the volume's data directory on which the
 * workload fetches its X.509-SVID and bundle, and is pushed every renewal and CA change.
 *
 * Owns: the contract between the volume manager (which knows each volume's SVID and when it changes)
 * and the server (which speaks gRPC). Isolation is structural: `serve` is handed one volume's SVID
 * stream and nothing else, so a server can never reach another volume's state.
 * Does not own: when a volume is served (the volume manager), the wire protocol (csi/WorkloadApiServer.ts).
 *
 * Implementations: `csi/WorkloadApiServer.ts` (grpc-js on the socket) and
 * `layers/WorkloadApi.ts` (`layerNone`, `layerMemory`).
 */
import { Context, Schema } from "effect"
import type { Effect, Redacted, Scope, Stream } from "effect"

/** One volume's identity in the form the Workload API carries it. */
export interface VolumeSvid {
  /** `spiffe://<trust domain>/ns/<ns>/sa/<sa>` */
  readonly spiffeId: string
  /** The trust domain's SPIFFE ID (`spiffe://<trust domain>`), the key of bundle maps. */
  readonly trustDomainId: string
  /** The certificate chain, concatenated DER, leaf first. */
  readonly chainDer: Uint8Array
  /** The private key, unencrypted DER PKCS#8. */
  readonly keyDer: Redacted.Redacted<Uint8Array>
  /** The CA certificates of the trust domain (`--source-ca-bundle`), concatenated DER; empty without one. */
  readonly bundleDer: Uint8Array
}

export const WorkloadApiErrorReason = Schema.Literals(["SocketPath", "Bind"])

/** The socket could not be created. */
export class WorkloadApiError extends Schema.TaggedError<WorkloadApiError>()("WorkloadApiError", {
  reason: WorkloadApiErrorReason,
  volumeId: Schema.String,
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `Workload API socket of volume ${this.volumeId}: ${this.reason}: ${this.detail}`
  }
}

export interface WorkloadEndpoint {
  readonly volumeId: string
  /** Absolute path of the socket, inside the volume's data directory. */
  readonly socketPath: string
  /** Group that may connect (the volume's fs-group); undefined leaves the socket to root. */
  readonly gid: number | undefined
}

export interface WorkloadApiShape {
  /**
   * Listens on `endpoint.socketPath` (a stale socket there is replaced) until the scope closes,
   * then stops every call and removes the socket. `svid` is this volume's identity: each run of it
   * yields the current SVID first (at once when there is one) and then every change, each one the
   * full state.
   */
  readonly serve: (endpoint: WorkloadEndpoint, svid: Stream.Stream<VolumeSvid>) => Effect.Effect<void, WorkloadApiError, Scope.Scope>
}

export class WorkloadApi extends Context.Service<WorkloadApi, WorkloadApiShape>()("csi-driver-spiffe/services/WorkloadApi") {}

/**
 * What the CSI gRPC server serves: the Identity and Node services of the CSI spec, as Effects.
 *
 * Owns: the contract between the transport (`csi/GrpcServer.ts`, which only decodes frames and maps
 * `CsiError` codes to gRPC status codes) and the driver's behaviour (`layers/CsiPlugin.ts`).
 * Requests arrive as the plain objects @grpc/proto-loader produces (snake_case keys, enums as
 * strings, `longs: String`); each handler decodes its own request with Schema.
 * Does not own: sockets, serialisation, logging of requests (the server redacts secrets).
 */
import { Context, Schema } from "effect"
import type { Effect } from "effect"

/** The gRPC status codes the driver returns, by their canonical names. */
export const CsiCode = Schema.Literals([
  "InvalidArgument",
  "NotFound",
  "AlreadyExists",
  "FailedPrecondition",
  "Aborted",
  "Unavailable",
  "DeadlineExceeded",
  "ResourceExhausted",
  "Internal",
  "Unimplemented",
  "Unknown",
  "Unauthenticated",
  "PermissionDenied"
])
export type CsiCode = typeof CsiCode.Type

/** A failed RPC. `detail` is shown to the kubelet (and in `kubectl describe pod`): no secrets. */
export class CsiError extends Schema.TaggedError<CsiError>()("CsiError", {
  code: CsiCode,
  detail: Schema.String,
  /** The driver failure it answers for (logged with it, never sent to the kubelet), when there is one. */
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return this.detail
  }
}

export interface PluginInfo {
  readonly name: string
  readonly vendor_version: string
}

/** Responses are plain objects in proto-loader's shape (snake_case, enums by name). */
export interface CsiPluginShape {
  readonly getPluginInfo: Effect.Effect<PluginInfo>
  /** Plugin capabilities (`{ capabilities: [...] }`). */
  readonly getPluginCapabilities: Effect.Effect<unknown>
  /** Ready once start-up finished (store resumed, issuer known). */
  readonly probe: Effect.Effect<{ readonly ready: boolean }>
  readonly nodeGetInfo: Effect.Effect<{ readonly node_id: string }>
  /** Node capabilities (`{ capabilities: [...] }`), VOLUME_MOUNT_GROUP included. */
  readonly nodeGetCapabilities: Effect.Effect<unknown>
  readonly nodePublishVolume: (request: unknown) => Effect.Effect<Record<string, never>, CsiError>
  readonly nodeUnpublishVolume: (request: unknown) => Effect.Effect<Record<string, never>, CsiError>
}

export class CsiPlugin extends Context.Service<CsiPlugin, CsiPluginShape>()("csi-driver-spiffe/services/CsiPlugin") {}

/**
 * Getting one signed SVID for one volume from cert-manager.
 *
 * Owns: the key and CSR for each attempt, the CertificateRequest (created with the pod's token,
 * labelled with the node and volume hashes, owned by the Pod), waiting for its outcome by watch
 * events, checking the returned chain before anyone sees it, and keeping at most one request per
 * volume: an attempt that runs out of time leaves its request pending, and the next attempt for the
 * volume resumes it instead of creating another.
 * Does not own: when to issue (the volume manager), writing files, mounts.
 */
import { Context, Schema } from "effect"
import type { Effect, Redacted, Stream } from "effect"

export const IssuanceFailure = Schema.Literals([
  /** Nothing to do until something outside changes: no token since a restart, no issuer configured. */
  "NotReady",
  /** The approver denied the request: terminal for this request. */
  "Denied",
  /** The issuer failed the request: terminal for this request. */
  "Failed",
  /** The request is still pending after the attempt's time ran out; it is resumed next time. */
  "Timeout",
  /** The API server refused or could not be reached. */
  "Api",
  /**
   * The API server did not accept the token (401): expired, not signed by the cluster, for another
   * audience, or bound to a pod that no longer exists. Permanent for that token.
   */
  "Unauthenticated",
  /** The token's identity may not create the request (403): RBAC, not a transient fault. */
  "Forbidden",
  /** The issuer returned a chain we will not mount (wrong key, wrong SAN, a CA, unparsable). */
  "BadChain",
  /** Key or CSR generation failed. */
  "Crypto"
])
export type IssuanceFailure = typeof IssuanceFailure.Type

export class IssuanceError extends Schema.TaggedError<IssuanceError>()("IssuanceError", {
  reason: IssuanceFailure,
  detail: Schema.String,
  /** The API, crypto or chain failure behind it, when there is one. */
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return this.detail
  }
}

export interface IssueInput {
  readonly volumeId: string
  readonly podName: string
  readonly podUid: string
  readonly namespace: string
  readonly spiffeId: string
  /** The pod's token; undefined means "none in memory" (NotReady) unless the driver uses its own identity. */
  readonly token: Redacted.Redacted<string> | undefined
}

export interface Issued {
  readonly chainPem: string
  readonly keyPem: Redacted.Redacted<string>
  readonly notBefore: number
  readonly notAfter: number
  readonly serialNumber: string
  readonly requestName: string
}

export interface IssuanceShape {
  /** One attempt, bounded by the configured issuance timeout. */
  readonly issue: (input: IssueInput) => Effect.Effect<Issued, IssuanceError>
  /** Forgets the volume's pending request and deletes every request of the volume. */
  readonly forget: (volumeId: string, namespace: string) => Effect.Effect<void>
  /** True once the request watch has listed the node's requests (a probe's question; waiters use `awaitSynced`). */
  readonly synced: Effect.Effect<boolean>
  /** Returns once the request watch has listed the node's requests. */
  readonly awaitSynced: Effect.Effect<void>
  /** One element each time the request watch lists again after a failed list or watch. */
  readonly reconnected: Stream.Stream<void>
}

export class Issuance extends Context.Service<Issuance, IssuanceShape>()("csi-driver-spiffe/services/Issuance") {}

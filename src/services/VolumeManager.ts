/**
 * The life of every volume on this node: first issuance and mount, renewal, restart recovery and
 * removal.
 *
 * Owns: per-volume serialisation (publish, renewal and CA rewrites of one volume never interleave,
 * so two concurrent publishes are single-flight and both return only when the files exist), the
 * in-memory token of each pod (never persisted), one supervised renewal fiber per volume, resuming
 * every stored volume when the driver starts, the rule that a republish never tears down a
 * working mount, refusing a target path where a mount would hide or land elsewhere, undoing a
 * first publish that fails after its issuance, and an unpublish that never waits behind a publish's
 * or renewal's slow work (it cancels them). Only what the driver mounted is ever unmounted.
 * Does not own: request validation (domain/PublishRequest), talking to cert-manager (Issuance),
 * files (VolumeStore), mounts (Mounter).
 */
import { Context, Schema } from "effect"
import type { Effect, Stream } from "effect"
import type { PublishRequest, UnpublishRequest } from "../domain/PublishRequest.ts"
import type { IssuanceError } from "./Issuance.ts"
import type { MountError } from "./Mounter.ts"
import type { VolumeStoreError } from "./VolumeStore.ts"
import type { WorkloadApiError } from "./WorkloadApi.ts"

/** The volume id is already published for another pod or with other parameters. */
export class VolumeConflictError extends Schema.TaggedError<VolumeConflictError>()("VolumeConflictError", {
  volumeId: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `volume ${this.volumeId}: ${this.detail}`
  }
}

/**
 * The target path is not one the driver mounts onto: something that is not an empty directory or
 * a missing path is there (a symlink, a file, a non-empty directory, someone else's mount), or the
 * volume is already published at another target path (the CSI spec's answer for a second target of
 * a single-node volume is FAILED_PRECONDITION).
 */
export class TargetPathError extends Schema.TaggedError<TargetPathError>()("TargetPathError", {
  volumeId: Schema.String,
  targetPath: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `volume ${this.volumeId}: target_path ${JSON.stringify(this.targetPath)}: ${this.detail}`
  }
}

/** A publish gave up because the volume was unpublished while it waited or ran. */
export class PublishAbortedError extends Schema.TaggedError<PublishAbortedError>()("PublishAbortedError", {
  volumeId: Schema.String
}) {
  override get message(): string {
    return `volume ${this.volumeId}: unpublished while this publish was in progress`
  }
}

export type PublishError = IssuanceError | VolumeStoreError | MountError | VolumeConflictError | TargetPathError | PublishAbortedError | WorkloadApiError
export type UnpublishError = VolumeStoreError | MountError

export interface VolumeStatus {
  readonly volumeId: string
  readonly podNamespace: string
  readonly podName: string
  readonly issued: boolean
  readonly hasToken: boolean
  readonly nextIssuanceAt: number | undefined
  readonly notAfter: number | undefined
  /** When the renewal loop retries after a failed or not-ready attempt. */
  readonly retryAt: number | undefined
}

export interface VolumeManagerShape {
  /** Issues (or resumes) the volume's SVID, writes the files, mounts them and starts renewal. */
  readonly publish: (request: PublishRequest) => Effect.Effect<void, PublishError>
  /** Stops renewal, unmounts, deletes the volume's requests and files. Idempotent. */
  readonly unpublish: (request: UnpublishRequest) => Effect.Effect<void, UnpublishError>
  /** Rewrites the CA file of every issued volume with the current bundle (serialised per volume). */
  readonly refreshCaFiles: Effect.Effect<void>
  /** True once the stored volumes have been resumed. */
  readonly ready: Effect.Effect<boolean>
  readonly status: (volumeId: string) => Effect.Effect<VolumeStatus | undefined>
  /**
   * The volume's status once `holds` is true of it: now, or after a later change of its renewal
   * state (a retry scheduled, a renewal done), so a waiter never polls.
   */
  readonly awaitStatus: (volumeId: string, holds: (status: VolumeStatus | undefined) => boolean) => Effect.Effect<VolumeStatus | undefined>
  /** Every volume the driver knows, for metrics. */
  readonly statuses: Effect.Effect<ReadonlyArray<VolumeStatus>>
  /** Volumes with a running renewal fiber. */
  readonly managed: Effect.Effect<number>
  /**
   * True while a publish or an unpublish is in hand, false otherwise: the current value first, then
   * each change. The driver's idle GC watches it (`bin/CsiLive.ts`).
   */
  readonly busy: Stream.Stream<boolean>
}

export class VolumeManager extends Context.Service<VolumeManager, VolumeManagerShape>()("csi-driver-spiffe/services/VolumeManager") {}

/**
 * `CsiPlugin`: the CSI Identity and Node services of this driver. Decodes each request with the
 * domain rules first (so a bad request has no side effect at all) and is the one place where
 * driver errors become gRPC codes.
 */
import { Effect, Layer, Result } from "effect"
import { decodePublish, decodeUnpublish } from "../domain/PublishRequest.ts"
import { CsiError, CsiPlugin } from "../services/CsiPlugin.ts"
import type { CsiCode } from "../services/CsiPlugin.ts"
import { DriverConfig } from "../services/DriverConfig.ts"
import { Issuance } from "../services/Issuance.ts"
import type { IssuanceFailure } from "../services/Issuance.ts"
import { IssuerConfig } from "../services/IssuerConfig.ts"
import type { PublishError, UnpublishError } from "../services/VolumeManager.ts"
import { VolumeManager } from "../services/VolumeManager.ts"
import * as DriverMetrics from "./DriverMetrics.ts"

const issuanceCodes: Record<IssuanceFailure, CsiCode> = {
  NotReady: "Unavailable",
  Denied: "FailedPrecondition",
  Failed: "FailedPrecondition",
  Timeout: "DeadlineExceeded",
  Api: "Unavailable",
  // The CSI spec's codes for secrets that do not authenticate / an identity without permission
  // (its general error table). Both are final for the kubelet (only CANCELLED, DEADLINE_EXCEEDED,
  // UNAVAILABLE, RESOURCE_EXHAUSTED and ABORTED are not): the kubelet knows nothing was mounted and
  // retries with backoff instead of treating the call as still in progress.
  Unauthenticated: "Unauthenticated",
  Forbidden: "PermissionDenied",
  BadChain: "Internal",
  Crypto: "Internal"
}

/** Maps a driver failure to the code and message the kubelet sees. Messages never carry secrets. */
export const toCsiError = (e: PublishError | UnpublishError): CsiError => {
  switch (e._tag) {
    case "IssuanceError":
      return new CsiError({ code: issuanceCodes[e.reason], detail: e.message, cause: e })
    case "VolumeConflictError":
      return new CsiError({ code: "AlreadyExists", detail: e.message, cause: e })
    // gRPC: FAILED_PRECONDITION is for a request refused because of the system's state ("deleting a
    // non-empty directory"), and the CSI spec answers a second target path of a volume with it.
    case "TargetPathError":
      return new CsiError({ code: "FailedPrecondition", detail: e.message, cause: e })
    // The kubelet treats ABORTED as "not known to be done" and does not retry a publish of a pod it
    // is tearing down.
    case "PublishAbortedError":
      return new CsiError({ code: "Aborted", detail: e.message, cause: e })
    case "MountError":
    case "VolumeStoreError":
    case "WorkloadApiError":
      return new CsiError({ code: "Internal", detail: e.message, cause: e })
  }
}

export const layer = Layer.effect(
  CsiPlugin,
  Effect.gen(function*() {
    const config = yield* DriverConfig
    const manager = yield* VolumeManager
    const issuance = yield* Issuance
    const issuers = yield* IssuerConfig

    const invalid = (detail: string) => new CsiError({ code: "InvalidArgument", detail })

    return CsiPlugin.of({
      getPluginInfo: Effect.succeed({ name: config.csiDriverName, vendor_version: config.version }),
      getPluginCapabilities: Effect.succeed({ capabilities: [] }),
      probe: Effect.gen(function*() {
        const ready = (yield* manager.ready) && (yield* issuance.synced) && (yield* issuers.loaded)
        return { ready }
      }),
      nodeGetInfo: Effect.succeed({ node_id: config.nodeId }),
      nodeGetCapabilities: Effect.succeed({ capabilities: [{ rpc: { type: "VOLUME_MOUNT_GROUP" } }] }),
      nodePublishVolume: Effect.fn("CsiPlugin.nodePublishVolume")(function*(request: unknown) {
        const decoded = decodePublish(request, config)
        if (Result.isFailure(decoded)) return yield* invalid(decoded.failure)
        yield* manager.publish(decoded.success).pipe(Effect.mapError(toCsiError))
        return {}
      }, DriverMetrics.timePublish),
      nodeUnpublishVolume: Effect.fn("CsiPlugin.nodeUnpublishVolume")(function*(request: unknown) {
        const decoded = decodeUnpublish(request, config)
        if (Result.isFailure(decoded)) return yield* invalid(decoded.failure)
        yield* manager.unpublish(decoded.success).pipe(Effect.mapError(toCsiError))
        return {}
      })
    })
  })
)

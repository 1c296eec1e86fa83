/**
 * NodeUnpublishVolume for the volume manager.
 *
 * Owns: the rule that an unpublish only ever undoes what this driver did (a volume id it has no
 * record of, or a target path that is not the volume's, is answered with success and nothing is
 * touched: the CSI spec wants an unpublish of what is not there to succeed); cancelling the volume's
 * renewal and every publish of it first, so the lock is free at once; then closing the socket,
 * unmounting, removing the files and the record, and deleting the volume's requests with a bound.
 * Does not own: the deletion of requests (`Forget.ts`), mounts (Mounter), files (VolumeStore).
 */
import { Deferred, Effect, Ref } from "effect"
import type { UnpublishRequest } from "../../domain/PublishRequest.ts"
import { Mounter } from "../../services/Mounter.ts"
import { VolumeStore } from "../../services/VolumeStore.ts"
import type { Parts } from "./Parts.ts"

export const make = ({ forgets, renewals, sockets, volumes }: Pick<Parts, "volumes" | "sockets" | "renewals" | "forgets">) =>
  Effect.gen(function*() {
    const store = yield* VolumeStore
    const mounter = yield* Mounter

    return Effect.fn("VolumeManager.unpublish")(function*(req: UnpublishRequest) {
      const state = yield* volumes.get(req.volumeId)
      const meta = state === undefined ? yield* store.read(req.volumeId) : yield* Ref.get(state.meta)
      if (meta === undefined) {
        yield* Effect.logDebug("unpublish of a volume this driver does not know; nothing to do", { volume: req.volumeId })
        return
      }
      if (meta.targetPath !== req.targetPath) {
        yield* Effect.logWarning("unpublish at a target path the volume was not published at; left alone", { volume: req.volumeId, targetPath: req.targetPath })
        return
      }
      if (state !== undefined) yield* Deferred.succeed(state.unpublished, undefined)
      yield* renewals.stop(req.volumeId)
      const run = Effect.gen(function*() {
        if (state !== undefined) yield* sockets.close(state)
        yield* mounter.unmount(meta.targetPath)
        yield* store.remove(req.volumeId)
        // Registered before the volume leaves the map, so a publish that comes next sees it.
        const deletion = yield* forgets.inBackground(req.volumeId, meta.podNamespace)
        yield* volumes.remove(req.volumeId, state)
        return deletion
      })
      const deletion = yield* state === undefined ? run : state.lock.withPermit(run)
      const done = yield* forgets.awaitBounded(deletion)
      if (done._tag === "None") {
        yield* Effect.logWarning("deleting the volume's CertificateRequests is slow; it goes on in the background", { volume: req.volumeId })
      }
      yield* Effect.logInfo("volume unpublished", { volume: req.volumeId })
    }, Effect.annotateLogs({ component: "unpublish" }))
  })

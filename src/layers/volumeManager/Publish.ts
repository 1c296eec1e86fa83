/**
 * NodePublishVolume for the volume manager: first issuance and mount, or the republish of a volume
 * that is already working.
 *
 * Owns: every refusal checked before anything is created (another target path, a target the driver
 * does not mount onto, someone else's mount), the conflict rules of a republish (another pod,
 * identity or fs-group), the rule that a republish refreshes the token and never tears down a
 * working mount, undoing a first publish that fails after its issuance, waiting (bounded) for a
 * previous unpublish's request deletion, and giving up at once when the volume is unpublished.
 * Does not own: request validation (domain/PublishRequest), the issuance (`Issue.ts`), the renewal
 * fiber (`Renewal.ts`), the socket (`Socket.ts`), deleting requests (`Forget.ts`).
 */
import { Deferred, Effect, Redacted, Ref } from "effect"
import type { PublishRequest } from "../../domain/PublishRequest.ts"
import { forServiceAccount } from "../../domain/SpiffeId.ts"
import { VolumeMetadata } from "../../domain/VolumeMetadata.ts"
import { DriverConfig } from "../../services/DriverConfig.ts"
import { Mounter } from "../../services/Mounter.ts"
import { PublishAbortedError, TargetPathError, VolumeConflictError } from "../../services/VolumeManager.ts"
import { VolumeStore } from "../../services/VolumeStore.ts"
import type { Parts } from "./Parts.ts"
import type { VolumeState } from "./State.ts"
import { wakeUp } from "./State.ts"

export const make = ({ forgets, issue, renewals, sockets, volumes }: Omit<Parts, "files">) =>
  Effect.gen(function*() {
    const config = yield* DriverConfig
    const store = yield* VolumeStore
    const mounter = yield* Mounter

    const ensureMounted = Effect.fnUntraced(function*(volumeId: string, targetPath: string) {
      if (!(yield* mounter.isMountPoint(targetPath))) yield* mounter.bindReadOnly(store.dataDir(volumeId), targetPath)
    })

    /**
     * Takes back a first publish whose issuance succeeded but whose mount did not: the files, the
     * record, the volume's requests and its in-memory state go, so nothing is resumed after a restart
     * and no metric series stays for a volume that was never mounted.
     */
    const undoFirstPublish = (state: VolumeState, unissued: VolumeMetadata) =>
      Effect.gen(function*() {
        yield* renewals.stop(unissued.volumeId)
        yield* sockets.close(state)
        yield* store.remove(unissued.volumeId).pipe(Effect.ignore)
        // In the background: this runs uninterruptibly (an unpublish may be waiting to cancel it).
        yield* forgets.inBackground(unissued.volumeId, unissued.podNamespace)
        yield* Ref.set(state.meta, unissued)
        yield* Effect.logInfo("first publish failed after issuance; its files and requests were removed", { volume: unissued.volumeId })
      })

    /**
     * While the volume is unknown, waits (each wait bounded) for the request deletion its last
     * unpublish left running. Read again after every wait: the volume may have been unpublished
     * meanwhile.
     */
    const awaitPreviousUnpublish = Effect.fnUntraced(function*(volumeId: string) {
      while ((yield* volumes.get(volumeId)) === undefined) {
        if (!(yield* forgets.awaitRunning(volumeId))) return
      }
    })

    return Effect.fn("VolumeManager.publish")(function*(req: PublishRequest) {
      const spiffeId = forServiceAccount(config.trustDomain, req.token.namespace, req.token.serviceAccount)
      const fresh = new VolumeMetadata({
        volumeId: req.volumeId,
        targetPath: req.targetPath,
        podName: req.podName,
        podNamespace: req.podNamespace,
        podUid: req.podUid,
        serviceAccount: req.serviceAccount,
        spiffeId,
        fsGroup: req.fsGroup,
        workloadApiSocket: config.workloadApi !== undefined && (req.workloadApi ?? config.workloadApi.byDefault) ? config.workloadApi.socketName : undefined,
        ...(req.filesystemDelivery === true ? { filesystemDelivery: true } : {})
      })
      const refuse = (detail: string) => new TargetPathError({ volumeId: req.volumeId, targetPath: req.targetPath, detail })
      // Everything that can refuse the request is checked before anything is created.
      const existing = yield* volumes.get(req.volumeId)
      const existingPath = existing === undefined ? undefined : (yield* Ref.get(existing.meta)).targetPath
      if (existingPath !== undefined && existingPath !== req.targetPath) {
        return yield* refuse(`the volume is already published at ${JSON.stringify(existingPath)}`)
      }
      const target = yield* mounter.inspectTarget(config.kubeletRootDir, req.targetPath)
      if (target._tag === "Refused") return yield* refuse(`not mounted onto: ${target.reason}`)
      if (target._tag === "MountPoint" && existing === undefined) return yield* refuse("something the driver did not mount is mounted there")

      yield* awaitPreviousUnpublish(req.volumeId)
      const state = yield* volumes.enter(fresh)
      const work = state.lock.withPermit(
        Effect.gen(function*() {
          // The permit can be handed over in the instant between an unpublish and this publish's
          // cancellation taking effect: nothing may start then.
          if (yield* Deferred.isDone(state.unpublished)) return yield* new PublishAbortedError({ volumeId: req.volumeId })
          const meta = yield* Ref.get(state.meta)
          const known = meta.nextIssuanceAt !== undefined
          if (known && (meta.podUid !== req.podUid || meta.spiffeId !== spiffeId)) {
            return yield* new VolumeConflictError({ volumeId: req.volumeId, detail: "already published for another pod or identity" })
          }
          if (meta.targetPath !== req.targetPath) return yield* refuse(`the volume is already published at ${JSON.stringify(meta.targetPath)}`)
          if (known && meta.fsGroup !== req.fsGroup) {
            return yield* new VolumeConflictError({ volumeId: req.volumeId, detail: "already published with another fs-group" })
          }
          // A republish refreshes the token; the files and mount of a working volume are left alone.
          const token = yield* Ref.getAndSet(state.token, req.token)
          const freshToken = token === undefined || Redacted.value(token.token) !== Redacted.value(req.token.token)
          if (known) {
            // A socket that could not be opened when a restarted driver resumed the volume gets another chance.
            yield* sockets.open(state).pipe(Effect.catch((e) => Effect.logWarning("Workload API socket not opened", { volume: req.volumeId, error: e.message })))
            yield* ensureMounted(req.volumeId, req.targetPath)
            yield* renewals.start(state)
            // A renewal waiting on a backoff (perhaps for want of a token) tries with this one now.
            if (freshToken) yield* wakeUp(state)
            return
          }
          yield* Ref.set(state.meta, fresh)
          yield* store.write(fresh)
          yield* issue.issueAndWrite(state, "first").pipe(
            // A first issuance that fails leaves nothing on disk; its pending request (if any) is
            // remembered by Issuance and resumed by the kubelet's next attempt.
            Effect.tapError(() => store.remove(req.volumeId).pipe(Effect.ignore))
          )
          // The issuance can take a while: look at the target again right before the mount, so what
          // appeared there meanwhile (a file, a symlink) is refused like it would have been at first.
          // The socket is open before the mount, so it is there when the pod's containers start.
          yield* Effect.gen(function*() {
            yield* sockets.open(state)
            const now = yield* mounter.inspectTarget(config.kubeletRootDir, req.targetPath)
            if (now._tag === "Refused") return yield* refuse(`not mounted onto: ${now.reason}`)
            if (now._tag === "MountPoint") return yield* refuse("something the driver did not mount is mounted there")
            yield* mounter.bindReadOnly(store.dataDir(req.volumeId), req.targetPath)
          }).pipe(
            Effect.onError(() => undoFirstPublish(state, fresh)),
            // Outside the (uninterruptible) undo: the failure is answered once the requests are gone,
            // or after the same bound an unpublish waits.
            Effect.tapError(() => forgets.awaitRunning(req.volumeId))
          )
          yield* renewals.start(state)
        })
      )
      // An unpublish of this volume ends the publish wherever it is (waiting for the lock, waiting for
      // its issuance): the unpublish must never queue behind it.
      yield* work.pipe(
        Effect.raceFirst(Deferred.await(state.unpublished).pipe(Effect.andThen(Effect.fail(new PublishAbortedError({ volumeId: req.volumeId }))))),
        Effect.ensuring(volumes.leave(state))
      )
    }, Effect.annotateLogs({ component: "publish" }))
  })

/**
 * `VolumeManager` over Issuance, VolumeStore, Mounter, CaBundle and WorkloadApi: the one entry point
 * the driver's composition root and the tests build. It wires the pieces in `volumeManager/`, each
 * of which owns one job, and itself owns only what ties them together for the layer's life.
 *
 * Owns (this file): the order of start-up (recovery, then following API reconnects and CA changes,
 * then one CA pass), the readiness flag, the count of publishes and unpublishes in hand (`busy`),
 * and the status views (`status`, `awaitStatus`, `statuses`, `managed`). The pieces, from the
 * bottom up: `State.ts` (per-volume state and the volume map), `Files.ts` (a volume's files and
 * SVID, the CA refresh), `Socket.ts` (the Workload API socket scope), `Forget.ts` (deleting a
 * volume's requests in the background), `Issue.ts` (one issuance), `Renewal.ts` (the renewal
 * fiber), `Publish.ts`, `Unpublish.ts`, `Recovery.ts`.
 * Does not own: any of those jobs itself.
 */
import { Effect, Layer, PubSub, Ref, Stream, SubscriptionRef } from "effect"
import { CaBundle } from "../services/CaBundle.ts"
import { Issuance } from "../services/Issuance.ts"
import { VolumeManager } from "../services/VolumeManager.ts"
import type { VolumeStatus } from "../services/VolumeManager.ts"
import * as Files from "./volumeManager/Files.ts"
import * as Forget from "./volumeManager/Forget.ts"
import * as Issue from "./volumeManager/Issue.ts"
import type { Parts } from "./volumeManager/Parts.ts"
import * as Publish from "./volumeManager/Publish.ts"
import * as Recovery from "./volumeManager/Recovery.ts"
import * as Renewal from "./volumeManager/Renewal.ts"
import * as Socket from "./volumeManager/Socket.ts"
import { makeVolumes, statusOf } from "./volumeManager/State.ts"
import * as Unpublish from "./volumeManager/Unpublish.ts"

export const layer = Layer.effect(
  VolumeManager,
  Effect.gen(function*() {
    const issuance = yield* Issuance
    const caBundle = yield* CaBundle
    const volumes = yield* makeVolumes
    const files = yield* Files.make
    const sockets = yield* Socket.make
    const issue = yield* Issue.make(files)
    // Created before the request deletions: the layer's scope closes them in the opposite order.
    const renewals = yield* Renewal.make(volumes, issue)
    const forgets = yield* Forget.make
    const parts: Parts = { volumes, files, sockets, forgets, issue, renewals }
    const publish = yield* Publish.make(parts)
    const unpublish = yield* Unpublish.make(parts)
    const refreshCaFiles = files.refreshCaFiles(volumes)
    const resumed = yield* Ref.make(false)
    const inHand = yield* SubscriptionRef.make(0)
    /** Counts `work` in hand from its start to its end, however it ends. */
    const counted = <E>(work: Effect.Effect<void, E>) =>
      Effect.acquireUseRelease(SubscriptionRef.update(inHand, (n) => n + 1), () => work, () => SubscriptionRef.update(inHand, (n) => n - 1))

    yield* Recovery.resumeStored(parts)
    // The API server answers again after an outage: renewals waiting on a backoff try at once.
    yield* issuance.reconnected.pipe(
      Stream.runForEach(() => Effect.logInfo("API connection recovered; waking renewals").pipe(Effect.andThen(renewals.wakeAll))),
      Effect.forkScoped({ startImmediately: true })
    )
    // The bundle may have changed while the driver was down: bring every volume up to date once,
    // then follow changes. Writes are skipped where the content is already current.
    // Subscribe first (started at once), so a change during or right after this pass is not lost.
    yield* caBundle.changes.pipe(
      Stream.runForEach(() => Effect.logInfo("CA bundle changed; updating every volume").pipe(Effect.andThen(refreshCaFiles))),
      Effect.forkScoped({ startImmediately: true })
    )
    yield* refreshCaFiles
    yield* Ref.set(resumed, true)
    yield* Effect.logInfo("volumes resumed", { count: yield* volumes.size })

    const look = (volumeId: string): Effect.Effect<VolumeStatus | undefined> =>
      Effect.flatMap(volumes.get(volumeId), (s) => (s === undefined ? Effect.succeed(undefined) : statusOf(s)))

    return VolumeManager.of({
      publish: (request) => counted(publish(request)),
      unpublish: (request) => counted(unpublish(request)),
      refreshCaFiles,
      ready: Ref.get(resumed),
      status: look,
      // Subscribed before the first look, so a change between the look and the wait is not missed.
      awaitStatus: (volumeId, holds) =>
        Effect.scoped(Effect.gen(function*() {
          const changes = yield* PubSub.subscribe(volumes.statusChanged)
          let status = yield* look(volumeId)
          while (!holds(status)) {
            yield* PubSub.take(changes)
            status = yield* look(volumeId)
          }
          return status
        })),
      statuses: Effect.flatMap(volumes.all, (all) => Effect.forEach(all, statusOf)),
      managed: renewals.size,
      busy: SubscriptionRef.changes(inHand).pipe(Stream.map((n) => n > 0), Stream.changes)
    })
  })
)

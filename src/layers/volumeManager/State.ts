/**
 * What the volume manager holds in memory for each volume, and the registry of volumes by id.
 *
 * Owns: one volume's state (its metadata as last written, the pod's token, the renewal's retry
 * instant and wake-up signal, the lock, the unpublish signal, the SVID its socket serves and the
 * socket's scope), each in a Ref, Deferred or SubscriptionRef; the map of volumes with the count of
 * publishes of each still in flight; the status a volume reports; the signal that a volume's renewal
 * state changed. `meta` and `token` are replaced only while the volume's `lock` is held (publish,
 * issuance, the undo of a first publish), so a whole value is always read; everything else is
 * changed through its Ref. Entering, leaving and removing a volume are each one `Ref.modify` of the
 * map, so two fibers never both decide about one entry.
 * Does not own: what changes the state or when (`Publish.ts`, `Renewal.ts`, `Unpublish.ts`,
 * `Recovery.ts`, `Socket.ts`), or anything on disk (VolumeStore).
 */
import { Deferred, Effect, PubSub, Ref, Semaphore, SubscriptionRef } from "effect"
import type { Scope } from "effect"
import type { PodToken } from "../../domain/Token.ts"
import type { VolumeMetadata } from "../../domain/VolumeMetadata.ts"
import type { VolumeStatus } from "../../services/VolumeManager.ts"
import type { VolumeSvid } from "../../services/WorkloadApi.ts"

export interface VolumeState {
  readonly volumeId: string
  /** The volume's metadata as last written; replaced only while `lock` is held. */
  readonly meta: Ref.Ref<VolumeMetadata>
  /** The pod's token from its latest publish (never persisted); replaced only while `lock` is held. */
  readonly token: Ref.Ref<PodToken | undefined>
  /** When the renewal loop retries after a failed or not-ready attempt; undefined otherwise. */
  readonly retryAt: Ref.Ref<number | undefined>
  /**
   * Completed to end a renewal's backoff at once (fresh token, API connection back), then replaced.
   * The loop takes it before each attempt, so a wake during the attempt is not lost.
   */
  readonly wake: Ref.Ref<Deferred.Deferred<void>>
  /** Serialises publish, renewal and CA rewrites of this volume. */
  readonly lock: Semaphore.Semaphore
  /** Completed by unpublish: every publish of this volume still waiting or running gives up at once. */
  readonly unpublished: Deferred.Deferred<void>
  /** The volume's SVID as its Workload API socket serves it; undefined until one is known. */
  readonly svid: SubscriptionRef.SubscriptionRef<VolumeSvid | undefined>
  /** The scope of the volume's Workload API socket while it is served; closing it removes the socket. */
  readonly socket: Ref.Ref<Scope.Closeable | undefined>
}

const makeState = (meta: VolumeMetadata) =>
  Effect.gen(function*() {
    const state: VolumeState = {
      volumeId: meta.volumeId,
      meta: yield* Ref.make(meta),
      token: yield* Ref.make<PodToken | undefined>(undefined),
      retryAt: yield* Ref.make<number | undefined>(undefined),
      wake: yield* Ref.make(yield* Deferred.make<void>()),
      lock: yield* Semaphore.make(1),
      unpublished: yield* Deferred.make<void>(),
      svid: yield* SubscriptionRef.make<VolumeSvid | undefined>(undefined),
      socket: yield* Ref.make<Scope.Closeable | undefined>(undefined)
    }
    return state
  })

/** Ends the volume's current backoff wait, if any; the next wait takes a fresh signal. */
export const wakeUp = (s: VolumeState) =>
  Effect.flatMap(Deferred.make<void>(), (next) => Effect.flatMap(Ref.getAndSet(s.wake, next), (woken) => Deferred.succeed(woken, undefined)))

export const statusOf = (s: VolumeState): Effect.Effect<VolumeStatus> =>
  Effect.gen(function*() {
    const meta = yield* Ref.get(s.meta)
    return {
      volumeId: meta.volumeId,
      podNamespace: meta.podNamespace,
      podName: meta.podName,
      issued: meta.nextIssuanceAt !== undefined,
      hasToken: (yield* Ref.get(s.token)) !== undefined,
      nextIssuanceAt: meta.nextIssuanceAt,
      notAfter: meta.notAfter,
      retryAt: yield* Ref.get(s.retryAt)
    }
  })

interface Entry {
  readonly state: VolumeState
  /** Publishes of this volume holding or waiting for its lock. */
  readonly publishes: number
}

/** The volumes the driver knows, by id. */
export interface Volumes {
  readonly get: (volumeId: string) => Effect.Effect<VolumeState | undefined>
  readonly all: Effect.Effect<ReadonlyArray<VolumeState>>
  readonly size: Effect.Effect<number>
  /** The volume's state, created from `meta` when the volume is not known yet (restart recovery). */
  readonly resume: (meta: VolumeMetadata) => Effect.Effect<VolumeState>
  /** As `resume`, and counts one more publish in flight; every `enter` is paired with a `leave`. */
  readonly enter: (meta: VolumeMetadata) => Effect.Effect<VolumeState>
  /**
   * Counts one publish fewer. The volume leaves the map when nothing was issued for it and no
   * publish of it is left; an unpublished one stays until its unpublish is done: a publish arriving
   * meanwhile must find it (and give up), not start a volume of its own under the unpublish's feet.
   */
  readonly leave: (state: VolumeState) => Effect.Effect<void>
  /** Removes the volume's entry; with `only`, only while the entry is still that state. */
  readonly remove: (volumeId: string, only?: VolumeState) => Effect.Effect<void>
  /** One element each time a volume's renewal state changes (retry scheduled, renewal done). */
  readonly statusChanged: PubSub.PubSub<string>
}

const without = (map: ReadonlyMap<string, Entry>, volumeId: string) => {
  const next = new Map(map)
  next.delete(volumeId)
  return next
}

export const makeVolumes: Effect.Effect<Volumes> = Effect.gen(function*() {
  const map = yield* Ref.make<ReadonlyMap<string, Entry>>(new Map())
  const statusChanged = yield* PubSub.unbounded<string>()

  const getOrCreate = (meta: VolumeMetadata, publishes: number) =>
    Effect.flatMap(makeState(meta), (fresh) =>
      Ref.modify(map, (m): readonly [VolumeState, ReadonlyMap<string, Entry>] => {
        const entry = m.get(meta.volumeId) ?? { state: fresh, publishes: 0 }
        return [entry.state, new Map(m).set(meta.volumeId, { state: entry.state, publishes: entry.publishes + publishes })]
      }))

  return {
    get: (volumeId) => Effect.map(Ref.get(map), (m) => m.get(volumeId)?.state),
    all: Effect.map(Ref.get(map), (m) => [...m.values()].map((e) => e.state)),
    size: Effect.map(Ref.get(map), (m) => m.size),
    resume: (meta) => getOrCreate(meta, 0),
    enter: (meta) => getOrCreate(meta, 1),
    leave: (state) =>
      Ref.update(map, (m) => {
        const entry = m.get(state.volumeId)
        if (entry === undefined || entry.state !== state) return m
        const publishes = entry.publishes - 1
        // Read in the same step as the count, so no publish or issuance slips in between.
        const unissued = Ref.getUnsafe(state.meta).nextIssuanceAt === undefined
        if (unissued && publishes === 0 && !Deferred.isDoneUnsafe(state.unpublished)) return without(m, state.volumeId)
        return new Map(m).set(state.volumeId, { state, publishes })
      }),
    remove: (volumeId, only) => Ref.update(map, (m) => (only === undefined || m.get(volumeId)?.state === only ? without(m, volumeId) : m)),
    statusChanged
  }
})

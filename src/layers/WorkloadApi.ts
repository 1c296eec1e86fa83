/**
 * `WorkloadApi` twins: none at all, and an in-memory one that records which volume is served with
 * which SVID stream, for volume manager tests. The live server is `csi/WorkloadApiServer.ts`.
 */
import { Context, Effect, Layer, Option, Stream, SubscriptionRef } from "effect"
import { WorkloadApi } from "../services/WorkloadApi.ts"
import type { VolumeSvid, WorkloadEndpoint } from "../services/WorkloadApi.ts"

/** Serves nothing: for stacks that never turn the Workload API on. */
export const layerNone: Layer.Layer<WorkloadApi> = Layer.succeed(WorkloadApi, WorkloadApi.of({ serve: () => Effect.void }))

/** One volume as the memory twin holds it while its scope is open. */
export interface ServedVolume {
  readonly endpoint: WorkloadEndpoint
  readonly svid: Stream.Stream<VolumeSvid>
}

/** The memory twin's state: the volumes being served now, by volume id. */
export class WorkloadApiMemory extends Context.Service<WorkloadApiMemory, {
  readonly served: SubscriptionRef.SubscriptionRef<ReadonlyMap<string, ServedVolume>>
  /** The volume once it is served (now or later): a signal, never a poll. */
  readonly awaitServed: (volumeId: string) => Effect.Effect<ServedVolume>
  /** Completes once the volume is not served (now or later). */
  readonly awaitClosed: (volumeId: string) => Effect.Effect<void>
}>()("csi-driver-spiffe/layers/WorkloadApi/WorkloadApiMemory") {}

const layerMemoryState: Layer.Layer<WorkloadApiMemory> = Layer.effect(
  WorkloadApiMemory,
  Effect.gen(function*() {
    const served = yield* SubscriptionRef.make<ReadonlyMap<string, ServedVolume>>(new Map())
    // The state's changes start with the current value, so a volume served already answers at once.
    const first = <A>(f: (map: ReadonlyMap<string, ServedVolume>) => A | undefined) =>
      SubscriptionRef.changes(served).pipe(
        Stream.map(f),
        Stream.filter((a): a is A => a !== undefined),
        Stream.runHead,
        Effect.map(Option.getOrThrow)
      )
    return WorkloadApiMemory.of({
      served,
      awaitServed: (volumeId) => first((map) => map.get(volumeId)),
      awaitClosed: (volumeId) => Effect.asVoid(first((map) => (map.has(volumeId) ? undefined : true)))
    })
  })
)

/** Records each `serve` until its scope closes; `WorkloadApiMemory` is exposed alongside. */
export const layerMemory: Layer.Layer<WorkloadApi | WorkloadApiMemory> = Layer.effect(
  WorkloadApi,
  Effect.gen(function*() {
    const { served } = yield* WorkloadApiMemory
    return WorkloadApi.of({
      serve: (endpoint, svid) =>
        Effect.acquireRelease(
          SubscriptionRef.update(served, (map) => new Map(map).set(endpoint.volumeId, { endpoint, svid })),
          () =>
            SubscriptionRef.update(served, (map) => {
              const next = new Map(map)
              next.delete(endpoint.volumeId)
              return next
            })
        )
    })
  })
).pipe(Layer.provideMerge(layerMemoryState))

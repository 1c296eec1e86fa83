/**
 * The scope each volume's Workload API socket lives in.
 *
 * Owns: opening the socket in the volume's data directory (with the volume's fs-group) when the
 * volume asks for one and it is not open yet, handing it only this volume's SVID stream, and closing
 * it. Every socket scope is a child of the layer's, so a stopping driver closes them all. Opening and
 * closing happen under the volume's lock (publish, unpublish), or at start-up before any publish.
 * Does not own: the gRPC server (WorkloadApi), what the SVID is (`Files.ts`), when a socket opens
 * or closes (`Publish.ts`, `Unpublish.ts`, `Recovery.ts`).
 */
import { Effect, Exit, Predicate, Ref, Scope, Stream, SubscriptionRef } from "effect"
import { VolumeStore } from "../../services/VolumeStore.ts"
import { WorkloadApi } from "../../services/WorkloadApi.ts"
import type { VolumeState } from "./State.ts"

export const make = Effect.gen(function*() {
  const store = yield* VolumeStore
  const workloadApi = yield* WorkloadApi
  const layerScope = yield* Effect.scope

  /**
   * Opens the volume's Workload API socket in its data directory, when the volume has one and it is
   * not open yet. Its scope is the volume's: closed by unpublish (or the driver stopping).
   */
  const open = Effect.fnUntraced(function*(state: VolumeState) {
    const meta = yield* Ref.get(state.meta)
    const name = meta.workloadApiSocket
    if (name === undefined || (yield* Ref.get(state.socket)) !== undefined) return
    const scope = yield* Scope.fork(layerScope, "sequential")
    const svid = SubscriptionRef.changes(state.svid).pipe(Stream.filter(Predicate.isNotUndefined))
    const endpoint = { volumeId: meta.volumeId, socketPath: `${store.dataDir(meta.volumeId)}/${name}`, gid: meta.fsGroup }
    yield* workloadApi.serve(endpoint, svid).pipe(
      Scope.provide(scope),
      Effect.onError(() => Scope.close(scope, Exit.void))
    )
    yield* Ref.set(state.socket, scope)
  })

  /** Stops the volume's Workload API and removes its socket, if it has one open. */
  const close = (state: VolumeState) =>
    Effect.flatMap(Ref.getAndSet(state.socket, undefined), (scope) => (scope === undefined ? Effect.void : Scope.close(scope, Exit.void)))

  return { open, close }
})

export type Sockets = Effect.Success<typeof make>

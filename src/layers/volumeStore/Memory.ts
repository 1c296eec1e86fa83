/**
 * The VolumeStore memory twin: the same contract (and the same validating front) over a Ref, with
 * the state exposed as `VolumeStoreMemory` so tests can assert gid, modes and swap counts and wait
 * on a store operation instead of polling.
 *
 * Passes the contract suite in `test/unit/layers/VolumeStore.contract.ts`, like the file-system layer.
 */
import { Context, Effect, Layer, PubSub, Ref } from "effect"
import type { VolumeMetadata } from "../../domain/VolumeMetadata.ts"
import { VolumeStore, type VolumeFile } from "../../services/VolumeStore.ts"
import { contentOf, DATA_DIR, makeStore } from "./Front.ts"

/** A pod-visible file as the memory store holds it (content already unwrapped, as on disk). */
export interface MemoryFile {
  readonly content: string
  readonly mode: number
}

/** One volume in the memory store. */
export interface MemoryVolume {
  /** Undefined until `write`; `list` removes volumes without it, like directories without metadata.json. */
  readonly metadata: VolumeMetadata | undefined
  /** The currently published payload. */
  readonly files: ReadonlyMap<string, MemoryFile>
  /** Group of the files and data directory; undefined when never given. */
  readonly gid: number | undefined
  /** Number of atomic swaps so far; an identical rewrite does not count. */
  readonly swaps: number
}

/** The memory store's state, exposed so tests can assert gid, modes and swap counts. */
export class VolumeStoreMemory extends Context.Service<VolumeStoreMemory, {
  readonly volumes: Ref.Ref<ReadonlyMap<string, MemoryVolume>>
  /** Every state the store's own operations leave behind, published after each of them. */
  readonly written: PubSub.PubSub<ReadonlyMap<string, MemoryVolume>>
  /** Completes once the volumes satisfy `holds`: now, or after a later store operation (a signal, never a poll). */
  readonly until: (holds: (volumes: ReadonlyMap<string, MemoryVolume>) => boolean) => Effect.Effect<void>
}>()("csi-driver-spiffe/layers/VolumeStore/VolumeStoreMemory") {}

const emptyVolume: MemoryVolume = { metadata: undefined, files: new Map(), gid: undefined, swaps: 0 }

const sameFiles = (a: ReadonlyMap<string, MemoryFile>, b: ReadonlyMap<string, MemoryFile>): boolean =>
  a.size === b.size &&
  [...a].every(([name, file]) => {
    const other = b.get(name)
    return other !== undefined && other.content === file.content && other.mode === file.mode
  })

const layerMemoryState: Layer.Layer<VolumeStoreMemory> = Layer.effect(
  VolumeStoreMemory,
  Effect.gen(function*() {
    const volumes = yield* Ref.make<ReadonlyMap<string, MemoryVolume>>(new Map())
    const written = yield* PubSub.unbounded<ReadonlyMap<string, MemoryVolume>>()
    // Subscribed before the first look, so a write between the look and the wait is not missed.
    const until = (holds: (volumes: ReadonlyMap<string, MemoryVolume>) => boolean) =>
      Effect.scoped(Effect.gen(function*() {
        const subscription = yield* PubSub.subscribe(written)
        let state = yield* Ref.get(volumes)
        while (!holds(state)) state = yield* PubSub.take(subscription)
        // One turn of the scheduler: the fiber whose write published this state finishes the step it
        // was in (e.g. the volume manager recording what it just stored) before the waiter goes on.
        yield* Effect.yieldNow
      }))
    return VolumeStoreMemory.of({ volumes, written, until })
  })
)

const layerMemoryStore = (root: string): Layer.Layer<VolumeStore, never, VolumeStoreMemory> =>
  Layer.effect(
    VolumeStore,
    Effect.gen(function*() {
      const { volumes, written } = yield* VolumeStoreMemory
      const published = <A, E>(operation: Effect.Effect<A, E>) =>
        Effect.tap(operation, () => Effect.flatMap(Ref.get(volumes), (state) => PubSub.publish(written, state)))
      const updateVolume = (volumeId: string, f: (volume: MemoryVolume) => MemoryVolume) =>
        published(Ref.update(volumes, (map) => new Map(map).set(volumeId, f(map.get(volumeId) ?? emptyVolume))))

      const list = published(Ref.modify(volumes, (map) => {
        const kept = new Map<string, MemoryVolume>()
        const listed: Array<VolumeMetadata> = []
        for (const [volumeId, volume] of map) {
          if (volume.metadata === undefined) continue
          kept.set(volumeId, volume)
          listed.push(volume.metadata)
        }
        return [listed as ReadonlyArray<VolumeMetadata>, kept as ReadonlyMap<string, MemoryVolume>] as const
      }))

      const writeFiles = (volumeId: string, files: ReadonlyArray<VolumeFile>, gid: number | undefined) => {
        const next = new Map(files.map((file) => [file.name, { content: contentOf(file), mode: file.mode }]))
        return updateVolume(volumeId, (volume) =>
          sameFiles(volume.files, next) && volume.swaps > 0 && (gid === undefined || gid === volume.gid)
            ? volume
            : { ...volume, files: next, gid: gid ?? volume.gid, swaps: volume.swaps + 1 })
      }

      return makeStore(root, {
        list,
        read: (volumeId) => Effect.map(Ref.get(volumes), (map) => map.get(volumeId)?.metadata),
        write: (metadata) => updateVolume(metadata.volumeId, (volume) => ({ ...volume, metadata })),
        writeFiles,
        readFile: (volumeId, name) => Effect.map(Ref.get(volumes), (map) => map.get(volumeId)?.files.get(name)?.content),
        dataDir: (volumeId) => `memory://${root}/${volumeId}/${DATA_DIR}`,
        remove: (volumeId) =>
          published(Ref.update(volumes, (map) => {
            const next = new Map(map)
            next.delete(volumeId)
            return next
          }))
      })
    })
  )

/**
 * The same contract in memory. `dataDir` answers `memory://<root>/<id>/data`, which no real mount
 * accepts. `VolumeStoreMemory` is exposed alongside so tests can inspect gid, modes and swaps.
 */
export const layerMemory = (root = "inmemfs"): Layer.Layer<VolumeStore | VolumeStoreMemory> =>
  layerMemoryStore(root).pipe(Layer.provideMerge(layerMemoryState))

/**
 * VolumeStore implementations: real files under `<data-root>/inmemfs` on Effect's FileSystem, and
 * the in-memory twin (`volumeStore/Memory.ts`, re-exported here).
 *
 * Owns (this file): the on-disk layout `<root>/<volumeId>/metadata.json` + `<root>/<volumeId>/data/`,
 * the per-volume lock, metadata.json written atomically, and removing volume directories without
 * valid metadata. The pieces it stands on: `volumeStore/Front.ts` (validation shared with the twin),
 * `volumeStore/AtomicWriter.ts` (the kubelet `..data` swap for the pod-visible files).
 * Does not own: mounting the tmpfs or bind mounts (Mounter), deciding what to write or when (the
 * driver), validating the fs-group attribute for the user (the driver; here only a range check).
 *
 * Both layers pass the one contract suite in `test/unit/layers/VolumeStore.contract.ts`.
 */
import { NodeFileSystem, NodePath } from "@effect/platform-node"
import { Effect, FileSystem, Layer, Path, Ref, Semaphore } from "effect"
import { decodeJson, encodeJson, type VolumeMetadata } from "../domain/VolumeMetadata.ts"
import { VolumeStore, VolumeStoreError } from "../services/VolumeStore.ts"
import { io, orMissing, publish } from "./volumeStore/AtomicWriter.ts"
import { DATA_DIR, makeStore, METADATA_FILE, truncate } from "./volumeStore/Front.ts"

export { unsafeSegmentReason } from "./volumeStore/Front.ts"
export { layerMemory, type MemoryFile, type MemoryVolume, VolumeStoreMemory } from "./volumeStore/Memory.ts"

/** metadata.json holds pod identity details and is read only by the driver (root), as in csi-lib. */
const METADATA_MODE = 0o600
/** Only the driver walks a volume directory; pods see `data/` through the bind mount, never this. */
const VOLUME_DIR_MODE = 0o700
/** Fixed name is safe: every mutation of a volume holds its lock, and a left-over is simply overwritten. */
const METADATA_TMP_FILE = ".metadata.json.tmp"

type StoredMetadata =
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Invalid"; readonly detail: string; readonly cause?: unknown }
  | { readonly _tag: "Valid"; readonly metadata: VolumeMetadata }

/**
 * The store on a file system rooted at `root` (`<data-root>/inmemfs`). Mutations of one volume are
 * serialised by that volume's lock, which makes its fixed temporary names and left-over clean-up
 * race-free; different volumes never wait for each other (a burst of 110 publishes would otherwise
 * queue behind one lock). Reads take no lock: the `..data` swap is what keeps readers consistent.
 */
export const layer = (root: string): Layer.Layer<VolumeStore, never, FileSystem.FileSystem | Path.Path> =>
  Layer.effect(
    VolumeStore,
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const services = yield* Effect.context<FileSystem.FileSystem | Path.Path>()
      // One lock per volume, created on first use and dropped when the volume is removed (callers
      // never mutate a volume after removing it: unpublish is its last operation).
      const locks = yield* Ref.make<ReadonlyMap<string, Semaphore.Semaphore>>(new Map())
      const lockOf = (volumeId: string): Effect.Effect<Semaphore.Semaphore> =>
        Ref.modify(locks, (map) => {
          const existing = map.get(volumeId)
          if (existing !== undefined) return [existing, map] as const
          const lock = Semaphore.makeUnsafe(1)
          return [lock, new Map(map).set(volumeId, lock)] as const
        })
      const dropLock = (volumeId: string) =>
        Ref.update(locks, (map) => {
          const next = new Map(map)
          next.delete(volumeId)
          return next
        })
      const exclusive = <A, E>(volumeId: string, effect: Effect.Effect<A, E>) =>
        Effect.flatMap(lockOf(volumeId), (lock) => lock.withPermit(effect))
      const volumeDirOf = (volumeId: string) => path.join(root, volumeId)
      const dataDirOf = (volumeId: string) => path.join(root, volumeId, DATA_DIR)
      const metadataPathOf = (volumeId: string) => path.join(root, volumeId, METADATA_FILE)
      const removeVolumeDir = (operation: string, volumeId: string) =>
        io(operation, volumeId)(fs.remove(volumeDirOf(volumeId), { recursive: true, force: true }))

      const ensureVolumeDir = (operation: string, volumeId: string) =>
        io(operation, volumeId)(Effect.gen(function*() {
          yield* fs.makeDirectory(root, { recursive: true, mode: VOLUME_DIR_MODE })
          yield* fs.makeDirectory(volumeDirOf(volumeId), { recursive: true, mode: VOLUME_DIR_MODE })
          yield* fs.chmod(volumeDirOf(volumeId), VOLUME_DIR_MODE)
        }))

      /** The stored record, telling a missing metadata.json apart from one that does not decode. */
      const readStored = Effect.fnUntraced(function*(
        operation: string,
        volumeId: string
      ): Effect.fn.Return<StoredMetadata, VolumeStoreError> {
        const text = yield* io(operation, volumeId)(orMissing(fs.readFileString(metadataPathOf(volumeId))))
        if (text === undefined) return { _tag: "Missing" }
        return yield* decodeJson(text).pipe(
          Effect.map((metadata): StoredMetadata =>
            metadata.volumeId === volumeId
              ? { _tag: "Valid", metadata }
              : { _tag: "Invalid", detail: "metadata.json names another volume" }
          ),
          Effect.catch((error) =>
            Effect.succeed<StoredMetadata>({ _tag: "Invalid", detail: `metadata.json does not decode: ${error.message}`, cause: error })
          )
        )
      })

      const read = Effect.fnUntraced(function*(volumeId: string) {
        const stored = yield* readStored("read", volumeId)
        switch (stored._tag) {
          case "Missing":
            return undefined
          case "Invalid":
            return yield* new VolumeStoreError({ operation: "read", volumeId, detail: truncate(stored.detail), cause: stored.cause })
          case "Valid":
            return stored.metadata
        }
      })

      const list = Effect.gen(function*() {
        const entries = yield* io("list", "*")(orMissing(fs.readDirectoryEntries(root)))
        const volumes: Array<VolumeMetadata> = []
        for (const entry of entries ?? []) {
          if (entry.type !== "Directory") continue
          const volumeId = entry.name
          const stored = yield* readStored("list", volumeId)
          if (stored._tag === "Valid") {
            volumes.push(stored.metadata)
            continue
          }
          yield* Effect.logWarning("removing volume directory without valid metadata.json").pipe(
            Effect.annotateLogs({ volumeId, reason: stored._tag === "Missing" ? "missing" : truncate(stored.detail) })
          )
          yield* exclusive(volumeId, removeVolumeDir("list", volumeId))
        }
        return volumes
      })

      const write = Effect.fnUntraced(function*(metadata: VolumeMetadata) {
        const volumeId = metadata.volumeId
        const json = yield* encodeJson(metadata).pipe(
          Effect.mapError((error) => new VolumeStoreError({ operation: "write", volumeId, detail: truncate(error.message), cause: error }))
        )
        yield* exclusive(volumeId, Effect.gen(function*() {
          yield* ensureVolumeDir("write", volumeId)
          const tmp = path.join(volumeDirOf(volumeId), METADATA_TMP_FILE)
          yield* io("write", volumeId)(Effect.gen(function*() {
            yield* Effect.scoped(Effect.gen(function*() {
              const file = yield* fs.open(tmp, { flag: "w", mode: METADATA_MODE })
              yield* file.writeAll(new TextEncoder().encode(json))
              yield* fs.chmod(tmp, METADATA_MODE)
              // On a disk-backed data root the rename may otherwise reach the disk before the data.
              yield* file.sync
            }))
            yield* fs.rename(tmp, metadataPathOf(volumeId))
          }))
        }))
      })

      return makeStore(root, {
        list,
        read,
        write,
        writeFiles: (volumeId, files, gid) =>
          exclusive(
            volumeId,
            Effect.andThen(ensureVolumeDir("writeFiles", volumeId), publish(volumeId, dataDirOf(volumeId), files, gid)).pipe(
              Effect.provide(services)
            )
          ),
        readFile: (volumeId, name) =>
          io("readFile", volumeId)(orMissing(fs.readFileString(path.join(dataDirOf(volumeId), name)))),
        dataDir: dataDirOf,
        remove: (volumeId) =>
          exclusive(volumeId, removeVolumeDir("remove", volumeId)).pipe(
            Effect.ensuring(dropLock(volumeId))
          )
      })
    })
  )

/** `layer` on Node's file system: what the driver runs. */
export const layerFileSystem = (root: string): Layer.Layer<VolumeStore> =>
  layer(root).pipe(Layer.provide([NodeFileSystem.layer, NodePath.layer]))

/**
 * VolumeStore implementations: real files under `<data-root>/inmemfs` and an in-memory twin.
 *
 * Owns: the on-disk layout `<root>/<volumeId>/metadata.json` + `<root>/<volumeId>/data/`, the
 * kubelet AtomicWriter model for the pod-visible files (payload in a fresh `..<timestamp>.<random>`
 * directory, `..data_tmp` symlink renamed over `..data`, user-visible names are symlinks to
 * `..data/<name>`), file modes and the fs-group gid, clean-up of crash left-overs, and refusing
 * volume ids or file names that are not a single safe path segment.
 * Does not own: mounting the tmpfs or bind mounts (Mounter), deciding what to write or when (the
 * driver), validating the fs-group attribute for the user (the driver; here only a range check).
 *
 * Both layers pass the one contract suite in `test/unit/layers/VolumeStore.test.ts`.
 */
import * as fsp from "node:fs/promises"
import * as nodePath from "node:path"
import { Context, DateTime, Effect, Layer, Predicate, PubSub, Redacted, Ref, Semaphore } from "effect"
import { MAX_GID } from "../domain/PublishRequest.ts"
import { decodeJson, encodeJson, type VolumeMetadata } from "../domain/VolumeMetadata.ts"
import { VolumeStore, VolumeStoreError, type VolumeFile, type VolumeStoreShape } from "../services/VolumeStore.ts"

/** metadata.json holds pod identity details and is read only by the driver (root), as in csi-lib. */
const METADATA_MODE = 0o600
/** Only the driver walks a volume directory; pods see `data/` through the bind mount, never this. */
const VOLUME_DIR_MODE = 0o700
/** The bind-mount source: owner and fs-group may list it, nobody writes (root bypasses), as csi-lib. */
const DATA_DIR_MODE = 0o550
/**
 * A published payload directory. kubelet uses 0755; the world bits are dropped because the fs-group
 * is the intended reader and `data/` (0550) already shuts others out.
 */
const PAYLOAD_DIR_MODE = 0o750
/** Files are created owner-only and get their final mode once written, so nobody reads a partial file. */
const STAGING_FILE_MODE = 0o600
/** Largest file mode a payload may ask for: permission bits only, no setuid/setgid/sticky. */
const MAX_FILE_MODE = 0o777
/** NAME_MAX on Linux file systems (tmpfs included), in bytes. */
const NAME_MAX_BYTES = 255
/** Schema error texts can be long; the first part names the offending field. */
const DETAIL_MAX_CHARS = 200

const METADATA_FILE = "metadata.json"
/** Fixed name is safe: every mutation of a volume holds its lock, and a left-over is simply overwritten. */
const METADATA_TMP_FILE = ".metadata.json.tmp"
const DATA_DIR = "data"
const DATA_LINK = "..data"
const DATA_LINK_TMP = "..data_tmp"

// ---------------------------------------------------------------------------------------------
// Validation shared by both layers

/** Why `segment` is not a single safe path segment, or undefined when it is one. */
export const unsafeSegmentReason = (segment: string): string | undefined => {
  if (segment.length === 0) return "is empty"
  if (segment === "." || segment === "..") return "is a relative path component"
  if (segment.includes("/")) return "contains '/'"
  if (segment.includes("\0")) return "contains NUL"
  if (Buffer.byteLength(segment, "utf8") > NAME_MAX_BYTES) return `is longer than ${NAME_MAX_BYTES} bytes`
  return undefined
}

const validateVolumeId = (operation: string, volumeId: string): Effect.Effect<void, VolumeStoreError> => {
  const reason = unsafeSegmentReason(volumeId)
  return reason === undefined
    ? Effect.void
    : Effect.fail(new VolumeStoreError({ operation, volumeId, detail: `volume id ${reason}` }))
}

/** Why `name` cannot be a pod-visible file name; names starting with `..` belong to the writer. */
const unsafeFileNameReason = (name: string): string | undefined =>
  unsafeSegmentReason(name) ?? (name.startsWith("..") ? "starts with '..' (reserved for the atomic writer)" : undefined)

const validateFileName = (operation: string, volumeId: string, name: string): Effect.Effect<void, VolumeStoreError> => {
  const reason = unsafeFileNameReason(name)
  return reason === undefined
    ? Effect.void
    : Effect.fail(new VolumeStoreError({ operation, volumeId, detail: `file name ${JSON.stringify(name)} ${reason}` }))
}

const validatePayload = Effect.fnUntraced(function*(
  volumeId: string,
  files: ReadonlyArray<VolumeFile>,
  gid: number | undefined
) {
  const fail = (detail: string) => new VolumeStoreError({ operation: "writeFiles", volumeId, detail })
  const seen = new Set<string>()
  for (const file of files) {
    yield* validateFileName("writeFiles", volumeId, file.name)
    if (seen.has(file.name)) return yield* fail(`file name ${JSON.stringify(file.name)} appears twice`)
    seen.add(file.name)
    if (!Number.isInteger(file.mode) || file.mode < 0 || file.mode > MAX_FILE_MODE) {
      return yield* fail(`mode of ${JSON.stringify(file.name)} must be an integer in 0..0o777`)
    }
  }
  if (gid !== undefined && (!Number.isInteger(gid) || gid < 0 || gid > MAX_GID)) {
    return yield* fail(`gid must be an integer in 0..${MAX_GID}`)
  }
})

/** The content to write; Redacted content is unwrapped only here, at the point of writing. */
const contentOf = (file: VolumeFile): string =>
  Predicate.isString(file.content) ? file.content : Redacted.value(file.content)

const truncate = (text: string): string =>
  text.length > DETAIL_MAX_CHARS ? `${text.slice(0, DETAIL_MAX_CHARS)}…` : text

/** What a layer implements; the shared front validates every id, name and payload first. */
type Backend = Omit<VolumeStoreShape, "root">

/**
 * The service both layers expose: validation, span names and the `dataDir` guard in one place, so
 * the two cannot drift apart. `dataDir` is a plain function in the contract, so an unsafe id cannot
 * fail in the error channel; it throws (a defect) rather than answer a path outside the root.
 */
const makeStore = (root: string, backend: Backend): VolumeStoreShape =>
  VolumeStore.of({
    root,
    list: backend.list.pipe(Effect.withSpan("VolumeStore.list")),
    read: Effect.fn("VolumeStore.read")(function*(volumeId: string) {
      yield* validateVolumeId("read", volumeId)
      return yield* backend.read(volumeId)
    }),
    write: Effect.fn("VolumeStore.write")(function*(metadata: VolumeMetadata) {
      yield* validateVolumeId("write", metadata.volumeId)
      yield* backend.write(metadata)
    }),
    writeFiles: Effect.fn("VolumeStore.writeFiles")(function*(
      volumeId: string,
      files: ReadonlyArray<VolumeFile>,
      gid: number | undefined
    ) {
      yield* validateVolumeId("writeFiles", volumeId)
      yield* validatePayload(volumeId, files, gid)
      yield* backend.writeFiles(volumeId, files, gid)
    }),
    readFile: Effect.fn("VolumeStore.readFile")(function*(volumeId: string, name: string) {
      yield* validateVolumeId("readFile", volumeId)
      yield* validateFileName("readFile", volumeId, name)
      return yield* backend.readFile(volumeId, name)
    }),
    dataDir: (volumeId) => {
      const reason = unsafeSegmentReason(volumeId)
      if (reason !== undefined) {
        throw new VolumeStoreError({ operation: "dataDir", volumeId, detail: `volume id ${reason}` })
      }
      return backend.dataDir(volumeId)
    },
    remove: Effect.fn("VolumeStore.remove")(function*(volumeId: string) {
      yield* validateVolumeId("remove", volumeId)
      yield* backend.remove(volumeId)
    })
  })

// ---------------------------------------------------------------------------------------------
// File system layer

const errnoCode = (cause: unknown): string | undefined =>
  Predicate.hasProperty(cause, "code") && Predicate.isString(cause.code) ? cause.code : undefined

const describe = (cause: unknown): string => truncate(cause instanceof Error ? cause.message : String(cause))

const io = <A>(operation: string, volumeId: string, run: () => Promise<A>): Effect.Effect<A, VolumeStoreError> =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new VolumeStoreError({ operation, volumeId, detail: describe(cause) })
  })

/** Like `io`, but a missing path (ENOENT) is the value undefined instead of an error. */
const ioUnlessMissing = <A>(
  operation: string,
  volumeId: string,
  run: () => Promise<A>
): Effect.Effect<A | undefined, VolumeStoreError> =>
  io(operation, volumeId, () =>
    run().catch((cause: unknown) => {
      if (errnoCode(cause) === "ENOENT") return undefined
      throw cause
    }))

const pad = (value: number, width = 2): string => String(value).padStart(width, "0")

/** `..yyyy_mm_dd_hh_mm_ss.` in UTC from Effect's Clock; mkdtemp appends the random part. */
const payloadDirPrefix: Effect.Effect<string> = Effect.map(DateTime.now, (now) => {
  const p = DateTime.toPartsUtc(now)
  return `..${pad(p.year, 4)}_${pad(p.month)}_${pad(p.day)}_${pad(p.hour)}_${pad(p.minute)}_${pad(p.second)}.`
})

type StoredMetadata =
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Invalid"; readonly detail: string }
  | { readonly _tag: "Valid"; readonly metadata: VolumeMetadata }

/** A `..`-entry that a publish may have left behind: anything except the live `..data` link. */
const isWriterEntry = (name: string): boolean => name.startsWith("..") && name !== DATA_LINK

/**
 * The store on a real file system rooted at `root` (`<data-root>/inmemfs`). Mutations of one volume
 * are serialised by that volume's lock, which makes its fixed temporary names and left-over clean-up
 * race-free; different volumes never wait for each other (a burst of 110 publishes would otherwise
 * queue behind one lock). Reads take no lock: the `..data` swap is what keeps readers consistent.
 */
export const layerFileSystem = (root: string): Layer.Layer<VolumeStore> =>
  Layer.effect(
    VolumeStore,
    Effect.gen(function*() {
      // One lock per volume, created on first use and dropped when the volume is removed (callers
      // never mutate a volume after removing it: unpublish is its last operation).
      const locks = new Map<string, Semaphore.Semaphore>()
      const lockOf = (volumeId: string): Semaphore.Semaphore => {
        let lock = locks.get(volumeId)
        if (lock === undefined) {
          lock = Semaphore.makeUnsafe(1)
          locks.set(volumeId, lock)
        }
        return lock
      }
      const exclusive = <A, E, R>(volumeId: string, effect: Effect.Effect<A, E, R>) => lockOf(volumeId).withPermit(effect)
      const volumeDirOf = (volumeId: string) => nodePath.join(root, volumeId)
      const dataDirOf = (volumeId: string) => nodePath.join(root, volumeId, DATA_DIR)
      const metadataPathOf = (volumeId: string) => nodePath.join(root, volumeId, METADATA_FILE)

      const ensureVolumeDir = (operation: string, volumeId: string) =>
        io(operation, volumeId, async () => {
          await fsp.mkdir(root, { recursive: true, mode: VOLUME_DIR_MODE })
          await fsp.mkdir(volumeDirOf(volumeId), { recursive: true, mode: VOLUME_DIR_MODE })
          await fsp.chmod(volumeDirOf(volumeId), VOLUME_DIR_MODE)
        })

      /** The stored record, telling a missing metadata.json apart from one that does not decode. */
      const readStored = Effect.fnUntraced(function*(
        operation: string,
        volumeId: string
      ): Effect.fn.Return<StoredMetadata, VolumeStoreError> {
        const text = yield* ioUnlessMissing(operation, volumeId, () => fsp.readFile(metadataPathOf(volumeId), "utf8"))
        if (text === undefined) return { _tag: "Missing" }
        return yield* decodeJson(text).pipe(
          Effect.map((metadata): StoredMetadata =>
            metadata.volumeId === volumeId
              ? { _tag: "Valid", metadata }
              : { _tag: "Invalid", detail: "metadata.json names another volume" }
          ),
          Effect.catch((error) =>
            Effect.succeed<StoredMetadata>({ _tag: "Invalid", detail: `metadata.json does not decode: ${error.message}` })
          )
        )
      })

      const read = Effect.fnUntraced(function*(volumeId: string) {
        const stored = yield* readStored("read", volumeId)
        switch (stored._tag) {
          case "Missing":
            return undefined
          case "Invalid":
            return yield* new VolumeStoreError({ operation: "read", volumeId, detail: truncate(stored.detail) })
          case "Valid":
            return stored.metadata
        }
      })

      const list = Effect.gen(function*() {
        const entries = yield* ioUnlessMissing("list", "*", () => fsp.readdir(root, { withFileTypes: true }))
        const volumes: Array<VolumeMetadata> = []
        for (const entry of entries ?? []) {
          if (!entry.isDirectory()) continue
          const volumeId = entry.name
          const stored = yield* readStored("list", volumeId)
          if (stored._tag === "Valid") {
            volumes.push(stored.metadata)
            continue
          }
          yield* Effect.logWarning("removing volume directory without valid metadata.json").pipe(
            Effect.annotateLogs({ volumeId, reason: stored._tag === "Missing" ? "missing" : truncate(stored.detail) })
          )
          yield* exclusive(volumeId, io("list", volumeId, () => fsp.rm(volumeDirOf(volumeId), { recursive: true, force: true })))
        }
        return volumes
      })

      const write = Effect.fnUntraced(function*(metadata: VolumeMetadata) {
        const volumeId = metadata.volumeId
        const json = yield* encodeJson(metadata).pipe(
          Effect.mapError((error) => new VolumeStoreError({ operation: "write", volumeId, detail: truncate(error.message) }))
        )
        yield* exclusive(volumeId, Effect.gen(function*() {
          yield* ensureVolumeDir("write", volumeId)
          const tmp = nodePath.join(volumeDirOf(volumeId), METADATA_TMP_FILE)
          yield* io("write", volumeId, async () => {
            const handle = await fsp.open(tmp, "w", METADATA_MODE)
            try {
              await handle.writeFile(json, "utf8")
              await handle.chmod(METADATA_MODE)
              // On a disk-backed data root the rename may otherwise reach the disk before the data.
              await handle.sync()
            } finally {
              await handle.close()
            }
            await fsp.rename(tmp, metadataPathOf(volumeId))
          })
        }))
      })

      /** True when `payloadDir` already holds exactly this payload with these modes and gid. */
      const holdsPayload = Effect.fnUntraced(function*(
        volumeId: string,
        payloadDir: string,
        files: ReadonlyArray<VolumeFile>,
        gid: number | undefined
      ) {
        const present = yield* ioUnlessMissing("writeFiles", volumeId, () => fsp.readdir(payloadDir))
        if (present === undefined || present.length !== files.length) return false
        for (const file of files) {
          const path = nodePath.join(payloadDir, file.name)
          const stat = yield* ioUnlessMissing("writeFiles", volumeId, () => fsp.lstat(path))
          if (stat === undefined || !stat.isFile() || (stat.mode & 0o7777) !== file.mode) return false
          if (gid !== undefined && stat.gid !== gid) return false
          const bytes = yield* ioUnlessMissing("writeFiles", volumeId, () => fsp.readFile(path))
          if (bytes === undefined || !bytes.equals(Buffer.from(contentOf(file), "utf8"))) return false
        }
        return true
      })

      /** Writes the payload into `staged` with final modes and group; nothing points at it yet. */
      const stage = (volumeId: string, staged: string, files: ReadonlyArray<VolumeFile>, gid: number | undefined) =>
        io("writeFiles", volumeId, async () => {
          for (const file of files) {
            const path = nodePath.join(staged, file.name)
            await fsp.writeFile(path, contentOf(file), { encoding: "utf8", mode: STAGING_FILE_MODE, flag: "wx" })
            await fsp.chmod(path, file.mode)
            if (gid !== undefined) await fsp.chown(path, -1, gid)
          }
          await fsp.chmod(staged, PAYLOAD_DIR_MODE)
          if (gid !== undefined) await fsp.chown(staged, -1, gid)
        })

      const publish = Effect.fnUntraced(function*(
        volumeId: string,
        files: ReadonlyArray<VolumeFile>,
        gid: number | undefined
      ) {
        const op = "writeFiles"
        const dir = dataDirOf(volumeId)
        yield* ensureVolumeDir(op, volumeId)
        yield* io(op, volumeId, async () => {
          await fsp.mkdir(dir, { recursive: true, mode: DATA_DIR_MODE })
          await fsp.chmod(dir, DATA_DIR_MODE)
          if (gid !== undefined) await fsp.chown(dir, -1, gid)
        })

        const linked = yield* ioUnlessMissing(op, volumeId, () => fsp.readlink(nodePath.join(dir, DATA_LINK)))
        const current = linked !== undefined && isWriterEntry(linked) && unsafeSegmentReason(linked) === undefined
          ? linked
          : undefined
        const entries = yield* io(op, volumeId, () => fsp.readdir(dir))

        // A crash mid-publish leaves a `..data_tmp` link or an unreferenced payload directory.
        yield* io(op, volumeId, async () => {
          for (const name of entries) {
            if (isWriterEntry(name) && name !== current) {
              await fsp.rm(nodePath.join(dir, name), { recursive: true, force: true })
            }
          }
        })

        const upToDate = current !== undefined && (yield* holdsPayload(volumeId, nodePath.join(dir, current), files, gid))
        if (!upToDate) {
          const prefix = yield* payloadDirPrefix
          const staged = yield* io(op, volumeId, () => fsp.mkdtemp(nodePath.join(dir, prefix)))
          yield* Effect.andThen(
            stage(volumeId, staged, files, gid),
            io(op, volumeId, async () => {
              const tmpLink = nodePath.join(dir, DATA_LINK_TMP)
              await fsp.symlink(nodePath.basename(staged), tmpLink)
              await fsp.rename(tmpLink, nodePath.join(dir, DATA_LINK))
            })
          ).pipe(
            Effect.onError(() => Effect.ignore(io(op, volumeId, () => fsp.rm(staged, { recursive: true, force: true }))))
          )
        }

        // User-visible names: also repaired on an up-to-date payload (a crash after the swap).
        const wanted = new Set(files.map((file) => file.name))
        yield* io(op, volumeId, async () => {
          for (const name of wanted) {
            const path = nodePath.join(dir, name)
            const target = `${DATA_LINK}/${name}`
            const existing = await fsp.readlink(path).catch(() => undefined)
            if (existing === target) continue
            await fsp.rm(path, { recursive: true, force: true })
            await fsp.symlink(target, path)
          }
          for (const name of entries) {
            if (!name.startsWith("..") && !wanted.has(name)) {
              await fsp.rm(nodePath.join(dir, name), { recursive: true, force: true })
            }
          }
          if (!upToDate && current !== undefined) {
            await fsp.rm(nodePath.join(dir, current), { recursive: true, force: true })
          }
        })
      })

      return makeStore(root, {
        list,
        read,
        write,
        writeFiles: (volumeId, files, gid) => exclusive(volumeId, publish(volumeId, files, gid)),
        readFile: (volumeId, name) =>
          ioUnlessMissing("readFile", volumeId, () => fsp.readFile(nodePath.join(dataDirOf(volumeId), name), "utf8")),
        dataDir: dataDirOf,
        remove: (volumeId) =>
          exclusive(
            volumeId,
            io("remove", volumeId, () => fsp.rm(volumeDirOf(volumeId), { recursive: true, force: true }))
          ).pipe(Effect.ensuring(Effect.sync(() => locks.delete(volumeId))))
      })
    })
  )

// ---------------------------------------------------------------------------------------------
// Memory layer

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

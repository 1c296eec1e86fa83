/**
 * The part of the VolumeStore both layers share: validating every volume id, file name, mode and
 * gid, span names, and the `dataDir` guard. Keeping it in one place means the file-system layer and
 * the memory twin refuse exactly the same input.
 *
 * Owns: what counts as a single safe path segment, which names belong to the atomic writer (`..`),
 * the mode and gid ranges. Does not own: any I/O (`AtomicWriter.ts`, `../VolumeStore.ts`,
 * `Memory.ts`).
 */
import { Effect, Predicate, Redacted } from "effect"
import { MAX_GID } from "../../domain/PublishRequest.ts"
import type { VolumeMetadata } from "../../domain/VolumeMetadata.ts"
import { VolumeStore, VolumeStoreError, type VolumeFile, type VolumeStoreShape } from "../../services/VolumeStore.ts"

/** Largest file mode a payload may ask for: permission bits only, no setuid/setgid/sticky. */
const MAX_FILE_MODE = 0o777
/** NAME_MAX on Linux file systems (tmpfs included), in bytes. */
const NAME_MAX_BYTES = 255
/** Schema and system error texts can be long; the first part names the offending field or path. */
const DETAIL_MAX_CHARS = 200

export const METADATA_FILE = "metadata.json"
export const DATA_DIR = "data"
/** The writer's live link: `data/..data` → the current payload directory. */
export const DATA_LINK = "..data"

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
export const contentOf = (file: VolumeFile): string =>
  Predicate.isString(file.content) ? file.content : Redacted.value(file.content)

export const truncate = (text: string): string =>
  text.length > DETAIL_MAX_CHARS ? `${text.slice(0, DETAIL_MAX_CHARS)}…` : text

/** What a layer implements; the shared front validates every id, name and payload first. */
export type Backend = Omit<VolumeStoreShape, "root">

/**
 * The service both layers expose. `dataDir` is a plain function in the contract, so an unsafe id
 * cannot fail in the error channel; it throws (a defect) rather than answer a path outside the root.
 */
export const makeStore = (root: string, backend: Backend): VolumeStoreShape =>
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

/**
 * The kubelet AtomicWriter model for the pod-visible files of one volume, on Effect's FileSystem:
 * the payload goes into a fresh `..<timestamp>.<random>` directory, a `..data_tmp` symlink to it is
 * renamed over `..data`, and every user-visible name is a symlink to `..data/<name>`. A reader that
 * opens `tls.crt` sees the old set or the new set, never a mix.
 *
 * Owns: that layout, file and directory modes, the fs-group gid on what it writes, skipping an
 * identical rewrite, and clean-up of a crash's left-overs. Does not own: locking (the caller holds
 * the volume's lock), validation (`Front.ts`), the volume directory and metadata (`../VolumeStore.ts`).
 */
import { DateTime, Effect, FileSystem, Path } from "effect"
import type { PlatformError } from "effect"
import { VolumeStoreError, type VolumeFile } from "../../services/VolumeStore.ts"
import { platformText } from "../PlatformText.ts"
import { contentOf, DATA_LINK, truncate, unsafeSegmentReason } from "./Front.ts"

/** The bind-mount source: owner and fs-group may list it, nobody writes (root bypasses), as csi-lib. */
const DATA_DIR_MODE = 0o550
/**
 * A published payload directory. kubelet uses 0755; the world bits are dropped because the fs-group
 * is the intended reader and `data/` (0550) already shuts others out.
 */
const PAYLOAD_DIR_MODE = 0o750
/** Files are created owner-only and get their final mode once written, so nobody reads a partial file. */
const STAGING_FILE_MODE = 0o600
/** chown(2) leaves the owner as it is when given -1; only the group changes. */
const KEEP_OWNER = -1
const DATA_LINK_TMP = "..data_tmp"

// ---------------------------------------------------------------------------------------------
// FileSystem errors → VolumeStoreError (shared with the live layer)


/** Runs a FileSystem step; a failure becomes a VolumeStoreError naming the operation and volume. */
export const io = (operation: string, volumeId: string) =>
<A, R>(step: Effect.Effect<A, PlatformError.PlatformError, R>): Effect.Effect<A, VolumeStoreError, R> =>
  Effect.mapError(step, (error) => new VolumeStoreError({ operation, volumeId, detail: truncate(platformText(error)), cause: error }))

/** A missing path (ENOENT) is the value undefined instead of an error. */
export const orMissing = <A, R>(
  step: Effect.Effect<A, PlatformError.PlatformError, R>
): Effect.Effect<A | undefined, PlatformError.PlatformError, R> =>
  Effect.catchIf(step, (error) => error.reason._tag === "NotFound", () => Effect.succeed(undefined))

/** A `..`-entry that a publish may have left behind: anything except the live `..data` link. */
const isWriterEntry = (name: string): boolean => name.startsWith("..") && name !== DATA_LINK

const pad = (value: number, width = 2): string => String(value).padStart(width, "0")

/** `..yyyy_mm_dd_hh_mm_ss.` in UTC from Effect's Clock; mkdtemp appends the random part. */
const payloadDirPrefix: Effect.Effect<string> = Effect.map(DateTime.now, (now) => {
  const p = DateTime.toPartsUtc(now)
  return `..${pad(p.year, 4)}_${pad(p.month)}_${pad(p.day)}_${pad(p.hour)}_${pad(p.minute)}_${pad(p.second)}.`
})

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b))

/**
 * Publishes exactly `files` into `dir` (the volume's `data/`) in one atomic swap. The caller holds
 * the volume's lock, so the fixed `..data_tmp` name and the left-over clean-up cannot race.
 */
export const publish = Effect.fnUntraced(function*(
  volumeId: string,
  dir: string,
  files: ReadonlyArray<VolumeFile>,
  gid: number | undefined
) {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const run = io("writeFiles", volumeId)
  const removeAll = (target: string) => fs.remove(target, { recursive: true, force: true })
  const setGroup = (target: string) => gid === undefined ? Effect.void : fs.chown(target, KEEP_OWNER, gid)

  yield* run(Effect.gen(function*() {
    yield* fs.makeDirectory(dir, { recursive: true, mode: DATA_DIR_MODE })
    yield* fs.chmod(dir, DATA_DIR_MODE)
    yield* setGroup(dir)
  }))

  const linked = yield* run(orMissing(fs.readLink(path.join(dir, DATA_LINK))))
  const current = linked !== undefined && isWriterEntry(linked) && unsafeSegmentReason(linked) === undefined
    ? linked
    : undefined
  const entries = yield* run(fs.readDirectory(dir))

  // A crash mid-publish leaves a `..data_tmp` link or an unreferenced payload directory.
  yield* run(Effect.forEach(entries, (name) =>
    isWriterEntry(name) && name !== current ? removeAll(path.join(dir, name)) : Effect.void, { discard: true }))

  /** True when the current payload directory already holds exactly these files, modes and gid. */
  const holdsPayload = Effect.fnUntraced(function*(payloadDir: string) {
    const present = yield* orMissing(fs.readDirectory(payloadDir))
    if (present === undefined || present.length !== files.length) return false
    for (const file of files) {
      const at = path.join(payloadDir, file.name)
      const info = yield* orMissing(fs.lstat(at))
      if (info === undefined || info.type !== "File" || (info.mode & 0o7777) !== file.mode) return false
      if (gid !== undefined && (info.gid._tag === "None" || info.gid.value !== gid)) return false
      const bytes = yield* orMissing(fs.readFile(at))
      if (bytes === undefined || !sameBytes(bytes, Buffer.from(contentOf(file), "utf8"))) return false
    }
    return true
  })
  const upToDate = current !== undefined && (yield* run(holdsPayload(path.join(dir, current))))

  if (!upToDate) {
    const staged = yield* run(fs.makeTempDirectory({ directory: dir, prefix: yield* payloadDirPrefix }))
    // The payload with final modes and group; nothing points at it until the rename.
    const stage = Effect.gen(function*() {
      for (const file of files) {
        const at = path.join(staged, file.name)
        yield* fs.writeFileString(at, contentOf(file), { mode: STAGING_FILE_MODE, flag: "wx" })
        yield* fs.chmod(at, file.mode)
        yield* setGroup(at)
      }
      yield* fs.chmod(staged, PAYLOAD_DIR_MODE)
      yield* setGroup(staged)
      const tmpLink = path.join(dir, DATA_LINK_TMP)
      yield* fs.symlink(path.basename(staged), tmpLink)
      yield* fs.rename(tmpLink, path.join(dir, DATA_LINK))
    })
    yield* run(stage).pipe(Effect.onError(() => Effect.ignore(removeAll(staged))))
  }

  // User-visible names: also repaired on an up-to-date payload (a crash after the swap).
  const wanted = new Set(files.map((file) => file.name))
  yield* run(Effect.gen(function*() {
    for (const name of wanted) {
      const at = path.join(dir, name)
      const target = `${DATA_LINK}/${name}`
      const existing = yield* fs.readLink(at).pipe(Effect.orElseSucceed(() => undefined))
      if (existing === target) continue
      yield* removeAll(at)
      yield* fs.symlink(target, at)
    }
    for (const name of entries) {
      if (name.startsWith("..") || wanted.has(name)) continue
      // A unix socket is the volume's Workload API endpoint (its server owns it), not a file of the set.
      const isSocket = yield* fs.stat(path.join(dir, name)).pipe(Effect.map((info) => info.type === "Socket"), Effect.orElseSucceed(() => false))
      if (!isSocket) yield* removeAll(path.join(dir, name))
    }
    if (!upToDate && current !== undefined) yield* removeAll(path.join(dir, current))
  }))
})

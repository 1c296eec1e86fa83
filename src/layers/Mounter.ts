/**
 * Mounter implementations: Linux (mount(8), umount(8), /proc/self/mountinfo) and a recorded table.
 *
 * Owns: the exact mount commands and options (tmpfs size cap, read-only bind in two steps with a
 * check that the result really is read-only), deciding "is a mount point" from mountinfo, and
 * turning command failures into MountError with a short stderr summary.
 * Does not own: which paths get mounted or whether to skip an existing mount (the driver decides;
 * mounting over a mount point stacks a new mount on Linux and fails loudly in memory), file
 * contents (VolumeStore).
 */
import { execFile } from "node:child_process"
import * as fsp from "node:fs/promises"
import * as nodePath from "node:path"
import { promisify } from "node:util"
import { Context, Effect, Layer, Predicate, Ref } from "effect"
import { Mounter, MountError, type MounterShape, type TargetState } from "../services/Mounter.ts"

/**
 * Cap for the driver's tmpfs, which holds every volume on the node. Per volume: tls.crt (chain,
 * ~3 KiB), tls.key (~0.3 KiB), ca.crt (a bundle; budget 64 KiB) and metadata.json (~1 KiB); tmpfs
 * rounds each file up to 4 KiB pages and a swap briefly holds two payloads, so ≈ 2 × 72 + 4 ≈ 150 KiB.
 * At kubelet's default 110 pods that is ≈ 16 MiB; 64 MiB leaves 4× headroom for larger bundles or a
 * raised max-pods while keeping a runaway writer far from the node's memory (the kernel default is
 * half of RAM). The pages are charged to the driver container's memory limit only when used.
 */
export const TMPFS_SIZE = "64m"
/** The certificate files never need set-uid, device nodes or execution. */
const HARDENING_OPTIONS = "nosuid,nodev,noexec"
/** Bind-mount targets are directories the kubelet expects the driver to create (csi-lib: MkdirAll). */
const TARGET_DIR_MODE = 0o750
/** tmpfs root mode range: permission bits plus set-gid/sticky; nothing else is a mode. */
const MAX_MODE = 0o7777
/**
 * mount(8) of a tmpfs or bind mount is local and takes milliseconds; the cap only stops a wedged
 * mount namespace from holding a publish forever (kubelet gives the whole CSI call 2 minutes).
 */
const COMMAND_TIMEOUT = "30 seconds"
/** Enough of stderr to carry mount(8)'s one-line reason. */
const STDERR_MAX_CHARS = 300
const MOUNTINFO = "/proc/self/mountinfo"

// ---------------------------------------------------------------------------------------------
// mountinfo

/** One line of /proc/<pid>/mountinfo (proc(5)), with octal escapes decoded. */
export interface MountInfoEntry {
  readonly mountId: number
  readonly parentId: number
  /** Root of the mount within its file system (for a bind mount: the source directory). */
  readonly root: string
  readonly mountPoint: string
  /** Per-mount options, e.g. `ro`, `nosuid`. */
  readonly mountOptions: ReadonlyArray<string>
  readonly fsType: string
  readonly source: string
  /** Per-superblock options, e.g. `size=65536k`, `mode=700`. */
  readonly superOptions: ReadonlyArray<string>
}

/** The kernel escapes space, tab, newline and backslash as `\ooo` in paths (`\040` is a space). */
const decodeOctal = (field: string): string =>
  field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)))

const parseLine = (line: string): MountInfoEntry | undefined => {
  const fields = line.split(" ")
  const separator = fields.indexOf("-", 6)
  if (separator === -1 || fields.length < separator + 4) return undefined
  const [mountId, parentId, , root, mountPoint, mountOptions] = fields
  const [fsType, source, superOptions] = fields.slice(separator + 1)
  if (
    mountId === undefined || parentId === undefined || root === undefined || mountPoint === undefined ||
    mountOptions === undefined || fsType === undefined || source === undefined || superOptions === undefined
  ) return undefined
  const id = Number(mountId)
  const parent = Number(parentId)
  if (!Number.isInteger(id) || !Number.isInteger(parent)) return undefined
  return {
    mountId: id,
    parentId: parent,
    root: decodeOctal(root),
    mountPoint: decodeOctal(mountPoint),
    mountOptions: mountOptions.split(","),
    fsType: decodeOctal(fsType),
    source: decodeOctal(source),
    superOptions: superOptions.split(",")
  }
}

/**
 * Parses /proc/<pid>/mountinfo text: `id parent major:minor root mount-point options [optional
 * fields…] - fstype source super-options`. Lines that do not have that shape are skipped.
 */
export const parseMountInfo = (text: string): ReadonlyArray<MountInfoEntry> =>
  text.split("\n").flatMap((line) => {
    const entry = line.length === 0 ? undefined : parseLine(line)
    return entry === undefined ? [] : [entry]
  })

// ---------------------------------------------------------------------------------------------
// Linux layer

const execFileAsync = promisify(execFile)

const errnoCode = (cause: unknown): string | undefined =>
  Predicate.hasProperty(cause, "code") && Predicate.isString(cause.code) ? cause.code : undefined

const summarise = (command: string, cause: unknown): string => {
  if (errnoCode(cause) === "ENOENT") return `${command} not found on PATH`
  const stderr = Predicate.hasProperty(cause, "stderr") && Predicate.isString(cause.stderr) ? cause.stderr.trim() : ""
  const exit = Predicate.hasProperty(cause, "code") && Predicate.isNumber(cause.code) ? ` exited ${cause.code}` : ""
  const reason = stderr.length > 0 ? stderr.replace(/\s+/g, " ") : cause instanceof Error ? cause.message : String(cause)
  const text = `${command}${exit}: ${reason}`
  return text.length > STDERR_MAX_CHARS ? `${text.slice(0, STDERR_MAX_CHARS)}…` : text
}

const run = (operation: string, path: string, command: string, args: ReadonlyArray<string>) =>
  Effect.tryPromise({
    try: (signal) => execFileAsync(command, [...args], { signal }),
    catch: (cause) => new MountError({ operation, path, detail: summarise(command, cause) })
  }).pipe(
    Effect.timeoutOrElse({
      duration: COMMAND_TIMEOUT,
      orElse: () => Effect.fail(new MountError({ operation, path, detail: `${command} did not finish within ${COMMAND_TIMEOUT}` }))
    }),
    Effect.asVoid
  )

const fsStep = <A>(operation: string, path: string, step: () => Promise<A>) =>
  Effect.tryPromise({
    try: step,
    catch: (cause) => new MountError({ operation, path, detail: cause instanceof Error ? cause.message : String(cause) })
  })

const readMountInfo = (operation: string, path: string) =>
  Effect.map(fsStep(operation, path, () => fsp.readFile(MOUNTINFO, "utf8")), parseMountInfo)

/**
 * The path as mountinfo spells it, or undefined when it does not exist. A path that exists but
 * cannot be resolved (e.g. a mount whose backing went away) is compared as given, made absolute.
 */
const resolveMountPath = (operation: string, path: string) =>
  fsStep(operation, path, () =>
    fsp.realpath(path).catch((cause: unknown) => {
      const code = errnoCode(cause)
      if (code === "ENOENT" || code === "ENOTDIR") return undefined
      return nodePath.resolve(path)
    }))

/** The topmost mount at `path` (later mountinfo lines are mounted later), if any. */
const mountAt = Effect.fnUntraced(function*(operation: string, path: string) {
  const resolved = yield* resolveMountPath(operation, path)
  if (resolved === undefined) return undefined
  const table = yield* readMountInfo(operation, path)
  return table.findLast((entry) => entry.mountPoint === resolved)
})

const validateMode = (path: string, mode: number): Effect.Effect<void, MountError> =>
  Number.isInteger(mode) && mode >= 0 && mode <= MAX_MODE
    ? Effect.void
    : Effect.fail(new MountError({ operation: "mountTmpfs", path, detail: "mode must be an integer in 0..0o7777" }))

const octal = (mode: number): string => mode.toString(8).padStart(4, "0")

const refused = (reason: string): TargetState => ({ _tag: "Refused", reason })

/**
 * lstat from `root` down: a symlink anywhere below the root would let a bind land somewhere else
 * (mount(8) follows it), and a file or a non-empty directory at the target would be hidden by the
 * mount. The kubelet's own layout never has either.
 */
const inspectTargetLinux = Effect.fn("Mounter.inspectTarget")(function*(root: string, target: string) {
  const operation = "inspectTarget"
  const base = nodePath.resolve(root)
  const full = nodePath.resolve(target)
  const rel = nodePath.relative(base, full)
  if (rel === "" || rel.startsWith("..") || nodePath.isAbsolute(rel)) return refused(`${target} is not below ${root}`)
  const lstat = (p: string) =>
    fsStep(operation, p, () =>
      fsp.lstat(p).catch((cause: unknown) => {
        if (errnoCode(cause) === "ENOENT") return undefined
        throw cause
      }))
  let at = base
  const parts = rel.split(nodePath.sep)
  for (const [i, part] of parts.entries()) {
    at = nodePath.join(at, part)
    const st = yield* lstat(at)
    if (st === undefined) return { _tag: "Missing" } satisfies TargetState
    if (st.isSymbolicLink()) return refused(`${at} is a symbolic link`)
    if (i < parts.length - 1 && !st.isDirectory()) return refused(`${at} is not a directory`)
    if (i === parts.length - 1) {
      if (!st.isDirectory()) return refused(`${at} exists and is not a directory`)
      if ((yield* mountAt(operation, at)) !== undefined) return { _tag: "MountPoint" } satisfies TargetState
      const entries = yield* fsStep(operation, at, () => fsp.readdir(at))
      return entries.length === 0 ? { _tag: "EmptyDirectory" } satisfies TargetState : refused(`${at} is a directory that is not empty`)
    }
  }
  return refused(`${target} is not below ${root}`)
})

/** mount(8), umount(8) and /proc/self/mountinfo; needs CAP_SYS_ADMIN in the driver's mount namespace. */
export const layerLinux: Layer.Layer<Mounter> = Layer.succeed(
  Mounter,
  Mounter.of({
    inspectTarget: inspectTargetLinux,

    isMountPoint: Effect.fn("Mounter.isMountPoint")(function*(path: string) {
      return (yield* mountAt("isMountPoint", path)) !== undefined
    }),

    mountTmpfs: Effect.fn("Mounter.mountTmpfs")(function*(path: string, options: { readonly mode: number }) {
      yield* validateMode(path, options.mode)
      yield* fsStep("mountTmpfs", path, () => fsp.mkdir(path, { recursive: true, mode: options.mode & 0o777 }))
      yield* run("mountTmpfs", path, "mount", [
        "-t",
        "tmpfs",
        "-o",
        `mode=${octal(options.mode)},size=${TMPFS_SIZE},${HARDENING_OPTIONS}`,
        "tmpfs",
        path
      ])
    }),

    bindReadOnly: Effect.fn("Mounter.bindReadOnly")(function*(source: string, target: string) {
      const operation = "bindReadOnly"
      const stat = yield* fsStep(operation, source, () => fsp.stat(source).catch(() => undefined))
      if (stat === undefined || !stat.isDirectory()) {
        return yield* new MountError({ operation, path: target, detail: `source ${source} is not a directory` })
      }
      yield* fsStep(operation, target, () => fsp.mkdir(target, { recursive: true, mode: TARGET_DIR_MODE }))
      // A bind mount starts read-write; only a remount of the new mount makes it read-only.
      // util-linux ≥ 2.27 does both in one `mount --bind -o ro` (one process instead of two, which
      // matters in a burst of publishes); an older mount(8) leaves it writable, so the result is
      // checked and the remount done explicitly when needed. The hardening options are repeated
      // because older mount(8) replaces all per-mount flags on remount.
      const isReadOnly = Effect.map(mountAt(operation, target), (m) => m !== undefined && m.mountOptions.includes("ro"))
      const readOnly = Effect.gen(function*() {
        if (yield* isReadOnly) return
        yield* run(operation, target, "mount", ["-o", `remount,bind,ro,${HARDENING_OPTIONS}`, target])
        if (!(yield* isReadOnly)) {
          return yield* new MountError({ operation, path: target, detail: "bind mount is not read-only after remount" })
        }
      })
      // Never leave a writable bind in the pod: once the bind exists, a failure or an interruption
      // of the read-only step undoes it (the mask closes the gap between the two steps).
      yield* Effect.uninterruptibleMask((restore) =>
        Effect.andThen(
          restore(run(operation, target, "mount", ["--bind", "-o", `ro,${HARDENING_OPTIONS}`, source, target])),
          restore(readOnly).pipe(Effect.onError(() => Effect.ignore(run(operation, target, "umount", [target]))))
        )
      )
    }),

    unmount: Effect.fn("Mounter.unmount")(function*(path: string) {
      if ((yield* mountAt("unmount", path)) === undefined) return
      yield* run("unmount", path, "umount", [path]).pipe(
        // Someone else unmounted it between the check and umount(8): the goal is reached.
        Effect.catch((error) =>
          Effect.flatMap(mountAt("unmount", path), (still) => still === undefined ? Effect.void : Effect.fail(error))
        )
      )
    })
  } satisfies MounterShape)
)

// ---------------------------------------------------------------------------------------------
// Memory layer

/** A mount in the memory table. */
export type MountRecord =
  | { readonly _tag: "Tmpfs"; readonly mode: number }
  | { readonly _tag: "Bind"; readonly source: string; readonly readOnly: true }

/** The memory mounter's table, keyed by normalised mount point, exposed for assertions. */
export class MounterMemory extends Context.Service<MounterMemory, {
  readonly table: Ref.Ref<ReadonlyMap<string, MountRecord>>
}>()("csi-driver-spiffe/layers/Mounter/MounterMemory") {}

const normalise = (path: string): string => nodePath.posix.resolve("/", path)

const layerMemoryState: Layer.Layer<MounterMemory> = Layer.effect(
  MounterMemory,
  Effect.map(Ref.make<ReadonlyMap<string, MountRecord>>(new Map()), (table) => MounterMemory.of({ table }))
)

const layerMemoryMounter: Layer.Layer<Mounter, never, MounterMemory> = Layer.effect(
  Mounter,
  Effect.gen(function*() {
    const { table } = yield* MounterMemory

    /** Adds a mount; mounting onto a mount point is a driver bug here (Linux would stack silently). */
    const add = (operation: string, path: string, record: MountRecord) =>
      Effect.flatMap(
        Ref.modify(table, (map) => {
          const key = normalise(path)
          if (map.has(key)) return [false, map] as const
          return [true, new Map(map).set(key, record) as ReadonlyMap<string, MountRecord>] as const
        }),
        (added) =>
          added ? Effect.void : Effect.fail(new MountError({ operation, path, detail: "already a mount point" }))
      )

    return Mounter.of({
      // The memory table has no files: a target is a mount point or missing.
      inspectTarget: Effect.fn("Mounter.inspectTarget")(function*(_root: string, target: string) {
        return (yield* Ref.get(table)).has(normalise(target)) ? { _tag: "MountPoint" } as const : { _tag: "Missing" } as const
      }),
      isMountPoint: Effect.fn("Mounter.isMountPoint")(function*(path: string) {
        return (yield* Ref.get(table)).has(normalise(path))
      }),
      mountTmpfs: Effect.fn("Mounter.mountTmpfs")(function*(path: string, options: { readonly mode: number }) {
        yield* validateMode(path, options.mode)
        yield* add("mountTmpfs", path, { _tag: "Tmpfs", mode: options.mode })
      }),
      bindReadOnly: Effect.fn("Mounter.bindReadOnly")(function*(source: string, target: string) {
        if (source.length === 0 || normalise(source) === normalise(target)) {
          return yield* new MountError({ operation: "bindReadOnly", path: target, detail: "source must be another directory" })
        }
        yield* add("bindReadOnly", target, { _tag: "Bind", source, readOnly: true })
      }),
      unmount: Effect.fn("Mounter.unmount")(function*(path: string) {
        yield* Ref.update(table, (map) => {
          const next = new Map(map)
          next.delete(normalise(path))
          return next
        })
      })
    } satisfies MounterShape)
  })
)

/** A recorded mount table; `MounterMemory` is exposed alongside for assertions. */
export const layerMemory: Layer.Layer<Mounter | MounterMemory> = layerMemoryMounter.pipe(
  Layer.provideMerge(layerMemoryState)
)

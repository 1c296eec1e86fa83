/**
 * Mounter implementations: Linux (mount(8), umount(8), /proc/self/mountinfo) on Effect's FileSystem
 * and ChildProcess services, and a recorded table (`mounter/Memory.ts`, re-exported here).
 *
 * Owns: the exact mount commands and options (tmpfs size cap, read-only bind in two steps with a
 * check that the result really is read-only), deciding "is a mount point" from mountinfo
 * (`mounter/MountInfo.ts` parses it), and turning command failures into MountError with a short
 * stderr summary.
 * Does not own: which paths get mounted or whether to skip an existing mount (the driver decides;
 * mounting over a mount point stacks a new mount on Linux and fails loudly in memory), file
 * contents (VolumeStore).
 */
import { NodeChildProcessSpawner, NodeFileSystem, NodePath } from "@effect/platform-node"
import { Effect, FileSystem, Layer, Path, Stream } from "effect"
import type { PlatformError } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { Mounter, MountError, type MounterShape, type TargetState } from "../services/Mounter.ts"
import { parseMountInfo } from "./mounter/MountInfo.ts"
import { validateMode } from "./mounter/Modes.ts"
import { errnoCode, platformText } from "./PlatformText.ts"

export { layerMemory, MounterMemory, type MountRecord } from "./mounter/Memory.ts"
export { type MountInfoEntry, parseMountInfo } from "./mounter/MountInfo.ts"

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
/**
 * mount(8) of a tmpfs or bind mount is local and takes milliseconds; the cap only stops a wedged
 * mount namespace from holding a publish forever (kubelet gives the whole CSI call 2 minutes).
 */
const COMMAND_TIMEOUT = "30 seconds"
/** Enough of stderr to carry mount(8)'s one-line reason. */
const STDERR_MAX_CHARS = 300
const MOUNTINFO = "/proc/self/mountinfo"

const clip = (text: string): string => text.length > STDERR_MAX_CHARS ? `${text.slice(0, STDERR_MAX_CHARS)}…` : text

const octal = (mode: number): string => mode.toString(8).padStart(4, "0")

const refused = (reason: string): TargetState => ({ _tag: "Refused", reason })

/** mount(8), umount(8) and /proc/self/mountinfo; needs CAP_SYS_ADMIN in the driver's mount namespace. */
export const layer: Layer.Layer<Mounter, never, FileSystem.FileSystem | Path.Path | ChildProcessSpawner.ChildProcessSpawner> =
  Layer.effect(
    Mounter,
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const nodePath = yield* Path.Path
      const spawner = yield* ChildProcessSpawner.ChildProcessSpawner

      const fsStep = (operation: string, path: string) =>
      <A>(step: Effect.Effect<A, PlatformError.PlatformError>): Effect.Effect<A, MountError> =>
        Effect.mapError(step, (cause) => new MountError({ operation, path, detail: platformText(cause), cause }))

      /** Runs `command args`; a non-zero exit is a MountError carrying stderr's first few hundred characters. */
      const run = (operation: string, path: string, command: string, args: ReadonlyArray<string>) =>
        Effect.scoped(Effect.gen(function*() {
          const handle = yield* spawner.spawn(ChildProcess.make(command, args, { stdout: "ignore", stderr: "pipe" }))
          const [stderr, exitCode] = yield* Effect.all([
            handle.stderr.pipe(Stream.decodeText(), Stream.mkString),
            handle.exitCode
          ], { concurrency: 2 })
          if (exitCode === 0) return
          const reason = stderr.trim().replace(/\s+/g, " ")
          return yield* new MountError({ operation, path, detail: clip(`${command} exited ${exitCode}: ${reason}`) })
        })).pipe(
          Effect.catchTag("PlatformError", (cause) =>
            Effect.fail(
              new MountError({
                operation,
                path,
                detail: cause.reason._tag === "NotFound" ? `${command} not found on PATH` : clip(`${command}: ${platformText(cause)}`),
                cause
              })
            )),
          // Closing the scope on timeout kills the child, as execFile's abort signal did.
          Effect.timeoutOrElse({
            duration: COMMAND_TIMEOUT,
            orElse: () => Effect.fail(new MountError({ operation, path, detail: `${command} did not finish within ${COMMAND_TIMEOUT}` }))
          })
        )

      const readMountInfo = (operation: string, path: string) =>
        Effect.map(fsStep(operation, path)(fs.readFileString(MOUNTINFO)), parseMountInfo)

      /**
       * The path as mountinfo spells it, or undefined when it does not exist. A path that exists but
       * cannot be resolved (e.g. a mount whose backing went away) is compared as given, made absolute.
       */
      const resolveMountPath = (path: string): Effect.Effect<string | undefined> =>
        fs.realPath(path).pipe(
          Effect.catch((error) =>
            Effect.succeed(
              errnoCode(error) === "ENOENT" || errnoCode(error) === "ENOTDIR" ? undefined : nodePath.resolve(path)
            )
          )
        )

      /** The topmost mount at `path` (later mountinfo lines are mounted later), if any. */
      const mountAt = Effect.fnUntraced(function*(operation: string, path: string) {
        const resolved = yield* resolveMountPath(path)
        if (resolved === undefined) return undefined
        const table = yield* readMountInfo(operation, path)
        return table.findLast((entry) => entry.mountPoint === resolved)
      })

      /** lstat, with a missing path as undefined. */
      const lstat = (operation: string, path: string) =>
        fsStep(operation, path)(
          fs.lstat(path).pipe(Effect.catchIf((error) => error.reason._tag === "NotFound", () => Effect.succeed(undefined)))
        )

      /**
       * lstat from `root` down: a symlink anywhere below the root would let a bind land somewhere else
       * (mount(8) follows it), and a file or a non-empty directory at the target would be hidden by the
       * mount. The kubelet's own layout never has either.
       */
      const inspectTarget = Effect.fn("Mounter.inspectTarget")(function*(root: string, target: string) {
        const operation = "inspectTarget"
        const base = nodePath.resolve(root)
        const full = nodePath.resolve(target)
        const rel = nodePath.relative(base, full)
        if (rel === "" || rel.startsWith("..") || nodePath.isAbsolute(rel)) return refused(`${target} is not below ${root}`)
        let at = base
        const parts = rel.split(nodePath.sep)
        for (const [i, part] of parts.entries()) {
          at = nodePath.join(at, part)
          const st = yield* lstat(operation, at)
          if (st === undefined) return { _tag: "Missing" } satisfies TargetState
          if (st.type === "SymbolicLink") return refused(`${at} is a symbolic link`)
          if (i < parts.length - 1 && st.type !== "Directory") return refused(`${at} is not a directory`)
          if (i === parts.length - 1) {
            if (st.type !== "Directory") return refused(`${at} exists and is not a directory`)
            if ((yield* mountAt(operation, at)) !== undefined) return { _tag: "MountPoint" } satisfies TargetState
            const entries = yield* fsStep(operation, at)(fs.readDirectory(at))
            return entries.length === 0 ? { _tag: "EmptyDirectory" } satisfies TargetState : refused(`${at} is a directory that is not empty`)
          }
        }
        return refused(`${target} is not below ${root}`)
      })

      return Mounter.of({
        inspectTarget,

        isMountPoint: Effect.fn("Mounter.isMountPoint")(function*(path: string) {
          return (yield* mountAt("isMountPoint", path)) !== undefined
        }),

        mountTmpfs: Effect.fn("Mounter.mountTmpfs")(function*(path: string, options: { readonly mode: number }) {
          yield* validateMode(path, options.mode)
          yield* fsStep("mountTmpfs", path)(fs.makeDirectory(path, { recursive: true, mode: options.mode & 0o777 }))
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
          const stat = yield* fs.stat(source).pipe(Effect.orElseSucceed(() => undefined))
          if (stat === undefined || stat.type !== "Directory") {
            return yield* new MountError({ operation, path: target, detail: `source ${source} is not a directory` })
          }
          yield* fsStep(operation, target)(fs.makeDirectory(target, { recursive: true, mode: TARGET_DIR_MODE }))
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
    })
  )

/** `layer` on Node's file system and child processes: what the driver runs. */
export const layerLinux: Layer.Layer<Mounter> = layer.pipe(
  Layer.provide(NodeChildProcessSpawner.layer),
  Layer.provide([NodeFileSystem.layer, NodePath.layer])
)

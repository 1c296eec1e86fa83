/**
 * A scratch node directory for tests over real mounts: the mounts below a directory, and a temp
 * directory whose finalizer lazily unmounts everything below it (newest first) and deletes it, also
 * when a test fails.
 */
import { Deferred, Effect } from "effect"
import { execFile } from "node:child_process"
import { watch } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { parseMountInfo } from "../../src/layers/Mounter.ts"

const execFileAsync = promisify(execFile)

/** The mount table's entries at or below `dir`. */
export const mountsUnder = async (dir: string) =>
  parseMountInfo(await fs.readFile("/proc/self/mountinfo", "utf8")).filter((e) => e.mountPoint === dir || e.mountPoint.startsWith(`${dir}/`))

/** A real (symlink-free) temp directory named `<prefix>…`, unmounted below and removed when the scope closes. */
export const scratchDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), prefix)))),
    (dir) =>
      Effect.promise(async () => {
        for (const m of (await mountsUnder(dir)).reverse()) await execFileAsync("umount", ["-l", m.mountPoint]).catch(() => undefined)
        await fs.rm(dir, { recursive: true, force: true })
      })
  )

/**
 * Completes once `check` holds for directory `dir`: now, or after a later change inside it (inotify
 * through node:fs's watch, registered before each look so a change between look and wait is not
 * missed). A signal from the file system, never a poll.
 */
export const untilChanged = <E, R>(dir: string, check: Effect.Effect<boolean, E, R>): Effect.Effect<void, E, R> => {
  /** One look: the watcher is in place before `check` runs; false means a change has happened since. */
  const look = Effect.scoped(Effect.gen(function*() {
    const changed = Deferred.makeUnsafe<void>()
    yield* Effect.acquireRelease(
      Effect.sync(() => watch(dir, () => Deferred.doneUnsafe(changed, Effect.void))),
      (watcher) => Effect.sync(() => watcher.close())
    )
    if (yield* check) return true
    yield* Deferred.await(changed)
    return false
  }))
  return Effect.repeat(look, { until: (held) => held }).pipe(Effect.asVoid)
}

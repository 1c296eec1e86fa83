/**
 * A scratch node directory for tests over real mounts: the mounts below a directory, and a temp
 * directory whose finalizer lazily unmounts everything below it (newest first) and deletes it, also
 * when a test fails.
 */
import { Effect } from "effect"
import { execFile } from "node:child_process"
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

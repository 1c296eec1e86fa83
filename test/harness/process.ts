// Child processes the harness starts: stdout/stderr go to a log file in the run's temp dir,
// readiness waits fail with the process name and its last log lines, and stop() signals only
// the pid this module spawned.
import * as net from "node:net"
import { spawn, type ChildProcess } from "node:child_process"
import { createWriteStream, readFileSync } from "node:fs"
import { setTimeout as sleep } from "node:timers/promises"

export class HarnessError extends Error {
  override readonly name = "HarnessError"
}

export interface ManagedProcess {
  readonly name: string
  readonly pid: number
  readonly logFile: string
  /** exit code or signal once the process has exited, else undefined */
  readonly exited: () => { code: number | null; signal: NodeJS.Signals | null } | undefined
  /** the last `n` lines of the log file */
  readonly tail: (n?: number) => string
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited */
  readonly stop: (graceMs?: number) => Promise<void>
}

export interface StartOptions {
  readonly name: string
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly logFile: string
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
}

export const tailFile = (file: string, n = 30): string => {
  try {
    const lines = readFileSync(file, "utf8").split("\n")
    return lines.slice(Math.max(0, lines.length - n - 1)).join("\n")
  } catch {
    return "(no log)"
  }
}

// Children still running when this Node process exits (e.g. a test run aborted without teardown)
// get SIGKILL, so no etcd or apiserver outlives the harness. Only pids spawned here are listed.
const live = new Set<ChildProcess>()
let exitHookInstalled = false
const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once("exit", () => {
    for (const child of live) child.kill("SIGKILL")
  })
}

export const startProcess = (opts: StartOptions): ManagedProcess => {
  installExitHook()
  const out = createWriteStream(opts.logFile, { flags: "a" })
  out.write(`# ${new Date().toISOString()} ${opts.command} ${opts.args.join(" ")}\n`)
  const child: ChildProcess = spawn(opts.command, [...opts.args], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  live.add(child)
  child.stdout?.pipe(out, { end: false })
  child.stderr?.pipe(out, { end: false })
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
  let spawnError: Error | undefined
  const exitedPromise = new Promise<void>((resolve) => {
    child.once("error", (err) => {
      spawnError = err
      exit ??= { code: -1, signal: null }
      out.write(`# spawn error: ${err.message}\n`)
      resolve()
    })
    child.once("exit", (code, signal) => {
      live.delete(child)
      exit = { code, signal }
      out.write(`# exited code=${code} signal=${signal}\n`)
      resolve()
    })
  })
  const pid = child.pid ?? -1
  return {
    name: opts.name,
    pid,
    logFile: opts.logFile,
    exited: () => (spawnError ? { code: -1, signal: null } : exit),
    tail: (n = 30) => tailFile(opts.logFile, n),
    stop: async (graceMs = 5_000) => {
      if (exit === undefined && pid > 0) {
        child.kill("SIGTERM")
        const timer = setTimeout(() => {
          if (exit === undefined) child.kill("SIGKILL")
        }, graceMs)
        await exitedPromise
        clearTimeout(timer)
      }
      await new Promise<void>((resolve) => out.end(resolve))
    }
  }
}

/**
 * Poll `check` until it returns a value other than undefined. Fails with a clear message naming
 * `what`, the last error seen, and the process' last log lines; fails early if the process exits.
 */
export const waitFor = async <A>(
  what: string,
  check: () => Promise<A | undefined>,
  opts: { readonly timeoutMs: number; readonly intervalMs?: number; readonly proc?: ManagedProcess }
): Promise<A> => {
  const deadline = Date.now() + opts.timeoutMs
  let last: unknown
  for (;;) {
    const exit = opts.proc?.exited()
    if (exit !== undefined && opts.proc !== undefined) {
      throw new HarnessError(
        `${what}: process ${opts.proc.name} (pid ${opts.proc.pid}) exited (code=${exit.code} signal=${exit.signal}) ` +
          `before it was ready.\n--- last lines of ${opts.proc.logFile} ---\n${opts.proc.tail(40)}`
      )
    }
    try {
      const v = await check()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      const lastMsg = last instanceof Error ? last.message : last === undefined ? "not ready" : String(last)
      const logs =
        opts.proc === undefined ? "" : `\n--- last lines of ${opts.proc.logFile} ---\n${opts.proc.tail(40)}`
      throw new HarnessError(`timed out after ${opts.timeoutMs} ms waiting for ${what} (last: ${lastMsg})${logs}`)
    }
    await sleep(opts.intervalMs ?? 250)
  }
}

/** True when a unix socket accepts a connection (a file left behind by a killed process does not). */
export const acceptsConnections = (socket: string): Promise<boolean> =>
  new Promise((resolve) => {
    const c = net.connect(socket)
    c.once("connect", () => {
      c.destroy()
      resolve(true)
    })
    c.once("error", () => resolve(false))
  })

/**
 * Run a command to completion: each stderr line goes to `onStderrLine` as it arrives, stdout is
 * collected and returned. A non-zero exit fails with the command and its last 30 stderr lines.
 */
export const runCollecting = (
  command: string,
  args: ReadonlyArray<string>,
  onStderrLine: (line: string) => void
): Promise<string> =>
  new Promise<string>((resolve, reject) => {
    const child = spawn(command, [...args], { stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let errTail: Array<string> = []
    let partial = ""
    child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")))
    child.stderr.on("data", (c: Buffer) => {
      const lines = (partial + c.toString("utf8")).split("\n")
      partial = lines.pop() ?? ""
      for (const line of lines) {
        onStderrLine(line)
        errTail = [...errTail.slice(-30), line]
      }
    })
    child.on("error", reject)
    child.on("close", (code) => {
      if (partial !== "") {
        onStderrLine(partial)
        errTail = [...errTail.slice(-30), partial]
      }
      if (code === 0) resolve(out)
      else reject(new HarnessError(`${command} ${args.join(" ")} failed (exit ${code}):\n${errTail.join("\n")}`))
    })
  })

/** The `NAME=value` lines of a build script's stdout whose name starts with `prefix`. */
export const envLines = (stdout: string, prefix: string): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const line of stdout.split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim())
    if (m?.[1] !== undefined && m[2] !== undefined && m[1].startsWith(prefix)) env[m[1]] = m[2]
  }
  return env
}

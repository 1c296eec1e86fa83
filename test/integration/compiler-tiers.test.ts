/**
 * The bundle starts from its code caches, as the image runs it: built (`scripts/bundle.ts --out`),
 * its compile cache filled by `dist/warm-up.mjs` (as the Dockerfile fills the image's), then each
 * binary started with the Node flags of its first line and `NODE_DEBUG_NATIVE=CODE_CACHE,COMPILE_CACHE`,
 * with which Node prints what it did with the code cache of each of its own modules and of each
 * file of the bundle. Until the binary listens:
 *
 * - no Node built-in is compiled without the cache the Node binary carries for it: V8 rejects that
 *   cache once a compiler flag is set, so the binary loads every built-in it needs before it sets
 *   its flags (`src/bin/CompilerTiers.ts`); a new dependency that loads another shows here, named;
 * - the entry and the composition root's chunk start from the compile cache the warm-up made, so
 *   the warm-up compiles them with the same flags as a start does.
 *
 * The driver mounts its tmpfs, so this needs root (skipped otherwise).
 */
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { firstLineNodeFlags } from "../../scripts/bench/nodeFlags.ts"

const isRoot = process.getuid?.() === 0
const repo = fileURLToPath(new URL("../..", import.meta.url))

/** Node's modules loaded by a call rather than by an import (`fs.rm`), so no import can load them first. */
const LOADED_BY_A_CALL = ["internal/fs/rimraf"]

interface Started {
  /** Everything the process wrote to stderr until `marker`. */
  readonly before: string
}

/** Starts `entry` as the image does and resolves with its stderr once a line holds `marker`; then stops it. */
const startUntil = (dir: string, cache: string, entry: string, args: ReadonlyArray<string>, marker: string): Promise<Started> =>
  new Promise((resolve, reject) => {
    const file = path.join(dir, "dist", entry)
    const proc = spawn(process.execPath, [...firstLineNodeFlags(file), file, ...args], {
      cwd: dir,
      env: { ...process.env, NODE_COMPILE_CACHE: cache, NODE_OPTIONS: "--max-semi-space-size=2", NODE_DEBUG_NATIVE: "CODE_CACHE,COMPILE_CACHE" },
      stdio: ["ignore", "ignore", "pipe"]
    })
    let stderr = ""
    let done = false
    proc.stderr.on("data", (d: Buffer) => {
      stderr += d.toString()
      const at = stderr.indexOf(marker)
      if (done || at < 0) return
      done = true
      proc.kill("SIGTERM")
      proc.once("exit", () => resolve({ before: stderr.slice(0, at) }))
    })
    proc.once("exit", (code) => {
      if (!done) reject(new Error(`${entry} exited (${code}) before "${marker}":\n${stderr.slice(-4000)}`))
    })
  })

const rejectedBuiltins = (log: string) =>
  [...log.matchAll(/^Code cache of (\S+) \(\w+\) is rejected$/gm)].map((m) => m[1]!).filter((name) => !LOADED_BY_A_CALL.includes(name))
const acceptedBuiltins = (log: string) => [...log.matchAll(/^Code cache of \S+ \(\w+\) is accepted$/gm)].length
const acceptedFiles = (log: string) =>
  [...log.matchAll(/V8 code cache for ESM file:\/\/\S+\/dist\/(\S+) was accepted/g)].map((m) => m[1]!.replace(/-[\w-]{8}\.mjs$/, "-*.mjs"))

describe.skipIf(!isRoot)("the bundle's start-up and its code caches (needs root; skipped otherwise)", () => {
  let dir: string
  let cache: string
  let kubeconfig: string

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "compiler-tiers-"))
    cache = path.join(dir, "compile-cache")
    execFileSync(process.execPath, [path.join(repo, "scripts/bundle.ts"), `--out=${path.join(dir, "dist")}`], { stdio: "pipe" })
    for (const bin of ["csi", "approver"]) {
      execFileSync(process.execPath, [path.join(dir, "dist", "warm-up.mjs"), bin], {
        env: { ...process.env, NODE_COMPILE_CACHE: cache, NODE_OPTIONS: "--max-semi-space-size=2" },
        stdio: "pipe"
      })
    }
    // An API server nobody listens on: start-up without a cluster.
    kubeconfig = path.join(dir, "kubeconfig")
    fs.writeFileSync(kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`)
  }, 120_000)

  afterAll(() => {
    const inmemfs = path.join(dir, "data", "inmemfs")
    if (fs.readFileSync("/proc/self/mountinfo", "utf8").includes(` ${inmemfs} `)) execFileSync("umount", [inmemfs])
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("the driver loads every Node built-in with its cache and starts from the warm-up's compile cache", async () => {
    const { before } = await startUntil(dir, cache, "csi.mjs", [
      `--kubeconfig=${kubeconfig}`,
      "--node-id=compiler-tiers",
      `--endpoint=unix://${path.join(dir, "csi.sock")}`,
      `--data-root=${path.join(dir, "data")}`,
      `--kubelet-root-dir=${path.join(dir, "kubelet")}`,
      "--trust-domain=foo.bar",
      "--issuer-name=ca",
      "--plugin-registration=false",
      "--metrics-bind-address=0"
    ], "CSI gRPC server listening")
    expect(rejectedBuiltins(before)).toEqual([])
    expect(acceptedBuiltins(before)).toBeGreaterThan(100)
    expect(acceptedFiles(before)).toEqual(expect.arrayContaining(["csi.mjs", "csi-CsiLive-*.mjs"]))
  }, 60_000)

  it("the approver loads every Node built-in with its cache and starts from the warm-up's compile cache", async () => {
    const { before } = await startUntil(dir, cache, "approver.mjs", [
      `--kubeconfig=${kubeconfig}`,
      "--trust-domain=foo.bar",
      "--issuer-name=ca",
      "--readiness-probe-bind-address=127.0.0.1:0",
      "--metrics-bind-address=0"
    ], "HTTP endpoint listening")
    expect(rejectedBuiltins(before)).toEqual([])
    expect(acceptedBuiltins(before)).toBeGreaterThan(100)
    expect(acceptedFiles(before)).toEqual(expect.arrayContaining(["approver.mjs", "approver-ApproverLive-*.mjs"]))
  }, 60_000)
})

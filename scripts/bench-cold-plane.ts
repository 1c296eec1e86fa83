/**
 * The driver's cold start on a real control plane, phase by phase: `npm run bench`'s cold_start_ms
 * (spawn → first Identity.Probe with ready=true) for each build of dist/ named, with the times at
 * which the socket appeared and the first Probe answered, and every log line of the driver
 * (`--log-level=5`) stamped with its time since spawn, so that what lies between "listening" and
 * ready=true shows. Runs interleave the builds; one plane for all. Prints; writes nothing.
 *
 *   node scripts/bench-cold-plane.ts [runs=5] [dist dir …]   # default: dist/
 *
 * The compile cache (`NODE_COMPILE_CACHE`, a fresh directory per build) is filled with each build's
 * `warm-up.mjs` first, as the image fills it. Needs root (the driver mounts its tmpfs).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { execFileSync, spawn } from "node:child_process"
import { connect as connectKube, toInfo } from "../test/harness/globalSetup.ts"
import { startControlPlane } from "../test/harness/plane.ts"
import { controlPlaneComponents, ensureUpstream } from "../test/harness/upstream.ts"
import { ensureCsiDriver } from "../test/harness/kubelet.ts"
import { median } from "./bench/report.ts"
import { firstLineNodeFlags } from "./bench/nodeFlags.ts"
import { csiConnect, driverArgs, ours, probeReady } from "./bench/stack.ts"

const runs = Number(process.argv[2] ?? 5)
const dists = (process.argv.length > 3 ? process.argv.slice(3) : ["dist"]).map((d) => path.resolve(d))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const progress = (m: string) => process.stderr.write(`[cold-plane] ${m}\n`)

const upstream = await ensureUpstream(controlPlaneComponents, { onProgress: progress })
const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "csi-spiffe-cold-plane-"))
const plane = await startControlPlane({ tmpDir, upstream, log: progress })
const caches = new Map<string, string>()
for (const d of dists) {
  const cache = fs.mkdtempSync(path.join(tmpDir, "compile-cache-"))
  caches.set(d, cache)
  const warmUp = path.join(d, "warm-up.mjs")
  if (fs.existsSync(warmUp)) execFileSync(process.execPath, [warmUp, "csi"], { env: { ...process.env, NODE_COMPILE_CACHE: cache }, stdio: "ignore" })
}
const results = new Map<string, Array<{ socket: number; firstAnswer: number; ready: number }>>()
try {
  const info = toInfo(plane)
  await ensureCsiDriver(connectKube(info))
  for (let run = 0; run < runs; run++) {
    for (const d of dists) {
      const dir = fs.mkdtempSync(path.join(tmpDir, "cold-"))
      const socket = path.join(dir, "csi.sock")
      const entry = path.join(d, "csi.mjs")
      const args = driverArgs(ours, { plane: info, nodeId: `cold-${run}`, socket, dataRoot: path.join(dir, "data"), duration: "1h" })
        .map((a) => (a === "--log-level=1" ? "--log-level=5" : a))
        .filter((a) => a.startsWith("--") && !a.startsWith("--max-opt"))
      const t0 = performance.now()
      const proc = spawn(process.execPath, [...firstLineNodeFlags(entry), entry, ...args], {
        env: { ...process.env, NODE_COMPILE_CACHE: caches.get(d)! },
        stdio: ["ignore", "ignore", "pipe"]
      })
      const lines: Array<string> = []
      let partial = ""
      proc.stderr.on("data", (b: Buffer) => {
        const at = (performance.now() - t0).toFixed(1).padStart(7)
        const text = partial + b.toString()
        const parts = text.split("\n")
        partial = parts.pop() ?? ""
        for (const l of parts) lines.push(`${at} ms  ${l.slice(0, 220)}`)
      })
      let socketAt = NaN
      let firstAnswer = NaN
      let readyAt = NaN
      let exited = false
      proc.once("exit", () => (exited = true))
      while (!fs.existsSync(socket)) {
        if (exited) throw new Error(`the driver exited before it listened:\n${lines.join("\n")}\n${partial}`)
        await sleep(1)
      }
      socketAt = performance.now() - t0
      // One connection for every Probe, as the kubelet and the livenessprobe sidecar keep theirs.
      const conn = csiConnect(socket)
      try {
        for (;;) {
          const ok = await probeReady(conn, 500).catch(() => undefined)
          if (ok !== undefined && Number.isNaN(firstAnswer)) firstAnswer = performance.now() - t0
          if (ok === true) {
            readyAt = performance.now() - t0
            break
          }
          await sleep(2)
        }
      } finally {
        conn.close()
      }
      proc.kill("SIGTERM")
      await new Promise((r) => proc.once("exit", r))
      const inmemfs = path.join(dir, "data", "inmemfs")
      if (fs.readFileSync("/proc/self/mountinfo", "utf8").includes(` ${inmemfs} `)) execFileSync("umount", [inmemfs])
      results.set(d, [...(results.get(d) ?? []), { socket: socketAt, firstAnswer, ready: readyAt }])
      console.log(`--- ${d} run ${run + 1}: socket ${socketAt.toFixed(1)} ms, first Probe answer ${firstAnswer.toFixed(1)} ms, ready=true ${readyAt.toFixed(1)} ms`)
      if (run === runs - 1) for (const l of lines) console.log(l)
    }
  }
} finally {
  await plane.stop()
}
for (const [d, rs] of results) {
  const m = (k: "socket" | "firstAnswer" | "ready") => `${median(rs.map((r) => r[k])).toFixed(1)} (${Math.min(...rs.map((r) => r[k])).toFixed(0)}–${Math.max(...rs.map((r) => r[k])).toFixed(0)})`
  console.log(`${d}: socket ${m("socket")}, first Probe answer ${m("firstAnswer")}, ready=true ${m("ready")} ms (median of ${rs.length})`)
}

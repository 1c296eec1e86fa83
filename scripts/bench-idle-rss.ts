/**
 * The driver's RSS after a burst of publishes, per set of V8 flags: one real control plane (as in
 * `npm run bench`), and for each variant a fresh driver + approver (the bundle, `dist/`), 110 pods
 * published at once (their p99 latency is printed too: a flag that saves memory must not cost the
 * burst), then VmRSS and RssAnon sampled 10 and 30 s after the last publish returned. Variants run in turns (A B A B …), so the load of a shared machine falls on each alike;
 * the first turn of a variant starts with its compile cache cold (V8 keys the cache by its flags)
 * and fills it; every turn is counted.
 * Prints one line per sample and a table of medians with min–max; writes nothing.
 *
 *   CSI_SPIFFE_IDLE_VARIANTS='--max-semi-space-size=2;--max-semi-space-size=1' node scripts/bench-idle-rss.ts [rounds=2] [volumes=110]
 *
 * Needs root (the driver mounts) and `npm run build:bundle`.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { labelHash } from "../src/domain/Hash.ts"
import { connect, toInfo } from "../test/harness/globalSetup.ts"
import { createWorkload, deletePod, ensureCsiDriver, nodePublishRequest, nodeUnpublishRequest } from "../test/harness/kubelet.ts"
import { startControlPlane } from "../test/harness/plane.ts"
import { controlPlaneComponents, ensureUpstream } from "../test/harness/upstream.ts"
import { median, percentile } from "./bench/report.ts"
import { type Impl, repo, startBenchStack } from "./bench/stack.ts"
import { mapLimit } from "./bench/watch.ts"

const rounds = Number(process.argv[2] ?? 2)
const volumes = Number(process.argv[3] ?? 110)
const variants = (process.env["CSI_SPIFFE_IDLE_VARIANTS"] ?? "--max-semi-space-size=2").split(";").map((v) => v.trim())
const SAMPLE_AT_S = [10, 30] as const
const NS = "idle-rss"
const VOLUME = "spiffe"

const t0 = Date.now()
const progress = (msg: string) => process.stderr.write(`[idle-rss ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const statusKiB = (pid: number, field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN)

if (process.getuid?.() !== 0) throw new Error("run as root: the driver mounts a tmpfs and bind mounts")
const entry = path.join(repo, "dist/csi.mjs")
if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: run npm run build:bundle`)
const cacheRoot = fs.mkdtempSync(path.join(os.tmpdir(), "idle-rss-cache-"))
process.env["NODE_COMPILE_CACHE"] = cacheRoot

const upstream = await ensureUpstream(controlPlaneComponents, { onProgress: (l) => progress(l) })
const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "csi-spiffe-idle-rss-"))
const plane = await startControlPlane({ tmpDir, upstream, log: (m) => progress(m) })
const samples = new Map<string, Map<number, Array<{ rss: number; anon: number }>>>()
const latencies = new Map<string, Array<number>>()
try {
  const info = toInfo(plane)
  const admin = connect(info)
  await ensureCsiDriver(admin)
  let setup = true
  for (let round = 0; round < rounds; round++) {
    for (const [vi, flags] of variants.entries()) {
      const v8 = flags === "" ? [] : flags.split(/\s+/)
      const impl: Impl = {
        name: "ours",
        driver: { command: process.execPath, args: [...v8, entry, "--plugin-registration=false"] },
        approver: { command: process.execPath, args: [path.join(repo, "dist/approver.mjs")] },
        cwd: repo
      }
      const nodeId = `idle-rss-${round}-${vi}`
      const s = await startBenchStack(info, impl, { name: nodeId, duration: "1h", nodeId })
      try {
        const pods = await mapLimit(Array.from({ length: volumes }, (_, i) => i), 12, async (i) => {
          const first = setup && i === 0
          const w = await createWorkload(admin, {
            namespace: NS,
            serviceAccount: "app",
            podName: `${nodeId}-${i}`,
            nodeName: nodeId,
            volumes: [{ name: VOLUME, driver: "spiffe.csi.cert-manager.io", readOnly: true }],
            createNamespace: first,
            grantCertificateRequestCreate: first
          })
          return { w, req: await nodePublishRequest(admin, w, VOLUME, { kubeletRoot: s.kubeletRoot }) }
        })
        setup = false
        const before = statusKiB(s.driver.pid, "VmRSS") / 1024
        const start = performance.now()
        const results = await Promise.allSettled(pods.map(async (p) => {
          await s.conn.call("Node", "NodePublishVolume", p.req)
          return performance.now() - start
        }))
        const published = performance.now()
        const lat = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []))
        const failed = volumes - lat.length
        const p99 = percentile(lat, 99)
        progress(`round ${round + 1} [${flags}]: ${lat.length}/${volumes} published, p99 ${p99.toFixed(0)} ms (volume hash of the first ${labelHash(pods[0]!.req.volume_id)}); RSS before the burst ${before.toFixed(1)} MiB`)
        if (failed > 0) progress(`  ${failed} publishes failed`)
        latencies.set(flags, [...(latencies.get(flags) ?? []), p99])
        for (const at of SAMPLE_AT_S) {
          await sleep(Math.max(0, published + at * 1000 - performance.now()))
          const rss = statusKiB(s.driver.pid, "VmRSS") / 1024
          const anon = statusKiB(s.driver.pid, "RssAnon") / 1024
          progress(`  +${at} s: VmRSS ${rss.toFixed(1)} MiB, RssAnon ${anon.toFixed(1)} MiB`)
          const byAt = samples.get(flags) ?? new Map<number, Array<{ rss: number; anon: number }>>()
          samples.set(flags, byAt)
          byAt.set(at, [...(byAt.get(at) ?? []), { rss, anon }])
        }
        await mapLimit(pods, 8, async (p) => {
          await s.conn.call("Node", "NodeUnpublishVolume", nodeUnpublishRequest(p.w, VOLUME, s.kubeletRoot)).catch(() => undefined)
          await deletePod(admin, p.w).catch(() => undefined)
        })
      } finally {
        const left = await s.stop()
        if (left.length > 0) progress(`  mounts that would not go: ${left.join(", ")}`)
      }
    }
  }
} finally {
  await plane.stop()
  fs.rmSync(cacheRoot, { recursive: true, force: true })
}

const range = (xs: ReadonlyArray<number>) => `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`
console.log(`${new Date().toISOString()} on ${os.hostname()}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}, Node ${process.version}; ${volumes} volumes, ${rounds} round(s)`)
console.log(`| V8 flags | burst p99 (ms) | ${SAMPLE_AT_S.map((a) => `VmRSS +${a} s (MiB)`).join(" | ")} | RssAnon +${SAMPLE_AT_S.at(-1)} s (MiB) |`)
console.log(`|---|---|${SAMPLE_AT_S.map(() => "---").join("|")}|---|`)
for (const [flags, byAt] of samples) {
  const last = byAt.get(SAMPLE_AT_S.at(-1)!) ?? []
  console.log(`| \`${flags}\` | ${range(latencies.get(flags) ?? [])} | ${SAMPLE_AT_S.map((a) => range((byAt.get(a) ?? []).map((x) => x.rss))).join(" | ")} | ${range(last.map((x) => x.anon))} |`)
}

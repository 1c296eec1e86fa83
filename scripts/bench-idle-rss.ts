/**
 * The driver's RSS after a burst of publishes, per set of V8 flags: one real control plane (as in
 * `npm run bench`), and for each variant a fresh driver + approver (the bundle, `dist/`), 110 pods
 * published at once (their p99 latency is printed too: a flag that saves memory must not cost the
 * burst), then VmRSS and RssAnon sampled 10, 30 and 60 s after the last publish returned (the
 * approver runs its own memory-reducing GC 10 s after its queue drained, and again each minute,
 * `layers/IdleGc.ts`, so the last sample falls after it; `CSI_SPIFFE_IDLE_SAMPLES` sets other times). Variants run in turns (A B A B …), so the load of a shared machine falls on each alike;
 * the first turn of a variant starts with its compile cache cold (V8 keys the cache by its flags)
 * and fills it; every turn is counted.
 * Prints one line per sample and a table of medians with min–max; writes nothing.
 *
 *   CSI_SPIFFE_IDLE_VARIANTS='--max-semi-space-size=2;--max-semi-space-size=1' node scripts/bench-idle-rss.ts [rounds=2] [volumes=110]
 *
 * A variant is the driver's Node flags (added to those of its first line), plus optional words: `a:<flag>` is a Node flag of the
 * approver (which runs with none otherwise), `@<dir>` runs another build of dist/ (a copy made
 * with other bundle options), `NAME=value` sets an environment variable of both processes
 * (`MALLOC_ARENA_MAX=2`, say), and `+gc` adds a last sample after a full garbage
 * collection forced at idle (a preload module that runs V8's gc on SIGUSR2; what a GC at idle
 * would hand back). The approver's VmRSS after the burst (it decided every request) is sampled too.
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
import { firstLineNodeFlags } from "./bench/nodeFlags.ts"
import { type Impl, repo, startBenchStack } from "./bench/stack.ts"
import { mapLimit } from "./bench/watch.ts"

const rounds = Number(process.argv[2] ?? 2)
const volumes = Number(process.argv[3] ?? 110)
const variants = (process.env["CSI_SPIFFE_IDLE_VARIANTS"] ?? "--max-semi-space-size=2").split(";").map((v) => v.trim())
/** Seconds after the last publish at which both processes are sampled; `CSI_SPIFFE_IDLE_SAMPLES=10,30,60,330` watches longer. */
const SAMPLE_AT_S = (process.env["CSI_SPIFFE_IDLE_SAMPLES"] ?? "10,30,60").split(",").map(Number)
if (SAMPLE_AT_S.some((s, i) => !(s > 0) || (i > 0 && s <= SAMPLE_AT_S[i - 1]!))) throw new Error("CSI_SPIFFE_IDLE_SAMPLES: increasing seconds, comma-separated")
/** The key of the sample taken after the forced GC (variants with `+gc`). */
const GC_AT = -1
const NS = "idle-rss"
const VOLUME = "spiffe"

/** A full GC on SIGUSR2, for `+gc` variants: loaded with --import before the binary. */
const gcPreload = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "idle-rss-gc-")), "gc-on-sigusr2.mjs")
// flavor "last-resort" is V8's memory-reducing full GC, which also hands its pooled pages back.
fs.writeFileSync(gcPreload, 'import v8 from "node:v8"\nimport vm from "node:vm"\nprocess.on("SIGUSR2", () => {\n  v8.setFlagsFromString("--expose-gc")\n  vm.runInNewContext("gc")({ type: "major", execution: "sync", flavor: "last-resort" })\n})\n')

const parseVariant = (spec: string) => {
  const words = spec.split(/\s+/).filter((w) => w !== "")
  const dist = words.find((w) => w.startsWith("@"))?.slice(1) ?? path.join(repo, "dist")
  const gc = words.includes("+gc")
  const env = words.filter((w) => /^[A-Z_][A-Z0-9_]*=/.test(w))
  const approver = words.filter((w) => w.startsWith("a:")).map((w) => w.slice(2))
  const driver = words.filter((w) => !w.startsWith("@") && !w.startsWith("a:") && w !== "+gc" && !env.includes(w))
  const preload = gc ? ["--import", gcPreload] : []
  return { dist: path.resolve(dist), env, driver: [...driver, ...preload], approver: [...approver, ...preload], gc }
}

const t0 = Date.now()
const progress = (msg: string) => process.stderr.write(`[idle-rss ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const statusKiB = (pid: number, field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN)

if (process.getuid?.() !== 0) throw new Error("run as root: the driver mounts a tmpfs and bind mounts")
for (const v of variants) {
  const entry = path.join(parseVariant(v).dist, "csi.mjs")
  if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: run npm run build:bundle`)
}
const cacheRoot = fs.mkdtempSync(path.join(os.tmpdir(), "idle-rss-cache-"))
process.env["NODE_COMPILE_CACHE"] = cacheRoot

const upstream = await ensureUpstream(controlPlaneComponents, { onProgress: (l) => progress(l) })
const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "csi-spiffe-idle-rss-"))
const plane = await startControlPlane({ tmpDir, upstream, log: (m) => progress(m) })
const samples = new Map<string, Map<number, Array<{ rss: number; anon: number }>>>()
const latencies = new Map<string, Array<number>>()
const approverSamples = new Map<string, Array<number>>()
/** The approver's VmRSS just before the forced GC (`+gc` variants), which the sample after it follows. */
const approverBeforeGc = new Map<string, Array<number>>()
try {
  const info = toInfo(plane)
  const admin = connect(info)
  await ensureCsiDriver(admin)
  let setup = true
  for (let round = 0; round < rounds; round++) {
    for (const [vi, flags] of variants.entries()) {
      const v = parseVariant(flags)
      // env(1) execs node in the same process, so the pid sampled is the driver's.
      const command = (node: ReadonlyArray<string>, script: string, extra: ReadonlyArray<string>) => ({ command: "/usr/bin/env", args: [...v.env, process.execPath, ...node, script, ...extra] })
      const impl: Impl = {
        name: "ours",
        // Each binary with the Node flags of its first line too, as the image runs it.
        driver: command([...firstLineNodeFlags(path.join(v.dist, "csi.mjs")), ...v.driver], path.join(v.dist, "csi.mjs"), ["--plugin-registration=false"]),
        approver: command([...firstLineNodeFlags(path.join(v.dist, "approver.mjs")), ...v.approver], path.join(v.dist, "approver.mjs"), []),
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
        for (const at of [...SAMPLE_AT_S, ...(v.gc ? [GC_AT] : [])]) {
          if (at === GC_AT) {
            approverBeforeGc.set(flags, [...(approverBeforeGc.get(flags) ?? []), statusKiB(s.approver.pid, "VmRSS") / 1024])
            // The approver's figure below is then after its own forced GC too.
            process.kill(s.driver.pid, "SIGUSR2")
            process.kill(s.approver.pid, "SIGUSR2")
            await sleep(2_000)
          }
          await sleep(Math.max(0, published + at * 1000 - performance.now()))
          const rss = statusKiB(s.driver.pid, "VmRSS") / 1024
          const anon = statusKiB(s.driver.pid, "RssAnon") / 1024
          progress(`  ${at === GC_AT ? "after a full GC" : `+${at} s`}: VmRSS ${rss.toFixed(1)} MiB, RssAnon ${anon.toFixed(1)} MiB`)
          const byAt = samples.get(flags) ?? new Map<number, Array<{ rss: number; anon: number }>>()
          samples.set(flags, byAt)
          byAt.set(at, [...(byAt.get(at) ?? []), { rss, anon }])
        }
        const approverRss = statusKiB(s.approver.pid, "VmRSS") / 1024
        progress(`  approver VmRSS ${approverRss.toFixed(1)} MiB`)
        approverSamples.set(flags, [...(approverSamples.get(flags) ?? []), approverRss])
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
console.log(`| variant | burst p99 (ms) | ${SAMPLE_AT_S.map((a) => `VmRSS +${a} s (MiB)`).join(" | ")} | RssAnon +${SAMPLE_AT_S.at(-1)} s (MiB) | VmRSS after a full GC (MiB) | approver VmRSS (MiB) | approver VmRSS before its full GC (MiB) |`)
console.log(`|---|---|${SAMPLE_AT_S.map(() => "---").join("|")}|---|---|---|---|`)
for (const [flags, byAt] of samples) {
  const last = byAt.get(SAMPLE_AT_S.at(-1)!) ?? []
  const gc = byAt.get(GC_AT)
  console.log(`| \`${flags}\` | ${range(latencies.get(flags) ?? [])} | ${SAMPLE_AT_S.map((a) => range((byAt.get(a) ?? []).map((x) => x.rss))).join(" | ")} | ${range(last.map((x) => x.anon))} | ${gc === undefined ? "—" : range(gc.map((x) => x.rss))} | ${range(approverSamples.get(flags) ?? [])} | ${approverBeforeGc.has(flags) ? range(approverBeforeGc.get(flags)!) : "—"} |`)
}

/**
 * Start-up cost of both binaries without a cluster (the full `npm run bench` measures Probe
 * ready=true on a real plane): for the sources (`src/bin/*.ts`) and, when `dist/` is built
 * (`npm run build:bundle`), the bundle, and the bundle as the image runs it (V8's compile cache
 * warm, the image's NODE_OPTIONS, and each binary's first-line Node flags):
 *
 * - help_ms: spawn → exit of `--help`
 * - driver_probe_ms: spawn → first answer of Identity.Probe on the driver's socket (the kubeconfig
 *   points at a closed port, so the answer is ready=false; what is timed is loading, start-up and
 *   the gRPC server listening)
 * - driver_probe_cpu_ms: the driver's utime+stime at that answer (less noisy on a busy machine)
 * - driver_rss_mib: the driver's VmRSS 2 s after that answer (no volumes, no API server)
 * - approver_healthz_ms / approver_rss_mib: spawn → first answer of the approver's /healthz, and
 *   its VmRSS 2 s later (leader election keeps failing against the closed port), and its CPU time
 *   at that answer
 *
 * Medians over the runs with their spread (min–max), printed and written to
 * bench/results/startup.json. `CSI_SPIFFE_BENCH_VARIANTS=bundle,image` keeps only the variants
 * named (the sources take seconds per start); `CSI_SPIFFE_BENCH_BASELINE=<dir>` adds another
 * build of dist/ as `baseline`, run like `image` (each binary with the flags of its own
 * first line), `CSI_SPIFFE_BENCH_BASELINE=a=<dir>,b=<dir>` several, named;
 * `CSI_SPIFFE_BENCH_PARTS=driver` measures only the parts named (`help`, `driver`, `approver`),
 * for more turns in the same time.
 *
 *   node scripts/bench-startup.ts [runs=5]
 */
import * as grpc from "@grpc/grpc-js"
import { Effect } from "effect"
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { loadCsiServices } from "../src/csi/CsiProto.ts"
import { firstLineNodeFlags } from "./bench/nodeFlags.ts"

const repo = fileURLToPath(new URL("..", import.meta.url))
const runs = Number(process.argv[2] ?? 5)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN
// utime + stime of /proc/<pid>/stat in ms (USER_HZ = 100): start-up work, less noisy than wall time on a busy machine
const cpuMs = (pid: number) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(f[11]) + Number(f[12])) * 10
}
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) / 1024

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

interface Variant {
  readonly name: string
  readonly driver: string
  readonly approver: string
  readonly env: Readonly<Record<string, string>>
  /** Each binary runs with the Node flags of its first line, as the image runs it (`#!/usr/bin/env -S node …`). */
  readonly firstLine?: boolean
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bench-startup-"))
const cacheDir = path.join(tmp, "compile-cache")
const variants: Array<Variant> = [
  { name: "src", driver: "src/bin/csi.ts", approver: "src/bin/approver.ts", env: {} }
]
if (fs.existsSync(path.join(repo, "dist/csi.mjs"))) {
  variants.push(
    { name: "bundle", driver: "dist/csi.mjs", approver: "dist/approver.mjs", env: { NODE_DISABLE_COMPILE_CACHE: "1" } },
    // what the image runs (Dockerfile: NODE_COMPILE_CACHE, NODE_OPTIONS)
    {
      name: "image",
      driver: "dist/csi.mjs",
      approver: "dist/approver.mjs",
      env: { NODE_COMPILE_CACHE: cacheDir, NODE_OPTIONS: "--max-semi-space-size=2" },
      firstLine: true
    }
  )
} else {
  process.stderr.write("dist/ not built (npm run build:bundle): measuring the sources only\n")
}

// A kubeconfig whose server is a port nobody listens on: start-up without a cluster.
const deadPort = await freePort()
const kubeconfig = path.join(tmp, "kubeconfig")
fs.writeFileSync(
  kubeconfig,
  `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:${deadPort}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: bench}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
)

const services = Effect.runSync(loadCsiServices)

const start = (v: Variant, script: string, args: ReadonlyArray<string>) => {
  const t0 = performance.now()
  const nodeArgs = v.firstLine === true ? firstLineNodeFlags(path.resolve(repo, script)) : []
  const proc = spawn(process.execPath, [...nodeArgs, path.resolve(repo, script), ...args], {
    cwd: tmp,
    env: { ...process.env, ...v.env },
    stdio: ["ignore", "ignore", "pipe"]
  })
  let stderr = ""
  proc.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<number | null>((r) => proc.on("exit", (code) => r(code)))
  return { t0, proc, exited, stderr: () => stderr }
}

const help = async (v: Variant, script: string) => {
  const p = start(v, script, ["--help"])
  const code = await p.exited
  if (code !== 0) throw new Error(`${script} --help exited ${code}: ${p.stderr()}`)
  return performance.now() - p.t0
}

const until = async (what: string, p: ReturnType<typeof start>, probe: () => Promise<boolean>) => {
  let done = false
  void p.exited.then(() => (done = true))
  for (;;) {
    if (done) throw new Error(`${what} exited before it answered: ${p.stderr()}`)
    if (await probe()) return performance.now() - p.t0
    await sleep(2)
  }
}

const stop = async (p: ReturnType<typeof start>) => {
  p.proc.kill("SIGTERM")
  const killer = setTimeout(() => p.proc.kill("SIGKILL"), 5_000)
  await p.exited
  clearTimeout(killer)
}

const driver = async (v: Variant, run: number) => {
  const dir = path.join(tmp, `${v.name}-driver-${run}`)
  fs.mkdirSync(dir)
  const socket = path.join(dir, "csi.sock")
  const p = start(v, v.driver, [
    `--kubeconfig=${kubeconfig}`,
    "--node-id=bench-startup",
    `--endpoint=unix://${socket}`,
    `--data-root=${path.join(dir, "data")}`,
    `--kubelet-root-dir=${path.join(dir, "kubelet")}`,
    "--trust-domain=foo.bar",
    "--issuer-name=ca",
    "--plugin-registration=false",
    "--metrics-bind-address=0",
    "--log-level=1"
  ])
  const client = new services.Identity(`unix://${socket}`, grpc.credentials.createInsecure(), {
    "grpc.initial_reconnect_backoff_ms": 5,
    "grpc.max_reconnect_backoff_ms": 10
  })
  try {
    const ms = await until("driver", p, () =>
      !fs.existsSync(socket) ? Promise.resolve(false) : new Promise<boolean>((resolve) => {
        const c = client as unknown as { Probe: (r: object, o: grpc.CallOptions, cb: (e: unknown) => void) => void }
        c.Probe({}, { deadline: Date.now() + 200 }, (e) => resolve(e === null))
      }))
    const cpu = cpuMs(p.proc.pid!)
    await sleep(2_000)
    return { ms, cpu, rss: rssMiB(p.proc.pid!) }
  } finally {
    client.close()
    await stop(p)
    // The driver keeps its data root's tmpfs across restarts, as it must on a node.
    const inmemfs = path.join(dir, "data/inmemfs")
    if (fs.readFileSync("/proc/self/mountinfo", "utf8").includes(` ${inmemfs} `)) execFileSync("umount", [inmemfs])
  }
}

const approver = async (v: Variant) => {
  const port = await freePort()
  const p = start(v, v.approver, [
    `--kubeconfig=${kubeconfig}`,
    "--trust-domain=foo.bar",
    "--issuer-name=ca",
    `--readiness-probe-bind-address=127.0.0.1:${port}`,
    "--metrics-bind-address=0",
    "--log-level=1"
  ])
  try {
    const ms = await until("approver", p, () =>
      new Promise<boolean>((resolve) => {
        const req = http.get({ host: "127.0.0.1", port, path: "/healthz", timeout: 200 }, (res) => {
          res.resume()
          resolve(true)
        })
        req.on("error", () => resolve(false))
      }))
    const cpu = cpuMs(p.proc.pid!)
    await sleep(2_000)
    return { ms, cpu, rss: rssMiB(p.proc.pid!) }
  } finally {
    await stop(p)
  }
}

// Other builds of dist/ (e.g. main's, copied away) run as the image runs it, to compare a change:
// `<dir>` is named `baseline`, `<name>=<dir>` names it; several are separated by commas.
for (const [i, entry] of (process.env["CSI_SPIFFE_BENCH_BASELINE"] ?? "").split(",").filter((e) => e !== "").entries()) {
  const [name, dir] = entry.includes("=") ? entry.split("=", 2) as [string, string] : [i === 0 ? "baseline" : `baseline${i + 1}`, entry]
  variants.push({
    name,
    driver: path.join(path.resolve(dir), "csi.mjs"),
    approver: path.join(path.resolve(dir), "approver.mjs"),
    env: { NODE_COMPILE_CACHE: path.join(tmp, `compile-cache-${name}`), NODE_OPTIONS: "--max-semi-space-size=2" },
    firstLine: true
  })
}
const only = process.env["CSI_SPIFFE_BENCH_VARIANTS"]?.split(",").filter((n) => n !== "")
if (only !== undefined && only.length > 0) variants.splice(0, variants.length, ...variants.filter((v) => only.includes(v.name)))
const parts = new Set(process.env["CSI_SPIFFE_BENCH_PARTS"]?.split(",").filter((n) => n !== "") ?? ["help", "driver", "approver"])

// Runs interleave the variants, so that the load of a shared machine falls on each alike.
const samples: Record<string, Record<string, Array<number>>> = {}
try {
  for (const v of variants) {
    // Fills the compile cache (and the page cache) before the counted runs, as the Dockerfile
    // does: with the build's `warm-up.mjs` when it has one (each binary's files in the order a
    // start compiles them, with the V8 flags it sets between them), else every module of the
    // binary imported with `--help` as the only argument and the flags of its first line.
    for (const script of [v.driver, v.approver]) {
      const dir = path.dirname(path.resolve(repo, script))
      const stem = path.basename(script).replace(/\.(mjs|ts)$/, "")
      const warmUp = path.join(dir, "warm-up.mjs")
      if (script.endsWith(".mjs") && fs.existsSync(warmUp)) {
        execFileSync(process.execPath, [warmUp, stem], { env: { ...process.env, ...v.env }, stdio: "ignore" })
        continue
      }
      const files = [path.resolve(repo, script), ...fs.readdirSync(dir).filter((f) => f.startsWith(`${stem}-`) && f.endsWith(".mjs")).map((f) => path.join(dir, f))]
      const warm = 'const files = process.argv.slice(1); process.argv = [process.argv[0], "warm", "--help"]; for (const f of files) await import(f)'
      const nodeArgs = v.firstLine === true ? firstLineNodeFlags(path.resolve(repo, script)) : []
      execFileSync(process.execPath, [...nodeArgs, "--input-type=module", "-e", warm, ...files], { env: { ...process.env, ...v.env }, stdio: "ignore" })
    }
  }
  for (let run = 0; run < runs; run++) {
    for (const v of variants) {
      const m = (samples[v.name] ??= {})
      const add = (k: string, x: number) => (m[k] ??= []).push(x)
      if (parts.has("help")) {
        add("driver_help_ms", await help(v, v.driver))
        add("approver_help_ms", await help(v, v.approver))
      }
      if (parts.has("driver")) {
        const d = await driver(v, run)
        add("driver_probe_ms", d.ms)
        add("driver_probe_cpu_ms", d.cpu)
        add("driver_rss_mib", d.rss)
      }
      if (parts.has("approver")) {
        const a = await approver(v)
        add("approver_healthz_ms", a.ms)
        add("approver_healthz_cpu_ms", a.cpu)
        add("approver_rss_mib", a.rss)
      }
      process.stderr.write(`${v.name} run ${run + 1}/${runs}: ${Object.entries(m).map(([k, xs]) => `${k}=${xs.at(-1)!.toFixed(0)}`).join(" ")}\n`)
    }
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true })
}
const results = Object.fromEntries(Object.entries(samples).map(([name, m]) =>
  [name, Object.fromEntries(Object.entries(m).map(([k, xs]) => [k, Math.round(median(xs) * 10) / 10]))]
))

const spread = Object.fromEntries(Object.entries(samples).map(([name, m]) =>
  [name, Object.fromEntries(Object.entries(m).map(([k, xs]) => [k, `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`]))]
))

const keys = Object.keys(results[variants[0]!.name] ?? {})
const header = `| metric (median of ${runs}, min–max) | ${variants.map((v) => v.name).join(" | ")} |`
const lines = [
  header,
  `|---|${variants.map(() => "---").join("|")}|`,
  ...keys.map((k) => `| ${k} | ${variants.map((v) => `${results[v.name]?.[k] ?? ""} (${spread[v.name]?.[k] ?? ""})`).join(" | ")} |`)
]
const when = `${new Date().toISOString()} on ${os.hostname()}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}, Node ${process.version}`
console.log(`${when}\n${lines.join("\n")}`)
fs.mkdirSync(path.join(repo, "bench/results"), { recursive: true })
fs.writeFileSync(path.join(repo, "bench/results/startup.json"), JSON.stringify({ when, runs, results, spread }, null, 2) + "\n")

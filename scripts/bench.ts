// npm run bench [-- --quick] [-- --runs=N] [-- --storm-volumes=N] [-- --storm-runs=N] [-- --out=DIR]
//
// Benchmarks our CSI driver and approver as real processes on a real control plane (etcd,
// kube-apiserver, cert-manager webhook + controller, CA ClusterIssuer; test/harness/plane.ts), driven
// through the harness's kubelet stand-in (Pods, Pod-bound TokenRequest tokens, NodePublishVolume over
// the CSI socket). Writes bench/results/latest.{json,md,svg}. Needs root (the driver mounts).
//
// The Go original is measured the same way when prebuilt binaries are given with
// CSI_SPIFFE_GO_DRIVER_BIN and CSI_SPIFFE_GO_APPROVER_BIN (they are never built or downloaded here);
// otherwise every "go" value is null and latest.json says why in "go_unavailable".
//
// Every mount and process this script starts is cleaned up on success, failure, SIGINT and SIGTERM.
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as zlib from "node:zlib"
import * as path from "node:path"
import { labelHash } from "../src/domain/Hash.ts"
import { NODE_ID_HASH_LABEL, VOLUME_ID_HASH_LABEL } from "../src/domain/CertificateRequest.ts"
import { x509 } from "../src/x509.ts"
import { certificateRequest, csrRequest } from "../test/support/csr.ts"
import { connect, type ControlPlaneInfo, toInfo } from "../test/harness/globalSetup.ts"
import type { KubeClient } from "../test/harness/kube.ts"
import {
  createWorkload,
  deletePod,
  ensureCsiDriver,
  nodePublishRequest,
  nodeUnpublishRequest,
  type NodePublishVolumeRequest,
  requestPodToken,
  type Workload
} from "../test/harness/kubelet.ts"
import { type ControlPlane, startControlPlane } from "../test/harness/plane.ts"
import { type ManagedProcess, startProcess } from "../test/harness/process.ts"
import { controlPlaneComponents, ensureUpstream } from "../test/harness/upstream.ts"
import {
  addRun,
  addSamples,
  type ImplResult,
  median,
  newImplResult,
  percentile,
  type Report,
  round,
  toSvg,
  writeResults
} from "./bench/report.ts"
import {
  type BenchStack,
  cpuSeconds,
  csiConnect,
  driverArgs,
  goImpl,
  type Impl,
  ours,
  probeReady,
  repo,
  rssMiB,
  startBenchStack,
  TRUST_DOMAIN,
  unmountAllUnder
} from "./bench/stack.ts"
import { Api, conditionOf, mapLimit, watch } from "./bench/watch.ts"

// ------------------------------------------------------------------ arguments

const USAGE = "usage: node scripts/bench.ts [--quick] [--runs=N] [--storm-volumes=N] [--storm-runs=N] [--out=DIR]"
const argv = process.argv.slice(2)
const flag = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
for (const a of argv) {
  if (a === "--help" || a === "-h") {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  if (a !== "--quick" && !/^--(runs|storm-volumes|storm-runs|out)=\S+$/.test(a)) {
    process.stderr.write(`bench: unknown argument ${a}\n${USAGE}\n`)
    process.exit(2)
  }
}
const quick = argv.includes("--quick")
const intFlag = (name: string, dflt: number): number => {
  const v = flag(name)
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`bench: --${name} wants a positive integer, got ${v}\n`)
    process.exit(2)
  }
  return n
}
const RUNS = intFlag("runs", quick ? 1 : 3)
const STORM_VOLUMES = intFlag("storm-volumes", 500)
const STORM_RUNS = intFlag("storm-runs", RUNS)
const OUT = path.resolve(flag("out") ?? path.join(repo, "bench/results"))
const BURST = 110
const SEQUENTIAL = 50
const APPROVER_REQUESTS = 500
// 15 s in quick mode: longer than the idle GC's quiet period (10 s, src/layers/IdleGc.ts), so the one
// memory-reducing GC each process runs after the burst (about 70 ms of CPU) falls in the settling, as
// it does in a full run, and the windows measure the steady idle
const IDLE_SETTLE_S = quick ? 15 : 30
const IDLE_WINDOW_S = quick ? 20 : 60
const NS = "bench"
const SA = "bench-app"
const APPROVER_NS = "bench-approver"
const APPROVER_SA = "approver-app"
const VOLUME = "spiffe"

// ------------------------------------------------------------------ progress, state, teardown

const t0 = Date.now()
const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`
const progress = (msg: string) => process.stderr.write(`[bench ${secs(Date.now() - t0).padStart(7)}] ${msg}\n`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

let plane: ControlPlane | undefined
const liveStacks = new Set<BenchStack>()
const liveProcs = new Set<ManagedProcess>()
const closers = new Set<() => void>()
let tearingDown: Promise<boolean> | undefined
/** Set when a phase fails: the run directory (the processes' logs) is then kept for a look. */
let phaseFailed = false

const teardown = (keepRunDir: boolean): Promise<boolean> => {
  tearingDown ??= (async () => {
    progress("tearing down: driver and approver processes, mounts, control plane")
    let clean = true
    for (const c of closers) c()
    for (const s of liveStacks) {
      try {
        const left = await s.stop()
        if (left.length > 0) {
          clean = false
          process.stderr.write(`bench: could not unmount ${left.join(", ")}\n`)
        }
      } catch (err) {
        clean = false
        process.stderr.write(`bench: stopping ${s.driver.name}: ${String(err)}\n`)
      }
    }
    for (const p of liveProcs) await p.stop().catch(() => undefined)
    if (plane !== undefined) {
      const left = unmountAllUnder(plane.tmpDir)
      if (left.length > 0) {
        clean = false
        process.stderr.write(`bench: still mounted: ${left.join(", ")}\n`)
      }
      await plane.stop().catch((err: unknown) => {
        clean = false
        process.stderr.write(`bench: stopping the control plane: ${String(err)}\n`)
      })
      if (clean && !keepRunDir && !phaseFailed) fs.rmSync(plane.tmpDir, { recursive: true, force: true })
      else process.stderr.write(`bench: run directory kept (process logs are in it): ${plane.tmpDir}\n`)
    }
    return clean
  })()
  return tearingDown
}

// ------------------------------------------------------------------ kubelet stand-in helpers

interface Pod {
  readonly w: Workload
  readonly req: NodePublishVolumeRequest
  readonly volumeHash: string
}

const ensuredNamespaces = new Set<string>()

/** Pods with the inline volume, bound to the stack's node, and their NodePublishVolume requests (tokens included). Not timed. */
const makePods = async (admin: KubeClient, s: BenchStack, prefix: string, n: number): Promise<Array<Pod>> => {
  const volumes = [{ name: VOLUME, driver: "spiffe.csi.cert-manager.io", readOnly: true }]
  const one = async (i: number, setup: boolean): Promise<Pod> => {
    const w = await createWorkload(admin, {
      namespace: NS,
      serviceAccount: SA,
      podName: `${prefix}-${i}`,
      nodeName: s.nodeId,
      volumes,
      createNamespace: setup,
      grantCertificateRequestCreate: setup
    })
    const req = await nodePublishRequest(admin, w, VOLUME, { kubeletRoot: s.kubeletRoot })
    return { w, req, volumeHash: labelHash(req.volume_id) }
  }
  // the first pod ever creates the namespace, ServiceAccount and RBAC; the rest go 12 at a time
  const head: Array<Pod> = []
  if (!ensuredNamespaces.has(NS)) {
    head.push(await one(0, true))
    ensuredNamespaces.add(NS)
  }
  const rest = await mapLimit(Array.from({ length: n - head.length }, (_, i) => i + head.length), 12, (i) => one(i, false))
  return [...head, ...rest]
}

const dropPods = async (admin: KubeClient, s: BenchStack, pods: ReadonlyArray<Pod>) => {
  await mapLimit(pods, 8, async (p) => {
    await s.conn.call("Node", "NodeUnpublishVolume", nodeUnpublishRequest(p.w, VOLUME, s.kubeletRoot)).catch((err: unknown) => {
      progress(`  NodeUnpublishVolume ${p.w.podName} failed: ${String(err)}`)
    })
    await deletePod(admin, p.w).catch(() => undefined)
  })
}

const crWatch = (info: ControlPlaneInfo, ns: string, selector: string, onEvent: Parameters<typeof watch>[2]) => {
  const w = watch(info, `/apis/cert-manager.io/v1/namespaces/${ns}/certificaterequests?labelSelector=${encodeURIComponent(selector)}`, onEvent)
  closers.add(w.close)
  return {
    opened: w.opened,
    close: () => {
      w.close()
      closers.delete(w.close)
    }
  }
}

// 1000: a mount(8) error names the target twice (the driver's detail, then mount's own words), 150 characters each here
const errMsg = (err: unknown) => (err instanceof Error ? err.message : String(err)).split("\n")[0]!.slice(0, 1000)

// ------------------------------------------------------------------ phases

/** help_ms: spawn to exit of the driver's `--help` (loading the program, no start-up). */
const helpTime = async (impl: Impl): Promise<number> => {
  const start = performance.now()
  await new Promise<void>((resolve, reject) => {
    const p = spawn(impl.driver.command, [...impl.driver.args, "--help"], { cwd: impl.cwd, stdio: "ignore" })
    p.on("error", reject)
    // timed whatever the exit code (pflag's ErrHelp may exit non-zero)
    p.on("exit", () => resolve())
  })
  return performance.now() - start
}

/** cold_start_ms: spawn to the first Identity.Probe with ready=true (own socket, data root and node id). */
const coldStart = async (info: ControlPlaneInfo, impl: Impl, r: ImplResult) => {
  for (let run = 0; run < RUNS; run++) {
    addRun(r, "help_ms", await helpTime(impl))
    const dir = fs.mkdtempSync(path.join(info.tmpDir, `cold-${impl.name}-`))
    const socket = path.join(dir, "csi.sock")
    const args = driverArgs(impl, { plane: info, nodeId: `bench-cold-${run}`, socket, dataRoot: path.join(dir, "data"), duration: "1h" })
    const start = performance.now()
    const proc = startProcess({ name: `cold-driver-${impl.name}-${run}`, command: impl.driver.command, args, logFile: path.join(dir, "driver.log"), cwd: impl.cwd })
    liveProcs.add(proc)
    let readyAt: number | undefined
    // One connection, made once the socket exists and kept for every Probe, as the kubelet and
    // the livenessprobe sidecar keep theirs. A channel made and closed per attempt (before
    // 2026-12-02 round 5) timed the benchmark's own channel set-up too: 410–455 ms against
    // 232–256 ms with one connection, the same build on the same machine (bench/results/footprint.md).
    let conn: ReturnType<typeof csiConnect> | undefined
    try {
      while (readyAt === undefined) {
        if (proc.exited() !== undefined) throw new Error(`cold-start driver exited: ${proc.tail(10)}`)
        if (performance.now() - start > 60_000) throw new Error("cold-start driver not ready within 60 s")
        if (conn === undefined && fs.existsSync(socket)) conn = csiConnect(socket)
        if (conn !== undefined) {
          try {
            if (await probeReady(conn, 500)) readyAt = performance.now()
          } catch {
            // not serving yet
          }
        }
        if (readyAt === undefined) await sleep(2)
      }
      addRun(r, "cold_start_ms", readyAt - start)
      progress(`  cold start run ${run + 1}/${RUNS}: ${round(readyAt - start)} ms`)
    } finally {
      conn?.close()
      await proc.stop()
      liveProcs.delete(proc)
      unmountAllUnder(dir)
    }
  }
}

/** mount_sequential_p50_ms and ready_to_files_p99_ms: 50 pods one after another. */
const sequential = async (info: ControlPlaneInfo, admin: KubeClient, s: BenchStack, r: ImplResult) => {
  for (let run = 0; run < RUNS; run++) {
    const pods = await makePods(admin, s, `seq-${s.impl.name}-${run}`, SEQUENTIAL)
    const readyAt = new Map<string, number>()
    const w = crWatch(info, NS, `${NODE_ID_HASH_LABEL}=${labelHash(s.nodeId)}`, (e) => {
      const h = e.object.metadata?.labels?.[VOLUME_ID_HASH_LABEL]
      if (e.type === "MODIFIED" && h !== undefined && !readyAt.has(h) && conditionOf(e, "Ready") === "True") readyAt.set(h, e.at)
    })
    await w.opened
    const lat: Array<number> = []
    const rtf: Array<number> = []
    try {
      for (const p of pods) {
        const crt = path.join(p.req.target_path, "tls.crt")
        let filesAt: number | undefined
        // 1 ms poll of the target, from the call on, until the file is visible
        const poller = setInterval(() => {
          if (filesAt === undefined && fs.existsSync(crt)) filesAt = performance.now()
        }, 1)
        const start = performance.now()
        try {
          await s.conn.call("Node", "NodePublishVolume", p.req)
          lat.push(performance.now() - start)
          for (let i = 0; i < 2000 && filesAt === undefined; i++) await sleep(1)
          for (let i = 0; i < 500 && !readyAt.has(p.volumeHash); i++) await sleep(10)
        } finally {
          clearInterval(poller)
        }
        const ready = readyAt.get(p.volumeHash)
        if (filesAt !== undefined && ready !== undefined) rtf.push(filesAt - ready)
      }
    } finally {
      w.close()
      await dropPods(admin, s, pods)
    }
    addRun(r, "mount_sequential_p50_ms", percentile(lat, 50))
    addRun(r, "ready_to_files_p99_ms", percentile(rtf, 99))
    addSamples(r, "sequential", lat)
    addSamples(r, "ready_to_files", rtf)
    if (rtf.length < SEQUENTIAL) r.notes.push(`sequential run ${run + 1}: ready_to_files has ${rtf.length}/${SEQUENTIAL} samples (Ready event or files not seen)`)
    progress(
      `  sequential run ${run + 1}/${RUNS}: publish p50 ${round(percentile(lat, 50))} ms, p99 ${round(percentile(lat, 99))} ms; ` +
        `ready→files p50 ${round(percentile(rtf, 50))} ms, p99 ${round(percentile(rtf, 99))} ms (min ${round(Math.min(...rtf))})`
    )
  }
}

/**
 * Where a burst's time goes: per volume, when its first request was created, approved and signed
 * (watch arrival times, performance.now()), against when its NodePublishVolume call began and answered.
 */
const stageWatch = (info: ControlPlaneInfo, s: BenchStack, also?: Parameters<typeof watch>[2]) => {
  const stamps = new Map<string, { created?: number; approved?: number; ready?: number }>()
  const w = crWatch(info, NS, `${NODE_ID_HASH_LABEL}=${labelHash(s.nodeId)}`, (e) => {
    also?.(e)
    const h = e.object.metadata?.labels?.[VOLUME_ID_HASH_LABEL]
    if (h === undefined) return
    const st = stamps.get(h) ?? {}
    stamps.set(h, st)
    if (e.type === "ADDED") st.created ??= e.at
    if (conditionOf(e, "Approved") === "True") st.approved ??= e.at
    if (conditionOf(e, "Ready") === "True") st.ready ??= e.at
  })
  /** p50 / p99 of each stage over the pods whose call answered (`done`: volume hash → answer time). */
  const breakdown = (pods: ReadonlyArray<Pod>, t: number, done: ReadonlyMap<string, number>) => {
    const stages = { "call→created": [] as Array<number>, "created→approved": [] as Array<number>, "approved→ready": [] as Array<number>, "ready→response": [] as Array<number> }
    for (const p of pods) {
      const st = stamps.get(p.volumeHash)
      const d = done.get(p.volumeHash)
      if (st?.created === undefined || st.approved === undefined || st.ready === undefined || d === undefined) continue
      stages["call→created"].push(st.created - t)
      stages["created→approved"].push(st.approved - st.created)
      stages["approved→ready"].push(st.ready - st.approved)
      stages["ready→response"].push(d - st.ready)
    }
    const text = Object.entries(stages).map(([k, xs]) => `${k} p50 ${round(percentile(xs, 50))} / p99 ${round(percentile(xs, 99))} ms`).join("; ")
    return { breakdown: text, volumes: stages["call→created"].length }
  }
  return { opened: w.opened, close: w.close, breakdown }
}

/** mount_burst110_p50/p99_ms: 110 NodePublishVolume calls at once. The last run's volumes stay published (for idle). */
const burst = async (info: ControlPlaneInfo, admin: KubeClient, s: BenchStack, r: ImplResult): Promise<Array<Pod>> => {
  let kept: Array<Pod> = []
  for (let run = 0; run < RUNS; run++) {
    const pods = await makePods(admin, s, `burst-${s.impl.name}-${run}`, BURST)
    progress(`  burst run ${run + 1}/${RUNS}: ${BURST} pods and tokens ready; publishing all at once`)
    const w = stageWatch(info, s)
    await w.opened
    const t = performance.now()
    const done = new Map<string, number>()
    const results = await Promise.allSettled(
      pods.map(async (p) => {
        const start = performance.now()
        await s.conn.call("Node", "NodePublishVolume", p.req)
        done.set(p.volumeHash, performance.now())
        return performance.now() - start
      })
    )
    const wall = performance.now() - t
    w.close()
    const { breakdown, volumes } = w.breakdown(pods, t, done)
    progress(`  burst run ${run + 1}/${RUNS} stages (${volumes} volumes): ${breakdown}`)
    r.notes.push(`burst run ${run + 1} stages, from the watch: ${breakdown}`)
    const lat = results.flatMap((x) => (x.status === "fulfilled" ? [x.value] : []))
    const failed = results.flatMap((x) => (x.status === "rejected" ? [errMsg(x.reason)] : []))
    if (failed.length > 0) r.notes.push(`burst run ${run + 1}: ${failed.length} of ${BURST} NodePublishVolume calls failed (first: ${failed[0]})`)
    addRun(r, "mount_burst110_p50_ms", percentile(lat, 50))
    addRun(r, "mount_burst110_p99_ms", percentile(lat, 99))
    addSamples(r, "burst110", lat)
    progress(
      `  burst run ${run + 1}/${RUNS}: p50 ${round(percentile(lat, 50))} ms, p99 ${round(percentile(lat, 99))} ms, all done in ${round(wall)} ms, ${failed.length} failed`
    )
    if (run === RUNS - 1) kept = pods
    else await dropPods(admin, s, pods)
  }
  return kept
}

/** idle_rss_110_mib and idle_cpu_s_per_min: the driver with 110 volumes published, after settling. */
const idle = async (s: BenchStack, r: ImplResult, published: number) => {
  progress(`  idle: ${published} volumes published; settling ${IDLE_SETTLE_S} s, then ${RUNS} window(s) of ${IDLE_WINDOW_S} s`)
  await sleep(IDLE_SETTLE_S * 1000)
  for (let run = 0; run < RUNS; run++) {
    const cpu0 = cpuSeconds(s.driver.pid)
    const rssSamples: Array<number> = []
    const approverRss: Array<number> = []
    const end = performance.now() + IDLE_WINDOW_S * 1000
    const w0 = performance.now()
    while (performance.now() < end) {
      rssSamples.push(rssMiB(s.driver.pid))
      approverRss.push(rssMiB(s.approver.pid))
      await sleep(Math.min(5_000, Math.max(0, end - performance.now())))
    }
    rssSamples.push(rssMiB(s.driver.pid))
    const cpu = cpuSeconds(s.driver.pid) - cpu0
    const perMin = (cpu / ((performance.now() - w0) / 1000)) * 60
    addRun(r, "idle_rss_110_mib", median(rssSamples))
    addRun(r, "approver_idle_rss_mib", median(approverRss))
    addRun(r, "idle_cpu_s_per_min", perMin)
    progress(`  idle window ${run + 1}/${RUNS}: RSS ${round(median(rssSamples))} MiB (min ${round(Math.min(...rssSamples))}, max ${round(Math.max(...rssSamples))}), CPU ${round(perMin, 3)} s/min`)
  }
}

/** approver_decision_p99_ms and approver_throughput_per_s: 500 valid requests created at once. */
const approver = async (info: ControlPlaneInfo, admin: KubeClient, impl: Impl, r: ImplResult) => {
  const w = await createWorkload(admin, { namespace: APPROVER_NS, serviceAccount: APPROVER_SA, podName: "approver-app-0", volumes: [] })
  const token = (await requestPodToken(admin, w)).token
  const uri = `spiffe://${TRUST_DOMAIN}/ns/${APPROVER_NS}/sa/${APPROVER_SA}`
  const csr = await csrRequest(uri)
  const api = new Api(info, token, 64)
  const adminApi = new Api(info, info.adminToken, 4)
  try {
    for (let run = 0; run < RUNS; run++) {
      const label = "bench.csi-driver-spiffe.io/run"
      const runId = `${impl.name}-${run}`
      const bodies = Array.from({ length: APPROVER_REQUESTS }, (_, i) => {
        const cr = certificateRequest(csr, {
          name: `ap-${runId}-${i}`,
          namespace: APPROVER_NS,
          annotation: uri,
          username: null,
          duration: "1h",
          issuerRef: { name: info.issuer.name, kind: info.issuer.kind, group: info.issuer.group }
        })
        return { ...cr, metadata: { ...cr.metadata, labels: { [label]: runId } } }
      })
      const decidedAt = new Map<string, number>()
      const denied = new Set<string>()
      const readySeen = new Set<string>()
      const cw = crWatch(info, APPROVER_NS, `${label}=${runId}`, (e) => {
        const name = e.object.metadata?.name ?? ""
        if (!decidedAt.has(name)) {
          if (conditionOf(e, "Approved") === "True") decidedAt.set(name, e.at)
          else if (conditionOf(e, "Denied") === "True") {
            decidedAt.set(name, e.at)
            denied.add(name)
          }
        }
        if (conditionOf(e, "Ready") === "True") readySeen.add(name)
      })
      await cw.opened
      const createdAt = new Map<string, number>()
      const createFailed: Array<string> = []
      try {
        const start = performance.now()
        await Promise.all(
          bodies.map(async (b) => {
            const res = await api.request("POST", `/apis/cert-manager.io/v1/namespaces/${APPROVER_NS}/certificaterequests`, b)
            if (res.status === 201) createdAt.set(b.metadata.name!, performance.now())
            else createFailed.push(`${res.status} ${res.body.slice(0, 200)}`)
          })
        )
        const createdAll = performance.now()
        const deadline = performance.now() + 180_000
        while (decidedAt.size < createdAt.size && performance.now() < deadline) await sleep(5)
        const decisions = [...createdAt].flatMap(([n, c]) => (decidedAt.has(n) && !denied.has(n) ? [decidedAt.get(n)! - c] : []))
        const lastDecision = Math.max(...decidedAt.values())
        const throughput = (decisions.length / (lastDecision - start)) * 1000
        const negative = decisions.filter((d) => d < 0).length
        addRun(r, "approver_decision_p99_ms", percentile(decisions, 99))
        addRun(r, "approver_throughput_per_s", throughput)
        addSamples(r, "approver_decision", decisions.map((d) => Math.max(d, 0.1)))
        const problems = [
          createFailed.length > 0 ? `${createFailed.length} creates failed (first: ${createFailed[0]})` : "",
          denied.size > 0 ? `${denied.size} denied` : "",
          decidedAt.size < createdAt.size ? `${createdAt.size - decidedAt.size} undecided after 180 s` : "",
          negative > 0 ? `${negative} Approved events arrived before their create response (counted as is)` : ""
        ].filter((x) => x !== "")
        if (problems.length > 0) r.notes.push(`approver run ${run + 1}: ${problems.join("; ")}`)
        progress(
          `  approver run ${run + 1}/${RUNS}: ${decisions.length} approved; creates took ${round(createdAll - start)} ms; decision p50 ${round(percentile(decisions, 50))} ms, ` +
            `p99 ${round(percentile(decisions, 99))} ms; ${round(throughput)} approvals/s${problems.length > 0 ? `; ${problems.join("; ")}` : ""}`
        )
        // let cert-manager finish signing before the next run, so it does not load the next measurement
        const readyDeadline = performance.now() + 120_000
        while (readySeen.size < createdAt.size - denied.size && performance.now() < readyDeadline) await sleep(100)
      } finally {
        cw.close()
        await adminApi.request("DELETE", `/apis/cert-manager.io/v1/namespaces/${APPROVER_NS}/certificaterequests?labelSelector=${encodeURIComponent(`${label}=${runId}`)}`)
      }
    }
  } finally {
    api.close()
    adminApi.close()
    await deletePod(admin, w).catch(() => undefined)
  }
}

interface VolumeState {
  initialLink: string | undefined
  initialSerial: string
  notBefore: number
  notAfter: number
  renewedAt: number | undefined
}

/** renewal_storm_s: N volumes with 1-minute certificates issued together; first renewal due → all renewed. */
const renewalStorm = async (info: ControlPlaneInfo, admin: KubeClient, s: BenchStack, r: ImplResult, n: number) => {
  for (let run = 0; run < STORM_RUNS; run++) {
    const pods = await makePods(admin, s, `storm-${s.impl.name}-${run}`, n)
    const failedCrs = new Set<string>()
    const cw = stageWatch(info, s, (e) => {
      const ready = e.object.status?.conditions?.find((c) => c.type === "Ready")
      if (conditionOf(e, "Denied") === "True" || (ready?.status === "False" && ready.reason === "Failed")) failedCrs.add(e.object.metadata?.name ?? "")
    })
    await cw.opened
    const states = new Map<Pod, VolumeState>()
    const readState = (p: Pod): VolumeState => {
      const crt = new x509.X509Certificate(fs.readFileSync(path.join(p.req.target_path, "tls.crt"), "utf8"))
      let link: string | undefined
      try {
        link = fs.readlinkSync(path.join(p.req.target_path, "..data"))
      } catch {
        link = undefined
      }
      return { initialLink: link, initialSerial: crt.serialNumber, notBefore: crt.notBefore.getTime(), notAfter: crt.notAfter.getTime(), renewedAt: undefined }
    }
    try {
      progress(`  renewal storm run ${run + 1}/${STORM_RUNS}: ${n} pods and tokens ready; publishing all at once (1m certificates)`)
      const rssBefore = rssMiB(s.driver.pid)
      // The plane shares the machine: the driver's own CPU tells its cost apart from a slow plane's wait.
      const cpuBefore = cpuSeconds(s.driver.pid)
      const t = performance.now()
      const lat: Array<number> = []
      const answered = new Map<string, number>()
      const results = await Promise.allSettled(
        pods.map(async (p) => {
          const start = performance.now()
          await s.conn.call("Node", "NodePublishVolume", p.req)
          answered.set(p.volumeHash, performance.now())
          lat.push(performance.now() - start)
          states.set(p, readState(p)) // right away: a volume published early may renew before the burst ends
        })
      )
      const failedPublish = results.filter((x) => x.status === "rejected").length
      const publishWall = performance.now() - t
      progress(`    published ${states.size}/${n} in ${round(publishWall / 1000, 1)} s (p50 ${round(percentile(lat, 50))} ms, p99 ${round(percentile(lat, 99))} ms), ${failedPublish} failed`)
      const stages = cw.breakdown(pods, t, answered)
      progress(`    publish stages (${stages.volumes} volumes): ${stages.breakdown}`)
      const vs = [...states.values()]
      const lifetime = median(vs.map((v) => v.notAfter - v.notBefore))
      const firstDue = Math.min(...vs.map((v) => v.notBefore)) + lifetime * (2 / 3 - 0.05)
      const lastDue = Math.max(...vs.map((v) => v.notBefore)) + lifetime * (2 / 3 + 0.05)
      const deadline = Math.max(...vs.map((v) => v.notAfter)) + 30_000
      progress(`    certificates' lifetime ${lifetime / 1000} s; renewals fall due between +${round((firstDue - Date.now()) / 1000)} s and +${round((lastDue - Date.now()) / 1000)} s`)
      let lastLog = Date.now()
      for (;;) {
        let pending = 0
        for (const [p, v] of states) {
          if (v.renewedAt !== undefined) continue
          let link: string | undefined
          try {
            link = fs.readlinkSync(path.join(p.req.target_path, "..data"))
          } catch {
            link = undefined
          }
          if (link !== undefined && link !== v.initialLink) v.renewedAt = Date.now()
          else pending++
        }
        if (pending === 0 || Date.now() > deadline) break
        if (Date.now() - lastLog > 10_000) {
          lastLog = Date.now()
          progress(`    ${states.size - pending}/${states.size} renewed`)
        }
        await sleep(100)
      }
      // confirm by serial: a renewal is a new certificate in the target
      let renewed = 0
      for (const [p, v] of states) {
        if (v.renewedAt === undefined) continue
        const crt = new x509.X509Certificate(fs.readFileSync(path.join(p.req.target_path, "tls.crt"), "utf8"))
        if (crt.serialNumber !== v.initialSerial) renewed++
        else v.renewedAt = undefined
      }
      const done = vs.filter((v) => v.renewedAt !== undefined).map((v) => v.renewedAt!)
      const stormS = (Math.max(...done) - firstDue) / 1000
      const failures = n - renewed
      addRun(r, "renewal_storm_s", stormS)
      addRun(r, "storm_rss_before_mib", rssBefore)
      addRun(r, "storm_rss_after_mib", rssMiB(s.driver.pid))
      addRun(r, "storm_driver_cpu_s", cpuSeconds(s.driver.pid) - cpuBefore)
      addRun(r, "renewal_storm_failures", failures)
      addSamples(r, "storm_publish", lat)
      const lag = vs.filter((v) => v.renewedAt !== undefined).map((v) => (v.renewedAt! - (v.notBefore + lifetime * (2 / 3 + 0.05))) / 1000)
      r.notes.push(
        `renewal storm run ${run + 1}: ${n} volumes, publish burst ${round(publishWall / 1000, 1)} s (p99 ${round(percentile(lat, 99))} ms); due window ${round((lastDue - firstDue) / 1000, 1)} s ` +
          `(2/3 ± 5 % jitter of each lifetime); all renewed ${round(stormS, 1)} s after the first was due; ${failures} volumes without a new serial, ` +
          `${failedPublish} publish failures, ${failedCrs.size} requests Denied/Failed; renewal after the latest possible due instant p99 ${round(percentile(lag, 99), 2)} s`
      )
      r.notes.push(`renewal storm run ${run + 1} publish stages, from the watch: ${stages.breakdown}`)
      progress(`    renewed ${renewed}/${n}: storm ${round(stormS, 2)} s (due window ${round((lastDue - firstDue) / 1000, 1)} s), ${failures} failures, ${failedCrs.size} CRs Denied/Failed`)
    } finally {
      cw.close()
      await dropPods(admin, s, pods)
    }
    // what the storm leaves once its volumes are gone: against storm_rss_before_mib, the driver's leak or keep
    await sleep(IDLE_SETTLE_S * 1000)
    addRun(r, "storm_rss_unpublished_mib", rssMiB(s.driver.pid))
  }
}

// ------------------------------------------------------------------ one implementation

const phase = async (r: ImplResult, name: string, f: () => Promise<void>) => {
  const t = Date.now()
  progress(`${name}`)
  try {
    await f()
  } catch (err) {
    const msg = errMsg(err)
    phaseFailed = true
    r.notes.push(`phase ${name} failed: ${msg}`)
    progress(`  FAILED: ${msg}`)
  }
  progress(`  (${secs(Date.now() - t)})`)
}

const benchImpl = async (info: ControlPlaneInfo, admin: KubeClient, impl: Impl): Promise<ImplResult> => {
  const r = newImplResult()
  progress(`=== ${impl.name}: ${impl.driver.command} ${impl.driver.args.join(" ")}`)
  await phase(r, `${impl.name}: cold start (${RUNS} run(s))`, () => coldStart(info, impl, r))

  progress(`${impl.name}: starting driver and approver (1h certificates)`)
  const s = await startBenchStack(info, impl, { name: "main", duration: "1h", nodeId: "bench-node" })
  liveStacks.add(s)
  try {
    // warm-up, not counted: first issuance (approver leading, JIT, connections)
    const warm = await makePods(admin, s, `warm-${impl.name}`, 3)
    for (const p of warm) await s.conn.call("Node", "NodePublishVolume", p.req)
    await dropPods(admin, s, warm)
    await phase(r, `${impl.name}: sequential ${SEQUENTIAL} pods + ready→files (${RUNS} run(s))`, () => sequential(info, admin, s, r))
    let kept: Array<Pod> = []
    await phase(r, `${impl.name}: burst of ${BURST} (${RUNS} run(s))`, async () => {
      kept = await burst(info, admin, s, r)
    })
    if (kept.length > 0) {
      await phase(r, `${impl.name}: idle with ${kept.length} volumes`, () => idle(s, r, kept.length))
      await dropPods(admin, s, kept)
    }
    await phase(r, `${impl.name}: approver, ${APPROVER_REQUESTS} requests in a burst (${RUNS} run(s))`, () => approver(info, admin, impl, r))
  } finally {
    const left = await s.stop()
    liveStacks.delete(s)
    if (left.length > 0) throw new Error(`left mounted: ${left.join(", ")}`)
  }

  await phase(r, `${impl.name}: renewal storm, ${STORM_VOLUMES} volumes (${STORM_RUNS} run(s))`, async () => {
    const storm = await startBenchStack(info, impl, { name: "storm", duration: "1m", nodeId: "bench-storm-node" })
    liveStacks.add(storm)
    try {
      await renewalStorm(info, admin, storm, r, STORM_VOLUMES)
    } finally {
      const left = await storm.stop()
      liveStacks.delete(storm)
      if (left.length > 0) throw new Error(`left mounted: ${left.join(", ")}`)
    }
  })
  return r
}

// ------------------------------------------------------------------ method text

/** A command line of ours as the report shows it: paths relative to the repository. */
const shownArgs = (args: ReadonlyArray<string>) => args.map((a) => (path.isAbsolute(a) ? path.relative(repo, a) : a)).join(" ")

const method = (goReason: string | undefined) => `Everything runs on this one machine: etcd, kube-apiserver, the cert-manager webhook and controller (CA ClusterIssuer), our
approver and driver as separate processes (\`node ${shownArgs(ours.approver.args)}\`, \`node ${shownArgs(ours.driver.args)}\`, both at \`--log-level=1\`), and
this script, which plays the kubelet (test/harness/kubelet.ts): for every pod it creates a Pod bound to the driver's node and
a Pod-bound TokenRequest token, then calls NodePublishVolume over the CSI unix socket with the volume context the kubelet
builds. Creating Pods and tokens is never timed. Times are taken with the monotonic clock (\`performance.now()\`) of this
process unless said otherwise. Each metric is measured in ${RUNS} run(s); the table shows the median of the runs' values
(the per-run values are in latest.json). Certificates are ECDSA P-256, signed by cert-manager's CA issuer.

- **mount_burst110_p50/p99_ms**: ${BURST} fresh pods; all ${BURST} NodePublishVolume calls are started in the same tick over one
  gRPC connection (as the kubelet keeps one); each call's latency is from its start to its response (key generation,
  CertificateRequest create, approval by the approver, signing by cert-manager, files written, read-only bind mount).
- **mount_sequential_p50_ms**: ${SEQUENTIAL} fresh pods published one after another (each call starts when the previous returned).
- **ready_to_files_p99_ms**: measured on the sequential pods. A watch connection of this script on the driver's
  CertificateRequests (label \`${NODE_ID_HASH_LABEL}\`) stamps, on arrival, the first MODIFIED event carrying
  \`Ready=True\` for each volume (the condition's lastTransitionTime has only 1 s resolution, so it is not used). From the
  call's start, a 1 ms interval timer checks \`fs.existsSync(<target>/tls.crt)\`; the first hit is "files visible" (the
  target is empty until the driver's bind mount, which comes after the files are written). The value is
  files-visible − Ready-event, so it includes the driver's own watch delivery, reading the signed certificate, writing the
  files, the bind mount, and up to ~1 ms of poll granularity; the two watches (this script's and the driver's) are
  delivered by the same kube-apiserver at about the same moment. p99 of ${SEQUENTIAL} samples is close to their maximum.
- **approver_decision_p99_ms / approver_throughput_per_s**: ${APPROVER_REQUESTS} valid CertificateRequests (identity annotation,
  matching URI SAN, duration, usages, issuer) are POSTed at once, authenticated with a Pod-bound TokenRequest token of the
  requesting ServiceAccount (so the webhook fills spec.username as for the driver's requests), over up to 64 keep-alive
  connections. Decision latency is from each create's 201 response to the first watch event that shows \`Approved=True\`.
  Throughput is approvals / (last approval seen − first create sent). Between runs the script waits for cert-manager to sign
  them all and deletes them.
- **idle_rss_110_mib / idle_cpu_s_per_min**: the ${BURST} volumes of the last burst run stay published; after ${IDLE_SETTLE_S} s of
  settling, ${RUNS} consecutive window(s) of ${IDLE_WINDOW_S} s: RSS is the median of VmRSS samples (\`/proc/<pid>/status\`, every 5 s)
  and CPU is the growth of utime+stime (\`/proc/<pid>/stat\`, USER_HZ 100, so 0.01 s resolution) scaled to one minute.
  With 1h certificates no renewal falls in the windows.
- **renewal_storm_s**: a separate driver + approver pair with \`--certificate-request-duration=1m\` (both), on its own node id.
  ${STORM_VOLUMES} pods are published at once, so their certificates are issued within the burst. Each volume renews at 2/3 of its
  lifetime ± 5 % jitter (37–43 s after its NotBefore). A 100 ms poll of every target's \`..data\` symlink (the atomic-writer
  payload link) detects each renewal (wall clock); at the end the new serial in \`tls.crt\` is checked. The value is the time
  from the earliest possible due instant (earliest NotBefore + 61.7 % of the lifetime; NotBefore has 1 s resolution) to the
  last volume holding a new serial; the note gives the due window itself (its lower bound), failures (volumes without a new
  serial by the last NotAfter + 30 s, Denied/Failed requests, publish errors). The driver's VmRSS is read before the publish
  burst, once every volume is renewed (all ${STORM_VOLUMES} still published) and ${IDLE_SETTLE_S} s after all of them were unpublished.
  **storm_driver_cpu_s** is the driver's utime+stime over the same span (one issuance, mount and renewal per volume): the plane
  runs on the same cores, so the wall time also moves with the plane's speed, and this tells the driver's own share. The
  note adds the publish stages (as in the burst) from the storm's watch.
- **cold_start_ms**: a fresh driver process (own socket, data root and node id) from \`spawn()\` to the first
  \`Identity.Probe\` that answers \`ready=true\` (ready means: volume state loaded, the CertificateRequest informer synced,
  the issuer known). The socket is checked every 2 ms; the probes share one connection, made once the socket exists (as the kubelet keeps one). Node's start-up (loading and
  type-stripping the TypeScript sources) is included.

${goReason === undefined
    ? "The Go original ran through the same kubelet stand-in, phases and flags, one stack after the other."
    : `The Go original was not run: ${goReason} With \`CSI_SPIFFE_GO_DRIVER_BIN\` and \`CSI_SPIFFE_GO_APPROVER_BIN\` set to prebuilt binaries the script runs it through the same phases, one stack after the other.`}`

// ------------------------------------------------------------------ main

const main = async () => {
  if (process.getuid?.() !== 0) throw new Error("run as root: the driver mounts a tmpfs and bind mounts")
  const go = goImpl()
  const goReason = typeof go === "string"
    ? `The Go original (github.com/cert-manager/csi-driver-spiffe v0.15.0) is never built or downloaded by this project; hand in prebuilt binaries to compare (${go}).`
    : undefined
  progress(`node ${process.version}, ${os.cpus().length} CPUs; ${quick ? "--quick" : "full"}: ${RUNS} run(s), renewal storm ${STORM_VOLUMES} volumes × ${STORM_RUNS} run(s)`)
  if (goReason !== undefined) progress(`Go original: not measured (${go as string})`)
  progress("upstream programs (cached builds): etcd, kube-apiserver, cert-manager, helm")
  const upstream = await ensureUpstream(controlPlaneComponents, { onProgress: (l) => progress(`  ${l}`) })
  progress("control plane: etcd, kube-apiserver, cert-manager webhook + controller, CA ClusterIssuer")
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "csi-spiffe-bench-"))
  plane = await startControlPlane({ tmpDir, keepTmpDir: true, upstream, log: (m) => (m.startsWith("[control-plane] kept ") ? undefined : progress(`  ${m}`)) })
  progress(`control plane ready in ${secs(plane.timings["total"] ?? 0)}: ${plane.server}`)
  const info = toInfo(plane)
  const admin = connect(info)
  await ensureCsiDriver(admin)

  const started = new Date().toISOString()
  const oursResult = await benchImpl(info, admin, ours)
  const goResult = typeof go === "string" ? undefined : await benchImpl(info, admin, go)

  const cpus = os.cpus()
  const report: Report = {
    machine: { cpus: cpus.length, cpu_model: cpus[0]?.model ?? "unknown", memory_mib: Math.round(os.totalmem() / 1048576), node: process.version, kernel: os.release() },
    mode: quick ? "quick" : "full",
    runs: RUNS,
    started,
    duration_s: Math.round((Date.now() - t0) / 1000),
    ours: oursResult,
    go: goResult,
    goUnavailable: goReason,
    parameters: {
      burst: BURST,
      sequential: SEQUENTIAL,
      approver_requests: APPROVER_REQUESTS,
      idle_settle_s: IDLE_SETTLE_S,
      idle_window_s: IDLE_WINDOW_S,
      storm_volumes: STORM_VOLUMES,
      storm_runs: STORM_RUNS,
      storm_certificate_duration: "1m"
    },
    extra: {
      image: imageSizes(),
      renewal_storm_failures: { ours: oursResult.runs["renewal_storm_failures"] ?? [], go: goResult?.runs["renewal_storm_failures"] ?? null },
      notes: { ours: oursResult.notes, go: goResult?.notes ?? null }
    }
  }
  const series = (res: ImplResult | undefined, who: string, dashed: boolean) =>
    res === undefined
      ? []
      : [
        { label: `${who}: publish, burst of ${BURST}`, xs: res.samples["burst110"] ?? [], dashed },
        { label: `${who}: publish, sequential`, xs: res.samples["sequential"] ?? [], dashed },
        { label: `${who}: Ready → files visible`, xs: (res.samples["ready_to_files"] ?? []).map((x) => Math.max(x, 0.1)), dashed },
        { label: `${who}: approver decision (${APPROVER_REQUESTS})`, xs: res.samples["approver_decision"] ?? [], dashed },
        { label: `${who}: publish, storm of ${STORM_VOLUMES}`, xs: res.samples["storm_publish"] ?? [], dashed }
      ]
  const chart = toSvg(
    [...series(oursResult, "ours", false), ...series(goResult, "go", true)],
    `csi-driver-spiffe latency CDFs (${quick ? "quick" : "full"}, ${RUNS} run(s) pooled)${goResult === undefined ? "; Go original not measured" : ""}`
  )
  writeResults(OUT, report, method(goReason), chart)
  progress(`wrote ${path.join(OUT, "latest.json")}, latest.md, latest.svg`)
  process.stdout.write(fs.readFileSync(path.join(OUT, "latest.json"), "utf8"))
}

/**
 * Our image as scripts/images/build.sh last built it (never built from here): its docker-archive's
 * bytes, and the same gzip -9 compressed (what a registry stores and a node pulls, near enough).
 */
const imageSizes = (): { ref: string; archive_mib: number; gzip9_mib: number } | string => {
  let env: string
  try {
    env = execFileSync("bash", [path.join(repo, "scripts/images/build.sh"), "--print-env"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
  } catch (err) {
    return `scripts/images/build.sh --print-env failed: ${errMsg(err)}`
  }
  const line = (k: string) => env.split("\n").find((l) => l.startsWith(`${k}=`))?.slice(k.length + 1)
  const ref = line("CSI_SPIFFE_IMAGE_DRIVER")
  const archive = line("CSI_SPIFFE_IMAGE_DRIVER_ARCHIVE")
  if (ref === undefined || archive === undefined || !fs.existsSync(archive)) return "image not built (bash scripts/images/build.sh)"
  const bytes = fs.readFileSync(archive)
  const mib = (n: number) => round(n / 1048576, 1)
  return { ref, archive_mib: mib(bytes.length), gzip9_mib: mib(zlib.gzipSync(bytes, { level: 9 }).length) }
}

const onSignal = (signal: NodeJS.Signals) => {
  process.stderr.write(`\nbench: ${signal}; tearing down\n`)
  void teardown(true).then(() => process.exit(130), () => process.exit(1))
}

if (import.meta.main) {
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
  try {
    await main()
    const clean = await teardown(false)
    progress(`done in ${secs(Date.now() - t0)}${clean ? "" : " (teardown left something behind, see above)"}`)
    process.exit(clean ? 0 : 1)
  } catch (err) {
    process.stderr.write(`\nbench FAILED after ${secs(Date.now() - t0)}: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    for (const s of liveStacks) process.stderr.write(`--- last lines of ${s.driver.logFile} ---\n${s.driver.tail(20)}\n`)
    await teardown(true)
    process.exit(1)
  }
}

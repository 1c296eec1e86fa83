/**
 * Benchmark stacks: a CSI driver and an approver (ours, or the Go original's prebuilt binaries) as
 * real processes against the plane, driven through the harness's kubelet stand-in. Unlike
 * test/e2e/stack.ts the binaries are a parameter, and both run at the default log level (the e2e
 * stack runs at 4, which would measure logging).
 */
import * as grpc from "@grpc/grpc-js"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { loadCsiServices } from "../../src/csi/CsiProto.ts"
import type { ControlPlaneInfo } from "../../test/harness/globalSetup.ts"
import { freePort } from "../../test/harness/plane.ts"
import { acceptsConnections, type ManagedProcess, startProcess, waitFor } from "../../test/harness/process.ts"
import { firstLineNodeFlags } from "./nodeFlags.ts"

export const repo = fileURLToPath(new URL("../..", import.meta.url))

/** How to start one implementation's programs: command plus leading arguments (the flags follow). */
export interface Impl {
  readonly name: "ours" | "go"
  readonly driver: { readonly command: string; readonly args: ReadonlyArray<string> }
  readonly approver: { readonly command: string; readonly args: ReadonlyArray<string> }
  /** Working directory of both programs. */
  readonly cwd: string
}

/**
 * Our binaries: the sources, or with CSI_SPIFFE_BENCH_BUNDLE=1 the production bundle of
 * `npm run build:bundle` (what the image runs), each with the Node flags of its first line.
 */
const bundled = process.env["CSI_SPIFFE_BENCH_BUNDLE"] === "1"
const ourEntry = (name: "csi" | "approver"): ReadonlyArray<string> => {
  const f = bundled ? path.join(repo, `dist/${name}.mjs`) : path.join(repo, `src/bin/${name}.ts`)
  if (!fs.existsSync(f)) throw new Error(`CSI_SPIFFE_BENCH_BUNDLE=1 but ${f} is missing: run npm run build:bundle`)
  return [...firstLineNodeFlags(f), f]
}

export const ours: Impl = {
  name: "ours",
  // No kubelet watches a bench node, so the driver serves no plugin registration.
  driver: { command: process.execPath, args: [...ourEntry("csi"), "--plugin-registration=false"] },
  approver: { command: process.execPath, args: [...ourEntry("approver")] },
  cwd: repo
}

/** The Go original, when both prebuilt binaries are given (never built or downloaded here). */
export const goImpl = (): Impl | string => {
  const d = process.env["CSI_SPIFFE_GO_DRIVER_BIN"]
  const a = process.env["CSI_SPIFFE_GO_APPROVER_BIN"]
  if (d === undefined && a === undefined) return "CSI_SPIFFE_GO_DRIVER_BIN and CSI_SPIFFE_GO_APPROVER_BIN are not set"
  if (d === undefined || a === undefined) return "only one of CSI_SPIFFE_GO_DRIVER_BIN and CSI_SPIFFE_GO_APPROVER_BIN is set"
  for (const f of [d, a]) {
    try {
      fs.accessSync(f, fs.constants.X_OK)
    } catch {
      return `${f} is not an executable file`
    }
  }
  // The Go driver (csi-lib's filesystem storage) opens --data-root through a file system rooted at
  // `/`, so it runs in `/` with a data root relative to it (driverArgs), as the original chart
  // runs it (`--data-root=csi-data-dir`, working directory `/`).
  return { name: "go", driver: { command: d, args: [] }, approver: { command: a, args: [] }, cwd: "/" }
}

export const TRUST_DOMAIN = "foo.bar"

/** Every mount point at or under `dir` (deepest first), from this process' mount table. */
export const mountsUnder = (dir: string): Array<string> =>
  fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m === dir || m.startsWith(`${dir}/`)).sort().reverse()

export const unmountAllUnder = (dir: string): Array<string> => {
  const failed: Array<string> = []
  for (const m of mountsUnder(dir)) {
    try {
      execFileSync("umount", [m], { stdio: "pipe" })
    } catch {
      try {
        execFileSync("umount", ["-l", m], { stdio: "pipe" })
      } catch {
        failed.push(m)
      }
    }
  }
  return failed
}

const services = Effect.runSync(loadCsiServices)
type Unary = (r: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: unknown) => void) => void

export interface CsiConn {
  readonly call: (service: "Identity" | "Node", method: string, request: object, timeoutMs?: number) => Promise<unknown>
  readonly close: () => void
}

/** One channel per service over the socket, as the kubelet keeps one connection per driver. */
export const csiConnect = (socket: string): CsiConn => {
  const opts = { "grpc.initial_reconnect_backoff_ms": 10, "grpc.max_reconnect_backoff_ms": 50 }
  const clients = {
    Identity: new services.Identity(`unix://${socket}`, grpc.credentials.createInsecure(), opts),
    Node: new services.Node(`unix://${socket}`, grpc.credentials.createInsecure(), opts)
  }
  return {
    call: (service, method, request, timeoutMs = 300_000) =>
      new Promise((resolve, reject) => {
        const c = clients[service] as unknown as Record<string, Unary>
        c[method]!.call(c, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (e, v) => (e === null ? resolve(v) : reject(e)))
      }),
    close: () => {
      clients.Identity.close()
      clients.Node.close()
    }
  }
}

/**
 * Identity.Probe says ready. The CSI spec: a response without `ready` means ready (the Go
 * original leaves it unset); ours sets it, false until its state is loaded and its informer synced.
 */
export const probeReady = async (conn: CsiConn, timeoutMs = 1_000): Promise<boolean> => {
  const r = (await conn.call("Identity", "Probe", {}, timeoutMs)) as { ready?: { value?: boolean } | null }
  return r.ready === undefined || r.ready === null || r.ready.value === true
}

export interface DriverFlags {
  readonly plane: ControlPlaneInfo
  readonly nodeId: string
  readonly socket: string
  readonly dataRoot: string
  readonly duration: string
  /** Our driver only mounts onto `<kubeletRoot>/pods/…` targets; the Go original has no such flag. */
  readonly kubeletRoot?: string
}

export const driverArgs = (impl: Impl, f: DriverFlags): Array<string> => [
  ...impl.driver.args,
  `--kubeconfig=${f.plane.users["driver"]!.kubeconfigPath}`,
  `--node-id=${f.nodeId}`,
  `--endpoint=unix://${f.socket}`,
  `--data-root=${impl.name === "go" ? path.relative("/", f.dataRoot) : f.dataRoot}`,
  `--trust-domain=${TRUST_DOMAIN}`,
  `--certificate-request-duration=${f.duration}`,
  `--issuer-name=${f.plane.issuer.name}`,
  `--issuer-kind=${f.plane.issuer.kind}`,
  `--issuer-group=${f.plane.issuer.group}`,
  "--log-level=1",
  ...(impl.name === "ours" && f.kubeletRoot !== undefined ? [`--kubelet-root-dir=${f.kubeletRoot}`] : [])
]

export interface BenchStack {
  readonly impl: Impl
  readonly dir: string
  readonly kubeletRoot: string
  readonly dataRoot: string
  readonly socket: string
  readonly nodeId: string
  readonly driver: ManagedProcess
  readonly approver: ManagedProcess
  readonly conn: CsiConn
  /** Stops both processes and unmounts whatever is left under the stack's directory; the mounts that would not go. */
  readonly stop: () => Promise<Array<string>>
}

export const startBenchStack = async (
  plane: ControlPlaneInfo,
  impl: Impl,
  opts: { readonly name: string; readonly duration: string; readonly nodeId: string }
): Promise<BenchStack> => {
  const dir = fs.mkdtempSync(path.join(plane.tmpDir, `bench-${impl.name}-${opts.name}-`))
  const kubeletRoot = path.join(dir, "kubelet")
  const dataRoot = path.join(dir, "data")
  const socket = path.join(dir, "plugin", "csi.sock")
  fs.mkdirSync(path.dirname(socket), { recursive: true })
  const issuer = [`--issuer-name=${plane.issuer.name}`, `--issuer-kind=${plane.issuer.kind}`, `--issuer-group=${plane.issuer.group}`]
  const readyPort = await freePort()
  const approver = startProcess({
    name: `approver-${impl.name}-${opts.name}`,
    command: impl.approver.command,
    args: [
      ...impl.approver.args,
      `--kubeconfig=${plane.users["approver"]!.kubeconfigPath}`,
      `--trust-domain=${TRUST_DOMAIN}`,
      `--certificate-request-duration=${opts.duration}`,
      ...issuer,
      `--leader-election-namespace=${plane.clusterResourceNamespace}`,
      `--readiness-probe-bind-address=127.0.0.1:${readyPort}`,
      "--metrics-bind-address=0",
      "--log-level=1"
    ],
    logFile: path.join(dir, "approver.log"),
    cwd: impl.cwd
  })
  const driver = startProcess({
    name: `driver-${impl.name}-${opts.name}`,
    command: impl.driver.command,
    args: driverArgs(impl, { plane, nodeId: opts.nodeId, socket, dataRoot, duration: opts.duration, kubeletRoot }),
    logFile: path.join(dir, "driver.log"),
    cwd: impl.cwd
  })
  let conn: CsiConn | undefined
  const stop = async () => {
    conn?.close()
    await driver.stop()
    await approver.stop()
    return unmountAllUnder(dir)
  }
  try {
    await waitFor(`driver ${opts.name} serving ${socket}`, async () => (fs.existsSync(socket) && (await acceptsConnections(socket)) ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 20,
      proc: driver
    })
    const c = csiConnect(socket)
    conn = c
    await waitFor(`driver ${opts.name} Probe ready`, async () => ((await probeReady(c)) ? true : undefined), { timeoutMs: 60_000, intervalMs: 50, proc: driver })
  } catch (err) {
    await stop()
    throw err
  }
  return { impl, dir, kubeletRoot, dataRoot, socket, nodeId: opts.nodeId, driver, approver, conn, stop }
}

/** /proc/<pid>/status VmRSS in MiB. */
export const rssMiB = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1]) / 1024
}

/** utime + stime of /proc/<pid>/stat, in seconds (USER_HZ = 100 on Linux). */
export const cpuSeconds = (pid: number): number => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // fields[0] is field 3 (state); utime is field 14, stime field 15
  return (Number(fields[11]) + Number(fields[12])) / 100
}

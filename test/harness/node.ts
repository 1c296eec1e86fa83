// A real Kubernetes node on this machine, beside the control plane of plane.ts:
//   plane (Node,RBAC authorization, NodeRestriction, client certificates, served on the node IP too)
//   -> kube-controller-manager (DaemonSet, Deployment, ReplicaSet, ServiceAccount, root-CA publisher,
//      garbage collector, namespace controllers) and kube-scheduler
//   -> containerd 2.x (ours, from scripts/upstream/build.sh, with its runc shim; runc from the host)
//      with its own root, state, sockets and config (CRI: local pause image, restricted
//      oom_score_adj, a bridge CNI network of ours)
//   -> one kubelet 1.37 (`system:node:<name>` client certificate, serving certificate on the node IP)
//   -> our images imported into containerd's k8s.io namespace (no registry is involved).
//
//   const node = await startNodeCluster({ images, log: console.error })
//   ... node.kubectl(["get", "pods", "-A"]), node.helm([...]), node.env (KUBECONFIG, PATH) ...
//   await node.stop()   // leaves nothing behind; node.stop() then checkHostClean(node.baseline) === []
//
// Why each setting is what it is (walls met by a real kubelet on a cgroup-v1 VM without
// CAP_SYS_RESOURCE): the kubelet refuses cgroup v1 unless `failCgroupV1: false`; runc cannot lower
// oom_score_adj, so containerd runs with `restrict_oom_score_adj`; the kubelet rejects a loopback
// node IP, so the node, its serving certificate and the apiserver's kubelet address use the eth0
// address. No kube-proxy runs: one DNAT rule (in a chain of ours) sends the `kubernetes` Service
// address to the apiserver, which is what in-cluster clients (our driver and approver pods) dial.
//
// Everything the kubelet and containerd change on the host is recorded before start and undone by
// stop(), in this order: pods, kubelet, leftover containers, containerd, plane, mounts, cgroups
// (depth first, every hierarchy), the CNI bridge and NAT chain, sysctls, state directories.
import { spawn, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { acceptsConnections, HarnessError, type ManagedProcess, startProcess, waitFor } from "./process.ts"
import { generatePki, issueLeaf } from "./pki.ts"
import { type ControlPlane, freePort, startControlPlane, writeKubeconfig } from "./plane.ts"
import { importImages, type LocalImages } from "./images.ts"
import { ensureUpstream, type UpstreamPaths } from "./upstream.ts"

/** our image (driver), containerd's sandbox image (pause) and the apps' busybox (app); from images.ts */
export type NodeImages = LocalImages

export interface NodeClusterOptions {
  readonly images: NodeImages
  /** run directory; default a fresh mkdtemp under /tmp */
  readonly tmpDir?: string
  readonly log?: (msg: string) => void
  /** Node name; default csi-spiffe-node */
  readonly nodeName?: string
  /** kubelet syncFrequency (how often it republishes a requiresRepublish volume); default 10s */
  readonly syncFrequency?: string
  /** timeout of each readiness wait; default 120 s */
  readonly readyTimeoutMs?: number
  /**
   * the plane's CA ClusterIssuer csi-driver-spiffe-ca (default true); false when the caller applies
   * deploy/example/clusterissuer.yaml instead
   */
  readonly planeIssuer?: boolean
}

export interface NodeCluster {
  readonly plane: ControlPlane
  readonly tmpDir: string
  readonly nodeName: string
  readonly nodeIp: string
  /** the kubelet's --root-dir (the chart's kubeletRootDir) */
  readonly kubeletRootDir: string
  /** the driver's state directory on the node (the chart's app.driver.csiDataDir) */
  readonly csiDataDir: string
  /** admin kubeconfig */
  readonly kubeconfigPath: string
  readonly containerdAddress: string
  readonly images: NodeImages
  readonly upstream: UpstreamPaths
  /** KUBECONFIG, PATH (kubectl and helm first) and helm's own directories */
  readonly env: NodeJS.ProcessEnv
  readonly logs: Readonly<Record<string, string>>
  /** milliseconds per start-up phase */
  readonly timings: Readonly<Record<string, number>>
  /** host state before start; stop() restores it and checkHostClean(baseline) lists what is left */
  readonly baseline: HostBaseline
  readonly kubectl: (args: ReadonlyArray<string>, opts?: RunOptions) => Promise<RunResult>
  readonly helm: (args: ReadonlyArray<string>, opts?: RunOptions) => Promise<RunResult>
  /** a bash command line with env (pipes as a user types them) */
  readonly sh: (line: string, opts?: RunOptions) => Promise<RunResult>
  /** ctr against this node's containerd */
  readonly ctr: (args: ReadonlyArray<string>) => RunResult
  readonly stop: () => Promise<void>
}

export interface RunOptions {
  readonly input?: string
  readonly timeoutMs?: number
}

export interface RunResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const repoRoot = fileURLToPath(new URL("../..", import.meta.url))

/** The address the kube-apiserver gives the `kubernetes` Service (first of --service-cluster-ip-range). */
export const KUBERNETES_SERVICE_IP = "10.0.0.1"
const BRIDGE = "cspf0"
const POD_SUBNET = "10.88.64.0/24"
const NAT_CHAIN = "CSI-SPIFFE-NODE"
const CNI_NETWORK = "csi-spiffe-node"
/** Host sysctls the kubelet (and the bridge plugin: ip_forward) set; restored by stop(). */
const SYSCTLS = [
  "vm.overcommit_memory",
  "vm.panic_on_oom",
  "kernel.panic",
  "kernel.panic_on_oops",
  "kernel.keys.root_maxkeys",
  "kernel.keys.root_maxbytes",
  "net.ipv4.ip_forward"
] as const
/**
 * Host directories the kubelet, containerd or libcni create outside their configured roots, or
 * would if our containerd config did not move them (/run/containerd: shim sockets; /run/netns: pod
 * network namespaces; /run/nri: the NRI socket), which the residue check then catches.
 */
const HOST_DIRS = ["/var/log/containers", "/var/log/pods", "/usr/libexec/kubernetes", "/var/lib/cni", "/run/netns", "/run/containerd", "/run/nri"]
const CGROUP_ROOT = "/sys/fs/cgroup"

// ------------------------------------------------------------------ small host helpers

/** Run a program (cwd: the repository root) and collect its output; never rejects. */
export const runCommand = (cmd: string, args: ReadonlyArray<string>, env?: NodeJS.ProcessEnv, opts: RunOptions = {}): Promise<RunResult> =>
  new Promise((resolve) => {
    const child = spawn(cmd, [...args], { cwd: repoRoot, env: env ?? process.env, stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")))
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")))
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs)
    child.on("error", (err) => resolve({ code: -1, stdout, stderr: `${stderr}${err.message}` }))
    child.on("close", (code) => {
      if (timer !== undefined) clearTimeout(timer)
      resolve({ code: code ?? -1, stdout, stderr })
    })
    child.stdin.end(opts.input ?? "")
  })

const runSync = (cmd: string, args: ReadonlyArray<string>): RunResult => {
  const r = spawnSync(cmd, [...args], { encoding: "utf8", maxBuffer: 16 * 1024 * 1024 })
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? (r.error?.message ?? "") }
}

const must = (r: RunResult, what: string): RunResult => {
  if (r.code !== 0) throw new HarnessError(`${what} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`)
  return r
}

/** The first global IPv4 address (`ip -4 -o addr show scope global`). */
export const nodeAddress = (): string => {
  const out = must(runSync("ip", ["-4", "-o", "addr", "show", "scope", "global"]), "ip addr").stdout
  const m = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(out)
  if (m?.[1] === undefined) throw new HarnessError(`no global IPv4 address on this machine:\n${out}`)
  return m[1]
}

const readSysctl = (name: string): string | undefined => {
  try {
    return readFileSync(`/proc/sys/${name.replaceAll(".", "/")}`, "utf8").trim()
  } catch {
    return undefined
  }
}

const writeSysctl = (name: string, value: string): void => {
  try {
    writeFileSync(`/proc/sys/${name.replaceAll(".", "/")}`, value)
  } catch {
    // a sysctl this kernel lacks
  }
}

interface MountEntry {
  readonly id: number
  readonly mountPoint: string
}

const mounts = (): Array<MountEntry> =>
  readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const f = l.split(" ")
      // mountinfo escapes spaces etc. as \040
      return { id: Number(f[0]), mountPoint: (f[4] ?? "").replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) }
    })

const cgroupHierarchies = (): Array<string> =>
  readdirSync(CGROUP_ROOT)
    .map((d) => join(CGROUP_ROOT, d))
    .filter((d) => existsSync(join(d, "cgroup.procs")))

/** Every directory under `dir`, deepest first. */
const dirsDepthFirst = (dir: string): Array<string> => {
  const out: Array<string> = []
  const walk = (d: string) => {
    let entries: Array<string> = []
    try {
      entries = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(d, e.name))
    } catch {
      return
    }
    for (const e of entries) walk(e)
    out.push(d)
  }
  walk(dir)
  return out
}

const links = (): Array<string> =>
  runSync("ip", ["-o", "link", "show"]).stdout
    .split("\n")
    .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined)

const processesMentioning = (needle: string): Array<{ pid: number; cmdline: string }> => {
  const out: Array<{ pid: number; cmdline: string }> = []
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue
    try {
      const cmdline = readFileSync(`/proc/${e}/cmdline`, "utf8").replaceAll("\0", " ").trim()
      if (cmdline.includes(needle)) out.push({ pid: Number(e), cmdline })
    } catch {
      // gone
    }
  }
  return out
}

const natChainExists = (): boolean => runSync("iptables", ["-t", "nat", "-S", NAT_CHAIN]).code === 0

/** A user-defined chain of one table of iptables or ip6tables. */
interface IptChain {
  readonly cmd: "iptables" | "ip6tables"
  readonly table: "nat" | "filter" | "mangle"
  readonly chain: string
}
const chainName = (c: IptChain): string => `${c.cmd} -t ${c.table} ${c.chain}`

/**
 * Every user-defined chain, so that the residue check sees chains a kubelet made (KUBE-FIREWALL,
 * KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT, unless makeIPTablesUtilChains is off).
 */
const iptChains = (): Array<IptChain> =>
  (["iptables", "ip6tables"] as const).flatMap((cmd) =>
    (["nat", "filter", "mangle"] as const).flatMap((table) =>
      runSync(cmd, ["-t", table, "-S"]).stdout
        .split("\n")
        .map((l) => /^-N (\S+)$/.exec(l)?.[1])
        .filter((chain): chain is string => chain !== undefined)
        .map((chain) => ({ cmd, table, chain }))
    )
  )

/** Removes a chain: the rules that jump to it, its own rules, then the chain. */
const deleteChain = (c: IptChain): void => {
  for (const rule of runSync(c.cmd, ["-t", c.table, "-S"]).stdout.split("\n")) {
    const f = rule.split(" ")
    if (f[0] === "-A" && f.includes("-j") && f[f.indexOf("-j") + 1] === c.chain) runSync(c.cmd, ["-t", c.table, "-D", ...f.slice(1)])
  }
  runSync(c.cmd, ["-t", c.table, "-F", c.chain])
  must(runSync(c.cmd, ["-t", c.table, "-X", c.chain]), `${c.cmd} -t ${c.table} -X ${c.chain}`)
}

// ------------------------------------------------------------------ host baseline and residue check

export interface HostBaseline {
  readonly tmpDir: string
  readonly sysctls: Readonly<Record<string, string | undefined>>
  readonly hostDirs: Readonly<Record<string, boolean>>
  readonly links: ReadonlyArray<string>
  readonly netns: ReadonlyArray<string>
  /** user-defined iptables/ip6tables chains, as chainName() prints them */
  readonly chains: ReadonlyArray<string>
}

const listDir = (d: string): Array<string> => {
  try {
    return readdirSync(d)
  } catch {
    return []
  }
}

export const recordHost = (tmpDir: string): HostBaseline => ({
  tmpDir,
  sysctls: Object.fromEntries(SYSCTLS.map((s) => [s, readSysctl(s)])),
  hostDirs: Object.fromEntries(HOST_DIRS.map((d) => [d, existsSync(d)])),
  links: links(),
  netns: listDir("/run/netns"),
  chains: iptChains().map(chainName)
})

/**
 * What a node left on the host compared with `baseline`: processes, mounts, cgroups, network
 * devices, the NAT chain, sysctls and directories. Empty when teardown was complete.
 */
export const checkHostClean = async (baseline: HostBaseline): Promise<Array<string>> => {
  const left: Array<string> = []
  for (const p of processesMentioning(baseline.tmpDir)) left.push(`process ${p.pid}: ${p.cmdline}`)
  for (const m of mounts()) {
    if (m.mountPoint.startsWith(baseline.tmpDir)) left.push(`mount ${m.mountPoint}`)
    if (m.mountPoint.startsWith("/run/netns/") && !baseline.netns.includes(m.mountPoint.slice("/run/netns/".length))) {
      left.push(`mount ${m.mountPoint}`)
    }
  }
  for (const h of cgroupHierarchies()) {
    for (const d of listDir(h)) if (d.startsWith("kubepods")) left.push(`cgroup ${join(h, d)}`)
  }
  for (const l of links()) {
    if (!baseline.links.includes(l) && (l === BRIDGE || l.startsWith("veth"))) left.push(`link ${l}`)
  }
  if (natChainExists()) left.push(`iptables nat chain ${NAT_CHAIN}`)
  for (const c of iptChains()) if (c.chain !== NAT_CHAIN && !baseline.chains.includes(chainName(c))) left.push(`chain ${chainName(c)}`)
  for (const [s, v] of Object.entries(baseline.sysctls)) {
    const now = readSysctl(s)
    if (now !== v) left.push(`sysctl ${s} = ${now} (was ${v})`)
  }
  for (const [d, existed] of Object.entries(baseline.hostDirs)) if (!existed && existsSync(d)) left.push(`directory ${d}`)
  if (existsSync(baseline.tmpDir)) left.push(`directory ${baseline.tmpDir}`)
  return left
}

// ------------------------------------------------------------------ configuration files

// containerd 2.x (config version 4, the one `containerd config default` of v2.4 prints; the CRI
// plugin is split into io.containerd.cri.v1.runtime and io.containerd.cri.v1.images there). Every
// path containerd would otherwise take on the host is ours: root, state, sockets, the shims'
// sockets (socket_dir; else /run/containerd/s), the pods' network namespaces (under the state
// dir; else /run/netns), and NRI is off (else it listens on /var/run/nri/nri.sock).
const containerdConfig = (dir: string, pauseRef: string, shimSocketDir: string): string => `version = 4
root = "${dir}/root"
state = "${dir}/state"
oom_score = 0
[debug]
  level = "info"
[plugins]
  [plugins."io.containerd.server.v1.grpc"]
    address = "${dir}/containerd.sock"
  [plugins."io.containerd.server.v1.ttrpc"]
    address = "${dir}/containerd.sock.ttrpc"
  [plugins."io.containerd.internal.v1.opt"]
    path = "${dir}/opt"
  [plugins."io.containerd.shim.v1.manager"]
    socket_dir = "${shimSocketDir}"
  [plugins."io.containerd.nri.v1.nri"]
    disable = true
  [plugins."io.containerd.cri.v1.images"]
    snapshotter = "overlayfs"
    [plugins."io.containerd.cri.v1.images".pinned_images]
      sandbox = "${pauseRef}"
    [plugins."io.containerd.cri.v1.images".registry]
      config_path = ""
  [plugins."io.containerd.cri.v1.runtime"]
    # runc cannot lower oom_score_adj without CAP_SYS_RESOURCE; this keeps it at the parent's value.
    restrict_oom_score_adj = true
    enable_selinux = false
    netns_mounts_under_state_dir = true
    [plugins."io.containerd.cri.v1.runtime".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "${dir}/runc"
    [plugins."io.containerd.cri.v1.runtime".cni]
      bin_dirs = ["/usr/lib/cni"]
      conf_dir = "${dir}/cni/net.d"
      max_conf_num = 1
`

// A gateway on the bridge gives pods a default route to the host, where the NAT chain sends the
// `kubernetes` Service address to the apiserver; no masquerade: pods talk to this host only.
const cniConfig = (dir: string): string =>
  JSON.stringify(
    {
      cniVersion: "1.0.0",
      name: CNI_NETWORK,
      plugins: [
        {
          type: "bridge",
          bridge: BRIDGE,
          isGateway: true,
          ipMasq: false,
          hairpinMode: false,
          ipam: { type: "host-local", ranges: [[{ subnet: POD_SUBNET }]], routes: [{ dst: "0.0.0.0/0" }], dataDir: join(dir, "ipam") }
        }
      ]
    },
    null,
    2
  )

const kubeletConfig = (o: {
  nodeIp: string
  port: number
  caFile: string
  certFile: string
  keyFile: string
  runtime: string
  tmpDir: string
  syncFrequency: string
}): string => `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# this VM has cgroup v1 (hybrid); the kubelet refuses it otherwise
failCgroupV1: false
cgroupDriver: cgroupfs
address: ${o.nodeIp}
port: ${o.port}
readOnlyPort: 0
healthzPort: 0
tlsCertFile: ${o.certFile}
tlsPrivateKeyFile: ${o.keyFile}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: ${o.caFile}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://${o.runtime}
# how often the kubelet republishes requiresRepublish CSI volumes (default 1m)
syncFrequency: ${o.syncFrequency}
failSwapOn: false
# the iptables chains it would make (KUBE-FIREWALL, KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY) serve
# kube-proxy, which does not run here, and would stay on the host
makeIPTablesUtilChains: false
# a shared, busy build machine: never evict or garbage-collect the local images
evictionHard:
  memory.available: "50Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
podLogsDir: ${o.tmpDir}/pod-logs
volumePluginDir: ${o.tmpDir}/volume-plugins
serializeImagePulls: false
`

// ------------------------------------------------------------------ the node

export const hostPackages = (log: (m: string) => void): void => {
  const r = spawnSync("bash", [join(repoRoot, "scripts/node/host-packages.sh")], { encoding: "utf8" })
  for (const l of (r.stderr ?? "").split("\n")) if (l !== "") log(l)
  if (r.status !== 0) throw new HarnessError(`scripts/node/host-packages.sh failed (exit ${r.status})`)
}

export const nodeComponents = ["etcd", "kubernetes", "containerd", "cert-manager", "helm"] as const

export const startNodeCluster = async (opts: NodeClusterOptions): Promise<NodeCluster> => {
  const log = opts.log ?? (() => {})
  const timeoutMs = opts.readyTimeoutMs ?? 120_000
  const nodeName = opts.nodeName ?? "csi-spiffe-node"
  const timings: Record<string, number> = {}
  const t0 = Date.now()
  let tPhase = t0
  const phase = (name: string) => {
    const now = Date.now()
    timings[name] = now - tPhase
    tPhase = now
    log(`[node +${((now - t0) / 1000).toFixed(1)}s] ${name} (${((timings[name] ?? 0) / 1000).toFixed(1)}s)`)
  }

  hostPackages(log)
  const upstream = await ensureUpstream([...nodeComponents], { onProgress: log })
  phase("host packages and upstream binaries")

  const nodeIp = nodeAddress()
  const tmpDir = opts.tmpDir ?? mkdtempSync("/tmp/csi-spiffe-node-")
  mkdirSync(tmpDir, { recursive: true })
  const baseline = recordHost(tmpDir)
  const logDir = join(tmpDir, "logs")
  const kubeletRootDir = join(tmpDir, "kubelet")
  // Under the kubelet's root, which the kubelet makes a shared mount: the chart mounts the data
  // directory with Bidirectional propagation, which needs a shared mount on the host side.
  const csiDataDir = join(kubeletRootDir, "csi-driver-spiffe-data")
  const ctrDir = join(tmpDir, "containerd")
  const pkiDir = join(tmpDir, "pki")
  for (const d of [logDir, kubeletRootDir, ctrDir, join(ctrDir, "cni", "net.d"), pkiDir]) mkdirSync(d, { recursive: true })
  const containerdAddress = join(ctrDir, "containerd.sock")
  // containerd 2.x limits socket_dir to 38 characters (a shim socket is <dir>/<64 hex>)
  const shimSocketDir = join(tmpDir, "s")
  if (shimSocketDir.length > 38) throw new HarnessError(`run directory ${tmpDir} is too long for containerd's shim socket_dir (at most 36 characters)`)
  const containerdBin = upstream.bin("containerd").replace(/\/containerd$/, "")
  const ctrBin = upstream.bin("ctr")
  const logs: Record<string, string> = {}
  const procs: Array<ManagedProcess> = []
  const start = (name: string, command: string, args: ReadonlyArray<string>, env?: NodeJS.ProcessEnv) => {
    const logFile = join(logDir, `${name}.log`)
    logs[name] = logFile
    const p = startProcess({ name, command, args, logFile, ...(env === undefined ? {} : { env }) })
    procs.push(p)
    return p
  }
  const ctr = (args: ReadonlyArray<string>): RunResult => runSync(ctrBin, ["--address", containerdAddress, "-n", "k8s.io", ...args])

  let plane: ControlPlane | undefined
  const helmHome = join(tmpDir, "helm")
  const kubeBin = upstream.bin("kubectl").replace(/\/kubectl$/, "")
  const helmBin = upstream.bin("helm").replace(/\/helm$/, "")
  let env: NodeJS.ProcessEnv = { ...process.env }

  const teardown = async (): Promise<void> => {
    const errors: Array<string> = []
    const attempt = async (what: string, f: () => Promise<void> | void) => {
      try {
        await f()
      } catch (err) {
        errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
    const kubelet = procs.find((p) => p.name === "kubelet")
    const kcm = procs.find((p) => p.name === "kube-controller-manager")
    // 1. pods: stop the controllers that would recreate them, delete workloads' pods first and the
    // driver's last (it serves their NodeUnpublishVolume), and let the kubelet finish each.
    if (plane !== undefined && kubelet !== undefined && kubelet.exited() === undefined) {
      const kubectl = (args: ReadonlyArray<string>) => runCommand(join(kubeBin, "kubectl"), args, env, { timeoutMs: 150_000 })
      await attempt("stop kube-controller-manager", async () => kcm?.stop())
      await attempt("delete pods", async () => {
        const list = await kubectl(["get", "pods", "-A", "-o", "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}/{.spec.volumes[*].csi.driver}/{.metadata.ownerReferences[0].kind}{\"\\n\"}{end}"])
        const rows = list.stdout.split("\n").filter((l) => l !== "").map((l) => l.split("/"))
        const isDriver = (r: Array<string>) => r[3] === "DaemonSet"
        for (const group of [rows.filter((r) => !isDriver(r)), rows.filter(isDriver)]) {
          await Promise.all(
            // a short grace period: the example apps' `sleep` ignores SIGTERM (30 s each otherwise)
            group.map((r) => kubectl(["delete", "pod", "-n", r[0] ?? "", r[1] ?? "", "--grace-period=1", "--wait=true", "--timeout=140s"]))
          )
        }
      })
    }
    // 2. kubelet, 3. leftover containers, 4. containerd (and any shim it left)
    await attempt("stop kubelet", async () => kubelet?.stop(15_000))
    const containerd = procs.find((p) => p.name === "containerd")
    if (containerd !== undefined && containerd.exited() === undefined) {
      await attempt("remove containers", () => {
        for (const id of ctr(["tasks", "ls", "-q"]).stdout.split("\n").filter((l) => l !== "")) {
          ctr(["tasks", "kill", "-s", "SIGKILL", id])
          ctr(["tasks", "delete", "-f", id])
        }
        for (const id of ctr(["containers", "ls", "-q"]).stdout.split("\n").filter((l) => l !== "")) ctr(["containers", "delete", id])
      })
    }
    await attempt("stop containerd", async () => containerd?.stop(10_000))
    for (const p of processesMentioning(containerdAddress)) {
      await attempt(`kill shim ${p.pid}`, () => {
        process.kill(p.pid, "SIGKILL")
      })
    }
    for (const p of [...procs].reverse()) await attempt(`stop ${p.name}`, async () => p.stop())
    // 5. the plane
    await attempt("stop control plane", async () => plane?.stop())
    // 6. mounts under the run directory and network namespaces, deepest first
    await attempt("unmount", () => {
      for (let round = 0; round < 5; round++) {
        const ours = mounts()
          .filter(
            (m) =>
              m.mountPoint.startsWith(tmpDir) ||
              (m.mountPoint.startsWith("/run/netns/") && !baseline.netns.includes(m.mountPoint.slice("/run/netns/".length)))
          )
          .sort((a, b) => b.mountPoint.length - a.mountPoint.length || b.id - a.id)
        if (ours.length === 0) return
        for (const m of ours) runSync("umount", [m.mountPoint])
      }
      const still = mounts().filter((m) => m.mountPoint.startsWith(tmpDir))
      if (still.length > 0) for (const m of still) runSync("umount", ["-l", m.mountPoint])
    })
    for (const n of listDir("/run/netns")) if (!baseline.netns.includes(n)) await attempt(`netns ${n}`, () => rmSync(join("/run/netns", n), { force: true }))
    // 7. cgroups, depth first in every hierarchy
    await attempt("cgroups", () => {
      for (const h of cgroupHierarchies()) {
        for (const top of listDir(h).filter((d) => d.startsWith("kubepods"))) {
          for (const d of dirsDepthFirst(join(h, top))) {
            try {
              rmdirSync(d)
            } catch (err) {
              errors.push(`rmdir ${d}: ${err instanceof Error ? err.message : String(err)}`)
            }
          }
        }
      }
    })
    // 8. network: the NAT chain and the bridge
    await attempt("nat chain", () => {
      // a chain that was there before start is another node's (or a killed run's): not ours to remove
      if (!natChainExists() || baseline.chains.includes(chainName({ cmd: "iptables", table: "nat", chain: NAT_CHAIN }))) return
      for (const hook of ["PREROUTING", "OUTPUT"]) {
        while (runSync("iptables", ["-t", "nat", "-D", hook, "-j", NAT_CHAIN]).code === 0) {
          // removed one jump
        }
      }
      runSync("iptables", ["-t", "nat", "-F", NAT_CHAIN])
      must(runSync("iptables", ["-t", "nat", "-X", NAT_CHAIN]), "iptables -X")
    })
    // chains a kubelet made although makeIPTablesUtilChains is off (a kubelet configured otherwise)
    for (const c of iptChains()) {
      if (c.chain.startsWith("KUBE-") && !baseline.chains.includes(chainName(c))) await attempt(`chain ${chainName(c)}`, () => deleteChain(c))
    }
    await attempt("bridge", () => {
      if (links().includes(BRIDGE) && !baseline.links.includes(BRIDGE)) must(runSync("ip", ["link", "delete", BRIDGE]), `ip link delete ${BRIDGE}`)
    })
    // 9. sysctls
    for (const [s, v] of Object.entries(baseline.sysctls)) if (v !== undefined && readSysctl(s) !== v) writeSysctl(s, v)
    // 10. state directories (only once nothing is mounted below them)
    await attempt("state directories", () => {
      if (mounts().some((m) => m.mountPoint.startsWith(tmpDir))) throw new Error(`still mounted below ${tmpDir}; not removed`)
      const created = Object.entries(baseline.hostDirs).filter(([d, existed]) => !existed && existsSync(d)).map(([d]) => d)
      if (created.length > 0) log(`[node] removing host directories the node created: ${created.join(" ")}`)
      for (const d of created) rmSync(d, { recursive: true, force: true })
      if (process.env["CSI_SPIFFE_KEEP_TMP"] === "1") {
        log(`[node] kept ${tmpDir} (CSI_SPIFFE_KEEP_TMP=1)`)
        return
      }
      rmSync(tmpDir, { recursive: true, force: true })
    })
    if (errors.length > 0) throw new HarnessError(`node teardown incomplete:\n  ${errors.join("\n  ")}`)
  }

  try {
    // ---- PKI: the plane's, plus the node's certificates signed by its CA
    const pki = await generatePki(pkiDir, { apiserverIps: [nodeIp, KUBERNETES_SERVICE_IP] })
    const kubeletClient = await issueLeaf(pki, { commonName: `system:node:${nodeName}`, organization: "system:nodes", client: true, server: false }, "kubelet-client")
    const kubeletServing = await issueLeaf(pki, { commonName: nodeName, ips: [nodeIp], dnsNames: [nodeName], server: true }, "kubelet-serving")
    const apiserverKubeletClient = await issueLeaf(
      pki,
      { commonName: "kube-apiserver-kubelet-client", organization: "system:masters", client: true, server: false },
      "apiserver-kubelet-client"
    )
    phase("node PKI")

    plane = await startControlPlane({
      tmpDir,
      // the node removes the run directory itself, after unmounting what the kubelet mounted there
      keepTmpDir: true,
      log: (m) => (m.startsWith("[control-plane] kept ") ? undefined : log(m)),
      upstream,
      existingPki: pki,
      authorizationMode: "Node,RBAC",
      // pods reach the apiserver on the node IP (DNAT of the `kubernetes` Service address)
      bindAddress: "0.0.0.0",
      chartRbac: false,
      createIssuer: opts.planeIssuer ?? true,
      extraUsers: {
        // without --use-service-account-credentials every controller acts as this one user
        controllerManager: { username: "system:kube-controller-manager", groups: ["system:masters"] },
        scheduler: { username: "system:kube-scheduler" }
      },
      apiserverExtraArgs: [
        `--client-ca-file=${pki.ca.certFile}`,
        "--enable-admission-plugins=NodeRestriction",
        `--kubelet-client-certificate=${apiserverKubeletClient.certFile}`,
        `--kubelet-client-key=${apiserverKubeletClient.keyFile}`,
        `--kubelet-certificate-authority=${pki.ca.certFile}`,
        "--kubelet-preferred-address-types=InternalIP"
      ]
    })
    const p = plane
    const apiPort = new URL(p.server).port
    env = {
      ...process.env,
      KUBECONFIG: p.kubeconfigPath,
      PATH: `${kubeBin}:${helmBin}:${process.env["PATH"] ?? ""}`,
      HELM_CACHE_HOME: join(helmHome, "cache"),
      HELM_CONFIG_HOME: join(helmHome, "config"),
      HELM_DATA_HOME: join(helmHome, "data")
    }
    phase("control plane (Node,RBAC)")

    // ---- the `kubernetes` Service address -> the apiserver (what kube-proxy would do)
    if (baseline.chains.includes(chainName({ cmd: "iptables", table: "nat", chain: NAT_CHAIN }))) {
      throw new HarnessError(`iptables nat chain ${NAT_CHAIN} exists already: another node runs here, or one was killed before its teardown`)
    }
    must(runSync("iptables", ["-t", "nat", "-N", NAT_CHAIN]), "iptables -N")
    must(
      runSync("iptables", ["-t", "nat", "-A", NAT_CHAIN, "-d", `${KUBERNETES_SERVICE_IP}/32`, "-p", "tcp", "--dport", "443", "-j", "DNAT", "--to-destination", `${nodeIp}:${apiPort}`]),
      "iptables DNAT"
    )
    for (const hook of ["PREROUTING", "OUTPUT"]) must(runSync("iptables", ["-t", "nat", "-I", hook, "-j", NAT_CHAIN]), `iptables ${hook}`)

    // ---- kube-controller-manager and kube-scheduler
    start("kube-controller-manager", upstream.bin("kube-controller-manager"), [
      `--kubeconfig=${p.users["controllerManager"]!.kubeconfigPath}`,
      // node-lifecycle-controller lifts the not-ready taint the kubelet registers the Node with;
      // podcertificaterequest-cleaner-controller deletes PodCertificateRequests 15 minutes old, as
      // in a real cluster (Pod Certificates are GA and on by default in 1.37)
      "--controllers=daemonset-controller,deployment-controller,replicaset-controller,serviceaccount-controller,root-ca-certificate-publisher-controller,garbage-collector-controller,namespace-controller,node-lifecycle-controller,podcertificaterequest-cleaner-controller",
      `--root-ca-file=${pki.ca.certFile}`,
      `--service-account-private-key-file=${pki.serviceAccount.keyFile}`,
      "--use-service-account-credentials=false",
      "--leader-elect=false",
      "--secure-port=0",
      "--v=1"
    ])
    start("kube-scheduler", upstream.bin("kube-scheduler"), [
      `--kubeconfig=${p.users["scheduler"]!.kubeconfigPath}`,
      "--leader-elect=false",
      "--secure-port=0",
      "--v=1"
    ])

    // ---- containerd and the images
    writeFileSync(join(ctrDir, "config.toml"), containerdConfig(ctrDir, opts.images.pause.ref, shimSocketDir))
    writeFileSync(join(ctrDir, "cni", "net.d", "10-csi-spiffe-node.conflist"), cniConfig(join(ctrDir, "cni")))
    // containerd finds its shim (containerd-shim-runc-v2) on PATH: ours first, runc from the host after
    const containerd = start("containerd", upstream.bin("containerd"), ["--config", join(ctrDir, "config.toml")], {
      ...process.env,
      PATH: `${containerdBin}:${process.env["PATH"] ?? ""}`
    })
    await waitFor("containerd socket", async () => ((await acceptsConnections(containerdAddress)) ? true : undefined), {
      timeoutMs,
      proc: containerd
    })
    phase("kube-controller-manager, kube-scheduler, containerd")
    await importImages({ ctr: ctrBin, address: containerdAddress, images: opts.images })
    // the example apps name `busybox` with imagePullPolicy IfNotPresent: the local app image is that
    must(ctr(["images", "tag", "--force", opts.images.app.ref, "docker.io/library/busybox:latest"]), "ctr images tag busybox")
    phase("images imported")

    // ---- the kubelet
    const kubeletKubeconfig = join(tmpDir, "kubelet.kubeconfig")
    writeKubeconfig(kubeletKubeconfig, {
      server: p.server,
      caFile: pki.ca.certFile,
      user: `system:node:${nodeName}`,
      clientCertificate: kubeletClient.certFile,
      clientKey: kubeletClient.keyFile
    })
    const kubeletConfigFile = join(tmpDir, "kubelet-config.yaml")
    writeFileSync(
      kubeletConfigFile,
      kubeletConfig({
        nodeIp,
        port: await freePort(),
        caFile: pki.ca.certFile,
        certFile: kubeletServing.certFile,
        keyFile: kubeletServing.keyFile,
        runtime: containerdAddress,
        tmpDir,
        syncFrequency: opts.syncFrequency ?? "10s"
      })
    )
    const kubelet = start("kubelet", upstream.bin("kubelet"), [
      `--config=${kubeletConfigFile}`,
      `--kubeconfig=${kubeletKubeconfig}`,
      `--root-dir=${kubeletRootDir}`,
      `--cert-dir=${join(tmpDir, "kubelet-pki")}`,
      `--node-ip=${nodeIp}`,
      `--hostname-override=${nodeName}`,
      "--v=2"
    ])
    await waitFor(
      `Node ${nodeName} Ready`,
      async () => {
        const node = await p.client.get(`/api/v1/nodes/${nodeName}`)
        const conds = (node["status"] as { conditions?: Array<{ type: string; status: string; message?: string }> }).conditions ?? []
        const ready = conds.find((c) => c.type === "Ready")
        if (ready?.status === "True") return true
        throw new Error(`Ready=${ready?.status}: ${ready?.message ?? ""}`)
      },
      { timeoutMs, proc: kubelet, intervalMs: 500 }
    )
    // pods need the default ServiceAccount and the kube-root-ca.crt ConfigMap of their namespace
    await waitFor(
      "kube-root-ca.crt and the default ServiceAccount in namespace default",
      async () => {
        await p.client.get("/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
        await p.client.get("/api/v1/namespaces/default/serviceaccounts/default")
        return true
      },
      { timeoutMs, proc: procs.find((x) => x.name === "kube-controller-manager")! }
    )
    phase("kubelet: Node Ready")
    timings["total"] = Date.now() - t0

    const kubectl = (args: ReadonlyArray<string>, o?: RunOptions) => runCommand(join(kubeBin, "kubectl"), args, env, o)
    const helm = (args: ReadonlyArray<string>, o?: RunOptions) => runCommand(join(helmBin, "helm"), args, env, o)
    const sh = (line: string, o?: RunOptions) => runCommand("bash", ["-o", "pipefail", "-c", line], env, o)
    let stopped: Promise<void> | undefined
    return {
      plane: p,
      tmpDir,
      nodeName,
      nodeIp,
      kubeletRootDir,
      csiDataDir,
      kubeconfigPath: p.kubeconfigPath,
      containerdAddress,
      images: opts.images,
      upstream,
      env,
      logs: { ...p.logs, ...logs },
      timings,
      baseline,
      kubectl,
      helm,
      sh,
      ctr,
      stop: () => (stopped ??= teardown())
    }
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err)
    try {
      await teardown()
    } catch (e) {
      log(e instanceof Error ? e.message : String(e))
    }
    throw new HarnessError(`node cluster failed to start: ${msg}\n(logs: ${logDir}; CSI_SPIFFE_KEEP_TMP=1 keeps them)`, { cause: err })
  }
}

// ------------------------------------------------------------------ our chart on the node

export const RELEASE = "cert-manager-csi-driver-spiffe"
export const RELEASE_NAMESPACE = "cert-manager"
export const CHART_DIR = join(repoRoot, "helm", "csi-driver-spiffe")

/** `name:tag` of a local image reference split for the chart's repository/tag values. */
const splitRef = (ref: string): { repository: string; tag: string } => {
  const i = ref.lastIndexOf(":")
  return i > ref.lastIndexOf("/") ? { repository: ref.slice(0, i), tag: ref.slice(i + 1) } : { repository: ref, tag: "latest" }
}

/**
 * The values that fit the chart to this node (not to the seed's usage): the kubelet's root, the
 * driver's data directory under it, and our locally imported image for both components.
 */
export const nodeChartValues = (node: Pick<NodeCluster, "kubeletRootDir" | "csiDataDir" | "images">): Array<string> => {
  const img = splitRef(node.images.driver.ref)
  return [
    `kubeletRootDir=${node.kubeletRootDir}`,
    `app.driver.csiDataDir=${node.csiDataDir}`,
    ...["driverImage", "approverImage"].flatMap((k) => [`${k}.repository=${img.repository}`, `${k}.tag=${img.tag}`, `${k}.pullPolicy=Never`])
  ]
}

/** The seed's values: trust domain, runtime issuer ConfigMap, the CA ClusterIssuer. */
export const seedValues = [
  "app.logLevel=1",
  "app.trustDomain=foo.bar",
  "app.runtimeIssuanceConfigMap=spiffe-issuer",
  "app.issuer.name=csi-driver-spiffe-ca",
  "app.issuer.kind=ClusterIssuer",
  "app.issuer.group=cert-manager.io"
] as const

/** The seed's CA bundle values: the issuer's Secret mounted into the driver, its ca.crt copied into every volume. */
export const caBundleValues = [
  "app.driver.volumes[0].name=root-cas",
  "app.driver.volumes[0].secret.secretName=csi-driver-spiffe-ca",
  "app.driver.volumeMounts[0].name=root-cas",
  "app.driver.volumeMounts[0].mountPath=/var/run/secrets/cert-manager-csi-driver-spiffe",
  "app.driver.sourceCABundle=/var/run/secrets/cert-manager-csi-driver-spiffe/ca.crt"
] as const

export const setArgs = (values: ReadonlyArray<string>): Array<string> => values.flatMap((v) => ["--set", v])

/** `helm upgrade -i` of our chart with the seed's values (+ CA bundle), waiting for both pods. */
export const installChart = async (
  node: Pick<NodeCluster, "helm" | "kubeletRootDir" | "csiDataDir" | "images">,
  opts: { readonly caBundle?: boolean; readonly extra?: ReadonlyArray<string> } = {}
): Promise<RunResult> => {
  const values = [...seedValues, ...((opts.caBundle ?? true) ? caBundleValues : []), ...nodeChartValues(node), ...(opts.extra ?? [])]
  const r = await node.helm(
    ["upgrade", "-i", "-n", RELEASE_NAMESPACE, RELEASE, CHART_DIR, "--wait", "--timeout=5m", ...setArgs(values)],
    { timeoutMs: 330_000 }
  )
  if (r.code !== 0) throw new HarnessError(`helm upgrade -i failed (exit ${r.code}):\n${r.stderr}${r.stdout}`)
  return r
}

/** True when `path` exists and is a directory (used by checks of what a volume left). */
export const isDirectory = (path: string): boolean => {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

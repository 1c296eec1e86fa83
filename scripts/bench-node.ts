// npm run bench:node [-- --pods=20]
//
// Figures of the real node (test/harness/node.ts) with our chart installed by helm:
//   - pod create -> Ready with the SVID mounted, for N pods one after another (the kubelet starts
//     containers only after NodePublishVolume succeeded, so Ready means mounted; each pod's files
//     are listed with kubectl exec afterwards). Timed from the create request to the watch event
//     that first shows Ready=True.
//   - resident memory of the kubelet, containerd and our driver pod (sum of the processes in the
//     pod's memory cgroup, per container) and of the approver pod.
// Prints a table and writes bench/results/node.json.
import { request } from "node:https"
import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from "node:fs"
import { join } from "node:path"
import { installChart, type NodeCluster } from "../test/harness/node.ts"
import { runOnNode } from "./bench/node.ts"

const arg = (name: string, dflt: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? dflt)
const N = arg("pods", 20)
const NS = "bench-node"
const t0 = Date.now()
const log = (m: string) => process.stderr.write(`[bench-node ${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}\n`)

/** Watch the namespace's pods; resolves readiness per pod name with the time it was first seen Ready. */
const watchReady = (node: NodeCluster) => {
  const ready = new Map<string, number>()
  const waiters = new Map<string, (t: number) => void>()
  const url = new URL(`/api/v1/namespaces/${NS}/pods?watch=true`, node.plane.server)
  const req = request(url, { headers: { Authorization: `Bearer ${node.plane.adminToken}` }, ca: node.plane.caPem }, (res) => {
    let buf = ""
    res.on("data", (c: Buffer) => {
      buf += c.toString("utf8")
      let i: number
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        const ev = JSON.parse(line) as { object: { metadata: { name: string }; status?: { conditions?: Array<{ type: string; status: string }> } } }
        const name = ev.object.metadata.name
        if (!ready.has(name) && ev.object.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) {
          const t = performance.now()
          ready.set(name, t)
          waiters.get(name)?.(t)
        }
      }
    })
  })
  req.end()
  return {
    until: (name: string) => new Promise<number>((resolve) => (ready.has(name) ? resolve(ready.get(name)!) : waiters.set(name, resolve))),
    close: () => req.destroy()
  }
}

const statusKb = (pid: string, field: "VmRSS" | "RssAnon"): number => {
  try {
    return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0)
  } catch {
    return 0
  }
}
const rssKb = (pid: string): number => statusKb(pid, "VmRSS")
const comm = (pid: string) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim()
  } catch {
    return "?"
  }
}
const pidsMatching = (pred: (cmd: string) => boolean): Array<string> =>
  readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return pred(readFileSync(`/proc/${p}/cmdline`, "utf8").replaceAll("\0", " "))
    } catch {
      return false
    }
  })

/** RSS (MB; anonymous part apart) per container of a pod, from the processes of the pod's memory cgroup. */
const podMemory = (uid: string): Array<{ container: string; processes: string; mb: number; anonMb: number }> => {
  const find = (d: string): string | undefined => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (!e.isDirectory()) continue
      if (e.name === `pod${uid}`) return join(d, e.name)
      const f = find(join(d, e.name))
      if (f !== undefined) return f
    }
    return undefined
  }
  const root = "/sys/fs/cgroup/memory/kubepods"
  const dir = existsSync(root) ? find(root) : undefined
  if (dir === undefined) return []
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => {
      const pids = readFileSync(join(dir, e.name, "cgroup.procs"), "utf8").split("\n").filter((p) => p !== "")
      return {
        container: e.name.slice(0, 12),
        processes: [...new Set(pids.map(comm))].join(","),
        mb: pids.reduce((a, p) => a + rssKb(p), 0) / 1024,
        anonMb: pids.reduce((a, p) => a + statusKb(p, "RssAnon"), 0) / 1024
      }
    })
}

await runOnNode(log, async (node) => {
  await installChart(node)
  log("chart installed")
  const sh = async (line: string, input?: string) => {
    const r = await node.sh(line, input === undefined ? {} : { input })
    if (r.code !== 0) throw new Error(`${line}: ${r.stderr}`)
    return r.stdout
  }
  await sh(`kubectl apply -f -`, `apiVersion: v1
kind: Namespace
metadata: {name: ${NS}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: bench, namespace: ${NS}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: bench, namespace: ${NS}}
rules: [{apiGroups: [cert-manager.io], resources: [certificaterequests], verbs: [create]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bench, namespace: ${NS}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: bench}
subjects: [{kind: ServiceAccount, name: bench, namespace: ${NS}}]
`)
  await sh(`kubectl wait -n ${NS} --for=jsonpath='{.metadata.name}'=default serviceaccount/default --timeout=60s`).catch(() => "")
  const watch = watchReady(node)
  const samples: Array<number> = []
  for (let i = 0; i < N; i++) {
    const name = `svid-${i}`
    const body = JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: NS },
      spec: {
        serviceAccountName: "bench",
        terminationGracePeriodSeconds: 1,
        containers: [{ name: "app", image: "busybox", imagePullPolicy: "IfNotPresent", command: ["sleep", "1000000"], volumeMounts: [{ name: "spiffe", mountPath: "/var/run/secrets/spiffe.io" }] }],
        volumes: [{ name: "spiffe", csi: { driver: "spiffe.csi.cert-manager.io", readOnly: true } }]
      }
    })
    const start = performance.now()
    await node.plane.client.create(`/api/v1/namespaces/${NS}/pods`, JSON.parse(body))
    const readyAt = await watch.until(name)
    samples.push(readyAt - start)
  }
  watch.close()
  for (let i = 0; i < N; i++) {
    const ls = (await sh(`kubectl exec -n ${NS} svid-${i} -- ls /var/run/secrets/spiffe.io/`)).split(/\s+/).filter((s) => s !== "")
    if (ls.join(" ") !== "ca.crt tls.crt tls.key") throw new Error(`svid-${i}: ${ls.join(" ")}`)
  }
  const sorted = [...samples].sort((a, b) => a - b)
  const p50 = sorted[Math.floor((sorted.length - 1) / 2)]!
  const max = sorted.at(-1)!
  const kubelet = pidsMatching((c) => c.includes(node.tmpDir) && c.includes("kubelet-config.yaml"))
  const containerd = pidsMatching((c) => c.startsWith("containerd --config") && c.includes(node.tmpDir))
  const uidOf = async (label: string) => (await sh(`kubectl get pod -n cert-manager -l app=${label} -o jsonpath='{.items[0].metadata.uid}'`)).trim()
  const driver = podMemory(await uidOf("cert-manager-csi-driver-spiffe"))
  const approver = podMemory(await uidOf("cert-manager-csi-driver-spiffe-approver"))
  const shims = pidsMatching((c) => c.includes("containerd-shim") && c.includes(node.tmpDir))
  const mb = (pids: Array<string>) => pids.reduce((a, p) => a + rssKb(p), 0) / 1024
  const result = {
    date: new Date().toISOString(),
    pods: N,
    podReadyWithSvidMs: { p50: Math.round(p50), max: Math.round(max), samples: samples.map(Math.round) },
    rssMb: {
      kubelet: Math.round(mb(kubelet)),
      containerd: Math.round(mb(containerd)),
      shimsTotal: Math.round(mb(shims)),
      shims: shims.length,
      driverPod: driver.map((c) => ({ ...c, mb: Math.round(c.mb), anonMb: Math.round(c.anonMb) })),
      approverPod: approver.map((c) => ({ ...c, mb: Math.round(c.mb), anonMb: Math.round(c.anonMb) }))
    },
    nodeStartMs: node.timings
  }
  mkdirSync("bench/results", { recursive: true })
  writeFileSync("bench/results/node.json", JSON.stringify(result, null, 2) + "\n")
  process.stdout.write(`pod create -> Ready with SVID mounted over ${N} pods: p50 ${Math.round(p50)} ms, max ${Math.round(max)} ms\n`)
  process.stdout.write(`RSS: kubelet ${result.rssMb.kubelet} MB, containerd ${result.rssMb.containerd} MB, ${shims.length} shims ${result.rssMb.shimsTotal} MB\n`)
  for (const [pod, cs] of [["driver", driver], ["approver", approver]] as const) {
    for (const c of cs) process.stdout.write(`     ${pod} pod ${c.container} (${c.processes}) ${c.mb.toFixed(1)} MB (anonymous ${c.anonMb.toFixed(1)} MB)\n`)
  }
  process.stdout.write("written: bench/results/node.json\n")
})

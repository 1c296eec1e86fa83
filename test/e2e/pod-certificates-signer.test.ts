/**
 * The Pod Certificate signer on a real control plane (etcd, kube-apiserver 1.37 with the Node
 * authorizer and NodeRestriction, cert-manager's CA ClusterIssuer) with our approver and signer as
 * processes. PodCertificateRequests are created as the node (`system:node:<name>`) for pods bound
 * to it, as a kubelet would; no kubelet runs (test/node has the projected volume end to end).
 *
 * Shows: the intermediate approved by our approver only for the signer's ServiceAccount and issued
 * by cert-manager; a P-256 request issued with the right URI SAN, chained leaf → intermediate →
 * the ClusterTrustBundle's root (openssl, name constraints enforced); a pod whose ServiceAccount has
 * no CertificateRequest permission gets its SVID; ED25519 denied with UnsupportedKeyType; a
 * restart brings a new intermediate while the bundle keeps its root and old leaves still verify;
 * create → Issued latency over 100 requests (printed).
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { toInfo } from "../harness/globalSetup.ts"
import type { KubeClient } from "../harness/kube.ts"
import { type ControlPlane, freePort, startControlPlane } from "../harness/plane.ts"
import { type ManagedProcess, startProcess, waitFor } from "../harness/process.ts"
import { findHelm, makeRenderer } from "../chart/render.ts"
import { type Stack, startStack } from "./stack.ts"

const NODE = "pc-node"
const CR_NS = "cert-manager"
const NS = "pc-apps"
const SIGNER = "spiffe.csi.cert-manager.io/svid"
const TRUST_DOMAIN = "foo.bar"
const SIGNER_SA = "cert-manager-csi-driver-spiffe-signer"
const CTB = "spiffe.csi.cert-manager.io:svid:bundle"
const PCR_API = "/apis/certificates.k8s.io/v1"
const node = process.execPath

let plane: ControlPlane
let stack: Stack
let admin: KubeClient
let asNode: KubeClient
let signer: ManagedProcess | undefined
let nodeUid = ""
let metricsPort = 0
let readyPort = 0
const repo = path.resolve(import.meta.dirname, "../..")

interface Pcr {
  readonly metadata: { readonly name: string; readonly creationTimestamp?: string }
  readonly status?: {
    readonly conditions?: ReadonlyArray<{ readonly type: string; readonly reason?: string; readonly message?: string }>
    readonly certificateChain?: string
    readonly notBefore?: string
    readonly notAfter?: string
    readonly beginRefreshAt?: string
  }
}

const startSigner = (dir: string): ManagedProcess =>
  startProcess({
    name: "signer",
    command: node,
    args: [
      path.join(repo, "src/bin/signer.ts"),
      `--kubeconfig=${plane.users["signer"]!.kubeconfigPath}`,
      `--signer-name=${SIGNER}`,
      `--trust-domain=${TRUST_DOMAIN}`,
      `--issuer-name=${plane.issuer.name}`,
      `--issuer-kind=${plane.issuer.kind}`,
      `--issuer-group=${plane.issuer.group}`,
      `--certificate-namespace=${plane.clusterResourceNamespace}`,
      `--leader-election-namespace=${plane.clusterResourceNamespace}`,
      "--intermediate-duration=168h",
      "--max-leaf-duration=24h",
      `--readiness-probe-bind-address=127.0.0.1:${readyPort}`,
      `--metrics-bind-address=127.0.0.1:${metricsPort}`,
      "--log-level=4"
    ],
    logFile: path.join(dir, `signer-${Date.now()}.log`),
    cwd: repo
  })

/** The signer's chart RBAC (app.podCertificates.enabled), applied as the chart would install it. */
const applySignerRbac = async () => {
  const renderer = makeRenderer(findHelm())
  try {
    const rendered = renderer.render({ app: { podCertificates: { enabled: true } } }, { namespace: plane.clusterResourceNamespace })
    for (const o of rendered.objects) {
      if (!(o.metadata.name as string).endsWith("-signer")) continue
      const ns = plane.clusterResourceNamespace
      const plural = `${o.kind.toLowerCase()}s`
      const p = o.kind === "ServiceAccount"
        ? `/api/v1/namespaces/${ns}/serviceaccounts`
        : o.kind.startsWith("Cluster")
        ? `/apis/rbac.authorization.k8s.io/v1/${plural}`
        : o.kind === "Role" || o.kind === "RoleBinding"
        ? `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/${plural}`
        : undefined
      if (p !== undefined) await admin.ensure(p, o)
    }
  } finally {
    renderer.dispose()
  }
}

/** A DER PKCS#10 stub as the kubelet sends it (empty subject, no extensions), base64. */
const stubCsr = (keyType: "ec" | "ed25519", dir: string): string => {
  const key = path.join(dir, `stub-${keyType}-${Math.random().toString(36).slice(2)}.key`)
  if (keyType === "ec") execFileSync("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key])
  else execFileSync("openssl", ["genpkey", "-algorithm", "ED25519", "-out", key])
  const der = execFileSync("openssl", ["req", "-new", "-key", key, "-subj", "/", "-outform", "DER"])
  return der.toString("base64")
}

interface Workload {
  readonly podName: string
  readonly podUid: string
  readonly serviceAccount: string
  readonly serviceAccountUid: string
}

/**
 * A pod bound to the node with a projected podCertificate volume for our signer (NodeRestriction
 * admits a node's request only for a pod that mounts one), in a namespace whose ServiceAccounts
 * have no permission at all.
 */
const createPod = async (podName: string, serviceAccount: string, keyType: "ECDSAP256" | "ED25519"): Promise<Workload> => {
  await admin.ensure("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: NS } })
  await admin.ensure(`/api/v1/namespaces/${NS}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: serviceAccount, namespace: NS } })
  const sa = await admin.get<{ metadata: { uid: string } }>(`/api/v1/namespaces/${NS}/serviceaccounts/${serviceAccount}`)
  const pod = await admin.create<{ metadata: { uid: string } }>(`/api/v1/namespaces/${NS}/pods`, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: podName, namespace: NS },
    spec: {
      serviceAccountName: serviceAccount,
      automountServiceAccountToken: false,
      nodeName: NODE,
      containers: [{ name: "app", image: "registry.invalid/e2e/placeholder:0", command: ["sleep", "infinity"], volumeMounts: [{ name: "svid", mountPath: "/var/run/svid", readOnly: true }] }],
      volumes: [{
        name: "svid",
        projected: { sources: [{ podCertificate: { signerName: SIGNER, keyType, maxExpirationSeconds: 3600, credentialBundlePath: "credentialbundle.pem" } }] }
      }]
    }
  })
  return { podName, podUid: pod.metadata.uid, serviceAccount, serviceAccountUid: sa.metadata.uid }
}

const createPcr = async (w: Workload, name: string, stub: string): Promise<Pcr> =>
  asNode.create(`${PCR_API}/namespaces/${NS}/podcertificaterequests`, {
    apiVersion: "certificates.k8s.io/v1",
    kind: "PodCertificateRequest",
    metadata: { name, namespace: NS },
    spec: {
      signerName: SIGNER,
      podName: w.podName,
      podUID: w.podUid,
      serviceAccountName: w.serviceAccount,
      serviceAccountUID: w.serviceAccountUid,
      nodeName: NODE,
      nodeUID: nodeUid,
      maxExpirationSeconds: 3600,
      stubPKCS10Request: stub
    }
  })

const terminal = (p: Pcr) => p.status?.conditions?.find((c) => ["Issued", "Denied", "Failed"].includes(c.type))

const answered = (name: string, timeoutMs = 60_000): Promise<Pcr> =>
  waitFor(`PodCertificateRequest ${name} answered`, async () => {
    const p = await admin.get<Pcr>(`${PCR_API}/namespaces/${NS}/podcertificaterequests/${name}`)
    return terminal(p) === undefined ? undefined : p
  }, { timeoutMs, intervalMs: 100 })

const blocks = (pem: string): Array<string> => pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []

/** openssl verify of leaf with the untrusted intermediates against the bundle's roots (name constraints enforced). */
const verify = (dir: string, chainPem: string, rootsPem: string): string => {
  const [leaf, ...rest] = blocks(chainPem)
  const f = (n: string, c: string) => {
    const p = path.join(dir, `${n}-${Math.random().toString(36).slice(2)}.pem`)
    fs.writeFileSync(p, c)
    return p
  }
  return execFileSync("openssl", ["verify", "-CAfile", f("roots", rootsPem), "-untrusted", f("inter", rest.join("\n") + "\n"), f("leaf", leaf! + "\n")], { encoding: "utf8" })
}

const bundle = async (): Promise<string> =>
  (await admin.get<{ spec: { trustBundle: string } }>(`${PCR_API}/clustertrustbundles/${CTB}`)).spec.trustBundle

const intermediateRequests = async (): Promise<Array<{ metadata: { name: string }; spec: { username?: string } }>> =>
  (await admin.get<{ items: Array<{ metadata: { name: string; annotations?: Record<string, string> }; spec: { username?: string } }> }>(
    `/apis/cert-manager.io/v1/namespaces/${plane.clusterResourceNamespace}/certificaterequests`
  )).items.filter((cr) => cr.metadata.annotations?.["spiffe.csi.cert-manager.io/intermediate"] !== undefined)

const workloads: Array<Workload> = []

beforeAll(async () => {
  plane = await startControlPlane({
    log: (m) => process.stderr.write(`[pod-certificates plane] ${m}\n`),
    clusterResourceNamespace: CR_NS,
    authorizationMode: "Node,RBAC",
    apiserverExtraArgs: ["--enable-admission-plugins=NodeRestriction"],
    extraUsers: {
      node: { username: `system:node:${NODE}`, groups: ["system:nodes", "system:authenticated"] },
      signer: {
        username: `system:serviceaccount:${CR_NS}:${SIGNER_SA}`,
        groups: ["system:serviceaccounts", "system:authenticated"]
      }
    }
  })
  admin = plane.client
  asNode = admin.withToken(plane.users["node"]!.token)
  stack = await startStack(toInfo(plane), {
    name: "pod-certificates",
    trustDomain: TRUST_DOMAIN,
    approverArgs: [`--signer-service-account=${plane.clusterResourceNamespace}:${SIGNER_SA}`, "--signer-intermediate-duration=168h"]
  })
  await applySignerRbac()
  const created = await admin.create<{ metadata: { uid: string } }>("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: NODE } })
  nodeUid = created.metadata.uid
  for (let i = 0; i < 10; i++) {
    // No CertificateRequest permission: the pod's identity comes from the node's request alone.
    workloads.push(await createPod(`pc-pod-${i}`, i === 0 ? "web" : `app-${i}`, i === 1 ? "ED25519" : "ECDSAP256"))
  }
  metricsPort = await freePort()
  readyPort = await freePort()
  signer = startSigner(stack.dir)
}, 240_000)

afterAll(async () => {
  if (signer !== undefined && signer.exited() !== undefined) console.log(`[pod-certificates] signer exited:\n${signer.tail(40)}`)
  await signer?.stop()
  await stack?.stop()
  await plane?.stop()
})

describe("Pod Certificate signer on the real plane", () => {
  it("gets its intermediate approved (for its own ServiceAccount) and issued by cert-manager, and publishes the root", async () => {
    await waitFor("the ClusterTrustBundle", async () => ((await admin.raw("GET", `${PCR_API}/clustertrustbundles/${CTB}`)).status === 200 ? true : undefined), { timeoutMs: 60_000, intervalMs: 200, proc: signer! })
    const crs = await intermediateRequests()
    expect(crs.length).toBe(1)
    expect(crs[0]!.spec.username).toBe(`system:serviceaccount:${plane.clusterResourceNamespace}:${SIGNER_SA}`)
    expect(blocks(await bundle()).length).toBe(1)
    expect(await bundle()).toContain(blocks(plane.issuer.caPem)[0]!.split("\n")[1]!)
  }, 90_000)

  it("issues a P-256 request made by the node: URI SAN, chain to the bundle's root, status times", async () => {
    const w = workloads[0]!
    await createPcr(w, "p256", stubCsr("ec", stack.dir))
    const p = await answered("p256")
    expect(terminal(p)?.type).toBe("Issued")
    const chain = p.status!.certificateChain!
    expect(blocks(chain).length).toBe(2)
    const text = execFileSync("openssl", ["x509", "-noout", "-text"], { input: blocks(chain)[0], encoding: "utf8" })
    expect(text).toContain(`URI:spiffe://${TRUST_DOMAIN}/ns/${NS}/sa/web`)
    expect(verify(stack.dir, chain, await bundle())).toContain("OK")
    const lifetime = Date.parse(p.status!.notAfter!) - Date.parse(p.status!.notBefore!)
    expect(lifetime).toBe(3_600_000)
    expect(Date.parse(p.status!.beginRefreshAt!) - Date.parse(p.status!.notBefore!)).toBe(40 * 60_000)
    fs.writeFileSync(path.join(stack.dir, "first-leaf-chain.pem"), chain)
  }, 90_000)

  it("denies an ED25519 key with UnsupportedKeyType", async () => {
    await createPcr(workloads[1]!, "ed25519", stubCsr("ed25519", stack.dir))
    const p = await answered("ed25519")
    expect(terminal(p)?.type).toBe("Denied")
    expect(terminal(p)?.reason).toBe("UnsupportedKeyType")
    expect(terminal(p)?.message).toContain("ED25519")
    // The pod's events say why (the signer's chart RBAC allows it Events).
    const events = await waitFor("the Warning Event on the pod", async () => {
      const list = await admin.get<{ items: Array<{ involvedObject: { name: string }; type: string; reason: string; message: string; source?: { component?: string } }> }>(`/api/v1/namespaces/${NS}/events`)
      const found = list.items.filter((e) => e.involvedObject.name === workloads[1]!.podName && e.reason === "UnsupportedKeyType")
      return found.length > 0 ? found : undefined
    }, { timeoutMs: 20_000, intervalMs: 200 })
    expect(events[0]!.type).toBe("Warning")
    expect(events[0]!.message).toContain("ED25519")
    expect(events[0]!.source?.component).toBe("csi-driver-spiffe-signer")
  }, 60_000)

  it("answers 100 requests; create → Issued latency", async () => {
    const stubs = Array.from({ length: 100 }, () => stubCsr("ec", stack.dir))
    const created = new Map<string, number>()
    const issued = new Map<string, number>()
    await Promise.all(stubs.map(async (stub, i) => {
      const name = `burst-${i}`
      created.set(name, Date.now())
      const eligible = workloads.filter((_, j) => j !== 1)
      await createPcr(eligible[i % eligible.length]!, name, stub)
    }))
    await waitFor("all 100 issued", async () => {
      const list = await admin.get<{ items: Array<Pcr> }>(`${PCR_API}/namespaces/${NS}/podcertificaterequests`)
      const now = Date.now()
      for (const p of list.items) if (p.metadata.name.startsWith("burst-") && terminal(p)?.type === "Issued" && !issued.has(p.metadata.name)) issued.set(p.metadata.name, now)
      return issued.size === 100 ? true : undefined
    }, { timeoutMs: 120_000, intervalMs: 50 })
    const latencies = [...issued].map(([n, t]) => t - created.get(n)!).sort((a, b) => a - b)
    const q = (f: number) => latencies[Math.min(latencies.length - 1, Math.ceil(f * latencies.length) - 1)]!
    const rss = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${signer!.pid}/status`, "utf8"))?.[1]
    console.log(`[pod-certificates] 100 PodCertificateRequests create → Issued (client side, 50 ms polling): p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${latencies.at(-1)} ms; signer RSS after the burst ${rss} kB (sources, not the bundle)`)
    expect(latencies.length).toBe(100)
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    const issuedTotal = /csi_spiffe_signer_requests_total\{[^}]*result="issued"[^}]*\} (\d+)/.exec(metrics)?.[1]
    expect(Number(issuedTotal)).toBe(101)
    expect(metrics).toMatch(/csi_spiffe_signer_requests_total\{[^}]*reason="UnsupportedKeyType"[^}]*result="denied"[^}]*\} 1|csi_spiffe_signer_requests_total\{[^}]*result="denied"[^}]*reason="UnsupportedKeyType"[^}]*\} 1/)
    expect(metrics).toContain("csi_spiffe_signer_issue_latency_seconds_bucket")
    expect(metrics).toContain('leader_election_master_status{name="csi-driver-spiffe-signer"} 1')
    expect((await fetch(`http://127.0.0.1:${readyPort}/readyz`)).status).toBe(200)
  }, 180_000)

  it("after a restart: a new intermediate, the bundle keeps its root, old leaves still verify, new ones issue", async () => {
    const before = (await intermediateRequests()).map((c) => c.metadata.name)
    const rootsBefore = await bundle()
    await signer!.stop()
    signer = startSigner(stack.dir)
    await waitFor("a new intermediate request", async () => ((await intermediateRequests()).some((c) => !before.includes(c.metadata.name)) ? true : undefined), { timeoutMs: 60_000, intervalMs: 200, proc: signer! })
    await createPcr(workloads[2]!, "after-restart", stubCsr("ec", stack.dir))
    const p = await answered("after-restart")
    expect(terminal(p)?.type).toBe("Issued")
    expect(await bundle()).toBe(rootsBefore)
    // The previous process's request (its key is gone) is deleted once the new CA is in force.
    await waitFor("only the new intermediate request left", async () => {
      const names = (await intermediateRequests()).map((c) => c.metadata.name)
      return names.length === 1 && !before.includes(names[0]!) ? true : undefined
    }, { timeoutMs: 30_000, intervalMs: 200, proc: signer! })
    expect(verify(stack.dir, fs.readFileSync(path.join(stack.dir, "first-leaf-chain.pem"), "utf8"), await bundle())).toContain("OK")
    expect(verify(stack.dir, p.status!.certificateChain!, await bundle())).toContain("OK")
    expect(blocks(p.status!.certificateChain!)[1]).not.toBe(blocks(fs.readFileSync(path.join(stack.dir, "first-leaf-chain.pem"), "utf8"))[1])
  }, 120_000)
})

// Smoke test of the control-plane harness, without the driver:
//   node test/harness/smoke.ts [--keep]
// Starts the plane; for two pods (kubelet stand-in) creates a CertificateRequest *as the pod's
// ServiceAccount* with a Pod-bound TokenRequest token; checks that nothing approves it on its own
// (cert-manager's built-in approver is off); approves it as admin through the status subresource;
// waits for cert-manager's CA issuer to sign it and prints issuer and SAN. When the go-spiffe
// checker is built it also verifies both SVIDs and runs mTLS between them (and with a wrong ID,
// which must fail). Tears down at the end (with --keep: after Ctrl-C).
import "reflect-metadata"
import * as x509 from "@peculiar/x509"
import { spawnSync } from "node:child_process"
import { webcrypto } from "node:crypto"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { decodeB64, type KubeClient } from "./kube.ts"
import { createWorkload, nodePublishRequest, requestPodToken, type Workload } from "./kubelet.ts"
import { type ControlPlane, startControlPlane } from "./plane.ts"
import { waitFor } from "./process.ts"
import { ensureUpstream } from "./upstream.ts"

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

const keep = process.argv.includes("--keep")
const trustDomain = "foo.bar"
const ns = "sandbox"
const log = (msg: string) => process.stderr.write(`${msg}\n`)

interface CrStatus {
  certificate?: string
  conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>
}

const pkcs8Pem = async (key: webcrypto.CryptoKey): Promise<string> =>
  `-----BEGIN PRIVATE KEY-----\n${Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key))
    .toString("base64")
    .replace(/(.{64})/g, "$1\n")
    .replace(/\n$/, "")}\n-----END PRIVATE KEY-----\n`

/** Issue an SVID for the workload's ServiceAccount the way the driver will, approving as admin. */
const issueSvid = async (plane: ControlPlane, workload: Workload, outDir: string): Promise<string> => {
  const admin = plane.client
  const spiffeId = `spiffe://${trustDomain}/ns/${workload.namespace}/sa/${workload.serviceAccount}`
  const { token, expirationTimestamp } = await requestPodToken(admin, workload)
  log(`[${workload.podName}] TokenRequest bound to pod uid ${workload.podUid}, expires ${expirationTimestamp}`)
  const asPod: KubeClient = admin.withToken(token)

  const who = await asPod.create<{ status?: { userInfo?: { username?: string; extra?: Record<string, Array<string>> } } }>(
    "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" }
  )
  const podClaim = who.status?.userInfo?.extra?.["authentication.kubernetes.io/pod-name"]?.[0]
  log(`[${workload.podName}] token authenticates as ${who.status?.userInfo?.username} (pod-name claim ${podClaim})`)
  if (podClaim !== workload.podName) throw new Error(`token is not bound to pod ${workload.podName}`)

  const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify"
  ])) as webcrypto.CryptoKeyPair
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]["keys"],
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: "url", value: spiffeId }], true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth])
    ]
  })

  const crPath = `/apis/cert-manager.io/v1/namespaces/${workload.namespace}/certificaterequests`
  const cr = await asPod.create(crPath, {
    apiVersion: "cert-manager.io/v1",
    kind: "CertificateRequest",
    metadata: { generateName: `${workload.podName}-`, namespace: workload.namespace },
    spec: {
      request: Buffer.from(csr.toString("pem")).toString("base64"),
      duration: "1h",
      isCA: false,
      usages: ["digital signature", "key encipherment", "server auth", "client auth"],
      issuerRef: { name: plane.issuer.name, kind: plane.issuer.kind, group: plane.issuer.group }
    }
  })
  const name = cr.metadata?.name ?? ""
  const username = (cr["spec"] as { username?: string }).username
  log(`[${workload.podName}] CertificateRequest ${name} created; spec.username=${username} (set by the webhook)`)
  if (username !== `system:serviceaccount:${workload.namespace}:${workload.serviceAccount}`) {
    throw new Error(`unexpected spec.username ${username}`)
  }

  // cert-manager's built-in approver is off: nothing may approve or deny this request by itself.
  await sleep(2_000)
  const current = await admin.get(`${crPath}/${name}`)
  const status = (current["status"] ?? {}) as CrStatus
  const decided = status.conditions?.find((c) => c.type === "Approved" || c.type === "Denied")
  if (decided !== undefined) throw new Error(`request was ${decided.type} by ${decided.reason}: the built-in approver is on`)

  await admin.update(`${crPath}/${name}/status`, {
    ...current,
    status: {
      ...status,
      conditions: [
        ...(status.conditions ?? []),
        {
          type: "Approved",
          status: "True",
          reason: "HarnessSmoke",
          message: "approved by the harness smoke test",
          lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z")
        }
      ]
    }
  })
  const signed = await waitFor(
    `CertificateRequest ${workload.namespace}/${name} Ready`,
    async () => {
      const st = (await admin.get(`${crPath}/${name}`))["status"] as CrStatus
      const ready = st.conditions?.find((c) => c.type === "Ready")
      if (ready?.status === "True" && st.certificate) return st.certificate
      throw new Error(`Ready=${ready?.status}: ${ready?.message ?? "pending"}`)
    },
    { timeoutMs: 60_000 }
  )
  const certPem = decodeB64(signed)
  const leaf = new x509.X509Certificate(certPem)
  const san = leaf.getExtension(x509.SubjectAlternativeNameExtension)
  console.log(`[${workload.podName}] Issuer: ${leaf.issuer}`)
  console.log(`[${workload.podName}] SAN: ${san?.names.items.map((n) => `${n.type}:${n.value}`).join(", ")}`)
  mkdirSync(outDir, { recursive: true })
  writeFileSync(join(outDir, "tls.crt"), certPem)
  writeFileSync(join(outDir, "tls.key"), await pkcs8Pem(keys.privateKey), { mode: 0o600 })
  return spiffeId
}

const checker = (bin: string, args: ReadonlyArray<string>): { ok: boolean; out: string } => {
  const r = spawnSync(bin, [...args], { encoding: "utf8" })
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() }
}

const t0 = Date.now()
const plane = await startControlPlane({ log, ...(keep ? { keepTmpDir: true } : {}) })
log(`control plane up in ${Date.now() - t0} ms: ${JSON.stringify(plane.timings)}`)

let failed = false
try {
  const admin = plane.client
  const pods = await Promise.all(
    ["example-app", "other-app"].map((sa) =>
      createWorkload(admin, {
        namespace: ns,
        serviceAccount: sa,
        podName: `${sa}-pod`,
        nodeName: "e2e-node",
        volumes: [{ name: "spiffe" }]
      })
    )
  )
  const [a, b] = pods as [Workload, Workload]

  // What the kubelet would send for pod A's volume (the driver is not part of this smoke test).
  const publish = await nodePublishRequest(admin, a, "spiffe", { kubeletRoot: join(plane.tmpDir, "kubelet") })
  log(`NodePublishVolume for ${a.podName}: volume_id=${publish.volume_id} target_path=${publish.target_path}`)
  log(`  volume_context keys: ${Object.keys(publish.volume_context).join(", ")}`)

  const dirA = join(plane.tmpDir, "svid-a")
  const dirB = join(plane.tmpDir, "svid-b")
  const idA = await issueSvid(plane, a, dirA)
  const idB = await issueSvid(plane, b, dirB)

  const upstream = await ensureUpstream(["spiffe-checker"], { build: false, onProgress: () => {} })
  if (upstream.env["CSI_SPIFFE_BIN_SPIFFE_CHECKER"] !== undefined) {
    const bin = upstream.bin("spiffe-checker")
    const bundle = plane.issuer.caFile
    for (const [dir, id] of [[dirA, idA], [dirB, idB]] as const) {
      const r = checker(bin, ["verify", "--dir", dir, "--bundle", bundle, "--expect-id", id])
      console.log(r.out)
      if (!r.ok) throw new Error("go-spiffe verify failed")
    }
    const good = checker(bin, ["mtls", "--server-dir", dirA, "--client-dir", dirB, "--bundle", bundle])
    console.log(good.out)
    if (!good.ok) throw new Error("mTLS between the two SVIDs failed")
    const wrongId = `spiffe://${trustDomain}/ns/${ns}/sa/somebody-else`
    const bad = checker(bin, ["mtls", "--server-dir", dirA, "--client-dir", dirB, "--bundle", bundle, "--client-authorize-id", wrongId])
    console.log(`expected failure: ${bad.out}`)
    if (bad.ok) throw new Error("mTLS with a wrong authorized ID succeeded")
    const badServer = checker(bin, ["mtls", "--server-dir", dirA, "--client-dir", dirB, "--bundle", bundle, "--server-authorize-id", wrongId])
    console.log(`expected failure: ${badServer.out}`)
    if (badServer.ok) throw new Error("mTLS with a wrong client ID on the server side succeeded")
  } else {
    log("spiffe-checker not built; skipping the go-spiffe checks (scripts/upstream/build.sh spiffe-checker)")
  }
  console.log("SMOKE OK")
} catch (err) {
  failed = true
  console.error("SMOKE FAILED:", err instanceof Error ? err.message : err)
  console.error(`process logs: ${JSON.stringify(plane.logs)}`)
} finally {
  const t1 = Date.now()
  if (keep && !failed) {
    log(`--keep: plane left running. KUBECONFIG=${plane.kubeconfigPath} (server ${plane.server}); Ctrl-C stops it`)
    await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()))
  }
  await plane.stop()
  log(`teardown ${Date.now() - t1} ms`)
}
process.exitCode = failed ? 1 : 0

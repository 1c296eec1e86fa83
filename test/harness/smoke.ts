// Smoke test of the control-plane harness, without the driver:
//   node test/harness/smoke.ts [--keep]
// starts the plane, makes a pod (kubelet stand-in), creates a CertificateRequest *as the pod's
// ServiceAccount* with a Pod-bound TokenRequest token, approves it as admin through the status
// subresource, waits for cert-manager's CA issuer to sign it, prints the issuer and SAN, then
// (if built) checks the SVID with the go-spiffe checker, and tears down.
import "reflect-metadata"
import * as x509 from "@peculiar/x509"
import { spawnSync } from "node:child_process"
import { webcrypto } from "node:crypto"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { decodeB64, type KubeObject } from "./kube.ts"
import { createWorkload, requestPodToken } from "./kubelet.ts"
import { startControlPlane } from "./plane.ts"
import { waitFor } from "./process.ts"
import { ensureUpstream } from "./upstream.ts"

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

const keep = process.argv.includes("--keep")
const trustDomain = "foo.bar"
const ns = "sandbox"
const sa = "example-app"
const spiffeId = `spiffe://${trustDomain}/ns/${ns}/sa/${sa}`

const log = (msg: string) => process.stderr.write(`${msg}\n`)
const t0 = Date.now()
const plane = await startControlPlane({ log, keepTmpDir: keep })
log(`control plane up in ${Date.now() - t0} ms: ${JSON.stringify(plane.timings)}`)

let failed = false
try {
  const admin = plane.client
  const workload = await createWorkload(admin, {
    namespace: ns,
    serviceAccount: sa,
    podName: "my-csi-app",
    nodeName: "e2e-node",
    volumes: [{ name: "spiffe", volumeAttributes: {} }]
  })
  log(`pod ${ns}/${workload.podName} uid=${workload.podUid}`)
  const { token, expirationTimestamp } = await requestPodToken(admin, workload)
  log(`TokenRequest bound to the pod, expires ${expirationTimestamp}`)
  const asPod = admin.withToken(token)

  const whoami = await asPod.create<{ status?: { userInfo?: { username?: string; extra?: Record<string, Array<string>> } } }>(
    "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" }
  )
  log(`token authenticates as ${whoami.status?.userInfo?.username} (pod-name claim: ${whoami.status?.userInfo?.extra?.["authentication.kubernetes.io/pod-name"]})`)

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

  const crPath = `/apis/cert-manager.io/v1/namespaces/${ns}/certificaterequests`
  const cr = await asPod.create(crPath, {
    apiVersion: "cert-manager.io/v1",
    kind: "CertificateRequest",
    metadata: { generateName: "smoke-", namespace: ns },
    spec: {
      request: Buffer.from(csr.toString("pem")).toString("base64"),
      duration: "1h",
      isCA: false,
      usages: ["digital signature", "key encipherment", "server auth", "client auth"],
      issuerRef: { name: plane.issuer.name, kind: plane.issuer.kind, group: plane.issuer.group }
    }
  })
  const name = cr.metadata?.name ?? ""
  const spec = cr["spec"] as { username?: string; groups?: Array<string> }
  log(`CertificateRequest ${ns}/${name} created as ${spec.username} (set by the cert-manager webhook)`)
  if (spec.username !== `system:serviceaccount:${ns}:${sa}`) throw new Error(`unexpected spec.username ${spec.username}`)

  // Approve as admin (the SPIFFE approver's job once it exists).
  const current = await admin.get(`${crPath}/${name}`)
  const status = (current["status"] ?? {}) as { conditions?: Array<unknown> }
  await admin.update(`${crPath}/${name}/status`, {
    ...current,
    status: {
      ...status,
      conditions: [
        ...(status.conditions ?? []),
        {
          type: "Approved",
          status: "True",
          reason: "smoke",
          message: "approved by the harness smoke test",
          lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z")
        }
      ]
    }
  })
  log("approved through the status subresource")

  const signed = await waitFor(
    `CertificateRequest ${name} Ready`,
    async () => {
      const obj: KubeObject = await admin.get(`${crPath}/${name}`)
      const st = obj["status"] as { certificate?: string; ca?: string; conditions?: Array<{ type: string; status: string; message?: string }> }
      const ready = st.conditions?.find((c) => c.type === "Ready")
      if (ready?.status === "True" && st.certificate) return st
      throw new Error(`Ready=${ready?.status}: ${ready?.message ?? "pending"}`)
    },
    { timeoutMs: 60_000 }
  )
  const certPem = decodeB64(signed.certificate ?? "")
  const leaf = new x509.X509Certificate(certPem)
  const san = leaf.getExtension(x509.SubjectAlternativeNameExtension)
  console.log(`Issuer: ${leaf.issuer}`)
  console.log(`URI SANs: ${san?.names.items.map((n) => `${n.type.toUpperCase()}:${n.value}`).join(", ")}`)
  console.log(`notBefore=${leaf.notBefore.toISOString()} notAfter=${leaf.notAfter.toISOString()}`)

  // go-spiffe check, when the checker is built.
  const upstream = await ensureUpstream(["spiffe-checker"], { build: false, onProgress: () => {} })
  if (upstream.env["CSI_SPIFFE_BIN_SPIFFE_CHECKER"] !== undefined) {
    const dir = join(plane.tmpDir, "svid")
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, "tls.crt"), certPem)
    writeFileSync(join(dir, "tls.key"), `-----BEGIN PRIVATE KEY-----\n${Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)).toString("base64").replace(/(.{64})/g, "$1\n")}\n-----END PRIVATE KEY-----\n`)
    const r = spawnSync(upstream.bin("spiffe-checker"), ["verify", "--dir", dir, "--bundle", plane.issuer.caFile, "--expect-id", spiffeId], { encoding: "utf8" })
    process.stdout.write(r.stdout)
    process.stderr.write(r.stderr)
    if (r.status !== 0) throw new Error(`spiffe-checker exited ${r.status}`)
  } else {
    log("spiffe-checker not built; skipping the go-spiffe check")
  }
  console.log("SMOKE OK")
} catch (err) {
  failed = true
  console.error("SMOKE FAILED:", err instanceof Error ? err.message : err)
  console.error(`logs: ${JSON.stringify(plane.logs)}`)
} finally {
  const t1 = Date.now()
  if (keep && !failed) {
    log(`--keep: plane left running. KUBECONFIG=${plane.kubeconfigPath} (server ${plane.server}); Ctrl-C to stop`)
    await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()))
  }
  await plane.stop()
  log(`teardown ${Date.now() - t1} ms`)
}
process.exitCode = failed ? 1 : 0

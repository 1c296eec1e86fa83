// Pod Certificates on a real 1.37 node: the chart with app.podCertificates.enabled=true runs the
// signer; deploy/example/pod-certificate-app.yaml's pod starts with the projected podCertificate
// and clusterTrustBundle volume, made by its kubelet; from inside the container the credential
// bundle holds a PKCS#8 key matching an SVID for the pod's ServiceAccount, chained (leaf, the
// signer's intermediate) to the ClusterTrustBundle's root, which openssl (name constraints
// included) and go-spiffe verify. The pod's ServiceAccount has no CertificateRequest permission.
// An unsupported key type is denied and the pod's Events say so; a signer restart brings a new
// intermediate while old leaves still verify; the kubelet refreshes the SVID (1-hour certificates,
// refresh 10 minutes after notBefore, the earliest the API server allows) and the container sees it.
//
// Cost: the refresh is the kubelet's own schedule (beginRefreshAt plus its jitter, checked once a
// minute), so the last case waits 10 to 17 minutes; it runs while the others do.
import { spawnSync } from "node:child_process"
import { X509Certificate, createPrivateKey } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { nodeSuiteValues } from "../harness/nodeGlobalSetup.ts"
import { installChart, RELEASE_NAMESPACE } from "../harness/node.ts"
import { poll } from "../e2e/issuers.ts"
import { spiffeChecker } from "../e2e/tools.ts"
import { deleteNamespace, exec, helm, k, kubectl, node, TRUST_DOMAIN } from "./support.ts"

const NS = "node-podcert"
const SA = "pod-certificate-app"
const SIGNER_NAME = "spiffe.csi.cert-manager.io/svid"
const SIGNER_DEPLOYMENT = "cert-manager-csi-driver-spiffe-signer"
const BUNDLE = "spiffe.csi.cert-manager.io:svid:bundle"
const ID = `spiffe://${TRUST_DOMAIN}/ns/${NS}/sa/${SA}`
const MOUNT = "/var/run/secrets/spiffe.io"
const example = fs.readFileSync(new URL("../../deploy/example/pod-certificate-app.yaml", import.meta.url), "utf8")
const work = fs.mkdtempSync(path.join(os.tmpdir(), "node-podcert-"))

const withPodCertificates = [
  ...nodeSuiteValues,
  "app.podCertificates.enabled=true",
  "app.podCertificates.maxLeafDuration=1h",
  "app.podCertificates.beginRefreshAfter=10m"
]

/** The example, in our namespace and trust domain, one replica, the pod's key type and lifetime as given. */
const exampleFor = (name: string, o: { keyType?: string; maxExpirationSeconds?: number } = {}): string =>
  example
    .replaceAll("namespace: sandbox", `namespace: ${NS}`)
    .replace(/kind: Namespace\nmetadata:\n  name: sandbox/, `kind: Namespace\nmetadata:\n  name: ${NS}`)
    .replaceAll("app: pod-certificate-app", `app: ${name}`)
    .replace(/kind: Deployment\nmetadata:\n  name: pod-certificate-app/, `kind: Deployment\nmetadata:\n  name: ${name}`)
    .replace("replicas: 2", "replicas: 1")
    .replace("keyType: ECDSAP256", `keyType: ${o.keyType ?? "ECDSAP256"}`)
    .replace("maxExpirationSeconds: 86400", `maxExpirationSeconds: ${o.maxExpirationSeconds ?? 3600}`)
    .replace("spiffe.csi.cert-manager.io/trust-domain: cluster.local", `spiffe.csi.cert-manager.io/trust-domain: ${TRUST_DOMAIN}`)

const podOf = async (app: string): Promise<string> =>
  (await k(["get", "pods", "-n", NS, "-l", `app=${app}`, "-o", "jsonpath={.items[0].metadata.name}"])).trim()

const startDeployment = async (name: string, o: { keyType?: string; maxExpirationSeconds?: number } = {}): Promise<string> => {
  await k(["apply", "-f", "-"], exampleFor(name, o))
  await k(["rollout", "status", "-n", NS, `deployment/${name}`, "--timeout=180s"])
  return podOf(name)
}

const PEM = /-----BEGIN ([A-Z ]+)-----\n[A-Za-z0-9+/=\n]+?-----END \1-----\n?/g

interface Credentials {
  readonly keyPem: string
  readonly chain: ReadonlyArray<X509Certificate>
  readonly chainPem: string
  readonly caPem: string
}

/** credentials.pem (key first, then the chain) and ca.pem, as the container reads them. */
const credentialsOf = async (pod: string): Promise<Credentials> => {
  const read = async (file: string) => {
    const r = await exec(NS, pod, ["cat", `${MOUNT}/${file}`])
    if (r.code !== 0) throw new Error(`cat ${file} in ${NS}/${pod} failed (exit ${r.code}): ${r.stderr}`)
    return r.stdout
  }
  const bundle = await read("credentials.pem")
  const blocks = [...bundle.matchAll(PEM)]
  expect(blocks.map((b) => b[1])).toEqual(["PRIVATE KEY", "CERTIFICATE", "CERTIFICATE"])
  const certs = blocks.slice(1).map((b) => b[0])
  return { keyPem: blocks[0]![0], chain: certs.map((c) => new X509Certificate(c)), chainPem: certs.join(""), caPem: await read("ca.pem") }
}

const bundleRoots = async (): Promise<string> =>
  (await k(["get", "clustertrustbundles.certificates.k8s.io", BUNDLE, "-o", "jsonpath={.spec.trustBundle}"])).trim()

/** openssl verify of the leaf with the chain's intermediates against `caPem` (name constraints checked). */
const opensslVerify = (c: Credentials, caPem: string, tag: string): { ok: boolean; out: string } => {
  const dir = fs.mkdtempSync(path.join(work, `${tag}-`))
  fs.writeFileSync(path.join(dir, "ca.pem"), caPem)
  fs.writeFileSync(path.join(dir, "intermediates.pem"), c.chain.slice(1).map((x) => x.toString()).join(""))
  fs.writeFileSync(path.join(dir, "leaf.pem"), c.chain[0]!.toString())
  const r = spawnSync("openssl", ["verify", "-CAfile", "ca.pem", "-untrusted", "intermediates.pem", "leaf.pem"], { cwd: dir, encoding: "utf8" })
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() }
}

/** The refresh pod: started first so the kubelet's refresh schedule runs while the other cases do. */
let refreshPod: string
let refreshFirst: Credentials

describe("Pod Certificates on a real node", () => {
  beforeAll(async () => {
    await installChart({ ...node, helm: (args) => helm(args) }, { caBundle: true, extra: withPodCertificates })
    await k(["rollout", "status", "-n", RELEASE_NAMESPACE, `deployment/${SIGNER_DEPLOYMENT}`, "--timeout=180s"])
    refreshPod = await startDeployment("refresh-app")
    refreshFirst = await credentialsOf(refreshPod)
  }, 600_000)
  afterAll(async () => {
    await deleteNamespace(NS)
    await installChart({ ...node, helm: (args) => helm(args) }, { caBundle: true, extra: nodeSuiteValues })
    await kubectl(["delete", "clustertrustbundles.certificates.k8s.io", BUNDLE, "--ignore-not-found"])
    const crs = JSON.parse(await k(["get", "certificaterequests.cert-manager.io", "-n", RELEASE_NAMESPACE, "-o", "json"])) as {
      items: Array<{ metadata: { name: string; annotations?: Record<string, string> } }>
    }
    const mine = crs.items.filter((cr) => cr.metadata.annotations?.["spiffe.csi.cert-manager.io/intermediate"] !== undefined)
    if (mine.length > 0) await kubectl(["delete", "certificaterequests.cert-manager.io", "-n", RELEASE_NAMESPACE, ...mine.map((cr) => cr.metadata.name)])
    fs.rmSync(work, { recursive: true, force: true })
  }, 600_000)

  it("the example's pod starts; its credential bundle is a P-256 key and the SVID for its ServiceAccount, chained to the ClusterTrustBundle's root", async () => {
    const pod = await startDeployment("example-app")
    const c = await credentialsOf(pod)
    const [leaf, intermediate] = c.chain
    expect(leaf!.subjectAltName).toBe(`URI:${ID}`)
    expect(leaf!.checkPrivateKey(createPrivateKey(c.keyPem))).toBe(true)
    expect(createPrivateKey(c.keyPem).asymmetricKeyDetails?.namedCurve).toBe("prime256v1")
    expect(leaf!.verify(intermediate!.publicKey)).toBe(true)
    expect(intermediate!.subject).toBe(`CN=csi-driver-spiffe signer ${TRUST_DOMAIN}`)
    expect(intermediate!.ca).toBe(true)
    // ca.pem is the ClusterTrustBundle's content: the issuer's root, which signed the intermediate.
    expect(c.caPem.trim()).toBe(await bundleRoots())
    expect(c.caPem).toContain(node.plane.issuer.caPem.trim())
    expect(intermediate!.verify(new X509Certificate(node.plane.issuer.caPem).publicKey)).toBe(true)
    expect(opensslVerify(c, c.caPem, "example")).toEqual({ ok: true, out: "leaf.pem: OK" })
    // go-spiffe: x509svid.Load + Verify against the bundle, expecting the pod's ID.
    const dir = fs.mkdtempSync(path.join(work, "go-spiffe-"))
    fs.writeFileSync(path.join(dir, "chain.pem"), c.chainPem)
    fs.writeFileSync(path.join(dir, "key.pem"), c.keyPem)
    fs.writeFileSync(path.join(dir, "ca.pem"), c.caPem)
    const check = (await spiffeChecker())(["verify", "--cert", path.join(dir, "chain.pem"), "--key", path.join(dir, "key.pem"), "--bundle", path.join(dir, "ca.pem"), "--expect-id", ID])
    expect(check.ok, check.out).toBe(true)
  })

  it("the pod's ServiceAccount may not create CertificateRequests, and none was made in its namespace: the kubelet made a PodCertificateRequest", async () => {
    const r = await kubectl(["auth", "can-i", "create", "certificaterequests.cert-manager.io", "-n", NS, `--as=system:serviceaccount:${NS}:${SA}`])
    expect(r.stdout.trim()).toBe("no")
    const crs = JSON.parse(await k(["get", "certificaterequests.cert-manager.io", "-n", NS, "-o", "json"])) as { items: Array<unknown> }
    expect(crs.items).toEqual([])
    const pcrs = JSON.parse(await k(["get", "podcertificaterequests.certificates.k8s.io", "-n", NS, "-o", "json"])) as {
      items: Array<{ spec: { signerName: string; serviceAccountName: string; nodeName: string } }>
    }
    expect(pcrs.items.length).toBeGreaterThan(0)
    for (const p of pcrs.items) {
      expect([p.spec.signerName, p.spec.serviceAccountName, p.spec.nodeName]).toEqual([SIGNER_NAME, SA, node.nodeName])
    }
  })

  it("an unsupported key type (ED25519) is denied with UnsupportedKeyType, the pod does not start and its Events say why", async () => {
    await k(["apply", "-f", "-"], exampleFor("ed25519-app", { keyType: "ED25519" }))
    const pcr = await poll(
      "a denied PodCertificateRequest for the ED25519 pod",
      async () => {
        const list = JSON.parse(await k(["get", "podcertificaterequests.certificates.k8s.io", "-n", NS, "-o", "json"])) as {
          items: Array<{ spec: { podName: string }; status?: { conditions?: Array<{ type: string; reason?: string; message?: string }> } }>
        }
        return list.items.find((p) => p.spec.podName.startsWith("ed25519-app-") && p.status?.conditions?.some((c) => c.type === "Denied"))
      },
      { timeoutMs: 120_000, intervalMs: 1000 }
    )
    const denied = pcr.status!.conditions!.find((c) => c.type === "Denied")!
    expect(denied.reason).toBe("UnsupportedKeyType")
    const pod = pcr.spec.podName
    const event = await poll(
      `an Event on ${pod} naming the denial`,
      async () => {
        const events = JSON.parse(await k(["get", "events", "-n", NS, "--field-selector", `involvedObject.name=${pod}`, "-o", "json"])) as {
          items: Array<{ type: string; reason: string; message: string }>
        }
        return events.items.find((e) => e.type === "Warning" && /UnsupportedKeyType|denied/i.test(e.message))
      },
      { timeoutMs: 120_000, intervalMs: 1000 }
    )
    expect(event.message).toMatch(/UnsupportedKeyType|ED25519/)
    const phase = (await k(["get", "pod", "-n", NS, pod, "-o", "jsonpath={.status.phase}"])).trim()
    expect(phase).toBe("Pending")
  })

  it("after a signer restart new SVIDs come from a new intermediate, and old ones still verify against the bundle", async () => {
    const before = await credentialsOf(await podOf("example-app"))
    await k(["delete", "pod", "-n", RELEASE_NAMESPACE, "-l", `app=${SIGNER_DEPLOYMENT}`, "--wait=true", "--timeout=120s"])
    await k(["rollout", "status", "-n", RELEASE_NAMESPACE, `deployment/${SIGNER_DEPLOYMENT}`, "--timeout=180s"])
    const after = await credentialsOf(await startDeployment("after-restart-app"))
    expect(after.chain[0]!.subjectAltName).toBe(`URI:${ID}`)
    expect(after.chain[1]!.serialNumber).not.toBe(before.chain[1]!.serialNumber)
    expect(after.chain[1]!.publicKey.export({ format: "der", type: "spki" })).not.toEqual(before.chain[1]!.publicKey.export({ format: "der", type: "spki" }))
    const roots = await bundleRoots()
    expect(opensslVerify(after, roots, "after")).toEqual({ ok: true, out: "leaf.pem: OK" })
    expect(opensslVerify(before, roots, "before")).toEqual({ ok: true, out: "leaf.pem: OK" })
  })

  it("the kubelet refreshes the SVID (refresh 10 minutes into a 1-hour certificate) and the container sees the new one", async () => {
    const first = refreshFirst.chain[0]!
    const lifetimeMs = Date.parse(first.validTo) - Date.parse(first.validFrom)
    expect(lifetimeMs).toBe(3_600_000)
    const next = await poll(
      "a new SVID in the refresh pod",
      async () => {
        const c = await credentialsOf(refreshPod)
        return c.chain[0]!.serialNumber === first.serialNumber ? undefined : c
      },
      { timeoutMs: 20 * 60_000, intervalMs: 15_000 }
    )
    expect(next.chain[0]!.subjectAltName).toBe(`URI:${ID}`)
    expect(next.chain[0]!.checkPrivateKey(createPrivateKey(next.keyPem))).toBe(true)
    expect(opensslVerify(next, await bundleRoots(), "refreshed")).toEqual({ ok: true, out: "leaf.pem: OK" })
    const refreshedAfterMs = Date.parse(next.chain[0]!.validFrom) - Date.parse(first.validFrom)
    process.stderr.write(`pod-certificates: kubelet refreshed ${Math.round(refreshedAfterMs / 1000)} s after the first notBefore\n`)
    expect(refreshedAfterMs).toBeGreaterThanOrEqual(10 * 60_000 - 5_000)
  }, 21 * 60_000)
})

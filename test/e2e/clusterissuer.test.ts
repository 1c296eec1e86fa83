/**
 * deploy/example/clusterissuer.yaml does what it says on the real control plane: cert-manager's
 * controller makes the bootstrap ClusterIssuer Ready, issues the CA Certificate into its Secret in
 * the cluster resource namespace, and makes the CA ClusterIssuer Ready on that Secret.
 *
 * The plane already owns a ClusterIssuer and Secret named csi-driver-spiffe-ca (its own CA, which
 * other tests verify against), so the example's objects are applied under suffixed names; nothing
 * else of the file changes, and the test removes them (and the Secret) afterwards.
 */
import { randomBytes, webcrypto } from "node:crypto"
import { readFileSync } from "node:fs"
import { loadAllYaml } from "@kubernetes/client-node"
import { afterAll, describe, expect, inject, it } from "vitest"
import { x509 } from "../../src/x509.ts"
import { connect } from "../harness/globalSetup.ts"
import { KubeApiError, type KubeObject, decodeB64 } from "../harness/kube.ts"
import { conditionTrue, watchUntil } from "../harness/watch.ts"

const plane = inject("controlPlane")
const admin = connect(plane)
const file = new URL("../../deploy/example/clusterissuer.yaml", import.meta.url)

type Obj = KubeObject & { metadata: { name: string; namespace?: string }; spec: Record<string, unknown> }
const docs = loadAllYaml(readFileSync(file, "utf8")) as ReadonlyArray<Obj>

const suffix = `-e2e-${randomBytes(3).toString("hex")}`
const renamed = (name: string) => `${name}${suffix}`
const certManager = "/apis/cert-manager.io/v1"
const objectPath = (o: Obj) =>
  o.kind === "ClusterIssuer"
    ? `${certManager}/clusterissuers/${o.metadata.name}`
    : `${certManager}/namespaces/${o.metadata.namespace}/certificates/${o.metadata.name}`

/** The example under this run's names: object names, the Secret name and the issuer reference. */
const applied: ReadonlyArray<Obj> = docs.map((o) => {
  const spec = structuredClone(o.spec) as Record<string, Record<string, unknown> | unknown>
  if (typeof spec["secretName"] === "string") spec["secretName"] = renamed(spec["secretName"])
  const ca = spec["ca"] as { secretName?: string } | undefined
  if (ca?.secretName !== undefined) spec["ca"] = { ...ca, secretName: renamed(ca.secretName) }
  const ref = spec["issuerRef"] as { name?: string } | undefined
  if (ref?.name !== undefined) spec["issuerRef"] = { ...ref, name: renamed(ref.name) }
  return { ...o, metadata: { ...o.metadata, name: renamed(o.metadata.name) }, spec }
})

const byKind = (kind: string) => docs.filter((o) => o.kind === kind)
const caSecretName = renamed(String(byKind("Certificate")[0]?.spec["secretName"]))

describe("deploy/example/clusterissuer.yaml", () => {
  afterAll(async () => {
    const paths = [...applied.map(objectPath), `/api/v1/namespaces/${plane.clusterResourceNamespace}/secrets/${caSecretName}`]
    for (const p of paths) {
      await admin.delete(p).catch((err: unknown) => {
        if (!(err instanceof KubeApiError && err.status === 404)) throw err
      })
    }
  })

  it("is a self-signed bootstrap, a CA Certificate in cert-manager's namespace and the csi-driver-spiffe-ca CA ClusterIssuer on its Secret", () => {
    expect(docs.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      "ClusterIssuer/csi-driver-spiffe-selfsigned",
      "Certificate/csi-driver-spiffe-ca",
      "ClusterIssuer/csi-driver-spiffe-ca"
    ])
    const [bootstrap, cert, ca] = docs
    expect(bootstrap!.spec).toEqual({ selfSigned: {} })
    expect(cert!.metadata.namespace).toBe("cert-manager")
    // a CA ClusterIssuer reads its Secret from cert-manager's cluster resource namespace
    expect(plane.clusterResourceNamespace).toBe(cert!.metadata.namespace)
    expect(cert!.spec).toMatchObject({
      isCA: true,
      commonName: "csi-driver-spiffe-ca",
      secretName: "csi-driver-spiffe-ca",
      privateKey: { algorithm: "ECDSA" },
      issuerRef: { name: bootstrap!.metadata.name, kind: "ClusterIssuer", group: "cert-manager.io" }
    })
    expect(ca!.spec).toEqual({ ca: { secretName: "csi-driver-spiffe-ca" } })
  })

  it("makes both ClusterIssuers Ready, with the CA Secret holding a self-signed ECDSA CA named csi-driver-spiffe-ca", async () => {
    for (const o of applied) await admin.apply(objectPath(o), o)

    // The plane's cert-manager runs without its built-in approver (approval is our approver's job),
    // so the test approves the CA's CertificateRequest the way that approver would in a cluster.
    // cert-manager names it <certificate>-<revision>.
    const certificate = applied.find((x) => x.kind === "Certificate")!
    const crs = `${certManager}/namespaces/${certificate.metadata.namespace}/certificaterequests`
    const cr = await watchUntil(admin, crs, `${certificate.metadata.name}-1`, () => true, {
      timeoutMs: 60_000,
      what: `CertificateRequest of Certificate ${certificate.metadata.name}`
    })
    const status = (cr["status"] ?? {}) as { conditions?: ReadonlyArray<unknown> }
    // metav1.Time has whole seconds: a fraction would read back changed when cert-manager writes
    // the status, and its webhook refuses any change to an Approved condition.
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z")
    await admin.update(`${crs}/${cr.metadata!.name}/status`, {
      ...cr,
      status: {
        ...status,
        conditions: [
          ...(status.conditions ?? []),
          { type: "Approved", status: "True", reason: "e2e", message: "approved by the clusterissuer test", lastTransitionTime: now }
        ]
      }
    })

    await watchUntil(
      admin,
      `${certManager}/namespaces/${certificate.metadata.namespace}/certificates`,
      certificate.metadata.name,
      (x) => conditionTrue(x, "Ready"),
      { timeoutMs: 60_000, what: `Certificate ${certificate.metadata.name} Ready` }
    )

    for (const o of applied.filter((x) => x.kind === "ClusterIssuer")) {
      await watchUntil(admin, `${certManager}/clusterissuers`, o.metadata.name, (x) => conditionTrue(x, "Ready"), {
        timeoutMs: 60_000,
        what: `ClusterIssuer ${o.metadata.name} Ready`
      })
    }
    const secret = await admin.get<{ data: Record<string, string> }>(
      `/api/v1/namespaces/${plane.clusterResourceNamespace}/secrets/${caSecretName}`
    )
    const caCert = new x509.X509Certificate(decodeB64(secret.data["tls.crt"]!))
    expect(caCert.subject).toBe("CN=csi-driver-spiffe-ca")
    expect(caCert.issuer).toBe(caCert.subject)
    expect(await caCert.verify({ publicKey: caCert, signatureOnly: true })).toBe(true)
    const bc = caCert.getExtension(x509.BasicConstraintsExtension)
    expect(bc?.ca).toBe(true)
    const key = await caCert.publicKey.export(webcrypto)
    expect(key.algorithm).toMatchObject({ name: "ECDSA", namedCurve: "P-256" })
  })
})

// The runtime issuer ConfigMap (`app.runtimeIssuanceConfigMap=spiffe-issuer`) on a real node: created
// (new pods are signed by the CA it names), switched (by the other CA), deleted (back to the
// chart's issuer csi-driver-spiffe-ca). The driver and approver pods watch the ConfigMap; each
// switch is asynchronous, so new pods are started until one is signed by the expected CA.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createCaClusterIssuer, deleteCaClusterIssuer, poll, type CaIssuer } from "../e2e/issuers.ts"
import { admin, deleteNamespace, deletePod, k, kubectl, leaf, node, readInPod, signedBy, startPod, workloadNamespace } from "./support.ts"

const NS = "node-runtime"
const SA = "runtime-app"
const CM = "spiffe-issuer"
const SWITCH_TIMEOUT_MS = 120_000

let ca1: CaIssuer
let ca2: CaIssuer
let seq = 0

const setIssuer = async (name: string) => {
  const yaml = await k([
    "create", "configmap", CM, "-n", "cert-manager",
    `--from-literal=issuer-name=${name}`, "--from-literal=issuer-kind=ClusterIssuer", "--from-literal=issuer-group=cert-manager.io",
    "--dry-run=client", "-o", "yaml"
  ])
  await k(["apply", "-f", "-"], yaml)
}

/** Start pods until one is signed by `caPem`; returns its certificate. */
const podSignedBy = (caPem: string, what: string): Promise<string> =>
  poll(
    `a new pod signed by ${what}`,
    async () => {
      const name = `runtime-${seq++}`
      await startPod({ ns: NS, name, sa: SA })
      const crt = await readInPod(NS, name, "tls.crt")
      await deletePod(NS, name, false)
      return signedBy(crt, caPem) ? crt : undefined
    },
    { timeoutMs: SWITCH_TIMEOUT_MS, intervalMs: 500 }
  )

describe("runtime issuer ConfigMap on a real node", () => {
  beforeAll(async () => {
    await kubectl(["delete", "configmap", CM, "-n", "cert-manager", "--ignore-not-found"])
    ca1 = await createCaClusterIssuer(node.plane, admin(), "node-runtime-ca-1")
    ca2 = await createCaClusterIssuer(node.plane, admin(), "node-runtime-ca-2")
    await workloadNamespace(NS, SA)
  })
  afterAll(async () => {
    await kubectl(["delete", "configmap", CM, "-n", "cert-manager", "--ignore-not-found"])
    await deleteNamespace(NS)
    await deleteCaClusterIssuer(node.plane, admin(), "node-runtime-ca-1")
    await deleteCaClusterIssuer(node.plane, admin(), "node-runtime-ca-2")
  })

  it("created: new pods are signed by the issuer it names; switched: by the new one; deleted: by the chart's issuer", async () => {
    const before = await podSignedBy(node.plane.issuer.caPem, "csi-driver-spiffe-ca (no ConfigMap)")
    expect(leaf(before).issuer).toBe("CN=csi-driver-spiffe-ca")

    await setIssuer(ca1.name)
    const first = await podSignedBy(ca1.caPem, ca1.name)
    expect(leaf(first).issuer).toBe(`CN=${ca1.name}`)

    await setIssuer(ca2.name)
    const second = await podSignedBy(ca2.caPem, ca2.name)
    expect(signedBy(second, ca1.caPem)).toBe(false)

    await k(["delete", "configmap", CM, "-n", "cert-manager"])
    const after = await podSignedBy(node.plane.issuer.caPem, "csi-driver-spiffe-ca (ConfigMap deleted)")
    expect(signedBy(after, ca2.caPem)).toBe(false)
  })
})

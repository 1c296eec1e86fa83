// Issuance through a real kubelet: the kubelet requests the pod's token and calls
// NodePublishVolume on our driver (DaemonSet pod of our image); read from inside the container,
// the files parse, the key matches the certificate, the URI SAN is the pod's SPIFFE ID, ca.crt is
// the issuer's CA, and the CertificateRequest was made with the pod's ServiceAccount (with the
// node claims of the kubelet's token).
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  certificateRequests,
  deleteNamespace,
  exec,
  k,
  keyMatches,
  leaf,
  node,
  readInPod,
  signedBy,
  startPod,
  TRUST_DOMAIN,
  workloadNamespace
} from "./support.ts"

const NS = "node-issuance"
const SA = "issuance-app"

describe("issuance on a real node", () => {
  beforeAll(async () => {
    await workloadNamespace(NS, SA)
    await startPod({ ns: NS, name: "issuance-0", sa: SA })
  })
  afterAll(async () => {
    await deleteNamespace(NS)
  })

  it("the Node is a kubelet of 1.37 or later on containerd 2.x", async () => {
    // what the node harness is for since Kubernetes 1.37 ended kubelet support for containerd 1.x
    const info = JSON.parse(await k(["get", "node", node.nodeName, "-o", "jsonpath={.status.nodeInfo}"])) as {
      kubeletVersion: string
      containerRuntimeVersion: string
    }
    expect(info.kubeletVersion).toMatch(/^v1\.(3[7-9]|[4-9]\d)\.\d+$/)
    expect(info.containerRuntimeVersion).toMatch(/^containerd:\/\/2\.\d+\.\d+$/)
  })

  it("mounts ca.crt, tls.crt and tls.key; the key matches; the URI SAN is the pod's SPIFFE ID", async () => {
    const ls = await exec(NS, "issuance-0", ["ls", "/var/run/secrets/spiffe.io/"])
    expect(ls.stdout.split(/\s+/).filter((s) => s !== "")).toEqual(["ca.crt", "spiffe.sock", "tls.crt", "tls.key"])
    const crt = await readInPod(NS, "issuance-0", "tls.crt")
    const key = await readInPod(NS, "issuance-0", "tls.key")
    const ca = await readInPod(NS, "issuance-0", "ca.crt")
    expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----/)
    expect(keyMatches(crt, key)).toBe(true)
    expect(leaf(crt).subjectAltName).toBe(`URI:spiffe://${TRUST_DOMAIN}/ns/${NS}/sa/${SA}`)
    expect(leaf(crt).issuer).toBe("CN=csi-driver-spiffe-ca")
    expect(ca.trim()).toBe(node.plane.issuer.caPem.trim())
    expect(signedBy(crt, ca)).toBe(true)
  })

  it("the CertificateRequest's spec.username is the pod's ServiceAccount, with the kubelet token's node claims", async () => {
    const crs = await certificateRequests(NS)
    expect(crs.length).toBeGreaterThanOrEqual(1)
    for (const cr of crs) {
      expect(cr.spec.username).toBe(`system:serviceaccount:${NS}:${SA}`)
      expect(cr.spec.extra?.["authentication.kubernetes.io/node-name"]).toEqual([node.nodeName])
      expect(cr.spec.issuerRef?.name).toBe("csi-driver-spiffe-ca")
    }
  })
})

/**
 * The approver's rule for the Pod Certificate signer's intermediate CA on the real kube-apiserver and
 * cert-manager (whose webhook fills spec.username from the requester's authentication): our approver
 * process, given `--signer-service-account`, approves the contract's request made with the signer
 * ServiceAccount's token, and cert-manager's CA issuer then issues a CA certificate with the CSR's
 * URI name constraint and key usages (but without its path length: see the first case). The very same
 * request from another ServiceAccount, and a CA request carrying the identity annotation, are denied.
 *
 * The requesters are TokenRequest tokens of ServiceAccounts bound to Pods (no kubelet needed).
 */
import { X509Certificate } from "node:crypto"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { IDENTITY_ANNOTATION, INTERMEDIATE_ANNOTATION, INTERMEDIATE_USAGES } from "../../src/domain/CertificateRequest.ts"
import { x509 } from "../../src/x509.ts"
import type { KubeClient } from "../harness/kube.ts"
import { createWorkload } from "../harness/kubelet.ts"
import { waitFor } from "../harness/process.ts"
import { intermediateExtensions, intermediateRequest } from "../support/csr.ts"
import { clientAs, type Cr, crPath, waitForDecision } from "./approval-support.ts"
import { type Stack, startStack } from "./stack.ts"

const plane = inject("controlPlane")
const NS = "signer-e2e"
const SIGNER_SA = "csi-driver-spiffe-signer"
const OTHER_SA = "not-the-signer"
const TD = "cluster.local"
const REASON = "spiffe.csi.cert-manager.io"

let stack: Stack
let asSigner: KubeClient
let asOther: KubeClient

beforeAll(async () => {
  stack = await startStack(plane, {
    name: "intermediate",
    trustDomain: TD,
    approverArgs: [`--signer-service-account=${NS}:${SIGNER_SA}`, "--signer-intermediate-duration=168h"]
  })
  const signer = await createWorkload(stack.admin, { namespace: NS, serviceAccount: SIGNER_SA, podName: `${SIGNER_SA}-0` })
  const other = await createWorkload(stack.admin, { namespace: NS, serviceAccount: OTHER_SA, podName: `${OTHER_SA}-0` })
  asSigner = (await clientAs(stack.admin, signer)).client
  asOther = (await clientAs(stack.admin, other)).client
})
afterAll(async () => {
  await stack?.stop()
})

/** The contract's intermediate CertificateRequest (annotations replaceable). */
const intermediateCr = async (name: string, annotations: Record<string, string> = { [INTERMEDIATE_ANNOTATION]: TD }) => ({
  apiVersion: "cert-manager.io/v1",
  kind: "CertificateRequest",
  metadata: { name, namespace: NS, annotations },
  spec: {
    request: await intermediateRequest({ extensions: intermediateExtensions(TD) }),
    issuerRef: plane.issuer,
    duration: "168h",
    usages: [...INTERMEDIATE_USAGES],
    isCA: true
  }
})

interface IssuedCr extends Cr {
  readonly status?: Cr["status"] & { readonly certificate?: string; readonly ca?: string }
}

const denied = async (name: string): Promise<string> => {
  const d = await waitForDecision(stack.admin, NS, name, stack.approver)
  expect(d.type, d.message).toBe("Denied")
  expect(d.reason).toBe(REASON)
  return d.message ?? ""
}

describe("the signer's intermediate CA request on the real control plane", () => {
  it("is approved from the signer's ServiceAccount, and cert-manager issues a CA with the URI name constraint and no SAN", async () => {
    const created = await asSigner.create<Cr>(crPath(NS), await intermediateCr("signer-intermediate"))
    expect(created.spec.username).toBe(`system:serviceaccount:${NS}:${SIGNER_SA}`)
    const d = await waitForDecision(stack.admin, NS, "signer-intermediate", stack.approver)
    expect(d, d.message).toMatchObject({ type: "Approved", status: "True", reason: REASON })

    const issued = await waitFor(
      "cert-manager to issue the intermediate",
      async () => {
        const cr = await stack.admin.get<IssuedCr>(crPath(NS, "signer-intermediate"))
        return cr.status?.certificate === undefined || cr.status.certificate === "" ? undefined : cr
      },
      { timeoutMs: 30_000, intervalMs: 100 }
    )
    const pem = Buffer.from(issued.status!.certificate!, "base64").toString("utf8")
    const cert = new x509.X509Certificate(pem)
    const basic = cert.getExtension(x509.BasicConstraintsExtension)
    // cert-manager (v1.21.2, CA issuer) marks it a CA from spec.isCA but does NOT carry the CSR's
    // path length over: the certificate has no pathLenConstraint. What bounds the intermediate is
    // the URI name constraint below (it applies to every certificate under it) and its lifetime.
    // Should cert-manager start copying it, this line fails and the docs can say "path length 0".
    expect([basic?.ca, basic?.pathLength, basic?.critical]).toEqual([true, undefined, true])
    const usages = cert.getExtension(x509.KeyUsagesExtension)
    expect(usages?.usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)
    const nc = cert.extensions.find((e) => e.type === "2.5.29.30")
    expect(nc?.critical).toBe(true)
    // The one permitted subtree, a URI constraint (tag [6]) naming the trust domain.
    const permitted = Buffer.from(nc!.value).toString("latin1")
    expect(permitted).toContain(`\x86${String.fromCharCode(TD.length)}${TD}`)
    expect(cert.extensions.some((e) => e.type === "2.5.29.17")).toBe(false)
    // Chained to the issuer's CA.
    const ca = Buffer.from(issued.status!.ca!, "base64").toString("utf8")
    expect(new X509Certificate(pem).verify(new X509Certificate(ca).publicKey)).toBe(true)
  })

  it("is denied from any other ServiceAccount, with the reason naming the requester", async () => {
    const created = await asOther.create<Cr>(crPath(NS), await intermediateCr("impostor-intermediate"))
    expect(created.spec.username).toBe(`system:serviceaccount:${NS}:${OTHER_SA}`)
    const message = await denied("impostor-intermediate")
    expect(message).toBe(
      `Denied request: spec.username: must be the Pod Certificate signer's ServiceAccount system:serviceaccount:${NS}:${SIGNER_SA} (--signer-service-account), got "system:serviceaccount:${NS}:${OTHER_SA}"`
    )
  })

  it("is denied from the signer's ServiceAccount when it also carries the identity annotation", async () => {
    await asSigner.create<Cr>(
      crPath(NS),
      await intermediateCr("both-annotations", { [INTERMEDIATE_ANNOTATION]: TD, [IDENTITY_ANNOTATION]: `spiffe://${TD}/ns/${NS}/sa/${SIGNER_SA}` })
    )
    expect(await denied("both-annotations")).toBe(
      `Denied request: metadata.annotations[${IDENTITY_ANNOTATION}]: must not be set on an intermediate CA request`
    )
  })

  it("a CA request with the identity annotation only is judged as an SVID request and denied", async () => {
    await asSigner.create<Cr>(crPath(NS), await intermediateCr("identity-only", { [IDENTITY_ANNOTATION]: `spiffe://${TD}/ns/${NS}/sa/${SIGNER_SA}` }))
    const message = await denied("identity-only")
    expect(message).toContain("spec.isCA: must be false")
    expect(message).toContain("basic constraints must not mark a CA")
  })
})

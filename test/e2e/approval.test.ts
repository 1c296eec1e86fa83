/**
 * The original's approval specs (cert-manager/csi-driver-spiffe, test/e2e/suite/approval/approval.go) against
 * the real kube-apiserver and cert-manager, whose webhook fills spec.username from the requester's
 * authentication, with OUR approver process (authorized by the chart's RBAC) deciding.
 *
 * Requests are created with a TokenRequest token of a workload's own ServiceAccount (the original
 * impersonated the ServiceAccount; a bound token is what the CSI driver really uses). Every wait is
 * a bounded poll on the request's conditions (100 ms, 30 s).
 *
 * Differences from the original, on purpose:
 * - the valid request uses ECDSA P-256 (our approver's default `--allowed-key-types`; the original
 *   accepted any key, its spec used P-521);
 * - "wrong key type" sends an RSA-2048 key with otherwise correct usages, so the denial is for the
 *   key alone (the original's spec also added `cert sign`, so it never tested the key type).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import {
  CLIENT_AUTH,
  csrRequest,
  extendedKeyUsageExtension,
  KeyUsageFlags,
  keyUsageExtension,
  sanExtension,
  SERVER_AUTH
} from "../support/csr.ts"
import { type Stack, startStack } from "./stack.ts"
import { clientAs, type Cr, crObject, crPath, decisionOf, waitForDecision } from "./approval-support.ts"
import type { KubeClient } from "../harness/kube.ts"
import { createWorkload } from "../harness/kubelet.ts"
import { waitFor } from "../harness/process.ts"

const plane = inject("controlPlane")
const NS = "approval-e2e"
const SA = "approval-app"
const OTHER_SA = "approval-other"
const TD = "foo.bar"
const ID = `spiffe://${TD}/ns/${NS}/sa/${SA}`
const REASON = "spiffe.csi.cert-manager.io"

let stack: Stack
/** Authenticated as system:serviceaccount:approval-e2e:approval-app. */
let asApp: KubeClient

beforeAll(async () => {
  stack = await startStack(plane, { name: "approval", trustDomain: TD })
  const app = await createWorkload(stack.admin, { namespace: NS, serviceAccount: SA, podName: `${SA}-0` })
  await createWorkload(stack.admin, { namespace: NS, serviceAccount: OTHER_SA, podName: `${OTHER_SA}-0` })
  asApp = (await clientAs(stack.admin, app)).client
})
afterAll(async () => {
  await stack?.stop()
})

const create = async (o: Omit<Parameters<typeof crObject>[0], "namespace" | "issuer">): Promise<Cr> => {
  const created = await asApp.create<Cr>(crPath(NS), crObject({ ...o, namespace: NS, issuer: plane.issuer }))
  // cert-manager's mutating webhook records who asked; the approver decides on that.
  expect(created.spec.username).toBe(`system:serviceaccount:${NS}:${SA}`)
  return created
}

const expectDenied = async (name: string) => {
  const d = await waitForDecision(stack.admin, NS, name, stack.approver)
  expect(d.type, d.message).toBe("Denied")
  expect(d.reason).toBe(REASON)
  expect(d.message).toMatch(/^Denied request: /)
  // Nothing else decided it as well.
  const cr = await stack.admin.get<Cr>(crPath(NS, name))
  expect(cr.status?.conditions?.some((c) => c.type === "Approved")).toBe(false)
  return d.message ?? ""
}

describe("approval on the real control plane", () => {
  it("approves a valid request (and cert-manager then issues it)", async () => {
    await create({ name: "valid", request: await csrRequest(ID), annotation: ID })
    const d = await waitForDecision(stack.admin, NS, "valid", stack.approver)
    expect(d).toMatchObject({ type: "Approved", status: "True", reason: REASON, message: "Approved request" })
    // Our status write left the request in a state cert-manager's CA issuer acts on.
    const ready = await waitFor(
      "cert-manager to issue the approved request",
      async () => (await stack.admin.get<Cr>(crPath(NS, "valid"))).status?.conditions?.find((c) => c.type === "Ready" && c.status === "True"),
      { timeoutMs: 30_000, intervalMs: 100 }
    )
    expect(ready?.reason).toBe("Issued")
  })

  it("denies a request with the wrong duration (3h)", async () => {
    await create({ name: "wrong-duration", request: await csrRequest(ID), annotation: ID, duration: "3h" })
    const message = await expectDenied("wrong-duration")
    expect(message).toMatch(/duration/)
    expect(message).toMatch(/3h/)
  })

  it("denies a request with the wrong SPIFFE ID (another ServiceAccount's)", async () => {
    const other = `spiffe://${TD}/ns/${NS}/sa/${OTHER_SA}`
    await create({ name: "wrong-spiffe-id", request: await csrRequest(other), annotation: other })
    const message = await expectDenied("wrong-spiffe-id")
    expect(message).toContain(other)
  })

  it("denies a request with the wrong key usages (extra cert sign)", async () => {
    // cert-manager's webhook refuses a CSR whose key usage extension disagrees with spec.usages, so
    // the CSR asks for keyCertSign as well (as the original's spec did).
    const extensions = [
      sanExtension([{ type: "url", value: ID }]),
      keyUsageExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment | KeyUsageFlags.keyCertSign),
      extendedKeyUsageExtension([SERVER_AUTH, CLIENT_AUTH])
    ]
    await create({
      name: "wrong-usages",
      request: await csrRequest(ID, { extensions }),
      annotation: ID,
      usages: ["digital signature", "key encipherment", "server auth", "client auth", "cert sign"]
    })
    const message = await expectDenied("wrong-usages")
    expect(message).toMatch(/cert sign/)
  })

  it("denies a request with the wrong key type (RSA-2048, usages otherwise correct) for the key alone", async () => {
    await create({ name: "wrong-key-type", request: await csrRequest(ID, { keyType: "rsa-2048" }), annotation: ID })
    const message = await expectDenied("wrong-key-type")
    expect(message).toMatch(/key/i)
    expect(message).toMatch(/rsa-2048/)
    // The key type is the only violation: one reason, nothing about usages, duration or identity.
    expect(message.slice("Denied request: ".length).split("; ")).toHaveLength(1)
    expect(message).not.toMatch(/usage|duration|SPIFFE ID/i)
  })

  it("leaves a request without the identity annotation alone", async () => {
    // One burst: the unannotated request first, the annotated one right after. Once the annotated
    // one is decided, the watch has delivered both (events arrive in resourceVersion order).
    await create({ name: "not-spiffe", request: await csrRequest(ID), annotation: null })
    await create({ name: "spiffe-after", request: await csrRequest(ID), annotation: ID })
    expect((await waitForDecision(stack.admin, NS, "spiffe-after", stack.approver)).type).toBe("Approved")
    const untouched = await stack.admin.get<Cr>(crPath(NS, "not-spiffe"))
    expect(decisionOf(untouched)).toBeUndefined()
    expect(untouched.status?.conditions?.filter((c) => c.type === "Approved" || c.type === "Denied") ?? []).toEqual([])
  })
})

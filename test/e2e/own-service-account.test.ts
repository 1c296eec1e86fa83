/**
 * Own-ServiceAccount mode end to end (`--use-own-service-account` of cert-manager/csi-driver-spiffe's
 * two binaries, stricter than its evaluator/identity.go, which checks only the trust domain): our driver creates every request with its
 * own identity (the chart's driver ServiceAccount, whose ClusterRole has `create` on
 * certificaterequests) and our approver, given `--driver-service-account`, approves only requests
 * made by exactly that ServiceAccount for a workload ID in the request's own namespace.
 *
 * The workload here has no RBAC of its own: in this mode a pod needs no `create` permission.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { connect } from "../harness/globalSetup.ts"
import type { KubeClient } from "../harness/kube.ts"
import { createWorkload } from "../harness/kubelet.ts"
import { csrRequest } from "../support/csr.ts"
import { clientAs, type Cr, crObject, crPath, waitForDecision } from "./approval-support.ts"
import { readVolume, type Stack, startStack } from "./stack.ts"
import { urisOf } from "./tools.ts"

const plane = inject("controlPlane")
const NS = "own-sa-e2e"
const OTHER_NS = "own-sa-other"
const TD = "foo.bar"
const REASON = "spiffe.csi.cert-manager.io"
const ANNOTATION = "spiffe.csi.cert-manager.io/identity"
const DRIVER = plane.users["driver"]!.username

let stack: Stack

beforeAll(async () => {
  stack = await startStack(plane, {
    name: "own-sa",
    trustDomain: TD,
    driverArgs: ["--use-own-service-account"],
    approverArgs: ["--use-own-service-account", `--driver-service-account=${DRIVER}`]
  })
})
afterAll(async () => {
  await stack?.stop()
})

interface CrList {
  readonly items: ReadonlyArray<Cr>
}

const expectDenied = async (namespace: string, name: string): Promise<string> => {
  const d = await waitForDecision(stack.admin, namespace, name, stack.approver)
  expect(d.type, d.message).toBe("Denied")
  expect(d.reason).toBe(REASON)
  const cr = await stack.admin.get<Cr>(crPath(namespace, name))
  expect(cr.status?.conditions?.some((c) => c.type === "Approved")).toBe(false)
  return d.message ?? ""
}

describe("own-ServiceAccount mode on the real control plane", () => {
  it("the driver requests with its own ServiceAccount and the pod gets its SVID", async () => {
    expect(DRIVER).toMatch(/^system:serviceaccount:[^:]+:[^:]+$/)
    const pod = await stack.pod({ namespace: NS, serviceAccount: "app", podName: "app-0", grantCertificateRequestCreate: false })
    const id = `spiffe://${TD}/ns/${NS}/sa/app`
    const target = await stack.publish(pod)
    const files = readVolume(target)
    expect(files.names).toEqual(["spiffe.sock", "tls.crt", "tls.key"])
    expect(urisOf(files.crt)).toEqual([id])

    const crs = await stack.admin.get<CrList>(crPath(NS))
    const mine = crs.items.filter((c) => c.metadata.annotations?.[ANNOTATION] === id)
    expect(mine).toHaveLength(1)
    expect(mine[0]!.spec.username).toBe(DRIVER)
    expect(mine[0]!.status?.conditions?.find((c) => c.type === "Approved")).toMatchObject({
      status: "True",
      reason: REASON,
      message: "Approved request"
    })
  })

  it("denies a request a pod creates with its own token", async () => {
    const workload = await createWorkload(stack.admin, { namespace: NS, serviceAccount: "self-service", podName: "self-service-0" })
    const asPod: KubeClient = (await clientAs(stack.admin, workload)).client
    const id = `spiffe://${TD}/ns/${NS}/sa/self-service`
    const created = await asPod.create<Cr>(
      crPath(NS),
      crObject({ name: "pod-token", namespace: NS, request: await csrRequest(id), issuer: plane.issuer, annotation: id })
    )
    expect(created.spec.username).toBe(`system:serviceaccount:${NS}:self-service`)
    const message = await expectDenied(NS, "pod-token")
    // The requester is the only violation: the request is otherwise exactly what the driver sends.
    expect(message).toBe(
      `Denied request: spec.username: must be the CSI driver's ServiceAccount ${DRIVER} (--use-own-service-account), got "system:serviceaccount:${NS}:self-service"`
    )
  })

  it("denies the driver's own request for a workload ID in another namespace", async () => {
    const asDriver = connect(plane, plane.users["driver"]!.token)
    await createWorkload(stack.admin, { namespace: OTHER_NS, serviceAccount: "target", podName: "target-0", grantCertificateRequestCreate: false })
    const foreign = `spiffe://${TD}/ns/${NS}/sa/app`
    const created = await asDriver.create<Cr>(
      crPath(OTHER_NS),
      crObject({ name: "cross-namespace", namespace: OTHER_NS, request: await csrRequest(foreign), issuer: plane.issuer, annotation: foreign })
    )
    expect(created.spec.username).toBe(DRIVER)
    const message = await expectDenied(OTHER_NS, "cross-namespace")
    expect(message).toBe(`Denied request: spec.request: SPIFFE ID must be in the request's own namespace ${OTHER_NS}, got "${NS}"`)
  })
})

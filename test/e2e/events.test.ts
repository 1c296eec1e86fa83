/**
 * Observability on the real control plane: Kubernetes Events on denied CertificateRequests
 * and on Pods whose issuance is denied, and no secret (token, private key, CSR) in the driver's or
 * the approver's logs, in Events or in the gRPC error the kubelet would log.
 *
 * A denial through the driver comes from a real disagreement between the two processes: the approver
 * runs with `--certificate-request-duration=2h` (our flag parser takes the last occurrence) while the
 * driver asks for 1h. A second stack with matching flags issues a real SVID, so that the logs of a
 * successful issuance (key generated, CSR sent, certificate written) are checked too.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { IDENTITY_ANNOTATION } from "../../src/domain/CertificateRequest.ts"
import { waitFor } from "../harness/process.ts"
import { createWorkload, type NodePublishVolumeRequest } from "../harness/kubelet.ts"
import { csrRequest } from "../support/csr.ts"
import { clientAs, type Cr, crObject, crPath, eventsFor, waitForDecision } from "./approval-support.ts"
import { readVolume, type Stack, startStack } from "./stack.ts"

const plane = inject("controlPlane")
const NS = "events-e2e"
const TD = "foo.bar"
const FAILED_PRECONDITION = 9

const podToken = (req: NodePublishVolumeRequest): string => {
  const tokens = JSON.parse(req.volume_context["csi.storage.k8s.io/serviceAccount.tokens"]!) as Record<string, { token: string }>
  return tokens[""]!.token
}

/** Secrets that must never be written anywhere but the API request that needs them. */
interface Secrets {
  readonly tokens: Array<string>
  /** base64 bodies of PEM blocks (CSR, private key), first 64-char line of each */
  readonly pemLines: Array<string>
  /** spec.request values as on the wire (base64 of the PEM) */
  readonly wire: Array<string>
}

const pemBodyLines = (pem: string): Array<string> =>
  pem.split("\n").filter((l) => l !== "" && !l.startsWith("-----")).slice(0, 2).filter((l) => l.length >= 40)

/** Every CSR in the namespace's CertificateRequests (requests are readable by admin). */
const collectCsrs = async (stack: Stack, into: Secrets): Promise<number> => {
  const list = await stack.admin.get<{ items: ReadonlyArray<Cr> }>(crPath(NS))
  for (const cr of list.items) {
    into.wire.push(cr.spec.request)
    into.pemLines.push(...pemBodyLines(Buffer.from(cr.spec.request, "base64").toString("utf8")))
  }
  return list.items.length
}

const expectNoSecrets = (what: string, text: string, secrets: Secrets): void => {
  for (const marker of ["PRIVATE KEY", "CERTIFICATE REQUEST", "BEGIN "]) expect(text.includes(marker), `${what} contains ${marker}`).toBe(false)
  for (const t of secrets.tokens) {
    expect(text.includes(t), `${what} contains a pod token`).toBe(false)
    // A token cut anywhere still leaks its signature.
    expect(text.includes(t.split(".")[2]!), `${what} contains a pod token's signature`).toBe(false)
  }
  for (const l of secrets.pemLines) expect(text.includes(l), `${what} contains PEM content`).toBe(false)
  for (const w of secrets.wire) expect(text.includes(w.slice(0, 64)), `${what} contains a spec.request`).toBe(false)
}

const readLogs = (stack: Stack) => ({
  driver: fs.readFileSync(path.join(stack.dir, "driver.log"), "utf8"),
  approver: fs.readFileSync(path.join(stack.dir, "approver.log"), "utf8")
})

describe("a denied issuance is visible as Events (approver wants 2h, driver asks for 1h)", () => {
  let stack: Stack
  const secrets: Secrets = { tokens: [], pemLines: [], wire: [] }
  const eventTexts: Array<string> = []

  beforeAll(async () => {
    stack = await startStack(plane, { name: "events-denied", trustDomain: TD, approverArgs: ["--certificate-request-duration=2h"] })
  })
  afterAll(async () => {
    await stack?.stop()
  })

  it("a denied CertificateRequest gets a Warning Event with reason Denied and the reasons", async () => {
    const sa = "denied-request"
    const id = `spiffe://${TD}/ns/${NS}/sa/${sa}`
    const w = await createWorkload(stack.admin, { namespace: NS, serviceAccount: sa, podName: `${sa}-0` })
    const { client, token } = await clientAs(stack.admin, w)
    secrets.tokens.push(token)
    const created = await client.create<Cr>(crPath(NS), crObject({ name: "denied-cr", namespace: NS, request: await csrRequest(id), issuer: plane.issuer, annotation: id }))
    const d = await waitForDecision(stack.admin, NS, "denied-cr", stack.approver)
    expect(d.type).toBe("Denied")
    const event = await waitFor(
      "the Denied Event on the CertificateRequest",
      async () => (await eventsFor(stack.admin, NS, "denied-cr")).items.find((e) => e.reason === "Denied"),
      { timeoutMs: 30_000, intervalMs: 100, proc: stack.approver! }
    )
    expect(event).toMatchObject({
      type: "Warning",
      reason: "Denied",
      involvedObject: { kind: "CertificateRequest", name: "denied-cr", uid: created.metadata.uid },
      source: { component: "csi-driver-spiffe-approver" }
    })
    // The Event carries exactly the reasons of the Denied condition.
    expect(`Denied request: ${event.message}`).toBe(d.message)
    expect(event.message).toMatch(/must be exactly 2h0m0s, got 1h/)
    eventTexts.push(JSON.stringify(event))
  })

  it("a pod whose issuance is denied: publish fails with FailedPrecondition and the Pod gets SpiffeIssuanceDenied", async () => {
    const pod = await stack.pod({ namespace: NS, serviceAccount: "denied-pod", podName: "denied-pod-0" })
    const req = await stack.publishRequest(pod)
    const token = podToken(req)
    secrets.tokens.push(token)
    const err = await stack.call("NodePublishVolume", req).then(
      () => undefined,
      (e: unknown) => e as { code: number; details: string }
    )
    expect(err, "publish succeeded although the approver denies every request").toBeDefined()
    expect(err!.code, err!.details).toBe(FAILED_PRECONDITION)
    expect(err!.details).toMatch(/denied/i)
    expect(err!.details).not.toContain(token)

    const event = await waitFor(
      "the SpiffeIssuanceDenied Event on the Pod",
      async () => (await eventsFor(stack.admin, NS, "denied-pod-0")).items.find((e) => e.reason === "SpiffeIssuanceDenied"),
      { timeoutMs: 30_000, intervalMs: 100, proc: stack.driver }
    )
    expect(event).toMatchObject({ type: "Warning", involvedObject: { kind: "Pod", name: "denied-pod-0", uid: pod.podUid } })
    // `kubectl describe pod` says why: the approver's own reason text.
    expect(event.message).toMatch(/must be exactly 2h0m0s, got 1h/)
    expect(event.message).not.toContain(token)
    expect(event.message).not.toMatch(/BEGIN/)
    eventTexts.push(JSON.stringify(event), err!.details)
    await stack.unpublish(pod)
  })

  it("no token, key or CSR in Events, errors or the driver's and approver's logs", async () => {
    expect(await collectCsrs(stack, secrets)).toBeGreaterThanOrEqual(1)
    expect(secrets.tokens).toHaveLength(2)
    for (const t of eventTexts) expectNoSecrets("an Event or error", t, secrets)
    // Every Event in the namespace, not only the ones asserted on above.
    const all = await stack.admin.get<{ items: ReadonlyArray<unknown> }>(`/api/v1/namespaces/${NS}/events`)
    expectNoSecrets("the namespace's Events", JSON.stringify(all.items), secrets)
    const logs = readLogs(stack)
    expect(logs.driver).toMatch(/denied/i) // the logs are not empty: the denial is there, without secrets
    expectNoSecrets("driver.log", logs.driver, secrets)
    expectNoSecrets("approver.log", logs.approver, secrets)
  })
})

describe("a successful issuance leaves no secret in the logs", () => {
  let stack: Stack

  beforeAll(async () => {
    stack = await startStack(plane, { name: "events-issued", trustDomain: TD })
  })
  afterAll(async () => {
    await stack?.stop()
  })

  it("no token, private key or CSR in the driver's or approver's logs after an SVID is issued", async () => {
    const pod = await stack.pod({ namespace: NS, serviceAccount: "issued-pod", podName: "issued-pod-0" })
    const req = await stack.publishRequest(pod)
    await stack.call("NodePublishVolume", req)
    const files = readVolume(req.target_path)
    expect(files.key).toMatch(/PRIVATE KEY/)
    const secrets: Secrets = { tokens: [podToken(req)], pemLines: pemBodyLines(files.key), wire: [] }
    expect(secrets.pemLines.length).toBeGreaterThanOrEqual(1)
    const list = await stack.admin.get<{ items: ReadonlyArray<Cr> }>(crPath(NS))
    const mine = list.items.filter((c) => c.metadata.annotations?.[IDENTITY_ANNOTATION] === `spiffe://${TD}/ns/${NS}/sa/issued-pod`)
    expect(mine).toHaveLength(1)
    await collectCsrs(stack, secrets)
    const logs = readLogs(stack)
    expect(logs.driver).toMatch(/certificate written/)
    expectNoSecrets("driver.log", logs.driver, secrets)
    expectNoSecrets("approver.log", logs.approver, secrets)
    const podEvents = await eventsFor(stack.admin, NS, "issued-pod-0")
    expect(podEvents.items.filter((e) => e.type === "Warning")).toEqual([])
    await stack.unpublish(pod)
  })
})

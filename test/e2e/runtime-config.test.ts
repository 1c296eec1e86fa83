/**
 * The original's three runtime-configuration specs on the real control plane, plus "no issuer at
 * all": the driver and the approver both follow the runtime issuance ConfigMap
 * (`runtime-config-map` in the cluster resource namespace, the only name the chart's RBAC lets them
 * read). Issuer switches are observed by publishing new pods until the expected CA signs (bounded),
 * never by sleeping.
 */
import type { ServiceError } from "@grpc/grpc-js"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import type { Workload } from "../harness/kubelet.ts"
import { freePort } from "../harness/plane.ts"
import {
  type CaIssuer,
  createCaClusterIssuer,
  deleteCaClusterIssuer,
  deleteRuntimeConfig,
  poll,
  RUNTIME_CONFIG_MAP,
  setRuntimeIssuer,
  signedBy,
  volumeCrs
} from "./issuers.ts"
import { readVolume, type Stack, startStack } from "./stack.ts"
import { leafOf, urisOf } from "./tools.ts"

const plane = inject("controlPlane")
const admin = () => stack?.admin
let stack: Stack
let ca1: CaIssuer
let ca2: CaIssuer
let bundleDir: string
const SWITCH_TIMEOUT_MS = 30_000
interface EventItem {
  reason?: string
  type?: string
  message?: string
  source?: { component?: string; host?: string }
  reportingComponent?: string
}
let invalidEvents: Array<EventItem> = []

const INVALID_LOG = '"invalid runtime issuance ConfigMap; using the static issuer"'
const LOST_EVENT_LOG = '"could not record an Event" reason="InvalidIssuerConfig"'
const logLines = (proc: "driver" | "approver", needle: string): Array<string> =>
  fs.readFileSync(path.join(stack.dir, `${proc}.log`), "utf8").split("\n").filter((l) => l.includes(needle))
const logCount = (proc: "driver" | "approver", needle: string): number => logLines(proc, needle).length

const invalidConfigEvents = async (): Promise<Array<EventItem>> => {
  const list = await admin().get<{ items: Array<EventItem> }>(
    `/api/v1/namespaces/${plane.clusterResourceNamespace}/events?fieldSelector=${encodeURIComponent(`involvedObject.name=${RUNTIME_CONFIG_MAP}`)}`
  )
  return list.items.filter((e) => e.reason === "InvalidIssuerConfig")
}

/** The runtime ConfigMap without issuer-kind (server-side apply by the same field manager drops the key). */
const applyInvalid = (issuerName: string) =>
  admin().apply(`/api/v1/namespaces/${plane.clusterResourceNamespace}/configmaps/${RUNTIME_CONFIG_MAP}`, {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: RUNTIME_CONFIG_MAP, namespace: plane.clusterResourceNamespace },
    data: { "issuer-name": issuerName, "issuer-group": "cert-manager.io" }
  })

beforeAll(async () => {
  const { connect } = await import("../harness/globalSetup.ts")
  const a = connect(plane)
  await deleteRuntimeConfig(plane, a)
  ca1 = await createCaClusterIssuer(plane, a, "csi-spiffe-runtime-ca-1")
  ca2 = await createCaClusterIssuer(plane, a, "csi-spiffe-runtime-ca-2")
  bundleDir = fs.mkdtempSync(path.join(plane.tmpDir, "runtime-bundle-"))
  fs.copyFileSync(plane.issuer.caFile, path.join(bundleDir, "ca.crt"))
})
afterAll(async () => {
  const { connect } = await import("../harness/globalSetup.ts")
  const a = connect(plane)
  await deleteRuntimeConfig(plane, a)
  await deleteCaClusterIssuer(plane, a, "csi-spiffe-runtime-ca-1")
  await deleteCaClusterIssuer(plane, a, "csi-spiffe-runtime-ca-2")
  if (bundleDir !== undefined) fs.rmSync(bundleDir, { recursive: true, force: true })
})

let seq = 0
const newPod = (namespace = "sandbox"): Promise<Workload> => {
  const n = seq++
  return stack.pod({ namespace, serviceAccount: "runtime-app", podName: `runtime-app-${n}` })
}

/** Publishes new pods until one is signed by `ca` (the switch is asynchronous); returns its chain. */
const publishUntilSignedBy = (ca: string, what: string): Promise<{ crt: string; pod: Workload }> =>
  poll(
    `a new pod signed by ${what}`,
    async () => {
      const pod = await newPod()
      const target = await stack.publish(pod)
      const crt = readVolume(target).crt
      await stack.unpublish(pod)
      return (await signedBy(crt, ca)) ? { crt, pod } : undefined
    },
    { timeoutMs: SWITCH_TIMEOUT_MS, intervalMs: 200 }
  )

describe("runtime issuer configuration (driver and approver follow the ConfigMap)", () => {
  beforeAll(async () => {
    stack = await startStack(plane, { name: "runtime", runtimeConfigMap: RUNTIME_CONFIG_MAP, sourceCaBundle: path.join(bundleDir, "ca.crt") })
  })
  afterAll(async () => {
    await stack?.stop()
    await deleteRuntimeConfig(plane, admin())
  })

  it("succeeds with a simple pod and no runtime configuration (static issuer)", async () => {
    const pod = await newPod()
    const target = await stack.publish(pod)
    const files = readVolume(target)
    expect(files.names).toEqual(["ca.crt", "spiffe.sock", "tls.crt", "tls.key"])
    expect(urisOf(files.crt)).toEqual(["spiffe://foo.bar/ns/sandbox/sa/runtime-app"])
    expect(await signedBy(files.crt, plane.issuer.caPem)).toBe(true)
    expect(files.ca).toBe(plane.issuer.caPem)
    const [cr] = await volumeCrs(admin(), pod)
    expect(cr?.spec.issuerRef?.name).toBe(plane.issuer.name)
    await stack.unpublish(pod)
  })

  it("uses a new issuer configured at runtime, and reverts to the static issuer when the ConfigMap is deleted", async () => {
    const first = await newPod()
    const t1 = await stack.publish(first)
    expect(await signedBy(readVolume(t1).crt, plane.issuer.caPem)).toBe(true)

    await setRuntimeIssuer(plane, admin(), ca1)
    const second = await publishUntilSignedBy(ca1.caPem, ca1.name)
    expect(leafOf(second.crt).issuer).toBe(`CN=${ca1.name}`)
    // the request named the runtime issuer and our approver approved it
    // (requests are deleted on unpublish, so the proof is the certificate itself: cert-manager signs only approved requests)

    await deleteRuntimeConfig(plane, admin())
    const third = await publishUntilSignedBy(plane.issuer.caPem, plane.issuer.name)
    expect(await signedBy(third.crt, ca1.caPem)).toBe(false)
    // the first pod's certificate is untouched (no re-issuance on an issuer change)
    expect(await signedBy(readVolume(t1).crt, plane.issuer.caPem)).toBe(true)
    await stack.unpublish(first)
  })

  it("changes issuers when the configuration is updated", async () => {
    await setRuntimeIssuer(plane, admin(), ca1)
    await publishUntilSignedBy(ca1.caPem, ca1.name)
    await setRuntimeIssuer(plane, admin(), ca2)
    const { crt } = await publishUntilSignedBy(ca2.caPem, ca2.name)
    expect(await signedBy(crt, ca1.caPem)).toBe(false)
    expect(await signedBy(crt, plane.issuer.caPem)).toBe(false)
    // and it stays on CA 2: one more pod, kept published, with its request inspected
    const pod = await newPod()
    const target = await stack.publish(pod)
    expect(await signedBy(readVolume(target).crt, ca2.caPem)).toBe(true)
    const crs = await volumeCrs(admin(), pod)
    expect(crs).toHaveLength(1)
    expect(crs[0]!.spec.issuerRef).toMatchObject({ name: ca2.name, kind: "ClusterIssuer", group: "cert-manager.io" })
    expect(crs[0]!.status?.conditions?.find((c) => c.type === "Approved")).toMatchObject({ status: "True", reason: "spiffe.csi.cert-manager.io" })
    await stack.unpublish(pod)
    await deleteRuntimeConfig(plane, admin())
  })
  it("an invalid edit falls back to the static issuer, loudly (logged by the driver and the approver)", async () => {
    await setRuntimeIssuer(plane, admin(), ca1)
    await publishUntilSignedBy(ca1.caPem, ca1.name)
    // issuer-kind missing: server-side apply by the same field manager drops the key
    await applyInvalid(ca2.name)
    const { crt } = await publishUntilSignedBy(plane.issuer.caPem, `${plane.issuer.name} (fallback)`)
    expect(await signedBy(crt, ca2.caPem)).toBe(false)
    expect(await signedBy(crt, ca1.caPem)).toBe(false)
    await poll("both processes to log the invalid ConfigMap", async () => (logCount("driver", INVALID_LOG) >= 1 && logCount("approver", INVALID_LOG) >= 1 ? true : undefined), {
      timeoutMs: SWITCH_TIMEOUT_MS
    })
  })

  it("records every invalid edit as a Warning Event from both the driver and the approver (none lost to an Event name collision)", async () => {
    // More invalid edits (each a new resourceVersion, so each is reported again by both processes).
    for (const name of ["invalid-edit-2", "invalid-edit-3", "invalid-edit-4"]) {
      const before = { driver: logCount("driver", INVALID_LOG), approver: logCount("approver", INVALID_LOG) }
      await applyInvalid(name)
      await poll(`both processes to log the invalid edit ${name}`, async () =>
        logCount("driver", INVALID_LOG) > before.driver && logCount("approver", INVALID_LOG) > before.approver ? true : undefined, { timeoutMs: SWITCH_TIMEOUT_MS })
    }
    const reported = logCount("driver", INVALID_LOG) + logCount("approver", INVALID_LOG)
    // Each report ends in an Event or in a "could not record an Event" warning: wait for all outcomes.
    const outcome = await poll("an outcome (Event or warning) for every report", async () => {
      const events = await invalidConfigEvents()
      const lost = logCount("driver", LOST_EVENT_LOG) + logCount("approver", LOST_EVENT_LOG)
      return events.length + lost >= reported ? { events, lost } : undefined
    }, { timeoutMs: 10_000 })
    invalidEvents = outcome.events
    for (const e of outcome.events) {
      expect(e.type).toBe("Warning")
      expect(e.message).toContain("issuer-kind")
    }
    const warnings = ["driver", "approver"].flatMap((p) => logLines(p as "driver" | "approver", LOST_EVENT_LOG))
    expect(outcome.lost, `Events lost:\n${warnings.join("\n")}`).toBe(0)
    expect(outcome.events).toHaveLength(reported)
  })

  it("the driver's and the approver's InvalidIssuerConfig Events name the process that reported them", async () => {
    // An operator reading `kubectl describe configmap` must tell the two apart. The approver's own
    // Events say "csi-driver-spiffe-approver"; its ConfigMap Event should too.
    const events = invalidEvents.length > 0 ? invalidEvents : await invalidConfigEvents()
    expect(events.length).toBeGreaterThanOrEqual(1)
    const components = new Set(events.map((e) => e.reportingComponent ?? e.source?.component))
    expect([...components].sort()).toEqual(["csi-driver-spiffe", "csi-driver-spiffe-approver"])
  })
})

describe("no issuer at all (--issuer-name empty, no ConfigMap)", () => {
  const ns = "runtime-no-issuer"
  let healthPort: number
  const readyz = async () => {
    const r = await fetch(`http://127.0.0.1:${healthPort}/readyz`)
    return { status: r.status, body: await r.text() }
  }
  beforeAll(async () => {
    const { connect } = await import("../harness/globalSetup.ts")
    await deleteRuntimeConfig(plane, connect(plane))
    healthPort = await freePort()
    stack = await startStack(plane, {
      name: "runtime-none",
      issuerName: "",
      runtimeConfigMap: RUNTIME_CONFIG_MAP,
      driverArgs: [`--metrics-bind-address=127.0.0.1:${healthPort}`]
    })
  })
  afterAll(async () => {
    await stack?.stop()
  })

  it("publish fails with UNAVAILABLE and a clear message, creating no request; succeeds once the ConfigMap appears", async () => {
    const pod = await newPod(ns)
    const err = await stack.publish(pod).then(
      () => undefined,
      (e: ServiceError) => e
    )
    expect(err, "publish should fail without an issuer").toBeDefined()
    expect(err!.code).toBe(14)
    expect(err!.details).toContain("no issuerRef is currently active")
    const all = await admin().get<{ items: Array<unknown> }>(`/apis/cert-manager.io/v1/namespaces/${ns}/certificaterequests`)
    expect(all.items).toHaveLength(0)
    // the driver's readiness says why
    const notReady = await poll("the driver's /readyz to answer", async () => readyz(), { timeoutMs: 10_000 })
    expect(notReady.status).toBe(503)
    expect(notReady.body).toContain("no issuer configured")

    await setRuntimeIssuer(plane, admin(), ca1)
    // the kubelet retries the failed publish; the driver picks the ConfigMap up asynchronously
    const target = await poll(
      "publish to succeed once the runtime ConfigMap names an issuer",
      async () => stack.publish(pod),
      { timeoutMs: SWITCH_TIMEOUT_MS, intervalMs: 200 }
    )
    const crt = readVolume(target).crt
    expect(await signedBy(crt, ca1.caPem)).toBe(true)
    expect(urisOf(crt)).toEqual([`spiffe://foo.bar/ns/${ns}/sa/runtime-app`])
    expect(await readyz()).toEqual({ status: 200, body: "ok\n" })
    const crs = await volumeCrs(admin(), pod)
    expect(crs).toHaveLength(1)
    expect(crs[0]!.spec.issuerRef?.name).toBe(ca1.name)
    await stack.unpublish(pod)
    await deleteRuntimeConfig(plane, admin())
  })
})

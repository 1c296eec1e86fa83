/**
 * The approver's leader Lease across `helm uninstall`, with the chart's own RBAC on the real
 * authorizer: a stopping approver releases its Lease while the release's RoleBinding exists; after
 * `helm uninstall` (which deletes the RoleBinding, the Role and the ServiceAccount in one go, before
 * the kubelet stops the pod) the release is refused with 403 and the Lease keeps its holder; a
 * reinstall's approver takes it over once it has gone unrenewed for leaseDuration (15 s). The
 * approver runs as a process with a TokenRequest token of the release's ServiceAccount (the plane
 * has no kubelet), stopped with SIGTERM after the uninstall, the order a real uninstall produces.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, inject, it } from "vitest"
import { findHelm } from "../chart/render.ts"
import { connect } from "../harness/globalSetup.ts"
import { writeKubeconfig } from "../harness/plane.ts"
import { type ManagedProcess, startProcess } from "../harness/process.ts"
import { poll } from "./issuers.ts"

const plane = inject("controlPlane")
const admin = connect(plane)
const helm = findHelm()
const repo = fileURLToPath(new URL("../..", import.meta.url))
const NS = "lease-uninstall"
const NAME = "lease-e2e"
const DRIVER = "lease-e2e.csi.example.com"
const SA = `${NAME}-approver`
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lease-uninstall-"))
const helmEnv = {
  ...process.env,
  KUBECONFIG: plane.kubeconfigPath,
  HELM_CACHE_HOME: path.join(dir, "helm-cache"),
  HELM_CONFIG_HOME: path.join(dir, "helm-config"),
  HELM_DATA_HOME: path.join(dir, "helm-data")
}
const runHelm = (args: ReadonlyArray<string>) => execFileSync(helm, [...args], { env: helmEnv, encoding: "utf8" })
const install = () => runHelm(["upgrade", "-i", "rel", path.join(repo, "helm/csi-driver-spiffe"), "-n", NS, "--create-namespace", "--set", `nameOverride=${NAME}`, "--set", `app.name=${DRIVER}`])

interface LeaseSpec {
  readonly holderIdentity?: string
  readonly leaseDurationSeconds?: number
  readonly acquireTime?: string
  readonly renewTime?: string
}
const leaseSpec = async (): Promise<LeaseSpec | undefined> => {
  const r = await admin.raw("GET", `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${DRIVER}`)
  return r.status === 200 ? (JSON.parse(r.body) as { spec: LeaseSpec }).spec : undefined
}

/** A kubeconfig with a fresh TokenRequest token of the release's approver ServiceAccount. */
const saKubeconfig = async (n: number) => {
  const request = await admin.json<{ status: { token: string } }>("POST", `/api/v1/namespaces/${NS}/serviceaccounts/${SA}/token`, {
    apiVersion: "authentication.k8s.io/v1",
    kind: "TokenRequest",
    spec: { expirationSeconds: 3600 }
  })
  const file = path.join(dir, `approver-${n}.kubeconfig`)
  writeKubeconfig(file, { server: plane.server, caFile: plane.caFile, user: `system:serviceaccount:${NS}:${SA}`, token: request.status.token })
  return file
}

const started: Array<ManagedProcess> = []
const startApprover = async (n: number) => {
  const proc = startProcess({
    name: `approver-lease-${n}`,
    command: process.execPath,
    args: [
      path.join(repo, "src/bin/approver.ts"),
      `--kubeconfig=${await saKubeconfig(n)}`,
      "--trust-domain=foo.bar",
      `--csi-driver-name=${DRIVER}`,
      `--issuer-name=${plane.issuer.name}`,
      `--issuer-kind=${plane.issuer.kind}`,
      `--issuer-group=${plane.issuer.group}`,
      `--leader-election-namespace=${NS}`,
      "--readiness-probe-bind-address=127.0.0.1:0",
      "--metrics-bind-address=0",
      "--log-level=4"
    ],
    logFile: path.join(dir, `approver-${n}.log`),
    cwd: repo
  })
  started.push(proc)
  return proc
}

/** The holder once it is someone other than `previous` (and not the released ""). */
const newHolder = (what: string, previous: string | undefined, timeoutMs = 60_000) =>
  poll(what, async () => {
    const holder = (await leaseSpec())?.holderIdentity
    return holder !== undefined && holder !== "" && holder !== previous ? holder : undefined
  }, { timeoutMs, intervalMs: 200 })

const logOf = (n: number) => fs.readFileSync(path.join(dir, `approver-${n}.log`), "utf8")

describe("the approver's Lease and helm uninstall", () => {
  afterAll(async () => {
    for (const p of started) await p.stop()
    try {
      runHelm(["uninstall", "rel", "-n", NS, "--wait", "--timeout=2m"])
    } catch {
      // already uninstalled
    }
    await admin.raw("DELETE", `/api/v1/namespaces/${NS}`)
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("released on a stop while the RBAC exists; refused (403) after helm uninstall, and taken over by a reinstall after leaseDuration", { timeout: 240_000 }, async () => {
    install()
    const first = await startApprover(1)
    const firstHolder = await newHolder("approver 1 leads", undefined)
    await first.stop(10_000)
    expect(await leaseSpec(), "released: empty holder, one-second duration").toMatchObject({ holderIdentity: "", leaseDurationSeconds: 1 })

    const second = await startApprover(2)
    const secondHolder = await newHolder("approver 2 leads", firstHolder)
    runHelm(["uninstall", "rel", "-n", NS, "--wait", "--timeout=2m"])
    await second.stop(10_000)
    expect(logOf(2)).toMatch(/releasing the lease failed.*Forbidden \(403\)/)
    const stale = await leaseSpec()
    expect(stale, "the Lease outlives the release, still held").toMatchObject({ holderIdentity: secondHolder, leaseDurationSeconds: 15 })

    install()
    await startApprover(3)
    await newHolder("approver 3 takes the stale Lease over", secondHolder, 90_000)
    // It took the Lease only after watching it stay unchanged for leaseDuration on its own clock.
    const taken = await leaseSpec()
    const gapMillis = Date.parse(taken!.acquireTime!) - Date.parse(stale!.renewTime!)
    process.stderr.write(`the stale Lease was taken over ${gapMillis} ms after its last renewal\n`)
    expect(gapMillis).toBeGreaterThanOrEqual(15_000)
  })
})

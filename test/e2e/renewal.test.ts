/**
 * Renewal on the real control plane, with 1-minute certificates (the shortest our flags accept; see
 * the first spec for what cert-manager does with it): a published volume gets a new certificate at
 * about 2/3 of its lifetime; the driver SIGKILLed with the volume published keeps the mount and the
 * files, accepts the kubelet's next republish (fresh token) and goes on renewing; at most one
 * CertificateRequest per volume remains; unpublish leaves nothing mounted and no volume directory.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { volumeHandle, type Workload } from "../harness/kubelet.ts"
import { poll, volumeCrs } from "./issuers.ts"
import { isMountPoint, readVolume, type Stack, startStack } from "./stack.ts"
import { leafOf, urisOf } from "./tools.ts"

const plane = inject("controlPlane")
let stack: Stack
let bundleDir: string

const LIFETIME_MS = 60_000
/** The driver renews at 2/3 of the lifetime ± 5 % jitter: at most 43 s after NotBefore. */
const LATEST_RENEWAL_MS = LIFETIME_MS * (2 / 3 + 0.05)
/** Issuance round trip (CR → approver → cert-manager → files) plus scheduling slack. */
const SLACK_MS = 15_000
const NAMES = ["root.pem", "spiffe.sock", "tls.crt", "tls.key"]

beforeAll(async () => {
  // A CA bundle under a non-default name, so renewals must write it too (as --file-name-ca says).
  bundleDir = fs.mkdtempSync(path.join(plane.tmpDir, "renewal-bundle-"))
  fs.copyFileSync(plane.issuer.caFile, path.join(bundleDir, "ca.crt"))
  stack = await startStack(plane, { name: "renewal", duration: "1m", sourceCaBundle: path.join(bundleDir, "ca.crt"), driverArgs: ["--file-name-ca=root.pem"] })
})
afterAll(async () => {
  await stack?.stop()
  if (bundleDir !== undefined) fs.rmSync(bundleDir, { recursive: true, force: true })
})

const serialOf = (target: string): string => leafOf(readVolume(target).crt).serialNumber

/** Waits for the volume to hold a certificate whose serial is not in `seen`, bounded by the renewal deadline of `after`. */
const awaitRenewal = async (target: string, seen: ReadonlySet<string>, after: string): Promise<string> => {
  const notBefore = leafOf(after).notBefore.getTime()
  const deadline = notBefore + LATEST_RENEWAL_MS + SLACK_MS
  return poll(
    `a renewed certificate (new serial) in ${target}`,
    async () => {
      const s = serialOf(target)
      return seen.has(s) ? undefined : s
    },
    { timeoutMs: Math.max(1_000, deadline - Date.now()), intervalMs: 250 }
  )
}

describe("renewal on the real control plane (1m certificates)", () => {
  let pod: Workload
  let target: string
  const serials = new Set<string>()

  it("cert-manager issues a 1m certificate, and a new serial appears within 2/3 of the lifetime + jitter + slack", async () => {
    pod = await stack.pod({ serviceAccount: "renewing-app", podName: "renewing-app-0" })
    target = await stack.publish(pod)
    const first = readVolume(target)
    expect(first.names).toEqual(NAMES)
    const leaf = leafOf(first.crt)
    expect(urisOf(first.crt)).toEqual(["spiffe://foo.bar/ns/sandbox/sa/renewing-app"])
    // cert-manager accepts spec.duration 1m on a CertificateRequest and the CA issuer honours it.
    expect(leaf.notAfter.getTime() - leaf.notBefore.getTime()).toBe(LIFETIME_MS)
    const [cr] = await volumeCrs(stack.admin, pod)
    expect(cr?.spec.duration).toBe("1m0s")
    serials.add(leaf.serialNumber)

    const t0 = Date.now()
    const renewed = await awaitRenewal(target, serials, first.crt)
    serials.add(renewed)
    const next = leafOf(readVolume(target).crt)
    // renewed at ~2/3 (never before 61.7 % of the first certificate's lifetime)
    expect(next.notBefore.getTime()).toBeGreaterThanOrEqual(leaf.notBefore.getTime() + Math.floor(LIFETIME_MS * (2 / 3 - 0.05)) - 1_000)
    expect(urisOf(readVolume(target).crt)).toEqual(["spiffe://foo.bar/ns/sandbox/sa/renewing-app"])
    // the renewal rewrote the whole set, the bundle under its configured name included
    expect(readVolume(target).names).toEqual(NAMES)
    expect(fs.readFileSync(path.join(target, "root.pem"), "utf8")).toBe(plane.issuer.caPem)
    console.log(`renewal observed ${Date.now() - t0} ms after the first publish returned`)
  })

  it("survives a SIGKILL of the driver: mount and files stay, republish is accepted, renewal continues", async () => {
    const before = readVolume(target)
    const killed = stack.driver
    process.kill(killed.pid, "SIGKILL")
    await poll("the driver to die", async () => killed.exited(), { timeoutMs: 10_000, intervalMs: 20 })
    expect(killed.exited()?.signal).toBe("SIGKILL")
    // With no driver running, the bind mount and the files are still there.
    expect(isMountPoint(target)).toBe(true)
    const after = readVolume(target)
    expect(after.crt).toBe(before.crt)
    expect(after.key).toBe(before.key)
    expect(after.names).toEqual(NAMES)
    // A new driver with the same flags (stop() of the dead one is a no-op); it finds the volume again.
    await stack.restartDriver("SIGTERM")
    expect(readVolume(target).crt).toBe(before.crt)
    await poll("the restarted driver to resume the volume", async () => (/"volumes resumed"(,\{"count":1\}| count=1\b)/.test(fs.readFileSync(path.join(stack.dir, "driver.log"), "utf8")) ? true : undefined), { timeoutMs: 10_000 })

    // The kubelet republishes periodically with a fresh token; the restarted driver accepts it.
    const again = await stack.publish(pod)
    expect(again).toBe(target)
    expect(isMountPoint(target)).toBe(true)

    // Renewal continues: another new serial appears (bounded by the current certificate's renewal deadline).
    const current = readVolume(target).crt
    serials.add(leafOf(current).serialNumber)
    const renewed = await awaitRenewal(target, serials, current)
    serials.add(renewed)
    expect(urisOf(readVolume(target).crt)).toEqual(["spiffe://foo.bar/ns/sandbox/sa/renewing-app"])
    expect(leafOf(readVolume(target).crt).notAfter.getTime()).toBeGreaterThan(Date.now())
    expect(readVolume(target).names).toEqual(NAMES)
  })

  it("keeps at most one CertificateRequest per volume after renewals", async () => {
    expect(serials.size).toBeGreaterThanOrEqual(3)
    // The driver deletes a volume's older requests before creating the next one.
    const crs = await volumeCrs(stack.admin, pod)
    expect(crs).toHaveLength(1)
  })

  it("unpublish leaves nothing mounted and no volume directory", async () => {
    const handle = volumeHandle(pod.podUid, "spiffe")
    const inmemfs = path.join(stack.dir, "data", "inmemfs")
    expect(fs.readdirSync(inmemfs)).toContain(handle)
    await stack.deletePod(pod)
    await stack.unpublish(pod)
    expect(isMountPoint(target)).toBe(false)
    expect(fs.readdirSync(inmemfs)).not.toContain(handle)
    expect(fs.readdirSync(inmemfs)).toEqual([])
    // the driver's requests for the volume are gone too
    await poll("the volume's CertificateRequests deleted", async () => ((await volumeCrs(stack.admin, pod)).length === 0 ? true : undefined), { timeoutMs: 10_000 })
  })
})

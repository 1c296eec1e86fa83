// The CA bundle on a real node: the driver pod mounts the issuer's Secret (`root-cas`, the seed's
// values) and copies its ca.crt into every volume. After a change of the Secret, the kubelet
// updates the driver's Secret volume and the driver rewrites ca.crt in every published volume;
// the pods are not restarted (same UID, restartCount 0) and neither is the driver.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createCa } from "../harness/pki.ts"
import { deleteNamespace, exec, k, node, readInPod, startPod, workloadNamespace } from "./support.ts"

const NS = "node-ca-bundle"
const SA = "ca-bundle-app"
const SECRET = ["-n", "cert-manager", "secret/csi-driver-spiffe-ca"]
const PODS = ["bundle-a", "bundle-b"]

const setBundle = async (pem: string) => {
  await k(["patch", ...SECRET, "--type=merge", "-p", JSON.stringify({ data: { "ca.crt": Buffer.from(pem).toString("base64") } })])
}

/** Inside the container: wait (bounded) until ca.crt has the expected md5. */
const awaitBundle = async (pod: string, pem: string) => {
  const { createHash } = await import("node:crypto")
  const md5 = createHash("md5").update(pem).digest("hex")
  const r = await exec(NS, pod, [
    "sh", "-c",
    `i=0; until [ "$(md5sum < /var/run/secrets/spiffe.io/ca.crt)" = "${md5}  -" ]; do i=$((i+1)); [ $i -gt 1200 ] && exit 1; usleep 100000; done`
  ])
  expect(r.code, `${pod}: ca.crt never became the new bundle`).toBe(0)
}

const podState = async (pod: string) =>
  (await k(["get", "pod", "-n", NS, pod, "-o", "jsonpath={.metadata.uid} {.status.containerStatuses[0].restartCount}"])).trim()

const driverPod = async () => (await k(["get", "pods", "-n", "cert-manager", "-l", "app=cert-manager-csi-driver-spiffe", "-o", "jsonpath={.items[*].metadata.uid}"])).trim()

describe("CA bundle propagation on a real node", () => {
  const original = node.plane.issuer.caPem
  beforeAll(async () => {
    await workloadNamespace(NS, SA)
    await Promise.all(PODS.map((name) => startPod({ ns: NS, name, sa: SA })))
  })
  afterAll(async () => {
    await setBundle(original)
    for (const p of PODS) await awaitBundle(p, original).catch(() => undefined)
    await deleteNamespace(NS)
  })

  it("a changed Secret reaches ca.crt of every volume without restarting pods", async () => {
    for (const p of PODS) expect((await readInPod(NS, p, "ca.crt")).trim()).toBe(original.trim())
    const states = await Promise.all(PODS.map(podState))
    const driver = await driverPod()
    const added = (await createCa("node-ca-bundle-extra-root")).cert.toString("pem").trim() + "\n"
    const rotated = `${original.trim()}\n${added}`
    await setBundle(rotated)
    await Promise.all(PODS.map((p) => awaitBundle(p, rotated)))
    for (const p of PODS) expect(await readInPod(NS, p, "ca.crt")).toBe(rotated)
    expect(await Promise.all(PODS.map(podState))).toEqual(states)
    expect(states.every((s) => s.endsWith(" 0"))).toBe(true)
    expect(await driverPod()).toBe(driver)
  })
})

/**
 * The original's CA rotation spec on the real control plane, with the source bundle laid out as a
 * Secret volume (`bundle/..data -> ..<stamp>/`, `bundle/ca.crt -> ..data/ca.crt`) and rotated by the
 * kubelet's atomic `..data` swap: two pods get `ca.crt` equal to the bundle, and both see the new
 * bytes within 60 s of the swap. An invalid bundle is refused loudly and leaves the volumes alone.
 * A second stack with `--file-name-ca=root.pem` writes the bundle under that name at issuance and at
 * rotation (the original ignored the flag at issuance).
 *
 * The bundle lives in a directory of its own under the plane's tmp dir (the driver needs it before
 * startStack creates the stack directory).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import type { Workload } from "../harness/kubelet.ts"
import { createCa } from "../harness/pki.ts"
import { pemCertificates, poll, secretVolumeDir } from "./issuers.ts"
import { readVolume, type Stack, startStack } from "./stack.ts"
import { urisOf } from "./tools.ts"

const plane = inject("controlPlane")
const PROPAGATION_TIMEOUT_MS = 60_000

let root: string
beforeAll(() => {
  root = fs.mkdtempSync(path.join(plane.tmpDir, "ca-rotation-"))
})
afterAll(() => {
  if (root !== undefined) fs.rmSync(root, { recursive: true, force: true })
})

const newCaPem = async (cn: string): Promise<string> => (await createCa(cn)).cert.toString("pem").trim() + "\n"

const awaitFile = (target: string, name: string, expected: string): Promise<true> =>
  poll(
    `${name} in ${target} to hold the rotated bundle`,
    async () => (fs.readFileSync(path.join(target, name), "utf8") === expected ? true : undefined),
    { timeoutMs: PROPAGATION_TIMEOUT_MS, intervalMs: 200 }
  )

describe("CA rotation: a new root propagates to every volume", () => {
  let stack: Stack
  let bundle: ReturnType<typeof secretVolumeDir>
  let bundleDir: string
  const pods: Array<{ pod: Workload; target: string }> = []

  beforeAll(async () => {
    bundleDir = path.join(root, "default", "bundle")
    bundle = secretVolumeDir(bundleDir)
    bundle.write({ "ca.crt": plane.issuer.caPem })
    expect(fs.readlinkSync(path.join(bundleDir, "ca.crt"))).toBe(path.join("..data", "ca.crt"))
    stack = await startStack(plane, { name: "ca-rotation", sourceCaBundle: path.join(bundleDir, "ca.crt") })
  })
  afterAll(async () => {
    await stack?.stop()
  })

  it("should propagate a new root when it changes", async () => {
    for (const name of ["rotation-a", "rotation-b"]) {
      // rotation-b has an fs-group: the CA rewrite must keep the files' group
      const volumeAttributes = name === "rotation-b" ? { "spiffe.csi.cert-manager.io/fs-group": "1541" } : undefined
      const pod = await stack.pod({ serviceAccount: name, podName: `${name}-0`, ...(volumeAttributes === undefined ? {} : { volumes: [{ name: "spiffe", readOnly: true, volumeAttributes }] }) })
      const target = await stack.publish(pod)
      pods.push({ pod, target })
    }
    for (const { target } of pods) {
      const files = readVolume(target)
      expect(files.names).toEqual(["ca.crt", "spiffe.sock", "tls.crt", "tls.key"])
      expect(files.ca).toBe(fs.readFileSync(path.join(bundleDir, "ca.crt"), "utf8"))
    }

    // The Secret is edited: a comment line before the PEM (as the original's spec), plus a second root.
    const extra = await newCaPem("csi-spiffe-rotation-next-root")
    const rotated = `# rotated by ca-rotation.test.ts\n${plane.issuer.caPem}${extra}`
    const crtsBefore = pods.map(({ target }) => readVolume(target).crt)
    bundle.write({ "ca.crt": rotated })
    await Promise.all(pods.map(({ target }) => awaitFile(target, "ca.crt", rotated)))
    for (const [i, { target }] of pods.entries()) {
      const files = readVolume(target)
      expect(pemCertificates(files.ca!)).toHaveLength(2)
      // the rewrite keeps the volume's certificate and key
      expect(files.crt).toBe(crtsBefore[i])
      expect(files.names).toEqual(["ca.crt", "spiffe.sock", "tls.crt", "tls.key"])
    }
    for (const name of ["ca.crt", "tls.crt", "tls.key"]) expect(fs.statSync(path.join(pods[1]!.target, name)).gid, name).toBe(1541)

    // A pod published after the rotation gets the new bundle at issuance.
    const late = await stack.pod({ serviceAccount: "rotation-late", podName: "rotation-late-0" })
    const lateTarget = await stack.publish(late)
    expect(readVolume(lateTarget).ca).toBe(rotated)
    await stack.unpublish(late)
  })

  it("refuses an invalid bundle loudly and leaves the volumes' ca.crt alone", async () => {
    const current = readVolume(pods[0]!.target).ca!
    const logBefore = fs.readFileSync(path.join(stack.dir, "driver.log"), "utf8").length
    bundle.write({ "ca.crt": "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n" })
    await poll(
      "the driver to log that the new bundle is invalid",
      async () => (fs.readFileSync(path.join(stack.dir, "driver.log"), "utf8").slice(logBefore).includes("CA bundle not updated") ? true : undefined),
      { timeoutMs: PROPAGATION_TIMEOUT_MS }
    )
    for (const { target } of pods) expect(readVolume(target).ca).toBe(current)

    // and the next valid bundle goes through again
    const next = `${plane.issuer.caPem}${await newCaPem("csi-spiffe-rotation-third-root")}`
    bundle.write({ "ca.crt": next })
    await Promise.all(pods.map(({ target }) => awaitFile(target, "ca.crt", next)))
  })

  it("a bundle changed while the driver is down reaches every volume once it starts again (start-up reconciliation)", async () => {
    const killed = stack.driver
    process.kill(killed.pid, "SIGKILL")
    await poll("the driver to die", async () => killed.exited(), { timeoutMs: 10_000, intervalMs: 20 })
    const whileDown = `# changed while the driver was down\n${plane.issuer.caPem}${await newCaPem("csi-spiffe-rotation-while-down")}`
    bundle.write({ "ca.crt": whileDown })
    const crts = pods.map(({ target }) => readVolume(target).crt)
    await stack.restartDriver("SIGTERM")
    // no republish, no renewal due: only the start-up pass can bring the new bytes
    await Promise.all(pods.map(({ target }) => awaitFile(target, "ca.crt", whileDown)))
    for (const [i, { target }] of pods.entries()) expect(readVolume(target).crt).toBe(crts[i])
    for (const name of ["ca.crt", "tls.crt", "tls.key"]) expect(fs.statSync(path.join(pods[1]!.target, name)).gid, name).toBe(1541)
    // the kubelet's next republish is accepted by the new driver
    for (const { pod, target } of pods) expect(await stack.publish(pod)).toBe(target)
    for (const { pod } of pods) await stack.unpublish(pod)
  })
})

describe("--file-name-ca=root.pem is honoured at issuance and at rotation", () => {
  let stack: Stack
  let bundle: ReturnType<typeof secretVolumeDir>

  beforeAll(async () => {
    const bundleDir = path.join(root, "root-pem", "bundle")
    bundle = secretVolumeDir(bundleDir)
    bundle.write({ "ca.crt": plane.issuer.caPem })
    stack = await startStack(plane, { name: "ca-file-name", sourceCaBundle: path.join(bundleDir, "ca.crt"), driverArgs: ["--file-name-ca=root.pem"] })
  })
  afterAll(async () => {
    await stack?.stop()
  })

  it("writes the bundle as root.pem (never ca.crt), and rotates root.pem", async () => {
    const pod = await stack.pod({ serviceAccount: "root-pem-app", podName: "root-pem-app-0" })
    const target = await stack.publish(pod)
    const files = readVolume(target)
    expect(files.names).toEqual(["root.pem", "spiffe.sock", "tls.crt", "tls.key"])
    expect(fs.readFileSync(path.join(target, "root.pem"), "utf8")).toBe(plane.issuer.caPem)
    expect(urisOf(files.crt)).toEqual(["spiffe://foo.bar/ns/sandbox/sa/root-pem-app"])

    const rotated = `${plane.issuer.caPem}${await newCaPem("csi-spiffe-root-pem-next")}`
    bundle.write({ "ca.crt": rotated })
    await awaitFile(target, "root.pem", rotated)
    expect(readVolume(target).names).toEqual(["root.pem", "spiffe.sock", "tls.crt", "tls.key"])
    await stack.unpublish(pod)
  })
})

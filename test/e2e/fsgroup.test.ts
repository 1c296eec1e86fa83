/**
 * The original's two fs-group specs on the real control plane, plus the CSI volume_mount_group path:
 * with `spiffe.csi.cert-manager.io/fs-group: "1541"` a process running as uid 1321 / gid 1541 reads
 * tls.crt, tls.key and ca.crt through the pod's target path, and one running as gid 123 cannot
 * (EACCES); a pod with securityContext.fsGroup 2000 and no attribute gets files of group 2000.
 *
 * The files are reached through the target path, a read-only bind of a directory under the driver's
 * data root. The harness's run and stack directories are mkdtemp'd (0700), so the test adds the
 * search bit (o+x) to each directory from the plane's tmp dir down to the target's parent, and puts
 * the modes back afterwards. Nothing inside the driver's volume is touched.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import type { Workload } from "../harness/kubelet.ts"
import { readVolume, type Stack, startStack } from "./stack.ts"
import { urisOf } from "./tools.ts"

const plane = inject("controlPlane")
let stack: Stack
let bundleDir: string
const restoreModes = new Map<string, number>()

const FS_GROUP = 1541
const RUN_AS_USER = 1321
const OTHER_GROUP = 123
const CAT = ["/usr/bin/cat", "/bin/cat"].find((p) => fs.existsSync(p)) ?? "cat"

beforeAll(async () => {
  bundleDir = fs.mkdtempSync(path.join(plane.tmpDir, "fsgroup-bundle-"))
  fs.copyFileSync(plane.issuer.caFile, path.join(bundleDir, "ca.crt"))
  stack = await startStack(plane, { name: "fsgroup", sourceCaBundle: path.join(bundleDir, "ca.crt") })
})
afterAll(async () => {
  await stack?.stop()
  for (const [dir, mode] of [...restoreModes].reverse()) fs.chmodSync(dir, mode)
  if (bundleDir !== undefined) fs.rmSync(bundleDir, { recursive: true, force: true })
})

/** Make every directory from the plane's tmp dir down to the target's parent searchable by others. */
const traversable = (target: string): void => {
  const chain: Array<string> = []
  for (let d = path.dirname(target); d.startsWith(plane.tmpDir); d = path.dirname(d)) chain.unshift(d)
  for (const d of [path.dirname(plane.tmpDir), ...chain]) {
    const mode = fs.statSync(d).mode & 0o7777
    if ((mode & 0o001) === 0) {
      if (!restoreModes.has(d)) restoreModes.set(d, mode)
      fs.chmodSync(d, mode | 0o111)
    }
  }
}

/** `cat file` as uid/gid (libuv drops the supplementary groups when it sets the ids). */
const catAs = (file: string, uid: number, gid: number) => {
  const r = spawnSync(CAT, [file], { uid, gid, encoding: "utf8", cwd: "/" })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, error: r.error }
}

const fsGroupPod = (name: string): Promise<Workload> =>
  stack.pod({
    serviceAccount: name,
    podName: `${name}-0`,
    volumes: [{ name: "spiffe", readOnly: true, volumeAttributes: { "spiffe.csi.cert-manager.io/fs-group": String(FS_GROUP) } }]
  })

describe("fs-group on the real control plane", () => {
  it("mounts and a process of uid 1321 / gid 1541 can read tls.crt, tls.key and ca.crt (fs-group attribute 1541)", async () => {
    const pod = await fsGroupPod("fsgroup-reader")
    const target = await stack.publish(pod)
    traversable(target)
    const files = readVolume(target)
    expect(files.names).toEqual(["ca.crt", "spiffe.sock", "tls.crt", "tls.key"])
    expect(urisOf(files.crt)).toEqual(["spiffe://foo.bar/ns/sandbox/sa/fsgroup-reader"])
    // the Workload API socket: the fs-group may connect (connect needs write), nobody else
    const sock = fs.statSync(path.join(target, "spiffe.sock"))
    expect(sock.isSocket()).toBe(true)
    expect(sock.gid).toBe(FS_GROUP)
    expect(sock.mode & 0o777).toBe(0o660)
    for (const name of files.names.filter((n) => n !== "spiffe.sock")) {
      const st = fs.statSync(path.join(target, name))
      expect(st.gid, name).toBe(FS_GROUP)
      expect(st.mode & 0o777, name).toBe(0o440)
      const r = catAs(path.join(target, name), RUN_AS_USER, FS_GROUP)
      expect(r.error, name).toBeUndefined()
      expect(r.status, `${name}: ${r.stderr}`).toBe(0)
      expect(r.stdout.length, name).toBeGreaterThan(0)
      expect(r.stdout, name).toBe(fs.readFileSync(path.join(target, name), "utf8"))
    }
    expect(catAs(path.join(target, "ca.crt"), RUN_AS_USER, FS_GROUP).stdout).toBe(plane.issuer.caPem)
  })

  it("mounts but a process of uid 1321 / gid 123 cannot read the volume when the fs-group is 1541", async () => {
    const pod = await fsGroupPod("fsgroup-outsider")
    // The publish succeeds (the pod becomes Ready) …
    const target = await stack.publish(pod)
    traversable(target)
    // … and the control: the target's parents are searchable, so a refusal comes from the volume.
    expect(spawnSync("/usr/bin/test", ["-x", path.dirname(target)], { uid: RUN_AS_USER, gid: OTHER_GROUP }).status).toBe(0)
    for (const name of ["tls.crt", "tls.key", "ca.crt"]) {
      const r = catAs(path.join(target, name), RUN_AS_USER, OTHER_GROUP)
      expect(r.status, name).not.toBe(0)
      expect(r.stdout, name).toBe("")
      expect(r.stderr, name).toMatch(/Permission denied/)
    }
  })

  it("without the attribute, the pod's fsGroup (CSI volume_mount_group) owns the files", async () => {
    const pod = await stack.pod({ serviceAccount: "fsgroup-mount-group", podName: "fsgroup-mount-group-0", fsGroup: 2000 })
    const req = await stack.publishRequest(pod)
    expect(req.volume_capability.mount.volume_mount_group).toBe("2000")
    expect(req.volume_context["spiffe.csi.cert-manager.io/fs-group"]).toBeUndefined()
    const target = await stack.publish(pod)
    traversable(target)
    for (const name of ["tls.crt", "tls.key", "ca.crt"]) {
      expect(fs.statSync(path.join(target, name)).gid, name).toBe(2000)
      const ok = catAs(path.join(target, name), RUN_AS_USER, 2000)
      expect(ok.status, `${name}: ${ok.stderr}`).toBe(0)
      expect(catAs(path.join(target, name), RUN_AS_USER, FS_GROUP).stderr, name).toMatch(/Permission denied/)
    }
  })
})

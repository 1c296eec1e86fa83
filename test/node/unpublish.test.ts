// Pod deletion on a real node: the kubelet calls NodeUnpublishVolume and our driver leaves nothing:
// no mount of the pod's target path, no data of the volume in the driver's state directory, no
// CertificateRequest of the pod, and (once the kubelet has cleaned up) no pod directory.
import { existsSync, readdirSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { volumeHandle } from "../harness/kubelet.ts"
import { poll } from "../e2e/issuers.ts"
import { certificateRequests, deleteNamespace, deletePod, mountPoints, node, startPod, targetPathOf, workloadNamespace } from "./support.ts"

const NS = "node-unpublish"
const SA = "unpublish-app"

/** Every path under `dir` (files and directories). */
const walk = (dir: string): Array<string> => {
  const out: Array<string> = []
  const go = (d: string) => {
    let entries: Array<import("node:fs").Dirent> = []
    try {
      entries = readdirSync(d, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) {
      const p = join(d, e.name)
      out.push(p)
      if (e.isDirectory() && !e.isSymbolicLink()) go(p)
    }
  }
  go(dir)
  return out
}

describe("NodeUnpublishVolume through the kubelet", () => {
  beforeAll(async () => {
    await workloadNamespace(NS, SA)
  })
  afterAll(async () => {
    await deleteNamespace(NS)
  })

  it("deleting the pod leaves no mount, no volume data, no CertificateRequest and no pod directory", async () => {
    const pods = ["gone-0", "gone-1", "gone-2"]
    const uids = await Promise.all(pods.map(async (name) => (await startPod({ ns: NS, name, sa: SA })).uid))
    const mounted = await mountPoints()
    for (const uid of uids) expect(mounted).toContain(targetPathOf(uid))
    const ids = uids.map((uid) => volumeHandle(uid, "spiffe"))
    for (const id of ids) expect(walk(node.csiDataDir).some((p) => p.includes(id)), `data of ${id}`).toBe(true)
    expect((await certificateRequests(NS)).length).toBeGreaterThanOrEqual(pods.length)

    await Promise.all(pods.map((p) => deletePod(NS, p)))

    const after = await mountPoints()
    for (const uid of uids) expect(after.filter((m) => m.includes(uid))).toEqual([])
    for (const id of ids) expect(walk(node.csiDataDir).filter((p) => p.includes(id))).toEqual([])
    expect(await certificateRequests(NS)).toEqual([])
    // the kubelet removes an orphaned pod directory in its housekeeping (every ~2 s)
    await poll(
      "the kubelet to remove the pod directories",
      async () => (uids.every((uid) => !existsSync(join(node.kubeletRootDir, "pods", uid))) ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 500 }
    )
  })
})

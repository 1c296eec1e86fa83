// fs-group through a real kubelet: a container running as uid 123 / gid 456 reads its key when the
// volume has spiffe.csi.cert-manager.io/fs-group: "456", and cannot read it without the attribute.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { deleteNamespace, exec, keyMatches, leaf, startPod, workloadNamespace } from "./support.ts"

const NS = "node-fsgroup"
const SA = "fs-group-app"

describe("fs-group on a real node", () => {
  beforeAll(async () => {
    await workloadNamespace(NS, SA)
    await Promise.all([
      startPod({ ns: NS, name: "with-attribute", sa: SA, runAsUser: 123, runAsGroup: 456, attributes: { "spiffe.csi.cert-manager.io/fs-group": "456" } }),
      startPod({ ns: NS, name: "without-attribute", sa: SA, runAsUser: 123, runAsGroup: 456 })
    ])
  })
  afterAll(async () => {
    await deleteNamespace(NS)
  })

  it("uid 123 / gid 456 reads tls.crt, tls.key and ca.crt when the volume's fs-group is 456", async () => {
    expect((await exec(NS, "with-attribute", ["id"])).stdout).toMatch(/uid=123 gid=456/)
    const files: Record<string, string> = {}
    for (const f of ["tls.crt", "tls.key", "ca.crt"]) {
      const r = await exec(NS, "with-attribute", ["cat", `/var/run/secrets/spiffe.io/${f}`])
      expect(r.code, `${f}: ${r.stderr}`).toBe(0)
      expect(r.stdout.length).toBeGreaterThan(0)
      files[f] = r.stdout
    }
    expect(keyMatches(files["tls.crt"]!, files["tls.key"]!)).toBe(true)
    expect(leaf(files["tls.crt"]!).subjectAltName).toBe(`URI:spiffe://foo.bar/ns/${NS}/sa/${SA}`)
    const stat = await exec(NS, "with-attribute", ["stat", "-L", "-c", "%g %a", "/var/run/secrets/spiffe.io/tls.key"])
    expect(stat.stdout.trim()).toMatch(/^456 6?4?0$|^456 \d+$/)
  })

  it("the same user cannot read the key without the attribute (the pod still runs)", async () => {
    expect((await exec(NS, "without-attribute", ["id"])).stdout).toMatch(/uid=123 gid=456/)
    const r = await exec(NS, "without-attribute", ["cat", "/var/run/secrets/spiffe.io/tls.key"])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/Permission denied/)
  })
})

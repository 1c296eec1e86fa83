/**
 * Issuance on the real control plane: the seed's example app gets an SVID signed by the CA
 * ClusterIssuer through a CertificateRequest created with the pod's token and approved by our
 * approver; go-spiffe parses and verifies it; two pods complete mutual TLS with AuthorizeID; a pod's
 * deletion and unpublish leave nothing behind.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { isMountPoint, readVolume, type Stack, startStack } from "./stack.ts"
import { leafOf, snapshot, spiffeChecker, urisOf } from "./tools.ts"

const plane = inject("controlPlane")
let stack: Stack

beforeAll(async () => {
  stack = await startStack(plane, { name: "issuance" })
})
afterAll(async () => {
  await stack?.stop()
})

interface CrList {
  items: Array<{ metadata: { name: string; annotations?: Record<string, string> }; spec: { username?: string }; status?: { conditions?: Array<{ type: string; status: string; reason?: string }> } }>
}

describe("issuance on the real control plane", () => {
  it("mounts a verifiable SVID for the example app, requested as the pod and approved by our approver", async () => {
    const pod = await stack.pod({ serviceAccount: "example-app", podName: "my-csi-app" })
    const target = await stack.publish(pod)
    const files = readVolume(target)
    expect(files.names).toEqual(["spiffe.sock", "tls.crt", "tls.key"])
    expect(leafOf(files.crt).issuer).toBe("CN=csi-driver-spiffe-ca")
    expect(urisOf(files.crt)).toEqual(["spiffe://foo.bar/ns/sandbox/sa/example-app"])
    expect(isMountPoint(target)).toBe(true)
    expect(() => fs.writeFileSync(path.join(target, "x"), "no")).toThrow(/EROFS/)

    const crs = await stack.admin.get<CrList>("/apis/cert-manager.io/v1/namespaces/sandbox/certificaterequests")
    const mine = crs.items.filter((c) => c.metadata.annotations?.["spiffe.csi.cert-manager.io/identity"] === "spiffe://foo.bar/ns/sandbox/sa/example-app")
    expect(mine).toHaveLength(1)
    expect(mine[0]!.spec.username).toBe("system:serviceaccount:sandbox:example-app")
    expect(mine[0]!.status?.conditions?.find((c) => c.type === "Approved")).toMatchObject({ status: "True", reason: "spiffe.csi.cert-manager.io" })

    const check = await spiffeChecker()
    const dir = snapshot(target, path.join(stack.dir, "svid-example"))
    const verified = check(["verify", "--dir", dir, "--bundle", plane.issuer.caFile, "--expect-id", "spiffe://foo.bar/ns/sandbox/sa/example-app"])
    expect(verified.ok, verified.out).toBe(true)
  })

  it("two pods' SVIDs complete mutual TLS with AuthorizeID, and fail with the wrong ID", async () => {
    const a = await stack.pod({ serviceAccount: "frontend", podName: "frontend-0" })
    const b = await stack.pod({ serviceAccount: "backend", podName: "backend-0" })
    const [ta, tb] = await Promise.all([stack.publish(a), stack.publish(b)])
    const check = await spiffeChecker()
    const da = snapshot(ta, path.join(stack.dir, "svid-a"))
    const db = snapshot(tb, path.join(stack.dir, "svid-b"))
    const good = check(["mtls", "--server-dir", da, "--client-dir", db, "--bundle", plane.issuer.caFile])
    expect(good.ok, good.out).toBe(true)
    const wrong = check(["mtls", "--server-dir", da, "--client-dir", db, "--bundle", plane.issuer.caFile, "--client-authorize-id", "spiffe://foo.bar/ns/sandbox/sa/somebody-else"])
    expect(wrong.ok, wrong.out).toBe(false)
  })

  it("deleting the pod and unpublishing leaves nothing mounted, on disk or in the API", async () => {
    const pod = await stack.pod({ serviceAccount: "short-lived", podName: "short-lived-0" })
    const target = await stack.publish(pod)
    expect(isMountPoint(target)).toBe(true)
    await stack.deletePod(pod)
    await stack.unpublish(pod)
    expect(isMountPoint(target)).toBe(false)
    const volumes = fs.readdirSync(path.join(stack.dir, "data", "inmemfs"))
    expect(volumes.some((v) => v === path.basename(path.dirname(target)))).toBe(false)
    const crs = await stack.admin.get<CrList>("/apis/cert-manager.io/v1/namespaces/sandbox/certificaterequests")
    expect(crs.items.filter((c) => c.metadata.annotations?.["spiffe.csi.cert-manager.io/identity"]?.endsWith("/sa/short-lived"))).toHaveLength(0)
    await stack.unpublish(pod)
  })
})

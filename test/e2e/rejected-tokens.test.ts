/**
 * Tokens the real API server refuses: a forged signature, a token for another audience, a token bound
 * to a pod that was deleted. Each is permanent for that token, so the driver answers UNAUTHENTICATED
 * (the CSI spec's code for secrets that do not authenticate; final for the kubelet) with a message
 * that says so, creates no CertificateRequest, mounts nothing and keeps no volume data. An expired
 * token takes the same path (the API server's 401); a TokenRequest cannot be shorter than 10 minutes,
 * so it is not waited for here.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { requestPodToken } from "../harness/kubelet.ts"
import type { NodePublishVolumeRequest } from "../harness/kubelet.ts"
import { isMountPoint, type Stack, startStack } from "./stack.ts"

const plane = inject("controlPlane")
let stack: Stack

const UNAUTHENTICATED = 16
const TOKENS_KEY = "csi.storage.k8s.io/serviceAccount.tokens"

beforeAll(async () => {
  stack = await startStack(plane, { name: "tokens" })
})
afterAll(async () => {
  await stack?.stop()
})

const withToken = (req: NodePublishVolumeRequest, token: string): NodePublishVolumeRequest => ({
  ...req,
  volume_context: { ...req.volume_context, [TOKENS_KEY]: JSON.stringify({ "": { token, expirationTimestamp: "2100-01-01T00:00:00Z" } }) }
})

const failureOf = (req: NodePublishVolumeRequest) =>
  stack.call("NodePublishVolume", req).then(
    () => undefined,
    (e: unknown) => e as { code: number; details: string }
  )

const requestsFor = async (serviceAccount: string) => {
  const crs = await stack.admin.get<{ items: Array<{ metadata: { annotations?: Record<string, string> } }> }>(
    "/apis/cert-manager.io/v1/namespaces/sandbox/certificaterequests"
  )
  return crs.items.filter((c) => c.metadata.annotations?.["spiffe.csi.cert-manager.io/identity"]?.endsWith(`/sa/${serviceAccount}`))
}

const expectNothingLeft = async (req: NodePublishVolumeRequest, serviceAccount: string) => {
  expect(await requestsFor(serviceAccount)).toEqual([])
  expect(isMountPoint(req.target_path)).toBe(false)
  expect(fs.readdirSync(path.join(stack.dir, "data", "inmemfs")).filter((v) => v === req.volume_id)).toEqual([])
}

describe("tokens the API server refuses", () => {
  it("a forged token (its signature changed): UNAUTHENTICATED, nothing created", async () => {
    const pod = await stack.pod({ serviceAccount: "forged", podName: "forged-0" })
    const req = await stack.publishRequest(pod)
    const token = (JSON.parse(req.volume_context[TOKENS_KEY]!) as Record<string, { token: string }>)[""]!.token
    const [header, claims, signature] = token.split(".") as [string, string, string]
    const flipped = `${signature.slice(0, 10)}${signature[10] === "A" ? "B" : "A"}${signature.slice(11)}`
    const err = await failureOf(withToken(req, `${header}.${claims}.${flipped}`))
    expect(err, "a forged token was accepted").toBeDefined()
    expect(err!.code, err!.details).toBe(UNAUTHENTICATED)
    expect(err!.details).toContain("did not accept the token")
    expect(err!.details).not.toContain(signature)
    await expectNothingLeft(req, "forged")
  })

  it("a token for another audience: UNAUTHENTICATED, nothing created", async () => {
    const pod = await stack.pod({ serviceAccount: "other-audience", podName: "other-audience-0" })
    const req = await stack.publishRequest(pod)
    const vault = await requestPodToken(stack.admin, pod, { audience: "vault.example.com" })
    const err = await failureOf(withToken(req, vault.token))
    expect(err, "a token for another audience was accepted").toBeDefined()
    expect(err!.code, err!.details).toBe(UNAUTHENTICATED)
    await expectNothingLeft(req, "other-audience")
  })

  it("a token bound to a pod that was deleted: UNAUTHENTICATED, nothing created", async () => {
    const pod = await stack.pod({ serviceAccount: "deleted-pod", podName: "deleted-pod-0" })
    const req = await stack.publishRequest(pod)
    await stack.deletePod(pod)
    const err = await failureOf(req)
    expect(err, "a deleted pod's token was accepted").toBeDefined()
    expect(err!.code, err!.details).toBe(UNAUTHENTICATED)
    await expectNothingLeft(req, "deleted-pod")
  })
})

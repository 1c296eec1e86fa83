/**
 * Bad NodePublishVolume / NodeUnpublishVolume requests through the whole plugin: each gets
 * InvalidArgument naming the field, and none creates a CertificateRequest, a volume or a mount.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Ref } from "effect"
import { CertificateRequests } from "../../../src/domain/KubeObjects.ts"
import { KubeClientMemory } from "../../../src/layers/KubeClient.ts"
import { MounterMemory } from "../../../src/layers/Mounter.ts"
import { VolumeStoreMemory } from "../../../src/layers/VolumeStore.ts"
import { CsiPlugin } from "../../../src/services/CsiPlugin.ts"
import type { CsiError } from "../../../src/services/CsiPlugin.ts"
import { driverLayer, nodeLayer, testConfig } from "../../support/DriverStack.ts"
import { fakeToken, publishRequest } from "../../support/publish.ts"

type Req = ReturnType<typeof publishRequest>
const base = (): Req => publishRequest()
const ctx = (r: Req, patch: Record<string, string | undefined>) => {
  const volume_context: Record<string, string> = { ...r.volume_context }
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete volume_context[k]
    else volume_context[k] = v
  }
  return { ...r, volume_context }
}
const tokens = (token: string) => JSON.stringify({ "": { token, expirationTimestamp: "2100-01-01T00:00:00Z" } })
const TOKENS = "csi.storage.k8s.io/serviceAccount.tokens"

const publishCases: ReadonlyArray<readonly [string, (r: Req) => unknown, string]> = [
  ["missing volume_id", (r) => ({ ...r, volume_id: "" }), "volume_id is required"],
  ["volume_id with a slash", (r) => ({ ...r, volume_id: "a/b" }), "volume_id may only contain"],
  ["volume_id '..'", (r) => ({ ...r, volume_id: ".." }), "volume_id may only contain"],
  ["missing target_path", (r) => ({ ...r, target_path: "" }), "target_path is required"],
  ["relative target_path", (r) => ({ ...r, target_path: "pods/x/mount" }), "target_path must be absolute"],
  ["missing volume_capability", (r) => ({ ...r, volume_capability: null }), "volume_capability is required"],
  ["block volume", (r) => ({ ...r, volume_capability: { access_type: "block", block: {}, access_mode: { mode: "SINGLE_NODE_WRITER" } } }), "volume_capability.block is not supported"],
  ["readonly false", (r) => ({ ...r, readonly: false }), "readonly must be true"],
  ["not ephemeral", (r) => ctx(r, { "csi.storage.k8s.io/ephemeral": "false" }), "csi.storage.k8s.io/ephemeral"],
  ["no pod name", (r) => ctx(r, { "csi.storage.k8s.io/pod.name": undefined }), "csi.storage.k8s.io/pod.name"],
  ["no pod uid", (r) => ctx(r, { "csi.storage.k8s.io/pod.uid": undefined }), "csi.storage.k8s.io/pod.uid"],
  ["no tokens", (r) => ctx(r, { [TOKENS]: undefined }), "tokenRequests"],
  ["tokens not JSON", (r) => ctx(r, { [TOKENS]: "{oops" }), "not a JSON map"],
  ["no \"\" audience", (r) => ctx(r, { [TOKENS]: JSON.stringify({ vault: { token: r.token } }) }), "no token for the \"\" audience"],
  ["token not a JWT", (r) => ctx(r, { [TOKENS]: tokens("abc") }), "not a signed JWT"],
  [
    "token for another namespace",
    (r) => ctx(r, { [TOKENS]: tokens(fakeToken({ namespace: "other", serviceAccount: "example-app", podName: "my-csi-app", podUid: "0b8c8a1e-3c1f-4a52-9d39-5f1d2e6b7a10" })) }),
    "token namespace \"other\" does not match"
  ],
  [
    "token for another service account",
    (r) => ctx(r, { [TOKENS]: tokens(fakeToken({ namespace: "sandbox", serviceAccount: "admin", podName: "my-csi-app", podUid: "0b8c8a1e-3c1f-4a52-9d39-5f1d2e6b7a10" })) }),
    "token serviceaccount \"admin\" does not match"
  ],
  [
    "token bound to another pod",
    (r) => ctx(r, { [TOKENS]: tokens(fakeToken({ namespace: "sandbox", serviceAccount: "example-app", podName: "x", podUid: "ffffffff-0000-0000-0000-000000000000" })) }),
    "token is bound to pod uid"
  ],
  ["fs-group not a number", (r) => ctx(r, { "spiffe.csi.cert-manager.io/fs-group": "wheel" }), "must be an integer gid"],
  ["fs-group 0", (r) => ctx(r, { "spiffe.csi.cert-manager.io/fs-group": "0" }), "must be between 1 and 4294967294"],
  ["fs-group (gid_t)-1", (r) => ctx(r, { "spiffe.csi.cert-manager.io/fs-group": "4294967295" }), "must be between 1 and 4294967294"],
  ["not a request at all", () => "garbage", "not a NodePublishVolumeRequest"]
]

const unpublishCases: ReadonlyArray<readonly [string, unknown, string]> = [
  ["missing volume_id", { volume_id: "", target_path: "/var/lib/kubelet/x" }, "volume_id is required"],
  ["missing target_path", { volume_id: "csi-1", target_path: "" }, "target_path is required"],
  ["unsafe volume_id", { volume_id: "../../etc", target_path: "/var/lib/kubelet/x" }, "volume_id may only contain"]
]

const stack = driverLayer(testConfig()).pipe(Layer.provideMerge(nodeLayer))

const expectInvalid = (exit: Exit.Exit<unknown, CsiError>, fragment: string, secret: string) => {
  assert.isTrue(Exit.isFailure(exit))
  const e = Cause.squash((exit as Exit.Failure<unknown, CsiError>).cause) as CsiError
  assert.strictEqual(e.code, "InvalidArgument")
  assert.include(e.detail, fragment)
  assert.notInclude(e.detail, secret, "the token never appears in an error")
}

const nothingHappened = Effect.gen(function*() {
  const kube = yield* KubeClientMemory
  assert.strictEqual((yield* kube.creations).length, 0)
  assert.strictEqual((yield* kube.all(CertificateRequests)).length, 0)
  assert.strictEqual((yield* Ref.get((yield* VolumeStoreMemory).volumes)).size, 0)
  const mounts = yield* Ref.get((yield* MounterMemory).table)
  assert.deepStrictEqual([...mounts.values()].map((m) => m._tag), ["Tmpfs"])
})

describe("invalid NodePublishVolume requests", () => {
  for (const [name, make, fragment] of publishCases) {
    it.effect(`${name}: InvalidArgument and no side effect`, () =>
      Effect.gen(function*() {
        const plugin = yield* CsiPlugin
        const r = base()
        const raw = make(r)
        // The helper returns the token beside the request for assertions; kubelet sends no such field.
        const req = typeof raw === "object" && raw !== null ? { ...(raw as Req), token: undefined } : raw
        expectInvalid(yield* Effect.exit(plugin.nodePublishVolume(req)), fragment, r.token)
        yield* nothingHappened
      }).pipe(Effect.provide(stack)))
  }

  it.effect("reports every violation of one request at once, in field order", () =>
    Effect.gen(function*() {
      const plugin = yield* CsiPlugin
      const exit = yield* Effect.exit(plugin.nodePublishVolume({ volume_id: "", target_path: "", readonly: false, volume_context: {} }))
      const e = Cause.squash((exit as Exit.Failure<unknown, CsiError>).cause) as CsiError
      const at = (s: string) => e.detail.indexOf(s)
      assert.isTrue(at("volume_id") >= 0 && at("volume_id") < at("target_path") && at("target_path") < at("volume_capability"))
      assert.isTrue(at("readonly") > at("volume_capability") && at("csi.storage.k8s.io/ephemeral") > at("readonly"))
      yield* nothingHappened
    }).pipe(Effect.provide(stack)))
})

describe("invalid NodeUnpublishVolume requests", () => {
  for (const [name, req, fragment] of unpublishCases) {
    it.effect(`${name}: InvalidArgument`, () =>
      Effect.gen(function*() {
        const plugin = yield* CsiPlugin
        expectInvalid(yield* Effect.exit(plugin.nodeUnpublishVolume(req)), fragment, "never")
      }).pipe(Effect.provide(stack)))
  }
})

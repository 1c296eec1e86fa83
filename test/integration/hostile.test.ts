/**
 * Hostile NodePublishVolume / NodeUnpublishVolume requests over the real gRPC socket, with a real
 * tmpfs, real read-only bind mounts and real files under a scratch kubelet root; the memory API
 * server and the test signer stand in for kube-apiserver and cert-manager. For each request: its
 * exact gRPC code, and afterwards no CertificateRequest, nothing mounted, nothing on disk that the
 * request could have changed, and no volume in the driver's state (the source of every per-volume
 * metric series).
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Scope, Stream } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { promisify } from "node:util"
import { CertificateRequests } from "../../src/domain/KubeObjects.ts"
import * as EventRecorderLayers from "../../src/layers/EventRecorder.ts"
import * as KubeLayers from "../../src/layers/KubeClient.ts"
import type { DriverConfigShape } from "../../src/services/DriverConfig.ts"
import type { EventRecorder } from "../../src/services/EventRecorder.ts"
import type { KubeClient } from "../../src/services/KubeClient.ts"
import { VolumeManager } from "../../src/services/VolumeManager.ts"
import { testConfig } from "../support/DriverStack.ts"
import { realDriverLayer } from "../support/RealDriver.ts"
import { mountsUnder, scratchDir } from "../support/scratch.ts"
import { GrpcCallError, makeCsiClient } from "../support/grpcClient.ts"
import { fakeToken, publishRequest } from "../support/publish.ts"
import * as TestSigner from "../support/TestSigner.ts"

const isRoot = process.getuid?.() === 0
const execFileAsync = promisify(execFile)

/** gRPC status codes, as numbers on the wire. */
const OK = 0
const INVALID_ARGUMENT = 3
const FAILED_PRECONDITION = 9

const POD_UID = "0b8c8a1e-3c1f-4a52-9d39-5f1d2e6b7a10"

interface Node {
  readonly tmp: string
  readonly root: string
  readonly dataDir: string
  readonly config: DriverConfigShape
  readonly kube: KubeLayers.KubeClientMemoryShape
  readonly signer: TestSigner.TestSignerShape
  readonly ctx: Context.Context<KubeLayers.KubeClientMemory | TestSigner.TestSigner | KubeClient | EventRecorder>
}

/**
 * A scratch node: kubelet root and driver data root in a temp directory whose finalizer lazily
 * unmounts everything below it (newest first) and deletes it, also when a test fails.
 */
const makeNode = Effect.gen(function*() {
  const tmp = yield* scratchDir("csi-hostile-")
  const root = path.join(tmp, "kubelet")
  const dataRoot = path.join(tmp, "data")
  yield* Effect.promise(() => fs.mkdir(path.join(root, "pods"), { recursive: true }))
  const config = testConfig({ endpoint: `unix://${path.join(tmp, "csi.sock")}`, dataRoot, kubeletRootDir: root })
  const ctx = yield* Layer.build(Layer.merge(TestSigner.layer, EventRecorderLayers.layerMemory).pipe(Layer.provideMerge(KubeLayers.layerMemory)))
  const node: Node = {
    tmp,
    root,
    dataDir: path.join(dataRoot, "inmemfs"),
    config,
    kube: Context.get(ctx, KubeLayers.KubeClientMemory),
    signer: Context.get(ctx, TestSigner.TestSigner),
    ctx
  }
  return node
})

const startDriver = (node: Node) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const ctx = yield* Layer.buildWithScope(realDriverLayer(node.config, node.signer.ca.certPem).pipe(Layer.provide(Layer.succeedContext(node.ctx))), scope)
    const client = yield* makeCsiClient(node.config.endpoint)
    return { manager: Context.get(ctx, VolumeManager), client, stop: Scope.close(scope, undefined as never) }
  })

/** The target path the kubelet uses for volume `name` of pod `uid` under the node's root. */
const kubeletTarget = (node: Node, uid = POD_UID, name = "spiffe") => path.join(node.root, "pods", uid, "volumes", "kubernetes.io~csi", name, "mount")

const publishOf = (spec: Parameters<typeof publishRequest>[0]) => {
  const { token: _token, ...request } = publishRequest(spec)
  return request
}

const codeOf = (effect: Effect.Effect<unknown, GrpcCallError>) =>
  Effect.match(effect, { onFailure: (e) => ({ code: e.code, details: e.details }), onSuccess: () => ({ code: OK, details: "" }) })

/** Nothing of the driver's is left: no request, no mount but the driver's tmpfs, no volume data, no volume state. */
const assertNothingLeft = (node: Node, manager: VolumeManager["Service"], what: string) =>
  Effect.gen(function*() {
    assert.strictEqual((yield* node.kube.all(CertificateRequests)).length, 0, `${what}: CertificateRequests`)
    const mounts = yield* Effect.promise(() => mountsUnder(node.tmp))
    assert.deepStrictEqual(mounts.map((m) => m.mountPoint), [node.dataDir], `${what}: mounts`)
    assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(node.dataDir)), [], `${what}: volume data`)
    assert.deepStrictEqual(yield* manager.statuses, [], `${what}: volumes (metric series)`)
    assert.strictEqual(yield* manager.managed, 0, `${what}: renewal fibers`)
  })

/** A directory tree as path → content ("<dir>" for directories, "-> x" for symlinks), to prove it was not touched. */
const snapshot = (dir: string): Effect.Effect<Record<string, string>> =>
  Effect.promise(async () => {
    const out: Record<string, string> = {}
    const walk = async (p: string) => {
      const st = await fs.lstat(p)
      if (st.isSymbolicLink()) out[p] = `-> ${await fs.readlink(p)}`
      else if (st.isDirectory()) {
        out[p] = "<dir>"
        for (const e of await fs.readdir(p)) await walk(path.join(p, e))
      } else if (st.isFile()) out[p] = await fs.readFile(p, "utf8")
    }
    await walk(dir)
    return out
  })

interface Hostile {
  readonly name: string
  readonly code: number
  /** What the message must say. */
  readonly says: string
  /** Builds what is on disk and returns the request; `victim` is a directory the request must not change. */
  readonly setup: (node: Node, victim: string) => Effect.Effect<unknown>
}

const write = (p: string, content: string) =>
  Effect.promise(async () => {
    await fs.mkdir(path.dirname(p), { recursive: true })
    await fs.writeFile(p, content)
  })
const mkdir = (p: string) => Effect.promise(() => fs.mkdir(p, { recursive: true }))
const symlink = (to: string, at: string) =>
  Effect.promise(async () => {
    await fs.mkdir(path.dirname(at), { recursive: true })
    await fs.symlink(to, at)
  })

const HOSTILE: ReadonlyArray<Hostile> = [
  {
    name: "a target path with a NUL byte",
    code: INVALID_ARGUMENT,
    says: "NUL",
    setup: (node) => Effect.succeed(publishOf({ targetPath: `${kubeletTarget(node)}\0` }))
  },
  {
    name: "a target path outside the kubelet's directory",
    code: INVALID_ARGUMENT,
    says: "the kubelet's directory",
    setup: (node, victim) => Effect.succeed(publishOf({ targetPath: path.join(victim, "mount") }))
  },
  {
    name: "a target path with .. that leaves the kubelet's directory",
    code: INVALID_ARGUMENT,
    says: "the kubelet's directory",
    setup: (node) => Effect.succeed(publishOf({ targetPath: `${node.root}/pods/${POD_UID}/../../../victim/volumes/kubernetes.io~csi/spiffe/mount` }))
  },
  {
    name: "a target path in another pod's directory",
    code: INVALID_ARGUMENT,
    says: "not of volume_context",
    setup: (node) => Effect.succeed(publishOf({ targetPath: kubeletTarget(node, "11111111-2222-3333-4444-555555555555") }))
  },
  {
    name: "a target that is an existing regular file",
    code: FAILED_PRECONDITION,
    says: "is not a directory",
    setup: (node) => Effect.as(write(kubeletTarget(node), "a file of someone else"), publishOf({ targetPath: kubeletTarget(node) }))
  },
  {
    name: "a target that is an existing non-empty directory",
    code: FAILED_PRECONDITION,
    says: "not empty",
    setup: (node) => Effect.as(write(path.join(kubeletTarget(node), "data.txt"), "hidden by a mount"), publishOf({ targetPath: kubeletTarget(node) }))
  },
  {
    name: "a target that is a symlink to another directory",
    code: FAILED_PRECONDITION,
    says: "symbolic link",
    setup: (node, victim) => Effect.as(symlink(victim, kubeletTarget(node)), publishOf({ targetPath: kubeletTarget(node) }))
  },
  {
    name: "a target below a symlinked pod directory",
    code: FAILED_PRECONDITION,
    says: "symbolic link",
    setup: (node, victim) =>
      Effect.gen(function*() {
        yield* mkdir(path.join(victim, "volumes", "kubernetes.io~csi", "spiffe", "mount"))
        yield* symlink(victim, path.join(node.root, "pods", POD_UID))
        return publishOf({ targetPath: kubeletTarget(node) })
      })
  },
  {
    name: "a target below a symlinked volume directory",
    code: FAILED_PRECONDITION,
    says: "symbolic link",
    setup: (node, victim) =>
      Effect.gen(function*() {
        yield* mkdir(path.join(victim, "mount"))
        yield* symlink(victim, path.dirname(kubeletTarget(node)))
        return publishOf({ targetPath: kubeletTarget(node) })
      })
  },
  {
    name: "a volume context naming another pod than the token",
    code: INVALID_ARGUMENT,
    says: "token is bound to pod \"my-csi-app\"",
    setup: (node) =>
      Effect.succeed((() => {
        const r = publishOf({ targetPath: kubeletTarget(node) })
        return { ...r, volume_context: { ...r.volume_context, "csi.storage.k8s.io/pod.name": "someone-else" } }
      })())
  },
  {
    name: "a volume context naming another pod uid than the token (and its own target)",
    code: INVALID_ARGUMENT,
    says: "token is bound to pod uid",
    setup: (node) =>
      Effect.succeed((() => {
        const uid = "11111111-2222-3333-4444-555555555555"
        const r = publishOf({ targetPath: kubeletTarget(node, uid) })
        return { ...r, volume_context: { ...r.volume_context, "csi.storage.k8s.io/pod.uid": uid } }
      })())
  },
  {
    name: "a volume context naming another namespace and ServiceAccount than the token",
    code: INVALID_ARGUMENT,
    says: "token namespace",
    setup: (node) =>
      Effect.succeed((() => {
        const r = publishOf({ targetPath: kubeletTarget(node) })
        return {
          ...r,
          volume_context: { ...r.volume_context, "csi.storage.k8s.io/pod.namespace": "kube-system", "csi.storage.k8s.io/serviceAccount.name": "admin" }
        }
      })())
  },
  {
    name: "a token bound to another pod than the volume context",
    code: INVALID_ARGUMENT,
    says: "token is bound to pod",
    setup: (node) =>
      Effect.succeed((() => {
        const r = publishOf({ targetPath: kubeletTarget(node) })
        const token = fakeToken({ namespace: "sandbox", serviceAccount: "example-app", podName: "other-pod", podUid: "11111111-2222-3333-4444-555555555555" })
        return { ...r, volume_context: { ...r.volume_context, "csi.storage.k8s.io/serviceAccount.tokens": JSON.stringify({ "": { token } }) } }
      })())
  }
]

describe.skipIf(!isRoot)("hostile requests over real gRPC, tmpfs and bind mounts (needs root; skipped otherwise)", () => {
  for (const h of HOSTILE) {
    it.effect(`${h.name}: ${h.code === INVALID_ARGUMENT ? "INVALID_ARGUMENT" : "FAILED_PRECONDITION"}, nothing created, nothing touched`, () =>
      Effect.gen(function*() {
        const node = yield* makeNode
        const victim = path.join(node.tmp, "victim")
        yield* write(path.join(victim, "precious.txt"), "must survive")
        const request = yield* h.setup(node, victim)
        const before = yield* snapshot(node.tmp)
        const { client, manager } = yield* startDriver(node)

        const result = yield* codeOf(client.call("Node", "NodePublishVolume", request as Record<string, unknown>))
        assert.strictEqual(result.code, h.code, result.details)
        assert.include(result.details, h.says)
        yield* assertNothingLeft(node, manager, h.name)
        const after = yield* snapshot(node.tmp)
        // The driver's own data root and socket are not the request's doing; everything else is as it was.
        const ours = (p: string) => p.startsWith(path.join(node.tmp, "data")) || p === path.join(node.tmp, "csi.sock")
        const strip = (o: Record<string, string>) => Object.fromEntries(Object.entries(o).filter(([p]) => !ours(p)))
        assert.deepStrictEqual(strip(after), strip(before))
      }), { timeout: 30_000 })
  }

  for (const [reason, code, name, says] of [
    ["Unauthorized", 16, "UNAUTHENTICATED", "did not accept the token"],
    ["Forbidden", 7, "PERMISSION_DENIED", "not allowed"]
  ] as const) {
    it.effect(`a token the API server refuses (${reason}): ${name} with a message that says so, nothing left`, () =>
      Effect.gen(function*() {
        const node = yield* makeNode
        const { client, manager } = yield* startDriver(node)
        yield* node.kube.failNext("create", reason)
        const result = yield* codeOf(client.call("Node", "NodePublishVolume", publishOf({ targetPath: kubeletTarget(node) })))
        assert.strictEqual(result.code, code, result.details)
        assert.include(result.details, says)
        yield* assertNothingLeft(node, manager, reason)
        // The kubelet's retry with a token the API server accepts goes through.
        assert.strictEqual((yield* codeOf(client.call("Node", "NodePublishVolume", publishOf({ targetPath: kubeletTarget(node), serial: 1 })))).code, OK)
      }), { timeout: 30_000 })
  }

  it.effect("a mount that is not the driver's at the target is refused (FAILED_PRECONDITION) and survives", () =>
    Effect.gen(function*() {
      const node = yield* makeNode
      const target = kubeletTarget(node)
      yield* mkdir(target)
      yield* Effect.promise(() => execFileAsync("mount", ["-t", "tmpfs", "tmpfs", target]))
      yield* write(path.join(target, "theirs.txt"), "someone else's data")
      const { client, manager } = yield* startDriver(node)

      const result = yield* codeOf(client.call("Node", "NodePublishVolume", publishOf({ targetPath: target })))
      assert.strictEqual(result.code, FAILED_PRECONDITION, result.details)
      assert.include(result.details, "did not mount")
      assert.strictEqual((yield* node.kube.all(CertificateRequests)).length, 0)
      assert.deepStrictEqual(yield* manager.statuses, [])
      assert.strictEqual(yield* Effect.promise(() => fs.readFile(path.join(target, "theirs.txt"), "utf8")), "someone else's data")
    }), { timeout: 30_000 })

  it.effect("NodeUnpublishVolume of an unknown volume id succeeds and unmounts nothing (a tmpfs the driver never mounted keeps its data)", () =>
    Effect.gen(function*() {
      const node = yield* makeNode
      const target = kubeletTarget(node)
      yield* mkdir(target)
      yield* Effect.promise(() => execFileAsync("mount", ["-t", "tmpfs", "tmpfs", target]))
      yield* write(path.join(target, "theirs.txt"), "someone else's data")
      const { client, manager } = yield* startDriver(node)

      const result = yield* codeOf(client.call("Node", "NodeUnpublishVolume", { volume_id: "csi-unknown", target_path: target }))
      assert.strictEqual(result.code, OK, result.details)
      assert.strictEqual(yield* Effect.promise(() => fs.readFile(path.join(target, "theirs.txt"), "utf8")), "someone else's data")
      assert.isTrue((yield* Effect.promise(() => mountsUnder(target))).length === 1)
      assert.deepStrictEqual(yield* manager.statuses, [])
    }), { timeout: 30_000 })

  it.effect("a republish at another target path is refused (FAILED_PRECONDITION): no second mount, the first stays, unpublish leaves nothing", () =>
    Effect.gen(function*() {
      const node = yield* makeNode
      const { client, manager } = yield* startDriver(node)
      const first = kubeletTarget(node)
      const second = kubeletTarget(node, POD_UID, "other")
      yield* client.call("Node", "NodePublishVolume", publishOf({ targetPath: first }))
      const crt = yield* Effect.promise(() => fs.readFile(path.join(first, "tls.crt"), "utf8"))

      const result = yield* codeOf(client.call("Node", "NodePublishVolume", publishOf({ targetPath: second, serial: 1 })))
      assert.strictEqual(result.code, FAILED_PRECONDITION, result.details)
      assert.include(result.details, "already published at")
      assert.deepStrictEqual((yield* Effect.promise(() => mountsUnder(node.root))).map((m) => m.mountPoint), [first])
      assert.strictEqual(yield* Effect.promise(() => fs.readFile(path.join(first, "tls.crt"), "utf8")), crt)

      // An unpublish naming the other target touches nothing of the volume; the right one removes it all.
      assert.strictEqual((yield* codeOf(client.call("Node", "NodeUnpublishVolume", { volume_id: "csi-4d3c2b1a", target_path: second }))).code, OK)
      assert.deepStrictEqual((yield* Effect.promise(() => mountsUnder(node.root))).map((m) => m.mountPoint), [first])
      assert.strictEqual((yield* codeOf(client.call("Node", "NodeUnpublishVolume", { volume_id: "csi-4d3c2b1a", target_path: first }))).code, OK)
      yield* assertNothingLeft(node, manager, "after unpublish")
    }), { timeout: 30_000 })

  it.effect("a target that turns into a file while the first issuance waits: FAILED_PRECONDITION, the signed request and the files are undone, nothing resumes after a restart", () =>
    Effect.gen(function*() {
      const node = yield* makeNode
      const driver = yield* startDriver(node)
      const target = kubeletTarget(node)
      yield* node.signer.setMode({ _tag: "Hold" })
      const created = yield* node.kube.client.watch(CertificateRequests, { resourceVersion: yield* node.kube.resourceVersion }).pipe(
        Stream.filter((ev) => ev.type === "ADDED"),
        Stream.runHead,
        Effect.forkScoped({ startImmediately: true })
      )
      const done = yield* Deferred.make<{ code: number; details: string }>()
      yield* codeOf(driver.client.call("Node", "NodePublishVolume", publishOf({ targetPath: target }))).pipe(
        Effect.flatMap((r) => Deferred.succeed(done, r)),
        Effect.forkScoped
      )
      // The request exists (validation passed, issuance is waiting); now the target becomes a file.
      yield* Fiber.join(created)
      yield* write(target, "a file that appeared meanwhile")
      yield* node.signer.release

      const result = yield* Deferred.await(done)
      assert.strictEqual(result.code, FAILED_PRECONDITION, result.details)
      assert.include(result.details, "is not a directory")
      assert.strictEqual(yield* node.signer.signed, 1, "the request was signed before the mount failed")
      yield* assertNothingLeft(node, driver.manager, "after the failed publish")
      assert.strictEqual(yield* Effect.promise(() => fs.readFile(target, "utf8")), "a file that appeared meanwhile")

      yield* driver.stop
      const again = yield* startDriver(node)
      yield* assertNothingLeft(node, again.manager, "after a restart")
    }), { timeout: 30_000 })
})

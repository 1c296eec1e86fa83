/**
 * NodeUnpublishVolume never waits behind a republish of the same volume, over the real gRPC socket
 * with a real tmpfs and real bind mounts. The kubelet republishes every sync and gives each CSI call
 * two minutes; an unpublish queued behind a publish or renewal that waits on the API server or on
 * cert-manager would run into that deadline. The API server is the memory one behind a gate that
 * can hold every `create` (a stalled API server), and the test signer can hold signing.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Ref, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { CertificateRequests } from "../../src/domain/KubeObjects.ts"
import type { Resource } from "../../src/domain/KubeObjects.ts"
import * as EventRecorderLayers from "../../src/layers/EventRecorder.ts"
import * as KubeLayers from "../../src/layers/KubeClient.ts"
import { KubeClient } from "../../src/services/KubeClient.ts"
import type { CallOptions } from "../../src/services/KubeClient.ts"
import { VolumeManager } from "../../src/services/VolumeManager.ts"
import { testConfig } from "../support/DriverStack.ts"
import { mountsUnder, scratchDir } from "../support/scratch.ts"
import { type GrpcCallError, makeCsiClient } from "../support/grpcClient.ts"
import { realDriverLayer } from "../support/RealDriver.ts"
import { publishRequest } from "../support/publish.ts"
import * as TestSigner from "../support/TestSigner.ts"

const isRoot = process.getuid?.() === 0
const HOUR = 3_600_000
const OK = 0
const ABORTED = 10
const POD_UID = "0b8c8a1e-3c1f-4a52-9d39-5f1d2e6b7a10"
const VOLUME_ID = "csi-4d3c2b1a"

/** Holds every `create` while closed; `entered` completes when the first one is held. */
interface Gate {
  readonly closed: Ref.Ref<{ readonly open: Deferred.Deferred<void>; readonly entered: Deferred.Deferred<void> } | undefined>
}

const gatedKube = (gate: Gate) =>
  Layer.effect(
    KubeClient,
    Effect.gen(function*() {
      const memory = yield* KubeLayers.KubeClientMemory
      const create = <A>(resource: Resource<A>, namespace: string, body: unknown, options?: CallOptions) =>
        Effect.gen(function*() {
          const held = yield* Ref.get(gate.closed)
          if (held !== undefined) {
            yield* Deferred.succeed(held.entered, undefined)
            yield* Deferred.await(held.open)
          }
          return yield* memory.client.create(resource, namespace, body, options)
        })
      return KubeClient.of({ ...memory.client, create })
    })
  )

const setup = Effect.gen(function*() {
  const tmp = yield* scratchDir("csi-race-")
  const root = path.join(tmp, "kubelet")
  const dataRoot = path.join(tmp, "data")
  const config = testConfig({ endpoint: `unix://${path.join(tmp, "csi.sock")}`, dataRoot, kubeletRootDir: root })
  const gate: Gate = { closed: yield* Ref.make<Gate["closed"] extends Ref.Ref<infer X> ? X : never>(undefined) }
  const node = yield* Layer.build(Layer.merge(TestSigner.layer, EventRecorderLayers.layerMemory).pipe(Layer.provideMerge(KubeLayers.layerMemory)))
  const signer = Context.get(node, TestSigner.TestSigner)
  const scope = yield* Effect.scope
  const ctx = yield* Layer.buildWithScope(
    realDriverLayer(config, signer.ca.certPem, { issuanceKube: gatedKube(gate) }).pipe(Layer.provide(Layer.succeedContext(node))),
    scope
  )
  const client = yield* makeCsiClient(config.endpoint)
  const kube = Context.get(node, KubeLayers.KubeClientMemory)
  const manager = Context.get(ctx, VolumeManager)
  const target = path.join(root, "pods", POD_UID, "volumes", "kubernetes.io~csi", "spiffe", "mount")
  const { token: _t, ...first } = publishRequest({ targetPath: target })
  const republishOf = (serial: number) => {
    const { token: _t2, ...r } = publishRequest({ targetPath: target, serial })
    return r
  }
  const codeOf = (effect: Effect.Effect<unknown, GrpcCallError>) =>
    Effect.match(effect, { onFailure: (e) => ({ code: e.code, details: e.details }), onSuccess: () => ({ code: OK, details: "" }) })
  const publish = (request: Record<string, unknown>) => codeOf(client.call("Node", "NodePublishVolume", request))
  const unpublish = codeOf(client.call("Node", "NodeUnpublishVolume", { volume_id: VOLUME_ID, target_path: target }))
  const assertNothingLeft = (what: string) =>
    Effect.gen(function*() {
      assert.deepStrictEqual((yield* Effect.promise(() => mountsUnder(root))).map((m) => m.mountPoint), [], `${what}: mounts`)
      assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(path.join(dataRoot, "inmemfs"))), [], `${what}: volume data`)
      assert.strictEqual((yield* kube.all(CertificateRequests)).length, 0, `${what}: CertificateRequests`)
      assert.deepStrictEqual(yield* manager.statuses, [], `${what}: volumes`)
      assert.strictEqual(yield* manager.managed, 0, `${what}: renewal fibers`)
    })
  /** Completes when the next CertificateRequest is created. */
  const nextRequest = Effect.flatMap(kube.resourceVersion, (rv) =>
    kube.client.watch(CertificateRequests, { resourceVersion: rv }).pipe(
      Stream.filter((ev) => ev.type === "ADDED"),
      Stream.runHead,
      Effect.forkScoped({ startImmediately: true })
    ))
  return { gate, signer, first, republishOf, publish, unpublish, assertNothingLeft, nextRequest, target }
})

describe.skipIf(!isRoot)("NodeUnpublishVolume never waits behind a republish of the same volume (needs root; skipped otherwise)", () => {
  it.effect("republish and unpublish of one volume interleaved 30 times: every unpublish succeeds and leaves nothing", () =>
    Effect.gen(function*() {
      const t = yield* setup
      const outcomes = new Map<number, number>()
      for (let round = 0; round < 30; round++) {
        assert.strictEqual((yield* t.publish(t.first)).code, OK, `round ${round}: first publish`)
        // Three orders: republish answered before the unpublish is sent, both sent at once with the
        // republish first, both at once with the unpublish first.
        const republish = t.publish(t.republishOf(round + 1))
        const [re, un] = round % 3 === 0
          ? yield* Effect.all([republish, t.unpublish])
          : round % 3 === 1
          ? yield* Effect.all([republish, t.unpublish], { concurrency: "unbounded" })
          : yield* Effect.map(Effect.all([t.unpublish, republish], { concurrency: "unbounded" }), ([u, r]) => [r, u] as const)
        assert.strictEqual(un.code, OK, `round ${round}: unpublish: ${un.details}`)
        // A republish that ran before the unpublish succeeded; one that ran into it was aborted; one
        // after it published the volume anew. Nothing else.
        assert.include([OK, ABORTED], re.code, `round ${round}: republish: ${re.details}`)
        if (round % 3 === 0) assert.strictEqual(re.code, OK, `round ${round}: a republish before the unpublish`)
        outcomes.set(re.code, (outcomes.get(re.code) ?? 0) + 1)
        assert.strictEqual((yield* t.unpublish).code, OK, `round ${round}: final unpublish`)
        yield* t.assertNothingLeft(`round ${round}`)
      }
      process.stderr.write(`[republish-unpublish] republish outcomes over 30 rounds: ${JSON.stringify(Object.fromEntries(outcomes))}\n`)
    }), { timeout: 60_000 })

  it.effect("an unpublish while the first publish waits for its certificate, with the kubelet's republish behind it, returns at once; the waiting publish is ABORTED", () =>
    Effect.gen(function*() {
      const t = yield* setup
      yield* t.signer.setMode({ _tag: "Hold" })
      const created = yield* t.nextRequest
      const first = yield* Effect.forkChild(t.publish(t.first), { startImmediately: true })
      yield* Fiber.join(created)
      const republish = yield* Effect.forkChild(t.publish(t.republishOf(1)), { startImmediately: true })

      const un = yield* t.unpublish
      assert.strictEqual(un.code, OK, un.details)
      const firstResult = yield* Fiber.join(first)
      assert.strictEqual(firstResult.code, ABORTED, firstResult.details)
      yield* t.assertNothingLeft("after unpublish")
      assert.strictEqual(yield* t.signer.signed, 0, "the held request was never signed")
      // The republish either ran into the unpublish (ABORTED) or came after it, as a new publish that
      // waits for its certificate like the first did.
      yield* t.signer.release
      const republished = yield* Fiber.join(republish)
      assert.include([OK, ABORTED], republished.code, republished.details)
      assert.strictEqual((yield* t.unpublish).code, OK)
      yield* t.assertNothingLeft("after the last unpublish")
    }), { timeout: 30_000 })

  it.effect("an unpublish while a renewal holds the volume on a stalled API call, with a republish queued behind it, returns at once and leaves nothing", () =>
    Effect.gen(function*() {
      const t = yield* setup
      assert.strictEqual((yield* t.publish(t.first)).code, OK)
      const held = { open: yield* Deferred.make<void>(), entered: yield* Deferred.make<void>() }
      yield* Ref.set(t.gate.closed, held)
      // The renewal falls due and hangs in the API server's create while holding the volume.
      yield* TestClock.adjust((2 * HOUR) / 3 + 1)
      yield* Deferred.await(held.entered)
      const republish = yield* Effect.forkChild(t.publish(t.republishOf(1)), { startImmediately: true })

      const un = yield* t.unpublish
      assert.strictEqual(un.code, OK, un.details)
      yield* t.assertNothingLeft("after unpublish")
      assert.isFalse(yield* Deferred.isDone(held.open), "the stalled call never finished: the unpublish did not wait for it")
      // The republish ran into the unpublish (ABORTED) or came after it as a new publish, whose own
      // create the gate holds until the API server recovers.
      yield* Ref.set(t.gate.closed, undefined)
      yield* Deferred.succeed(held.open, undefined)
      const republished = yield* Fiber.join(republish)
      assert.include([OK, ABORTED], republished.code, republished.details)
      assert.strictEqual((yield* t.unpublish).code, OK)
      yield* t.assertNothingLeft("after the last unpublish")
    }), { timeout: 30_000 })
})

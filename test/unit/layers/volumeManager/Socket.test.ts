/**
 * What the volume manager hands each volume's Workload API socket: the socket path in the volume's
 * data directory, and an SVID stream that starts with the volume's files and pushes the full state
 * again at every renewal and CA change (TestClock drives the renewal), never another volume's;
 * which volumes get a socket (driver default, the per-volume attribute); the socket closing on
 * unpublish and coming back with a restarted driver. The socket itself is the memory twin here
 * (`layers/WorkloadApi.ts`); the grpc-js server has its own tests in test/integration/workload-api.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Queue, Redacted, Ref, Stream, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import { pemToConcatenatedDer } from "../../../../src/domain/Pem.ts"
import { WORKLOAD_API_KEY } from "../../../../src/domain/PublishRequest.ts"
import { WorkloadApiMemory } from "../../../../src/layers/WorkloadApi.ts"
import { VolumeStoreMemory } from "../../../../src/layers/VolumeStore.ts"
import { CaBundle } from "../../../../src/services/CaBundle.ts"
import { CsiPlugin } from "../../../../src/services/CsiPlugin.ts"
import type { DriverConfigShape } from "../../../../src/services/DriverConfig.ts"
import { VolumeManager } from "../../../../src/services/VolumeManager.ts"
import { VolumeStore } from "../../../../src/services/VolumeStore.ts"
import type { VolumeSvid } from "../../../../src/services/WorkloadApi.ts"
import { nodeLayer, startDriver, testConfig } from "../../../support/DriverStack.ts"
import { publishRequest, unpublishRequest } from "../../../support/publish.ts"
import type { PodSpec } from "../../../support/publish.ts"

const HOUR = 3_600_000
const RENEW_AT = (2 * HOUR) / 3
const pem = (body: string) => `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`
const CA_A = pem(Buffer.from("ca A").toString("base64"))
const CA_B = pem(Buffer.from("ca B").toString("base64"))

const POD_1: PodSpec = {}
const POD_2: PodSpec = { volumeId: "csi-second", podName: "second", podUid: "11111111-2222-4333-8444-555555555555", serviceAccount: "other-app" }
const VOL_1 = "csi-4d3c2b1a"
const VOL_2 = "csi-second"
const ON = testConfig({ workloadApi: { socketName: "spiffe.sock", byDefault: true } })

const request = (spec: PodSpec) => {
  const { token: _token, ...req } = publishRequest(spec)
  return req
}

/** A node and one driver on it with a CA bundle the test changes at will. */
const setup = (config: DriverConfigShape = ON) =>
  Effect.gen(function*() {
    const node = yield* Layer.build(nodeLayer)
    const ca = yield* SubscriptionRef.make(CA_A)
    const caBundle = Layer.succeed(CaBundle, CaBundle.of({ current: SubscriptionRef.get(ca), changes: SubscriptionRef.changes(ca).pipe(Stream.drop(1), Stream.changes) }))
    const start = () => startDriver(node, config, undefined, { caBundle })
    const driver = yield* start()
    const run = <A, E>(effect: Effect.Effect<A, E, any>, ctx: Context.Context<any> = driver.ctx) =>
      Effect.provide(effect, Context.merge(node, ctx)) as Effect.Effect<A, E>
    return { node, driver, start, run, setCa: (pem: string) => SubscriptionRef.set(ca, pem) }
  })

const publish = (spec: PodSpec) => Effect.flatMap(Effect.service(CsiPlugin), (p) => p.nodePublishVolume(request(spec)))
const unpublish = (spec: PodSpec) => Effect.flatMap(Effect.service(CsiPlugin), (p) => p.nodeUnpublishVolume(unpublishRequest(spec)))

/** The volume's socket stream, drained into a queue the test takes from (each take waits for a push). */
const pushes = (volumeId: string) =>
  Effect.gen(function*() {
    const api = yield* WorkloadApiMemory
    const served = yield* api.awaitServed(volumeId)
    const queue = yield* Queue.unbounded<VolumeSvid>()
    yield* Stream.runForEach(served.svid, (s) => Queue.offer(queue, s)).pipe(Effect.forkScoped)
    return { endpoint: served.endpoint, queue }
  })

/** The volume's files as the socket must carry them. */
const filesOf = (volumeId: string) =>
  Effect.gen(function*() {
    const mem = yield* VolumeStoreMemory
    const files = (yield* Ref.get(mem.volumes)).get(volumeId)!.files
    const der = (name: string, label: string) => Buffer.from(pemToConcatenatedDer(files.get(name)?.content ?? "", label)).toString("hex")
    return { chain: der("tls.crt", "CERTIFICATE"), key: der("tls.key", "PRIVATE KEY"), ca: der("ca.crt", "CERTIFICATE") }
  })

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")

/** Asserts that `s` is the full state of the volume's files now. */
const assertIsFiles = (s: VolumeSvid, files: { chain: string; key: string; ca: string }, what: string) => {
  assert.isAbove(files.chain.length, 0, what)
  assert.strictEqual(hex(s.chainDer), files.chain, `${what}: chain`)
  assert.strictEqual(hex(Redacted.value(s.keyDer)), files.key, `${what}: key`)
  assert.strictEqual(hex(s.bundleDer), files.ca, `${what}: bundle`)
}

const servedIds = Effect.flatMap(Effect.service(WorkloadApiMemory), (api) => Effect.map(SubscriptionRef.get(api.served), (m) => [...m.keys()].sort()))

describe("the Workload API socket of a volume", () => {
  it.effect("is in the volume's data directory with its fs-group, and starts with the volume's SVID", () =>
    Effect.gen(function*() {
      const { run } = yield* setup()
      yield* run(publish({ ...POD_1, attributes: { "spiffe.csi.cert-manager.io/fs-group": "2000" } }))
      const { endpoint, queue } = yield* run(pushes(VOL_1))
      const store = yield* run(Effect.service(VolumeStore))
      assert.deepStrictEqual(endpoint, { volumeId: VOL_1, socketPath: `${store.dataDir(VOL_1)}/spiffe.sock`, gid: 2000 })
      const first = yield* Queue.take(queue)
      assert.strictEqual(first.spiffeId, "spiffe://foo.bar/ns/sandbox/sa/example-app")
      assert.strictEqual(first.trustDomainId, "spiffe://foo.bar")
      assertIsFiles(first, yield* run(filesOf(VOL_1)), "at publish")
      assert.strictEqual(hex(first.bundleDer), Buffer.from("ca A").toString("hex"))
    }).pipe(Effect.scoped))

  it.effect("pushes the full state at renewal and on a CA change, and nothing when nothing changed", () =>
    Effect.gen(function*() {
      const { run, setCa } = yield* setup()
      yield* run(publish(POD_1))
      const { queue } = yield* run(pushes(VOL_1))
      const first = yield* Queue.take(queue)

      yield* TestClock.adjust(RENEW_AT)
      const renewed = yield* Queue.take(queue)
      assert.notStrictEqual(hex(renewed.chainDer), hex(first.chainDer), "a new certificate")
      assert.notStrictEqual(hex(Redacted.value(renewed.keyDer)), hex(Redacted.value(first.keyDer)), "a new key")
      assertIsFiles(renewed, yield* run(filesOf(VOL_1)), "at renewal")

      yield* setCa(CA_B)
      const rotated = yield* Queue.take(queue)
      assert.strictEqual(hex(rotated.chainDer), hex(renewed.chainDer), "the same certificate")
      assert.strictEqual(hex(rotated.bundleDer), Buffer.from("ca B").toString("hex"))
      assertIsFiles(rotated, yield* run(filesOf(VOL_1)), "after the CA change")

      // A CA pass over unchanged files pushes nothing; the next renewal is the next push.
      yield* run(Effect.flatMap(Effect.service(VolumeManager), (m) => m.refreshCaFiles))
      yield* TestClock.adjust(RENEW_AT)
      const again = yield* Queue.take(queue)
      assertIsFiles(again, yield* run(filesOf(VOL_1)), "at the second renewal")
      assert.notStrictEqual(hex(again.chainDer), hex(rotated.chainDer))
      assert.strictEqual(yield* Queue.size(queue), 0)
    }).pipe(Effect.scoped))

  it.effect("of one volume never carries another volume's SVID", () =>
    Effect.gen(function*() {
      const { run, setCa } = yield* setup()
      yield* run(publish(POD_1))
      yield* run(publish(POD_2))
      const one = yield* run(pushes(VOL_1))
      const two = yield* run(pushes(VOL_2))
      assert.notStrictEqual(one.endpoint.socketPath, two.endpoint.socketPath)
      const a = yield* Queue.take(one.queue)
      const b = yield* Queue.take(two.queue)
      assert.strictEqual(a.spiffeId, "spiffe://foo.bar/ns/sandbox/sa/example-app")
      assert.strictEqual(b.spiffeId, "spiffe://foo.bar/ns/sandbox/sa/other-app")
      assertIsFiles(a, yield* run(filesOf(VOL_1)), "volume 1")
      assertIsFiles(b, yield* run(filesOf(VOL_2)), "volume 2")
      // Each stream sees its own renewal and then the CA change, and nothing of the other volume.
      yield* TestClock.adjust(RENEW_AT)
      const renewals = [yield* Queue.take(one.queue), yield* Queue.take(two.queue)]
      yield* setCa(CA_B)
      const rotations = [yield* Queue.take(one.queue), yield* Queue.take(two.queue)]
      for (const [i, volumeId, id] of [[0, VOL_1, "example-app"], [1, VOL_2, "other-app"]] as const) {
        assert.strictEqual(renewals[i]!.spiffeId, `spiffe://foo.bar/ns/sandbox/sa/${id}`)
        assert.strictEqual(hex(renewals[i]!.chainDer), hex(rotations[i]!.chainDer), `${volumeId}: the CA change kept its own chain`)
        assertIsFiles(rotations[i]!, yield* run(filesOf(volumeId)), volumeId)
      }
      assert.strictEqual(yield* Queue.size(one.queue), 0)
      assert.strictEqual(yield* Queue.size(two.queue), 0)
    }).pipe(Effect.scoped))

  it.effect("closes on unpublish and comes back, with the volume's files, when the driver restarts", () =>
    Effect.gen(function*() {
      const { run, driver, start, node } = yield* setup()
      yield* run(publish(POD_1))
      yield* run(publish(POD_2))
      assert.deepStrictEqual(yield* run(servedIds), [VOL_1, VOL_2])
      yield* run(unpublish(POD_2))
      assert.deepStrictEqual(yield* run(servedIds), [VOL_1], "unpublish closed the second volume's socket")

      yield* driver.stop
      assert.deepStrictEqual(yield* run(servedIds), [], "a stopping driver closes every socket")
      const second = yield* start()
      const { queue } = yield* Effect.provide(pushes(VOL_1), Context.merge(node, second.ctx))
      assertIsFiles(yield* Queue.take(queue), yield* run(filesOf(VOL_1)), "after the restart, before any renewal")
      assert.deepStrictEqual(yield* Effect.provide(servedIds, node), [VOL_1])
      yield* second.stop
    }).pipe(Effect.scoped))
})

describe("which volumes get a socket", () => {
  it.effect("the attribute \"false\" turns it off for one volume; \"true\" turns it on where the driver's default is off", () =>
    Effect.gen(function*() {
      const { run } = yield* setup()
      yield* run(publish({ ...POD_1, attributes: { [WORKLOAD_API_KEY]: "false" } }))
      yield* run(publish(POD_2))
      assert.deepStrictEqual(yield* run(servedIds), [VOL_2])

      const off = yield* setup(testConfig({ workloadApi: { socketName: "agent.sock", byDefault: false } }))
      yield* off.run(publish(POD_1))
      yield* off.run(publish({ ...POD_2, attributes: { [WORKLOAD_API_KEY]: "true" } }))
      const served = yield* off.run(pushes(VOL_2))
      assert.isTrue(served.endpoint.socketPath.endsWith("/agent.sock"))
      assert.deepStrictEqual(yield* off.run(servedIds), [VOL_2])
    }).pipe(Effect.scoped))

  it.effect("an attribute that is not \"true\" or \"false\" is INVALID_ARGUMENT and creates nothing", () =>
    Effect.gen(function*() {
      const { run } = yield* setup()
      const error = yield* run(Effect.flip(publish({ ...POD_1, attributes: { [WORKLOAD_API_KEY]: "yes" } })))
      assert.strictEqual(error.code, "InvalidArgument")
      assert.include(error.detail, WORKLOAD_API_KEY)
      assert.deepStrictEqual(yield* run(servedIds), [])
      const mem = yield* run(Effect.service(VolumeStoreMemory))
      assert.strictEqual((yield* Ref.get(mem.volumes)).size, 0)
    }).pipe(Effect.scoped))
})

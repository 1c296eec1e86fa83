/**
 * IssuerConfig: the static layer, and the runtime issuance ConfigMap layer following one ConfigMap
 * on the memory API server (fallback order, invalid edits made loud, relist after a dropped or
 * expired watch, readiness). Watch retries run on TestClock; the memory API server's work is
 * awaited by yielding to the event loop, never by sleeping.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Layer, Logger, PubSub, Ref, Result, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { IssuerRef } from "../../../src/domain/IssuerRef.ts"
import { CertificateRequests, ConfigMaps, Events } from "../../../src/domain/KubeObjects.ts"
import * as EventRecorderLayers from "../../../src/layers/EventRecorder.ts"
import * as IssuerConfigLayers from "../../../src/layers/IssuerConfig.ts"
import { KubeClientMemory, layerMemory } from "../../../src/layers/KubeClient.ts"
import { VolumeStoreMemory } from "../../../src/layers/VolumeStore.ts"
import { CsiPlugin } from "../../../src/services/CsiPlugin.ts"
import { Issuance } from "../../../src/services/Issuance.ts"
import { IssuerConfig } from "../../../src/services/IssuerConfig.ts"
import { KubeClient } from "../../../src/services/KubeClient.ts"
import { driverLayer, nodeLayer, testConfig } from "../../support/DriverStack.ts"
import { publishRequest } from "../../support/publish.ts"
import type { PodSpec } from "../../support/publish.ts"
import { TestSigner } from "../../support/TestSigner.ts"

const NS = "cert-manager"
const NAME = "spiffe-issuer"
const SOURCE = { name: NAME, namespace: NS }
const STATIC: IssuerRef = { name: "static-ca", kind: "ClusterIssuer", group: "cert-manager.io" }
const RUNTIME: IssuerRef = { name: "runtime-ca", kind: "Issuer", group: "example.io" }
const OTHER: IssuerRef = { name: "other-ca", kind: "ClusterIssuer", group: "example.io" }

const cmData = (issuer: IssuerRef) => ({
  "issuer-name": issuer.name,
  "issuer-kind": issuer.kind ?? "",
  "issuer-group": issuer.group ?? ""
})

const configMap = (data: Record<string, string> | undefined, name = NAME) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name, namespace: NS },
  ...(data === undefined ? {} : { data })
})

interface LogLine {
  readonly level: string
  readonly message: string
}

/** Published after every captured log line and list call, so a test waits for a record instead of polling. */
const recorded = Effect.runSync(PubSub.unbounded<void>())

/** Completes once `holds` (a look at the captured logs and lists): now, or after a later record. */
const untilRecorded = (holds: () => boolean) =>
  Effect.scoped(Effect.gen(function*() {
    const subscription = yield* PubSub.subscribe(recorded)
    while (!holds()) yield* PubSub.take(subscription)
  }))

/** The ConfigMap layer over a fresh memory API server, with every log line and list call captured. */
const configMapStack = (fallback: IssuerRef | undefined, logs: Array<LogLine>, lists: Array<string> = []) =>
  IssuerConfigLayers.layerConfigMap(SOURCE, fallback).pipe(
    Layer.provide(countingClient(lists)),
    Layer.provide(EventRecorderLayers.layer("csi-driver-spiffe")),
    Layer.provideMerge(layerMemory),
    Layer.provide(
      Logger.layer([
        Logger.make(({ logLevel, message }) => {
          const parts = Array.isArray(message) ? message : [message]
          logs.push({ level: logLevel, message: parts.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join(" ") })
          PubSub.publishUnsafe(recorded, undefined)
        })
      ])
    )
  )

/** The memory API server's client, recording the options of every list call. */
const countingClient = (lists: Array<string>) =>
  Layer.effect(
    KubeClient,
    Effect.map(Effect.service(KubeClientMemory), (memory) =>
      KubeClient.of({
        ...memory.client,
        list: (resource, options) => Effect.suspend(() => {
          lists.push(JSON.stringify(options))
          PubSub.publishUnsafe(recorded, undefined)
          return memory.client.list(resource, options)
        })
      }))
  )

const current = Effect.flatMap(Effect.service(IssuerConfig), (c) => c.current)

/**
 * Waits on the service's `changes` stream (subscribed before the first look, so no change is missed)
 * until the current issuer is `expected`; never a poll.
 */
const currentIs = (expected: IssuerRef | undefined, what: string) =>
  Effect.scoped(Effect.gen(function*() {
    const issuers = yield* IssuerConfig
    const same = (c: IssuerRef | undefined) => JSON.stringify(c) === JSON.stringify(expected)
    const seen = yield* Deferred.make<void>()
    yield* issuers.changes.pipe(
      Stream.filter(same),
      Stream.take(1),
      Stream.runForEach(() => Deferred.succeed(seen, undefined)),
      Effect.forkScoped({ startImmediately: true })
    )
    if (!same(yield* issuers.current)) yield* Deferred.await(seen)
    assert.isTrue(same(yield* issuers.current), what)
  }))

const loaded = Effect.flatMap(Effect.service(IssuerConfig), (c) => c.loaded)
const awaitLoaded = Effect.flatMap(Effect.service(IssuerConfig), (c) => c.awaitLoaded)

/** Collects every element of `changes` from now on (subscribed before returning). */
const collectChanges = Effect.gen(function*() {
  const issuers = yield* IssuerConfig
  const seen = yield* Ref.make<ReadonlyArray<IssuerRef | undefined>>([])
  yield* issuers.changes.pipe(
    Stream.runForEach((c) => Ref.update(seen, (xs) => [...xs, c])),
    Effect.forkScoped({ startImmediately: true })
  )
  return seen
})

/** Lets the forked followers run to their next wait. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 100; i++) yield* Effect.yieldNow
})

const warningEvents = Effect.gen(function*() {
  const kube = yield* KubeClientMemory
  return (yield* kube.all(Events)).filter((e) => e.reason === "InvalidIssuerConfig")
})

/** Waits (on the memory API server's change feed, never a poll) for exactly one Warning Event. */
const oneWarningEvent = Effect.gen(function*() {
  const kube = yield* KubeClientMemory
  yield* kube.until(Effect.map(warningEvents, (es) => es.length >= 1))
  assert.strictEqual((yield* warningEvents).length, 1, "one Warning Event")
})

describe("issuerFromConfigMap", () => {
  it("reads all three keys", () => {
    const r = IssuerConfigLayers.issuerFromConfigMap({ metadata: { name: NAME, namespace: NS }, data: cmData(RUNTIME) } as never)
    assert.deepStrictEqual(Result.isSuccess(r) ? r.success : undefined, RUNTIME)
  })
  it.each([
    ["no data", undefined],
    ["a missing key", { "issuer-name": "a", "issuer-kind": "Issuer" }],
    ["an empty value", { "issuer-name": "a", "issuer-kind": "", "issuer-group": "cert-manager.io" }]
  ])("rejects %s", (_what, data) => {
    const r = IssuerConfigLayers.issuerFromConfigMap({ metadata: { name: NAME, namespace: NS }, ...(data === undefined ? {} : { data }) } as never)
    assert.isTrue(Result.isFailure(r))
  })
})

describe("layerStatic", () => {
  it.effect("serves the flags' issuer, is loaded at once, and has no changes", () =>
    Effect.gen(function*() {
      const issuers = yield* IssuerConfig
      assert.deepStrictEqual(yield* issuers.current, STATIC)
      assert.isTrue(yield* issuers.loaded)
    }).pipe(Effect.provide(IssuerConfigLayers.layerStatic(STATIC))))

  it.effect("serves no issuer when none is configured", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* current, undefined)
    }).pipe(Effect.provide(IssuerConfigLayers.layerStatic(undefined))))
})

describe("layerConfigMap", () => {
  it.effect("is not loaded until the ConfigMap has been listed once; an absent ConfigMap means the static issuer", () => {
    const logs: Array<LogLine> = []
    return Effect.gen(function*() {
      // The layer's first list fails (and its retries too), so it cannot have read anything yet.
      assert.isFalse(yield* loaded)
      yield* untilRecorded(() => logs.some((l) => l.message.includes("watch failed")))
      assert.isTrue(logs.some((l) => l.message.includes("watch failed")), "first list failed")
      assert.isFalse(yield* loaded)
      // The first reconnect delay of Schedules.watchReconnect.
      yield* TestClock.adjust("799 millis")
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
      assert.isFalse(yield* loaded)
      yield* TestClock.adjust("1 millis")
      // Loaded after the retried list: awaited on the layer's signal, then read back.
      yield* awaitLoaded
      assert.isTrue(yield* loaded)
      assert.deepStrictEqual(yield* current, STATIC)
    }).pipe(
      Effect.provide(configMapStack(STATIC, logs).pipe(Layer.provide(failFirstList)))
    )
  })

  it.effect("with no ConfigMap and no static issuer there is no issuer, but the source is loaded", () =>
    Effect.gen(function*() {
      yield* awaitLoaded
      assert.isTrue(yield* loaded)
      assert.strictEqual(yield* current, undefined)
    }).pipe(Effect.provide(configMapStack(undefined, []))))

  it.effect("a valid ConfigMap present at start-up wins over the static issuer", () =>
    Effect.gen(function*() {
      yield* awaitLoaded
      assert.isTrue(yield* loaded, "loaded")
      assert.deepStrictEqual(yield* current, RUNTIME)
    }).pipe(
      Effect.provide(configMapStack(STATIC, []).pipe(Layer.provide(seeded(configMap(cmData(RUNTIME))))))
    ))

  it.effect("follows creation, updates and deletion, with one `changes` element each", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      yield* awaitLoaded
      assert.isTrue(yield* loaded, "loaded")
      const seen = yield* collectChanges
      yield* kube.upsert(ConfigMaps, configMap(cmData(RUNTIME)))
      yield* currentIs(RUNTIME, "runtime issuer active")
      yield* kube.upsert(ConfigMaps, configMap(cmData(OTHER)))
      yield* currentIs(OTHER, "updated issuer active")
      yield* kube.client.delete(ConfigMaps, NS, NAME)
      yield* currentIs(STATIC, "static issuer after deletion")
      assert.deepStrictEqual(yield* Ref.get(seen), [RUNTIME, OTHER, STATIC])
    }).pipe(Effect.provide(configMapStack(STATIC, []))))

  it.effect("deletion with no static issuer leaves no issuer", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      yield* awaitLoaded
      assert.isTrue(yield* loaded, "loaded")
      assert.deepStrictEqual(yield* current, RUNTIME)
      yield* kube.client.delete(ConfigMaps, NS, NAME)
      yield* currentIs(undefined, "no issuer after deletion")
    }).pipe(Effect.provide(configMapStack(undefined, []).pipe(Layer.provide(seeded(configMap(cmData(RUNTIME))))))))

  it.effect.each([
    ["a missing key", { "issuer-name": "runtime-ca", "issuer-kind": "Issuer" }],
    ["an empty value", { "issuer-name": "", "issuer-kind": "Issuer", "issuer-group": "example.io" }],
    ["no data at all", undefined]
  ] as const)("an invalid edit (%s) falls back to the static issuer loudly: an error log and a Warning Event on the ConfigMap", ([_what, data]) => {
    const logs: Array<LogLine> = []
    return Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      yield* awaitLoaded
      assert.isTrue(yield* loaded, "loaded")
      assert.deepStrictEqual(yield* current, RUNTIME)
      const seen = yield* collectChanges
      const cm = yield* kube.upsert(ConfigMaps, configMap(data === undefined ? undefined : { ...data }))
      yield* currentIs(STATIC, "static issuer after the invalid edit")
      yield* oneWarningEvent
      const [ev] = yield* warningEvents
      assert.strictEqual(ev!.type, "Warning")
      assert.strictEqual(ev!.metadata.namespace, NS)
      assert.deepStrictEqual(
        [ev!.involvedObject.kind, ev!.involvedObject.name, ev!.involvedObject.namespace, ev!.involvedObject.uid],
        ["ConfigMap", NAME, NS, cm.metadata.uid]
      )
      assert.include(ev!.message, "issuer-name, issuer-kind and issuer-group")
      const errors = logs.filter((l) => l.level === "Error")
      assert.strictEqual(errors.length, 1)
      assert.include(errors[0]!.message, "invalid runtime issuance ConfigMap")
      assert.include(errors[0]!.message, `${NS}/${NAME}`)
      assert.deepStrictEqual(yield* Ref.get(seen), [STATIC])

      // Fixing the ConfigMap brings its issuer back.
      yield* kube.upsert(ConfigMaps, configMap(cmData(OTHER)))
      yield* currentIs(OTHER, "fixed ConfigMap's issuer")
    }).pipe(Effect.provide(configMapStack(STATIC, logs).pipe(Layer.provide(seeded(configMap(cmData(RUNTIME)))))))
  })

  it.effect("an invalid ConfigMap with no static issuer leaves no issuer", () =>
    Effect.gen(function*() {
      yield* awaitLoaded
      assert.isTrue(yield* loaded)
      assert.strictEqual(yield* current, undefined)
      yield* oneWarningEvent
    }).pipe(Effect.provide(configMapStack(undefined, []).pipe(Layer.provide(seeded(configMap({ "issuer-name": "x" })))))))

  it.effect("a dropped watch is followed by a relist, and the layer keeps following the ConfigMap", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      yield* awaitLoaded
      assert.isTrue(yield* loaded, "loaded")
      yield* kube.upsert(ConfigMaps, configMap(cmData(RUNTIME)))
      yield* currentIs(RUNTIME, "runtime issuer")
      // While the watch is down the ConfigMap changes; the relist must see it.
      yield* kube.dropWatches
      yield* kube.upsert(ConfigMaps, configMap(cmData(OTHER)))
      yield* currentIs(OTHER, "change made around the drop")
      yield* kube.dropWatches
      yield* kube.dropWatches
      yield* kube.client.delete(ConfigMaps, NS, NAME)
      yield* currentIs(STATIC, "deletion after two more drops")
      yield* kube.upsert(ConfigMaps, configMap(cmData(RUNTIME)))
      yield* currentIs(RUNTIME, "still following")
    }).pipe(Effect.provide(configMapStack(STATIC, []))))

  it.effect("a relist that finds nothing new publishes no change and repeats no Event", () => {
    const logs: Array<LogLine> = []
    const lists: Array<string> = []
    return Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      yield* awaitLoaded
      assert.isTrue(yield* loaded, "loaded")
      const seen = yield* collectChanges
      yield* kube.upsert(ConfigMaps, configMap(cmData(RUNTIME)))
      yield* currentIs(RUNTIME, "runtime issuer")
      // Each relist is visible as a list call; wait for it before dropping again.
      const relisted = (n: number) =>
        Effect.andThen(untilRecorded(() => lists.length >= n), Effect.sync(() => assert.isAtLeast(lists.length, n, `relist ${n}`)))
      // A watch that closes is resumed from its resourceVersion; one that expires (Gone) relists.
      const expire = Effect.andThen(kube.failNext("watch", "Gone", 1), kube.dropWatches)
      const base = lists.length
      yield* expire
      yield* relisted(base + 1)
      yield* settle
      yield* expire
      yield* relisted(base + 2)
      yield* settle
      assert.deepStrictEqual(yield* Ref.get(seen), [RUNTIME], "a relist of an unchanged ConfigMap is not a change")
      yield* kube.upsert(ConfigMaps, configMap({ "issuer-name": "broken" }))
      yield* currentIs(STATIC, "invalid edit followed after the relists")
      yield* oneWarningEvent
      // The invalid ConfigMap stays; reconnecting must not repeat the Event or the error.
      yield* expire
      yield* relisted(base + 3)
      yield* settle
      yield* expire
      yield* relisted(base + 4)
      yield* settle
      assert.strictEqual((yield* warningEvents).length, 1)
      assert.strictEqual(logs.filter((l) => l.level === "Error").length, 1)
      yield* kube.upsert(ConfigMaps, configMap(cmData(OTHER)))
      yield* currentIs(OTHER, "fixed after the relists")
      assert.deepStrictEqual(yield* Ref.get(seen), [RUNTIME, STATIC, OTHER])
      assert.deepStrictEqual([...new Set(lists)], [JSON.stringify({ namespace: NS, fieldSelector: `metadata.name=${NAME}` })])
    }).pipe(Effect.provide(configMapStack(STATIC, logs, lists)))
  })

  it.effect("an expired watch (Gone) relists at once; a failed one is retried on the schedule with a fresh list; both keep following", () => {
    const logs: Array<LogLine> = []
    const lists: Array<string> = []
    return Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      yield* awaitLoaded
      assert.isTrue(yield* loaded, "loaded")
      const count = (what: string) => logs.filter((l) => l.message.includes(what)).length
      // The next watch fails with Gone (history expired) and the one after that too: two relists, no wait.
      const before = lists.length
      yield* kube.failNext("watch", "Gone", 2)
      yield* kube.expireHistory
      yield* kube.dropWatches
      yield* untilRecorded(() => count("expired (410 Gone); relisting") >= 2 && lists.length >= before + 2)
      assert.isTrue(count("expired (410 Gone); relisting") === 2 && lists.length === before + 2, "two Gone, two relists")
      yield* kube.upsert(ConfigMaps, configMap(cmData(RUNTIME)))
      yield* currentIs(RUNTIME, "following after the relists")
      // Two failed watches: retried after 800 ms, then 1.6 s, each with a fresh list.
      yield* kube.failNext("watch", "Unavailable", 2)
      yield* kube.dropWatches
      yield* untilRecorded(() => count("watch failed (watch)") >= 1)
      assert.strictEqual(count("watch failed (watch)"), 1, "first failure logged")
      yield* kube.upsert(ConfigMaps, configMap(cmData(OTHER)))
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
      assert.deepStrictEqual(yield* current, RUNTIME, "no watch is open and the retry waits on the schedule")
      yield* TestClock.adjust("800 millis")
      yield* currentIs(OTHER, "ConfigMap read by the first relist")
      yield* untilRecorded(() => count("watch failed (watch)") >= 2)
      assert.strictEqual(count("watch failed (watch)"), 2, "second failure logged")
      yield* kube.client.delete(ConfigMaps, NS, NAME)
      yield* TestClock.adjust("1599 millis")
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
      assert.deepStrictEqual(yield* current, OTHER, "the schedule backs off: 1.6 s the second time")
      yield* TestClock.adjust("1 millis")
      yield* currentIs(STATIC, "ConfigMap gone, seen by the second relist")
      yield* kube.upsert(ConfigMaps, configMap(cmData(RUNTIME)))
      yield* currentIs(RUNTIME, "following again through the watch")
    }).pipe(Effect.provide(configMapStack(STATIC, logs, lists)))
  })

  it.effect("follows only its own ConfigMap: another one in the namespace is ignored", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      yield* awaitLoaded
      assert.isTrue(yield* loaded, "loaded")
      const seen = yield* collectChanges
      yield* kube.upsert(ConfigMaps, configMap(cmData(OTHER), "unrelated"))
      yield* kube.upsert(ConfigMaps, configMap({ "issuer-name": "broken" }, "unrelated-invalid"))
      yield* kube.client.delete(ConfigMaps, NS, "unrelated")
      // A marker change on the followed ConfigMap proves the earlier ones were seen and skipped.
      yield* kube.upsert(ConfigMaps, configMap(cmData(RUNTIME)))
      yield* currentIs(RUNTIME, "own ConfigMap followed")
      assert.deepStrictEqual(yield* Ref.get(seen), [RUNTIME])
      assert.strictEqual((yield* warningEvents).length, 0)
    }).pipe(Effect.provide(configMapStack(STATIC, []))))

  it.effect("a ConfigMap of the same name in another namespace is ignored", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      yield* awaitLoaded
      assert.isTrue(yield* loaded, "loaded")
      yield* kube.upsert(ConfigMaps, { ...configMap(cmData(OTHER)), metadata: { name: NAME, namespace: "elsewhere" } })
      yield* kube.upsert(ConfigMaps, configMap(cmData(RUNTIME)))
      yield* currentIs(RUNTIME, "own ConfigMap followed")
      yield* kube.client.delete(ConfigMaps, "elsewhere", NAME)
      yield* kube.upsert(ConfigMaps, configMap(cmData(RUNTIME)))
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      assert.deepStrictEqual(yield* current, RUNTIME)
    }).pipe(Effect.provide(configMapStack(STATIC, []))))
})

describe("layerFor", () => {
  it.effect("without a ConfigMap name it is the static layer: no API calls at all", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      yield* kube.upsert(ConfigMaps, configMap(cmData(RUNTIME)))
      // Any list or watch would fail now; the static layer makes none.
      yield* kube.failNext("list", "Forbidden", 10)
      yield* kube.failNext("watch", "Forbidden", 10)
      const issuers = yield* Effect.provide(Effect.service(IssuerConfig), IssuerConfigLayers.layerFor({ issuer: STATIC, runtimeIssuanceConfigMap: undefined }).pipe(Layer.provide(EventRecorderLayers.layer("csi-driver-spiffe"))))
      assert.deepStrictEqual(yield* issuers.current, STATIC)
      assert.isTrue(yield* issuers.loaded)
      const client = yield* KubeClient
      // The injected failures are all still queued.
      const e = yield* Effect.flip(client.list(ConfigMaps, { namespace: NS }))
      assert.strictEqual(e.reason, "Forbidden")
    }).pipe(Effect.provide(layerMemory)))

  it.effect("with a ConfigMap name it follows the ConfigMap, falling back to the flags' issuer", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      yield* awaitLoaded
      assert.isTrue(yield* loaded, "loaded")
      assert.deepStrictEqual(yield* current, STATIC)
      yield* kube.upsert(ConfigMaps, configMap(cmData(RUNTIME)))
      yield* currentIs(RUNTIME, "runtime issuer")
    }).pipe(
      Effect.provide(
        IssuerConfigLayers.layerFor({ issuer: STATIC, runtimeIssuanceConfigMap: SOURCE }).pipe(Layer.provide(EventRecorderLayers.layer("csi-driver-spiffe")), Layer.provideMerge(layerMemory))
      )
    ))
})

// Layers that prepare the memory API server before the IssuerConfig layer is built on it.

/** Stores the object first. */
function seeded(object: unknown) {
  return Layer.effectDiscard(Effect.flatMap(Effect.service(KubeClientMemory), (kube) => kube.upsert(ConfigMaps, object).pipe(Effect.orDie))).pipe(
    Layer.provideMerge(layerMemory)
  )
}

/** Makes the first list fail. */
const failFirstList = Layer.effectDiscard(Effect.flatMap(Effect.service(KubeClientMemory), (kube) => kube.failNext("list", "Unavailable", 1))).pipe(
  Layer.provideMerge(layerMemory)
)

describe("driver with the runtime issuer", () => {
  const config = testConfig({ issuer: undefined, runtimeIssuanceConfigMap: SOURCE })
  // One IssuerConfig (memoized by reference) serves the driver and the test.
  const issuerLayer = IssuerConfigLayers.layerFor(config).pipe(Layer.provide(EventRecorderLayers.layer("csi-driver-spiffe")))
  const driverStack = driverLayer(config, undefined, { issuerConfig: issuerLayer }).pipe(Layer.merge(issuerLayer), Layer.provideMerge(nodeLayer))
  const request = (spec: PodSpec = {}) => {
    const { token: _token, ...req } = publishRequest(spec)
    return req
  }
  const publish = (spec: PodSpec = {}) => Effect.flatMap(Effect.service(CsiPlugin), (p) => p.nodePublishVolume(request(spec)))
  const requests = Effect.flatMap(Effect.service(KubeClientMemory), (kube) => kube.all(CertificateRequests))

  it.effect("no issuer at all: publish fails with the clear error and creates nothing, then succeeds once the ConfigMap appears", () =>
    Effect.gen(function*() {
      const plugin = yield* CsiPlugin
      // What the probe still waits for once the driver is built: the node's requests listed, the ConfigMap read.
      yield* (yield* Issuance).awaitSynced
      yield* (yield* IssuerConfig).awaitLoaded
      assert.isTrue((yield* plugin.probe).ready, "ready once the ConfigMap was read")
      const e = yield* Effect.flip(publish())
      assert.strictEqual(e._tag, "CsiError")
      assert.strictEqual(e.code, "Unavailable")
      assert.include(e.detail, "no issuerRef is currently active")
      assert.strictEqual((yield* requests).length, 0)
      assert.strictEqual((yield* Ref.get((yield* VolumeStoreMemory).volumes)).size, 0)

      const kube = yield* KubeClientMemory
      yield* kube.upsert(ConfigMaps, configMap(cmData(RUNTIME)))
      yield* currentIs(RUNTIME, "runtime issuer active")
      yield* publish()
      const crs = yield* requests
      assert.strictEqual(crs.length, 1)
      assert.deepStrictEqual(crs[0]!.spec.issuerRef, RUNTIME)
    }).pipe(Effect.provide(driverStack)))

  it.effect("the current runtime issuer is used for new requests and for renewals", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      yield* kube.upsert(ConfigMaps, configMap(cmData(RUNTIME)))
      yield* currentIs(RUNTIME, "runtime issuer active")
      yield* publish()
      assert.deepStrictEqual((yield* requests).map((cr) => cr.spec.issuerRef), [RUNTIME])

      yield* kube.upsert(ConfigMaps, configMap(cmData(OTHER)))
      yield* currentIs(OTHER, "switched issuer")
      // A switch re-issues nothing by itself.
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
      assert.strictEqual((yield* kube.creations).length, 1)

      yield* TestClock.adjust((2 * 3_600_000) / 3)
      const signer = yield* TestSigner
      yield* signer.awaitSigned(2)
      assert.strictEqual(yield* signer.signed, 2, "renewed")
      const creations = yield* kube.creations
      assert.strictEqual(creations.length, 2)
      const renewal = (yield* requests).find((cr) => cr.metadata.name === creations[1]!.name)
      assert.deepStrictEqual(renewal!.spec.issuerRef, OTHER)

      // A new volume after the switch uses the new issuer too.
      yield* publish({ volumeId: "csi-other", podName: "other", podUid: "22222222-3333-4444-8555-666666666666" })
      const third = (yield* kube.creations)[2]!
      const cr = (yield* requests).find((c) => c.metadata.name === third.name)
      assert.deepStrictEqual(cr!.spec.issuerRef, OTHER)
    }).pipe(Effect.provide(driverStack)))
})

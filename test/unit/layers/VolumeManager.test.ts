/**
 * The volume manager's renewal timing and bookkeeping over a scripted Issuance: each attempt is
 * announced on a queue (the test waits on it, never polls), its outcome is what the test set, and
 * the certificate's lifetime is exact. Time is TestClock's and every policy jitter is 0, so each
 * retry instant is asserted to the millisecond.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Effect, Exit, Layer, PubSub, Queue, Redacted, Ref, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { PublishRequest } from "../../../src/domain/PublishRequest.ts"
import * as CaBundleLayers from "../../../src/layers/CaBundle.ts"
import { renderVolumeGauges } from "../../../src/layers/DriverMetrics.ts"
import * as EventRecorderLayers from "../../../src/layers/EventRecorder.ts"
import * as MounterLayers from "../../../src/layers/Mounter.ts"
import * as VolumeManagerLayers from "../../../src/layers/VolumeManager.ts"
import * as VolumeStoreLayers from "../../../src/layers/VolumeStore.ts"
import * as WorkloadApiLayers from "../../../src/layers/WorkloadApi.ts"
import { DriverConfig } from "../../../src/services/DriverConfig.ts"
import { Issuance, IssuanceError } from "../../../src/services/Issuance.ts"
import type { IssuanceFailure } from "../../../src/services/Issuance.ts"
import { VolumeManager } from "../../../src/services/VolumeManager.ts"
import { VolumeStore } from "../../../src/services/VolumeStore.ts"
import { testConfig } from "../../support/DriverStack.ts"

const HOUR = 3_600_000
/** The scripted certificates live one hour from their issuance; renewal is due at 2/3 of that. */
const RENEW_AT = (2 * HOUR) / 3

interface Attempt {
  readonly at: number
  readonly volumeId: string
  readonly token: string | undefined
}

/** The Issuance the test scripts: `outcome` decides every attempt; `attempts` announces each one. */
class Script extends Context.Service<Script, {
  readonly attempts: Queue.Queue<Attempt>
  readonly outcome: Ref.Ref<"Sign" | IssuanceFailure>
  readonly reconnect: Effect.Effect<void>
}>()("test/unit/layers/VolumeManager/Script") {}

const scripted = Layer.effectContext(Effect.gen(function*() {
  const attempts = yield* Queue.unbounded<Attempt>()
  const outcome = yield* Ref.make<"Sign" | IssuanceFailure>("Sign")
  const reconnected = yield* PubSub.unbounded<void>()
  let serial = 0
  const issuance = Issuance.of({
    issue: (input) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        yield* Queue.offer(attempts, { at: now, volumeId: input.volumeId, token: input.token === undefined ? undefined : Redacted.value(input.token) })
        const o = yield* Ref.get(outcome)
        if (o !== "Sign") return yield* new IssuanceError({ reason: o, detail: `scripted ${o}` })
        serial += 1
        return { chainPem: `chain ${serial}`, keyPem: Redacted.make(`key ${serial}`), notBefore: now, notAfter: now + HOUR, serialNumber: String(serial), requestName: `r${serial}` }
      }),
    forget: () => Effect.void,
    synced: Effect.succeed(true),
    awaitSynced: Effect.void,
    reconnected: Stream.fromPubSub(reconnected)
  })
  return Context.make(Issuance, issuance).pipe(
    Context.add(Script, Script.of({ attempts, outcome, reconnect: Effect.asVoid(PubSub.publish(reconnected, undefined)) }))
  )
}))

const stack = VolumeManagerLayers.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(
    DriverConfig.layer(testConfig()),
    VolumeStoreLayers.layerMemory("data/inmemfs"),
    MounterLayers.layerMemory,
    CaBundleLayers.layerNone,
    EventRecorderLayers.layerMemory,
    WorkloadApiLayers.layerNone,
    scripted
  ))
)

const POD_UID = "0b8c8a1e-3c1f-4a52-9d39-5f1d2e6b7a10"

const request = (volumeId: string, token: string): PublishRequest => ({
  volumeId,
  targetPath: `/var/lib/kubelet/pods/${POD_UID}/volumes/kubernetes.io~csi/${volumeId}/mount`,
  podName: "my-csi-app",
  podNamespace: "sandbox",
  podUid: POD_UID,
  serviceAccount: "example-app",
  token: { token: Redacted.make(token), namespace: "sandbox", serviceAccount: "example-app", podName: "my-csi-app", podUid: POD_UID, expiresAt: undefined },
  fsGroup: undefined
})

const publish = (volumeId: string, token = "token-1") => Effect.flatMap(Effect.service(VolumeManager), (m) => m.publish(request(volumeId, token)))

const nextAttempt = Effect.flatMap(Effect.service(Script), (s) => Queue.take(s.attempts))

const setOutcome = (o: "Sign" | IssuanceFailure) => Effect.flatMap(Effect.service(Script), (s) => Ref.set(s.outcome, o))

/** Moves the clock to `at` exactly (absolute, from TestClock's 0). */
const advanceTo = (at: number) => Effect.flatMap(Clock.currentTimeMillis, (now) => TestClock.adjust(at - now))

/** Moves the clock to `at` and takes the attempt that must come exactly then. */
const expectAttemptAt = (at: number, what: string) =>
  Effect.gen(function*() {
    yield* advanceTo(at)
    const a = yield* nextAttempt
    assert.strictEqual(a.at, at, what)
    return a
  })

/**
 * Asserts that the volume's loop has scheduled its retry at exactly `at` and is asleep. The status
 * is written just before the loop sleeps; the loop needs a few scheduler turns (no clock time) to
 * get there, and moving the clock before it sleeps would shift its wake-up.
 */
const expectRetryAt = (volumeId: string, at: number, what: string) =>
  Effect.gen(function*() {
    const manager = yield* VolumeManager
    let seen: number | undefined
    for (let i = 0; i < 200 && seen !== at; i++) {
      yield* Effect.yieldNow
      seen = (yield* manager.status(volumeId))?.retryAt
    }
    for (let i = 0; i < 5; i++) yield* Effect.yieldNow
    assert.strictEqual(seen, at, what)
  })

describe("renewal backoff", () => {
  it.effect("never reaches past the certificate's expiry, and retries on the short schedule once it has expired", () =>
    Effect.gen(function*() {
      yield* publish("v1")
      assert.strictEqual((yield* nextAttempt).at, 0)
      yield* setOutcome("Failed")
      // 30 s doubling to 5 min from the renewal at 40 min: 40:00, 40:30, 41:30, 43:30, 47:30, 52:30, 57:30 …
      let at = RENEW_AT
      yield* expectAttemptAt(at, "renewal due")
      for (const delay of [30_000, 60_000, 120_000, 240_000, 300_000, 300_000]) {
        yield* expectRetryAt("v1", at + delay, `failure retry ${delay} ms after ${at}`)
        at += delay
        yield* expectAttemptAt(at, `failed attempt at ${at}`)
      }
      // … and the next 5 min step (1:02:30) would pass NotAfter (1:00:00): the retry is at NotAfter.
      assert.strictEqual(at, HOUR - 150_000)
      yield* expectRetryAt("v1", HOUR, "the retry is at expiry, not 2.5 min after it")
      yield* expectAttemptAt(HOUR, "attempt at expiry")
      // Expired: 1 s, 2 s, 4 s, 8 s, then every 10 s.
      at = HOUR
      for (const delay of [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]) {
        yield* expectRetryAt("v1", at + delay, `short retry ${delay} ms after ${at}`)
        at += delay
        yield* expectAttemptAt(at, `expired retry at ${at}`)
      }
      yield* setOutcome("Sign")
      yield* expectRetryAt("v1", at + 10_000, "still every 10 s")
      at += 10_000
      yield* expectAttemptAt(at, "recovers on the short schedule")
      const manager = yield* VolumeManager
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow
      assert.strictEqual((yield* manager.status("v1"))?.notAfter, at + HOUR)
    }).pipe(Effect.provide(stack)), { timeout: 10_000 })

  it.effect("a republish with a fresh token wakes a renewal that waits on its backoff; the same token does not", () =>
    Effect.gen(function*() {
      yield* publish("v1")
      yield* nextAttempt
      yield* setOutcome("Failed")
      yield* expectAttemptAt(RENEW_AT, "first renewal")
      yield* expectRetryAt("v1", RENEW_AT + 30_000, "30 s backoff")
      yield* setOutcome("Sign")
      yield* TestClock.adjust(5_000)
      // The kubelet's republish, 5 s into a 30 s backoff: the renewal tries at once, with the new token.
      yield* publish("v1", "token-2")
      assert.deepStrictEqual(yield* nextAttempt, { at: RENEW_AT + 5_000, volumeId: "v1", token: "token-2" })
      yield* setOutcome("Failed")
      const next = RENEW_AT + 5_000 + RENEW_AT
      yield* expectAttemptAt(next, "the next renewal, 2/3 into the new certificate")
      yield* expectRetryAt("v1", next + 30_000, "a fresh 30 s backoff")
      yield* publish("v1", "token-2")
      yield* TestClock.adjust(29_999)
      const script = yield* Script
      assert.strictEqual(yield* Queue.size(script.attempts), 0, "the same token again wakes nothing")
      yield* TestClock.adjust(1)
      assert.strictEqual((yield* nextAttempt).at, next + 30_000)
    }).pipe(Effect.provide(stack)), { timeout: 10_000 })

  it.effect("a recovered API connection wakes every renewal waiting on a backoff", () =>
    Effect.gen(function*() {
      yield* publish("v1")
      yield* publish("v2")
      yield* nextAttempt
      yield* nextAttempt
      yield* setOutcome("Api")
      yield* advanceTo(RENEW_AT)
      yield* nextAttempt
      yield* nextAttempt
      yield* expectRetryAt("v1", RENEW_AT + 30_000, "v1 backs off")
      yield* expectRetryAt("v2", RENEW_AT + 30_000, "v2 backs off")
      yield* setOutcome("Sign")
      yield* TestClock.adjust(1_234)
      yield* Effect.flatMap(Effect.service(Script), (s) => s.reconnect)
      const woken = [yield* nextAttempt, yield* nextAttempt]
      assert.deepStrictEqual(woken.map((a) => a.at), [RENEW_AT + 1_234, RENEW_AT + 1_234])
      assert.deepStrictEqual(woken.map((a) => a.volumeId).sort(), ["v1", "v2"])
    }).pipe(Effect.provide(stack)), { timeout: 10_000 })

  it.effect("the first renewal that succeeds after failures wakes the others", () =>
    Effect.gen(function*() {
      yield* publish("v1")
      yield* nextAttempt
      yield* TestClock.adjust(20_000)
      yield* publish("v2")
      yield* nextAttempt
      yield* setOutcome("Failed")
      // v1 is due at 40:00 and fails (retry 40:30); v2 is due at 40:20 and fails (retry 40:50).
      yield* expectAttemptAt(RENEW_AT, "v1 renewal")
      yield* expectRetryAt("v1", RENEW_AT + 30_000, "v1 backs off")
      yield* expectAttemptAt(RENEW_AT + 20_000, "v2 renewal")
      yield* expectRetryAt("v2", RENEW_AT + 50_000, "v2 backs off")
      yield* setOutcome("Sign")
      // v1's retry at 40:30 is signed: v2 need not wait until 40:50.
      yield* advanceTo(RENEW_AT + 30_000)
      const [v1, v2] = [yield* nextAttempt, yield* nextAttempt]
      assert.deepStrictEqual([v1.volumeId, v1.at], ["v1", RENEW_AT + 30_000])
      assert.deepStrictEqual([v2.volumeId, v2.at], ["v2", RENEW_AT + 30_000])
    }).pipe(Effect.provide(stack)), { timeout: 10_000 })
})

describe("first publish", () => {
  it.effect("30 failed first publishes leave no entry, no metric series and no files", () =>
    Effect.gen(function*() {
      const manager = yield* VolumeManager
      const store = yield* VolumeStore
      yield* setOutcome("Denied")
      for (let i = 0; i < 30; i++) {
        const exit = yield* Effect.exit(publish(`failed-${i}`))
        assert.isTrue(Exit.isFailure(exit), `publish ${i} fails`)
        yield* nextAttempt
      }
      assert.deepStrictEqual(yield* manager.statuses, [])
      assert.strictEqual(yield* manager.managed, 0)
      const gauges = renderVolumeGauges("test-node", yield* manager.statuses)
      assert.notInclude(gauges, "csi_spiffe_volume_ready{")
      assert.include(gauges, 'csi_spiffe_managed_volumes{node="test-node"} 0')
      assert.deepStrictEqual(yield* store.list, [])
      // A later publish of one of them works from a clean slate.
      yield* setOutcome("Sign")
      yield* publish("failed-3")
      assert.strictEqual((yield* manager.status("failed-3"))?.issued, true)
      assert.strictEqual((yield* manager.statuses).length, 1)
    }).pipe(Effect.provide(stack)), { timeout: 10_000 })
})

/**
 * The renewal fiber's timing (`layers/volumeManager/Renewal.ts`) over a scripted Issuance: every
 * retry instant of the backoff to the millisecond, and each kind of wake-up (a fresh token, the API
 * connection back, another volume renewed after failures) ending a backoff at once.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Queue } from "effect"
import { TestClock } from "effect/testing"
import { VolumeManager } from "../../../../src/services/VolumeManager.ts"
import { advanceTo, expectAttemptAt, expectRetryAt, HOUR, nextAttempt, publish, RENEW_AT, Script, setOutcome, stack } from "../../../support/ScriptedIssuance.ts"

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

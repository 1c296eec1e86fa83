/**
 * The named Schedules, stepped by hand with explicit instants (no clock): the delays each one gives
 * and, for renewals, the rules that tie a failure's backoff to the certificate's expiry.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Pull, Schedule } from "effect"
import { defaultPolicy } from "../../../src/domain/Renewal.ts"
import type { RenewalAttempt } from "../../../src/domain/Schedules.ts"
import * as Schedules from "../../../src/domain/Schedules.ts"

const exact = { ...defaultPolicy, jitter: 0, failureJitter: 0 }

/** The delays (ms) a schedule gives for `inputs` at `instants`. */
const delays = <I>(schedule: Schedule.Schedule<unknown, I>, steps: ReadonlyArray<readonly [number, I]>) =>
  Effect.gen(function*() {
    const step = yield* Schedule.toStep(schedule)
    const out: Array<number> = []
    for (const [now, input] of steps) {
      const [, delay] = yield* Effect.orDie(step(now, input))
      out.push(Duration.toMillis(delay))
    }
    return out
  })

/** Every delay (ms) a finite schedule gives, stepped once a millisecond, until it is done (at most `limit`). */
const allDelays = (schedule: Schedule.Schedule<unknown>, limit = 50) =>
  Effect.gen(function*() {
    const step = yield* Schedule.toStep(schedule)
    const out: Array<number> = []
    for (let now = 0; now < limit; now++) {
      const delay = yield* step(now, undefined).pipe(
        Effect.map(([, d]) => Duration.toMillis(d)),
        Pull.catchDone(() => Effect.succeed(undefined)),
        Effect.orDie
      )
      if (delay === undefined) return out
      out.push(delay)
    }
    return out
  })

const failed = (notAfter: number | undefined, sample = 0): RenewalAttempt => ({ kind: "Failed", notAfter, sample })
const notReady = (notAfter: number | undefined): RenewalAttempt => ({ kind: "NotReady", notAfter, sample: 0 })

describe("Schedules.renewalRetry", () => {
  it.effect("failures: 30 s doubling to 5 min while the certificate stays valid past the retry", () =>
    Effect.gen(function*() {
      const far = 10 * 3_600_000
      assert.deepStrictEqual(
        yield* delays(Schedules.renewalRetry(exact), [0, 1, 2, 3, 4, 5].map((i) => [i * 1_000, failed(far)] as const)),
        [30_000, 60_000, 120_000, 240_000, 300_000, 300_000]
      )
    }))

  it.effect("a failure's delay never reaches past NotAfter: the retry is at NotAfter exactly", () =>
    Effect.gen(function*() {
      // 60 s certificate, renewal at 40 s: 30 s would be at 70 s; the retry is at 60 s.
      assert.deepStrictEqual(yield* delays(Schedules.renewalRetry(exact), [[40_000, failed(60_000)]]), [20_000])
    }))

  it.effect("once expired, every retry is on the short schedule: 1 s doubling to 10 s", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(
        yield* delays(Schedules.renewalRetry(exact), [60_000, 61_000, 63_000, 67_000, 75_000, 85_000].map((t) => [t, failed(60_000)] as const)),
        [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]
      )
    }))

  it.effect("not ready retries on the short schedule and does not advance the failure backoff", () =>
    Effect.gen(function*() {
      const far = 10 * 3_600_000
      assert.deepStrictEqual(
        yield* delays(Schedules.renewalRetry(exact), [[0, failed(far)], [1, notReady(far)], [2, notReady(far)], [3, failed(far)], [4, failed(undefined)]]),
        [30_000, 1_000, 2_000, 60_000, 120_000]
      )
    }))

  it.effect("the failure jitter adds up to 50 %, still clamped to NotAfter", () =>
    Effect.gen(function*() {
      const jittered = { ...exact, failureJitter: 0.5 }
      assert.deepStrictEqual(yield* delays(Schedules.renewalRetry(jittered), [[0, failed(3_600_000, 0.5)]]), [37_500])
      assert.deepStrictEqual(yield* delays(Schedules.renewalRetry(jittered), [[0, failed(40_000, 0.9)]]), [40_000])
    }))
})

describe("the reconnect and retry schedules", () => {
  it.effect("watchReconnect: 800 ms doubling to 30 s (client-go's reflector)", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(
        yield* delays(Schedules.watchReconnect, Array.from({ length: 8 }, (_, i) => [i, undefined] as const)),
        [800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000]
      )
    }))

  it.effect("reconcileRetry: 50 ms doubling to 60 s", () =>
    Effect.gen(function*() {
      const got = yield* delays(Schedules.reconcileRetry, Array.from({ length: 13 }, (_, i) => [i, undefined] as const))
      assert.deepStrictEqual(got.slice(0, 4), [50, 100, 200, 400])
      assert.deepStrictEqual(got.slice(-2), [60_000, 60_000])
    }))

  it.effect("conflictRetry: five retries, 10 ms doubling, then the key goes back to its queue", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* allDelays(Schedules.conflictRetry), [10, 20, 40, 80, 160])
    }))

  /** Capped exponential backoffs: the first delays (one step a millisecond) up to and past the cap. */
  const capped: ReadonlyArray<readonly [string, Schedule.Schedule<unknown>, ReadonlyArray<number>]> = [
    ["registrationReoffer: 10 s doubling to 5 min (the kubelet's container restart back-off)", Schedules.registrationReoffer, [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]],
    ["intermediateRetry: 1 s doubling to 60 s", Schedules.intermediateRetry, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]],
    ["podCertificateRetry: 100 ms doubling to 30 s", Schedules.podCertificateRetry, [100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000]]
  ]
  for (const [name, schedule, expected] of capped) {
    it.effect(name, () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* delays(schedule, expected.map((_, i) => [i, undefined] as const)), expected)
      }))
  }

  it.effect("leaderWorkRestart every 2 s; leaseRetry every retry period", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* delays(Schedules.leaderWorkRestart, [[0, undefined], [1, undefined], [2, undefined]]), [2_000, 2_000, 2_000])
      assert.deepStrictEqual(yield* delays(Schedules.leaseRetry(Duration.millis(750)), [[0, undefined], [1, undefined]]), [750, 750])
    }))
})

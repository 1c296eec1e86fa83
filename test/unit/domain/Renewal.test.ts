/**
 * Renewal timing and retry delays (cert-manager/csi-lib's manager; its Test_calculateNextIssuanceTime
 * and TestManager_NewManager_defaultsGateBackoffConfig). Samples are passed in, so every value is exact.
 */
import { assert, describe, it } from "@effect/vitest"
import { defaultPolicy, failureDelay, notReadyDelay, renewalInstant, type RenewalPolicy } from "../../../src/domain/Renewal.ts"

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR
const NOT_BEFORE = Date.UTC(2026, 2, 14, 9, 26, 53)
/** The largest double below 1: the top of a uniform [0, 1) sample (rounds onto the window's edge). */
const ALMOST_ONE = 1 - Number.EPSILON / 2
/** A high sample that does not round onto the edge. */
const HIGH = 0.999

const noJitter: RenewalPolicy = { ...defaultPolicy, jitter: 0 }

describe("defaultPolicy", () => {
  it("carries the original's numbers", () => {
    assert.deepStrictEqual(defaultPolicy, {
      ratio: 2 / 3,
      jitter: 0.05,
      failureBaseMillis: 30_000,
      failureFactor: 2,
      failureCapMillis: 300_000,
      failureJitter: 0.5,
      notReadyBaseMillis: 1_000,
      notReadyCapMillis: 10_000
    })
  })
})

describe("renewalInstant", () => {
  it("renews a 1 h certificate 40 min after NotBefore (sample 0.5 = no jitter)", () => {
    assert.strictEqual(renewalInstant(defaultPolicy, NOT_BEFORE, NOT_BEFORE + HOUR, 0.5), NOT_BEFORE + 40 * MINUTE)
  })

  it("renews a 3-day certificate at day 2, like csi-lib's Test_calculateNextIssuanceTime", () => {
    assert.strictEqual(renewalInstant(defaultPolicy, NOT_BEFORE, NOT_BEFORE + 3 * DAY, 0.5), NOT_BEFORE + 2 * DAY)
  })

  it("is exactly NotAfter - lifetime/3 to the millisecond for lifetimes divisible by 3", () => {
    for (const lifetime of [3, 3 * SECOND, 90 * MINUTE, 24 * HOUR, 2_999_999_997, 7 * DAY + 3]) {
      assert.strictEqual(renewalInstant(defaultPolicy, NOT_BEFORE, NOT_BEFORE + lifetime, 0.5), NOT_BEFORE + lifetime - lifetime / 3, `lifetime ${lifetime}`)
      assert.strictEqual(renewalInstant(defaultPolicy, 0, lifetime, 0.5), (lifetime / 3) * 2, `lifetime ${lifetime} from epoch 0`)
    }
  })

  it("ignores the sample when the policy has no jitter", () => {
    for (const s of [0, 0.25, 0.5, ALMOST_ONE]) {
      assert.strictEqual(renewalInstant(noJitter, NOT_BEFORE, NOT_BEFORE + HOUR, s), NOT_BEFORE + 40 * MINUTE)
    }
  })

  it("jitters by at most ±5 % of the lifetime: sample 0 → 61.67 %, sample → 1 → 71.67 %", () => {
    // 1 h: 2/3 ± 5 % = 40 min ± 3 min
    assert.strictEqual(renewalInstant(defaultPolicy, NOT_BEFORE, NOT_BEFORE + HOUR, 0), NOT_BEFORE + 37 * MINUTE)
    // sample 0.999: 40 min + 0.998 × 3 min = 42 min 59.64 s
    const high = renewalInstant(defaultPolicy, NOT_BEFORE, NOT_BEFORE + HOUR, HIGH)
    assert.isAtMost(high, NOT_BEFORE + 42 * MINUTE + 59_640)
    assert.isAtLeast(high, NOT_BEFORE + 42 * MINUTE + 59_639)
    // the very top of [0, 1) reaches the +5 % edge, never beyond it
    assert.strictEqual(renewalInstant(defaultPolicy, NOT_BEFORE, NOT_BEFORE + HOUR, ALMOST_ONE), NOT_BEFORE + 43 * MINUTE)
  })

  it("is monotonic in the sample and stays inside the jitter window", () => {
    let previous = -Infinity
    for (let i = 0; i <= 100; i++) {
      const s = Math.min(i / 100, ALMOST_ONE)
      const at = renewalInstant(defaultPolicy, NOT_BEFORE, NOT_BEFORE + HOUR, s)
      assert.isAtLeast(at, previous)
      assert.isAtLeast(at, NOT_BEFORE + 37 * MINUTE)
      assert.isAtMost(at, NOT_BEFORE + 43 * MINUTE)
      previous = at
    }
  })

  it("returns whole milliseconds", () => {
    const at = renewalInstant(defaultPolicy, NOT_BEFORE, NOT_BEFORE + 1000, 0.5)
    assert.isTrue(Number.isInteger(at))
    assert.strictEqual(at, NOT_BEFORE + 666)
  })

  it("clamps a zero lifetime to NotBefore", () => {
    assert.strictEqual(renewalInstant(defaultPolicy, NOT_BEFORE, NOT_BEFORE, 0.5), NOT_BEFORE)
    assert.strictEqual(renewalInstant(defaultPolicy, NOT_BEFORE, NOT_BEFORE, ALMOST_ONE), NOT_BEFORE)
  })

  it("clamps a negative lifetime (NotAfter before NotBefore) to NotBefore", () => {
    assert.strictEqual(renewalInstant(defaultPolicy, NOT_BEFORE, NOT_BEFORE - HOUR, 0), NOT_BEFORE)
    assert.strictEqual(renewalInstant(defaultPolicy, NOT_BEFORE, NOT_BEFORE - HOUR, ALMOST_ONE), NOT_BEFORE)
  })

  it("never renews before NotBefore nor at or after NotAfter, whatever the policy", () => {
    const early: RenewalPolicy = { ...defaultPolicy, ratio: 0, jitter: 0.5 }
    assert.strictEqual(renewalInstant(early, NOT_BEFORE, NOT_BEFORE + HOUR, 0), NOT_BEFORE)
    const late: RenewalPolicy = { ...defaultPolicy, ratio: 1, jitter: 0.5 }
    assert.strictEqual(renewalInstant(late, NOT_BEFORE, NOT_BEFORE + HOUR, ALMOST_ONE), NOT_BEFORE + HOUR - 1)
    assert.strictEqual(renewalInstant(late, NOT_BEFORE, NOT_BEFORE + 1, 0.5), NOT_BEFORE)
  })
})

describe("failureDelay", () => {
  it("doubles from 30 s to the 5 min cap with sample 0", () => {
    const delays = [0, 1, 2, 3, 4, 5].map((n) => failureDelay(defaultPolicy, n, 0))
    assert.deepStrictEqual(delays, [30_000, 60_000, 120_000, 240_000, 300_000, 300_000])
  })

  it("adds up to 50 % with a sample near 1", () => {
    const bases = [30_000, 60_000, 120_000, 240_000, 300_000, 300_000]
    bases.forEach((base, n) => {
      const d = failureDelay(defaultPolicy, n, HIGH)
      assert.isAtMost(d, base * 1.4995, `attempt ${n}`)
      assert.isAtLeast(d, base * 1.4995 - 1, `attempt ${n}`)
      assert.isAtMost(failureDelay(defaultPolicy, n, ALMOST_ONE), base * 1.5, `attempt ${n}`)
    })
  })

  it("adds exactly 25 % with sample 0.5", () => {
    assert.strictEqual(failureDelay(defaultPolicy, 0, 0.5), 37_500)
    assert.strictEqual(failureDelay(defaultPolicy, 4, 0.5), 375_000)
  })

  it("stays at the cap for very many attempts (no overflow)", () => {
    assert.strictEqual(failureDelay(defaultPolicy, 1_000, 0), 300_000)
    assert.strictEqual(failureDelay(defaultPolicy, 1_000, 0.5), 375_000)
  })

  it("returns whole milliseconds", () => {
    assert.isTrue(Number.isInteger(failureDelay(defaultPolicy, 2, 0.123456789)))
  })
})

describe("notReadyDelay", () => {
  it("doubles from 1 s to the 10 s cap", () => {
    assert.deepStrictEqual([0, 1, 2, 3, 4, 5].map((n) => notReadyDelay(defaultPolicy, n)), [1_000, 2_000, 4_000, 8_000, 10_000, 10_000])
  })

  it("stays at the cap for very many attempts", () => {
    assert.strictEqual(notReadyDelay(defaultPolicy, 5_000), 10_000)
  })
})

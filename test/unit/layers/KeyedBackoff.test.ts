/**
 * KeyedBackoff: each key walks its own copy of the schedule, and forgetting a key starts it again.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Schedule } from "effect"
import * as KeyedBackoff from "../../../src/layers/KeyedBackoff.ts"

const doubling = Schedule.exponential("10 millis", 2)
const millis = (d: Effect.Effect<Duration.Duration>) => Effect.map(d, Duration.toMillis)

describe("KeyedBackoff", () => {
  it.effect("a key that keeps failing backs off along the schedule", () =>
    Effect.gen(function*() {
      const backoff = yield* KeyedBackoff.make(doubling)
      const seen = [yield* millis(backoff.delay("a")), yield* millis(backoff.delay("a")), yield* millis(backoff.delay("a"))]
      assert.deepStrictEqual(seen, [10, 20, 40])
    }))

  it.effect("keys back off independently", () =>
    Effect.gen(function*() {
      const backoff = yield* KeyedBackoff.make(doubling)
      yield* backoff.delay("a")
      yield* backoff.delay("a")
      assert.strictEqual(yield* millis(backoff.delay("b")), 10)
      assert.strictEqual(yield* millis(backoff.delay("a")), 40)
    }))

  it.effect("a forgotten key starts the schedule again; forgetting an unknown key is a no-op", () =>
    Effect.gen(function*() {
      const backoff = yield* KeyedBackoff.make(doubling)
      yield* backoff.delay("a")
      yield* backoff.delay("a")
      yield* backoff.forget("a")
      yield* backoff.forget("never-failed")
      assert.strictEqual(yield* millis(backoff.delay("a")), 10)
    }))
})

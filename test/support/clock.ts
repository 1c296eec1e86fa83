/**
 * Driving the TestClock while work also waits on real asynchronous I/O (WebCrypto signature checks
 * resolve on the event loop, not on the Effect scheduler): each step lets pending macrotasks run,
 * then moves the clock, so a sleep registered "late" still fires.
 */
import { Effect, Fiber } from "effect"
import type { Duration } from "effect"
import { TestClock } from "effect/testing"

/** One turn of the Node event loop (lets resolved WebCrypto promises reach their fibers). */
export const macrotask: Effect.Effect<void> = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Lets other fibers and pending I/O run `turns` times without moving the clock. */
export const settle = (turns = 20) => Effect.repeat(macrotask, { times: turns - 1 })

/** Advances the clock by `step` until `fiber` is done (at most `maxSteps` times), then joins it. */
export const joinAdvancing = <A, E>(fiber: Fiber.Fiber<A, E>, step: Duration.Input = "50 millis", maxSteps = 2_000) =>
  Effect.gen(function*() {
    for (let i = 0; i < maxSteps && fiber.pollUnsafe() === undefined; i++) {
      yield* macrotask
      yield* TestClock.adjust(step)
    }
    return yield* Fiber.join(fiber)
  })

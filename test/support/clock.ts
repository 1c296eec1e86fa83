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

/** Advances the clock by `step` (after letting I/O settle) until `done` holds, at most `maxSteps` times. */
export const advanceUntil = <E, R>(done: Effect.Effect<boolean, E, R>, step: Duration.Input = "50 millis", maxSteps = 2_000) =>
  Effect.gen(function*() {
    for (let i = 0; i < maxSteps; i++) {
      if (yield* done) return true
      yield* macrotask
      yield* TestClock.adjust(step)
    }
    return yield* done
  })

/**
 * Waits for `signal` while moving the clock in `step`s (letting I/O settle before each), for work
 * that must sleep through a backoff before it can complete. The wait ends on the signal itself; the
 * clock only makes the backoff's sleeps fire. Gives up (a defect) after `maxSteps` steps.
 */
export const whileAdvancing = <A, E, R>(signal: Effect.Effect<A, E, R>, step: Duration.Input = "50 millis", maxSteps = 2_000) =>
  Effect.raceFirst(
    signal,
    Effect.gen(function*() {
      for (let i = 0; i < maxSteps; i++) {
        yield* macrotask
        yield* TestClock.adjust(step)
      }
      return yield* Effect.die(new Error(`signal not seen after ${maxSteps} clock steps of ${String(step)}`))
    })
  )

/**
 * The background deletion of a volume's requests (`layers/volumeManager/Forget.ts`) on its own,
 * over an Issuance whose `forget` finishes only when the test opens its gate: a running deletion is
 * awaited and then forgotten, a slow one is awaited for FORGET_WAIT at most (TestClock), and a
 * newer deletion of the same id is never unregistered by an older one finishing.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Queue } from "effect"
import { TestClock } from "effect/testing"
import * as Forget from "../../../../src/layers/volumeManager/Forget.ts"
import { Issuance } from "../../../../src/services/Issuance.ts"

/** Each `forget` call is announced with the gate it waits on. */
const gated = Effect.gen(function*() {
  const calls = yield* Queue.unbounded<{ readonly volumeId: string; readonly gate: Deferred.Deferred<void> }>()
  const layer = Layer.mock(Issuance)({
    forget: (volumeId) =>
      Effect.flatMap(Deferred.make<void>(), (gate) => Effect.andThen(Queue.offer(calls, { volumeId, gate }), Deferred.await(gate)))
  })
  const forgets = yield* Effect.provide(Forget.make, layer)
  return { forgets, calls }
})

/** Starts a deletion of `volumeId` and takes its `forget` call (the gate it waits on). */
const startDeletion = (g: Effect.Success<typeof gated>, volumeId: string) =>
  Effect.gen(function*() {
    const deletion = yield* g.forgets.inBackground(volumeId, "sandbox")
    const call = yield* Queue.take(g.calls)
    return { deletion, call }
  })

/** Forks `effect` and lets it run until it waits (its sleeps are registered before the clock moves). */
const started = <A>(effect: Effect.Effect<A>) => Effect.forkChild(effect, { startImmediately: true })

describe("deleting a volume's requests in the background", () => {
  it.effect("nothing runs: no wait", () =>
    Effect.gen(function*() {
      const { forgets } = yield* gated
      assert.isFalse(yield* forgets.awaitRunning("v1"))
    }))

  it.effect("a running deletion is awaited until it finishes, and is no longer registered then", () =>
    Effect.gen(function*() {
      const g = yield* gated
      const { forgets } = g
      const { call, deletion } = yield* startDeletion(g, "v1")
      assert.strictEqual(call.volumeId, "v1")
      const waiter = yield* started(forgets.awaitRunning("v1"))
      assert.isFalse(yield* forgets.awaitRunning("v2"), "another id does not wait for it")
      assert.isUndefined(waiter.pollUnsafe(), "waits while the deletion runs")
      yield* Deferred.succeed(call.gate, undefined)
      assert.isTrue(yield* Fiber.join(waiter))
      assert.strictEqual((yield* forgets.awaitBounded(deletion))._tag, "Some")
      assert.isFalse(yield* forgets.awaitRunning("v1"), "a finished deletion is not waited for again")
    }))

  it.effect("a slow deletion is awaited for FORGET_WAIT at most, and goes on", () =>
    Effect.gen(function*() {
      const g = yield* gated
      const { forgets } = g
      const { call, deletion } = yield* startDeletion(g, "v1")
      const waiter = yield* started(forgets.awaitRunning("v1"))
      const bounded = yield* started(forgets.awaitBounded(deletion))
      yield* TestClock.adjust("4999 millis")
      assert.isUndefined(waiter.pollUnsafe(), "still waiting just before the bound")
      yield* TestClock.adjust("1 millis")
      assert.isFalse(yield* Fiber.join(waiter))
      assert.strictEqual((yield* Fiber.join(bounded))._tag, "None")
      assert.isUndefined(deletion.pollUnsafe(), "the deletion itself is not cancelled")
      yield* Deferred.succeed(call.gate, undefined)
      yield* Fiber.await(deletion)
      assert.isFalse(yield* forgets.awaitRunning("v1"))
    }))

  it.effect("an older deletion of the id finishing leaves the newer one registered", () =>
    Effect.gen(function*() {
      const g = yield* gated
      const { forgets } = g
      const older = yield* startDeletion(g, "v1")
      const newer = yield* startDeletion(g, "v1")
      yield* Deferred.succeed(older.call.gate, undefined)
      yield* Fiber.await(older.deletion)
      const waiter = yield* started(forgets.awaitRunning("v1"))
      assert.isUndefined(waiter.pollUnsafe(), "the newer deletion is still awaited")
      yield* Deferred.succeed(newer.call.gate, undefined)
      assert.isTrue(yield* Fiber.join(waiter))
    }))
})

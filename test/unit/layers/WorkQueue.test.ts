/**
 * The work queue's guarantees: a key queued twice is handled once, one key is never handled twice at
 * the same time (a re-add during handling runs once more afterwards), concurrency is bounded,
 * `drain` waits for delayed re-adds, and `awaitState` tells when only the clock is left to wait on.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as WorkQueue from "../../../src/layers/WorkQueue.ts"

/** A handler that records calls and, per key, how many run at once; each call waits for `gate`. */
const recorder = (gate?: Deferred.Deferred<void>) => {
  const calls: Array<string> = []
  const running = new Map<string, number>()
  let maxPerKey = 0
  let active = 0
  let maxActive = 0
  const handler = (key: string) =>
    Effect.gen(function*() {
      calls.push(key)
      running.set(key, (running.get(key) ?? 0) + 1)
      active += 1
      maxPerKey = Math.max(maxPerKey, running.get(key)!)
      maxActive = Math.max(maxActive, active)
      if (gate !== undefined) yield* Deferred.await(gate)
      yield* Effect.yieldNow
      running.set(key, running.get(key)! - 1)
      active -= 1
    })
  return { handler, calls, stats: () => ({ maxPerKey, maxActive }) }
}

describe("WorkQueue", () => {
  it.effect("a key queued several times before a worker takes it is handled once", () =>
    Effect.gen(function*() {
      const queue = yield* WorkQueue.make
      const r = recorder()
      for (const key of ["a", "b", "a", "a", "b", "c"]) yield* queue.add(key)
      assert.strictEqual(yield* queue.size, 3)
      yield* Effect.forkChild(queue.run(4, r.handler))
      yield* queue.drain
      assert.deepStrictEqual([...r.calls].sort(), ["a", "b", "c"])
    }))

  it.effect("a key re-added while being handled runs once more afterwards, never concurrently", () =>
    Effect.gen(function*() {
      const queue = yield* WorkQueue.make
      const gate = yield* Deferred.make<void>()
      const r = recorder(gate)
      yield* Effect.forkChild(queue.run(4, r.handler))
      yield* queue.add("a")
      yield* Effect.yieldNow
      yield* Effect.yieldNow
      assert.deepStrictEqual(r.calls, ["a"])
      yield* queue.add("a")
      yield* queue.add("a")
      yield* Effect.yieldNow
      assert.deepStrictEqual(r.calls, ["a"], "not started again while the first run is in progress")
      yield* Deferred.succeed(gate, undefined)
      yield* queue.drain
      assert.deepStrictEqual(r.calls, ["a", "a"])
      assert.strictEqual(r.stats().maxPerKey, 1)
    }))

  it.effect("different keys run concurrently up to the bound", () =>
    Effect.gen(function*() {
      const queue = yield* WorkQueue.make
      const gate = yield* Deferred.make<void>()
      const r = recorder(gate)
      yield* Effect.forkChild(queue.run(3, r.handler))
      for (let i = 0; i < 10; i++) yield* queue.add(`k${i}`)
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow
      assert.strictEqual(r.calls.length, 3)
      yield* Deferred.succeed(gate, undefined)
      yield* queue.drain
      assert.strictEqual(r.calls.length, 10)
      assert.strictEqual(r.stats().maxActive, 3)
    }))

  it.effect("drain waits for a delayed re-add and its handling", () =>
    Effect.gen(function*() {
      const queue = yield* WorkQueue.make
      const r = recorder()
      yield* Effect.forkChild(queue.run(1, r.handler))
      yield* queue.addAfter("later", "5 seconds")
      const drained = yield* Effect.forkChild(queue.drain)
      yield* Effect.yieldNow
      assert.isUndefined(drained.pollUnsafe())
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(drained)
      assert.deepStrictEqual(r.calls, ["later"])
    }))

  it.effect("awaitState: a handler that schedules its retry leaves nothing in hand but the retry's registered sleep", () =>
    Effect.gen(function*() {
      const queue = yield* WorkQueue.make
      const calls: Array<string> = []
      yield* Effect.forkChild(queue.run(2, (key) =>
        Effect.gen(function*() {
          calls.push(key)
          if (calls.length === 1) yield* queue.addAfter(key, "3 seconds")
        })))
      const waiting = yield* Effect.forkChild(queue.awaitState((s) => s.active === 0 && s.delayed === 1))
      yield* Effect.yieldNow
      assert.isUndefined(waiting.pollUnsafe(), "nothing added yet")
      yield* queue.add("a")
      yield* Fiber.join(waiting)
      assert.deepStrictEqual(calls, ["a"])
      // The sleep is registered by now: one adjust fires it, with no step in between.
      yield* TestClock.adjust("3 seconds")
      yield* queue.drain
      assert.deepStrictEqual(calls, ["a", "a"])
    }))
})

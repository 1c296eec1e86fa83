/**
 * KeyedSignal: a change wakes only the fibers waiting on its key, a change between a look and the
 * wait is not lost, and a key nobody waits on any more leaves the table.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option, Ref } from "effect"
import * as KeyedSignal from "../../../src/layers/KeyedSignal.ts"

/**
 * A fiber waiting on `key` for `ref` to be set, returned once it has looked at `ref` (and so is
 * registered): what the tests do next happens while it waits.
 */
const waiter = (signal: KeyedSignal.KeyedSignal, key: string, ref: Ref.Ref<string | undefined>) =>
  Effect.gen(function*() {
    const looked = yield* Deferred.make<void>()
    const look = Effect.andThen(Deferred.succeed(looked, undefined), Effect.map(Ref.get(ref), Option.fromNullishOr))
    const fiber = yield* Effect.forkChild(signal.waitFor(key, look))
    yield* Deferred.await(looked)
    return fiber
  })

describe("KeyedSignal", () => {
  it.effect("a change wakes the waiters of its key and no other", () =>
    Effect.gen(function*() {
      const signal = yield* KeyedSignal.make
      const a = yield* Ref.make<string | undefined>(undefined)
      const b = yield* Ref.make<string | undefined>(undefined)
      const waitA = yield* waiter(signal, "a", a)
      const waitB = yield* waiter(signal, "b", b)
      assert.strictEqual(yield* signal.waiting, 2)
      // b's value changes without a notify for b: only a's change is announced
      yield* Ref.set(b, "b-value")
      yield* Ref.set(a, "a-value")
      yield* signal.notify("a")
      assert.strictEqual(yield* Fiber.join(waitA), "a-value")
      assert.strictEqual(yield* signal.waiting, 1)
      assert.isUndefined(waitB.pollUnsafe())
      yield* signal.notify("b")
      assert.strictEqual(yield* Fiber.join(waitB), "b-value")
      assert.strictEqual(yield* signal.waiting, 0)
    }))

  it.effect("a change that lands between the look and the wait is not missed", () =>
    Effect.gen(function*() {
      const signal = yield* KeyedSignal.make
      const value = yield* Ref.make<string | undefined>(undefined)
      const looks = yield* Ref.make(0)
      const look = Effect.gen(function*() {
        const n = yield* Ref.updateAndGet(looks, (x) => x + 1)
        const seen = yield* Ref.get(value)
        // the change arrives right after the first look found nothing
        if (n === 1) {
          yield* Ref.set(value, "changed")
          yield* signal.notify("k")
        }
        return Option.fromNullishOr(seen)
      })
      assert.strictEqual(yield* signal.waitFor("k", look), "changed")
      assert.strictEqual(yield* Ref.get(looks), 2)
    }))

  it.effect("one change wakes every waiter of the key; a later wait waits for the next change", () =>
    Effect.gen(function*() {
      const signal = yield* KeyedSignal.make
      const value = yield* Ref.make<string | undefined>(undefined)
      const w1 = yield* waiter(signal, "k", value)
      const w2 = yield* waiter(signal, "k", value)
      assert.strictEqual(yield* signal.waiting, 1)
      yield* Ref.set(value, "v1")
      yield* signal.notify("k")
      assert.deepStrictEqual([yield* Fiber.join(w1), yield* Fiber.join(w2)], ["v1", "v1"])
      // a notify with nobody waiting is remembered by nobody
      yield* signal.notify("k")
      const again = yield* Ref.make<string | undefined>(undefined)
      const w3 = yield* waiter(signal, "k", again)
      assert.isUndefined(w3.pollUnsafe())
      yield* Ref.set(again, "v2")
      yield* signal.notify("k")
      assert.strictEqual(yield* Fiber.join(w3), "v2")
    }))

  it.effect("an interrupted waiter leaves the table; the remaining one still wakes", () =>
    Effect.gen(function*() {
      const signal = yield* KeyedSignal.make
      const value = yield* Ref.make<string | undefined>(undefined)
      const gone = yield* waiter(signal, "k", value)
      const stays = yield* waiter(signal, "k", value)
      yield* Fiber.interrupt(gone)
      assert.strictEqual(yield* signal.waiting, 1)
      yield* Ref.set(value, "v")
      yield* signal.notify("k")
      assert.strictEqual(yield* Fiber.join(stays), "v")
      assert.strictEqual(yield* signal.waiting, 0)
      const last = yield* waiter(signal, "other", yield* Ref.make<string | undefined>(undefined))
      yield* Fiber.interrupt(last)
      assert.strictEqual(yield* signal.waiting, 0)
    }))

  it.effect("a failing look fails the wait and unregisters it", () =>
    Effect.gen(function*() {
      const signal = yield* KeyedSignal.make
      const error = yield* Effect.flip(signal.waitFor("k", Effect.fail("refused")))
      assert.strictEqual(error, "refused")
      assert.strictEqual(yield* signal.waiting, 0)
    }))
})

/**
 * `VolumeManager.busy`, the signal the driver's idle GC watches (`bin/CsiLive.ts`): false at start,
 * true from a publish's start to its end, false again however the publish ended (signed or
 * denied), true while an unpublish is in hand. Over the scripted Issuance, whose attempts the test
 * holds; every wait is on the signal itself.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Stream } from "effect"
import { VolumeManager } from "../../../src/services/VolumeManager.ts"
import { holdAttempts, nextAttempt, publish, setOutcome, stack, unpublish } from "../../support/ScriptedIssuance.ts"

/** The signal's current value (it starts with it). */
const busyNow = Effect.flatMap(Effect.service(VolumeManager), (m) => Effect.map(m.busy.pipe(Stream.take(1), Stream.runCollect), (xs) => xs[0]))

/** Waits until the signal reads `value`. */
const awaitBusy = (value: boolean) => Effect.flatMap(Effect.service(VolumeManager), (m) => m.busy.pipe(Stream.filter((b) => b === value), Stream.take(1), Stream.runDrain))

describe("VolumeManager.busy", () => {
  it.effect("false at start, true while a publish is in hand, false once it returned", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* busyNow, false, "nothing in hand at start")
      const release = yield* holdAttempts
      const fiber = yield* Effect.forkChild(publish("vol-1"))
      yield* nextAttempt
      assert.strictEqual(yield* busyNow, true, "the publish waits in its issuance")
      yield* release
      yield* Fiber.join(fiber)
      yield* awaitBusy(false)
      assert.strictEqual(yield* busyNow, false)
    }).pipe(Effect.provide(stack)), { timeout: 10_000 })

  it.effect("a publish that fails ends busy too", () =>
    Effect.gen(function*() {
      yield* setOutcome("Denied")
      const release = yield* holdAttempts
      const fiber = yield* Effect.forkChild(publish("vol-2"))
      yield* nextAttempt
      assert.strictEqual(yield* busyNow, true)
      yield* release
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit), "the publish was denied")
      yield* awaitBusy(false)
    }).pipe(Effect.provide(stack)), { timeout: 10_000 })

  it.effect("an unpublish counts as work: the signal goes true and back to false", () =>
    Effect.gen(function*() {
      const manager = yield* VolumeManager
      yield* publish("vol-3")
      yield* awaitBusy(false)
      // Subscribed before the unpublish starts: its current value, then each change.
      const seen = yield* manager.busy.pipe(Stream.take(3), Stream.runCollect, Effect.forkChild({ startImmediately: true }))
      assert.isDefined(yield* manager.status("vol-3"))
      yield* unpublish("vol-3")
      assert.isUndefined(yield* manager.status("vol-3"), "the unpublish went through")
      assert.deepStrictEqual(Array.from(yield* Fiber.join(seen)), [false, true, false])
    }).pipe(Effect.provide(stack)), { timeout: 10_000 })
})

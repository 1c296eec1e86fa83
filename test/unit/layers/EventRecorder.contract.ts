/**
 * The EventRecorder contract: what recording an Event means, run by `EventRecorder.test.ts` against
 * the live layer (core/v1 Events through the KubeClient, here the memory API server) and the memory
 * twin (`layerMemory`, what tests assert on). Not a test file itself (no `.test.`).
 *
 * The contract: every record is kept once, with its object, type, reason and message; a message
 * over the API server's 1 KiB is kept cut to 1 KiB of UTF-8 ending in "..."; records made at once
 * are all kept.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Layer } from "effect"
import type { RecordedEvent } from "../../../src/services/EventRecorder.ts"
import { EventRecorder } from "../../../src/services/EventRecorder.ts"

export const event = (message: string, name = "web-0"): RecordedEvent => ({
  involvedObject: { apiVersion: "v1", kind: "Pod", name, namespace: "team-a", uid: `uid-${name}` },
  type: "Warning",
  reason: "IssuanceFailed",
  message
})

const byMessage = (events: ReadonlyArray<RecordedEvent>) => [...events].sort((a, b) => a.message.localeCompare(b.message))

export const contract = <R>(name: string, layer: Layer.Layer<EventRecorder | R>, observed: Effect.Effect<ReadonlyArray<RecordedEvent>, never, R>) =>
  describe(`EventRecorder contract: ${name}`, () => {
    it.effect("every record is kept once, with its object, type, reason and message", () =>
      Effect.gen(function*() {
        const events = yield* EventRecorder
        yield* events.record(event("no issuer configured"))
        yield* events.record({ ...event("approved", "web-1"), type: "Normal", reason: "Approved" })
        assert.deepStrictEqual(byMessage(yield* observed), byMessage([event("no issuer configured"), { ...event("approved", "web-1"), type: "Normal", reason: "Approved" }]))
      }).pipe(Effect.provide(layer)))

    it.effect("a message over 1 KiB is kept cut to 1 KiB of UTF-8, ending in ...", () =>
      Effect.gen(function*() {
        const events = yield* EventRecorder
        yield* events.record(event("é".repeat(2000)))
        const [kept] = yield* observed
        assert.isDefined(kept)
        assert.isAtMost(Buffer.byteLength(kept!.message, "utf8"), 1024)
        assert.isTrue(kept!.message.endsWith("..."))
        assert.isTrue(kept!.message.startsWith("éé"))
      }).pipe(Effect.provide(layer)))

    it.effect("records made at once are all kept", () =>
      Effect.gen(function*() {
        const events = yield* EventRecorder
        yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => event(`m${String(i).padStart(2, "0")}`)), events.record, { concurrency: "unbounded", discard: true })
        assert.deepStrictEqual((yield* observed).map((e) => e.message).sort(), Array.from({ length: 20 }, (_, i) => `m${String(i).padStart(2, "0")}`))
      }).pipe(Effect.provide(layer)))
  })

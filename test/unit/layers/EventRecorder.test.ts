/**
 * The EventRecorder: the live layer writes one core/v1 Event per record through the KubeClient
 * (here the memory API server) with the component and host its composition root gave it, client-go's
 * `<object>.<hex>` name, whole-second RFC 3339 timestamps and a message cut to the API server's
 * 1 KiB; recording is best effort (a refused create is logged, never propagated; a name collision is
 * retried once). The memory twin keeps what was recorded.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Ref } from "effect"
import { TestClock } from "effect/testing"
import { Events } from "../../../src/domain/KubeObjects.ts"
import * as EventRecorderLayers from "../../../src/layers/EventRecorder.ts"
import { KubeClientMemory, layerMemory } from "../../../src/layers/KubeClient.ts"
import type { RecordedEvent } from "../../../src/services/EventRecorder.ts"
import { EventRecorder } from "../../../src/services/EventRecorder.ts"
import { contract } from "./EventRecorder.contract.ts"

const NOW = Date.UTC(2030, 0, 2, 3, 4, 5, 678)

const event = (message = "no issuer configured"): RecordedEvent => ({
  involvedObject: { apiVersion: "v1", kind: "Pod", name: "web-0", namespace: "team-a", uid: "uid-1" },
  type: "Warning",
  reason: "IssuanceFailed",
  message
})

const live = EventRecorderLayers.layer("csi-driver-spiffe", "node-1").pipe(Layer.provideMerge(layerMemory))

const recorded = Effect.flatMap(Effect.service(KubeClientMemory), (kube) => kube.all(Events))

describe("EventRecorder layer", () => {
  it.effect("writes one Event with the layer's component and host, client-go's name and whole-second timestamps", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const events = yield* EventRecorder
      yield* events.record(event())
      const [e, ...rest] = yield* recorded
      assert.strictEqual(rest.length, 0)
      assert.isDefined(e)
      assert.match(e!.metadata.name, /^web-0\.[0-9a-f]+$/)
      assert.strictEqual(e!.metadata.namespace, "team-a")
      assert.deepStrictEqual(e!.involvedObject, event().involvedObject)
      assert.strictEqual(e!.type, "Warning")
      assert.strictEqual(e!.reason, "IssuanceFailed")
      assert.strictEqual(e!.message, "no issuer configured")
      assert.deepStrictEqual(e!.source, { component: "csi-driver-spiffe", host: "node-1" })
      assert.strictEqual(e!.firstTimestamp, "2030-01-02T03:04:05Z")
      assert.strictEqual(e!.lastTimestamp, "2030-01-02T03:04:05Z")
      assert.strictEqual(e!.count, 1)
    }).pipe(Effect.provide(live)))

  it.effect("without a host the source names the component only; an object without a namespace reports in default", () =>
    Effect.gen(function*() {
      const events = yield* EventRecorder
      yield* events.record({ ...event(), involvedObject: { kind: "Node", name: "node-1" } })
      const [e] = yield* recorded
      assert.deepStrictEqual(e?.source, { component: "csi-driver-spiffe-approver" })
      assert.strictEqual(e?.metadata.namespace, "default")
    }).pipe(Effect.provide(EventRecorderLayers.layer("csi-driver-spiffe-approver").pipe(Layer.provideMerge(layerMemory)))))

  it.effect("cuts a message over 1 KiB to at most 1 KiB of UTF-8, ending in ...", () =>
    Effect.gen(function*() {
      const events = yield* EventRecorder
      yield* events.record(event("é".repeat(2000)))
      const [e] = yield* recorded
      assert.isAtMost(Buffer.byteLength(e!.message, "utf8"), EventRecorderLayers.MAX_MESSAGE_BYTES)
      assert.isTrue(e!.message.endsWith("..."))
      assert.isFalse(e!.message.includes("\uFFFD"), "no half character")
      // The API server's 1 KiB, not whatever the module says: 1021 bytes leave 510 two-byte
      // characters (the 511th would be cut in half) and the ellipsis, 1023 bytes in all.
      assert.strictEqual(e!.message, `${"é".repeat(510)}...`)
    }).pipe(Effect.provide(live)))

  /** Records one event after the memory API server fails the next create with `reason`; the events stored. */
  const recordAfterFailedCreate = (reason: "Forbidden" | "AlreadyExists") =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      yield* kube.failNext("create", reason, 1)
      yield* (yield* EventRecorder).record(event())
      return (yield* recorded).length
    }).pipe(Effect.provide(live))

  it.effect("a refused create is not an error of the caller, and writes nothing", () =>
    Effect.map(recordAfterFailedCreate("Forbidden"), (stored) => assert.strictEqual(stored, 0)))

  it.effect("a name collision (AlreadyExists) is retried once with a new name", () =>
    Effect.map(recordAfterFailedCreate("AlreadyExists"), (stored) => assert.strictEqual(stored, 1)))
})

describe("EventRecorder layerMemory", () => {
  it.effect("keeps every recorded event, in order", () =>
    Effect.gen(function*() {
      const events = yield* EventRecorder
      yield* events.record(event("first"))
      yield* events.record(event("second"))
      const kept = yield* Ref.get(yield* EventRecorderLayers.EventRecorderMemory)
      assert.deepStrictEqual(kept.map((e) => e.message), ["first", "second"])
    }).pipe(Effect.provide(EventRecorderLayers.layerMemory)))
})

contract(
  "live (core/v1 Events through the memory API server)",
  live,
  Effect.orDie(Effect.map(recorded, (all) => all.map((e) => ({ involvedObject: e.involvedObject, type: e.type as RecordedEvent["type"], reason: e.reason, message: e.message }))))
)
contract("memory twin", EventRecorderLayers.layerMemory, Effect.flatMap(Effect.service(EventRecorderLayers.EventRecorderMemory), Ref.get))

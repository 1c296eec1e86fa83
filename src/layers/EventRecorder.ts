/**
 * EventRecorder implementations: `layer` writes core/v1 Events through the KubeClient with the
 * process's own identity; `make` is the same recorder for code that already holds a KubeClient;
 * `layerMemory` keeps them for assertions (messages cut to 1 KiB as the live layer cuts them).
 * Both run the contract in `test/unit/layers/EventRecorder.contract.ts`.
 */
import { Clock, Context, Effect, Layer, Random, Ref } from "effect"
import { Events, rfc3339 } from "../domain/KubeObjects.ts"
import type { RecordedEvent } from "../services/EventRecorder.ts"
import { EventRecorder } from "../services/EventRecorder.ts"
import { KubeClient } from "../services/KubeClient.ts"

/**
 * The API server's limit on an Event's message (events.k8s.io `note`, 1 KiB); client-go's recorder
 * truncates core/v1 Event messages to the same length.
 */
export const MAX_MESSAGE_BYTES = 1024

export const truncateBytes = (s: string, max: number): string => {
  const bytes = Buffer.from(s, "utf8")
  return bytes.length <= max ? s : `${bytes.subarray(0, max - 3).toString("utf8").replace(/\uFFFD$/, "")}...`
}

export const make = (component: string, host?: string) =>
  Effect.gen(function*() {
    const kube = yield* KubeClient
    // client-go names Events `<object>.<unix nanos in hex>`. Our clock has milliseconds, and several
    // processes (every node's driver, the approver) may report on one object in the same
    // millisecond, so the nanosecond digits are random: a collision needs the same millisecond and
    // the same 1-in-a-million draw, and is retried once with a new draw.
    const create = (e: RecordedEvent, now: number) =>
      Effect.gen(function*() {
        const namespace = e.involvedObject.namespace ?? "default"
        const stamp = BigInt(now) * 1_000_000n + BigInt(yield* Random.nextIntBetween(0, 999_999))
        return yield* kube.create(Events, namespace, {
          apiVersion: "v1",
          kind: "Event",
          metadata: { name: `${e.involvedObject.name}.${stamp.toString(16)}`, namespace },
          involvedObject: e.involvedObject,
          reason: e.reason,
          message: truncateBytes(e.message, MAX_MESSAGE_BYTES),
          type: e.type,
          source: host === undefined ? { component } : { component, host },
          reportingComponent: component,
          firstTimestamp: rfc3339(now),
          lastTimestamp: rfc3339(now),
          count: 1
        })
      })
    const record = (e: RecordedEvent) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        yield* create(e, now).pipe(Effect.catchIf((error) => error.reason === "AlreadyExists", () => create(e, now)))
      }).pipe(Effect.catch((error) => Effect.logWarning("could not record an Event", { reason: e.reason, error: error.message })))
    return EventRecorder.of({ record })
  })

export const layer = (component: string, host?: string) => Layer.effect(EventRecorder, make(component, host))

export class EventRecorderMemory extends Context.Service<EventRecorderMemory, Ref.Ref<ReadonlyArray<RecordedEvent>>>()(
  "csi-driver-spiffe/layers/EventRecorder/EventRecorderMemory"
) {}

export const layerMemory = Layer.effect(
  EventRecorder,
  Effect.gen(function*() {
    const events = yield* EventRecorderMemory
    // The message is cut as the live layer cuts it, so a test sees what the API server would keep.
    return EventRecorder.of({ record: (e) => Ref.update(events, (all) => [...all, { ...e, message: truncateBytes(e.message, MAX_MESSAGE_BYTES) }]) })
  })
).pipe(Layer.provideMerge(Layer.effect(EventRecorderMemory, Ref.make<ReadonlyArray<RecordedEvent>>([]))))

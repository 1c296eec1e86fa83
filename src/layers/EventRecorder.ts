/**
 * EventRecorder implementations: `layer` writes Events through the KubeClient with the process's own
 * identity; `layerMemory` keeps them for assertions.
 */
import { Clock, Context, Effect, Layer, Ref } from "effect"
import { Events } from "../domain/KubeObjects.ts"
import type { RecordedEvent } from "../services/EventRecorder.ts"
import { EventRecorder } from "../services/EventRecorder.ts"
import { KubeClient } from "../services/KubeClient.ts"

/** The API server caps Event messages at 1 KiB in practice (`kubectl describe` truncates too). */
const MAX_MESSAGE = 1024

const rfc3339 = (millis: number) => new Date(millis).toISOString().replace(/\.\d{3}Z$/, "Z")

export const layer = (component: string, host: string | undefined) =>
  Layer.effect(
    EventRecorder,
    Effect.gen(function*() {
      const kube = yield* KubeClient
      let sequence = 0
      const record = (e: RecordedEvent) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const namespace = e.involvedObject.namespace ?? "default"
          // Unique per process and instant, like client-go's `<object>.<hex nanos>` names.
          const name = `${e.involvedObject.name}.${now.toString(16)}${(sequence++ % 4096).toString(16).padStart(3, "0")}`
          yield* kube.create(Events, namespace, {
            apiVersion: "v1",
            kind: "Event",
            metadata: { name, namespace },
            involvedObject: e.involvedObject,
            reason: e.reason,
            message: e.message.length > MAX_MESSAGE ? `${e.message.slice(0, MAX_MESSAGE - 3)}...` : e.message,
            type: e.type,
            source: host === undefined ? { component } : { component, host },
            firstTimestamp: rfc3339(now),
            lastTimestamp: rfc3339(now),
            count: 1
          })
        }).pipe(
          Effect.catch((error) => Effect.logWarning("could not record an Event", { reason: e.reason, error: error.message }))
        )
      return EventRecorder.of({ record })
    })
  )

export class EventRecorderMemory extends Context.Service<EventRecorderMemory, Ref.Ref<ReadonlyArray<RecordedEvent>>>()(
  "csi-driver-spiffe/layers/EventRecorder/EventRecorderMemory"
) {}

export const layerMemory = Layer.effect(
  EventRecorder,
  Effect.gen(function*() {
    const events = yield* EventRecorderMemory
    return EventRecorder.of({ record: (e) => Ref.update(events, (all) => [...all, e]) })
  })
).pipe(Layer.provideMerge(Layer.effect(EventRecorderMemory, Ref.make<ReadonlyArray<RecordedEvent>>([]))))

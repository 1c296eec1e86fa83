/**
 * Kubernetes Events, so that `kubectl describe pod` (or describe on a CertificateRequest or
 * ConfigMap) says why something did not happen.
 *
 * Owns: turning (object, type, reason, message) into a core/v1 Event. Recording is best effort: a
 * failure to record is logged, never propagated, so an Event can never fail a publish or a decision.
 * Messages are written by callers from error summaries: no tokens, keys or CSRs.
 */
import { Context } from "effect"
import type { Effect } from "effect"
import type { ObjectReference } from "../domain/KubeObjects.ts"

export interface RecordedEvent {
  readonly involvedObject: ObjectReference
  readonly type: "Normal" | "Warning"
  readonly reason: string
  readonly message: string
}

export interface EventRecorderShape {
  readonly record: (event: RecordedEvent) => Effect.Effect<void>
}

export class EventRecorder extends Context.Service<EventRecorder, EventRecorderShape>()("csi-driver-spiffe/services/EventRecorder") {}

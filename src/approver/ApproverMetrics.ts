/**
 * The approver's metrics. Every label is bounded: the decision result, the field path a denial
 * names (a fixed set of request fields, never the free text), and why a watch restarted.
 */
import { Clock, Effect, Exit, Metric } from "effect"
import type { ReconcileResult } from "./Reconcile.ts"

const decisions = Metric.counter("csi_spiffe_approver_decisions_total", {
  description: "Reconciles by result (approved, denied, skipped, error).",
  incremental: true
})

const denialReasons = Metric.counter("csi_spiffe_approver_denial_reasons_total", {
  description: "Denial reasons by the request field they name (e.g. spec.duration, csr.uris).",
  incremental: true
})

const reconcileDuration = Metric.histogram("csi_spiffe_approver_reconcile_duration_seconds", {
  description: "Time of one reconcile: read, evaluate, status write.",
  // Seconds: a local reconcile takes milliseconds; a slow API server, seconds.
  boundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
})

const watchRestarts = Metric.counter("csi_spiffe_approver_watch_restarts_total", {
  description: "CertificateRequest watch restarts by cause (closed, gone, error).",
  incremental: true
})

/** The field path at the start of a reason (`spec.duration: must be …` → `spec.duration`). */
export const reasonField = (reason: string): string => {
  const at = reason.indexOf(":")
  const field = at > 0 ? reason.slice(0, at) : "other"
  return /^[A-Za-z0-9_.[\]-]{1,64}$/.test(field) ? field : "other"
}

export const timeReconcile = <E, R>(self: Effect.Effect<ReconcileResult, E, R>) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const exit = yield* Effect.exit(self)
    yield* Metric.update(reconcileDuration, ((yield* Clock.currentTimeMillis) - start) / 1000)
    const result = Exit.isSuccess(exit) ? exit.value._tag.toLowerCase() : "error"
    yield* Metric.update(Metric.withAttributes(decisions, { result }), 1)
    if (Exit.isSuccess(exit) && exit.value._tag === "Denied") {
      for (const field of new Set(exit.value.reasons.map(reasonField))) {
        yield* Metric.update(Metric.withAttributes(denialReasons, { field }), 1)
      }
    }
    return yield* exit
  })

export const countWatchRestart = (cause: "closed" | "gone" | "error") => Metric.update(Metric.withAttributes(watchRestarts, { cause }), 1)

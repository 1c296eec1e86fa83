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

/**
 * controller-runtime's reconcile metrics (kubernetes-sigs/controller-runtime, pkg/internal/controller/
 * metrics), under its names and labels, for dashboards built on the Go original: one controller,
 * named as the original's (`certificaterequest`).
 */
export const CONTROLLER_NAME = "certificaterequest"

const reconcileTotal = Metric.counter("controller_runtime_reconcile_total", {
  description: "Reconciles by controller and result (success, error).",
  incremental: true
})

const reconcileErrors = Metric.counter("controller_runtime_reconcile_errors_total", {
  description: "Reconciles that failed, by controller.",
  incremental: true
})

const reconcileTime = Metric.histogram("controller_runtime_reconcile_time_seconds", {
  description: "Time of one reconcile, by controller.",
  // controller-runtime's buckets, 5 ms to 60 s.
  boundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60]
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
    const seconds = ((yield* Clock.currentTimeMillis) - start) / 1000
    yield* Metric.update(reconcileDuration, seconds)
    const result = Exit.isSuccess(exit) ? exit.value._tag.toLowerCase() : "error"
    yield* Metric.update(Metric.withAttributes(decisions, { result }), 1)
    const controller = { controller: CONTROLLER_NAME }
    yield* Metric.update(Metric.withAttributes(reconcileTime, controller), seconds)
    yield* Metric.update(Metric.withAttributes(reconcileTotal, { ...controller, result: Exit.isSuccess(exit) ? "success" : "error" }), 1)
    if (Exit.isFailure(exit)) yield* Metric.update(Metric.withAttributes(reconcileErrors, controller), 1)
    if (Exit.isSuccess(exit) && exit.value._tag === "Denied") {
      for (const field of new Set(exit.value.reasons.map(reasonField))) {
        yield* Metric.update(Metric.withAttributes(denialReasons, { field }), 1)
      }
    }
    return yield* exit
  })

export const countWatchRestart = (cause: "closed" | "gone" | "error") => Metric.update(Metric.withAttributes(watchRestarts, { cause }), 1)

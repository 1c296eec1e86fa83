/**
 * The approver's metrics. Every label is bounded: the decision result, the field path a denial
 * names (a fixed set of request fields, never the free text), and why a watch restarted.
 */
import { Effect, Exit, Metric } from "effect"
import { counter, histogram, increment, RECONCILE_BOUNDARIES, timed } from "../layers/Metrics.ts"
import type { ReconcileResult } from "./Reconcile.ts"

const decisions = counter("csi_spiffe_approver_decisions_total", "Reconciles by result (approved, denied, skipped, error).")

const denialReasons = counter("csi_spiffe_approver_denial_reasons_total", "Denial reasons by the request field they name (e.g. spec.duration, csr.uris).")

const reconcileDuration = histogram("csi_spiffe_approver_reconcile_duration_seconds", "Time of one reconcile: read, evaluate, status write.", RECONCILE_BOUNDARIES)

/**
 * controller-runtime's reconcile metrics (kubernetes-sigs/controller-runtime, pkg/internal/controller/
 * metrics), under its names and labels, for dashboards built on the Go original: one controller,
 * named as the original's (`certificaterequest`).
 */
export const CONTROLLER_NAME = "certificaterequest"

const reconcileTotal = counter("controller_runtime_reconcile_total", "Reconciles by controller and result (success, error).")

const reconcileErrors = counter("controller_runtime_reconcile_errors_total", "Reconciles that failed, by controller.")

const reconcileTime = histogram(
  "controller_runtime_reconcile_time_seconds",
  "Time of one reconcile, by controller.",
  // controller-runtime's buckets, 5 ms to 60 s.
  [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60]
)

const watchRestarts = counter("csi_spiffe_approver_watch_restarts_total", "CertificateRequest watch restarts by cause (closed, gone, error).")

/** The field path at the start of a reason (`spec.duration: must be …` → `spec.duration`). */
export const reasonField = (reason: string): string => {
  const at = reason.indexOf(":")
  const field = at > 0 ? reason.slice(0, at) : "other"
  return /^[A-Za-z0-9_.[\]-]{1,64}$/.test(field) ? field : "other"
}

export const timeReconcile = <E, R>(self: Effect.Effect<ReconcileResult, E, R>) =>
  timed(self, (exit, seconds) =>
    Effect.gen(function*() {
      yield* Metric.update(reconcileDuration, seconds)
      yield* increment(decisions, { result: Exit.isSuccess(exit) ? exit.value._tag.toLowerCase() : "error" })
      const controller = { controller: CONTROLLER_NAME }
      yield* Metric.update(Metric.withAttributes(reconcileTime, controller), seconds)
      yield* increment(reconcileTotal, { ...controller, result: Exit.isSuccess(exit) ? "success" : "error" })
      if (Exit.isFailure(exit)) yield* increment(reconcileErrors, controller)
      if (Exit.isSuccess(exit) && exit.value._tag === "Denied") {
        for (const field of new Set(exit.value.reasons.map(reasonField))) yield* increment(denialReasons, { field })
      }
    }))

export const countWatchRestart = (cause: "closed" | "gone" | "error") => increment(watchRestarts, { cause })

/**
 * The signer's metrics. Labels are bounded: the result (issued, denied, failed, waiting, skipped,
 * error) and the Denied/Failed condition reason (a fixed set of our own reasons).
 */
import { Effect, Exit, Metric } from "effect"
import { counter, histogram, increment, RECONCILE_BOUNDARIES, timed } from "../layers/Metrics.ts"

export const CONTROLLER_NAME = "podcertificaterequest"

const requests = counter("csi_spiffe_signer_requests_total", "PodCertificateRequests answered, by result (issued, denied, failed) and condition reason.")

const reconciles = counter("csi_spiffe_signer_reconciles_total", "Reconciles by result (issued, denied, failed, waiting, skipped, error).")

const reconcileDuration = histogram("csi_spiffe_signer_reconcile_duration_seconds", "Time of one reconcile: read, decide, sign, status write.", RECONCILE_BOUNDARIES)

const issueLatency = histogram(
  "csi_spiffe_signer_issue_latency_seconds",
  "From the request's creationTimestamp to its answer (whole seconds, as the API server stamps it).",
  // The API server's creationTimestamp has one-second resolution; the 15-minute cleanup bounds the top.
  [1, 2, 5, 10, 30, 60, 120, 300, 600, 900]
)

const intermediates = counter("csi_spiffe_signer_intermediates_total", "Intermediate CA requests by result (issued, error).")

export type Outcome = "issued" | "denied" | "failed" | "waiting" | "skipped"

export const answered = (result: "issued" | "denied" | "failed", reason: string, latencySeconds: number | undefined) =>
  Effect.gen(function*() {
    yield* increment(requests, { result, reason })
    if (latencySeconds !== undefined) yield* Metric.update(issueLatency, Math.max(0, latencySeconds))
  })

export const intermediate = (result: "issued" | "error") => increment(intermediates, { result })

export const timeReconcile = <E, R>(self: Effect.Effect<Outcome, E, R>) =>
  timed(self, (exit, seconds) =>
    Effect.gen(function*() {
      yield* Metric.update(reconcileDuration, seconds)
      yield* increment(reconciles, { result: Exit.isSuccess(exit) ? exit.value : "error" })
    }))

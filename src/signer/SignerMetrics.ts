/**
 * The signer's metrics. Labels are bounded: the result (issued, denied, failed, waiting, skipped,
 * error) and the Denied/Failed condition reason (a fixed set of our own reasons).
 */
import { Clock, Effect, Exit, Metric } from "effect"

export const CONTROLLER_NAME = "podcertificaterequest"

const requests = Metric.counter("csi_spiffe_signer_requests_total", {
  description: "PodCertificateRequests answered, by result (issued, denied, failed) and condition reason.",
  incremental: true
})

const reconciles = Metric.counter("csi_spiffe_signer_reconciles_total", {
  description: "Reconciles by result (issued, denied, failed, waiting, skipped, error).",
  incremental: true
})

const reconcileDuration = Metric.histogram("csi_spiffe_signer_reconcile_duration_seconds", {
  description: "Time of one reconcile: read, decide, sign, status write.",
  boundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
})

const issueLatency = Metric.histogram("csi_spiffe_signer_issue_latency_seconds", {
  description: "From the request's creationTimestamp to its answer (whole seconds, as the API server stamps it).",
  // The API server's creationTimestamp has one-second resolution; the 15-minute cleanup bounds the top.
  boundaries: [1, 2, 5, 10, 30, 60, 120, 300, 600, 900]
})

const intermediates = Metric.counter("csi_spiffe_signer_intermediates_total", {
  description: "Intermediate CA requests by result (issued, error).",
  incremental: true
})

export type Outcome = "issued" | "denied" | "failed" | "waiting" | "skipped"

export const answered = (result: "issued" | "denied" | "failed", reason: string, latencySeconds: number | undefined) =>
  Effect.gen(function*() {
    yield* Metric.update(Metric.withAttributes(requests, { result, reason }), 1)
    if (latencySeconds !== undefined) yield* Metric.update(issueLatency, Math.max(0, latencySeconds))
  })

export const intermediate = (result: "issued" | "error") => Metric.update(Metric.withAttributes(intermediates, { result }), 1)

export const timeReconcile = <E, R>(self: Effect.Effect<Outcome, E, R>) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const exit = yield* Effect.exit(self)
    yield* Metric.update(reconcileDuration, ((yield* Clock.currentTimeMillis) - start) / 1000)
    yield* Metric.update(Metric.withAttributes(reconciles, { result: Exit.isSuccess(exit) ? exit.value : "error" }), 1)
    return yield* exit
  })

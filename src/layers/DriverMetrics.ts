/**
 * The driver's metrics. Counters and histograms have bounded labels only (kind, result), so they
 * never grow with the number of pods a node has seen. Per-volume gauges are not stored at all: they
 * are rendered from the volume manager's current state at each scrape (`renderVolumeGauges`), so a
 * volume's series disappear with the volume.
 */
import { Clock, Effect, Exit, Metric } from "effect"
import type { VolumeStatus } from "../services/VolumeManager.ts"

export type IssuanceKind = "first" | "renewal"

/** Seconds; from a fast local issuer (tens of ms) to the 60 s issuance bound. */
const LATENCY_BOUNDARIES = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

export const publishDuration = Metric.histogram("csi_spiffe_publish_duration_seconds", {
  description: "NodePublishVolume handling time, successful or not.",
  boundaries: LATENCY_BOUNDARIES
})

const issuanceDuration = Metric.histogram("csi_spiffe_issuance_duration_seconds", {
  description: "Time from starting an issuance to the files being written, by kind (first, renewal).",
  boundaries: LATENCY_BOUNDARIES
})

const issuanceTotal = Metric.counter("csi_spiffe_issuance_total", {
  description: "Issuance attempts by kind (first, renewal) and result (success or the failure reason).",
  incremental: true
})

/**
 * cert-manager/csi-lib's issue counters (its metrics/metrics.go), under its names. csi-lib labels
 * them by node hash and volume ID, and never deletes a series, so they grow with every pod a node
 * ever ran; here they carry no labels (the scrape's target already names the node) and count the
 * same thing: every issuance attempt, first or renewal, and every failed one.
 */
const csiLibIssueRequests = Metric.counter("certmanager_csi_issue_requests_total", {
  description: "Issuance attempts (first and renewal), as csi-lib counts them.",
  incremental: true
})

const csiLibIssueErrors = Metric.counter("certmanager_csi_issue_errors_total", {
  description: "Failed issuance attempts (first and renewal), as csi-lib counts them.",
  incremental: true
})

/** Records the attempt's duration and result; the failure reason is the error's tag or reason. */
export const timeIssuance = (kind: IssuanceKind) =>
<A, E extends { readonly _tag: string; readonly reason?: string }, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const exit = yield* Effect.exit(self)
    const seconds = ((yield* Clock.currentTimeMillis) - start) / 1000
    const result = Exit.isSuccess(exit)
      ? "success"
      : exit.cause.reasons.find((r) => r._tag === "Fail") !== undefined
      ? failureLabel(exit)
      : "interrupted"
    yield* Metric.update(Metric.withAttributes(issuanceDuration, { kind }), seconds)
    yield* Metric.update(Metric.withAttributes(issuanceTotal, { kind, result }), 1)
    yield* Metric.update(csiLibIssueRequests, 1)
    // Updated by 0 on success too, so the series exists from the first attempt on.
    yield* Metric.update(csiLibIssueErrors, result !== "success" && result !== "interrupted" ? 1 : 0)
    return yield* exit
  })

const failureLabel = <A, E extends { readonly _tag: string; readonly reason?: string }>(exit: Exit.Exit<A, E>): string => {
  if (Exit.isSuccess(exit)) return "success"
  const fail = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (fail === undefined || fail._tag !== "Fail") return "defect"
  const e = fail.error
  return (e.reason ?? e._tag).replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase()
}

export const timePublish = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const exit = yield* Effect.exit(self)
    yield* Metric.update(publishDuration, ((yield* Clock.currentTimeMillis) - start) / 1000)
    return yield* exit
  })

const escape = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

/**
 * Per-volume gauges (csi-lib's expiry / renewal / readiness, keyed by volume instead of request),
 * plus the managed-volume count, in Prometheus text format.
 */
export const renderVolumeGauges = (nodeId: string, volumes: ReadonlyArray<VolumeStatus>): string => {
  const lines: Array<string> = []
  const labels = (v: VolumeStatus) => `volume="${escape(v.volumeId)}",namespace="${escape(v.podNamespace)}",pod="${escape(v.podName)}"`
  lines.push("# HELP csi_spiffe_managed_volumes Volumes this driver manages (issued or waiting for their first certificate).")
  lines.push("# TYPE csi_spiffe_managed_volumes gauge")
  lines.push(`csi_spiffe_managed_volumes{node="${escape(nodeId)}"} ${volumes.length}`)
  // csi-lib's name for the same count (it labels by a hash of the node name; here the name itself).
  lines.push("# HELP certmanager_csi_managed_volume_count Volumes this driver manages, under csi-lib's name.")
  lines.push("# TYPE certmanager_csi_managed_volume_count gauge")
  lines.push(`certmanager_csi_managed_volume_count{node="${escape(nodeId)}"} ${volumes.length}`)
  lines.push("# HELP csi_spiffe_volume_ready 1 when the volume holds a certificate, else 0.")
  lines.push("# TYPE csi_spiffe_volume_ready gauge")
  for (const v of volumes) lines.push(`csi_spiffe_volume_ready{${labels(v)}} ${v.issued ? 1 : 0}`)
  lines.push("# HELP csi_spiffe_volume_expiration_timestamp_seconds NotAfter of the volume's current certificate.")
  lines.push("# TYPE csi_spiffe_volume_expiration_timestamp_seconds gauge")
  for (const v of volumes) if (v.notAfter !== undefined) lines.push(`csi_spiffe_volume_expiration_timestamp_seconds{${labels(v)}} ${v.notAfter / 1000}`)
  lines.push("# HELP csi_spiffe_volume_renewal_timestamp_seconds When the volume's certificate is due for renewal.")
  lines.push("# TYPE csi_spiffe_volume_renewal_timestamp_seconds gauge")
  for (const v of volumes) {
    if (v.nextIssuanceAt !== undefined) lines.push(`csi_spiffe_volume_renewal_timestamp_seconds{${labels(v)}} ${v.nextIssuanceAt / 1000}`)
  }
  return lines.join("\n") + "\n"
}

/**
 * The driver's metrics. Counters and histograms have bounded labels only (kind, result), so they
 * never grow with the number of pods a node has seen. Per-volume gauges are not stored at all: they
 * are rendered from the volume manager's current state at each scrape (`renderVolumeGauges`), so a
 * volume's series disappear with the volume.
 */
import { Effect, Exit, Metric } from "effect"
import type { VolumeStatus } from "../services/VolumeManager.ts"
import { counter, exposition, histogram, increment, timed } from "./Metrics.ts"

export type IssuanceKind = "first" | "renewal"

/** Seconds; from a fast local issuer (tens of ms) to the 60 s issuance bound. */
const LATENCY_BOUNDARIES = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

export const publishDuration = histogram("csi_spiffe_publish_duration_seconds", "NodePublishVolume handling time, successful or not.", LATENCY_BOUNDARIES)

const issuanceDuration = histogram(
  "csi_spiffe_issuance_duration_seconds",
  "Time from starting an issuance to the files being written, by kind (first, renewal).",
  LATENCY_BOUNDARIES
)

const issuanceTotal = counter("csi_spiffe_issuance_total", "Issuance attempts by kind (first, renewal) and result (success or the failure reason).")

/**
 * cert-manager/csi-lib's issue counters (its metrics/metrics.go), under its names. csi-lib labels
 * them by node hash and volume ID, and never deletes a series, so they grow with every pod a node
 * ever ran; here they carry no labels (the scrape's target already names the node) and count the
 * same thing: every issuance attempt, first or renewal, and every failed one.
 */
const csiLibIssueRequests = counter("certmanager_csi_issue_requests_total", "Issuance attempts (first and renewal), as csi-lib counts them.")

const csiLibIssueErrors = counter("certmanager_csi_issue_errors_total", "Failed issuance attempts (first and renewal), as csi-lib counts them.")

/** Records the attempt's duration and result; the failure reason is the error's tag or reason. */
export const timeIssuance = (kind: IssuanceKind) =>
<A, E extends { readonly _tag: string; readonly reason?: string }, R>(self: Effect.Effect<A, E, R>) =>
  timed(self, (exit, seconds) =>
    Effect.gen(function*() {
      const result = Exit.isSuccess(exit)
        ? "success"
        : exit.cause.reasons.find((r) => r._tag === "Fail") !== undefined
        ? failureLabel(exit)
        : "interrupted"
      yield* Metric.update(Metric.withAttributes(issuanceDuration, { kind }), seconds)
      yield* increment(issuanceTotal, { kind, result })
      yield* increment(csiLibIssueRequests)
      // Updated by 0 on success too, so the series exists from the first attempt on.
      yield* Metric.update(csiLibIssueErrors, result !== "success" && result !== "interrupted" ? 1 : 0)
    }))

const failureLabel = <A, E extends { readonly _tag: string; readonly reason?: string }>(exit: Exit.Exit<A, E>): string => {
  if (Exit.isSuccess(exit)) return "success"
  const fail = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (fail === undefined || fail._tag !== "Fail") return "defect"
  const e = fail.error
  return (e.reason ?? e._tag).replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase()
}

export const timePublish = <A, E, R>(self: Effect.Effect<A, E, R>) => timed(self, (_, seconds) => Metric.update(publishDuration, seconds))

/**
 * Per-volume gauges (csi-lib's expiry / renewal / readiness, keyed by volume instead of request),
 * plus the managed-volume count, in Prometheus text format.
 */
export const renderVolumeGauges = (nodeId: string, volumes: ReadonlyArray<VolumeStatus>): string => {
  const labels = (v: VolumeStatus) => ({ volume: v.volumeId, namespace: v.podNamespace, pod: v.podName })
  const perVolume = (value: (v: VolumeStatus) => number | undefined) =>
    volumes.flatMap((v) => {
      const n = value(v)
      return n === undefined ? [] : [{ labels: labels(v), value: n }]
    })
  const managed = [{ labels: { node: nodeId }, value: volumes.length }]
  return exposition([
    { name: "csi_spiffe_managed_volumes", type: "gauge", help: "Volumes this driver manages (issued or waiting for their first certificate).", samples: managed },
    // csi-lib's name for the same count (it labels by a hash of the node name; here the name itself).
    { name: "certmanager_csi_managed_volume_count", type: "gauge", help: "Volumes this driver manages, under csi-lib's name.", samples: managed },
    { name: "csi_spiffe_volume_ready", type: "gauge", help: "1 when the volume holds a certificate, else 0.", samples: perVolume((v) => (v.issued ? 1 : 0)) },
    {
      name: "csi_spiffe_volume_expiration_timestamp_seconds",
      type: "gauge",
      help: "NotAfter of the volume's current certificate.",
      samples: perVolume((v) => (v.notAfter === undefined ? undefined : v.notAfter / 1000))
    },
    {
      name: "csi_spiffe_volume_renewal_timestamp_seconds",
      type: "gauge",
      help: "When the volume's certificate is due for renewal.",
      samples: perVolume((v) => (v.nextIssuanceAt === undefined ? undefined : v.nextIssuanceAt / 1000))
    }
  ])
}

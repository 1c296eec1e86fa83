/**
 * Composition root of the approver: KubeClient, the runtime issuer, the evaluator, the Lease-based
 * leader election and the controller, plus the readiness and metrics endpoints.
 */
import { NodeFileSystem } from "@effect/platform-node"
import { Duration, Effect, Layer } from "effect"
import * as Schedules from "../domain/Schedules.ts"
import * as ApproverConfigLayers from "../services/ApproverConfig.ts"
import type { ApproverSettings } from "../config/ApproverFlags.ts"
import * as ControllerLayers from "../approver/Controller.ts"
import { Controller } from "../approver/Controller.ts"
import * as HttpEndpoint from "../services/HttpEndpoint.ts"
import { IssuerConfig } from "../services/IssuerConfig.ts"
import type { KubeClient } from "../services/KubeClient.ts"
import { LeaderElection } from "../services/LeaderElection.ts"
import * as EvaluatorLayers from "../approver/Evaluator.ts"
import * as EventRecorderLayers from "../layers/EventRecorder.ts"
import * as HttpEndpointLayers from "../layers/HttpEndpoint.ts"
import * as IdleGc from "../layers/IdleGc.ts"
import * as IssuerConfigLayers from "../layers/IssuerConfig.ts"
import * as KubeClientLayers from "../layers/KubeClient.ts"
import * as LeaderElectionLayers from "../layers/LeaderElection.ts"
import * as Logging from "../layers/Logging.ts"
import * as ProcessMetrics from "../layers/ProcessMetrics.ts"

const readiness = Effect.gen(function*() {
  const controller = yield* Controller
  return {
    "/healthz": Effect.succeed(HttpEndpoint.ok),
    "/readyz": Effect.map(controller.ready, (ready) => (ready ? HttpEndpoint.ok : HttpEndpoint.notReady("leading but the first list of CertificateRequests is not done")))
  }
})

/** The approver's /metrics: its own series, client-go's leader-election gauge, process and runtime metrics. */
export const metricsRoutes = (driverName: string) =>
  Effect.gen(function*() {
    const leader = yield* LeaderElection
    const processMetrics = yield* ProcessMetrics.make
    return {
      "/metrics": Effect.gen(function*() {
        const leading = yield* leader.isLeader
        const name = driverName.replace(/\\/g, "\\\\").replace(/"/g, "\\\"")
        return yield* HttpEndpointLayers.prometheus(
          [
            "# HELP csi_spiffe_approver_leader 1 while this replica holds the leader-election Lease.",
            "# TYPE csi_spiffe_approver_leader gauge",
            `csi_spiffe_approver_leader{name="${name}"} ${leading ? 1 : 0}`,
            // client-go's leader-election metric, as the original's controller-runtime exposes it.
            "# HELP leader_election_master_status 1 while this replica holds the named Lease, else 0 (client-go's name).",
            "# TYPE leader_election_master_status gauge",
            `leader_election_master_status{name="${name}"} ${leading ? 1 : 0}`,
            ""
          ].join("\n") + (yield* processMetrics)
        )
      })
    }
  })

/** Completes once the issuer configuration has been read (the ConfigMap listed, or static). */
const issuerLoaded = Layer.effectDiscard(
  Effect.gen(function*() {
    const issuers = yield* IssuerConfig
    yield* issuers.awaitLoaded
  })
)

/**
 * The approver's layers over a given KubeClient: the real one in `ApproverLive`, the memory twin in
 * tests of the whole graph (start-up and shutdown order, the Lease released on scope close).
 */
export const approverWith = <E>(settings: ApproverSettings, KubeLive: Layer.Layer<KubeClient, E>) => {
  const ConfigLive = ApproverConfigLayers.layer(settings.config)
  // The component name on the approver's Events, as `kubectl describe` shows it under "From".
  const EventsLive = EventRecorderLayers.layer("csi-driver-spiffe-approver").pipe(Layer.provide(KubeLive))
  const IssuerLive = IssuerConfigLayers.layerFor({
    issuer: settings.staticIssuer ? settings.config.issuer : undefined,
    runtimeIssuanceConfigMap: settings.runtimeIssuanceConfigMap
  }).pipe(Layer.provide([KubeLive, EventsLive]))
  const EvaluatorLive = EvaluatorLayers.layer.pipe(Layer.provide([ConfigLive, IssuerLive]))
  const LeaderLive = LeaderElectionLayers.layer.pipe(Layer.provide([KubeLive, ConfigLive]))
  // The controller starts only after the issuer configuration was read once, so that no request is
  // judged against the static fallback while the runtime ConfigMap is still being read.
  const ControllerLive = ControllerLayers.layer.pipe(
    Layer.provide([KubeLive, EvaluatorLive, LeaderLive, ConfigLive, EventsLive]),
    Layer.provide(issuerLoaded.pipe(Layer.provide(IssuerLive)))
  )
  const ReadinessLive = settings.readinessBindAddress === undefined
    ? Layer.empty
    : HttpEndpointLayers.layer(settings.readinessBindAddress, readiness).pipe(Layer.provide(ControllerLive))
  const MetricsLive = settings.metricsBindAddress === undefined
    ? Layer.empty
    : HttpEndpointLayers.layer(settings.metricsBindAddress, metricsRoutes(settings.config.csiDriverName)).pipe(Layer.provide([LeaderLive, NodeFileSystem.layer]))
  return Layer.mergeAll(ControllerLive, ReadinessLive, MetricsLive).pipe(Layer.provide(Logging.layer(settings.logLevel, settings.logFormat)))
}

/**
 * A memory-reducing full GC once the controller's queue has drained and stayed empty for
 * `IdleGc.QUIET`, then one a minute while it stays empty (`layers/IdleGc.ts` says why), as a
 * scoped fiber. Only in the live approver: the
 * tests of the whole graph over the memory twin have no heap worth collecting.
 */
const idleGc = IdleGc.layer(Effect.map(Effect.service(Controller), (controller) => controller.busy), Schedules.idleGcAgain)

export const ApproverLive = (settings: ApproverSettings) =>
  idleGc.pipe(
    Layer.provideMerge(approverWith(
      settings,
      KubeClientLayers.layer({
        kubeconfig: settings.kubeconfig,
        poolRefresh: settings.kubeClientPoolRefreshMillis === undefined ? undefined : Duration.millis(settings.kubeClientPoolRefreshMillis),
        kubeClientFlags: settings.kubeClient
      })
    ))
  )

/**
 * Composition root of the PodCertificateRequest signer: KubeClient, the Lease-based leader election
 * (Lease `csi-driver-spiffe-signer`), the intermediate CA over cert-manager, Events (component
 * `csi-driver-spiffe-signer`), the controller, and the readiness and metrics endpoints.
 */
import { NodeFileSystem } from "@effect/platform-node"
import { Duration, Effect, Layer } from "effect"
import type { SignerSettings } from "../config/SignerFlags.ts"
import * as HttpEndpoint from "../services/HttpEndpoint.ts"
import { LeaderElection } from "../services/LeaderElection.ts"
import * as SignerConfigLayers from "../services/SignerConfig.ts"
import * as EventRecorderLayers from "../layers/EventRecorder.ts"
import * as HttpEndpointLayers from "../layers/HttpEndpoint.ts"
import * as IntermediateLayers from "../layers/Intermediate.ts"
import * as KubeClientLayers from "../layers/KubeClient.ts"
import * as LeaderElectionLayers from "../layers/LeaderElection.ts"
import * as Logging from "../layers/Logging.ts"
import * as ProcessMetrics from "../layers/ProcessMetrics.ts"
import * as Controller from "../signer/Controller.ts"
import { SignerController } from "../signer/Controller.ts"

const readiness = Effect.gen(function*() {
  const controller = yield* SignerController
  return {
    "/healthz": Effect.succeed(HttpEndpoint.ok),
    "/readyz": Effect.map(controller.ready, (ready) =>
      ready ? HttpEndpoint.ok : HttpEndpoint.notReady("leading but the first list of PodCertificateRequests is not done or no intermediate CA is in force"))
  }
})

const metrics = Effect.gen(function*() {
  const leader = yield* LeaderElection
  const processMetrics = yield* ProcessMetrics.make
  return {
    "/metrics": Effect.gen(function*() {
      const leading = yield* leader.isLeader
      return yield* HttpEndpointLayers.prometheus(
        [
          "# HELP leader_election_master_status 1 while this replica holds the named Lease, else 0 (client-go's name).",
          "# TYPE leader_election_master_status gauge",
          `leader_election_master_status{name="${SignerConfigLayers.LEASE_NAME}"} ${leading ? 1 : 0}`,
          ""
        ].join("\n") + (yield* processMetrics)
      )
    })
  }
})

export const SignerLive = (settings: SignerSettings) => {
  const ConfigLive = SignerConfigLayers.layer(settings.config)
  const KubeLive = KubeClientLayers.layer({
    kubeconfig: settings.kubeconfig,
    poolRefresh: Duration.millis(settings.kubeClientPoolRefreshMillis),
    kubeClientFlags: settings.kubeClient
  })
  const LeaderLive = Layer.unwrap(Effect.map(LeaderElectionLayers.defaultIdentity, (identity) =>
    LeaderElectionLayers.layerLease({ namespace: settings.config.leaderElectionNamespace, name: SignerConfigLayers.LEASE_NAME, identity }))).pipe(
      Layer.provide(KubeLive)
    )
  const IntermediateLive = IntermediateLayers.layer.pipe(Layer.provide([KubeLive, ConfigLive]))
  // The component name on the signer's Events, as `kubectl describe pod` shows it under "From".
  const EventsLive = EventRecorderLayers.layer("csi-driver-spiffe-signer").pipe(Layer.provide(KubeLive))
  const ControllerLive = Controller.layer.pipe(Layer.provide([KubeLive, EventsLive, ConfigLive, IntermediateLive, LeaderLive]))
  const ReadinessLive = settings.readinessBindAddress === undefined
    ? Layer.empty
    : HttpEndpointLayers.layer(settings.readinessBindAddress, readiness).pipe(Layer.provide(ControllerLive))
  const MetricsLive = settings.metricsBindAddress === undefined
    ? Layer.empty
    : HttpEndpointLayers.layer(settings.metricsBindAddress, metrics).pipe(Layer.provide([LeaderLive, NodeFileSystem.layer]))
  return Layer.mergeAll(ControllerLive, ReadinessLive, MetricsLive).pipe(Layer.provide(Logging.layer(settings.logLevel, settings.logFormat)))
}

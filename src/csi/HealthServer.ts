/**
 * The driver's HTTP endpoint on `--metrics-bind-address`: `/metrics` (Effect's counters and
 * histograms, then the per-volume gauges rendered from current state, then the process and Node.js
 * runtime metrics), `/healthz` (the process
 * serves requests) and `/readyz` (also not ready until the kubelet registered the plugin, when the
 * driver serves the registration itself). Plain HTTP without authentication, as the original's approver
 * metrics; expose it on the pod network only.
 */
import { Effect, Option, SubscriptionRef } from "effect"
import { renderVolumeGauges } from "../layers/DriverMetrics.ts"
import * as HttpEndpointLayers from "../layers/HttpEndpoint.ts"
import * as ProcessMetrics from "../layers/ProcessMetrics.ts"
import { CsiPlugin } from "../services/CsiPlugin.ts"
import { DriverConfig } from "../services/DriverConfig.ts"
import * as HttpEndpoint from "../services/HttpEndpoint.ts"
import { IssuerConfig } from "../services/IssuerConfig.ts"
import { VolumeManager } from "../services/VolumeManager.ts"
import { notReadyReason, Registration } from "./Registration.ts"

export const HealthServer = HttpEndpoint.HttpEndpoint

export const layer = (bindAddress: string) =>
  HttpEndpointLayers.layer(
    bindAddress,
    Effect.gen(function*() {
      const config = yield* DriverConfig
      const plugin = yield* CsiPlugin
      const manager = yield* VolumeManager
      const issuers = yield* IssuerConfig
      // Absent with --plugin-registration=false: a node-driver-registrar sidecar then owns it.
      const registration = yield* Effect.serviceOption(Registration)
      const processMetrics = yield* ProcessMetrics.make
      return {
        "/metrics": Effect.gen(function*() {
          const volumes = yield* manager.statuses
          return yield* HttpEndpointLayers.prometheus(renderVolumeGauges(config.nodeId, volumes) + (yield* processMetrics))
        }),
        "/healthz": Effect.succeed(HttpEndpoint.ok),
        // Stricter than the CSI Probe (which the livenessprobe sidecar turns into restarts): also
        // not ready while no issuer is configured, so `kubectl get pods` shows it.
        "/readyz": Effect.gen(function*() {
          if (!(yield* plugin.probe).ready) return HttpEndpoint.notReady("starting (resuming volumes, syncing requests, reading issuer configuration)")
          if ((yield* issuers.current) === undefined) return HttpEndpoint.notReady("no issuer configured (set --issuer-name or the runtime issuance ConfigMap)")
          if (Option.isSome(registration)) {
            const why = notReadyReason(yield* SubscriptionRef.get(registration.value.state))
            if (why !== undefined) return HttpEndpoint.notReady(why)
          }
          return HttpEndpoint.ok
        })
      }
    })
  )

/**
 * The driver's HTTP endpoint on `--metrics-bind-address`: `/metrics` (Prometheus text: Effect's
 * counters and histograms, then the per-volume gauges), `/healthz` (the process serves requests) and
 * `/readyz` (the CSI Probe's answer — volumes resumed, request watch synced, issuer configuration
 * read — and an issuer is configured).
 *
 * Owns: the listening socket, for the layer's lifetime. Plain HTTP without authentication, as the
 * original's approver metrics; bind it to the pod network only.
 */
import { Context, Effect, FiberSet, Layer } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { PrometheusMetrics } from "effect/observability"
import { renderVolumeGauges } from "../layers/DriverMetrics.ts"
import { CsiPlugin } from "../services/CsiPlugin.ts"
import { DriverConfig } from "../services/DriverConfig.ts"
import { IssuerConfig } from "../services/IssuerConfig.ts"
import { VolumeManager } from "../services/VolumeManager.ts"

export const splitBindAddress = (address: string): { readonly host: string | undefined; readonly port: number } => {
  const at = address.lastIndexOf(":")
  const host = address.slice(0, at).replace(/^\[|\]$/g, "")
  return { host: host === "" ? undefined : host, port: Number(address.slice(at + 1)) }
}

/** The running endpoint: the port actually bound (useful with port 0). */
export class HealthServer extends Context.Service<HealthServer, { readonly port: number }>()("csi-driver-spiffe/csi/HealthServer") {}

export const layer = (bindAddress: string) =>
  Layer.effect(
    HealthServer,
    Effect.gen(function*() {
      const config = yield* DriverConfig
      const plugin = yield* CsiPlugin
      const manager = yield* VolumeManager
      const issuers = yield* IssuerConfig
      // Request handlers run as fibers of this layer, interrupted when it closes.
      const run = yield* FiberSet.makeRuntime()

      const respond = (path: string): Effect.Effect<{ status: number; type: string; body: string }> => {
        switch (path) {
          case "/metrics":
            return Effect.gen(function*() {
              const counters = yield* PrometheusMetrics.format()
              const gauges = renderVolumeGauges(config.nodeId, yield* manager.statuses)
              return { status: 200, type: "text/plain; version=0.0.4", body: `${counters.trimEnd()}\n${gauges}` }
            })
          case "/healthz":
            return Effect.succeed({ status: 200, type: "text/plain", body: "ok\n" })
          case "/readyz":
            // Stricter than the CSI Probe (which the livenessprobe sidecar turns into restarts): not
            // ready while no issuer is configured either, so `kubectl get pods` shows it.
            return Effect.gen(function*() {
              const { ready } = yield* plugin.probe
              if (!ready) return { status: 503, type: "text/plain", body: "not ready: starting (resuming volumes, syncing requests, reading issuer configuration)\n" }
              if ((yield* issuers.current) === undefined) {
                return { status: 503, type: "text/plain", body: "not ready: no issuer configured (set --issuer-name or the runtime issuance ConfigMap)\n" }
              }
              return { status: 200, type: "text/plain", body: "ok\n" }
            })
          default:
            return Effect.succeed({ status: 404, type: "text/plain", body: "not found\n" })
        }
      }

      const server = yield* Effect.acquireRelease(
        Effect.callback<http.Server, Error>((resume) => {
          const s = http.createServer((req, res) => {
            const path = (req.url ?? "/").split("?")[0]!
            run(
              respond(path).pipe(
                Effect.tap((r) =>
                  Effect.sync(() => {
                    res.writeHead(r.status, { "content-type": r.type })
                    res.end(r.body)
                  })
                )
              )
            )
          })
          const { host, port } = splitBindAddress(bindAddress)
          s.once("error", (e) => resume(Effect.fail(e)))
          s.listen(port, host, () => resume(Effect.succeed(s)))
        }),
        (s) =>
          Effect.callback<void>((resume) => {
            s.close(() => resume(Effect.void))
            s.closeAllConnections()
          })
      )
      const address = server.address() as AddressInfo
      yield* Effect.logInfo("metrics and health endpoint listening", { address: `${address.address}:${address.port}` })
      return HealthServer.of({ port: address.port })
    })
  )

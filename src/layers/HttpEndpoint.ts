/**
 * The live HTTP endpoint (contract: `services/HttpEndpoint.ts`) over node:http: a fixed table of GET
 * paths, each answered by an Effect. Owns the listening socket for the layer's lifetime; request
 * handlers run as fibers of the layer (interrupted when it closes).
 */
import { Clock, Effect, FiberSet, Layer } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { PrometheusMetrics } from "effect/observability"
import { httpDate } from "../domain/UtcTime.ts"
import { HttpEndpoint, type HttpResponse, type Routes } from "../services/HttpEndpoint.ts"

/** `host:port` or `:port` (all interfaces), as Go's flags spell bind addresses. */
export const splitBindAddress = (address: string): { readonly host: string | undefined; readonly port: number } => {
  const at = address.lastIndexOf(":")
  const host = address.slice(0, at).replace(/^\[|\]$/g, "")
  return { host: host === "" ? undefined : host, port: Number(address.slice(at + 1)) }
}

/** Effect's counters, gauges and histograms in Prometheus text, then `extra` (already formatted). */
export const prometheus = (extra: string = ""): Effect.Effect<HttpResponse> =>
  Effect.map(PrometheusMetrics.format(), (text) => ({
    status: 200,
    contentType: "text/plain; version=0.0.4",
    body: `${text.trimEnd()}\n${extra}`
  }))

export const serve = <R>(bindAddress: string, routes: Routes<R>) =>
  Effect.gen(function*() {
    const run = yield* FiberSet.makeRuntime<R>()
    const clock = yield* Clock.Clock
    const server = yield* Effect.acquireRelease(
      Effect.callback<http.Server, Error>((resume) => {
        const s = http.createServer((req, res) => {
          const handler = routes[(req.url ?? "/").split("?")[0]!]
          const respond = (r: HttpResponse) => {
            // Our own `date`, so node:http does not format one (`domain/UtcTime.ts` says why).
            res.writeHead(r.status, { "content-type": r.contentType ?? "text/plain", date: httpDate(clock.currentTimeMillisUnsafe()) })
            res.end(r.body)
          }
          if (handler === undefined || req.method !== "GET") respond({ status: 404, body: "not found\n" })
          else run(Effect.flatMap(handler, (r) => Effect.sync(() => respond(r))))
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
    yield* Effect.logInfo("HTTP endpoint listening", { address: `${address.address}:${address.port}`, paths: Object.keys(routes) })
    return address.port
  })

export const layer = <R>(bindAddress: string, routes: Effect.Effect<Routes<R>, never, R>) =>
  Layer.effect(HttpEndpoint, Effect.flatMap(routes, (r) => Effect.map(serve(bindAddress, r), (port) => HttpEndpoint.of({ port }))))

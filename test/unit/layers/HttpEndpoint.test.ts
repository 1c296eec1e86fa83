/**
 * The HTTP endpoint's live layer on a real loopback socket: each GET path answered by its Effect
 * with its status and content type, 404 for unknown paths and other methods, query strings ignored,
 * the bound port offered as the HttpEndpoint service, the socket closed with the layer's scope; and
 * the bind-address syntax Go's flags use.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Ref } from "effect"
import { TestClock } from "effect/testing"
import { httpDate } from "../../../src/domain/UtcTime.ts"
import * as HttpEndpointLayers from "../../../src/layers/HttpEndpoint.ts"
import * as HttpEndpoint from "../../../src/services/HttpEndpoint.ts"

const request = (port: number, path: string, method = "GET") =>
  Effect.promise(async () => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { method })
    return { status: res.status, type: res.headers.get("content-type"), body: await res.text() }
  })

describe("HttpEndpoint layer", () => {
  it.effect("serves its routes, 404 otherwise, and closes the socket with its scope", () =>
    Effect.gen(function*() {
      const hits = yield* Ref.make(0)
      const routes = Effect.succeed({
        "/healthz": Effect.succeed(HttpEndpoint.ok),
        "/readyz": Effect.as(Ref.update(hits, (n) => n + 1), HttpEndpoint.notReady("still starting")),
        "/metrics": Effect.succeed({ status: 200, body: "x 1\n", contentType: "text/plain; version=0.0.4" })
      })
      const port = yield* Effect.scoped(
        Effect.gen(function*() {
          const context = yield* Layer.build(HttpEndpointLayers.layer("127.0.0.1:0", routes))
          const { port } = Context.get(context, HttpEndpoint.HttpEndpoint)
          assert.isAbove(port, 0)
          assert.deepStrictEqual(yield* request(port, "/healthz"), { status: 200, type: "text/plain", body: "ok\n" })
          assert.deepStrictEqual(yield* request(port, "/readyz?verbose=1"), { status: 503, type: "text/plain", body: "not ready: still starting\n" })
          assert.strictEqual(yield* Ref.get(hits), 1, "the route's Effect ran once per request")
          assert.deepStrictEqual(yield* request(port, "/metrics"), { status: 200, type: "text/plain; version=0.0.4", body: "x 1\n" })
          assert.strictEqual((yield* request(port, "/nope")).status, 404)
          assert.strictEqual((yield* request(port, "/healthz", "POST")).status, 404)
          return port
        })
      )
      const after = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/healthz`).then(() => "answered", () => "refused"))
      assert.strictEqual(after, "refused")
    }))

  it.effect("dates every answer with the Clock's time, not node:http's own", () =>
    Effect.scoped(
      Effect.gen(function*() {
        // A time no wall clock reads now.
        const now = Date.UTC(2031, 4, 6, 7, 8, 9)
        yield* TestClock.setTime(now)
        const routes = Effect.succeed({ "/healthz": Effect.succeed(HttpEndpoint.ok) })
        const { port } = Context.get(yield* Layer.build(HttpEndpointLayers.layer("127.0.0.1:0", routes)), HttpEndpoint.HttpEndpoint)
        for (const path of ["/healthz", "/nope"]) {
          const date = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}${path}`).then((res) => res.headers.get("date")))
          assert.strictEqual(date, httpDate(now), path)
        }
      })
    ))

  it.effect("a port already in use fails the layer", () =>
    Effect.scoped(
      Effect.gen(function*() {
        const routes = Effect.succeed({ "/healthz": Effect.succeed(HttpEndpoint.ok) })
        const first = Context.get(yield* Layer.build(HttpEndpointLayers.layer("127.0.0.1:0", routes)), HttpEndpoint.HttpEndpoint)
        const exit = yield* Effect.exit(Layer.build(HttpEndpointLayers.layer(`127.0.0.1:${first.port}`, routes)))
        assert.strictEqual(exit._tag, "Failure")
      })
    ))
})

describe("splitBindAddress", () => {
  it("reads host:port, :port and bracketed IPv6 hosts", () => {
    assert.deepStrictEqual(HttpEndpointLayers.splitBindAddress("127.0.0.1:8080"), { host: "127.0.0.1", port: 8080 })
    assert.deepStrictEqual(HttpEndpointLayers.splitBindAddress(":9402"), { host: undefined, port: 9402 })
    assert.deepStrictEqual(HttpEndpointLayers.splitBindAddress("[::1]:6060"), { host: "::1", port: 6060 })
  })
})

/**
 * The driver's /metrics, /healthz and /readyz over real HTTP, scraped before issuance, after it and
 * after unpublish: exact series, and no per-volume series left behind.
 */
import { NodeFileSystem } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as HealthServer from "../../src/csi/HealthServer.ts"
import { CsiPlugin } from "../../src/services/CsiPlugin.ts"
import { driverOnNode, testConfig } from "../support/DriverStack.ts"
import { publishRequest, unpublishRequest } from "../support/publish.ts"

const config = testConfig()
const stack = HealthServer.layer("127.0.0.1:0").pipe(Layer.provide(NodeFileSystem.layer), Layer.provideMerge(driverOnNode(config)))

const get = (port: number, path: string) =>
  Effect.promise(async () => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`)
    return { status: res.status, body: await res.text() }
  })

/** The sample lines (no comments) of the series whose names start with `prefix`. */
const series = (body: string, prefix: string) => body.split("\n").filter((l) => l.startsWith(prefix)).sort()

describe("driver metrics and health endpoint", () => {
  it.effect("exposes exact series before issuance, after it, and after unpublish", () =>
    Effect.gen(function*() {
      const { port } = yield* HealthServer.HealthServer
      const plugin = yield* CsiPlugin
      assert.deepStrictEqual(yield* get(port, "/healthz"), { status: 200, body: "ok\n" })
      assert.deepStrictEqual(yield* get(port, "/readyz"), { status: 200, body: "ok\n" })
      assert.strictEqual((yield* get(port, "/nope")).status, 404)

      const before = (yield* get(port, "/metrics")).body
      assert.deepStrictEqual(series(before, "csi_spiffe_managed_volumes"), ['csi_spiffe_managed_volumes{node="test-node"} 0'])
      assert.deepStrictEqual(series(before, "csi_spiffe_volume_"), [])

      const { token, ...req } = publishRequest()
      yield* plugin.nodePublishVolume(req)
      const after = (yield* get(port, "/metrics")).body
      const labels = 'volume="csi-4d3c2b1a",namespace="sandbox",pod="my-csi-app"'
      // TestClock starts at 0: the certificate runs from 0 to 3600 s and renews at 2400 s.
      assert.deepStrictEqual(series(after, "csi_spiffe_volume_"), [
        `csi_spiffe_volume_expiration_timestamp_seconds{${labels}} 3600`,
        `csi_spiffe_volume_ready{${labels}} 1`,
        `csi_spiffe_volume_renewal_timestamp_seconds{${labels}} 2400`
      ])
      assert.deepStrictEqual(series(after, "csi_spiffe_managed_volumes"), ['csi_spiffe_managed_volumes{node="test-node"} 1'])
      assert.isTrue(series(after, "csi_spiffe_issuance_total").some((l) => /kind="first"/.test(l) && /result="success"/.test(l) && / 1$/.test(l)))
      assert.isTrue(series(after, "csi_spiffe_publish_duration_seconds_count").some((l) => / 1$/.test(l)))
      assert.notInclude(after, token, "no secret in metrics")

      yield* plugin.nodeUnpublishVolume(unpublishRequest())
      const gone = (yield* get(port, "/metrics")).body
      assert.deepStrictEqual(series(gone, "csi_spiffe_volume_"), [])
      assert.deepStrictEqual(series(gone, "csi_spiffe_managed_volumes"), ['csi_spiffe_managed_volumes{node="test-node"} 0'])
    }).pipe(Effect.provide(stack)))
})

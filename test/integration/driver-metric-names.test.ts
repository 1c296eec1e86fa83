/**
 * The driver's /metrics over real HTTP carries the names dashboards look for: cert-manager/csi-lib's
 * (`certmanager_csi_managed_volume_count{node}`, `certmanager_csi_issue_requests_total`,
 * `certmanager_csi_issue_errors_total`) and the process and Node.js runtime metrics.
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

const scrape = (port: number) => Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()))

/** Sample lines whose metric name is exactly `name`. */
const samples = (text: string, name: string) => text.split("\n").filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
const value = (line: string | undefined) => Number(line?.split(" ").at(-1))

describe("driver /metrics names", () => {
  it.effect("csi-lib's names and the process metrics, before and after an issuance", () =>
    Effect.gen(function*() {
      const { port } = yield* HealthServer.HealthServer
      const plugin = yield* CsiPlugin
      const before = yield* scrape(port)
      assert.deepStrictEqual(samples(before, "certmanager_csi_managed_volume_count"), ['certmanager_csi_managed_volume_count{node="test-node"} 0'])
      for (const name of ["process_resident_memory_bytes", "process_cpu_seconds_total", "process_start_time_seconds", "process_open_fds", "process_max_fds", "nodejs_heap_size_used_bytes", "nodejs_eventloop_lag_seconds"]) {
        assert.strictEqual(samples(before, name).length, 1, name)
      }
      const requestsBefore = value(samples(before, "certmanager_csi_issue_requests_total")[0]) || 0

      const { token: _token, ...req } = publishRequest()
      yield* plugin.nodePublishVolume(req)
      const after = yield* scrape(port)
      assert.deepStrictEqual(samples(after, "certmanager_csi_managed_volume_count"), ['certmanager_csi_managed_volume_count{node="test-node"} 1'])
      assert.strictEqual(value(samples(after, "certmanager_csi_issue_requests_total")[0]), requestsBefore + 1)
      assert.include(after, "# TYPE certmanager_csi_issue_errors_total counter")
      yield* plugin.nodeUnpublishVolume(unpublishRequest())
    }).pipe(Effect.provide(stack)))
})

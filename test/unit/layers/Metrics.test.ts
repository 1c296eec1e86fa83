/**
 * The metric names dashboards built on the Go original (and on Node services) look for, in a
 * rendered /metrics: process and Node.js runtime metrics on both binaries; on the approver
 * client-go's workqueue, leader-election and REST client series and controller-runtime's reconcile
 * counters with their label names; on the driver csi-lib's names (checked with the driver's
 * endpoint in test/integration/metrics.test.ts).
 */
import { NodeFileSystem } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { TestClock } from "effect/testing"
import { timeReconcile } from "../../../src/approver/ApproverMetrics.ts"
import * as WorkQueue from "../../../src/layers/WorkQueue.ts"
import { ConfigMaps } from "../../../src/domain/KubeObjects.ts"
import { metricsRoutes } from "../../../src/bin/ApproverLive.ts"
import * as HttpEndpoint from "../../../src/layers/HttpEndpoint.ts"
import * as Metrics from "../../../src/layers/Metrics.ts"
import { HttpEndpoint as HttpEndpointService } from "../../../src/services/HttpEndpoint.ts"
import { layerMemory, withRequestMetrics } from "../../../src/layers/KubeClient.ts"
import * as ProcessMetrics from "../../../src/layers/ProcessMetrics.ts"
import { KubeClient } from "../../../src/services/KubeClient.ts"
import { LeaderElection } from "../../../src/services/LeaderElection.ts"

/** Sample lines (no comments) whose metric name is exactly `name`. */
const samples = (text: string, name: string) => text.split("\n").filter((l) => l === name || l.startsWith(`${name}{`) || l.startsWith(`${name} `))

const PROCESS_NAMES = [
  "process_cpu_user_seconds_total",
  "process_cpu_system_seconds_total",
  "process_cpu_seconds_total",
  "process_start_time_seconds",
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
  "process_max_fds",
  "nodejs_eventloop_lag_seconds",
  "nodejs_eventloop_lag_p99_seconds",
  "nodejs_heap_size_total_bytes",
  "nodejs_heap_size_used_bytes",
  "nodejs_external_memory_bytes",
  "nodejs_active_resources_total",
  "nodejs_version_info"
]

describe("the metric helpers every binary uses", () => {
  it.effect("timed records the Clock's seconds and the Exit, and returns what the effect returned", () =>
    Effect.gen(function*() {
      const seen: Array<readonly [string, number]> = []
      const record = (exit: Exit.Exit<string, string>, seconds: number) => Effect.sync(() => void seen.push([Exit.isSuccess(exit) ? exit.value : `failed ${exit.cause.reasons.length}`, seconds]))
      const ok = yield* Effect.forkChild(Metrics.timed(Effect.as(Effect.sleep("2500 millis"), "done"), record))
      yield* TestClock.adjust("2500 millis")
      assert.strictEqual(yield* Fiber.join(ok), "done")
      const failed = yield* Effect.exit(Metrics.timed(Effect.fail("boom"), record))
      assert.deepStrictEqual(failed, Exit.fail("boom"))
      assert.deepStrictEqual(seen, [["done", 2.5], ["failed 1", 0]])
    }))

  it.effect("counter only goes up; increment adds one under its labels", () =>
    Effect.gen(function*() {
      const c = Metrics.counter("metrics_helper_test_total", "A test counter.")
      yield* Metrics.increment(c, { kind: "a" })
      yield* Metrics.increment(c, { kind: "a" })
      yield* Metric.update(Metric.withAttributes(c, { kind: "a" }), -5)
      yield* Metrics.increment(c)
      const text = yield* PrometheusMetrics.format()
      assert.deepStrictEqual(samples(text, "metrics_helper_test_total").sort(), ['metrics_helper_test_total 1', 'metrics_helper_test_total{kind="a"} 2'])
    }))

  it("exposition: HELP and TYPE even without samples, label values escaped, one trailing newline", () => {
    const text = Metrics.exposition([
      { name: "a_gauge", type: "gauge", help: "A.", samples: [] },
      { name: "b_total", type: "counter", help: "B.", samples: [{ value: 3 }, { labels: { x: "q\"b\\s\nn", y: "2" }, value: 0.5 }] }
    ])
    assert.strictEqual(
      text,
      "# HELP a_gauge A.\n# TYPE a_gauge gauge\n# HELP b_total B.\n# TYPE b_total counter\nb_total 3\nb_total{x=\"q\\\"b\\\\s\\nn\",y=\"2\"} 0.5\n"
    )
  })
})

describe("process and runtime metrics", () => {
  it.effect("every name once, with a number, and a TYPE line", () =>
    Effect.gen(function*() {
      const render = yield* ProcessMetrics.make.pipe(Effect.provide(NodeFileSystem.layer))
      const text = yield* render
      for (const name of PROCESS_NAMES) {
        const lines = samples(text, name)
        assert.strictEqual(lines.length, 1, name)
        assert.match(lines[0]!, /^\S+ \d+(\.\d+)?(e[-+]\d+)?$/, name)
        assert.include(text, `# TYPE ${name} `)
      }
      assert.isAbove(Number(samples(text, "process_resident_memory_bytes")[0]!.split(" ")[1]), 0)
      assert.isAbove(Number(samples(text, "process_open_fds")[0]!.split(" ")[1]), 0)
      assert.isTrue(samples(text, "nodejs_heap_space_size_used_bytes").some((l) => l.startsWith("nodejs_heap_space_size_used_bytes{space=\"old\"} ")))
    }))
})

describe("approver: client-go and controller-runtime names", () => {
  it.effect("workqueue_* labelled name for a named queue", () =>
    Effect.gen(function*() {
      const queue = yield* WorkQueue.makeNamed("metrics-test")
      for (const key of ["a", "b", "a"]) yield* queue.add(key)
      yield* queue.addAfter("c", "1 millis")
      yield* Effect.forkChild(queue.run(1, () => Effect.void))
      // The retry waits on the TestClock.
      yield* TestClock.adjust("1 millis")
      yield* queue.drain
      const text = yield* PrometheusMetrics.format()
      assert.deepStrictEqual(samples(text, "workqueue_adds_total").filter((l) => l.includes("metrics-test")), ['workqueue_adds_total{name="metrics-test"} 3'])
      assert.deepStrictEqual(samples(text, "workqueue_retries_total").filter((l) => l.includes("metrics-test")), ['workqueue_retries_total{name="metrics-test"} 1'])
      assert.deepStrictEqual(samples(text, "workqueue_depth").filter((l) => l.includes("metrics-test")), ['workqueue_depth{name="metrics-test"} 0'])
      assert.deepStrictEqual(
        samples(text, "workqueue_queue_duration_seconds_count").filter((l) => l.includes("metrics-test")),
        ['workqueue_queue_duration_seconds_count{name="metrics-test"} 3']
      )
      assert.deepStrictEqual(
        samples(text, "workqueue_work_duration_seconds_count").filter((l) => l.includes("metrics-test")),
        ['workqueue_work_duration_seconds_count{name="metrics-test"} 3']
      )
    }).pipe(Effect.scoped))

  it.effect("controller_runtime_reconcile_total{controller,result} and errors", () =>
    Effect.gen(function*() {
      const before = yield* PrometheusMetrics.format()
      const count = (text: string, series: string) => Number(samples(text, series.split("{")[0]!).find((l) => l.startsWith(`${series} `))?.split(" ")[1] ?? 0)
      yield* timeReconcile(Effect.succeed({ _tag: "Approved" } as const))
      yield* Effect.exit(timeReconcile(Effect.fail("boom")))
      const after = yield* PrometheusMetrics.format()
      const ok = 'controller_runtime_reconcile_total{controller="certificaterequest",result="success"}'
      const err = 'controller_runtime_reconcile_total{controller="certificaterequest",result="error"}'
      assert.strictEqual(count(after, ok) - count(before, ok), 1)
      assert.strictEqual(count(after, err) - count(before, err), 1)
      const errors = 'controller_runtime_reconcile_errors_total{controller="certificaterequest"}'
      assert.strictEqual(count(after, errors) - count(before, errors), 1)
      assert.isTrue(samples(after, "controller_runtime_reconcile_time_seconds_count").length > 0)
    }))

  it.effect("rest_client_requests_total{code,method,host}", () =>
    Effect.gen(function*() {
      const kube = withRequestMetrics(yield* KubeClient, "api.test:6443")
      yield* kube.get(ConfigMaps, "ns", "missing")
      yield* kube.list(ConfigMaps, { namespace: "ns" })
      yield* kube.create(ConfigMaps, "ns", { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: "ns" } })
      yield* Effect.exit(kube.create(ConfigMaps, "ns", { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: "ns" } }))
      const text = yield* PrometheusMetrics.format()
      const mine = samples(text, "rest_client_requests_total").filter((l) => l.includes("api.test:6443")).sort()
      assert.deepStrictEqual(mine, [
        'rest_client_requests_total{code="200",method="GET",host="api.test:6443"} 1',
        'rest_client_requests_total{code="201",method="POST",host="api.test:6443"} 1',
        'rest_client_requests_total{code="404",method="GET",host="api.test:6443"} 1',
        'rest_client_requests_total{code="409",method="POST",host="api.test:6443"} 1'
      ].sort())
    }).pipe(Effect.provide(layerMemory)))

  it.effect("the approver's /metrics: leader_election_master_status{name} and process metrics", () =>
    Effect.gen(function*() {
      const { port } = yield* HttpEndpointService
      const body = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()))
      assert.deepStrictEqual(samples(body, "leader_election_master_status"), ['leader_election_master_status{name="spiffe.csi.cert-manager.io"} 1'])
      for (const name of PROCESS_NAMES) assert.strictEqual(samples(body, name).length, 1, name)
    }).pipe(
      Effect.provide(
        HttpEndpoint.layer("127.0.0.1:0", metricsRoutes("spiffe.csi.cert-manager.io")).pipe(
          Layer.provide([Layer.mock(LeaderElection, { isLeader: Effect.succeed(true) }), NodeFileSystem.layer])
        )
      )
    ))
})

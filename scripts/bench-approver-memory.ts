/**
 * Approver throughput and latency on the memory KubeClient: a burst of requests created as
 * fast as the client accepts them, the controller (default options, always leading) deciding them,
 * real clock. Every tenth request is invalid (wrong duration) so denials and their Events are in the
 * mix. Prints decisions per second (first create → last decision) and create→decision percentiles.
 *
 * With CSI_SPIFFE_APPROVER_IDLE_GC=1 the idle GC watches the controller's queue as in the live
 * approver (`bin/ApproverLive.ts`, `layers/IdleGc.ts`), so its cost on the burst is measured too.
 *
 *   [CSI_SPIFFE_APPROVER_IDLE_GC=1] node scripts/bench-approver-memory.ts [requests=1000]
 */
import { Clock, Context, Effect, Fiber, Layer, References, Stream } from "effect"
import * as ApproverConfig from "../src/services/ApproverConfig.ts"
import * as Controller from "../src/approver/Controller.ts"
import { CertificateRequests } from "../src/domain/KubeObjects.ts"
import * as EvaluatorLayers from "../src/approver/Evaluator.ts"
import * as EventRecorderLayers from "../src/layers/EventRecorder.ts"
import { layerStatic as issuerStatic } from "../src/layers/IssuerConfig.ts"
import { KubeClientMemory, layerMemory } from "../src/layers/KubeClient.ts"
import * as IdleGc from "../src/layers/IdleGc.ts"
import { layerAlwaysLeader } from "../src/layers/LeaderElection.ts"
import { certificateRequest, csrRequest, IDENTITY, NAMESPACE } from "../test/support/csr.ts"

const requests = Number(process.argv[2] ?? 1000)

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}

const world = Layer.mergeAll(
  layerMemory,
  ApproverConfig.layer(),
  layerAlwaysLeader,
  EventRecorderLayers.layer("csi-driver-spiffe-approver").pipe(Layer.provide(layerMemory)),
  EvaluatorLayers.layer.pipe(Layer.provide(Layer.merge(ApproverConfig.layer(), issuerStatic(undefined))))
)

const program = Effect.gen(function*() {
  const memory = yield* KubeClientMemory
  const request = yield* Effect.promise(() => csrRequest(IDENTITY))
  const controller = Context.get(yield* Layer.build(Controller.layer), Controller.Controller)
  const idleGc = process.env["CSI_SPIFFE_APPROVER_IDLE_GC"] === "1"
  if (idleGc) yield* Effect.forkScoped(IdleGc.run(controller.busy, IdleGc.QUIET, IdleGc.fullGc))
  while (!(yield* controller.synced)) yield* Effect.yieldNow

  const created = new Map<string, number>()
  const decided = new Map<string, number>()
  const from = yield* memory.resourceVersion
  const observer = yield* memory.client.watch(CertificateRequests, { resourceVersion: from }).pipe(
    Stream.runForEach((event) =>
      Effect.gen(function*() {
        if (event.type === "BOOKMARK") return
        const cr = event.object
        const done = cr.status?.conditions?.some((c) => c.type === "Approved" || c.type === "Denied") ?? false
        if (done && !decided.has(cr.metadata.name)) decided.set(cr.metadata.name, yield* Clock.currentTimeMillis)
      })
    ),
    Effect.forkChild
  )

  const start = yield* Clock.currentTimeMillis
  for (let i = 0; i < requests; i++) {
    const name = `req-${i}`
    created.set(name, yield* Clock.currentTimeMillis)
    yield* memory.client.create(
      CertificateRequests,
      NAMESPACE,
      certificateRequest(request, { name, ...(i % 10 === 9 ? { duration: "3h" } : {}) })
    )
  }
  const createdAll = yield* Clock.currentTimeMillis
  while (decided.size < requests) yield* Effect.sleep("1 millis")
  yield* Fiber.interrupt(observer)

  const latencies = [...created].map(([name, t]) => decided.get(name)! - t)
  const last = Math.max(...decided.values())
  const result = {
    requests,
    idleGc,
    createPhaseMs: createdAll - start,
    totalMs: last - start,
    decisionsPerSecond: Math.round((requests / (last - start)) * 1000),
    createToDecisionMs: {
      p50: percentile(latencies, 50),
      p90: percentile(latencies, 90),
      p99: percentile(latencies, 99),
      max: Math.max(...latencies)
    }
  }
  console.log(JSON.stringify(result, null, 2))
}).pipe(
  Effect.scoped,
  Effect.provide(world),
  Effect.provideService(References.MinimumLogLevel, "Warn")
)

Effect.runPromise(program).catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})

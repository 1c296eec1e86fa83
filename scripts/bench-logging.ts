/**
 * Cost of one log line and of one /metrics process-metrics render, printed as numbers (no
 * assertion): the klog text and Kubernetes JSON formatters over a typical structured entry with an
 * Effect.fn caller, and ProcessMetrics' scrape-time render. Run: node scripts/bench-logging.ts
 */
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Layer, Logger, References } from "effect"
import * as Logging from "../src/layers/Logging.ts"
import * as ProcessMetrics from "../src/layers/ProcessMetrics.ts"

const LINES = 50_000

const logged = Effect.fn("Bench.issue")(function*(i: number) {
  yield* Effect.logInfo("certificate written", { volume: `csi-${i}`, namespace: "sandbox", pod: "app-0", renewIn: "40m0s", serial: i })
})

const linesPerSecond = (format: "text" | "json") =>
  Effect.gen(function*() {
    let bytes = 0
    const layer = Layer.mergeAll(
      Logger.layer([Logger.map(Logging.make(format, process.pid), (line) => void (bytes += line.length))]),
      Layer.succeed(References.MinimumLogLevel, "Info")
    )
    const start = performance.now()
    yield* Effect.forEach(Array.from({ length: LINES }, (_, i) => i), logged, { discard: true }).pipe(Effect.provide(layer))
    const ms = performance.now() - start
    return { format, lines: LINES, microsPerLine: (ms * 1000) / LINES, averageBytes: bytes / LINES }
  })

const program = Effect.gen(function*() {
  for (const format of ["text", "json"] as const) console.log(JSON.stringify(yield* linesPerSecond(format)))
  const render = yield* ProcessMetrics.make
  yield* render
  const runs = 200
  const start = performance.now()
  let size = 0
  for (let i = 0; i < runs; i++) size = (yield* render).length
  console.log(JSON.stringify({ processMetricsRender: { runs, microsPerRender: ((performance.now() - start) * 1000) / runs, bytes: size } }))
})

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(NodeFileSystem.layer)))

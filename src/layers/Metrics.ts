/**
 * How the binaries declare, record and render their own metrics, so the driver's, the approver's
 * and the signer's metric modules and the work queue do it one way.
 *
 * Owns: the declaration helpers (a counter only ever goes up; a histogram has fixed buckets), the
 * bucket set reconciles share, `timed` (run an effect, measure it on the Clock, record from its
 * Exit) and `exposition` (gauges rendered at scrape time in Prometheus text format).
 * Does not own: metric names, labels and what each binary records (its own metrics module),
 * serving /metrics (`HttpEndpoint`).
 */
import { Clock, Effect, Metric } from "effect"
import type { Exit } from "effect"

/** A counter that only ever goes up (Prometheus `counter`). */
export const counter = (name: string, description: string): Metric.Counter<number> =>
  Metric.counter(name, { description, incremental: true })

/** A histogram of seconds (or any number) over fixed `boundaries`. */
export const histogram = (name: string, description: string, boundaries: ReadonlyArray<number>): Metric.Histogram<number> =>
  Metric.histogram(name, { description, boundaries })

/** Seconds: a local reconcile takes milliseconds, one against a slow API server seconds. */
export const RECONCILE_BOUNDARIES: ReadonlyArray<number> = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** Adds one to `metric` under `attributes`. */
export const increment = (metric: Metric.Counter<number>, attributes?: Metric.Metric.Attributes): Effect.Effect<void> =>
  Metric.update(attributes === undefined ? metric : Metric.withAttributes(metric, attributes), 1)

/**
 * Runs `self`, then `record`s its Exit and how long it took in seconds (on the Clock, so TestClock
 * drives it), and returns what `self` returned, success or failure.
 */
export const timed = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  record: (exit: Exit.Exit<A, E>, seconds: number) => Effect.Effect<void>
): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const exit = yield* Effect.exit(self)
    yield* record(exit, ((yield* Clock.currentTimeMillis) - start) / 1000)
    return yield* exit
  })

/** One metric family rendered at scrape time: its samples, each with its labels. */
export interface Family {
  readonly name: string
  readonly help: string
  readonly type: "gauge" | "counter"
  readonly samples: ReadonlyArray<{ readonly labels?: Readonly<Record<string, string>>; readonly value: number }>
}

/** A label value as the Prometheus text format quotes it (backslash, double quote, newline escaped). */
const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

const labelText = (labels: Readonly<Record<string, string>> | undefined): string => {
  const pairs = Object.entries(labels ?? {})
  return pairs.length === 0 ? "" : `{${pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`
}

/** Families in Prometheus text format: HELP and TYPE lines (even with no sample), then every sample. */
export const exposition = (families: ReadonlyArray<Family>): string =>
  families.map((f) =>
    [`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.samples.map((s) => `${f.name}${labelText(s.labels)} ${s.value}`)].join("\n")
  ).join("\n") + "\n"

/**
 * Process and Node.js runtime metrics under the metric names prom-client's default collectors use
 * (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
 * `nodejs_heap_size_used_bytes`, `nodejs_eventloop_lag_seconds`, …), so dashboards and alerts
 * written for Node services, and the process panels written for the Go original, find them. No
 * dependency: every value is read from Node's own APIs and /proc (through Effect's FileSystem) at
 * scrape time.
 *
 * Owns: the event-loop delay monitor (a native histogram Node samples on its own; enabled for the
 * scope's lifetime) and the readings; `Metrics.exposition` renders them in Prometheus text format.
 * Does not own: serving /metrics (`HttpEndpoint`).
 */
import { Clock, Effect, FileSystem } from "effect"
import type { PlatformError, Scope } from "effect"
import { monitorEventLoopDelay, performance } from "node:perf_hooks"
import * as v8 from "node:v8"
import * as Metrics from "./Metrics.ts"

/** Resolution of the event-loop delay histogram; prom-client's default (10 ms). */
const EVENT_LOOP_RESOLUTION_MS = 10

/** One gauge or counter with a single unlabelled value; left out when the value is unknown. */
const one = (name: string, type: Metrics.Family["type"], help: string, value: number | undefined): ReadonlyArray<Metrics.Family> =>
  value === undefined || !Number.isFinite(value) ? [] : [{ name, help, type, samples: [{ value }] }]

/** Linux only: virtual memory size from /proc/self/stat (field 23, bytes). */
const virtualMemoryBytes = (fs: FileSystem.FileSystem) =>
  Effect.map(fs.readFileString("/proc/self/stat"), (stat) => Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[20]))

const openFds = (fs: FileSystem.FileSystem) => Effect.map(fs.readDirectory("/proc/self/fd"), (fds) => fds.length)

/** The soft limit of "Max open files" in /proc/self/limits. */
const maxFds = (fs: FileSystem.FileSystem) =>
  Effect.map(fs.readFileString("/proc/self/limits"), (limits) => {
    const line = limits.split("\n").find((l) => l.startsWith("Max open files"))
    const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0]
    return soft === undefined || soft === "unlimited" ? undefined : Number(soft)
  })

/** A /proc reading, or nothing where /proc is not there (macOS) or unreadable: the series is left out. */
const orAbsent = <A>(reading: Effect.Effect<A | undefined, PlatformError.PlatformError>): Effect.Effect<A | undefined> =>
  Effect.orElseSucceed(reading, () => undefined)

/** One event-loop turn, measured the way prom-client's `nodejs_eventloop_lag_seconds` is. */
const eventLoopLag = Effect.gen(function*() {
  const start = yield* Clock.currentTimeNanos
  yield* Effect.callback<void>((resume) => {
    setImmediate(() => resume(Effect.void))
  })
  return Number((yield* Clock.currentTimeNanos) - start) / 1e9
})

/** Starts the event-loop monitor for the scope; the effect renders every metric at scrape time. */
export const make: Effect.Effect<Effect.Effect<string>, never, Scope.Scope | FileSystem.FileSystem> = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const delay = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const h = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS })
      h.enable()
      return h
    }),
    (h) => Effect.sync(() => h.disable())
  )
  const [major, minor, patch] = process.versions.node.split(".")
  return Effect.gen(function*() {
    const lag = yield* eventLoopLag
    const [virtualMemory, fds, fdLimit] = yield* Effect.all([orAbsent(virtualMemoryBytes(fs)), orAbsent(openFds(fs)), orAbsent(maxFds(fs))])
    const cpu = process.cpuUsage()
    const memory = process.memoryUsage()
    const heap = v8.getHeapStatistics()
    const spaces = v8.getHeapSpaceStatistics()
    const resources = process.getActiveResourcesInfo()
    const seconds = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0)
    const families: Array<Metrics.Family> = [
      ...one("process_cpu_user_seconds_total", "counter", "CPU seconds in user mode since the process started.", cpu.user / 1e6),
      ...one("process_cpu_system_seconds_total", "counter", "CPU seconds in kernel mode since the process started.", cpu.system / 1e6),
      ...one("process_cpu_seconds_total", "counter", "CPU seconds, user and kernel, since the process started.", (cpu.user + cpu.system) / 1e6),
      ...one("process_start_time_seconds", "gauge", "When the process started, in seconds since the Unix epoch.", Math.round(performance.timeOrigin / 1000)),
      ...one("process_resident_memory_bytes", "gauge", "Resident set size in bytes.", memory.rss),
      ...one("process_virtual_memory_bytes", "gauge", "Virtual address space size in bytes.", virtualMemory),
      ...one("process_heap_bytes", "gauge", "V8 heap size in bytes.", heap.total_heap_size),
      ...one("process_open_fds", "gauge", "File descriptors open now.", fds),
      ...one("process_max_fds", "gauge", "Soft limit of open file descriptors.", fdLimit),
      ...one("nodejs_eventloop_lag_seconds", "gauge", "Seconds one event-loop turn took at scrape time.", lag),
      ...one("nodejs_eventloop_lag_min_seconds", "gauge", "Smallest sampled event-loop delay, seconds.", seconds(delay.min)),
      ...one("nodejs_eventloop_lag_max_seconds", "gauge", "Largest sampled event-loop delay, seconds.", seconds(delay.max)),
      ...one("nodejs_eventloop_lag_mean_seconds", "gauge", "Mean sampled event-loop delay, seconds.", seconds(delay.mean)),
      ...one("nodejs_eventloop_lag_stddev_seconds", "gauge", "Standard deviation of the sampled event-loop delay, seconds.", seconds(delay.stddev)),
      ...one("nodejs_eventloop_lag_p50_seconds", "gauge", "Median sampled event-loop delay, seconds.", seconds(delay.percentile(50))),
      ...one("nodejs_eventloop_lag_p90_seconds", "gauge", "90th percentile of the sampled event-loop delay, seconds.", seconds(delay.percentile(90))),
      ...one("nodejs_eventloop_lag_p99_seconds", "gauge", "99th percentile of the sampled event-loop delay, seconds.", seconds(delay.percentile(99))),
      ...one("nodejs_active_resources_total", "gauge", "Handles and requests keeping the event loop alive.", resources.length),
      ...one("nodejs_heap_size_total_bytes", "gauge", "V8 heap size in bytes (heapTotal).", memory.heapTotal),
      ...one("nodejs_heap_size_used_bytes", "gauge", "V8 heap in use in bytes (heapUsed).", memory.heapUsed),
      ...one("nodejs_external_memory_bytes", "gauge", "Memory of C++ objects bound to JavaScript objects, in bytes.", memory.external),
      {
        name: "nodejs_heap_space_size_total_bytes",
        help: "Size of each V8 heap space in bytes.",
        type: "gauge",
        samples: spaces.map((s) => ({ labels: { space: s.space_name.replace(/_space$/, "") }, value: s.space_size }))
      },
      {
        name: "nodejs_heap_space_size_used_bytes",
        help: "Bytes in use in each V8 heap space.",
        type: "gauge",
        samples: spaces.map((s) => ({ labels: { space: s.space_name.replace(/_space$/, "") }, value: s.space_used_size }))
      },
      {
        name: "nodejs_heap_space_size_available_bytes",
        help: "Bytes still available in each V8 heap space.",
        type: "gauge",
        samples: spaces.map((s) => ({ labels: { space: s.space_name.replace(/_space$/, "") }, value: s.space_available_size }))
      },
      {
        name: "nodejs_version_info",
        help: "The Node.js version, as labels; always 1.",
        type: "gauge",
        samples: [{ labels: { version: process.version, major: major ?? "", minor: minor ?? "", patch: patch ?? "" }, value: 1 }]
      }
    ]
    return Metrics.exposition(families)
  })
})

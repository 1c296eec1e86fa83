/**
 * Structured JSON logs on stdout, filtered by the original's `--log-level` (klog verbosity):
 * 0 → warnings and errors, 1–3 → info, 4 and above → debug.
 */
import { Layer, Logger, References } from "effect"
import type { LogLevel } from "effect"

export const minimumLevel = (verbosity: number): LogLevel.LogLevel => (verbosity <= 0 ? "Warn" : verbosity >= 4 ? "Debug" : "Info")

export const layer = (verbosity: number) =>
  Layer.mergeAll(
    Logger.layer([Logger.consoleJson]),
    Layer.succeed(References.MinimumLogLevel, minimumLevel(verbosity))
  )

/**
 * Logs as Kubernetes components write them, on stderr.
 *
 * - `text` (the default): klog's header and structured form, as the Go original prints it:
 *   `I1201 20:40:29.766459   20761 Issuance.ts:88] "certificate written" volume="csi-1"`
 *   (severity, month and day, UTC time to the microsecond, the process id right-aligned in 7
 *   columns, the caller's file:line, then the message and `key=value` pairs; strings quoted).
 * - `json` (`--logging-format=json`): Kubernetes' JSON schema as k8s.io/component-base/logs/json
 *   writes it: `{"ts":<epoch milliseconds, float>,"caller":"file:line","msg":"...","v":0,...}`, the
 *   key/value pairs after, errors with no `v` and their error as `err` last.
 *
 * The message is always one string, the first of the logged values; objects logged after it become
 * key/value pairs, as do log annotations; any other value becomes `detail` (then `detail2`, …), an
 * `Error` or a failure cause becomes `err` (its message, never a stack). An `Error` anywhere else in
 * a logged value prints as its message too, never its fields or its cause. `Redacted` values print
 * as `<redacted>`.
 *
 * Verbosity is klog's `-v`: Info is V(0) and always shown, Debug is V(4), Trace V(5); so
 * `--log-level=4` adds debug lines and `--log-level=5` trace lines.
 *
 * The caller is the definition site of the innermost `Effect.fn` around the log call (Effect keeps
 * it in the `CurrentStackFrame` reference); outside of one it is `???:1`, as klog prints a caller it
 * cannot find.
 */
import { Cause, Layer, Logger, Predicate, Redacted, References } from "effect"
import type { LogLevel } from "effect"

import type { LogFormat } from "../services/DriverConfig.ts"

/** The Effect level that klog verbosity `v` shows at minimum. */
export const minimumLevel = (verbosity: number): LogLevel.LogLevel => (verbosity >= 5 ? "Trace" : verbosity >= 4 ? "Debug" : "Info")

/** klog's severity letter and the `v` of an info line (undefined for errors). */
const severityOf = (level: LogLevel.LogLevel): { readonly letter: string; readonly v: number | undefined } => {
  switch (level) {
    case "Fatal":
      return { letter: "F", v: undefined }
    case "Error":
      return { letter: "E", v: undefined }
    case "Warn":
      return { letter: "W", v: 0 }
    case "Debug":
      return { letter: "I", v: 4 }
    case "Trace":
      return { letter: "I", v: 5 }
    default:
      return { letter: "I", v: 0 }
  }
}

/** One log line's content, before it is written in either format. */
export interface Entry {
  readonly msg: string
  readonly keysAndValues: ReadonlyArray<readonly [string, unknown]>
  readonly err: string | undefined
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : Predicate.isString(e) ? e : String(e))

/** Splits what was logged into the message, key/value pairs and the error. */
export const entryOf = (
  message: unknown,
  annotations: Readonly<Record<string, unknown>>,
  cause: Cause.Cause<unknown>
): Entry => {
  const parts: ReadonlyArray<unknown> = Array.isArray(message) ? message : [message]
  let msg: string | undefined
  const kv: Array<readonly [string, unknown]> = []
  let err: string | undefined
  let details = 0
  for (const part of parts) {
    if (msg === undefined && Predicate.isString(part)) msg = part
    else if (part instanceof Error) err = part.message
    else if (Cause.isCause(part)) {
      if (part.reasons.length > 0) err = errorText(Cause.squash(part))
    } else if (Predicate.isObject(part) && !Array.isArray(part) && !Redacted.isRedacted(part)) {
      for (const [k, v] of Object.entries(part)) {
        if (k === "err" || (k === "error" && v instanceof Error)) err = errorText(v)
        else kv.push([k, v])
      }
    } else {
      details++
      kv.push([details === 1 ? "detail" : `detail${details}`, part])
    }
  }
  for (const [k, v] of Object.entries(annotations)) kv.push([k, v])
  if (err === undefined && cause.reasons.length > 0) err = errorText(Cause.squash(cause))
  return { msg: msg ?? "", keysAndValues: kv, err }
}

/** A value as klog's text format prints it: strings quoted, numbers and booleans bare, the rest as JSON. */
const textValue = (v: unknown): string => {
  if (Predicate.isString(v)) return JSON.stringify(v)
  if (Predicate.isNumber(v) || Predicate.isBoolean(v) || Predicate.isBigInt(v)) return String(v)
  if (v === undefined || v === null) return "<nil>"
  if (Redacted.isRedacted(v)) return JSON.stringify(String(v))
  if (v instanceof Error) return JSON.stringify(v.message)
  const json = safeJson(v)
  return json ?? JSON.stringify(String(v))
}

/**
 * JSON of a logged value in which every `Error`, at any depth, is its message: an error's own
 * `toJSON` (Effect's tagged errors have one) would print its fields and its `cause`, and a cause is
 * whatever a library threw, which this module cannot vouch for.
 */
const safeJson = (v: unknown): string | undefined => {
  try {
    // A `function`: the holder (`this`) still has the value as it was before its `toJSON` ran.
    return JSON.stringify(v, function(this: unknown, k: string, x: unknown) {
      const original: unknown = Predicate.isObject(this) ? (this as Record<string, unknown>)[k] : x
      if (original instanceof Error) return original.message
      return Predicate.isBigInt(x) ? x.toString() : x
    })
  } catch {
    return undefined
  }
}

const pad2 = (n: number): string => String(n).padStart(2, "0")

/** `Lmmdd hh:mm:ss.uuuuuu threadid file:line] ` — klog's header, in UTC. */
export const klogHeader = (letter: string, date: Date, pid: number, caller: string): string =>
  `${letter}${pad2(date.getUTCMonth() + 1)}${pad2(date.getUTCDate())} ${pad2(date.getUTCHours())}:${pad2(date.getUTCMinutes())}:${
    pad2(date.getUTCSeconds())
  }.${String(date.getUTCMilliseconds() * 1000).padStart(6, "0")} ${String(pid).padStart(7, " ")} ${caller}] `

export const formatText = (level: LogLevel.LogLevel, date: Date, pid: number, caller: string, entry: Entry): string => {
  const { letter } = severityOf(level)
  const pairs = entry.keysAndValues.map(([k, v]) => ` ${k}=${textValue(v)}`).join("")
  const err = entry.err === undefined ? "" : ` err=${JSON.stringify(entry.err)}`
  return `${klogHeader(letter, date, pid, caller)}${JSON.stringify(entry.msg)}${err}${pairs}`
}

export const formatJson = (level: LogLevel.LogLevel, date: Date, caller: string, entry: Entry): string => {
  const { v } = severityOf(level)
  const out: Record<string, unknown> = { ts: date.getTime(), caller, msg: entry.msg }
  if (v !== undefined) out["v"] = v
  for (const [k, value] of entry.keysAndValues) {
    if (!(k in out)) out[k] = Redacted.isRedacted(value) ? String(value) : value
  }
  if (entry.err !== undefined) out["err"] = entry.err
  return safeJson(out) ?? JSON.stringify({ ts: date.getTime(), caller, msg: entry.msg })
}

const locationOf = (f: References.StackFrame): string | undefined => {
  for (const line of (f.stack() ?? "").split("\n")) {
    if (line.includes("node_modules")) continue
    const m = /([^/\\\s()]+\.[cm]?[jt]s):(\d+):\d+\)?\s*$/.exec(line)
    if (m !== null) return `${m[1]}:${m[2]}`
  }
  return undefined
}

/**
 * `file:line` of the innermost function around the log call; klog's `???:1` when there is none.
 * An `Effect.fn` call pushes its call site with its definition site as parent ("name (definition)"):
 * the definition says which function logged, so it is preferred.
 */
export const callerOf = (frame: References.StackFrame | undefined): string => {
  const frames: Array<References.StackFrame> = []
  for (let f = frame; f !== undefined && frames.length < 16; f = f.parent) frames.push(f)
  if (frames.length > 1 && frames[1]!.name === `${frames[0]!.name} (definition)`) frames.splice(0, 2, frames[1]!, frames[0]!)
  for (const f of frames) {
    const at = locationOf(f)
    if (at !== undefined) return at
  }
  return "???:1"
}

/** The logger for `format`; `pid` is the process id klog prints. */
export const make = (format: LogFormat, pid: number): Logger.Logger<unknown, string> =>
  Logger.make(({ cause, date, fiber, logLevel, message }) => {
    const entry = entryOf(message, fiber.getRef(References.CurrentLogAnnotations), cause)
    const caller = callerOf(fiber.getRef(References.CurrentStackFrame))
    return format === "json" ? formatJson(logLevel, date, caller, entry) : formatText(logLevel, date, pid, caller, entry)
  })

export const layer = (verbosity: number, format: LogFormat = "text") =>
  Layer.mergeAll(
    Logger.layer([Logger.withConsoleError(make(format, process.pid))]),
    Layer.succeed(References.MinimumLogLevel, minimumLevel(verbosity))
  )

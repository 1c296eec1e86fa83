/**
 * Timestamps written from a Date's UTC fields, never by V8's date formatting.
 *
 * Why not `Date.prototype.toISOString` or `toUTCString`: the first call of either (of any of V8's
 * date formatting) loads ICU's time-zone data, even for UTC, and its pages of the Node binary stay
 * resident: 0.8 MiB of RSS on a bare `node` that formats one date against one that reads
 * `getUTCHours` (bench/results/footprint.md, round 6). Each binary formats a date for a
 * Kubernetes timestamp, a log field or an HTTP `date` header, a handful of times a minute.
 * Outside the years 0–9999, which no clock of these binaries reads, V8's own formatting is used.
 */

const pad = (value: number, width = 2): string => String(value).padStart(width, "0")

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"] as const
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"] as const

/** The date at `millis`, when its year has four digits (what the formats below spell). */
const fourDigitYear = (millis: number): Date | undefined => {
  const date = new Date(millis)
  const year = date.getUTCFullYear()
  return year >= 0 && year <= 9999 ? date : undefined
}

const dayAndTime = (d: Date): string =>
  `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`

/** `Date.prototype.toISOString`: `2026-12-03T05:16:12.123Z`; a RangeError for an invalid time, as it. */
export const iso = (millis: number): string => {
  const d = fourDigitYear(millis)
  return d === undefined ? new Date(millis).toISOString() : `${dayAndTime(d)}.${pad(d.getUTCMilliseconds(), 3)}Z`
}

/** `metav1.Time`: RFC 3339 in whole seconds, as the API server writes it (`2026-12-03T05:16:12Z`). */
export const rfc3339 = (millis: number): string => {
  const d = fourDigitYear(millis)
  return d === undefined ? new Date(millis).toISOString().replace(/\.\d{3}Z$/, "Z") : `${dayAndTime(d)}Z`
}

/** `metav1.MicroTime`: RFC 3339 with exactly six fractional digits (the clock has milliseconds). */
export const rfc3339Micro = (millis: number): string => iso(millis).replace(/Z$/, "000Z")

/** An HTTP `date` header (RFC 9110 IMF-fixdate, `Date.prototype.toUTCString`): `Thu, 03 Dec 2026 05:16:12 GMT`. */
export const httpDate = (millis: number): string => {
  const d = fourDigitYear(millis)
  return d === undefined
    ? new Date(millis).toUTCString()
    : `${DAYS[d.getUTCDay()]}, ${pad(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${pad(d.getUTCFullYear(), 4)} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} GMT`
}

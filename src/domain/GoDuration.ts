/**
 * Go's duration syntax, exactly as Go's `time.ParseDuration` reads it: a sign, then one or more
 * `<number><unit>` terms (`1h30m`, `.5h`, `1.5h`, `300ms`, `-1h`, `+5m`, `1us`, `1µs`), or a bare `0`.
 * The Go original reads every duration flag this way (pflag's `DurationVar`), and cert-manager
 * writes `spec.duration` with Go's `Duration.String`.
 *
 * Owns: the grammar, Go's exact nanosecond results (64-bit range, fractions rounded the way Go's
 * float64 arithmetic rounds them) and Go's exact error texts, so a bad flag reads as it does for the
 * original. scripts/go-duration checks every row of the unit test's table against Go itself.
 * Does not own: what range a given flag accepts (its decoder validates the value).
 */
import { Result } from "effect"

const NANOS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  "µs": 1_000n, // U+00B5 micro sign
  "μs": 1_000n, // U+03BC Greek small letter mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n
}

const TWO_63 = 1n << 63n
const utf8 = new TextEncoder()
const HEX = "0123456789abcdef"

/** Go's `time` package quoting: bytes below 0x20 or above 0x7f as `\xNN`, `"` and `\` escaped. */
const quote = (s: string): string => {
  let out = "\""
  for (const b of utf8.encode(s)) {
    if (b < 0x20 || b >= 0x80) out += `\\x${HEX[b >> 4]}${HEX[b & 0xf]}`
    else {
      const c = String.fromCharCode(b)
      out += c === "\"" || c === "\\" ? `\\${c}` : c
    }
  }
  return `${out}"`
}

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "9"

/** Nanoseconds, or Go's error text (`time: invalid duration "1"`…). */
export const parse = (input: string): Result.Result<bigint, string> => {
  const invalid = (what: string) => Result.fail(`time: ${what} ${quote(input)}`)
  let s = input
  let neg = false
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    neg = s[0] === "-"
    s = s.slice(1)
  }
  if (s === "0") return Result.succeed(0n)
  if (s === "") return invalid("invalid duration")
  let d = 0n
  while (s !== "") {
    if (!(s[0] === "." || isDigit(s[0]))) return invalid("invalid duration")
    // Leading integer: more than 2^63 is an overflow.
    let v = 0n
    let i = 0
    for (; isDigit(s[i]); i++) {
      if (v > TWO_63 / 10n) return invalid("invalid duration")
      v = v * 10n + BigInt(s.charCodeAt(i) - 48)
      if (v > TWO_63) return invalid("invalid duration")
    }
    const pre = i > 0
    s = s.slice(i)
    // Fraction: digits past 63 bits of precision are consumed but ignored, as Go does.
    let f = 0n
    let scale = 1
    let post = false
    if (s[0] === ".") {
      s = s.slice(1)
      let j = 0
      let overflow = false
      for (; isDigit(s[j]); j++) {
        if (overflow) continue
        if (f > (TWO_63 - 1n) / 10n) {
          overflow = true
          continue
        }
        const y = f * 10n + BigInt(s.charCodeAt(j) - 48)
        if (y > TWO_63) {
          overflow = true
          continue
        }
        f = y
        scale *= 10
      }
      post = j > 0
      s = s.slice(j)
    }
    if (!pre && !post) return invalid("invalid duration")
    let u = 0
    while (u < s.length && s[u] !== "." && !isDigit(s[u])) u++
    if (u === 0) return invalid("missing unit in duration")
    const unitName = s.slice(0, u)
    s = s.slice(u)
    const unit = NANOS[unitName]
    if (unit === undefined) return invalid(`unknown unit ${quote(unitName)} in duration`)
    if (v > TWO_63 / unit) return invalid("invalid duration")
    v *= unit
    if (f > 0n) {
      // Go computes the fraction in float64 and truncates: uint64(float64(f) * (float64(unit) / scale)).
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)))
      if (v > TWO_63) return invalid("invalid duration")
    }
    d += v
    if (d > TWO_63) return invalid("invalid duration")
  }
  if (neg) return Result.succeed(-d)
  if (d > TWO_63 - 1n) return invalid("invalid duration")
  return Result.succeed(d)
}

/** Nanoseconds to milliseconds, rounded to the nearest (half away from zero). */
export const nanosToMillis = (ns: bigint): number => {
  const ms = ns / 1_000_000n
  const rest = ns % 1_000_000n
  const abs = rest < 0n ? -rest : rest
  return Number(ms) + (abs >= 500_000n ? (ns < 0n ? -1 : 1) : 0)
}

/**
 * A duration flag decoded as pflag's `DurationVar` does, with pflag's error wording
 * (`invalid argument "1hh" for "--flag" flag: time: unknown unit "hh" in duration "1hh"`), in
 * milliseconds.
 */
export const parseFlag = (flag: string, raw: string): Result.Result<number, string> =>
  Result.match(parse(raw), {
    onFailure: (e) => Result.fail(`invalid argument ${JSON.stringify(raw)} for "--${flag}" flag: ${e}`),
    onSuccess: (ns) => Result.succeed(nanosToMillis(ns))
  })

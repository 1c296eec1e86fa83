/**
 * Go durations: every row of the table is parsed by ours and by Go's own `time.ParseDuration`
 * (scripts/go-duration, run with `go run`), and both must agree to the nanosecond or to the byte of
 * the error text. The duration flags' decoding (pflag's wording, then each flag's range) is checked
 * in the config tests.
 */
import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import { execFileSync, spawnSync } from "node:child_process"
import * as path from "node:path"
import * as GoDuration from "../../../src/domain/GoDuration.ts"

const TABLE: ReadonlyArray<string> = [
  // accepted
  "0", "+0", "-0", "0s", "1h", ".5h", "0.5h", "1.5h", "1h30m", "1h30m0s", "2h45m30.5s", "300ms", "-1h", "+5m",
  "1us", "1µs", "1μs", "1ns", "1.000000001s", "1.0000000001s", "0.1ns", "0.6ns", "1.99ns", "0.0000000015s", "1.s", "5.m", "720h", "00001h",
  "1h1h", "3m2m1m", "1.1h", "0.3333333333333333333333333333h", "2562047h47m16.854775807s",
  "-2562047h47m16.854775808s", "9223372036854775807ns", "-9223372036854775808ns", "100000000000000000000000.0000000001ns",
  // refused
  "", "1", "h", "1hh", "1d", "1w", "1H", "1 h", " 1h", "1h ", "-", "+", "-.", ".", ".s", "-.s", "1.2.3s", "--1h",
  "+-1h", "1h-1m", "9223372036854775808ns", "2562047h47m16.854775808s", "99999999999999999999h", "1µ", "1é", "1\u0000s",
  "\"1h\"", "1h\\", "0x1h", "1e3s", "∞", "1.5"
]

const goResults = (inputs: ReadonlyArray<string>): ReadonlyArray<{ input: string; ns?: string; error?: string }> => {
  const script = path.resolve(import.meta.dirname, "../../../scripts/go-duration/main.go")
  const out = execFileSync("go", ["run", script], {
    input: JSON.stringify(inputs),
    encoding: "utf8",
    env: { ...process.env, GOTOOLCHAIN: "local", GOFLAGS: "-mod=mod" },
    timeout: 300_000
  })
  return out.trim().split("\n").map((line) => JSON.parse(line))
}

const haveGo = spawnSync("go", ["version"], { env: { ...process.env, GOTOOLCHAIN: "local" } }).status === 0

describe("GoDuration.parse", () => {
  it("a few rows by hand (independent of Go)", () => {
    assert.deepStrictEqual(GoDuration.parse(".5h"), Result.succeed(1_800_000_000_000n))
    assert.deepStrictEqual(GoDuration.parse("1h30m"), Result.succeed(5_400_000_000_000n))
    assert.deepStrictEqual(GoDuration.parse("-1h"), Result.succeed(-3_600_000_000_000n))
    assert.deepStrictEqual(GoDuration.parse("1µs"), Result.succeed(1_000n))
    assert.deepStrictEqual(GoDuration.parse("1"), Result.fail("time: missing unit in duration \"1\""))
    assert.deepStrictEqual(GoDuration.parse("1hh"), Result.fail("time: unknown unit \"hh\" in duration \"1hh\""))
    assert.deepStrictEqual(GoDuration.parse(""), Result.fail("time: invalid duration \"\""))
  })

  it.skipIf(!haveGo)("agrees with Go's time.ParseDuration on every row", () => {
    const go = goResults(TABLE)
    assert.strictEqual(go.length, TABLE.length)
    const mismatches: Array<string> = []
    TABLE.forEach((input, i) => {
      const want = go[i]!
      assert.strictEqual(want.input, input)
      const ours = GoDuration.parse(input)
      const got = Result.isSuccess(ours) ? { ns: ours.success.toString() } : { error: ours.failure }
      const expected = want.error === undefined ? { ns: want.ns } : { error: want.error }
      if (JSON.stringify(got) !== JSON.stringify(expected)) mismatches.push(`${JSON.stringify(input)}: Go ${JSON.stringify(expected)}, ours ${JSON.stringify(got)}`)
    })
    assert.deepStrictEqual(mismatches, [])
    // The table exercises both sides.
    assert.isTrue(go.some((r) => r.error !== undefined) && go.some((r) => r.ns !== undefined))
  })
})

describe("GoDuration.parseFlag", () => {
  it("words a bad value as pflag does", () => {
    assert.deepStrictEqual(
      GoDuration.parseFlag("certificate-request-duration", "1hh"),
      Result.fail("invalid argument \"1hh\" for \"--certificate-request-duration\" flag: time: unknown unit \"hh\" in duration \"1hh\"")
    )
  })

  it("gives milliseconds, rounded to the nearest", () => {
    assert.deepStrictEqual(GoDuration.parseFlag("x", "1.5h"), Result.succeed(5_400_000))
    assert.deepStrictEqual(GoDuration.parseFlag("x", "1500us"), Result.succeed(2))
    assert.deepStrictEqual(GoDuration.parseFlag("x", "1499us"), Result.succeed(1))
    assert.deepStrictEqual(GoDuration.parseFlag("x", "-1500us"), Result.succeed(-2))
  })
})

/**
 * The UTC formats written from a Date's fields: each equal to what V8's own formatting writes, in
 * the years they spell and outside them (where V8's is used).
 */
import { assert, describe, it } from "@effect/vitest"
import { httpDate, iso, rfc3339, rfc3339Micro } from "../../../src/domain/UtcTime.ts"

const year0 = (() => {
  const d = new Date(0)
  d.setUTCFullYear(0, 0, 1)
  return d.getTime()
})()
const year9999End = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

/** Instants where a field rolls over, plus a spread across the four-digit years. */
const instants = [
  0, 1, 999, 1000, 59_999, 3_599_999, 86_399_999, 86_400_000, -1, -86_400_001,
  Date.UTC(2024, 1, 29, 12, 0, 0, 5), Date.UTC(2023, 1, 28, 23, 59, 59, 999), Date.UTC(2000, 1, 29),
  Date.UTC(1900, 1, 28, 23, 59, 59), Date.UTC(2026, 11, 3, 5, 16, 12, 123), Date.UTC(1970, 0, 1, 0, 0, 0, 10),
  year0, year0 - 1, year9999End, year9999End + 1, 8.64e15, -8.64e15,
  ...Array.from({ length: 2000 }, (_, i) => Math.round(year0 + (i / 1999) * (year9999End - year0)) - 37 * i)
]

describe("UtcTime", () => {
  it("iso is Date.prototype.toISOString", () => {
    for (const t of instants) assert.strictEqual(iso(t), new Date(t).toISOString(), String(t))
  })

  it("rfc3339 is toISOString in whole seconds", () => {
    for (const t of instants) assert.strictEqual(rfc3339(t), new Date(t).toISOString().replace(/\.\d{3}Z$/, "Z"), String(t))
    assert.strictEqual(rfc3339(Date.UTC(2026, 11, 3, 5, 16, 12, 999)), "2026-12-03T05:16:12Z")
  })

  it("rfc3339Micro has exactly six fractional digits", () => {
    assert.strictEqual(rfc3339Micro(Date.UTC(2026, 11, 3, 5, 16, 12, 7)), "2026-12-03T05:16:12.007000Z")
    for (const t of instants) assert.match(rfc3339Micro(t), /\.\d{6}Z$/, String(t))
  })

  it("httpDate is Date.prototype.toUTCString (IMF-fixdate)", () => {
    for (const t of instants) assert.strictEqual(httpDate(t), new Date(t).toUTCString(), String(t))
    assert.strictEqual(httpDate(Date.UTC(2026, 11, 3, 5, 16, 12)), "Thu, 03 Dec 2026 05:16:12 GMT")
  })

  it("rejects an invalid time as V8 does", () => {
    for (const f of [iso, rfc3339, rfc3339Micro]) assert.throws(() => f(Number.NaN), RangeError)
    assert.throws(() => iso(8.64e15 + 1), RangeError)
    assert.strictEqual(httpDate(Number.NaN), "Invalid Date")
  })
})

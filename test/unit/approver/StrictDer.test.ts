/**
 * StrictDer: the framing reasons, and the re-encoding check that turns the schema parser's BER
 * leniency back into DER strictness.
 */
import { ECDSASigValue } from "@peculiar/asn1-ecc"
import { assert, describe, it } from "@effect/vitest"
import { bitLength, checkFraming, DerError, strictParse, unsigned } from "../../../src/approver/StrictDer.ts"

const reason = (f: () => unknown): string | undefined => {
  try {
    f()
    return undefined
  } catch (e) {
    assert.instanceOf(e, DerError)
    return (e as DerError).detail
  }
}

/** SEQUENCE { INTEGER 1, INTEGER 2 }, an ECDSA-Sig-Value in DER. */
const SIG = new Uint8Array([0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02])

describe("StrictDer", () => {
  it("accepts exactly one definite-length SEQUENCE", () => {
    assert.isUndefined(reason(() => checkFraming(SIG)))
  })

  const framing: ReadonlyArray<[string, ReadonlyArray<number>, string]> = [
    ["trailing byte", [...SIG, 0x00], "truncated length"],
    ["truncated", [...SIG.subarray(0, 5)], "truncated content"],
    ["indefinite length", [0x30, 0x80, 0x00, 0x00], "unsupported length"],
    ["non-minimal length", [0x30, 0x81, 0x01, 0x05], "non-minimal length"],
    ["high tag number", [0x1f, 0x01, 0x00], "high tag number"],
    ["two SEQUENCEs", [0x30, 0x00, 0x30, 0x00], "expected a single element with tag 48"],
    ["not a SEQUENCE", [0x02, 0x01, 0x00], "expected a single element with tag 48"]
  ]
  for (const [name, bytes, why] of framing) {
    it(`framing: ${name}`, () => {
      assert.strictEqual(reason(() => checkFraming(new Uint8Array(bytes))), why)
    })
  }

  it("parses DER and refuses what only BER allows", () => {
    const value = strictParse(SIG, ECDSASigValue, "bad signature")
    assert.deepStrictEqual([...unsigned(value.r, "r")], [1])
    // The same value with a long-form length the parser accepts but DER forbids.
    const ber = new Uint8Array([0x30, 0x81, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02])
    assert.strictEqual(reason(() => strictParse(ber, ECDSASigValue, "bad signature")), "bad signature (not DER)")
    assert.strictEqual(reason(() => strictParse(new Uint8Array([0x05, 0x00]), ECDSASigValue, "bad signature")), "bad signature")
  })

  it("INTEGER magnitudes drop the sign octet and refuse negatives", () => {
    assert.deepStrictEqual([...unsigned(new Uint8Array([0x00, 0x80, 0x01]).buffer, "n")], [0x80, 0x01])
    assert.strictEqual(bitLength(unsigned(new Uint8Array([0x00, 0x80, 0x01]).buffer, "n")), 16)
    assert.strictEqual(reason(() => unsigned(new Uint8Array([0x80]).buffer, "negative")), "negative")
  })
})

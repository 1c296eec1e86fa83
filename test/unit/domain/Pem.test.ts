import { assert, describe, it } from "@effect/vitest"
import { pemBlocks, pemToConcatenatedDer } from "../../../src/domain/Pem.ts"

const block = (label: string, bytes: string) => `-----BEGIN ${label}-----\n${Buffer.from(bytes).toString("base64")}\n-----END ${label}-----\n`

describe("Pem", () => {
  it("decodes the blocks of one label in order and skips the others", () => {
    const text = block("PRIVATE KEY", "k") + block("CERTIFICATE", "leaf") + block("CERTIFICATE", "intermediate")
    assert.deepStrictEqual(pemBlocks(text, "CERTIFICATE").map((b) => Buffer.from(b).toString()), ["leaf", "intermediate"])
    assert.deepStrictEqual(pemBlocks(text, "PRIVATE KEY").map((b) => Buffer.from(b).toString()), ["k"])
    assert.strictEqual(Buffer.from(pemToConcatenatedDer(text, "CERTIFICATE")).toString(), "leafintermediate")
  })

  it("reads bodies split over lines (CRLF too) and gives nothing for text without blocks", () => {
    const long = "x".repeat(100)
    const wrapped = Buffer.from(long).toString("base64").replace(/(.{64})/g, "$1\r\n")
    assert.strictEqual(Buffer.from(pemToConcatenatedDer(`-----BEGIN CERTIFICATE-----\r\n${wrapped}\r\n-----END CERTIFICATE-----`, "CERTIFICATE")).toString(), long)
    assert.strictEqual(pemToConcatenatedDer("", "CERTIFICATE").length, 0)
    assert.strictEqual(pemBlocks("not pem", "CERTIFICATE").length, 0)
  })
})

/**
 * csi-lib's CertificateRequest label hash (cert-manager/csi-lib, manager/manager.go): FNV-1 32-bit, decimal, then
 * apimachinery's rand.SafeEncodeString. `test-node` → `f56fd9f8b` is csi-lib's own example.
 */
import { assert, describe, it } from "@effect/vitest"
import { fnv1_32, labelHash, safeEncode } from "../../../src/domain/Hash.ts"

describe("fnv1_32", () => {
  it("matches the FNV-1 (not FNV-1a) 32-bit reference vectors", () => {
    assert.strictEqual(fnv1_32(""), 0x811c9dc5)
    assert.strictEqual(fnv1_32("a"), 0x050c5d7e)
    assert.strictEqual(fnv1_32("foobar"), 0x31f0b262)
  })

  it("hashes the UTF-8 bytes, as Go's fnv.New32 over []byte(id) does", () => {
    // An independent BigInt reference over the UTF-8 bytes.
    const reference = (s: string): number => {
      let h = 0x811c9dc5n
      for (const byte of Buffer.from(s, "utf8")) h = ((h * 0x01000193n) % 0x100000000n) ^ BigInt(byte)
      return Number(h)
    }
    for (const s of ["é", "nöde-ü", "日本", "test-node", `csi-${"f".repeat(64)}`]) assert.strictEqual(fnv1_32(s), reference(s), s)
  })

  it("is an unsigned 32-bit integer", () => {
    for (const s of ["test-node", "kind-worker", "x".repeat(1000)]) {
      const h = fnv1_32(s)
      assert.isTrue(Number.isInteger(h) && h >= 0 && h <= 0xffffffff, `${s}: ${h}`)
    }
  })
})

describe("safeEncode", () => {
  it("maps each character onto the vowel-free alphabet by code modulo 27", () => {
    assert.strictEqual(safeEncode("0123456789"), "456789bcdf")
    assert.strictEqual(safeEncode(""), "")
  })
})

describe("labelHash", () => {
  it("gives f56fd9f8b for test-node, as csi-lib does", () => {
    assert.strictEqual(fnv1_32("test-node"), 912985946)
    assert.strictEqual(labelHash("test-node"), "f56fd9f8b")
  })

  it("is a valid label value and differs between nodes", () => {
    const a = labelHash("kind-worker")
    const b = labelHash("kind-worker2")
    assert.notStrictEqual(a, b)
    for (const h of [a, b, labelHash(`csi-${"0".repeat(64)}`)]) assert.match(h, /^[bcdfghjklmnpqrstvwxz2456789]{1,10}$/)
  })
})

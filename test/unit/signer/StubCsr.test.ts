/**
 * Reading the kubelet's stub CSR: the key facts the rules decide on (curve, RSA modulus size,
 * Ed25519) and the SubjectPublicKeyInfo the leaf will carry, and a sentence for what is not PKCS#10.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import type { webcrypto } from "node:crypto"
import { readStubCsr } from "../../../src/signer/StubCsr.ts"
import { x509 } from "../../../src/x509.ts"

const stub = (gen: webcrypto.AlgorithmIdentifier | webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams, sign: webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams) =>
  Effect.promise(async () => {
    const keys = (await globalThis.crypto.subtle.generateKey(gen, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: sign })
    return { base64: Buffer.from(csr.rawData).toString("base64"), spki: Buffer.from(await globalThis.crypto.subtle.exportKey("spki", keys.publicKey)) }
  })

const rsa = (bits: number) => ({ name: "RSASSA-PKCS1-v1_5", modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" })

describe("readStubCsr", () => {
  it.effect("names the curve of ECDSA keys and keeps the SPKI byte for byte", () =>
    Effect.gen(function*() {
      for (const curve of ["P-256", "P-384", "P-521"]) {
        const s = yield* stub({ name: "ECDSA", namedCurve: curve }, { name: "ECDSA", hash: "SHA-256" })
        const r = readStubCsr(s.base64)
        assert.isTrue(Result.isSuccess(r))
        if (Result.isFailure(r)) continue
        assert.deepStrictEqual(r.success.facts, { _tag: "ECDSA", curve })
        assert.isTrue(Buffer.from(r.success.spki).equals(s.spki))
      }
    }))

  it.effect("counts the RSA modulus in bits", () =>
    Effect.gen(function*() {
      for (const bits of [2048, 3072]) {
        const r = readStubCsr((yield* stub(rsa(bits), { name: "RSASSA-PKCS1-v1_5" })).base64)
        assert.deepStrictEqual(Result.isSuccess(r) ? r.success.facts : r.failure, { _tag: "RSA", bits })
      }
    }), 60_000)

  it.effect("recognises Ed25519", () =>
    Effect.gen(function*() {
      const r = readStubCsr((yield* stub({ name: "Ed25519" }, { name: "Ed25519" })).base64)
      assert.deepStrictEqual(Result.isSuccess(r) ? r.success.facts : r.failure, { _tag: "Ed25519" })
    }))

  it("says why an empty or non-PKCS#10 value cannot be read", () => {
    const empty = readStubCsr("")
    assert.deepStrictEqual(Result.isFailure(empty) ? empty.failure : "read", "the stub CSR is empty")
    const garbage = readStubCsr(Buffer.from("not a csr").toString("base64"))
    assert.isTrue(Result.isFailure(garbage) && garbage.failure.startsWith("the stub CSR does not parse as PKCS#10"))
  })
})

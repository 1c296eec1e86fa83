/**
 * The Crypto layer: the per-issuance key (ECDSA P-256, PKCS#8 `PRIVATE KEY` PEM, redacted), the CSR
 * the driver sends (empty subject, exactly one critical URI SAN, self-signature valid; read here by
 * the approver's own `inspectCsr`, so the two binaries agree on it), and the chain and CA-bundle
 * readers (facts of the leaf; a clear CryptoError for an empty or broken PEM).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { inspectCsr } from "../../../src/approver/InspectCsr.ts"
import * as CryptoLayers from "../../../src/layers/Crypto.ts"
import { Crypto } from "../../../src/services/Crypto.ts"
import { x509 } from "../../../src/x509.ts"
import { makeTestCa, signCsr } from "../../support/TestSigner.ts"

const ID = "spiffe://cluster.local/ns/team-a/sa/web"
const SAN_OID = "2.5.29.17"

describe("Crypto layer", () => {
  it.effect("a key is an ECDSA P-256 PKCS#8 PEM, redacted, with its public key as SPKI hex", () =>
    Effect.gen(function*() {
      const crypto = yield* Crypto
      const key = yield* crypto.generateKey
      const pem = Redacted.value(key.pem)
      assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n?$/)
      assert.notInclude(String(key.pem), "BEGIN", "the PEM does not show when printed")
      const imported = yield* Effect.promise(() =>
        globalThis.crypto.subtle.importKey("pkcs8", x509.PemConverter.decodeFirst(pem), { name: "ECDSA", namedCurve: "P-256" }, true, ["sign"])
      )
      assert.strictEqual((imported.algorithm as { readonly namedCurve?: string }).namedCurve, "P-256")
      assert.match(key.publicKeySpkiHex, /^[0-9a-f]+$/)
      const other = yield* crypto.generateKey
      assert.notStrictEqual(other.publicKeySpkiHex, key.publicKeySpkiHex, "a fresh key every time")
    }).pipe(Effect.provide(CryptoLayers.layer)))

  it.effect("the CSR has an empty subject, one critical URI SAN and a valid self-signature, as the approver reads it", () =>
    Effect.gen(function*() {
      const crypto = yield* Crypto
      const key = yield* crypto.generateKey
      const pem = yield* crypto.createCsr(key, ID)
      const csr = new x509.Pkcs10CertificateRequest(pem)
      assert.strictEqual(csr.subject, "")
      const sans = csr.extensions.filter((e) => e.type === SAN_OID)
      assert.strictEqual(sans.length, 1)
      assert.isTrue(sans[0]!.critical)
      assert.isTrue(yield* Effect.promise(() => csr.verify()))

      const facts = yield* inspectCsr(Buffer.from(pem).toString("base64"))
      assert.strictEqual(facts._tag, "Parsed")
      if (facts._tag !== "Parsed") return
      assert.isTrue(facts.signatureValid)
      assert.deepStrictEqual(facts.publicKey, { _tag: "Ecdsa", curve: "P-256" })
      assert.deepStrictEqual(facts.subjectAttributes, [])
      assert.deepStrictEqual(facts.uris, [ID])
      assert.deepStrictEqual([...facts.dnsNames, ...facts.ipAddresses, ...facts.emailAddresses, ...facts.otherSanKinds], [])
    }).pipe(Effect.provide(CryptoLayers.layer)))

  it.effect("inspectChain reads the leaf of an issued chain: validity, serial, key, URIs, CA flag, digitalSignature", () =>
    Effect.gen(function*() {
      const crypto = yield* Crypto
      const ca = yield* makeTestCa()
      const key = yield* crypto.generateKey
      const leaf = yield* signCsr(ca, yield* crypto.createCsr(key, ID), 3_600_000)
      const facts = yield* crypto.inspectChain(leaf + ca.certPem)
      assert.strictEqual(facts.length, 2)
      assert.strictEqual(facts.leaf.notAfter - facts.leaf.notBefore, 3_600_000)
      assert.strictEqual(facts.leaf.publicKeySpkiHex, key.publicKeySpkiHex)
      assert.deepStrictEqual(facts.leaf.uris, [ID])
      assert.strictEqual(facts.leaf.otherSans, 0)
      assert.isFalse(facts.leaf.isCA)
      assert.isTrue(facts.leaf.digitalSignature)
      assert.strictEqual(facts.leaf.serialNumber, new x509.X509Certificate(leaf).serialNumber)
    }).pipe(Effect.provide(CryptoLayers.layer)))

  it.effect("an empty or broken chain or bundle is a CryptoError naming the operation", () =>
    Effect.gen(function*() {
      const crypto = yield* Crypto
      const ca = yield* makeTestCa()
      const broken = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
      for (const pem of ["", "hello", broken]) {
        const chain = yield* Effect.flip(crypto.inspectChain(pem))
        assert.strictEqual(chain._tag, "CryptoError")
        assert.strictEqual(chain.operation, "inspect certificate chain")
        const bundle = yield* Effect.flip(crypto.validateBundle(pem))
        assert.strictEqual(bundle.operation, "validate CA bundle")
      }
      assert.strictEqual(yield* crypto.validateBundle(ca.certPem + (yield* makeTestCa("second")).certPem), 2)
    }).pipe(Effect.provide(CryptoLayers.layer)))
})

/**
 * InspectCsr: the exact facts of the driver's own request, and hostile inputs that must come back as
 * facts (never as a failure or a defect).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { inspectCsr } from "../../../src/approver/InspectCsr.ts"
import { evaluate } from "../../../src/domain/SpiffeRules.ts"
import {
  csrDer,
  csrRequest,
  der,
  derOid,
  IDENTITY,
  rawExtension,
  sanExtension,
  certificateRequest,
  specRequest,
  TEST_POLICY,
  toPem
} from "../../support/csr.ts"

/**
 * A P-256 request for IDENTITY whose key spells the curve out (ECParameters specifiedCurve), made
 * with `openssl ecparam -name prime256v1 -param_enc explicit -genkey` and `openssl req -new`
 * (the key was thrown away).
 */
const EXPLICIT_CURVE_CSR = `-----BEGIN CERTIFICATE REQUEST-----
MIICKDCCAc4CAQAwADCCAUswggEDBgcqhkjOPQIBMIH3AgEBMCwGByqGSM49AQEC
IQD/////AAAAAQAAAAAAAAAAAAAAAP///////////////zBbBCD/////AAAAAQAA
AAAAAAAAAAAAAP///////////////AQgWsY12Ko6k+ez671VdpiGvGUdBrDMU7D2
O848PifSYEsDFQDEnTYIhucEk2pmeOETnSa3gZ9+kARBBGsX0fLhLEJH+Lzm5WOk
QPJ3A32BLeszoPShOUXYmMKWT+NC4v4af5uO5+tKfA+eFivOM1drMV7Oy7ZAaDe/
UfUCIQD/////AAAAAP//////////vOb6racXnoTzucrC/GMlUQIBAQNCAAR9hhfO
zfTUQNDZDB34BnO+Y6YE7g5v7LVSMn8deQ5EzMYfSlTIMRV0KQV+ZTStBPS4ptAh
mFzxYPHM589zzM7coHgwdgYJKoZIhvcNAQkOMWkwZzA2BgNVHREBAf8ELDAqhihz
cGlmZmU6Ly9jbHVzdGVyLmxvY2FsL25zL3NhbmRib3gvc2EvYXBwMA4GA1UdDwEB
/wQEAwIFoDAdBgNVHSUEFjAUBggrBgEFBQcDAQYIKwYBBQUHAwIwCgYIKoZIzj0E
AwIDSAAwRQIgOqnhcyvH9iJWxGQaC/uwIQsZML3wFUNNYiBNQjlJDx4CIQDLjwfz
AOCWHDaG4dTIrQe9Eqc0q11HGNaBuINJN6eHIA==
-----END CERTIFICATE REQUEST-----
`

describe("InspectCsr.inspectCsr", () => {
  it.effect("a P-256 key with explicit curve parameters is named for what it is, and denied for that alone", () =>
    Effect.gen(function*() {
      const request = specRequest(EXPLICIT_CURVE_CSR)
      const facts = yield* inspectCsr(request)
      assert.strictEqual(facts._tag, "Parsed")
      if (facts._tag !== "Parsed") return
      assert.deepStrictEqual(facts.publicKey, { _tag: "EcdsaExplicitParameters" })
      assert.deepStrictEqual(facts.uris, [IDENTITY])
      const decision = evaluate(TEST_POLICY, certificateRequest(request), facts)
      assert.strictEqual(decision._tag, "Denied")
      if (decision._tag !== "Denied") return
      const text = decision.reasons.join("; ")
      assert.include(text, "explicit elliptic-curve parameters instead of a named curve")
      assert.notInclude(text, "signature does not verify")
      assert.notInclude(text, "unknown-")
      assert.strictEqual(decision.reasons.length, 1, text)
    }))


  it.effect("the driver's request yields exactly these facts", () =>
    Effect.gen(function*() {
      const request = yield* Effect.promise(() => csrRequest(IDENTITY))
      assert.deepStrictEqual(yield* inspectCsr(request), {
        _tag: "Parsed",
        signatureAlgorithm: "1.2.840.10045.4.3.2",
        signatureValid: true,
        publicKey: { _tag: "Ecdsa", curve: "P-256" },
        subjectAttributes: [],
        dnsNames: [],
        ipAddresses: [],
        emailAddresses: [],
        uris: [IDENTITY],
        otherSanKinds: [],
        extensions: [
          { oid: "2.5.29.17", critical: true },
          { oid: "2.5.29.15", critical: true },
          { oid: "2.5.29.37", critical: false }
        ],
        malformedExtensions: [],
        keyUsage: ["digitalSignature", "keyEncipherment"],
        extendedKeyUsage: ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"],
        basicConstraintsCa: undefined,
        basicConstraintsPathLen: undefined,
        nameConstraints: undefined,
        otherAttributes: []
      })
    }))

  it.effect("RSA modulus size and IP SANs are read from the DER", () =>
    Effect.gen(function*() {
      const request = yield* Effect.promise(() =>
        csrRequest(IDENTITY, {
          keyType: "rsa-2048",
          extensions: [sanExtension([{ type: "ip", value: "10.1.2.3" }, { type: "ip", value: "fd00::1" }])]
        })
      )
      const facts = yield* inspectCsr(request)
      assert.strictEqual(facts._tag, "Parsed")
      if (facts._tag !== "Parsed") return
      assert.deepStrictEqual(facts.publicKey, { _tag: "Rsa", bits: 2048 })
      assert.deepStrictEqual(facts.ipAddresses, ["10.1.2.3", "fd00:0:0:0:0:0:0:1"])
      assert.isTrue(facts.signatureValid)
    }))

  const unparsable: ReadonlyArray<[string, () => Promise<string>, string]> = [
    ["empty", async () => "", "expected exactly one PEM block, found 0"],
    ["not base64", async () => "%%%", "not canonical base64"],
    ["PEM with headers", async () => specRequest("-----BEGIN CERTIFICATE REQUEST-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END CERTIFICATE REQUEST-----\n"), "expected exactly one PEM block, found 0"],
    ["trailing text after the block", async () => specRequest(toPem(await csrDer(IDENTITY)) + "junk\n"), "unexpected data around the PEM block"],
    ["trailing bytes after the DER", async () => specRequest(toPem(new Uint8Array([...(await csrDer(IDENTITY)), 0]))), "malformed DER: truncated length"],
    ["truncated DER", async () => specRequest(toPem((await csrDer(IDENTITY)).subarray(0, 100))), "malformed DER: truncated content"],
    ["indefinite length", async () => specRequest(toPem(new Uint8Array([0x30, 0x80, 0x00, 0x00]))), "malformed DER: unsupported length"],
    ["an empty SEQUENCE", async () => specRequest(toPem(der(0x30))), "malformed DER: not a CertificationRequest"],
    ["an OID instead of a request", async () => specRequest(toPem(derOid("1.2.3"))), "malformed DER: expected a single element with tag 48"]
  ]
  for (const [name, build, why] of unparsable) {
    it.effect(`unparsable: ${name}`, () =>
      Effect.gen(function*() {
        const request = yield* Effect.promise(build)
        assert.deepStrictEqual(yield* inspectCsr(request), { _tag: "Unparsable", why })
      }))
  }

  it.effect("a garbage SAN value is reported as a malformed extension, the rest still read", () =>
    Effect.gen(function*() {
      const request = yield* Effect.promise(() =>
        csrRequest(IDENTITY, { extensions: [rawExtension("2.5.29.17", new Uint8Array([0x30, 0x03, 0x86, 0x05, 0x61]), true)] })
      )
      const facts = yield* inspectCsr(request)
      assert.strictEqual(facts._tag, "Parsed")
      if (facts._tag === "Parsed") {
        assert.deepStrictEqual(facts.malformedExtensions, ["2.5.29.17"])
        assert.deepStrictEqual(facts.uris, [])
        assert.isTrue(facts.signatureValid)
      }
    }))
})

/**
 * The driver's and approver's reading of a CertificateRequest (as cert-manager/csi-lib's manager waits: Denied stops,
 * Ready/Failed stops, Ready/Issued succeeds, everything else keeps waiting with a reason for the
 * timeout message, as in csi-lib's TestManager_PropagatesRequestConditionMessages) and Go duration
 * strings (`spec.duration`, `--certificate-request-duration`).
 */
import { assert, describe, it } from "@effect/vitest"
import type { CertificateRequest, Condition } from "../../../src/domain/CertificateRequest.ts"
import { formatGoDuration, isDecided, parseGoDuration, phase } from "../../../src/domain/CertificateRequest.ts"

const CERT_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
const CA_PEM = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64")

const cr = (conditions: ReadonlyArray<Condition>, status: { certificate?: string; ca?: string } = {}): CertificateRequest => ({
  metadata: { name: "req-1", namespace: "sandbox" },
  spec: { request: b64("csr"), issuerRef: { name: "my-spiffe-ca", kind: "ClusterIssuer", group: "cert-manager.io" } },
  status: { conditions, ...status }
})

const approved: Condition = { type: "Approved", status: "True", reason: "spiffe.csi.cert-manager.io", message: "Approved request" }
const denied: Condition = { type: "Denied", status: "True", reason: "spiffe.csi.cert-manager.io", message: "Denied request: wrong identity" }
const ready = (status: string, reason?: string, message?: string): Condition => ({
  type: "Ready",
  status,
  ...(reason === undefined ? {} : { reason }),
  ...(message === undefined ? {} : { message })
})

describe("phase", () => {
  it("is Denied when Denied=True, with the approver's message", () => {
    assert.deepStrictEqual(phase(cr([denied])), { _tag: "Denied", message: "Denied request: wrong identity" })
  })

  it("Denied wins over a Ready=True certificate", () => {
    const r = cr([approved, denied, ready("True", "Issued")], { certificate: b64(CERT_PEM) })
    assert.strictEqual(phase(r)._tag, "Denied")
  })

  it("Denied=False is not a denial", () => {
    const p = phase(cr([{ type: "Denied", status: "False" }]))
    assert.strictEqual(p._tag, "Pending")
  })

  it("is Failed when Ready has reason Failed", () => {
    assert.deepStrictEqual(phase(cr([approved, ready("False", "Failed", "issuer said no")])), { _tag: "Failed", message: "issuer said no" })
    assert.deepStrictEqual(phase(cr([approved, ready("False", "Failed")])), { _tag: "Failed", message: "" })
  })

  it("is Issued when Ready=True and a certificate is present, decoding certificate and CA", () => {
    const r = cr([approved, ready("True", "Issued", "Certificate fetched from issuer successfully")], { certificate: b64(CERT_PEM), ca: b64(CA_PEM) })
    assert.deepStrictEqual(phase(r), { _tag: "Issued", certificate: CERT_PEM, ca: CA_PEM })
  })

  it("is Issued with no CA when status.ca is absent or empty", () => {
    const p1 = phase(cr([approved, ready("True", "Issued")], { certificate: b64(CERT_PEM) }))
    const p2 = phase(cr([approved, ready("True", "Issued")], { certificate: b64(CERT_PEM), ca: "" }))
    assert.deepStrictEqual(p1, { _tag: "Issued", certificate: CERT_PEM, ca: undefined })
    assert.deepStrictEqual(p2, { _tag: "Issued", certificate: CERT_PEM, ca: undefined })
  })

  it("is Issued even when an issuer ignores approval (no Approved condition)", () => {
    assert.strictEqual(phase(cr([ready("True", "Issued")], { certificate: b64(CERT_PEM) }))._tag, "Issued")
  })

  it("keeps waiting when Ready=True but the certificate is empty", () => {
    assert.strictEqual(phase(cr([approved, ready("True", "Issued")], { certificate: "" }))._tag, "Pending")
  })

  it("is Pending, not approved, without conditions or status", () => {
    const bare: CertificateRequest = { metadata: { name: "req-1", namespace: "sandbox" }, spec: cr([]).spec }
    const expected = { _tag: "Pending" as const, reason: "request \"req-1\" has not yet been approved by approval plugin" }
    assert.deepStrictEqual(phase(bare), expected)
    assert.deepStrictEqual(phase(cr([])), expected)
    assert.deepStrictEqual(phase(cr([ready("False", "Pending", "waiting")])), expected)
  })

  it("is Pending with no ready condition once approved", () => {
    assert.deepStrictEqual(phase(cr([approved])), { _tag: "Pending", reason: "request \"req-1\" has no ready condition" })
  })

  it("is Pending with the Ready reason and message once approved", () => {
    assert.deepStrictEqual(phase(cr([approved, ready("False", "Pending", "Waiting on certificate issuance")])), {
      _tag: "Pending",
      reason: "request \"req-1\" is Pending: Waiting on certificate issuance"
    })
    assert.deepStrictEqual(phase(cr([approved, ready("Unknown")])), { _tag: "Pending", reason: "request \"req-1\" is pending: " })
  })
})

describe("isDecided", () => {
  it("is true once Approved or Denied is True", () => {
    assert.isTrue(isDecided(cr([approved])))
    assert.isTrue(isDecided(cr([denied])))
    assert.isFalse(isDecided(cr([])))
    assert.isFalse(isDecided(cr([{ ...approved, status: "False" }, ready("True", "Issued")])))
  })
})

describe("parseGoDuration", () => {
  const valid: ReadonlyArray<readonly [string, number]> = [
    ["1h", 3_600_000],
    ["1h0m0s", 3_600_000],
    ["90m", 5_400_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    ["2h45m30s", 9_930_000],
    ["300ms", 300],
    ["1m0.5s", 60_500],
    ["1000000ns", 1],
    ["1500us", 2],
    ["1500µs", 2],
    ["0", 0],
    ["0s", 0],
    ["720h", 2_592_000_000]
  ]
  for (const [input, ms] of valid) {
    it(`parses ${input}`, () => assert.strictEqual(parseGoDuration(input), ms))
  }

  for (const input of ["", "1", "h", "1d", "1w", "-1h", "1h ", " 1h", "1hh", "1 h", "one hour", "1H"]) {
    it(`refuses ${JSON.stringify(input)}`, () => assert.strictEqual(parseGoDuration(input), undefined))
  }
})

describe("formatGoDuration", () => {
  it("prints whole durations the Go way", () => {
    assert.strictEqual(formatGoDuration(3_600_000), "1h0m0s")
    assert.strictEqual(formatGoDuration(5_400_000), "1h30m0s")
    assert.strictEqual(formatGoDuration(2_592_000_000), "720h0m0s")
    assert.strictEqual(formatGoDuration(61_000), "1m1s")
    assert.strictEqual(formatGoDuration(60_000), "1m0s")
    assert.strictEqual(formatGoDuration(5_000), "5s")
    assert.strictEqual(formatGoDuration(0), "0s")
  })

  it("round-trips through parseGoDuration for whole seconds", () => {
    for (const ms of [60_000, 61_000, 3_600_000, 3_661_000, 86_400_000]) assert.strictEqual(parseGoDuration(formatGoDuration(ms)), ms)
  })

  // --certificate-request-duration accepts e.g. 90.5s (≥ 1m): the driver must send what the approver,
  // configured with the same flag, compares against; Go's Duration.String keeps the fraction.
  it("keeps a sub-second part as Go's Duration.String does (1m30.5s)", () => {
    assert.strictEqual(formatGoDuration(90_500), "1m30.5s")
    assert.strictEqual(formatGoDuration(3_600_250), "1h0m0.25s")
    assert.strictEqual(parseGoDuration(formatGoDuration(90_500)), 90_500)
  })
})

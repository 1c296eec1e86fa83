/**
 * The signer's pure rules: the SPIFFE ID, lifetime bounds (maxExpirationSeconds, --max-leaf-duration,
 * the intermediate's notAfter, the API server's one-hour minimum), beginRefreshAt (two thirds or the
 * flag, inside the API server's ten-minute edges), key types, user annotations, terminal requests,
 * the bundle name, and when the intermediate is renewed.
 */
import { assert, describe, it } from "@effect/vitest"
import * as PC from "../../../src/domain/PodCertificate.ts"

const HOUR = 3_600_000
const NOW = Date.UTC(2026, 11, 2, 1, 0, 0, 500)
const SECOND_FLOOR = Date.UTC(2026, 11, 2, 1, 0, 0)

const policy: PC.SignerPolicy = { signerName: PC.DEFAULT_SIGNER_NAME, trustDomain: "example.org", maxLeafMillis: 24 * HOUR, beginRefreshAfterMillis: undefined }

const pcr = (over: Partial<PC.PodCertificateRequest["spec"]> = {}, status?: PC.PodCertificateRequest["status"]): PC.PodCertificateRequest => ({
  metadata: { name: "req", namespace: "team-a" },
  spec: {
    signerName: PC.DEFAULT_SIGNER_NAME,
    podName: "p",
    podUID: "u",
    serviceAccountName: "web",
    nodeName: "n",
    stubPKCS10Request: "",
    ...over
  },
  ...(status === undefined ? {} : { status })
})

const P256: PC.KeyFacts = { _tag: "ECDSA", curve: "P-256" }
const FAR = NOW + 1000 * HOUR

describe("decide", () => {
  it("issues spiffe://<td>/ns/<namespace>/sa/<serviceAccountName>", () => {
    const d = PC.decide(policy, pcr(), P256, NOW, FAR)
    assert.strictEqual(d._tag, "Issue")
    if (d._tag === "Issue") assert.strictEqual(d.spiffeId, "spiffe://example.org/ns/team-a/sa/web")
  })

  it("signs ECDSA P-256 and P-384 and RSA 3072 and 4096", () => {
    for (const key of [P256, { _tag: "ECDSA", curve: "P-384" }, { _tag: "RSA", bits: 3072 }, { _tag: "RSA", bits: 4096 }] as const) {
      assert.strictEqual(PC.decide(policy, pcr(), key, NOW, FAR)._tag, "Issue", PC.keyTypeName(key))
    }
  })

  it("denies P-521, Ed25519, RSA 2048 and unknown algorithms with UnsupportedKeyType naming the supported ones", () => {
    const keys: ReadonlyArray<PC.KeyFacts> = [{ _tag: "ECDSA", curve: "P-521" }, { _tag: "Ed25519" }, { _tag: "RSA", bits: 2048 }, { _tag: "Other", algorithm: "1.2.3" }]
    for (const key of keys) {
      const d = PC.decide(policy, pcr(), key, NOW, FAR)
      assert.strictEqual(d._tag, "Deny")
      if (d._tag !== "Deny") continue
      assert.strictEqual(d.reason, PC.UNSUPPORTED_KEY_TYPE)
      assert.include(d.reasons[0]!, PC.keyTypeName(key))
      assert.include(d.reasons[0]!, "ECDSAP256, ECDSAP384, RSA3072, RSA4096")
    }
  })

  it("denies an unreadable stub CSR as an unsupported key", () => {
    const d = PC.decide(policy, pcr(), "the stub CSR is empty", NOW, FAR)
    assert.deepStrictEqual(d, { _tag: "Deny", reason: PC.UNSUPPORTED_KEY_TYPE, reasons: ["spec.stubPKCS10Request: the stub CSR is empty"] })
  })

  it("denies any user annotation with InvalidUnverifiedUserAnnotations, listing every key sorted", () => {
    const d = PC.decide(policy, pcr({ unverifiedUserAnnotations: { "z.example/b": "1", "a.example/a": "2" } }), P256, NOW, FAR)
    assert.strictEqual(d._tag, "Deny")
    if (d._tag === "Deny") {
      assert.strictEqual(d.reason, PC.INVALID_USER_ANNOTATIONS)
      assert.include(d.reasons[0]!, "a.example/a, z.example/b")
    }
  })

  it("reports both objections; the condition reason is the key type's", () => {
    const d = PC.decide(policy, pcr({ unverifiedUserAnnotations: { "a.example/a": "x" } }), { _tag: "Ed25519" }, NOW, FAR)
    assert.strictEqual(d._tag, "Deny")
    if (d._tag === "Deny") {
      assert.strictEqual(d.reason, PC.UNSUPPORTED_KEY_TYPE)
      assert.strictEqual(d.reasons.length, 2)
    }
  })

  it("an empty annotation map is fine", () => {
    assert.strictEqual(PC.decide(policy, pcr({ unverifiedUserAnnotations: {} }), P256, NOW, FAR)._tag, "Issue")
  })

  it("waits (does not issue) when the intermediate cannot cover one hour", () => {
    assert.strictEqual(PC.decide(policy, pcr(), P256, NOW, NOW + HOUR - 1000)._tag, "Wait")
    assert.strictEqual(PC.decide(policy, pcr(), P256, NOW, SECOND_FLOOR + HOUR)._tag, "Issue")
  })
})

describe("leafTimes", () => {
  it("notBefore is now rounded down to the second; default lifetime is maxExpirationSeconds' default (24 h)", () => {
    const t = PC.leafTimes(policy, undefined, NOW, FAR)!
    assert.strictEqual(t.notBefore, SECOND_FLOOR)
    assert.strictEqual(t.notAfter - t.notBefore, 24 * HOUR)
    assert.strictEqual(t.beginRefreshAt - t.notBefore, 16 * HOUR)
  })

  it("the shorter of maxExpirationSeconds and --max-leaf-duration wins", () => {
    assert.strictEqual(PC.leafTimes(policy, 3600, NOW, FAR)!.notAfter - SECOND_FLOOR, HOUR)
    assert.strictEqual(PC.leafTimes({ ...policy, maxLeafMillis: 2 * HOUR }, 86_400, NOW, FAR)!.notAfter - SECOND_FLOOR, 2 * HOUR)
  })

  it("never outlives the intermediate", () => {
    const issuerNotAfter = SECOND_FLOOR + 5 * HOUR + 700
    const t = PC.leafTimes(policy, 86_400, NOW, issuerNotAfter)!
    assert.strictEqual(t.notAfter, SECOND_FLOOR + 5 * HOUR)
    assert.isAtMost(t.notAfter, issuerNotAfter)
  })

  it("is undefined below the API server's one-hour minimum", () => {
    assert.isUndefined(PC.leafTimes(policy, 86_400, NOW, SECOND_FLOOR + HOUR - 1000))
  })

  it("--begin-refresh-after sets beginRefreshAt from notBefore, kept 10 min inside both ends", () => {
    assert.strictEqual(PC.leafTimes({ ...policy, beginRefreshAfterMillis: 20 * 60_000 }, 3600, NOW, FAR)!.beginRefreshAt, SECOND_FLOOR + 20 * 60_000)
    assert.strictEqual(PC.leafTimes({ ...policy, beginRefreshAfterMillis: 2 * HOUR }, 3600, NOW, FAR)!.beginRefreshAt, SECOND_FLOOR + 50 * 60_000)
    assert.strictEqual(PC.leafTimes({ ...policy, beginRefreshAfterMillis: 60_000 }, 3600, NOW, FAR)!.beginRefreshAt, SECOND_FLOOR + 10 * 60_000)
  })

  it("two thirds of a one-hour leaf is 40 minutes", () => {
    assert.strictEqual(PC.leafTimes(policy, 3600, NOW, FAR)!.beginRefreshAt, SECOND_FLOOR + 40 * 60_000)
  })
})

describe("requests and names", () => {
  it("needsAnswer: ours and without a terminal condition", () => {
    assert.isTrue(PC.needsAnswer(pcr(), PC.DEFAULT_SIGNER_NAME))
    assert.isFalse(PC.needsAnswer(pcr({ signerName: "example.com/other" }), PC.DEFAULT_SIGNER_NAME))
    for (const type of [PC.ISSUED, PC.DENIED, PC.FAILED]) {
      assert.isFalse(PC.needsAnswer(pcr({}, { conditions: [{ type, status: "True" }] }), PC.DEFAULT_SIGNER_NAME), type)
    }
    assert.isTrue(PC.needsAnswer(pcr({}, { conditions: [{ type: "SuggestedKeyType", status: "True" }] }), PC.DEFAULT_SIGNER_NAME))
  })

  it("the bundle name is the signer name with / as : plus a DNS-subdomain suffix", () => {
    assert.strictEqual(PC.trustBundleName("spiffe.csi.cert-manager.io/svid"), "spiffe.csi.cert-manager.io:svid:bundle")
  })

  it("issued and refused status bodies carry what the API server validates", () => {
    const times = PC.leafTimes(policy, 3600, NOW, FAR)!
    const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z")
    const issued = PC.issuedStatus("PEM", times, "spiffe://example.org/ns/a/sa/b", iso)
    assert.deepStrictEqual(issued.conditions.map((c) => [c.type, c.status, c.reason]), [[PC.ISSUED, "True", PC.ISSUED_REASON]])
    assert.strictEqual(issued.notBefore, "2026-12-02T01:00:00Z")
    const denied = PC.refusedStatus(PC.DENIED, PC.UNSUPPORTED_KEY_TYPE, "x".repeat(40_000), iso(NOW))
    assert.deepStrictEqual(Object.keys(denied), ["conditions"])
    assert.strictEqual(denied.conditions[0]!.message.length, 32_768)
  })
})

describe("intermediateRenewAt", () => {
  it("renews once the remaining lifetime is below the longest leaf plus max(1 h, a tenth)", () => {
    // 168 h intermediate, 24 h leaves: margin 16.8 h, so renewal 40.8 h before notAfter.
    assert.strictEqual(PC.intermediateRenewAt(0, 168 * HOUR, 24 * HOUR), 168 * HOUR - 24 * HOUR - 16.8 * HOUR)
    // 6 h intermediate, 1 h leaves: margin 1 h.
    assert.strictEqual(PC.intermediateRenewAt(0, 6 * HOUR, HOUR), 4 * HOUR)
  })

  it("every leaf issued before the renewal gets its full lifetime", () => {
    const renewAt = PC.intermediateRenewAt(0, 168 * HOUR, 24 * HOUR)
    const t = PC.leafTimes(policy, undefined, renewAt, 168 * HOUR)!
    assert.strictEqual(t.notAfter - t.notBefore, 24 * HOUR)
  })

  it("a duration with no room for a leaf plus the margin is refused", () => {
    assert.isString(PC.intermediateDurationViolation(25 * HOUR, 24 * HOUR))
    assert.isUndefined(PC.intermediateDurationViolation(168 * HOUR, 24 * HOUR))
  })
})

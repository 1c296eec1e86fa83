/**
 * The "" audience ServiceAccount token in `csi.storage.k8s.io/serviceAccount.tokens` and its claims
 * (the volume_context keys of cert-manager/csi-lib (https://github.com/cert-manager/csi-lib), driver/nodeserver.go and
 * Test_restConfigForMetadataTokenRequestEmptyAud).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted, Result } from "effect"
import { parseTokens, parseTokensEffect, TOKENS_KEY } from "../../../src/domain/Token.ts"
import { b64url, EXPIRES_AT, FAKE_SIGNATURE, jwt, kubernetesClaims, podToken, tokensJson, WORKLOAD } from "../../support/tokens.ts"

const TOKEN = podToken()

const fails = (raw: string | undefined, says: string) => {
  const r = parseTokens(raw)
  if (Result.isSuccess(r)) assert.fail("expected a failure")
  assert.include(r.failure, TOKENS_KEY)
  assert.include(r.failure, says)
  assert.notInclude(r.failure, FAKE_SIGNATURE)
  assert.notInclude(r.failure, "SECRET")
  if (raw !== undefined) {
    for (const segment of raw.split(/[."]/)) if (segment.length > 12) assert.notInclude(r.failure, segment)
  }
}

const parsed = (raw: string) => {
  const r = parseTokens(raw)
  if (Result.isFailure(r)) assert.fail(r.failure)
  return r.success
}

describe("parseTokens", () => {
  describe("refuses", () => {
    it("a missing key", () => fails(undefined, "is missing"))
    it("an empty value", () => fails("", "is missing"))
    it("garbage that is not JSON", () => fails("{not json SECRET", "not a JSON map"))
    it("a JSON array", () => fails(JSON.stringify([{ token: TOKEN }]), "not a JSON map"))
    it("an entry without a token field", () => fails(JSON.stringify({ "": { expirationTimestamp: "x" } }), "not a JSON map"))
    it("no \"\" audience", () => fails(tokensJson({ vault: TOKEN, "https://sts.example": TOKEN }), "no token for the \"\" audience"))
    it("an opaque token", () => fails(tokensJson({ "": "opaque-SECRET-bearer" }), "not a signed JWT"))
    it("a two-segment token", () => fails(tokensJson({ "": TOKEN.split(".").slice(0, 2).join(".") }), "not a signed JWT"))
    it("an unsecured JWT (alg none)", () => fails(tokensJson({ "": podToken({}, { alg: "none" }) }), "unsupported JWS header"))
    it("an HMAC JWT (HS256)", () => fails(tokensJson({ "": podToken({}, { alg: "HS256" }) }), "unsupported JWS header"))
    it("EdDSA, which the original did not accept", () => fails(tokensJson({ "": podToken({}, { alg: "EdDSA" }) }), "unsupported JWS header"))
    it("a header without alg", () => fails(tokensJson({ "": podToken({}, { kid: "x" }) }), "unsupported JWS header"))
    it("a header in standard base64 with padding", () => {
      const std = Buffer.from(JSON.stringify({ alg: "RS256", kid: "x?>" })).toString("base64")
      assert.match(std, /[+/=]/)
      fails(tokensJson({ "": `${std}.${b64url(kubernetesClaims())}.${FAKE_SIGNATURE}` }), "unsupported JWS header")
    })
    it("claims without kubernetes.io", () => fails(tokensJson({ "": jwt({ sub: "system:serviceaccount:a:b", exp: EXPIRES_AT }) }), "lacks the kubernetes.io"))
    it("kubernetes.io without a serviceaccount", () =>
      fails(tokensJson({ "": jwt({ "kubernetes.io": { namespace: "a" } }) }), "lacks the kubernetes.io"))
    it("a non-numeric exp", () => fails(tokensJson({ "": jwt({ ...kubernetesClaims(), exp: "soon" }) }), "lacks the kubernetes.io"))
    it("an empty namespace claim", () => fails(tokensJson({ "": podToken({ namespace: "" }) }), "empty namespace or serviceaccount"))
    it("an empty serviceaccount claim", () => fails(tokensJson({ "": podToken({ serviceAccount: "" }) }), "empty namespace or serviceaccount"))
  })

  describe("accepts", () => {
    it("a pod-bound RS256 token, reading every claim the driver relies on", () => {
      const t = parsed(tokensJson({ "": TOKEN }))
      assert.strictEqual(Redacted.value(t.token), TOKEN)
      assert.deepStrictEqual(
        { namespace: t.namespace, serviceAccount: t.serviceAccount, podName: t.podName, podUid: t.podUid, expiresAt: t.expiresAt },
        { namespace: WORKLOAD.namespace, serviceAccount: WORKLOAD.serviceAccount, podName: WORKLOAD.podName, podUid: WORKLOAD.podUid, expiresAt: EXPIRES_AT * 1000 }
      )
    })

    it("the \"\" token among other audiences", () => {
      const other = podToken({ namespace: "elsewhere" })
      const t = parsed(tokensJson({ vault: other, "": TOKEN, "https://sts.example": "opaque" }))
      assert.strictEqual(Redacted.value(t.token), TOKEN)
      assert.strictEqual(t.namespace, WORKLOAD.namespace)
    })

    for (const alg of ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"]) {
      it(`alg ${alg}`, () => {
        assert.strictEqual(parsed(tokensJson({ "": podToken({}, { alg, kid: "x" }) })).serviceAccount, WORKLOAD.serviceAccount)
      })
    }

    it("a token without pod or exp claims", () => {
      const t = parsed(tokensJson({ "": podToken({ noPod: true, exp: null }) }))
      assert.strictEqual(t.podName, undefined)
      assert.strictEqual(t.podUid, undefined)
      assert.strictEqual(t.expiresAt, undefined)
      assert.strictEqual(t.namespace, WORKLOAD.namespace)
    })
  })

  it("keeps the token redacted in every printed form", () => {
    const t = parsed(tokensJson({ "": TOKEN }))
    for (const printed of [String(t.token), JSON.stringify(t), `${t.token}`]) {
      assert.notInclude(printed, TOKEN)
      assert.notInclude(printed, FAKE_SIGNATURE)
    }
  })

  it.effect("parseTokensEffect fails with the same message", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(parseTokensEffect(undefined))
      assert.include(error, TOKENS_KEY)
      const ok = yield* parseTokensEffect(tokensJson({ "": TOKEN }))
      assert.strictEqual(ok.serviceAccount, WORKLOAD.serviceAccount)
    }))
})

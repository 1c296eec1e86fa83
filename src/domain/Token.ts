/**
 * The ServiceAccount token kubelet hands the driver (`csi.storage.k8s.io/serviceAccount.tokens`,
 * asked for by the CSIDriver's `tokenRequests` with audience ""): in NodePublishVolume's secrets when
 * the CSIDriver sets `serviceAccountTokenInSecrets`, else in the volume context; and the identity
 * claims inside it.
 *
 * The token's signature is not verified here: the API server verifies it when the driver uses it to
 * create the CertificateRequest, and the approver compares the request's `spec.username` (filled by
 * the API server from the verified token) with the requested SPIFFE ID. These claims only derive
 * the ID to ask for and cross-check kubelet's pod info.
 */
import { Effect, Redacted, Result, Schema } from "effect"

export const TOKENS_KEY = "csi.storage.k8s.io/serviceAccount.tokens"

const TokenEntry = Schema.Struct({
  token: Schema.String,
  expirationTimestamp: Schema.optional(Schema.String)
})
const TokensJson = Schema.fromJsonString(Schema.Record(Schema.String, TokenEntry))

const Claims = Schema.Struct({
  exp: Schema.optional(Schema.Finite),
  "kubernetes.io": Schema.Struct({
    namespace: Schema.String,
    serviceaccount: Schema.Struct({ name: Schema.String, uid: Schema.optional(Schema.String) }),
    pod: Schema.optional(Schema.Struct({ name: Schema.String, uid: Schema.String }))
  })
})
const ClaimsJson = Schema.fromJsonString(Claims)

/** What the driver keeps of a token: the secret itself (Redacted) and the claims it relies on. */
export interface PodToken {
  readonly token: Redacted.Redacted<string>
  readonly namespace: string
  readonly serviceAccount: string
  readonly podName: string | undefined
  readonly podUid: string | undefined
  /** Epoch milliseconds, when the token says. */
  readonly expiresAt: number | undefined
}

/** JWS algorithms kubelet-issued tokens may use (the original accepted the same set). */
const ALLOWED_ALGS = new Set(["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"])

const HeaderJson = Schema.fromJsonString(Schema.Struct({ alg: Schema.String }))

const b64url = (s: string): string | undefined => {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return undefined
  return Buffer.from(s, "base64url").toString("utf8")
}

/** The request field a token came from, as error messages name it. */
export const TOKENS_IN_VOLUME_CONTEXT = `volume_context["${TOKENS_KEY}"]`
export const TOKENS_IN_SECRETS = `secrets["${TOKENS_KEY}"]`

/**
 * Extracts the "" audience token from the tokens JSON and reads its claims. Errors are short
 * sentences naming `field` (where the JSON came from), never the token.
 */
export const parseTokens = (raw: string | undefined, field: string = TOKENS_IN_VOLUME_CONTEXT): Result.Result<PodToken, string> => {
  if (raw === undefined || raw === "") {
    return Result.fail(`${field} is missing: the CSIDriver must set tokenRequests with audience ""`)
  }
  const tokens = Schema.decodeUnknownResult(TokensJson)(raw)
  if (Result.isFailure(tokens)) return Result.fail(`${field} is not a JSON map of audience to {token}`)
  const entry = tokens.success[""]
  if (entry === undefined) return Result.fail(`${field} has no token for the "" audience`)
  const parts = entry.token.split(".")
  if (parts.length !== 3) return Result.fail(`${field}[""] is not a signed JWT`)
  const header = Schema.decodeUnknownResult(HeaderJson)(b64url(parts[0]!) ?? "")
  if (Result.isFailure(header) || !ALLOWED_ALGS.has(header.success.alg)) {
    return Result.fail(`${field}[""] has an unsupported JWS header`)
  }
  const claims = Schema.decodeUnknownResult(ClaimsJson)(b64url(parts[1]!) ?? "")
  if (Result.isFailure(claims)) {
    return Result.fail(`${field}[""] lacks the kubernetes.io namespace and serviceaccount claims`)
  }
  const k = claims.success["kubernetes.io"]
  if (k.namespace === "" || k.serviceaccount.name === "") {
    return Result.fail(`${field}[""] has an empty namespace or serviceaccount claim`)
  }
  return Result.succeed({
    token: Redacted.make(entry.token, { label: "ServiceAccountToken" }),
    namespace: k.namespace,
    serviceAccount: k.serviceaccount.name,
    podName: k.pod?.name,
    podUid: k.pod?.uid,
    expiresAt: claims.success.exp === undefined ? undefined : claims.success.exp * 1000
  })
}

export const parseTokensEffect = (raw: string | undefined) => Effect.fromResult(parseTokens(raw))

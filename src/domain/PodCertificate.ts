/**
 * Kubernetes Pod Certificates (certificates.k8s.io/v1, GA in Kubernetes 1.37): the subset of
 * PodCertificateRequest and ClusterTrustBundle the signer reads and writes, and the signer's pure
 * rules: which requests are ours, the SPIFFE ID, the lifetime and refresh time of a leaf, the key
 * types we sign, the user annotations we accept, and when the intermediate CA must be renewed.
 *
 * Owns: `decide` (a request plus its key facts → Issue, Deny with every reason, or Wait), `leafTimes`,
 * `intermediateRenewAt`, the status bodies, and the names the API server checks (condition types and
 * reasons, the ClusterTrustBundle name prefix).
 * Does not own: parsing DER (the signer's edge reads the stub CSR into `KeyFacts`), signing, I/O.
 *
 * API facts (Kubernetes v1.37.2, pkg/apis/certificates/validation/validation.go,
 * https://github.com/kubernetes/kubernetes): an issuance sets one condition `Issued`, the chain, and
 * notBefore / notAfter equal to the leaf's own; notBefore within 5 minutes of the API server's clock;
 * lifetime ≥ 1 h and ≤ spec.maxExpirationSeconds; beginRefreshAt in [notBefore + 10 min, notAfter −
 * 10 min]. Denied and Failed carry only conditions. Every condition needs a reason and a
 * lastTransitionTime (metav1.Condition).
 */
import { Schema } from "effect"
import { ClusterObjectMeta, Condition, ObjectMeta, TypeMeta } from "./KubeMeta.ts"
import { forServiceAccount } from "./SpiffeId.ts"

export const GROUP = "certificates.k8s.io"
export const VERSION = "v1"

/** The signer name of this project (the contract's default; flags may name another one). */
export const DEFAULT_SIGNER_NAME = "spiffe.csi.cert-manager.io/svid"

/** Condition types and reasons the API server and the kubelet know (k8s.io/api certificates/v1). */
export const ISSUED = "Issued"
export const DENIED = "Denied"
export const FAILED = "Failed"
export const UNSUPPORTED_KEY_TYPE = "UnsupportedKeyType"
export const INVALID_USER_ANNOTATIONS = "InvalidUnverifiedUserAnnotations"
/** Our reason on an Issued condition and on a Failed one (CamelCase, as metav1.Condition requires). */
export const ISSUED_REASON = "SpiffeSvidIssued"
export const INTERMEDIATE_UNAVAILABLE = "IntermediateUnavailable"

/** The API server's defaults and bounds for spec.maxExpirationSeconds. */
export const DEFAULT_MAX_EXPIRATION_SECONDS = 86_400
export const MIN_LIFETIME_MILLIS = 3_600_000
/** beginRefreshAt must be at least this far from both ends of the validity. */
export const REFRESH_EDGE_MILLIS = 600_000

export const PodCertificateRequestSpec = Schema.Struct({
  signerName: Schema.String,
  podName: Schema.String,
  podUID: Schema.String,
  serviceAccountName: Schema.String,
  serviceAccountUID: Schema.optional(Schema.String),
  nodeName: Schema.String,
  nodeUID: Schema.optional(Schema.String),
  maxExpirationSeconds: Schema.optional(Schema.Int),
  /** DER PKCS#10, base64 on the wire. */
  stubPKCS10Request: Schema.String,
  unverifiedUserAnnotations: Schema.optional(Schema.Record(Schema.String, Schema.String))
})

export const PodCertificateRequestStatus = Schema.Struct({
  conditions: Schema.optional(Schema.Array(Condition)),
  certificateChain: Schema.optional(Schema.String),
  notBefore: Schema.optional(Schema.String),
  beginRefreshAt: Schema.optional(Schema.String),
  notAfter: Schema.optional(Schema.String)
})

export const PodCertificateRequest = Schema.Struct({
  ...TypeMeta,
  metadata: ObjectMeta,
  spec: PodCertificateRequestSpec,
  status: Schema.optional(PodCertificateRequestStatus)
})
export type PodCertificateRequest = typeof PodCertificateRequest.Type

export const ClusterTrustBundle = Schema.Struct({
  ...TypeMeta,
  metadata: ClusterObjectMeta,
  spec: Schema.Struct({ signerName: Schema.optional(Schema.String), trustBundle: Schema.String })
})
export type ClusterTrustBundle = typeof ClusterTrustBundle.Type

/** Label on our ClusterTrustBundle, so pods can select it by trust domain as well as by signer. */
export const TRUST_DOMAIN_LABEL = "spiffe.csi.cert-manager.io/trust-domain"

/**
 * The API server requires a bundle linked to a signer to be named `<signer with / as :>:<suffix>`,
 * the suffix a DNS subdomain; `bundle` is always one, whatever the trust domain's spelling.
 */
export const trustBundleName = (signerName: string): string => `${signerName.replaceAll("/", ":")}:bundle`

/** The terminal condition of a request, if any (status is immutable once it has one). */
export const terminal = (pcr: PodCertificateRequest): string | undefined =>
  pcr.status?.conditions?.find((c) => (c.type === ISSUED || c.type === DENIED || c.type === FAILED) && c.status === "True")?.type

/** A request the signer must answer: ours and not answered yet. */
export const needsAnswer = (pcr: PodCertificateRequest, signerName: string): boolean =>
  pcr.spec.signerName === signerName && terminal(pcr) === undefined

/** The public key of a stub CSR, as the signer's edge read it. */
export type KeyFacts =
  | { readonly _tag: "ECDSA"; readonly curve: string }
  | { readonly _tag: "RSA"; readonly bits: number }
  | { readonly _tag: "Ed25519" }
  | { readonly _tag: "Other"; readonly algorithm: string }

/**
 * The key types we sign: ECDSA P-256 and P-384, RSA 3072 and 4096 (the kubelet's names ECDSAP256,
 * ECDSAP384, RSA3072, RSA4096). Denied: ECDSAP521 and ED25519, which Envoy (BoringSSL) does not
 * accept as certificate keys, so a mesh of SPIFFE workloads could not use them.
 */
export const SUPPORTED_KEY_TYPES: ReadonlyArray<string> = ["ECDSAP256", "ECDSAP384", "RSA3072", "RSA4096"]

export const keyTypeName = (key: KeyFacts): string => {
  switch (key._tag) {
    case "ECDSA":
      return key.curve === "P-256" ? "ECDSAP256" : key.curve === "P-384" ? "ECDSAP384" : key.curve === "P-521" ? "ECDSAP521" : `ECDSA ${key.curve}`
    case "RSA":
      return `RSA${key.bits}`
    case "Ed25519":
      return "ED25519"
    case "Other":
      return key.algorithm
  }
}

/** The signer's settings the rules read. Durations in milliseconds. */
export interface SignerPolicy {
  readonly signerName: string
  readonly trustDomain: string
  /** --max-leaf-duration */
  readonly maxLeafMillis: number
  /** --begin-refresh-after; undefined = two thirds of the lifetime. */
  readonly beginRefreshAfterMillis: number | undefined
}

export interface LeafTimes {
  readonly notBefore: number
  readonly notAfter: number
  readonly beginRefreshAt: number
}

export type PodCertificateDecision =
  | { readonly _tag: "Issue"; readonly spiffeId: string; readonly times: LeafTimes }
  | { readonly _tag: "Deny"; readonly reason: string; readonly reasons: ReadonlyArray<string> }
  /** The intermediate cannot cover a full hour right now: wait for its renewal (retried). */
  | { readonly _tag: "Wait"; readonly why: string }

/**
 * When a leaf issued at `now` starts, ends and should be refreshed.
 * - notBefore = now rounded down to the second: the status times are whole seconds and must equal
 *   the leaf's, and nothing more is backdated, so a leaf never predates its request.
 * - notAfter = notBefore + min(maxExpirationSeconds, --max-leaf-duration), and never past the
 *   intermediate's notAfter (no leaf outlives its issuer).
 * - beginRefreshAt = notBefore + (--begin-refresh-after or 2/3 of the lifetime), kept inside
 *   [notBefore + 10 min, notAfter − 10 min] as the API server requires. Two thirds leaves the last
 *   third (8 h of a 24 h leaf, 20 min of a 1 h one) for the kubelet's retries and jitter (≤ 5 min).
 * Undefined when the result would be shorter than the API server's minimum of one hour.
 */
export const leafTimes = (
  policy: SignerPolicy,
  maxExpirationSeconds: number | undefined,
  now: number,
  issuerNotAfter: number
): LeafTimes | undefined => {
  const notBefore = Math.floor(now / 1000) * 1000
  const wanted = Math.min((maxExpirationSeconds ?? DEFAULT_MAX_EXPIRATION_SECONDS) * 1000, policy.maxLeafMillis)
  const notAfter = Math.min(notBefore + wanted, Math.floor(issuerNotAfter / 1000) * 1000)
  const lifetime = notAfter - notBefore
  if (lifetime < MIN_LIFETIME_MILLIS) return undefined
  const after = policy.beginRefreshAfterMillis ?? Math.floor((lifetime * 2) / 3 / 1000) * 1000
  const beginRefreshAt = Math.min(Math.max(notBefore + after, notBefore + REFRESH_EDGE_MILLIS), notAfter - REFRESH_EDGE_MILLIS)
  return { notBefore, notAfter, beginRefreshAt }
}

/**
 * The answer to one request of ours. Every objection is reported: a Deny's `reasons` list them all,
 * and its `reason` (the condition's) is the first kind found, key type before annotations, since a
 * key type can be fixed in the pod spec and annotations then checked again.
 */
export const decide = (
  policy: SignerPolicy,
  pcr: PodCertificateRequest,
  key: KeyFacts | string,
  now: number,
  issuerNotAfter: number
): PodCertificateDecision => {
  const found: Array<{ readonly reason: string; readonly text: string }> = []
  if (typeof key === "string") {
    found.push({ reason: UNSUPPORTED_KEY_TYPE, text: `spec.stubPKCS10Request: ${key}` })
  } else {
    const name = keyTypeName(key)
    if (!SUPPORTED_KEY_TYPES.includes(name)) {
      found.push({ reason: UNSUPPORTED_KEY_TYPE, text: `spec.stubPKCS10Request: key type ${name} is not supported; use one of ${SUPPORTED_KEY_TYPES.join(", ")}` })
    }
  }
  const keys = Object.keys(pcr.spec.unverifiedUserAnnotations ?? {}).sort()
  if (keys.length > 0) {
    found.push({ reason: INVALID_USER_ANNOTATIONS, text: `spec.unverifiedUserAnnotations: ${policy.signerName} recognises no user annotations, got ${keys.join(", ")}` })
  }
  if (found.length > 0) return { _tag: "Deny", reason: found[0]!.reason, reasons: found.map((f) => f.text) }
  const times = leafTimes(policy, pcr.spec.maxExpirationSeconds, now, issuerNotAfter)
  if (times === undefined) return { _tag: "Wait", why: "the intermediate CA expires within the hour; waiting for its renewal" }
  return { _tag: "Issue", spiffeId: forServiceAccount(policy.trustDomain, pcr.metadata.namespace, pcr.spec.serviceAccountName), times }
}

/**
 * When to request the next intermediate: once its remaining lifetime is below the longest leaf plus
 * a margin, so that every leaf gets its full lifetime (none is cut short by `leafTimes`) and the
 * new one has the margin to be approved and issued (retried on `Schedules.intermediateRetry`). The
 * margin is an hour, or a tenth of the intermediate's lifetime if that is longer (17 h of 168 h).
 */
export const intermediateRenewAt = (notBefore: number, notAfter: number, maxLeafMillis: number): number => {
  const margin = Math.max(3_600_000, Math.floor((notAfter - notBefore) / 10))
  return Math.max(notBefore, notAfter - maxLeafMillis - margin)
}

/** The shortest --intermediate-duration that leaves room for a full leaf plus the renewal margin. */
export const intermediateDurationViolation = (intermediateMillis: number, maxLeafMillis: number): string | undefined =>
  intermediateRenewAt(0, intermediateMillis, maxLeafMillis) <= 0
    ? `must be longer than --max-leaf-duration plus the renewal margin (max(1h, a tenth of itself)) so that the intermediate is renewed after it is issued`
    : undefined

const condition = (type: string, reason: string, message: string, now: string) =>
  ({ type, status: "True", reason, message, lastTransitionTime: now })

/** The status of an issued request. */
export const issuedStatus = (chainPem: string, times: LeafTimes, spiffeId: string, rfc3339: (ms: number) => string) => ({
  conditions: [condition(ISSUED, ISSUED_REASON, `issued ${spiffeId}`, rfc3339(times.notBefore))],
  certificateChain: chainPem,
  notBefore: rfc3339(times.notBefore),
  beginRefreshAt: rfc3339(times.beginRefreshAt),
  notAfter: rfc3339(times.notAfter)
})

/** The status of a denied or failed request: conditions only, as the API server requires. */
export const refusedStatus = (type: typeof DENIED | typeof FAILED, reason: string, message: string, now: string) => ({
  conditions: [condition(type, reason, message.slice(0, 32_768), now)]
})

/**
 * The approver's rule for the one CA it ever approves: the intermediate CA of the Pod Certificate
 * signer (`csi-driver-spiffe-signer`), which signs pods' SVIDs for Kubernetes PodCertificateRequests
 * with a key it holds in memory only.
 *
 * Owns: what such a request (annotation `spiffe.csi.cert-manager.io/intermediate`) must be, exactly:
 * requested by the signer's own ServiceAccount (`--signer-service-account`; without it nothing is
 * approved), for the trust domain, with no identity annotation, `isCA`, the exact duration
 * (`--signer-intermediate-duration`), usages and issuer; a P-256 CSR with a valid signature, a subject
 * of at most one CN, no subjectAltName, and exactly three critical extensions: basicConstraints CA
 * with path length 0 (so it can sign leaves only), keyUsage digitalSignature|keyCertSign|cRLSign, and
 * nameConstraints permitting one URI subtree, the trust domain itself, and excluding nothing.
 * Does not own: SVID requests (`SpiffeRules.ts`, which sends requests with the annotation here),
 * reading the CSR (`approver/InspectCsr.ts`).
 *
 * Why these: cert-manager signs what the CSR and the request ask for, so the approval is the only
 * gate between "may create a CertificateRequest" and "holds a CA under the trust domain's root".
 * Path length 0 stops it minting further CAs; the URI name constraint makes verifiers (Go's x509,
 * OpenSSL) refuse any leaf of it whose URI SAN is outside the trust domain. Pure and total like
 * `SpiffeRules.evaluate`: every violation is reported, sorted by field path.
 */
import * as CR from "./CertificateRequest.ts"
import { attributeName, type CsrFacts, describeOid, type KeyUsageBit, OID, type ParsedCsr, type SubtreeFact } from "./CsrFacts.ts"
import * as Decision from "./Decision.ts"
import type * as IssuerRef from "./IssuerRef.ts"
import * as V from "./Violations.ts"

/** What the intermediate rule needs besides the request. */
export interface SignerPolicy {
  /** `--trust-domain`: the annotation's value and the one permitted URI subtree. */
  readonly trustDomain: string
  /** The SPIFFE issuer in force (the signer asks the same issuer as the CSI driver). */
  readonly issuer: IssuerRef.IssuerRef
  /**
   * `--signer-service-account` as a username, `system:serviceaccount:<ns>:<name>`: the only requester
   * whose intermediate may be approved. Undefined (the flag unset): every intermediate is denied.
   */
  readonly signerServiceAccount?: string | undefined
  /** `--signer-intermediate-duration` in milliseconds; `spec.duration` must equal it exactly. */
  readonly signerIntermediateDurationMs?: number | undefined
}

/** The signer's default `--intermediate-duration`, 168h: a week, renewed by the signer well before. */
export const DEFAULT_INTERMEDIATE_DURATION_MS = 168 * 3_600_000

/** The extensions the signer's CSR carries, each exactly once and critical (RFC 5280 §4.2.1.9/10 for a CA). */
const REQUIRED_EXTENSIONS: ReadonlyArray<string> = [OID.basicConstraints, OID.keyUsage, OID.nameConstraints]
const REQUIRED_KEY_USAGE: ReadonlyArray<KeyUsageBit> = ["digitalSignature", "keyCertSign", "cRLSign"]
const ALLOWED_KEY_TYPES: ReadonlyArray<string> = ["ecdsa-p256"]
const COMMON_NAME = "2.5.4.3"

const INTERMEDIATE_PATH = `metadata.annotations[${CR.INTERMEDIATE_ANNOTATION}]`
const IDENTITY_PATH = `metadata.annotations[${CR.IDENTITY_ANNOTATION}]`

const showSubtree = (t: SubtreeFact): string => `${t.kind}:${V.quote(t.value)}`

const nameConstraintViolations = (trustDomain: string, csr: ParsedCsr): ReadonlyArray<string> => {
  const nc = csr.nameConstraints
  if (nc === undefined) return []
  const out: Array<string> = []
  const [first, ...more] = nc.permitted
  const want = `exactly one permitted subtree, uniformResourceIdentifier ${trustDomain}`
  if (first === undefined || more.length > 0) {
    out.push(`name constraints must permit ${want}, got ${nc.permitted.length === 0 ? "none" : nc.permitted.map(showSubtree).join(", ")}`)
  } else if (first.kind !== "uri" || first.value !== trustDomain) {
    out.push(`name constraints must permit ${want}, got ${showSubtree(first)}`)
  }
  for (const t of nc.permitted) {
    if (t.minimum !== 0 || t.maximum !== undefined) {
      out.push(`name constraint ${showSubtree(t)} must have no minimum or maximum (RFC 5280 §4.2.1.10)`)
    }
  }
  if (nc.excluded.length > 0) out.push(`name constraints must exclude nothing, got ${nc.excluded.map(showSubtree).join(", ")}`)
  return out
}

/** Signature and key, subject, extensions (presence, criticality, contents), in that order. */
const csrViolations = (policy: SignerPolicy, csr: ParsedCsr): ReadonlyArray<string> => {
  const out: Array<string> = [...V.signatureAndKeyViolations(csr, ALLOWED_KEY_TYPES)]
  const subject = csr.subjectAttributes
  const others = V.unique(subject.filter((type) => type !== COMMON_NAME))
  if (others.length > 0) out.push(`subject may contain only a CN, got ${others.map(attributeName).join(", ")}`)
  if (subject.filter((type) => type === COMMON_NAME).length > 1) out.push("subject must contain at most one CN")
  const oids = csr.extensions.map((e) => e.oid)
  for (const oid of V.unique(oids)) {
    if (oid === OID.subjectAltName) out.push("must not contain a subjectAltName extension (an intermediate CA names no workload)")
    else if (!REQUIRED_EXTENSIONS.includes(oid)) out.push(`extension ${describeOid(oid)} is not allowed`)
    else if (oids.indexOf(oid) !== oids.lastIndexOf(oid)) out.push(`extension ${describeOid(oid)} appears more than once`)
  }
  for (const oid of REQUIRED_EXTENSIONS) {
    const ext = csr.extensions.find((e) => e.oid === oid)
    if (ext === undefined) out.push(`must contain the ${describeOid(oid)} extension`)
    else if (!ext.critical) out.push(`extension ${describeOid(oid)} must be critical`)
  }
  for (const oid of V.unique(csr.malformedExtensions)) out.push(`extension ${describeOid(oid)} is malformed`)
  for (const oid of V.unique(csr.otherAttributes)) out.push(`attribute ${describeOid(oid)} is not allowed`)
  if (csr.basicConstraintsCa === false) out.push("basic constraints must mark a CA")
  if (csr.basicConstraintsCa === true && csr.basicConstraintsPathLen !== 0) {
    out.push(`basic constraints path length must be 0, got ${csr.basicConstraintsPathLen ?? "none (unlimited)"}`)
  }
  const ku = csr.keyUsage
  if (ku !== undefined) {
    const exact = ku.length === REQUIRED_KEY_USAGE.length && REQUIRED_KEY_USAGE.every((bit) => ku.includes(bit))
    if (!exact) out.push(`key usage must be exactly ${REQUIRED_KEY_USAGE.join(", ")}, got ${ku.length === 0 ? "none" : ku.join(", ")}`)
  }
  out.push(...nameConstraintViolations(policy.trustDomain, csr))
  return out
}

const requesterViolations = (policy: SignerPolicy, request: CR.CertificateRequest): ReadonlyArray<V.Violation> => {
  const username = request.spec.username
  if (policy.signerServiceAccount === undefined) {
    return [{
      path: "spec.username",
      message: "no intermediate CA is approved: the approver runs without --signer-service-account"
    }]
  }
  if (username === policy.signerServiceAccount) return []
  return [{
    path: "spec.username",
    message: `must be the Pod Certificate signer's ServiceAccount ${policy.signerServiceAccount} (--signer-service-account), got ${V.shownUsername(username)}`
  }]
}

/** The decision for a request carrying the intermediate annotation. */
export const evaluate = (policy: SignerPolicy, request: CR.CertificateRequest, facts: CsrFacts): Decision.Decision => {
  const annotations = request.metadata.annotations ?? {}
  const violations: Array<V.Violation> = [...requesterViolations(policy, request)]
  const value = annotations[CR.INTERMEDIATE_ANNOTATION]
  if (value !== policy.trustDomain) {
    violations.push({ path: INTERMEDIATE_PATH, message: `must be the trust domain ${policy.trustDomain}, got ${V.quote(value ?? "")}` })
  }
  if (annotations[CR.IDENTITY_ANNOTATION] !== undefined) {
    violations.push({ path: IDENTITY_PATH, message: `must not be set on an intermediate CA request` })
  }
  if (request.spec.isCA !== true) violations.push({ path: "spec.isCA", message: "must be true" })
  violations.push(...V.durationViolations(policy.signerIntermediateDurationMs ?? DEFAULT_INTERMEDIATE_DURATION_MS, request))
  violations.push(...V.usagesViolations(CR.INTERMEDIATE_USAGES, request))
  violations.push(...V.issuerViolations(policy.issuer, request))
  if (facts._tag === "Unparsable") {
    violations.push({ path: "spec.request", message: V.unparsableMessage(facts.why) })
  } else {
    for (const message of csrViolations(policy, facts)) violations.push({ path: "spec.request", message })
  }
  return Decision.fromReasons(V.sorted(violations))
}

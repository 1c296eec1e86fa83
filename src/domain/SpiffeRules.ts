/**
 * The approver's rules: whether a CertificateRequest is exactly the SVID its requester may have.
 *
 * Owns: every check of the original's evaluator (cert-manager/csi-driver-spiffe,
 * https://github.com/cert-manager/csi-driver-spiffe, internal/approver/evaluator) plus the checks it
 * leaves out (issuerRef with cert-manager's defaulting, annotation value, key type and size, full
 * subject, basic constraints, the URI as a strictly parsed SPIFFE ID), the wording of denial reasons
 * and their order, and the auto-approve decision for requests without the identity annotation.
 *
 * Two modes decide who may ask for which SPIFFE ID. Default: the requester is the workload's own
 * ServiceAccount and may ask only for its own ID. Own-ServiceAccount (`--use-own-service-account`,
 * the original's evaluator/identity.go): the CSI driver asks on the workloads' behalf, so the
 * requester must be exactly the driver's ServiceAccount, and the ID must be a workload ID
 * `/ns/<ns>/sa/<sa>` whose `<ns>` is the CertificateRequest's own namespace (the driver creates each request in its pod's namespace;
 * the original checks only the trust domain there), with the identity annotation equal to it.
 * Does not own: reading the CSR (`approver/InspectCsr.ts`), where the policy comes from
 * (`approver/Evaluator.ts`), or writing the decision (`approver/Reconcile.ts`).
 *
 * `evaluate` is pure and total. It reports every violation, each as `<field path>: <sentence>`, sorted
 * by field path (checks keep their order within a path), so a message is the same every time for the
 * same request. Reasons quote request content only where a human needs it (URIs, usages, durations),
 * truncated; they never contain the CSR itself.
 *
 * A request with the signer's intermediate annotation is not an SVID request: `evaluate` hands it to
 * `IntermediateRules.ts` whatever else it carries. The wording and the checks both tables share
 * (duration, usages, issuer, signature and key) live in `Violations.ts`.
 *
 * One file on purpose: the rule table reads top to bottom as one list, and within a field path the
 * order of its checks is the order of the reasons a denial prints.
 */
import * as CR from "./CertificateRequest.ts"
import { attributeName, type CsrFacts, describeOid, type KeyUsageBit, OID, type ParsedCsr } from "./CsrFacts.ts"
import * as Decision from "./Decision.ts"
import * as IntermediateRules from "./IntermediateRules.ts"
import * as IssuerRef from "./IssuerRef.ts"
import { forServiceAccount, parseSpiffeId, serviceAccountFromUsername } from "./SpiffeId.ts"
import {
  durationViolations,
  issuerViolations,
  quote,
  shownUsername,
  signatureAndKeyViolations,
  sorted,
  unique,
  unparsableMessage,
  usagesViolations,
  type Violation
} from "./Violations.ts"

/** Everything the rules need besides the request; built from flags and the runtime issuer. */
export interface SpiffePolicy extends IntermediateRules.SignerPolicy {
  /** `--trust-domain`. */
  readonly trustDomain: string
  /** `--certificate-request-duration`, in milliseconds; `spec.duration` must equal it exactly. */
  readonly certificateRequestDurationMs: number
  /** The SPIFFE issuer in force: the runtime issuance ConfigMap's, else the `--issuer-*` flags'. */
  readonly issuer: IssuerRef.IssuerRef
  /** Key types a request may use, as `keyTypeName` spells them (`ecdsa-p256`, `rsa-2048`, …). */
  readonly allowedKeyTypes: ReadonlyArray<string>
  /** `--auto-approve-non-spiffe`. */
  readonly autoApproveNonSpiffe: boolean
  /**
   * `--driver-service-account` under `--use-own-service-account`: the username
   * (`system:serviceaccount:<ns>:<name>`) of the only requester allowed. Absent in the default mode,
   * where each workload requests with its own ServiceAccount.
   */
  readonly driverServiceAccount?: string | undefined
}

/** What the CSI driver requests and the only policy allowed unless an operator widens it. */
export const DEFAULT_ALLOWED_KEY_TYPES: ReadonlyArray<string> = ["ecdsa-p256"]

/** Every key type the approver knows how to recognise, for flag validation. */
export const KNOWN_KEY_TYPES: ReadonlyArray<string> = [
  "ecdsa-p256",
  "ecdsa-p384",
  "ecdsa-p521",
  "rsa-2048",
  "rsa-3072",
  "rsa-4096",
  "ed25519"
]

const ALLOWED_KEY_USAGE: ReadonlyArray<KeyUsageBit> = ["digitalSignature", "keyEncipherment"]
const ALLOWED_EXTENDED_KEY_USAGE: ReadonlyArray<string> = [OID.serverAuth, OID.clientAuth]
const ALLOWED_EXTENSIONS: ReadonlyArray<string> = [
  OID.subjectAltName,
  OID.keyUsage,
  OID.extendedKeyUsage,
  OID.basicConstraints
]

const ANNOTATION_PATH = `metadata.annotations[${CR.IDENTITY_ANNOTATION}]`

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const isDnsLabel = (s: string): boolean => s.length <= 63 && DNS_LABEL.test(s)
/** A Namespace name: an RFC 1123 label. */
const isNamespaceName = isDnsLabel
/** A ServiceAccount name: an RFC 1123 subdomain. */
const isServiceAccountName = (s: string): boolean => s.length <= 253 && s.split(".").every(isDnsLabel)

/**
 * Every reason `username` is not a usable `--driver-service-account`: it must be a ServiceAccount
 * username `system:serviceaccount:<namespace>:<name>` with valid Kubernetes names.
 */
export const driverServiceAccountViolations = (username: string): ReadonlyArray<string> => {
  if (username === "") return ["is empty"]
  const sa = serviceAccountFromUsername(username)
  if (sa === undefined) {
    return [`must be a ServiceAccount username (system:serviceaccount:<namespace>:<name>), got ${JSON.stringify(username)}`]
  }
  const out: Array<string> = []
  if (!isNamespaceName(sa.namespace)) out.push(`namespace ${JSON.stringify(sa.namespace)} is not a valid Namespace name`)
  if (!isServiceAccountName(sa.name)) out.push(`name ${JSON.stringify(sa.name)} is not a valid ServiceAccount name`)
  return out
}

const isCaViolations = (request: CR.CertificateRequest): ReadonlyArray<Violation> =>
  request.spec.isCA === true ? [{ path: "spec.isCA", message: "must be false" }] : []

/** Which SPIFFE ID a request may carry, by mode. */
type IdentityRule =
  /** Default mode: exactly the requester's own ID (undefined when the requester is not a ServiceAccount). */
  | { readonly _tag: "Requester"; readonly id: string | undefined }
  /** Own-ServiceAccount mode: a workload ID in the request's own namespace. */
  | { readonly _tag: "Namespace"; readonly namespace: string }

/** A workload ID's path, `/ns/<namespace>/sa/<name>`, against the namespace it must name. */
const workloadPathViolations = (path: string, namespace: string): ReadonlyArray<string> => {
  const segments = path.split("/").slice(1)
  const [ns, idNamespace, sa, idName, ...rest] = segments
  if (ns !== "ns" || sa !== "sa" || idNamespace === undefined || idName === undefined || rest.length > 0) {
    return [`SPIFFE ID path must be /ns/<namespace>/sa/<service-account>, got ${path === "" ? "none" : quote(path)}`]
  }
  const out: Array<string> = []
  if (idNamespace !== namespace) {
    out.push(`SPIFFE ID must be in the request's own namespace ${namespace}, got ${quote(idNamespace)}`)
  }
  if (!isServiceAccountName(idName)) out.push(`SPIFFE ID names ${quote(idName)}, which is not a valid ServiceAccount name`)
  return out
}

/** The single URI SAN against the SPIFFE ID(s) `rule` allows. */
const uriViolations = (policy: SpiffePolicy, csr: ParsedCsr, rule: IdentityRule): ReadonlyArray<string> => {
  const [uri, ...more] = csr.uris
  if (uri === undefined || more.length > 0) return [`must contain exactly one URI SAN, got ${csr.uris.length}`]
  const parsed = parseSpiffeId(uri)
  if (parsed._tag === "Invalid") return [`URI SAN is not a valid SPIFFE ID: ${parsed.violations.join(", ")}`]
  if (parsed.id.trustDomain !== policy.trustDomain) {
    return [`SPIFFE ID must be in trust domain ${policy.trustDomain}, got ${quote(parsed.id.trustDomain)}`]
  }
  if (rule._tag === "Namespace") return workloadPathViolations(parsed.id.path, rule.namespace)
  if (rule.id !== undefined && uri !== rule.id) return [`SPIFFE ID must be ${rule.id}, got ${quote(uri)}`]
  return []
}

/** Signature, key, subject, SANs, extensions and their contents, in that order. */
const csrViolations = (policy: SpiffePolicy, csr: ParsedCsr, rule: IdentityRule): ReadonlyArray<string> => {
  const out: Array<string> = [...signatureAndKeyViolations(csr, policy.allowedKeyTypes)]
  if (csr.subjectAttributes.length > 0) {
    out.push(`subject must be empty, got ${unique(csr.subjectAttributes.map(attributeName)).join(", ")}`)
  }
  if (csr.dnsNames.length > 0) out.push(`must not contain DNS SANs, got ${csr.dnsNames.length}`)
  if (csr.ipAddresses.length > 0) out.push(`must not contain IP SANs, got ${csr.ipAddresses.length}`)
  if (csr.emailAddresses.length > 0) out.push(`must not contain email SANs, got ${csr.emailAddresses.length}`)
  if (csr.otherSanKinds.length > 0) out.push(`must contain only URI SANs, got ${unique(csr.otherSanKinds).join(", ")}`)
  out.push(...uriViolations(policy, csr, rule))
  const oids = csr.extensions.map((e) => e.oid)
  for (const oid of unique(oids)) {
    if (!ALLOWED_EXTENSIONS.includes(oid)) out.push(`extension ${describeOid(oid)} is not allowed`)
    else if (oids.indexOf(oid) !== oids.lastIndexOf(oid)) out.push(`extension ${describeOid(oid)} appears more than once`)
  }
  for (const oid of unique(csr.malformedExtensions)) out.push(`extension ${describeOid(oid)} is malformed`)
  for (const oid of unique(csr.otherAttributes)) out.push(`attribute ${describeOid(oid)} is not allowed`)
  const badKu = unique((csr.keyUsage ?? []).filter((bit) => !ALLOWED_KEY_USAGE.includes(bit)))
  if (badKu.length > 0) {
    out.push(`key usage may only contain ${ALLOWED_KEY_USAGE.join(" and ")}, got ${badKu.join(", ")}`)
  }
  const badEku = unique((csr.extendedKeyUsage ?? []).filter((oid) => !ALLOWED_EXTENDED_KEY_USAGE.includes(oid)))
  if (badEku.length > 0) {
    out.push(`extended key usage may only contain serverAuth and clientAuth, got ${badEku.map(describeOid).join(", ")}`)
  }
  if (csr.basicConstraintsCa === true) out.push("basic constraints must not mark a CA")
  return out
}

/**
 * Default mode: the requester must be a ServiceAccount, and both the URI SAN and the annotation must
 * be that ServiceAccount's own ID.
 */
const requesterIdentity = (
  policy: SpiffePolicy,
  request: CR.CertificateRequest,
  annotation: string
): { readonly rule: IdentityRule; readonly violations: ReadonlyArray<Violation> } => {
  const username = request.spec.username
  const sa = username === undefined ? undefined : serviceAccountFromUsername(username)
  if (sa === undefined) {
    const message = `must be a ServiceAccount (system:serviceaccount:<namespace>:<name>), got ${shownUsername(username)}`
    return { rule: { _tag: "Requester", id: undefined }, violations: [{ path: "spec.username", message }] }
  }
  const expected = forServiceAccount(policy.trustDomain, sa.namespace, sa.name)
  return {
    rule: { _tag: "Requester", id: expected },
    violations: annotation === expected ? [] : [{ path: ANNOTATION_PATH, message: `must be ${expected}, got ${quote(annotation)}` }]
  }
}

/**
 * Own-ServiceAccount mode: the requester must be the driver's ServiceAccount, the URI SAN a workload ID
 * in the request's own namespace, and the annotation that same URI.
 */
const driverIdentity = (
  driverServiceAccount: string,
  request: CR.CertificateRequest,
  facts: CsrFacts,
  annotation: string
): { readonly rule: IdentityRule; readonly violations: ReadonlyArray<Violation> } => {
  const violations: Array<Violation> = []
  const username = request.spec.username
  if (username !== driverServiceAccount) {
    violations.push({
      path: "spec.username",
      message: `must be the CSI driver's ServiceAccount ${driverServiceAccount} (--use-own-service-account), got ${shownUsername(username)}`
    })
  }
  const [uri, ...more] = facts._tag === "Unparsable" ? [] : facts.uris
  if (uri !== undefined && more.length === 0 && annotation !== uri) {
    violations.push({ path: ANNOTATION_PATH, message: `must equal the URI SAN ${quote(uri)}, got ${quote(annotation)}` })
  }
  return { rule: { _tag: "Namespace", namespace: request.metadata.namespace }, violations }
}

/** The rules for a request carrying the identity annotation. */
const evaluateSpiffe = (policy: SpiffePolicy, request: CR.CertificateRequest, facts: CsrFacts, annotation: string) => {
  const identity = policy.driverServiceAccount === undefined
    ? requesterIdentity(policy, request, annotation)
    : driverIdentity(policy.driverServiceAccount, request, facts, annotation)
  const violations: Array<Violation> = []
  if (facts._tag === "Unparsable") {
    violations.push({ path: "spec.request", message: unparsableMessage(facts.why) })
  } else {
    for (const message of csrViolations(policy, facts, identity.rule)) violations.push({ path: "spec.request", message })
  }
  violations.push(...durationViolations(policy.certificateRequestDurationMs, request))
  violations.push(...usagesViolations(CR.REQUIRED_USAGES, request))
  violations.push(...isCaViolations(request))
  violations.push(...issuerViolations(policy.issuer, request))
  violations.push(...identity.violations)
  return Decision.fromReasons(sorted(violations))
}

/** A URI SAN that names a SPIFFE ID in any spelling of the scheme (the check is deliberately loose). */
const looksLikeSpiffe = (uri: string): boolean => /^\s*spiffe:/i.test(uri)

/**
 * `--auto-approve-non-spiffe` for a request without the identity annotation: approve, unless it targets
 * the SPIFFE issuer (compared with cert-manager's defaulting, unlike the original) or smuggles a SPIFFE
 * URI. A CSR that cannot be read is denied, since it cannot be shown to carry no SPIFFE URI.
 */
const evaluateNonSpiffe = (policy: SpiffePolicy, request: CR.CertificateRequest, facts: CsrFacts) => {
  const why = `a request without the ${CR.IDENTITY_ANNOTATION} annotation`
  const violations: Array<Violation> = []
  if (IssuerRef.equals(request.spec.issuerRef, policy.issuer)) {
    violations.push({ path: "spec.issuerRef", message: `${why} must not use the SPIFFE issuer ${IssuerRef.format(policy.issuer)}` })
  }
  if (facts._tag === "Unparsable") {
    violations.push({ path: "spec.request", message: unparsableMessage(facts.why) })
  } else if (facts.uris.some(looksLikeSpiffe)) {
    violations.push({ path: "spec.request", message: `${why} must not contain a SPIFFE URI SAN` })
  }
  return Decision.fromReasons(sorted(violations))
}

/**
 * The decision for `request`, whose `spec.request` yielded `facts`. A request with the intermediate
 * annotation is judged by `IntermediateRules`; requests without either annotation are `Unprocessed`
 * unless auto-approve is on.
 */
export const evaluate = (policy: SpiffePolicy, request: CR.CertificateRequest, facts: CsrFacts): Decision.Decision => {
  if (request.metadata.annotations?.[CR.INTERMEDIATE_ANNOTATION] !== undefined) {
    return IntermediateRules.evaluate(policy, request, facts)
  }
  const annotation = request.metadata.annotations?.[CR.IDENTITY_ANNOTATION]
  if (annotation !== undefined) return evaluateSpiffe(policy, request, facts, annotation)
  if (!policy.autoApproveNonSpiffe) {
    return Decision.Unprocessed({ why: `no ${CR.IDENTITY_ANNOTATION} annotation and auto-approve is off` })
  }
  return evaluateNonSpiffe(policy, request, facts)
}

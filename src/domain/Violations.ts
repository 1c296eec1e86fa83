/**
 * The wording shared by the approver's two rule tables (`SpiffeRules.ts` for SVID requests,
 * `IntermediateRules.ts` for the Pod Certificate signer's intermediate CA).
 *
 * Owns: a violation as `<field path>: <sentence>`, their stable order, how request content is quoted
 * in a reason, and the three checks both tables make the same way (an exact `spec.duration`, an exact
 * set of `spec.usages`, the issuerRef in force).
 * Does not own: which checks apply to which request (the rule tables).
 */
import * as CR from "./CertificateRequest.ts"
import { describeOid, keyTypeName, type ParsedCsr, SUPPORTED_SIGNATURE_ALGORITHMS } from "./CsrFacts.ts"
import * as IssuerRef from "./IssuerRef.ts"

export interface Violation {
  readonly path: string
  readonly message: string
}

/** Request content in a reason is cut here: enough to recognise it, bounded for Events (1 KiB max). */
export const MAX_QUOTED = 128

export const quote = (s: string): string => JSON.stringify(s.length > MAX_QUOTED ? `${s.slice(0, MAX_QUOTED)}…` : s)

/** Sorted by field path; checks keep their order within a path, so a message is the same every time. */
export const sorted = (violations: ReadonlyArray<Violation>): ReadonlyArray<string> =>
  violations
    .map((v, i) => ({ v, i }))
    .sort((a, b) => (a.v.path < b.v.path ? -1 : a.v.path > b.v.path ? 1 : a.i - b.i))
    .map(({ v }) => `${v.path}: ${v.message}`)

export const unique = <A>(xs: ReadonlyArray<A>): ReadonlyArray<A> => [...new Set(xs)]

export const unparsableMessage = (why: string): string => `is not a PEM-encoded PKCS#10 certificate request (${why})`

/** `spec.duration` must parse to exactly `wantMs`. */
export const durationViolations = (wantMs: number, request: CR.CertificateRequest): ReadonlyArray<Violation> => {
  const want = CR.formatGoDuration(wantMs)
  const got = request.spec.duration
  if (got === undefined) return [{ path: "spec.duration", message: `must be exactly ${want}, got none` }]
  const ms = CR.parseGoDuration(got)
  if (ms === wantMs) return []
  return [{ path: "spec.duration", message: `must be exactly ${want}, got ${ms === undefined ? quote(got) : got}` }]
}

/** `spec.usages` must be exactly `required`, in any order, each once. */
export const usagesViolations = (
  required: ReadonlyArray<string>,
  request: CR.CertificateRequest
): ReadonlyArray<Violation> => {
  const got = request.spec.usages ?? []
  const exact = got.length === required.length && required.every((u) => got.includes(u))
  if (exact) return []
  const shown = got.length === 0 ? "none" : got.map((u) => (u.length > MAX_QUOTED ? quote(u) : u)).join(", ")
  return [{ path: "spec.usages", message: `must be exactly ${required.join(", ")} (in any order), got ${shown}` }]
}

/** `spec.issuerRef` must be `issuer`, compared with cert-manager's defaulting. */
export const issuerViolations = (issuer: IssuerRef.IssuerRef, request: CR.CertificateRequest): ReadonlyArray<Violation> =>
  IssuerRef.equals(request.spec.issuerRef, issuer)
    ? []
    : [{
      path: "spec.issuerRef",
      message: `must be ${IssuerRef.format(issuer)}, got ${quote(IssuerRef.format(request.spec.issuerRef))}`
    }]

export const shownUsername = (username: string | undefined): string => (username === undefined ? "none" : quote(username))

/** The CSR's signature, then its key against `allowedKeyTypes` (names as `keyTypeName` spells them). */
export const signatureAndKeyViolations = (csr: ParsedCsr, allowedKeyTypes: ReadonlyArray<string>): ReadonlyArray<string> => {
  const out: Array<string> = []
  if (!SUPPORTED_SIGNATURE_ALGORITHMS.includes(csr.signatureAlgorithm)) {
    out.push(`signature algorithm ${describeOid(csr.signatureAlgorithm)} is not supported`)
  } else if (!csr.signatureValid && csr.publicKey._tag !== "EcdsaExplicitParameters") out.push("signature does not verify")
  const keyType = keyTypeName(csr.publicKey)
  if (csr.publicKey._tag === "EcdsaExplicitParameters") {
    // Its signature cannot be checked either (WebCrypto imports named curves only), so this is the
    // one thing to say about the key.
    out.push(
      `public key has explicit elliptic-curve parameters instead of a named curve (RFC 5480 allows named curves only; generate the key with a named curve such as P-256; allowed: ${allowedKeyTypes.join(", ") || "none"})`
    )
  } else if (!allowedKeyTypes.includes(keyType)) {
    out.push(`public key type ${keyType} is not allowed (allowed: ${allowedKeyTypes.join(", ") || "none"})`)
  }
  return out
}

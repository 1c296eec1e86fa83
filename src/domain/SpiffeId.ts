/**
 * SPIFFE IDs as the SPIFFE-ID standard defines them, and the one shape this product issues:
 * `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
 *
 * Owns: validation of trust domains and IDs (every violation reported, in a stable order).
 * Does not own: deciding whether an ID is the one a requester may have (see SpiffeRules).
 */
import { Schema } from "effect"

/** The ID's scheme, lower case as the standard requires. */
export const SCHEME = "spiffe://"
/** The standard caps a SPIFFE ID (as a URI) at 2048 bytes. */
export const MAX_ID_BYTES = 2048
/** A trust domain is a DNS-like name; 255 is the DNS name limit the standard refers to. */
export const MAX_TRUST_DOMAIN_BYTES = 255

const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/
const PATH_SEGMENT_CHARS = /^[A-Za-z0-9._-]+$/

/** Every reason a trust domain is not valid, empty when it is. */
export const trustDomainViolations = (td: string): ReadonlyArray<string> => {
  const out: Array<string> = []
  if (td.length === 0) out.push("trust domain is empty")
  else {
    if (td.length > MAX_TRUST_DOMAIN_BYTES) out.push(`trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`)
    if (!TRUST_DOMAIN_CHARS.test(td)) {
      out.push("trust domain may only contain lower-case letters, digits, '.', '-' and '_'")
    }
  }
  return out
}

export const TrustDomain = Schema.String.pipe(
  Schema.check(
    Schema.makeFilter((td: string) => {
      const v = trustDomainViolations(td)
      return v.length === 0 ? true : v.join("; ")
    })
  ),
  Schema.brand("TrustDomain")
)
export type TrustDomain = typeof TrustDomain.Type

/** A parsed SPIFFE ID. `path` keeps its leading slash, or is "" for a trust domain's own ID. */
export interface SpiffeId {
  readonly trustDomain: string
  readonly path: string
  readonly uri: string
}

export type ParsedSpiffeId =
  | { readonly _tag: "Valid"; readonly id: SpiffeId }
  | { readonly _tag: "Invalid"; readonly violations: ReadonlyArray<string> }

/**
 * Parses a SPIFFE ID strictly: the scheme in lower case, a trust domain with no port, user info or
 * upper case, a path of non-empty segments without dot-segments or percent-encoding, and no query
 * or fragment. Reports every violation found.
 */
export const parseSpiffeId = (uri: string): ParsedSpiffeId => {
  const violations: Array<string> = []
  if (Buffer.byteLength(uri, "utf8") > MAX_ID_BYTES) violations.push(`SPIFFE ID is longer than ${MAX_ID_BYTES} bytes`)
  if (!uri.startsWith(SCHEME)) {
    violations.push(uri.toLowerCase().startsWith(SCHEME) ? "scheme must be lower-case 'spiffe'" : "scheme is not spiffe")
    return { _tag: "Invalid", violations }
  }
  let rest = uri.slice(SCHEME.length)
  const hashAt = rest.indexOf("#")
  if (hashAt >= 0) {
    violations.push("SPIFFE ID must not have a fragment")
    rest = rest.slice(0, hashAt)
  }
  const queryAt = rest.indexOf("?")
  if (queryAt >= 0) {
    violations.push("SPIFFE ID must not have a query")
    rest = rest.slice(0, queryAt)
  }
  const slash = rest.indexOf("/")
  const authority = slash >= 0 ? rest.slice(0, slash) : rest
  const path = slash >= 0 ? rest.slice(slash) : ""
  let trustDomain = authority
  if (authority.includes("@")) {
    violations.push("SPIFFE ID must not have user info")
    trustDomain = authority.slice(authority.lastIndexOf("@") + 1)
  }
  if (trustDomain.includes(":")) {
    violations.push("SPIFFE ID must not have a port")
    trustDomain = trustDomain.slice(0, trustDomain.indexOf(":"))
  }
  violations.push(...trustDomainViolations(trustDomain))
  if (path.length > 0) {
    if (path.includes("%")) violations.push("path must not be percent-encoded")
    const segments = path.slice(1).split("/")
    if (segments.some((s) => s.length === 0)) violations.push("path must not have empty segments or a trailing slash")
    if (segments.some((s) => s === "." || s === "..")) violations.push("path must not have dot-segments")
    if (segments.some((s) => s.length > 0 && s !== "." && s !== ".." && !PATH_SEGMENT_CHARS.test(s.replaceAll("%", "")))) {
      violations.push("path segments may only contain letters, digits, '.', '-' and '_'")
    }
  }
  return violations.length > 0
    ? { _tag: "Invalid", violations }
    : { _tag: "Valid", id: { trustDomain, path, uri } }
}

/** The workload ID of a Kubernetes ServiceAccount, the only ID shape this product issues. */
export const forServiceAccount = (trustDomain: string, namespace: string, serviceAccount: string): string =>
  `${SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`

/** `system:serviceaccount:<ns>:<sa>` → its parts, as the API server spells a ServiceAccount user. */
export const serviceAccountFromUsername = (
  username: string
): { readonly namespace: string; readonly name: string } | undefined => {
  const parts = username.split(":")
  if (parts.length !== 4 || parts[0] !== "system" || parts[1] !== "serviceaccount") return undefined
  const [, , namespace, name] = parts
  if (namespace === undefined || name === undefined || namespace.length === 0 || name.length === 0) return undefined
  return { namespace, name }
}

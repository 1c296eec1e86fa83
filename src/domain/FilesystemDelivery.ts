/**
 * The SPIFFE filesystem-delivery layout (a draft standard, "Incubating": the newest revision of
 * `standards/SPIFFE_Filesystem_Delivery.md` in https://github.com/spiffe/spiffe/pull/376), which a
 * volume gets in addition to its usual files when it asks for it.
 *
 * Owns: the two file names and their content rules: `credential-bundle.private-key.x509.pem` holds
 * the PKCS#8 `PRIVATE KEY` block first, then the chain's `CERTIFICATE` blocks leaf first without
 * the trust anchors, nothing else (no headers, no text between blocks); one
 * `<trust domain>.spiffe-trust-bundle.x509.pem` holds the trust domain's CA certificates, and is
 * written empty (a deliberate redaction, as the draft asks, rather than a missing file) when the
 * driver has no bundle.
 */
import { pemBlocks } from "./Pem.ts"

export const CREDENTIAL_BUNDLE_FILE = "credential-bundle.private-key.x509.pem"

/** The trust bundle file of `trustDomain` (`foo.bar` → `foo.bar.spiffe-trust-bundle.x509.pem`). */
export const trustBundleFile = (trustDomain: string): string => `${trustDomain}.spiffe-trust-bundle.x509.pem`

/** One PEM block in canonical form: 64-character base64 lines, no headers. */
const encode = (label: string, der: Uint8Array): string => {
  const body = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "")
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`
}

const hex = (der: Uint8Array) => Buffer.from(der).toString("hex")

/** The credential bundle: key, then the chain's certificates that are not trust anchors of `bundlePem`. */
export const credentialBundle = (keyPem: string, chainPem: string, bundlePem: string | undefined): string => {
  const anchors = new Set(pemBlocks(bundlePem ?? "", "CERTIFICATE").map(hex))
  const chain = pemBlocks(chainPem, "CERTIFICATE").filter((der) => !anchors.has(hex(der)))
  return [...pemBlocks(keyPem, "PRIVATE KEY").map((d) => encode("PRIVATE KEY", d)), ...chain.map((d) => encode("CERTIFICATE", d))].join("")
}

/** The trust bundle file's content: the bundle's certificates, or empty (redacted) without one. */
export const trustBundle = (bundlePem: string | undefined): string =>
  pemBlocks(bundlePem ?? "", "CERTIFICATE").map((d) => encode("CERTIFICATE", d)).join("")

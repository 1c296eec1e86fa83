/**
 * What the approver's rules need to know about a PKCS#10 certificate request, as plain data.
 *
 * Owns: the shape of those facts and the names the rules print for them (key types, key usages,
 * subject attributes, well-known OIDs).
 * Does not own: reading a CSR (`approver/InspectCsr.ts` turns `spec.request` into facts) or judging
 * the facts (`domain/SpiffeRules.ts`).
 */

/** The public key as the rules see it; curves and sizes are what the key-type policy names. */
export type KeyAlgorithm =
  | { readonly _tag: "Ecdsa"; readonly curve: string }
  /**
   * An EC key whose curve is spelled out (ECParameters `specifiedCurve`) instead of named. RFC 5480
   * §2.1.1 forbids that form in PKIX, WebCrypto cannot import it, and which curve it really is would
   * have to be recognised from its parameters: such a key is refused for what it is.
   */
  | { readonly _tag: "EcdsaExplicitParameters" }
  | { readonly _tag: "Rsa"; readonly bits: number }
  | { readonly _tag: "Ed25519" }
  | { readonly _tag: "Other"; readonly oid: string }

/** A named key-usage bit (RFC 5280 §4.2.1.3), in bit order. */
export const KEY_USAGE_BITS = [
  "digitalSignature",
  "nonRepudiation",
  "keyEncipherment",
  "dataEncipherment",
  "keyAgreement",
  "keyCertSign",
  "cRLSign",
  "encipherOnly",
  "decipherOnly"
] as const
export type KeyUsageBit = (typeof KEY_USAGE_BITS)[number]

export const OID = {
  subjectAltName: "2.5.29.17",
  keyUsage: "2.5.29.15",
  extendedKeyUsage: "2.5.29.37",
  basicConstraints: "2.5.29.19",
  nameConstraints: "2.5.29.30",
  extensionRequest: "1.2.840.113549.1.9.14",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
  ecPublicKey: "1.2.840.10045.2.1",
  rsaEncryption: "1.2.840.113549.1.1.1",
  ed25519: "1.3.101.112",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  ecdsaWithSha384: "1.2.840.10045.4.3.3",
  ecdsaWithSha512: "1.2.840.10045.4.3.4",
  sha256WithRsa: "1.2.840.113549.1.1.11",
  sha384WithRsa: "1.2.840.113549.1.1.12",
  sha512WithRsa: "1.2.840.113549.1.1.13"
} as const

/**
 * Signature algorithms the approver verifies: ECDSA and RSA PKCS#1 v1.5 with SHA-2, and Ed25519 —
 * what Go's `x509.CreateCertificateRequest` produces for the key types policy can allow. SHA-1,
 * RSA-PSS and anything else are reported as unsupported rather than silently trusted.
 */
export const SUPPORTED_SIGNATURE_ALGORITHMS: ReadonlyArray<string> = [
  OID.ecdsaWithSha256,
  OID.ecdsaWithSha384,
  OID.ecdsaWithSha512,
  OID.sha256WithRsa,
  OID.sha384WithRsa,
  OID.sha512WithRsa,
  OID.ed25519
]

/** Readable names for the OIDs that show up in denial messages; anything else prints as its OID. */
const OID_NAMES: Readonly<Record<string, string>> = {
  "2.5.29.17": "subjectAltName",
  "2.5.29.15": "keyUsage",
  "2.5.29.37": "extendedKeyUsage",
  "2.5.29.19": "basicConstraints",
  "2.5.29.14": "subjectKeyIdentifier",
  "2.5.29.35": "authorityKeyIdentifier",
  "2.5.29.30": "nameConstraints",
  "2.5.29.32": "certificatePolicies",
  "1.3.6.1.5.5.7.1.1": "authorityInfoAccess",
  "1.3.6.1.5.5.7.3.1": "serverAuth",
  "1.3.6.1.5.5.7.3.2": "clientAuth",
  "1.3.6.1.5.5.7.3.3": "codeSigning",
  "1.3.6.1.5.5.7.3.4": "emailProtection",
  "1.3.6.1.5.5.7.3.8": "timeStamping",
  "1.3.6.1.5.5.7.3.9": "OCSPSigning",
  "2.5.29.37.0": "anyExtendedKeyUsage",
  "1.2.840.10045.4.1": "ecdsa-with-SHA1",
  "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
  "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
  "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
  "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
  "1.2.840.113549.1.1.10": "RSASSA-PSS",
  "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
  "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
  "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
  "1.3.101.112": "Ed25519",
  "1.2.840.113549.1.9.7": "challengePassword",
  "1.2.840.113549.1.9.14": "extensionRequest",
  "2.5.4.3": "CN",
  "2.5.4.5": "serialNumber",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.9": "street",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "1.2.840.113549.1.9.1": "emailAddress",
  "0.9.2342.19200300.100.1.1": "UID",
  "0.9.2342.19200300.100.1.25": "DC"
}

/** `name (oid)` for known OIDs, the bare OID otherwise. */
export const describeOid = (oid: string): string => {
  const name = OID_NAMES[oid]
  return name === undefined ? oid : `${name} (${oid})`
}

/** Short name of a subject attribute type (`CN`, `O`, …), or its OID. */
export const attributeName = (oid: string): string => OID_NAMES[oid] ?? oid

/** Curve names as WebCrypto spells them, by the named-curve OID of an EC public key. */
export const CURVES: Readonly<Record<string, string>> = {
  "1.2.840.10045.3.1.7": "P-256",
  "1.3.132.0.34": "P-384",
  "1.3.132.0.35": "P-521"
}

/**
 * The policy name of a key (`ecdsa-p256`, `rsa-2048`, `ed25519`), the vocabulary of
 * `allowedKeyTypes`. Unknown curves and algorithms get names no policy lists.
 */
export const keyTypeName = (key: KeyAlgorithm): string => {
  switch (key._tag) {
    case "Ecdsa":
      return `ecdsa-${key.curve.toLowerCase().replace("-", "")}`
    case "EcdsaExplicitParameters":
      return "ecdsa-explicit-parameters"
    case "Rsa":
      return `rsa-${key.bits}`
    case "Ed25519":
      return "ed25519"
    case "Other":
      return `unknown-${key.oid}`
  }
}

/** One extension as it appears in the CSR's extensionRequest attribute. */
export interface ExtensionFact {
  readonly oid: string
  readonly critical: boolean
}

/**
 * One subtree of a nameConstraints extension (RFC 5280 §4.2.1.10): the base name's kind as the rules
 * print it (`uri`, `dns`, `email`, `ip`, or another GeneralName alternative's name), its value as
 * text (an IP constraint as `address/mask` octets in dotted or hex form), and the distances, which
 * RFC 5280 says must be 0 and absent.
 */
export interface SubtreeFact {
  readonly kind: string
  readonly value: string
  readonly minimum: number
  readonly maximum: number | undefined
}

/** The nameConstraints extension's two lists; a list the extension leaves out is empty. */
export interface NameConstraintsFact {
  readonly permitted: ReadonlyArray<SubtreeFact>
  readonly excluded: ReadonlyArray<SubtreeFact>
}

/** A CSR that decoded. Every list keeps the order in which the CSR carries its entries. */
export interface ParsedCsr {
  readonly _tag: "Parsed"
  /** The OID of the algorithm the request is signed with. */
  readonly signatureAlgorithm: string
  /** The self-signature verifies with the request's own public key (false for unsupported algorithms). */
  readonly signatureValid: boolean
  readonly publicKey: KeyAlgorithm
  /** Attribute types of every RDN of the subject; empty for an empty subject. */
  readonly subjectAttributes: ReadonlyArray<string>
  readonly dnsNames: ReadonlyArray<string>
  readonly ipAddresses: ReadonlyArray<string>
  readonly emailAddresses: ReadonlyArray<string>
  readonly uris: ReadonlyArray<string>
  /** General-name kinds other than DNS, IP, email and URI (`otherName`, `directoryName`, …). */
  readonly otherSanKinds: ReadonlyArray<string>
  /** Every requested extension, duplicates included. */
  readonly extensions: ReadonlyArray<ExtensionFact>
  /** OIDs of recognised extensions (SAN, KU, EKU, basic constraints, name constraints) whose value did not decode. */
  readonly malformedExtensions: ReadonlyArray<string>
  /** The key-usage bits set, or undefined when the CSR has no key-usage extension. */
  readonly keyUsage: ReadonlyArray<KeyUsageBit> | undefined
  /** Extended key usage OIDs, or undefined when the CSR has no EKU extension. */
  readonly extendedKeyUsage: ReadonlyArray<string> | undefined
  /** The basic-constraints cA flag, or undefined when the CSR has no such extension. */
  readonly basicConstraintsCa: boolean | undefined
  /** The basic-constraints pathLenConstraint, or undefined when absent (no limit) or no such extension. */
  readonly basicConstraintsPathLen: number | undefined
  /** The nameConstraints extension's subtrees, or undefined when the CSR has none. */
  readonly nameConstraints: NameConstraintsFact | undefined
  /** CSR attribute types other than extensionRequest (e.g. challengePassword). */
  readonly otherAttributes: ReadonlyArray<string>
}

/** A `spec.request` that is not one PEM-encoded PKCS#10 request; `why` is short and has no content. */
export interface UnparsableCsr {
  readonly _tag: "Unparsable"
  readonly why: string
}

export type CsrFacts = ParsedCsr | UnparsableCsr

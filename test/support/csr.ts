/**
 * Test fixtures: PKCS#10 requests with arbitrary content (subject, SANs of any kind, any extension,
 * any key type, a broken signature) and CertificateRequests around them.
 *
 * Keys are generated once per key type and reused: RSA-4096 generation alone costs about a second.
 */
import type { webcrypto } from "node:crypto"
import type { CertificateRequest } from "../../src/domain/CertificateRequest.ts"
import {
  IDENTITY_ANNOTATION,
  INTERMEDIATE_ANNOTATION,
  INTERMEDIATE_USAGES,
  REQUIRED_USAGES
} from "../../src/domain/CertificateRequest.ts"
import type { SpiffePolicy } from "../../src/domain/SpiffeRules.ts"
import { x509 } from "../../src/x509.ts"

export type KeyType = "ecdsa-p256" | "ecdsa-p384" | "ecdsa-p521" | "rsa-2048" | "rsa-3072" | "rsa-4096" | "ed25519"

const RSA_EXPONENT = new Uint8Array([1, 0, 1])

const algorithms: Record<KeyType, { readonly key: webcrypto.AlgorithmIdentifier | object; readonly sign: object }> = {
  "ecdsa-p256": { key: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" } },
  "ecdsa-p384": { key: { name: "ECDSA", namedCurve: "P-384" }, sign: { name: "ECDSA", hash: "SHA-384" } },
  "ecdsa-p521": { key: { name: "ECDSA", namedCurve: "P-521" }, sign: { name: "ECDSA", hash: "SHA-512" } },
  "rsa-2048": rsa(2048),
  "rsa-3072": rsa(3072),
  "rsa-4096": rsa(4096),
  ed25519: { key: { name: "Ed25519" }, sign: { name: "Ed25519" } }
}

function rsa(bits: number) {
  const alg = { name: "RSASSA-PKCS1-v1_5", modulusLength: bits, publicExponent: RSA_EXPONENT, hash: "SHA-256" }
  return { key: alg, sign: alg }
}

const keyCache = new Map<KeyType, Promise<webcrypto.CryptoKeyPair>>()

export const keysFor = (type: KeyType): Promise<webcrypto.CryptoKeyPair> => {
  let keys = keyCache.get(type)
  if (keys === undefined) {
    keys = globalThis.crypto.subtle.generateKey(algorithms[type].key as never, true, ["sign", "verify"]) as Promise<
      webcrypto.CryptoKeyPair
    >
    keyCache.set(type, keys)
  }
  return keys
}

// --- A minimal DER writer, for extensions @peculiar/x509 will not build (otherName SANs, junk) ---

const derLength = (n: number): Array<number> => {
  if (n < 0x80) return [n]
  const bytes: Array<number> = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return [0x80 | bytes.length, ...bytes]
}

export const der = (tag: number, ...content: ReadonlyArray<Uint8Array | ReadonlyArray<number>>): Uint8Array => {
  const body = content.flatMap((c) => [...c])
  return new Uint8Array([tag, ...derLength(body.length), ...body])
}

export const derOid = (oid: string): Uint8Array => {
  const [a, b, ...rest] = oid.split(".").map(Number)
  const out: Array<number> = [a! * 40 + b!]
  for (const arc of rest) {
    const bytes = [arc & 0x7f]
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) bytes.unshift((v & 0x7f) | 0x80)
    out.push(...bytes)
  }
  return der(0x06, out)
}

const ascii = (s: string): Array<number> => [...Buffer.from(s, "latin1")]

/** A general name given as its raw DER kind, for the kinds @peculiar/x509 cannot write. */
export type RawSan =
  | { readonly type: "url" | "dns" | "email" | "ip" | "id"; readonly value: string }
  | { readonly type: "otherName"; readonly oid: string; readonly value: string }
  | { readonly type: "directoryName" }

const generalName = (san: RawSan): Uint8Array => {
  switch (san.type) {
    case "email":
      return der(0x81, ascii(san.value))
    case "dns":
      return der(0x82, ascii(san.value))
    case "url":
      return der(0x86, ascii(san.value))
    case "ip":
      return der(0x87, san.value.includes(":") ? ipv6(san.value) : san.value.split(".").map(Number))
    case "id":
      return der(0x88, [...derOid(san.value).subarray(2)])
    case "otherName":
      return der(0xa0, derOid(san.oid), der(0xa0, der(0x0c, ascii(san.value))))
    case "directoryName":
      return der(0xa4, der(0x30, der(0x31, der(0x30, derOid("2.5.4.3"), der(0x0c, ascii("x"))))))
  }
}

const ipv6 = (s: string): Array<number> => {
  const [head, tail] = s.split("::")
  const parts = (x: string | undefined) => (x === undefined || x === "" ? [] : x.split(":"))
  const h = parts(head)
  const t = parts(tail)
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t]
  return groups.flatMap((g) => {
    const v = parseInt(g, 16)
    return [v >> 8, v & 0xff]
  })
}

/** A SAN extension holding exactly these names, in this order. */
export const sanExtension = (sans: ReadonlyArray<RawSan>, critical = true): x509.Extension =>
  new x509.Extension("2.5.29.17", critical, der(0x30, ...sans.map(generalName)))

export const { KeyUsageFlags } = x509

export const keyUsageExtension = (flags: number, critical = true): x509.Extension =>
  new x509.KeyUsagesExtension(flags, critical)

export const extendedKeyUsageExtension = (oids: ReadonlyArray<string>, critical = false): x509.Extension =>
  new x509.ExtendedKeyUsageExtension([...oids], critical)

export const basicConstraintsExtension = (ca: boolean, critical = true): x509.Extension =>
  new x509.BasicConstraintsExtension(ca, undefined, critical)

/** An extension with any OID and raw value (DER NULL unless given). */
export const rawExtension = (oid: string, value: Uint8Array = new Uint8Array([0x05, 0x00]), critical = false) =>
  new x509.Extension(oid, critical, value)

export const challengePassword = (password: string): x509.Attribute => new x509.ChallengePasswordAttribute(password)

export const SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
export const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"
export const CODE_SIGNING = "1.3.6.1.5.5.7.3.3"

export interface CsrOptions {
  readonly keyType?: KeyType
  /** RFC 4514-ish subject, e.g. `O=foo`; empty by default, as the driver sends. */
  readonly subject?: string
  /** Replaces the whole extension list; defaults to what the CSI driver sends for `uri`. */
  readonly extensions?: ReadonlyArray<x509.Extension>
  /** CSR attributes besides the extension request (e.g. `challengePassword`). */
  readonly attributes?: ReadonlyArray<x509.Attribute>
  /** Overrides the signature algorithm (e.g. ECDSA with SHA-1); defaults to the key type's usual one. */
  readonly signingAlgorithm?: object
  /** Flip the last byte of the signature so it no longer verifies while the request still parses. */
  readonly tamper?: boolean
}

/** The extensions the CSI driver puts in its requests: critical URI SAN, KU DS+KE, EKU server+client. */
export const driverExtensions = (uri: string): ReadonlyArray<x509.Extension> => [
  sanExtension([{ type: "url", value: uri }]),
  keyUsageExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment),
  extendedKeyUsageExtension([SERVER_AUTH, CLIENT_AUTH])
]

/** DER of a signed PKCS#10 request. */
export const csrDer = async (uri: string, options: CsrOptions = {}): Promise<Uint8Array> => {
  const type = options.keyType ?? "ecdsa-p256"
  const keys = await keysFor(type)
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    ...(options.subject === undefined ? {} : { name: options.subject }),
    keys: keys as never,
    signingAlgorithm: (options.signingAlgorithm ?? algorithms[type].sign) as never,
    extensions: [...(options.extensions ?? driverExtensions(uri))],
    ...(options.attributes === undefined ? {} : { attributes: [...options.attributes] })
  })
  const bytes = new Uint8Array(csr.rawData)
  if (options.tamper === true) bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0x01
  return bytes
}

export const toPem = (derBytes: Uint8Array, label = "CERTIFICATE REQUEST"): string => {
  const b64 = Buffer.from(derBytes).toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "")
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`
}

/** `spec.request` as on the wire: base64 of the PEM. */
export const specRequest = (pem: string): string => Buffer.from(pem, "utf8").toString("base64")

export const csrRequest = async (uri: string, options: CsrOptions = {}): Promise<string> =>
  specRequest(toPem(await csrDer(uri, options)))

export const TRUST_DOMAIN = "cluster.local"
export const NAMESPACE = "sandbox"
export const SERVICE_ACCOUNT = "app"
export const IDENTITY = `spiffe://${TRUST_DOMAIN}/ns/${NAMESPACE}/sa/${SERVICE_ACCOUNT}`
export const SPIFFE_ISSUER = { name: "my-spiffe-ca", kind: "ClusterIssuer", group: "cert-manager.io" } as const

/** The approver's policy with the original's defaults: the requests above pass it. */
export const TEST_POLICY: SpiffePolicy = {
  trustDomain: TRUST_DOMAIN,
  certificateRequestDurationMs: 3_600_000,
  issuer: SPIFFE_ISSUER,
  allowedKeyTypes: ["ecdsa-p256"],
  autoApproveNonSpiffe: false
}

export interface CrOptions {
  readonly name?: string
  readonly namespace?: string
  /** `null` removes the annotation. */
  readonly annotation?: string | null
  readonly username?: string | null
  readonly duration?: string | null
  readonly usages?: ReadonlyArray<string> | null
  readonly isCA?: boolean
  readonly issuerRef?: { readonly name: string; readonly kind?: string; readonly group?: string }
  readonly status?: CertificateRequest["status"]
  readonly resourceVersion?: string
}

/** A CertificateRequest as the CSI driver creates it for `sandbox/app`, with `request` as spec.request. */
export const certificateRequest = (request: string, o: CrOptions = {}): CertificateRequest => {
  const annotation = o.annotation === undefined ? IDENTITY : o.annotation
  const username = o.username === undefined ? `system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}` : o.username
  const duration = o.duration === undefined ? "1h0m0s" : o.duration
  const usages = o.usages === undefined ? [...REQUIRED_USAGES] : o.usages
  return {
    apiVersion: "cert-manager.io/v1",
    kind: "CertificateRequest",
    metadata: {
      name: o.name ?? "req",
      namespace: o.namespace ?? NAMESPACE,
      ...(o.resourceVersion === undefined ? {} : { resourceVersion: o.resourceVersion }),
      ...(annotation === null ? {} : { annotations: { [IDENTITY_ANNOTATION]: annotation } })
    },
    spec: {
      request,
      issuerRef: o.issuerRef ?? SPIFFE_ISSUER,
      ...(duration === null ? {} : { duration }),
      ...(usages === null ? {} : { usages: [...usages] }),
      ...(o.isCA === undefined ? {} : { isCA: o.isCA }),
      ...(username === null ? {} : { username })
    },
    ...(o.status === undefined ? {} : { status: o.status })
  }
}

// --- The Pod Certificate signer's intermediate CA request (its contract with the approver) ---

/** The signer's ServiceAccount in these fixtures, as `--signer-service-account` names it and as a username. */
export const SIGNER_SERVICE_ACCOUNT_FLAG = "cert-manager:csi-driver-spiffe-signer"
export const SIGNER_USERNAME = "system:serviceaccount:cert-manager:csi-driver-spiffe-signer"
export const INTERMEDIATE_DURATION = "168h0m0s"

/** TEST_POLICY with the signer configured, so the intermediate below passes it. */
export const SIGNER_POLICY: SpiffePolicy = {
  ...TEST_POLICY,
  signerServiceAccount: SIGNER_USERNAME,
  signerIntermediateDurationMs: 168 * 3_600_000
}

/** One GeneralSubtree: a base name (as RawSan) and optional minimum / maximum distances. */
export interface Subtree {
  readonly name: RawSan
  readonly minimum?: number
  readonly maximum?: number
}

const subtree = (t: Subtree): Uint8Array =>
  der(
    0x30,
    generalName(t.name),
    ...(t.minimum === undefined ? [] : [der(0x80, [t.minimum])]),
    ...(t.maximum === undefined ? [] : [der(0x81, [t.maximum])])
  )

/** A nameConstraints extension with these permitted and excluded subtrees (a list left empty is left out). */
export const nameConstraintsExtension = (
  permitted: ReadonlyArray<Subtree>,
  excluded: ReadonlyArray<Subtree> = [],
  critical = true
): x509.Extension =>
  new x509.Extension(
    "2.5.29.30",
    critical,
    der(
      0x30,
      ...(permitted.length === 0 ? [] : [der(0xa0, ...permitted.map(subtree))]),
      ...(excluded.length === 0 ? [] : [der(0xa1, ...excluded.map(subtree))])
    )
  )

/** basicConstraints with a path length (undefined: none, i.e. unlimited). */
export const caConstraintsExtension = (ca: boolean, pathLength: number | undefined, critical = true): x509.Extension =>
  new x509.BasicConstraintsExtension(ca, pathLength, critical)

export const INTERMEDIATE_KEY_USAGE = x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign |
  x509.KeyUsageFlags.cRLSign

/** The extensions the contract fixes: CA pathlen 0, KU DS|certSign|cRLSign, one URI subtree; all critical. */
export const intermediateExtensions = (trustDomain = TRUST_DOMAIN): ReadonlyArray<x509.Extension> => [
  caConstraintsExtension(true, 0),
  keyUsageExtension(INTERMEDIATE_KEY_USAGE),
  nameConstraintsExtension([{ name: { type: "url", value: trustDomain } }])
]

/** `spec.request` of the signer's intermediate CSR; `options.extensions` replaces the contract's. */
export const intermediateRequest = (options: CsrOptions = {}): Promise<string> =>
  csrRequest("", {
    subject: `CN=csi-driver-spiffe signer ${TRUST_DOMAIN}`,
    extensions: intermediateExtensions(),
    ...options
  })

export interface IntermediateCrOptions extends Omit<CrOptions, "annotation"> {
  /** Replaces the annotations; defaults to the intermediate annotation valued with the trust domain. */
  readonly annotations?: Readonly<Record<string, string>>
}

/** The signer's intermediate CertificateRequest around `request`, as the contract shapes it. */
export const intermediateCertificateRequest = (request: string, o: IntermediateCrOptions = {}): CertificateRequest => {
  const base = certificateRequest(request, {
    name: "csi-driver-spiffe-signer-x7k2p",
    namespace: "cert-manager",
    username: SIGNER_USERNAME,
    duration: INTERMEDIATE_DURATION,
    usages: [...INTERMEDIATE_USAGES],
    isCA: true,
    ...o,
    annotation: null
  })
  return {
    ...base,
    metadata: { ...base.metadata, annotations: { ...(o.annotations ?? { [INTERMEDIATE_ANNOTATION]: TRUST_DOMAIN }) } }
  }
}

/**
 * Turns a CertificateRequest's `spec.request` (base64 of a PEM PKCS#10 request, as on the wire) into
 * `CsrFacts`.
 *
 * Owns: strict decoding (canonical base64, exactly one `CERTIFICATE REQUEST` PEM block and nothing but
 * whitespace around it, DER with no trailing bytes) and signature verification with WebCrypto over
 * the exact signed bytes, for `SUPPORTED_SIGNATURE_ALGORITHMS`. The ASN.1 structures are read with
 * the `@peculiar/asn1-*` schemas that `@peculiar/x509` is built on (one X.509 stack); since their
 * parser is lenient BER, everything read goes through `StrictDer.ts`, which encodes it again and
 * insists on the input byte for byte.
 * Does not own: any judgement (`domain/SpiffeRules.ts`).
 *
 * Never fails: input that does not decode yields `Unparsable` facts with a short reason that quotes
 * nothing from the request.
 *
 * One file (about 360 lines) on purpose: it is one decoding pipeline (PEM → strict DER → structure →
 * facts, and the signature over those exact bytes). The per-extension readers and the signature
 * check are private to it and share its `Structure`/`Signed` types; split apart they would have to
 * be exported for no other caller. The strict-DER primitives already live in `StrictDer.ts`.
 */
import { CertificationRequest } from "@peculiar/asn1-csr"
import { ECDSASigValue, ECParameters } from "@peculiar/asn1-ecc"
import { RSAPublicKey } from "@peculiar/asn1-rsa"
import { AsnConvert } from "@peculiar/asn1-schema"
import {
  BasicConstraints,
  ExtendedKeyUsage,
  Extensions,
  type GeneralName,
  KeyUsage,
  NameConstraints,
  SubjectAlternativeName,
  type SubjectPublicKeyInfo
} from "@peculiar/asn1-x509"
import { Effect } from "effect"
import {
  CURVES,
  type CsrFacts,
  type ExtensionFact,
  KEY_USAGE_BITS,
  type KeyAlgorithm,
  type KeyUsageBit,
  type NameConstraintsFact,
  OID,
  type ParsedCsr,
  type SubtreeFact
} from "../domain/CsrFacts.ts"
import { asBytes, bitLength, checkFraming, DerError, strictParse, unsigned } from "./StrictDer.ts"

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)\r?\n?-----END \1-----/g

type Structure = Omit<ParsedCsr, "signatureValid">

/** What the self-signature check needs, as the request carries it. */
interface Signed {
  /** CertificationRequestInfo, header included: the signed bytes. */
  readonly info: Uint8Array
  readonly spki: Uint8Array
  readonly signature: Uint8Array
}

/** The DER of the single PEM block, or the reason there is none. */
const pemToDer = (request: string): Uint8Array | string => {
  if (!BASE64.test(request)) return "not canonical base64"
  const text = Buffer.from(request, "base64").toString("latin1")
  const blocks = [...text.matchAll(PEM_BLOCK)]
  if (blocks.length !== 1) return `expected exactly one PEM block, found ${blocks.length}`
  const [block] = blocks
  if (block![1] !== "CERTIFICATE REQUEST") return "PEM block is not a CERTIFICATE REQUEST"
  if (text.replace(block![0], "").trim() !== "") return "unexpected data around the PEM block"
  const body = block![2]!.replace(/\r?\n/g, "")
  if (!BASE64.test(body) || body.length === 0) return "PEM body is not base64"
  return new Uint8Array(Buffer.from(body, "base64"))
}

const publicKeyOf = (spki: SubjectPublicKeyInfo): KeyAlgorithm => {
  const alg = spki.algorithm.algorithm
  const params = spki.algorithm.parameters
  switch (alg) {
    case OID.ecPublicKey: {
      if (params === undefined || params === null) return { _tag: "Other", oid: alg }
      let ec: ECParameters
      try {
        ec = strictParse(params, ECParameters, "bad EC parameters")
      } catch {
        // A spelled-out curve the schema cannot take apart is still a spelled-out curve.
        return asBytes(params)[0] === 0x30 ? { _tag: "EcdsaExplicitParameters" } : { _tag: "Other", oid: alg }
      }
      if (ec.specifiedCurve !== undefined) return { _tag: "EcdsaExplicitParameters" }
      if (ec.namedCurve === undefined) return { _tag: "Other", oid: alg }
      return { _tag: "Ecdsa", curve: CURVES[ec.namedCurve] ?? ec.namedCurve }
    }
    case OID.rsaEncryption: {
      const rsa = strictParse(spki.subjectPublicKey, RSAPublicKey, "bad RSA public key")
      return { _tag: "Rsa", bits: bitLength(unsigned(rsa.modulus, "bad RSA modulus")) }
    }
    case OID.ed25519:
      return { _tag: "Ed25519" }
    default:
      return { _tag: "Other", oid: alg }
  }
}

/** Dotted quad or eight uncompressed hex groups, as the rules print them; other lengths by size. */
const ipToString = (bytes: Uint8Array): string =>
  bytes.length === 4
    ? [...bytes].join(".")
    : bytes.length === 16
    ? Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16)).join(":")
    : `<${bytes.length} bytes>`

/**
 * The schema hands an iPAddress over as text (IPv6 compressed, 8 or 32 octets as CIDR); the octets
 * are the content of the name encoded again, a short-form `[7]` element since an address is at most
 * 32 octets.
 */
const ipOf = (name: GeneralName): string => {
  const encoded = asBytes(AsnConvert.serialize(name))
  return encoded[1]! < 0x80 ? ipToString(encoded.subarray(2)) : name.iPAddress!
}

interface Sans {
  readonly dnsNames: Array<string>
  readonly ipAddresses: Array<string>
  readonly emailAddresses: Array<string>
  readonly uris: Array<string>
  readonly otherSanKinds: Array<string>
}

/** GeneralName alternatives other than the four the rules read, by the names the rules print. */
const OTHER_GENERAL_NAMES: ReadonlyArray<[keyof GeneralName, string]> = [
  ["otherName", "otherName"],
  ["x400Address", "x400Address"],
  ["directoryName", "directoryName"],
  ["ediPartyName", "ediPartyName"],
  ["registeredID", "registeredID"]
]

const readSan = (value: ArrayBuffer, into: Sans): void => {
  const names = strictParse(value, SubjectAlternativeName, "bad subjectAltName")
  if (names.length === 0) throw new DerError({ detail: "empty subjectAltName" })
  for (const name of names) {
    if (name.dNSName !== undefined) into.dnsNames.push(name.dNSName)
    else if (name.rfc822Name !== undefined) into.emailAddresses.push(name.rfc822Name)
    else if (name.uniformResourceIdentifier !== undefined) into.uris.push(name.uniformResourceIdentifier)
    else if (name.iPAddress !== undefined) into.ipAddresses.push(ipOf(name))
    else {
      const other = OTHER_GENERAL_NAMES.find(([field]) => name[field] !== undefined)
      if (other === undefined) throw new DerError({ detail: "subjectAltName entry is not a GeneralName" })
      into.otherSanKinds.push(other[1])
    }
  }
}

/** The text of a constraint's base name: an iPAddress constraint is address then mask, 8 or 32 octets. */
const subtreeOf = (name: GeneralName, minimum: number, maximum: number | undefined): SubtreeFact => {
  const base = (kind: string, value: string): SubtreeFact => ({ kind, value, minimum, maximum })
  if (name.uniformResourceIdentifier !== undefined) return base("uri", name.uniformResourceIdentifier)
  if (name.dNSName !== undefined) return base("dns", name.dNSName)
  if (name.rfc822Name !== undefined) return base("email", name.rfc822Name)
  if (name.iPAddress !== undefined) {
    const encoded = asBytes(AsnConvert.serialize(name))
    const octets = encoded[1]! < 0x80 ? encoded.subarray(2) : new Uint8Array()
    const half = octets.length / 2
    return base("ip", `${ipToString(octets.subarray(0, half))}/${ipToString(octets.subarray(half))}`)
  }
  const other = OTHER_GENERAL_NAMES.find(([field]) => name[field] !== undefined)
  if (other === undefined) throw new DerError({ detail: "nameConstraints entry is not a GeneralName" })
  return base(other[1], "")
}

/** Both subtree lists; RFC 5280 forbids an extension with neither and a present list that is empty. */
const readNameConstraints = (value: ArrayBuffer): NameConstraintsFact => {
  const constraints = strictParse(value, NameConstraints, "bad nameConstraints")
  const list = (trees: NameConstraints["permittedSubtrees"]): ReadonlyArray<SubtreeFact> => {
    if (trees === undefined) return []
    if (trees.length === 0) throw new DerError({ detail: "empty nameConstraints subtrees" })
    return Array.from(trees, (tree) => subtreeOf(tree.base, tree.minimum, tree.maximum))
  }
  const permitted = list(constraints.permittedSubtrees)
  const excluded = list(constraints.excludedSubtrees)
  if (permitted.length === 0 && excluded.length === 0) throw new DerError({ detail: "empty nameConstraints" })
  return { permitted, excluded }
}

/** The named bits set, bit 0 being the most significant bit of the first octet. */
const readKeyUsage = (value: ArrayBuffer): ReadonlyArray<KeyUsageBit> => {
  const usage = strictParse(value, KeyUsage, "bad keyUsage")
  const data = asBytes(usage.value)
  const out: Array<KeyUsageBit> = []
  for (let i = 0; i < data.length * 8 - usage.unusedBits; i++) {
    if ((data[i >> 3]! & (0x80 >> (i & 7))) === 0) continue
    const name = KEY_USAGE_BITS[i]
    if (name === undefined) throw new DerError({ detail: "undefined key usage bit" })
    out.push(name)
  }
  return out
}

/** Decodes the request's structure; throws `DerError` when it is not a strict-DER PKCS#10 request. */
const structureOf = (der: Uint8Array): { readonly structure: Structure; readonly signed: Signed } => {
  checkFraming(der)
  const csr = strictParse(der, CertificationRequest, "not a CertificationRequest")
  const info = csr.certificationRequestInfo
  if (info.version !== 0) throw new DerError({ detail: "unsupported CSR version" })
  const subjectAttributes = Array.from(info.subject).flatMap((rdn) => Array.from(rdn, (atv) => atv.type))
  const publicKey = publicKeyOf(info.subjectPKInfo)

  const sans: Sans = { dnsNames: [], ipAddresses: [], emailAddresses: [], uris: [], otherSanKinds: [] }
  const extensions: Array<ExtensionFact> = []
  const malformedExtensions: Array<string> = []
  const otherAttributes: Array<string> = []
  let keyUsage: Array<KeyUsageBit> | undefined
  let extendedKeyUsage: Array<string> | undefined
  let basicConstraintsCa: boolean | undefined
  let basicConstraintsPathLen: number | undefined
  let nameConstraints: NameConstraintsFact | undefined

  // attributes [0] IMPLICIT SET OF Attribute; required by PKCS#10 but absent in some encoders.
  for (const attribute of info.attributes ?? []) {
    if (attribute.type !== OID.extensionRequest) {
      otherAttributes.push(attribute.type)
      continue
    }
    for (const value of attribute.values) {
      for (const extension of strictParse(value, Extensions, "bad Extension")) {
        const extOid = extension.extnID
        extensions.push({ oid: extOid, critical: extension.critical })
        const octets = extension.extnValue.buffer
        try {
          switch (extOid) {
            case OID.subjectAltName:
              readSan(octets, sans)
              break
            case OID.keyUsage:
              keyUsage = [...(keyUsage ?? []), ...readKeyUsage(octets)]
              break
            case OID.extendedKeyUsage:
              extendedKeyUsage = [...(extendedKeyUsage ?? []), ...strictParse(octets, ExtendedKeyUsage, "bad extendedKeyUsage")]
              break
            case OID.basicConstraints: {
              const constraints = strictParse(octets, BasicConstraints, "bad basicConstraints")
              // Of the first one: a second basicConstraints is denied on its own.
              if (basicConstraintsCa === undefined) basicConstraintsPathLen = constraints.pathLenConstraint
              basicConstraintsCa = (basicConstraintsCa ?? false) || constraints.cA
              break
            }
            case OID.nameConstraints: {
              const read = readNameConstraints(octets)
              nameConstraints = {
                permitted: [...(nameConstraints?.permitted ?? []), ...read.permitted],
                excluded: [...(nameConstraints?.excluded ?? []), ...read.excluded]
              }
              break
            }
          }
        } catch (e) {
          if (!(e instanceof DerError)) throw e
          malformedExtensions.push(extOid)
        }
      }
    }
  }

  const structure: Structure = {
    _tag: "Parsed",
    signatureAlgorithm: csr.signatureAlgorithm.algorithm,
    publicKey,
    subjectAttributes,
    ...sans,
    extensions,
    malformedExtensions,
    keyUsage,
    extendedKeyUsage,
    basicConstraintsCa,
    basicConstraintsPathLen,
    nameConstraints,
    otherAttributes
  }
  if (csr.certificationRequestInfoRaw === undefined) throw new DerError({ detail: "bad CertificationRequestInfo" })
  const signed: Signed = {
    info: asBytes(csr.certificationRequestInfoRaw),
    spki: asBytes(AsnConvert.serialize(info.subjectPKInfo)),
    signature: asBytes(csr.signature)
  }
  return { structure, signed }
}

/** Field sizes of the supported curves: an ECDSA signature is r‖s, each this many bytes, for WebCrypto. */
const CURVE_BYTES: Readonly<Record<string, number>> = { "P-256": 32, "P-384": 48, "P-521": 66 }

/** DER `SEQUENCE { r INTEGER, s INTEGER }` → the fixed-width r‖s WebCrypto verifies. */
const ecdsaRaw = (der: Uint8Array, size: number): Uint8Array => {
  const value = strictParse(der, ECDSASigValue, "bad ECDSA signature")
  const out = new Uint8Array(2 * size)
  for (const [i, part] of [unsigned(value.r, "bad ECDSA signature"), unsigned(value.s, "bad ECDSA signature")].entries()) {
    if (part.length > size) throw new DerError({ detail: "bad ECDSA signature" })
    out.set(part, (i + 1) * size - part.length)
  }
  return out
}

const HASHES: Readonly<Record<string, string>> = {
  [OID.ecdsaWithSha256]: "SHA-256",
  [OID.ecdsaWithSha384]: "SHA-384",
  [OID.ecdsaWithSha512]: "SHA-512",
  [OID.sha256WithRsa]: "SHA-256",
  [OID.sha384WithRsa]: "SHA-384",
  [OID.sha512WithRsa]: "SHA-512"
}

/** The WebCrypto parameters for this algorithm and key, or undefined when they do not match. */
const webCryptoParams = (algorithm: string, key: KeyAlgorithm, signature: Uint8Array) => {
  const hash = HASHES[algorithm]
  if (key._tag === "Ecdsa" && algorithm.startsWith("1.2.840.10045.4.3.") && hash !== undefined) {
    const size = CURVE_BYTES[key.curve]
    if (size === undefined) return undefined
    return {
      importParams: { name: "ECDSA", namedCurve: key.curve },
      verifyParams: { name: "ECDSA", hash },
      signature: ecdsaRaw(signature, size)
    }
  }
  if (key._tag === "Rsa" && algorithm.startsWith("1.2.840.113549.1.1.") && hash !== undefined) {
    return { importParams: { name: "RSASSA-PKCS1-v1_5", hash }, verifyParams: { name: "RSASSA-PKCS1-v1_5" }, signature }
  }
  if (key._tag === "Ed25519" && algorithm === OID.ed25519) {
    return { importParams: { name: "Ed25519" }, verifyParams: { name: "Ed25519" }, signature }
  }
  return undefined
}

/** Whether the request's own key verifies its signature; false for anything unsupported or malformed. */
const verifySignature = (structure: Structure, signed: Signed): Effect.Effect<boolean> =>
  Effect.suspend(() => {
    let params: ReturnType<typeof webCryptoParams>
    try {
      params = webCryptoParams(structure.signatureAlgorithm, structure.publicKey, signed.signature)
    } catch {
      return Effect.succeed(false)
    }
    if (params === undefined) return Effect.succeed(false)
    const { importParams, verifyParams, signature } = params
    return Effect.tryPromise(async () => {
      const key = await globalThis.crypto.subtle.importKey("spki", signed.spki, importParams, false, ["verify"])
      return globalThis.crypto.subtle.verify(verifyParams, key, signature, signed.info)
    }).pipe(Effect.orElseSucceed(() => false))
  })

/** The facts of `spec.request`; never fails. */
export const inspectCsr = Effect.fn("InspectCsr.inspectCsr")(function*(request: string): Effect.fn.Return<CsrFacts> {
  const der = pemToDer(request)
  if (typeof der === "string") return { _tag: "Unparsable", why: der }
  let decoded: ReturnType<typeof structureOf>
  try {
    decoded = structureOf(der)
  } catch (e) {
    return { _tag: "Unparsable", why: e instanceof DerError ? `malformed DER: ${e.detail}` : "malformed DER" }
  }
  const signatureValid = yield* verifySignature(decoded.structure, decoded.signed)
  return { ...decoded.structure, signatureValid }
})

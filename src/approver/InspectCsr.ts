/**
 * Turns a CertificateRequest's `spec.request` (base64 of a PEM PKCS#10 request, as on the wire) into
 * `CsrFacts`.
 *
 * Owns: strict decoding (canonical base64, exactly one `CERTIFICATE REQUEST` PEM block and nothing but
 * whitespace around it, DER with no trailing bytes) and signature verification with WebCrypto over
 * the exact signed bytes (no re-encoding by a library), for `SUPPORTED_SIGNATURE_ALGORITHMS`.
 * Does not own: any judgement (`domain/SpiffeRules.ts`).
 *
 * Never fails: input that does not decode yields `Unparsable` facts with a short reason that quotes
 * nothing from the request.
 */
import { Effect } from "effect"
import {
  CURVES,
  type CsrFacts,
  type ExtensionFact,
  KEY_USAGE_BITS,
  type KeyAlgorithm,
  type KeyUsageBit,
  OID,
  type ParsedCsr
} from "../domain/CsrFacts.ts"
import * as Der from "./Der.ts"

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)\r?\n?-----END \1-----/g

/** Context-specific tag numbers of GeneralName (RFC 5280 §4.2.1.6). */
const GENERAL_NAME_KINDS: Readonly<Record<number, string>> = {
  0: "otherName",
  1: "email",
  2: "DNS",
  3: "x400Address",
  4: "directoryName",
  5: "ediPartyName",
  6: "URI",
  7: "IP",
  8: "registeredID"
}

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

const publicKeyOf = (spki: Der.Tlv): KeyAlgorithm => {
  const [algorithm, key] = Der.children(spki, Der.TAG.SEQUENCE)
  if (algorithm === undefined || key === undefined) throw new Der.DerError({ detail: "bad SubjectPublicKeyInfo" })
  const [algOid, params] = Der.children(algorithm, Der.TAG.SEQUENCE)
  const alg = Der.oid(algOid!)
  switch (alg) {
    case OID.ecPublicKey: {
      if (params !== undefined && params.tag === Der.TAG.SEQUENCE) return { _tag: "EcdsaExplicitParameters" }
      if (params === undefined || params.tag !== Der.TAG.OID) return { _tag: "Other", oid: alg }
      const curveOid = Der.oid(params)
      return { _tag: "Ecdsa", curve: CURVES[curveOid] ?? curveOid }
    }
    case OID.rsaEncryption: {
      const rsa = Der.readOne(Der.bitStringBytes(key), Der.TAG.SEQUENCE)
      const [modulus] = Der.children(rsa, Der.TAG.SEQUENCE)
      return { _tag: "Rsa", bits: Der.unsignedBitLength(modulus!) }
    }
    case OID.ed25519:
      return { _tag: "Ed25519" }
    default:
      return { _tag: "Other", oid: alg }
  }
}

const ipToString = (bytes: Uint8Array): string =>
  bytes.length === 4
    ? [...bytes].join(".")
    : bytes.length === 16
    ? Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16)).join(":")
    : `<${bytes.length} bytes>`

interface Sans {
  readonly dnsNames: Array<string>
  readonly ipAddresses: Array<string>
  readonly emailAddresses: Array<string>
  readonly uris: Array<string>
  readonly otherSanKinds: Array<string>
}

const readSan = (value: Uint8Array, into: Sans): void => {
  const names = Der.children(Der.readOne(value, Der.TAG.SEQUENCE), Der.TAG.SEQUENCE)
  if (names.length === 0) throw new Der.DerError({ detail: "empty subjectAltName" })
  for (const name of names) {
    const n = Der.contextNumber(name.tag)
    const kind = n === undefined ? undefined : GENERAL_NAME_KINDS[n]
    const text = Buffer.from(name.content).toString("latin1")
    switch (kind) {
      case "DNS":
        into.dnsNames.push(text)
        break
      case "email":
        into.emailAddresses.push(text)
        break
      case "URI":
        into.uris.push(text)
        break
      case "IP":
        into.ipAddresses.push(ipToString(name.content))
        break
      case undefined:
        throw new Der.DerError({ detail: "subjectAltName entry is not a GeneralName" })
      default:
        into.otherSanKinds.push(kind)
    }
  }
}

const readKeyUsage = (value: Uint8Array): ReadonlyArray<KeyUsageBit> =>
  Der.bitsSet(Der.readOne(value, Der.TAG.BIT_STRING)).map((bit) => {
    const name = KEY_USAGE_BITS[bit]
    if (name === undefined) throw new Der.DerError({ detail: "undefined key usage bit" })
    return name
  })

const readExtendedKeyUsage = (value: Uint8Array): ReadonlyArray<string> =>
  Der.children(Der.readOne(value, Der.TAG.SEQUENCE), Der.TAG.SEQUENCE).map(Der.oid)

const readBasicConstraintsCa = (value: Uint8Array): boolean => {
  const [first] = Der.children(Der.readOne(value, Der.TAG.SEQUENCE), Der.TAG.SEQUENCE)
  return first !== undefined && first.tag === Der.TAG.BOOLEAN ? Der.boolean(first) : false
}

/** Decodes the request's structure; throws `DerError` when it is not a PKCS#10 request. */
const structureOf = (der: Uint8Array): { readonly structure: Structure; readonly signed: Signed } => {
  const [info, signatureAlgorithm, signature] = Der.children(Der.readOne(der, Der.TAG.SEQUENCE), Der.TAG.SEQUENCE)
  if (signatureAlgorithm?.tag !== Der.TAG.SEQUENCE || signature?.tag !== Der.TAG.BIT_STRING) {
    throw new Der.DerError({ detail: "not a CertificationRequest" })
  }
  const [version, subject, spki, attributes, ...rest] = Der.children(info!, Der.TAG.SEQUENCE)
  if (version?.tag !== Der.TAG.INTEGER || version.content.length !== 1 || version.content[0] !== 0) {
    throw new Der.DerError({ detail: "unsupported CSR version" })
  }
  if (subject === undefined || spki === undefined || rest.length > 0) {
    throw new Der.DerError({ detail: "bad CertificationRequestInfo" })
  }
  const subjectAttributes = Der.children(subject, Der.TAG.SEQUENCE).flatMap((rdn) =>
    Der.children(rdn, Der.TAG.SET).map((atv) => Der.oid(Der.children(atv, Der.TAG.SEQUENCE)[0]!))
  )
  const publicKey = publicKeyOf(spki)

  const sans: Sans = { dnsNames: [], ipAddresses: [], emailAddresses: [], uris: [], otherSanKinds: [] }
  const extensions: Array<ExtensionFact> = []
  const malformedExtensions: Array<string> = []
  const otherAttributes: Array<string> = []
  let keyUsage: Array<KeyUsageBit> | undefined
  let extendedKeyUsage: Array<string> | undefined
  let basicConstraintsCa: boolean | undefined

  // attributes [0] IMPLICIT SET OF Attribute; required by PKCS#10 but absent in some encoders.
  const attributeList = attributes === undefined ? [] : Der.children(attributes, 0xa0)
  for (const attribute of attributeList) {
    const [type, values] = Der.children(attribute, Der.TAG.SEQUENCE)
    const attributeType = Der.oid(type!)
    if (attributeType !== OID.extensionRequest) {
      otherAttributes.push(attributeType)
      continue
    }
    for (const value of Der.children(values!, Der.TAG.SET)) {
      for (const extension of Der.children(value, Der.TAG.SEQUENCE)) {
        const parts = Der.children(extension, Der.TAG.SEQUENCE)
        const extOid = Der.oid(parts[0]!)
        const critical = parts.length === 3 ? Der.boolean(parts[1]!) : false
        const octets = parts[parts.length - 1]
        if (parts.length < 2 || parts.length > 3 || octets?.tag !== Der.TAG.OCTET_STRING) {
          throw new Der.DerError({ detail: "bad Extension" })
        }
        extensions.push({ oid: extOid, critical })
        try {
          switch (extOid) {
            case OID.subjectAltName:
              readSan(octets.content, sans)
              break
            case OID.keyUsage:
              keyUsage = [...(keyUsage ?? []), ...readKeyUsage(octets.content)]
              break
            case OID.extendedKeyUsage:
              extendedKeyUsage = [...(extendedKeyUsage ?? []), ...readExtendedKeyUsage(octets.content)]
              break
            case OID.basicConstraints:
              basicConstraintsCa = (basicConstraintsCa ?? false) || readBasicConstraintsCa(octets.content)
              break
          }
        } catch (e) {
          if (!(e instanceof Der.DerError)) throw e
          malformedExtensions.push(extOid)
        }
      }
    }
  }

  const [signatureOid] = Der.children(signatureAlgorithm, Der.TAG.SEQUENCE)
  const structure: Structure = {
    _tag: "Parsed",
    signatureAlgorithm: Der.oid(signatureOid!),
    publicKey,
    subjectAttributes,
    ...sans,
    extensions,
    malformedExtensions,
    keyUsage,
    extendedKeyUsage,
    basicConstraintsCa,
    otherAttributes
  }
  return { structure, signed: { info: info!.raw, spki: spki.raw, signature: Der.bitStringBytes(signature) } }
}

/** Field sizes of the supported curves: an ECDSA signature is r‖s, each this many bytes, for WebCrypto. */
const CURVE_BYTES: Readonly<Record<string, number>> = { "P-256": 32, "P-384": 48, "P-521": 66 }

/** DER `SEQUENCE { r INTEGER, s INTEGER }` → the fixed-width r‖s WebCrypto verifies. */
const ecdsaRaw = (der: Uint8Array, size: number): Uint8Array => {
  const [r, s, ...rest] = Der.children(Der.readOne(der, Der.TAG.SEQUENCE), Der.TAG.SEQUENCE)
  if (r === undefined || s === undefined || rest.length > 0) throw new Der.DerError({ detail: "bad ECDSA signature" })
  const out = new Uint8Array(2 * size)
  for (const [i, part] of [Der.unsignedBytes(r), Der.unsignedBytes(s)].entries()) {
    if (part.length > size) throw new Der.DerError({ detail: "bad ECDSA signature" })
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
    return { _tag: "Unparsable", why: e instanceof Der.DerError ? `malformed DER: ${e.detail}` : "malformed DER" }
  }
  const signatureValid = yield* verifySignature(decoded.structure, decoded.signed)
  return { ...decoded.structure, signatureValid }
})

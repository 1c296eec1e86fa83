/**
 * Strict DER on top of the `@peculiar/asn1-schema` parser, for reading a PKCS#10 request from an
 * untrusted pod without trusting the parser's BER leniency.
 *
 * Owns: the outermost framing check (one definite, minimal-length SEQUENCE and nothing after it),
 * parse-then-re-encode-and-compare for every structure, and INTEGER magnitudes.
 * Does not own: which structures a request holds or what they mean (`InspectCsr.ts`).
 *
 * Every reader throws `DerError`; `InspectCsr` catches it, so it never leaves that module.
 */
import { AsnConvert } from "@peculiar/asn1-schema"
import { Schema } from "effect"

/** Why the bytes are not a strict-DER PKCS#10 request; `InspectCsr` reports it as `Unparsable`. */
export class DerError extends Schema.TaggedError<DerError>()("DerError", { detail: Schema.String }) {
  override get message(): string {
    return this.detail
  }
}

/**
 * The outermost framing: exactly one SEQUENCE with a definite, minimal length filling all of `der`.
 * Checked before the schema parser so that truncation, trailing bytes and indefinite lengths are
 * named precisely; everything inside is left to the schemas and the re-encoding check.
 */
export const checkFraming = (der: Uint8Array): void => {
  let at = 0
  let elements = 0
  while (at < der.length) {
    const tag = der[at]!
    if ((tag & 0x1f) === 0x1f) throw new DerError({ detail: "high tag number" })
    if (++at >= der.length) throw new DerError({ detail: "truncated length" })
    const first = der[at++]!
    let length = first
    if (first & 0x80) {
      const count = first & 0x7f
      // Four length octets already allow 4 GiB; a CSR is a few hundred bytes.
      if (count === 0 || count > 4) throw new DerError({ detail: "unsupported length" })
      if (at + count > der.length) throw new DerError({ detail: "truncated length" })
      length = 0
      for (let i = 0; i < count; i++) length = length * 256 + der[at + i]!
      if (der[at] === 0 || length < 0x80) throw new DerError({ detail: "non-minimal length" })
      at += count
    }
    if (at + length > der.length) throw new DerError({ detail: "truncated content" })
    at += length
    elements += 1
    if (tag !== 0x30) elements = Infinity
  }
  if (elements !== 1) throw new DerError({ detail: "expected a single element with tag 48" })
}

type AsnSchema = Parameters<typeof AsnConvert.parse>[1]

/** `bytes` parsed as `schema`, only if encoding the result again gives back exactly `bytes`. */
export const strictParse = <T>(bytes: ArrayBuffer | Uint8Array, schema: new() => T, detail: string): T => {
  let value: T
  try {
    value = AsnConvert.parse(bytes, schema as AsnSchema) as T
  } catch {
    throw new DerError({ detail })
  }
  if (!Buffer.from(AsnConvert.serialize(value)).equals(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes))) {
    throw new DerError({ detail: `${detail} (not DER)` })
  }
  return value
}

export const asBytes = (buffer: ArrayBuffer): Uint8Array => new Uint8Array(buffer)

/** The magnitude of a non-negative INTEGER's content octets, without leading zero octets. */
export const unsigned = (buffer: ArrayBuffer, detail: string): Uint8Array => {
  const bytes = asBytes(buffer)
  if (bytes.length === 0 || (bytes[0]! & 0x80) !== 0) throw new DerError({ detail })
  let i = 0
  while (i < bytes.length - 1 && bytes[i] === 0) i++
  return bytes.subarray(i)
}

export const bitLength = (magnitude: Uint8Array): number =>
  (magnitude.length - 1) * 8 + (magnitude[0] === 0 ? 0 : 32 - Math.clz32(magnitude[0]!))

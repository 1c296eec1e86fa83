/**
 * A small, strict DER reader: just enough ASN.1 to take a PKCS#10 request apart without trusting a
 * library's leniency (or its exceptions) on hostile input.
 *
 * Owns: TLV splitting with definite, minimal lengths; OID, BOOLEAN and BIT STRING decoding.
 * Does not own: what the structures mean (`InspectCsr.ts`).
 *
 * Every reader throws `DerError` on malformed input; `InspectCsr` catches it and reports the CSR as
 * unparsable, so it never leaves that module.
 */
import { Schema } from "effect"

export class DerError extends Schema.TaggedError<DerError>()("DerError", { detail: Schema.String }) {
  override get message(): string {
    return this.detail
  }
}

export interface Tlv {
  /** The identifier octet: class bits, constructed bit and tag number (low-tag-number form only). */
  readonly tag: number
  readonly content: Uint8Array
  /** The whole element, header included (what a signature covers). */
  readonly raw: Uint8Array
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  SEQUENCE: 0x30,
  SET: 0x31
} as const

/** The class and number of a context-specific tag, ignoring the constructed bit. */
export const contextNumber = (tag: number): number | undefined => ((tag & 0xc0) === 0x80 ? tag & 0x1f : undefined)

/**
 * Splits `bytes` into consecutive TLVs. Indefinite lengths, non-minimal lengths, high tag numbers
 * and lengths beyond the input are rejected.
 */
export const readAll = (bytes: Uint8Array): ReadonlyArray<Tlv> => {
  const out: Array<Tlv> = []
  let at = 0
  while (at < bytes.length) {
    const start = at
    const tag = bytes[at]!
    if ((tag & 0x1f) === 0x1f) throw new DerError({ detail: "high tag number" })
    at += 1
    if (at >= bytes.length) throw new DerError({ detail: "truncated length" })
    const first = bytes[at]!
    at += 1
    let length = first
    if (first & 0x80) {
      const count = first & 0x7f
      // Four length octets already allow 4 GiB; a CSR is a few hundred bytes.
      if (count === 0 || count > 4) throw new DerError({ detail: "unsupported length" })
      if (at + count > bytes.length) throw new DerError({ detail: "truncated length" })
      length = 0
      for (let i = 0; i < count; i++) length = length * 256 + bytes[at + i]!
      if (bytes[at] === 0 || length < 0x80) throw new DerError({ detail: "non-minimal length" })
      at += count
    }
    if (at + length > bytes.length) throw new DerError({ detail: "truncated content" })
    out.push({ tag, content: bytes.subarray(at, at + length), raw: bytes.subarray(start, at + length) })
    at += length
  }
  return out
}

/** Exactly one TLV with the given tag filling all of `bytes`. */
export const readOne = (bytes: Uint8Array, tag: number): Tlv => {
  const all = readAll(bytes)
  if (all.length !== 1 || all[0]!.tag !== tag) throw new DerError({ detail: `expected a single element with tag ${tag}` })
  return all[0]!
}

/** The children of a constructed element, checked against an expected tag. */
export const children = (tlv: Tlv, tag: number): ReadonlyArray<Tlv> => {
  if (tlv.tag !== tag) throw new DerError({ detail: `expected tag ${tag}, got ${tlv.tag}` })
  return readAll(tlv.content)
}

export const oid = (tlv: Tlv): string => {
  if (tlv.tag !== TAG.OID || tlv.content.length === 0) throw new DerError({ detail: "expected an OID" })
  const arcs: Array<number> = []
  let value = 0
  let started = false
  for (const byte of tlv.content) {
    if (!started && byte === 0x80) throw new DerError({ detail: "non-minimal OID arc" })
    started = true
    value = value * 128 + (byte & 0x7f)
    if (value > Number.MAX_SAFE_INTEGER / 128) throw new DerError({ detail: "OID arc too large" })
    if ((byte & 0x80) === 0) {
      arcs.push(value)
      value = 0
      started = false
    }
  }
  if (started) throw new DerError({ detail: "truncated OID" })
  const head = arcs[0]!
  const [a, b] = head < 40 ? [0, head] : head < 80 ? [1, head - 40] : [2, head - 80]
  return [a, b, ...arcs.slice(1)].join(".")
}

export const boolean = (tlv: Tlv): boolean => {
  if (tlv.tag !== TAG.BOOLEAN || tlv.content.length !== 1) throw new DerError({ detail: "expected a BOOLEAN" })
  const v = tlv.content[0]
  if (v !== 0x00 && v !== 0xff) throw new DerError({ detail: "non-DER BOOLEAN" })
  return v === 0xff
}

/** The indices of the bits set in a BIT STRING, bit 0 being the most significant bit of the first octet. */
export const bitsSet = (tlv: Tlv): ReadonlyArray<number> => {
  if (tlv.tag !== TAG.BIT_STRING || tlv.content.length === 0) throw new DerError({ detail: "expected a BIT STRING" })
  const unused = tlv.content[0]!
  if (unused > 7 || (tlv.content.length === 1 && unused !== 0)) throw new DerError({ detail: "bad BIT STRING padding" })
  const out: Array<number> = []
  const data = tlv.content.subarray(1)
  for (let i = 0; i < data.length * 8 - unused; i++) {
    if (data[i >> 3]! & (0x80 >> (i & 7))) out.push(i)
  }
  return out
}

/** The payload of a BIT STRING that holds whole octets (keys, signatures). */
export const bitStringBytes = (tlv: Tlv): Uint8Array => {
  if (tlv.tag !== TAG.BIT_STRING || tlv.content.length === 0 || tlv.content[0] !== 0) {
    throw new DerError({ detail: "expected an octet-aligned BIT STRING" })
  }
  return tlv.content.subarray(1)
}

/** The magnitude of a non-negative INTEGER, without leading zero octets. */
export const unsignedBytes = (tlv: Tlv): Uint8Array => {
  if (tlv.tag !== TAG.INTEGER || tlv.content.length === 0 || (tlv.content[0]! & 0x80) !== 0) {
    throw new DerError({ detail: "expected a non-negative INTEGER" })
  }
  let i = 0
  while (i < tlv.content.length - 1 && tlv.content[i] === 0) i++
  return tlv.content.subarray(i)
}

/** Significant bits of a non-negative INTEGER (an RSA modulus). */
export const unsignedBitLength = (tlv: Tlv): number => {
  if (tlv.tag !== TAG.INTEGER || tlv.content.length === 0) throw new DerError({ detail: "expected an INTEGER" })
  let i = 0
  while (i < tlv.content.length - 1 && tlv.content[i] === 0) i++
  const lead = tlv.content[i]!
  return (tlv.content.length - i - 1) * 8 + (lead === 0 ? 0 : 32 - Math.clz32(lead))
}

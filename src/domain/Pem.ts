/**
 * PEM text to the DER bytes the SPIFFE Workload API carries.
 *
 * Owns: finding the blocks of one label (`CERTIFICATE`, `PRIVATE KEY`) in a PEM text, in order, and
 * decoding their base64 bodies. The texts come from the driver itself (the issued chain, its own
 * key, the validated CA bundle), so this does not judge them; a block it cannot read is skipped.
 */

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([A-Za-z0-9+/=\s]*?)-----END \1-----/g

/** The DER of every `label` block of `pem`, in the order they appear. */
export const pemBlocks = (pem: string, label: string): ReadonlyArray<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (const block of pem.matchAll(PEM_BLOCK)) {
    if (block[1] !== label) continue
    const body = block[2]!.replace(/\s+/g, "")
    if (body.length > 0) out.push(new Uint8Array(Buffer.from(body, "base64")))
  }
  return out
}

/** The blocks of `pem` with `label`, concatenated (the Workload API's form of a chain or bundle). */
export const pemToConcatenatedDer = (pem: string, label: string): Uint8Array => Buffer.concat(pemBlocks(pem, label))

/**
 * The label hashes csi-lib puts on CertificateRequests (`csi.cert-manager.io/node-id-hash`,
 * `…/volume-id-hash`): 32-bit FNV-1 of the id, in decimal, passed through apimachinery's
 * `rand.SafeEncodeString` (each character mapped onto an alphabet without vowels). Matching it keeps
 * label selectors compatible with the original's requests.
 */

const SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

export const fnv1_32 = (input: string): number => {
  let hash = 0x811c9dc5
  for (const byte of Buffer.from(input, "utf8")) {
    hash = Math.imul(hash, 0x01000193) >>> 0
    hash = (hash ^ byte) >>> 0
  }
  return hash
}

export const safeEncode = (s: string): string =>
  Array.from(s, (c) => SAFE_ALPHABET[c.charCodeAt(0) % SAFE_ALPHABET.length]).join("")

export const labelHash = (id: string): string => safeEncode(String(fnv1_32(id)))

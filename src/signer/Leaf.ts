/**
 * Signing one X.509 SVID for a PodCertificateRequest with the intermediate CA.
 *
 * Owns: the leaf's contents: a random 128-bit serial, an empty subject, one URI SAN (critical, since
 * the subject is empty; RFC 5280 §4.2.1.6 and the X509-SVID spec), keyUsage digitalSignature (plus
 * keyEncipherment for RSA keys) critical, extKeyUsage serverAuth and clientAuth, basicConstraints
 * CA:FALSE critical, the authority key identifier of the intermediate; the issuer name copied as the
 * intermediate's subject bytes (chain building compares them byte for byte); and the chain PEM the
 * kubelet writes verbatim: leaf, intermediate, any certificates above it, never the root.
 * Does not own: the times and the SPIFFE ID (`domain/PodCertificate.ts` decides them).
 */
import { Effect, Redacted, Schema } from "effect"
import type { webcrypto } from "node:crypto"
import type { LeafTimes } from "../domain/PodCertificate.ts"
import type { IntermediateCA } from "../services/Intermediate.ts"
import type { StubKey } from "./StubCsr.ts"
import { x509 } from "../x509.ts"

export class LeafSignError extends Schema.TaggedError<LeafSignError>()("LeafSignError", {
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

const SIGN_ALG = { name: "ECDSA", hash: "SHA-256" } as const

/** Sixteen random bytes with the top bit clear (a positive INTEGER of at most 16 bytes). */
const serial = (): string => {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16))
  bytes[0] = (bytes[0]! & 0x7f) | 0x01
  return Buffer.from(bytes).toString("hex")
}

export const signLeaf = (ca: IntermediateCA, key: StubKey, spiffeId: string, times: LeafTimes) =>
  Effect.tryPromise({
    try: async () => {
      const issuerCert = new x509.X509Certificate(ca.certificatePem)
      const ski = issuerCert.getExtension(x509.SubjectKeyIdentifierExtension)
      const usages = x509.KeyUsageFlags.digitalSignature | (key.facts._tag === "RSA" ? x509.KeyUsageFlags.keyEncipherment : 0)
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: "",
        issuer: new x509.Name(issuerCert.subjectName.toArrayBuffer()),
        notBefore: new Date(times.notBefore),
        notAfter: new Date(times.notAfter),
        signingAlgorithm: SIGN_ALG,
        publicKey: key.spki,
        signingKey: Redacted.value(ca.signingKey) as webcrypto.CryptoKey,
        extensions: [
          new x509.SubjectAlternativeNameExtension([{ type: "url", value: spiffeId }], true),
          new x509.KeyUsagesExtension(usages, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
          new x509.BasicConstraintsExtension(false, undefined, true),
          ...(ski === null ? [] : [new x509.AuthorityKeyIdentifierExtension(ski.keyId)])
        ]
      })
      return [leaf.toString("pem"), ca.certificatePem, ...ca.upperChainPem].join("\n") + "\n"
    },
    catch: (cause) => new LeafSignError({ detail: `signing the leaf: ${cause instanceof Error ? cause.message : String(cause)}`, cause })
  })

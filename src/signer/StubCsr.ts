/**
 * Reading the kubelet's stub PKCS#10 request of a PodCertificateRequest: only its public key
 * matters (the API server has already checked its signature; its subject and extensions are empty
 * by the API's rules and ignored here).
 *
 * Owns: base64 → DER → SubjectPublicKeyInfo → `KeyFacts` (algorithm, curve or modulus size).
 */
import { AsnConvert } from "@peculiar/asn1-schema"
import { CertificationRequest } from "@peculiar/asn1-csr"
import { ECParameters } from "@peculiar/asn1-ecc"
import { RSAPublicKey } from "@peculiar/asn1-rsa"
import { Result } from "effect"
import type { KeyFacts } from "../domain/PodCertificate.ts"

const CURVES: Readonly<Record<string, string>> = {
  "1.2.840.10045.3.1.7": "P-256",
  "1.3.132.0.34": "P-384",
  "1.3.132.0.35": "P-521"
}

export interface StubKey {
  readonly facts: KeyFacts
  /** The SubjectPublicKeyInfo DER, as the leaf will carry it. */
  readonly spki: Uint8Array
}

/** The public key of a stub CSR, or a sentence saying why it cannot be read. */
export const readStubCsr = (base64: string): Result.Result<StubKey, string> => {
  try {
    const der = Buffer.from(base64, "base64")
    if (der.length === 0) return Result.fail("the stub CSR is empty")
    const csr = AsnConvert.parse(der, CertificationRequest)
    const info = csr.certificationRequestInfo.subjectPKInfo
    const spki = new Uint8Array(AsnConvert.serialize(info))
    const oid = info.algorithm.algorithm
    if (oid === "1.2.840.10045.2.1") {
      const params = info.algorithm.parameters
      const curveOid = params === null || params === undefined ? "" : (AsnConvert.parse(params, ECParameters).namedCurve ?? "")
      return Result.succeed({ facts: { _tag: "ECDSA", curve: CURVES[curveOid] ?? curveOid }, spki })
    }
    if (oid === "1.2.840.113549.1.1.1") {
      const rsa = AsnConvert.parse(info.subjectPublicKey, RSAPublicKey)
      const modulus = new Uint8Array(rsa.modulus)
      const first = modulus.findIndex((b) => b !== 0)
      const bytes = first < 0 ? 0 : modulus.length - first
      const bits = bytes === 0 ? 0 : (bytes - 1) * 8 + (32 - Math.clz32(modulus[first]!))
      return Result.succeed({ facts: { _tag: "RSA", bits }, spki })
    }
    if (oid === "1.3.101.112") return Result.succeed({ facts: { _tag: "Ed25519" }, spki })
    return Result.succeed({ facts: { _tag: "Other", algorithm: oid }, spki })
  } catch (e) {
    return Result.fail(`the stub CSR does not parse as PKCS#10: ${e instanceof Error ? e.message : String(e)}`)
  }
}

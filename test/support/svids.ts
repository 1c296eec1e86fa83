/**
 * Real X.509-SVIDs in the Workload API's form, for tests and benchmarks that serve them without a
 * volume manager: the driver's own key and CSR (layers/Crypto.ts) signed by a test CA.
 */
import { Effect, Redacted } from "effect"
import { pemToConcatenatedDer } from "../../src/domain/Pem.ts"
import * as CryptoLayers from "../../src/layers/Crypto.ts"
import { Crypto } from "../../src/services/Crypto.ts"
import type { VolumeSvid } from "../../src/services/WorkloadApi.ts"
import { x509 } from "../../src/x509.ts"
import { signCsr, type TestCa } from "./TestSigner.ts"

export interface IssuedSvid {
  readonly svid: VolumeSvid
  /** The leaf's serial number, lower-case hex without leading zeros (as Go's %x prints it). */
  readonly serial: string
}

/** A fresh key and certificate for `spiffeId` from `ca`, valid `durationMillis`; the bundle is `bundlePem` (default: the CA). */
export const issueSvid = (ca: TestCa, spiffeId: string, durationMillis = 3_600_000, bundlePem = ca.certPem) =>
  Effect.gen(function*() {
    const crypto = yield* Crypto
    const key = yield* crypto.generateKey
    const chainPem = yield* signCsr(ca, yield* crypto.createCsr(key, spiffeId), durationMillis)
    const url = new URL(spiffeId)
    const svid: VolumeSvid = {
      spiffeId,
      trustDomainId: `spiffe://${url.host}`,
      chainDer: pemToConcatenatedDer(chainPem, "CERTIFICATE"),
      keyDer: Redacted.make(pemToConcatenatedDer(Redacted.value(key.pem), "PRIVATE KEY")),
      bundleDer: pemToConcatenatedDer(bundlePem, "CERTIFICATE")
    }
    return { svid, serial: new x509.X509Certificate(chainPem).serialNumber.replace(/^0+/, "").toLowerCase() }
  }).pipe(Effect.provide(CryptoLayers.layer))

/**
 * `Intermediate` over cert-manager: the signer's own CA key and the CertificateRequest that gets it
 * signed by the configured issuer, renewed before its remaining lifetime drops below the longest
 * leaf plus a margin (`PodCertificate.intermediateRenewAt`).
 *
 * Owns: generating the ECDSA P-256 key (WebCrypto, never exported, never stored), the PKCS#10 request
 * the approver's intermediate rule expects (subject `CN=csi-driver-spiffe signer <td>`, no SAN,
 * basicConstraints CA:TRUE pathlen:0, keyUsage digitalSignature|keyCertSign|cRLSign and
 * nameConstraints permitting only URIs in the trust domain, all critical), the CertificateRequest
 * (annotation `spiffe.csi.cert-manager.io/intermediate`, isCA, exact duration, the three CA usages),
 * waiting for its outcome on a watch, checking the returned certificate (our key, a CA, still valid),
 * and deleting every older intermediate request of the trust domain once a new CA is in force.
 * Does not own: approval (the approver), signing leaves, the trust bundle.
 *
 * cert-manager v1.21.2's CA issuer (pkg/util/pki/certificatetemplate.go) copies nameConstraints
 * from the CSR but overrides basicConstraints without a path length: the issued intermediate has no
 * pathLenConstraint. The name constraint still binds anything below it to the trust domain, and this
 * signer only ever signs leaves (CA:FALSE).
 */
import { AsnConvert } from "@peculiar/asn1-schema"
import { GeneralName, GeneralSubtree, GeneralSubtrees, NameConstraints } from "@peculiar/asn1-x509"
import { Clock, Duration, Effect, Layer, Redacted, Stream, SubscriptionRef } from "effect"
import type { webcrypto } from "node:crypto"
import * as CR from "../domain/CertificateRequest.ts"
import { CertificateRequests } from "../domain/KubeObjects.ts"
import { intermediateRenewAt } from "../domain/PodCertificate.ts"
import * as Schedules from "../domain/Schedules.ts"
import { iso } from "../domain/UtcTime.ts"
import type { IntermediateCA } from "../services/Intermediate.ts"
import { Intermediate, IntermediateError } from "../services/Intermediate.ts"
import { KubeClient } from "../services/KubeClient.ts"
import type { KubeError } from "../services/KubeClient.ts"
import { SignerConfig } from "../services/SignerConfig.ts"
import { x509 } from "../x509.ts"

export const GENERATE_NAME = "csi-driver-spiffe-signer-"
export const subjectFor = (trustDomain: string): string => `CN=csi-driver-spiffe signer ${trustDomain}`

/**
 * How long one attempt waits for approval and issuance before it gives up, deletes its request and
 * starts again: the approver and cert-manager answer in seconds; two minutes covers a slow leader
 * change of either, and two attempts still fit in the 5-minute bound of waiting leaves.
 */
export const ATTEMPT_TIMEOUT = Duration.minutes(2)

const EC_P256 = { name: "ECDSA", namedCurve: "P-256" } as const
const SIGN_ALG = { name: "ECDSA", hash: "SHA-256" } as const

const pemBlocks = (pem: string): ReadonlyArray<string> =>
  pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []

const cryptoError = (detail: string) => (cause: unknown) =>
  new IntermediateError({ reason: "Crypto", detail: `${detail}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })
const apiError = (what: string) => (e: KubeError) => new IntermediateError({ reason: "Api", detail: `${what}: ${e.message}`, cause: e })

/** The name constraint of the intermediate: one permitted URI subtree, the trust domain. */
export const nameConstraintsExtension = (trustDomain: string): x509.Extension =>
  new x509.Extension(
    "2.5.29.30",
    true,
    AsnConvert.serialize(
      new NameConstraints({
        permittedSubtrees: new GeneralSubtrees([new GeneralSubtree({ base: new GeneralName({ uniformResourceIdentifier: trustDomain }) })])
      })
    )
  )

/** A fresh key and the PEM CSR for it. */
export const createRequest = (trustDomain: string) =>
  Effect.tryPromise({
    try: async () => {
      const keys = (await globalThis.crypto.subtle.generateKey(EC_P256, false, ["sign", "verify"])) as webcrypto.CryptoKeyPair
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        name: subjectFor(trustDomain),
        keys,
        signingAlgorithm: SIGN_ALG,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          nameConstraintsExtension(trustDomain)
        ]
      })
      const spki = Buffer.from(await globalThis.crypto.subtle.exportKey("spki", keys.publicKey)).toString("hex")
      return { keys, csrPem: csr.toString("pem"), spkiHex: spki }
    },
    catch: cryptoError("generating the intermediate key and request")
  })

/** The CA in the issued chain, checked: our key, a CA, valid now; the rest of the chain split off. */
export const readIssued = (
  issued: { readonly certificate: string; readonly ca: string | undefined },
  key: { readonly keys: webcrypto.CryptoKeyPair; readonly spkiHex: string },
  requestName: string,
  now: number
) =>
  Effect.gen(function*() {
    const blocks = pemBlocks(issued.certificate)
    const bad = (detail: string) => new IntermediateError({ reason: "BadCertificate", detail: `${requestName}: ${detail}` })
    if (blocks.length === 0) return yield* bad("status.certificate holds no certificate")
    const cert = yield* Effect.try({ try: () => new x509.X509Certificate(blocks[0]!), catch: () => bad("the certificate does not parse") })
    const spki = Buffer.from(cert.publicKey.rawData).toString("hex")
    if (spki !== key.spkiHex) return yield* bad("the certificate is not for our key")
    const bc = cert.getExtension(x509.BasicConstraintsExtension)
    if (bc === null || !bc.ca) return yield* bad("the certificate is not a CA (basicConstraints CA:TRUE missing)")
    if (cert.notAfter.getTime() <= now) return yield* bad("the certificate has already expired")
    const upper = blocks.slice(1).filter((b) => {
      const c = new x509.X509Certificate(b)
      return c.subject !== c.issuer
    })
    const roots = issued.ca === undefined ? [] : pemBlocks(issued.ca)
    const ca: IntermediateCA = {
      certificatePem: blocks[0]!,
      upperChainPem: upper,
      rootsPem: roots,
      notBefore: cert.notBefore.getTime(),
      notAfter: cert.notAfter.getTime(),
      signingKey: Redacted.make<unknown>(key.keys.privateKey, { label: "IntermediateKey" }),
      requestName
    }
    return ca
  })

export const layer: Layer.Layer<Intermediate, never, KubeClient | SignerConfig> = Layer.effect(
  Intermediate,
  Effect.gen(function*() {
    const kube = yield* KubeClient
    const config = yield* SignerConfig
    const ref = yield* SubscriptionRef.make<IntermediateCA | undefined>(undefined)
    const ns = config.certificateNamespace

    /** Watches one request until it is issued, denied or failed. */
    const outcome = (name: string, from: string) =>
      Effect.gen(function*() {
        let resourceVersion = from
        while (true) {
          const current = yield* kube.get(CertificateRequests, ns, name).pipe(Effect.mapError(apiError(`reading ${name}`)))
          if (current === undefined) {
            return yield* new IntermediateError({ reason: "Failed", detail: `${name} was deleted before it was issued` })
          }
          const phase = CR.phase(current)
          if (phase._tag !== "Pending") return phase
          resourceVersion = current.metadata.resourceVersion ?? resourceVersion
          // Until the watch shows a decided request, or closes (then read again and resume).
          yield* kube.watch(CertificateRequests, { namespace: ns, fieldSelector: `metadata.name=${name}`, resourceVersion }).pipe(
            Stream.filter((e) => e.type !== "BOOKMARK" && (e.type === "DELETED" || CR.phase(e.object)._tag !== "Pending")),
            Stream.runHead,
            Effect.mapError(apiError(`watching ${name}`))
          )
        }
      })

    const obtain = Effect.gen(function*() {
      const key = yield* createRequest(config.trustDomain)
      const created = yield* kube.create(CertificateRequests, ns, {
        apiVersion: CR.API_VERSION,
        kind: "CertificateRequest",
        metadata: { generateName: GENERATE_NAME, namespace: ns, annotations: { [CR.INTERMEDIATE_ANNOTATION]: config.trustDomain } },
        spec: {
          request: Buffer.from(key.csrPem).toString("base64"),
          isCA: true,
          duration: CR.formatGoDuration(config.intermediateMillis),
          usages: [...CR.INTERMEDIATE_USAGES],
          issuerRef: config.issuer
        }
      }).pipe(Effect.mapError(apiError("creating the intermediate CertificateRequest")))
      const name = created.metadata.name
      yield* Effect.logInfo("intermediate CA requested", { certificateRequest: `${ns}/${name}` })
      const phase = yield* outcome(name, created.metadata.resourceVersion ?? "0").pipe(
        Effect.timeoutOrElse({
          duration: ATTEMPT_TIMEOUT,
          orElse: () => Effect.fail(new IntermediateError({ reason: "Timeout", detail: `${name} was not issued within ${Duration.format(ATTEMPT_TIMEOUT)}` }))
        }),
        Effect.tapError(() => Effect.ignore(kube.delete(CertificateRequests, ns, name)))
      )
      if (phase._tag === "Denied") return yield* new IntermediateError({ reason: "Denied", detail: `${name} was denied: ${phase.message}` })
      if (phase._tag === "Failed") return yield* new IntermediateError({ reason: "Failed", detail: `${name} failed: ${phase.message}` })
      if (phase._tag !== "Issued") return yield* new IntermediateError({ reason: "Failed", detail: `${name}: unexpected state` })
      return yield* readIssued(phase, key, name, yield* Clock.currentTimeMillis)
    })

    /**
     * Every other intermediate request of this trust domain goes once a new CA is in force: the
     * predecessor, and those a previous process left (a restart requests a new CA, its key being gone).
     */
    const deleteOthers = (keep: string) =>
      kube.list(CertificateRequests, { namespace: ns }).pipe(
        Effect.flatMap(({ items }) =>
          Effect.forEach(
            items.filter((cr) => cr.metadata.name !== keep && cr.metadata.annotations?.[CR.INTERMEDIATE_ANNOTATION] === config.trustDomain),
            (cr) => kube.delete(CertificateRequests, ns, cr.metadata.name),
            { discard: true }
          )),
        Effect.catch((e) => Effect.logWarning("old intermediate CertificateRequests not deleted", { err: e.message }))
      )

    const obtainWithRetry = obtain.pipe(
      Effect.tapError((e) => Effect.logWarning("intermediate CA not obtained; retrying", { err: e.message })),
      Effect.retry(Schedules.intermediateRetry)
    )

    /** One CA's term: obtain it (retrying), put it in force, and wait until it is due for renewal. */
    const term = Effect.gen(function*() {
      const ca = yield* Effect.orDie(obtainWithRetry)
      yield* SubscriptionRef.set(ref, ca)
      yield* deleteOthers(ca.requestName)
      const renewAt = intermediateRenewAt(ca.notBefore, ca.notAfter, config.maxLeafMillis)
      yield* Effect.logInfo("intermediate CA in force", {
        certificateRequest: `${ns}/${ca.requestName}`,
        notAfter: iso(ca.notAfter),
        renewAt: iso(renewAt)
      })
      yield* Effect.sleep(Duration.millis(Math.max(0, renewAt - (yield* Clock.currentTimeMillis))))
    })

    const run: Effect.Effect<never> = term.pipe(Effect.forever, Effect.ensuring(SubscriptionRef.set(ref, undefined)))

    return Intermediate.of({ run, current: SubscriptionRef.get(ref), changes: SubscriptionRef.changes(ref) })
  })
)

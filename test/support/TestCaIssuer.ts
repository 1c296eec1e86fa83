/**
 * A test stand-in for cert-manager's CA issuer plus the approver, for the signer's intermediate
 * requests on the memory KubeClient: it answers CertificateRequests carrying the intermediate
 * annotation by signing them as a CA, the way cert-manager v1.21.2's CA issuer does
 * (pkg/util/pki/certificatetemplate.go): nameConstraints copied from the CSR, basicConstraints
 * CA:TRUE without a path length, validity from Effect's Clock (TestClock drives it), status.ca the root.
 * Modes: Sign, Deny, or Hold (leave pending). Unit and integration tests only.
 */
import { Clock, Context, Effect, Layer, Ref, Stream, SubscriptionRef } from "effect"
import * as CR from "../../src/domain/CertificateRequest.ts"
import { CertificateRequests } from "../../src/domain/KubeObjects.ts"
import { INTERMEDIATE_ANNOTATION } from "../../src/domain/CertificateRequest.ts"
import { KubeClientMemory } from "../../src/layers/KubeClient.ts"
import { x509 } from "../../src/x509.ts"
import type { TestCa } from "./TestSigner.ts"
import { makeTestCa } from "./TestSigner.ts"

export type CaIssuerMode = { readonly _tag: "Sign" } | { readonly _tag: "Deny"; readonly message: string } | { readonly _tag: "Hold" }

export interface TestCaIssuerShape {
  readonly root: TestCa
  readonly setMode: (mode: CaIssuerMode) => Effect.Effect<void>
  /** Intermediates signed so far. */
  readonly signed: Effect.Effect<number>
  /** Completes once at least `count` intermediates have been signed (a signal, never a poll). */
  readonly awaitSigned: (count: number) => Effect.Effect<void>
}

export class TestCaIssuer extends Context.Service<TestCaIssuer, TestCaIssuerShape>()("test/support/TestCaIssuer") {}

const SIGN = { name: "ECDSA", hash: "SHA-256" } as const
const at = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z")
const condition = (type: string, status: string, reason: string, message: string, now: number) =>
  ({ type, status, reason, message, lastTransitionTime: at(now) })

export const signIntermediate = (root: TestCa, csrPem: string, durationMillis: number) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    return yield* Effect.promise(async () => {
      const csr = new x509.Pkcs10CertificateRequest(csrPem)
      const nc = csr.extensions.find((e) => e.type === "2.5.29.30")
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: "01" + Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(8))).toString("hex"),
        subject: csr.subject,
        issuer: root.cert.subject,
        notBefore: new Date(Math.floor(now / 1000) * 1000),
        notAfter: new Date(Math.floor(now / 1000) * 1000 + durationMillis),
        signingAlgorithm: SIGN,
        publicKey: await csr.publicKey.export(),
        signingKey: root.keys.privateKey,
        extensions: [
          new x509.BasicConstraintsExtension(true, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(await csr.publicKey.export()),
          ...(nc === undefined ? [] : [new x509.Extension(nc.type, nc.critical, nc.value)])
        ]
      })
      return cert.toString("pem")
    })
  })

export const layer = Layer.effect(
  TestCaIssuer,
  Effect.gen(function*() {
    const kube = yield* KubeClientMemory
    const root = yield* makeTestCa("csi-driver-spiffe-test-root")
    const mode = yield* Ref.make<CaIssuerMode>({ _tag: "Sign" })
    const signed = yield* SubscriptionRef.make(0)

    const handle = (cr: CR.CertificateRequest) =>
      Effect.gen(function*() {
        if (cr.metadata.annotations?.[INTERMEDIATE_ANNOTATION] === undefined) return
        if (CR.condition(cr, "Ready") !== undefined || CR.condition(cr, "Denied") !== undefined) return
        const m = yield* Ref.get(mode)
        if (m._tag === "Hold") return
        const now = yield* Clock.currentTimeMillis
        const { namespace, name } = cr.metadata
        if (m._tag === "Deny") {
          yield* kube.modify(CertificateRequests, namespace, name, (c) => ({
            ...c,
            status: { conditions: [condition("Denied", "True", CR.APPROVER_REASON, m.message, now)] }
          }))
          return
        }
        const duration = CR.parseGoDuration(cr.spec.duration ?? "1h") ?? 3_600_000
        const pem = yield* signIntermediate(root, Buffer.from(cr.spec.request, "base64").toString("utf8"), duration)
        yield* kube.modify(CertificateRequests, namespace, name, (c) => ({
          ...c,
          status: {
            conditions: [
              condition("Approved", "True", CR.APPROVER_REASON, "Approved request", now),
              condition("Ready", "True", "Issued", "Certificate fetched from issuer successfully", now)
            ],
            certificate: Buffer.from(pem).toString("base64"),
            ca: Buffer.from(root.certPem).toString("base64")
          }
        }))
        yield* SubscriptionRef.update(signed, (n) => n + 1)
      })

    yield* Effect.gen(function*() {
      const rv = yield* kube.resourceVersion
      for (const cr of yield* kube.all(CertificateRequests)) yield* handle(cr)
      yield* kube.client.watch(CertificateRequests, { resourceVersion: rv }).pipe(
        Stream.runForEach((ev) => (ev.type === "ADDED" || ev.type === "MODIFIED" ? handle(ev.object) : Effect.void))
      )
    }).pipe(Effect.forever, Effect.orDie, Effect.forkScoped)

    return TestCaIssuer.of({
      root,
      setMode: (m) => Ref.set(mode, m),
      signed: SubscriptionRef.get(signed),
      awaitSigned: (count) => SubscriptionRef.changes(signed).pipe(Stream.takeUntil((n) => n >= count), Stream.runDrain)
    })
  })
)

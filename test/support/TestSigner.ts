/**
 * A test stand-in for cert-manager plus an approver on the memory KubeClient: it watches
 * CertificateRequests and, depending on its mode, approves and signs them with a test CA (validity
 * from Effect's Clock, so TestClock controls it), denies them, fails them, or leaves them pending.
 * Unit and integration tests only; the end-to-end suites run the real cert-manager.
 */
import { Clock, Context, Effect, Layer, Ref, Stream, SubscriptionRef } from "effect"
import type { webcrypto } from "node:crypto"
import { x509 } from "../../src/x509.ts"
import * as CR from "../../src/domain/CertificateRequest.ts"
import { CertificateRequests } from "../../src/domain/KubeObjects.ts"
import { KubeClientMemory } from "../../src/layers/KubeClient.ts"

export interface TestCa {
  readonly certPem: string
  readonly keys: webcrypto.CryptoKeyPair
  readonly cert: x509.X509Certificate
}

const EC = { name: "ECDSA", namedCurve: "P-256" } as const
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const

export const makeTestCa = (name = "csi-driver-spiffe-test-ca") =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    return yield* Effect.promise(async (): Promise<TestCa> => {
      const keys = (await globalThis.crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair
      const cert = await x509.X509CertificateGenerator.createSelfSigned({
        name: `CN=${name}`,
        keys,
        signingAlgorithm: SIGN,
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + 10 * 365 * 86_400_000),
        extensions: [
          new x509.BasicConstraintsExtension(true, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)
        ]
      })
      return { certPem: cert.toString("pem"), keys, cert }
    })
  })

export interface SignOverrides {
  /** Put these URIs in the leaf instead of the CSR's. */
  readonly uris?: ReadonlyArray<string>
  /** Sign a different public key than the CSR's. */
  readonly otherKey?: boolean
  readonly isCA?: boolean
}

/** Signs a CSR as a CA issuer would: SANs from the CSR, the four usages, validity from Clock. */
export const signCsr = (ca: TestCa, csrPem: string, durationMillis: number, overrides: SignOverrides = {}) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    return yield* Effect.promise(async () => {
      const csr = new x509.Pkcs10CertificateRequest(csrPem)
      const san = csr.getExtension("2.5.29.17") as x509.SubjectAlternativeNameExtension | null
      const uris = overrides.uris ?? (san === null ? [] : new x509.SubjectAlternativeNameExtension(san.rawData).names.items.filter((n) => n.type === "url").map((n) => n.value))
      const publicKey = overrides.otherKey === true
        ? ((await globalThis.crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair).publicKey
        : await csr.publicKey.export()
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(12))).toString("hex").replace(/^[89a-f]/, "1"),
        subject: "",
        issuer: ca.cert.subject,
        notBefore: new Date(now),
        notAfter: new Date(now + durationMillis),
        signingAlgorithm: SIGN,
        publicKey,
        signingKey: ca.keys.privateKey,
        extensions: [
          new x509.SubjectAlternativeNameExtension(uris.map((value) => ({ type: "url" as const, value })), true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
          new x509.BasicConstraintsExtension(overrides.isCA === true, undefined, true)
        ]
      })
      return leaf.toString("pem")
    })
  })

export type SignerMode =
  | { readonly _tag: "Sign"; readonly overrides?: SignOverrides }
  | { readonly _tag: "Deny"; readonly message: string }
  | { readonly _tag: "Fail"; readonly message: string }
  | { readonly _tag: "Hold" }

export interface TestSignerShape {
  readonly ca: TestCa
  readonly setMode: (mode: SignerMode) => Effect.Effect<void>
  /** Requests signed so far. */
  readonly signed: Effect.Effect<number>
  /** Completes once at least `count` requests have been signed (a signal, never a poll). */
  readonly awaitSigned: (count: number) => Effect.Effect<void>
  /** Signs every pending request now (after a Hold). */
  readonly release: Effect.Effect<void>
}

export class TestSigner extends Context.Service<TestSigner, TestSignerShape>()("test/support/TestSigner") {}

const condition = (type: string, status: string, reason: string, message: string, at: number) => ({
  type,
  status,
  reason,
  message,
  lastTransitionTime: new Date(at).toISOString().replace(/\.\d{3}Z$/, "Z")
})

export const layer = Layer.effect(
  TestSigner,
  Effect.gen(function*() {
    const kube = yield* KubeClientMemory
    const ca = yield* makeTestCa()
    const mode = yield* Ref.make<SignerMode>({ _tag: "Sign" })
    const signed = yield* SubscriptionRef.make(0)

    const handle = (cr: CR.CertificateRequest) =>
      Effect.gen(function*() {
        if (CR.condition(cr, "Ready") !== undefined || CR.condition(cr, "Denied") !== undefined) return
        const m = yield* Ref.get(mode)
        if (m._tag === "Hold") return
        const now = yield* Clock.currentTimeMillis
        const ns = cr.metadata.namespace
        const name = cr.metadata.name
        if (m._tag === "Deny") {
          yield* kube.modify(CertificateRequests, ns, name, (c) => ({
            ...c,
            status: { ...c.status, conditions: [condition("Denied", "True", CR.APPROVER_REASON, m.message, now)] }
          }))
          return
        }
        const approved = condition("Approved", "True", CR.APPROVER_REASON, "Approved request", now)
        if (m._tag === "Fail") {
          yield* kube.modify(CertificateRequests, ns, name, (c) => ({
            ...c,
            status: { ...c.status, conditions: [approved, condition("Ready", "False", "Failed", m.message, now)] }
          }))
          return
        }
        const duration = CR.parseGoDuration(cr.spec.duration ?? "1h") ?? 3_600_000
        const pem = yield* signCsr(ca, Buffer.from(cr.spec.request, "base64").toString("utf8"), duration, m.overrides)
        yield* kube.modify(CertificateRequests, ns, name, (c) => ({
          ...c,
          status: {
            ...c.status,
            conditions: [approved, condition("Ready", "True", "Issued", "Certificate fetched from issuer successfully", now)],
            certificate: Buffer.from(pem).toString("base64"),
            ca: Buffer.from(ca.certPem).toString("base64")
          }
        }))
        yield* SubscriptionRef.update(signed, (n) => n + 1)
      })

    const pass = Effect.gen(function*() {
      for (const cr of yield* kube.all(CertificateRequests)) yield* handle(cr)
    })

    yield* Effect.gen(function*() {
      const rv = yield* kube.resourceVersion
      yield* pass
      yield* kube.client.watch(CertificateRequests, { resourceVersion: rv }).pipe(
        Stream.runForEach((ev) => (ev.type === "ADDED" || ev.type === "MODIFIED" ? handle(ev.object) : Effect.void))
      )
    }).pipe(Effect.forever, Effect.orDie, Effect.forkScoped)

    return TestSigner.of({
      ca,
      setMode: (m) => Ref.set(mode, m),
      signed: SubscriptionRef.get(signed),
      awaitSigned: (count) => SubscriptionRef.changes(signed).pipe(Stream.takeUntil((n) => n >= count), Stream.runDrain),
      release: Ref.set(mode, { _tag: "Sign" }).pipe(Effect.andThen(pass), Effect.orDie)
    })
  })
)

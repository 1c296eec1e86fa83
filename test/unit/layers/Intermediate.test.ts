/**
 * The intermediate CA on the memory KubeClient with a test CA issuer: the request's exact shape
 * (the approver's intermediate rule checks every part), the certificate checks, rotation timing
 * under TestClock (renewed at `intermediateRenewAt`, not before; the previous request deleted),
 * and retries after a denial on `Schedules.intermediateRetry`.
 */
import { AsnConvert } from "@peculiar/asn1-schema"
import { NameConstraints } from "@peculiar/asn1-x509"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Redacted, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as CR from "../../../src/domain/CertificateRequest.ts"
import { CertificateRequests } from "../../../src/domain/KubeObjects.ts"
import { intermediateRenewAt } from "../../../src/domain/PodCertificate.ts"
import * as IntermediateLayers from "../../../src/layers/Intermediate.ts"
import { KubeClientMemory, layerMemory } from "../../../src/layers/KubeClient.ts"
import { Intermediate } from "../../../src/services/Intermediate.ts"
import * as SignerConfig from "../../../src/services/SignerConfig.ts"
import { x509 } from "../../../src/x509.ts"
import * as TestCaIssuer from "../../support/TestCaIssuer.ts"
import { settle } from "../../support/clock.ts"

const HOUR = 3_600_000
const config = { trustDomain: "example.org", certificateNamespace: "signer-ns", intermediateMillis: 6 * HOUR, maxLeafMillis: HOUR }

const world = Layer.mergeAll(
  IntermediateLayers.layer.pipe(Layer.provide(SignerConfig.layer(config))),
  TestCaIssuer.layer
).pipe(Layer.provideMerge(layerMemory))

/** The first CA in force: waits on the service's change stream (a signal, not a poll). */
const awaitCurrent = Effect.gen(function*() {
  const intermediate = yield* Intermediate
  const ca = yield* intermediate.changes.pipe(Stream.filter((c) => c !== undefined), Stream.runHead)
  return Option.getOrThrow(ca)!
})

describe("Intermediate", () => {
  it.effect("requests exactly the CA the approver's rule expects", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      const intermediate = yield* Intermediate
      const issuer = yield* TestCaIssuer.TestCaIssuer
      yield* issuer.setMode({ _tag: "Hold" })
      yield* Effect.forkScoped(intermediate.run)
      const [created] = yield* kube.awaitCreations(1)
      assert.strictEqual(created!.namespace, "signer-ns")
      assert.match(created!.name, /^csi-driver-spiffe-signer-[0-9a-z]{5}$/)
      const cr = (yield* kube.client.get(CertificateRequests, "signer-ns", created!.name))!
      assert.deepStrictEqual(cr.metadata.annotations, { [CR.INTERMEDIATE_ANNOTATION]: "example.org" })
      assert.strictEqual(cr.spec.isCA, true)
      assert.strictEqual(cr.spec.duration, "6h0m0s")
      assert.deepStrictEqual(cr.spec.usages, ["digital signature", "cert sign", "crl sign"])
      assert.deepStrictEqual(cr.spec.issuerRef, SignerConfig.defaults.issuer)
      const csr = new x509.Pkcs10CertificateRequest(Buffer.from(cr.spec.request, "base64").toString("utf8"))
      assert.strictEqual(csr.subject, "CN=csi-driver-spiffe signer example.org")
      assert.isTrue(yield* Effect.promise(() => csr.verify()))
      const alg = csr.publicKey.algorithm as { namedCurve?: string }
      assert.strictEqual(alg.namedCurve, "P-256")
      const ext = (oid: string) => csr.extensions.find((e) => e.type === oid)
      const bc = new x509.BasicConstraintsExtension(ext("2.5.29.19")!.rawData)
      assert.deepStrictEqual([bc.ca, bc.pathLength, bc.critical], [true, 0, true])
      const ku = new x509.KeyUsagesExtension(ext("2.5.29.15")!.rawData)
      assert.strictEqual(ku.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)
      assert.isTrue(ku.critical)
      const nc = ext("2.5.29.30")!
      assert.isTrue(nc.critical)
      const constraints = AsnConvert.parse(nc.value, NameConstraints)
      assert.isUndefined(constraints.excludedSubtrees)
      assert.deepStrictEqual(constraints.permittedSubtrees!.map((t) => t.base.uniformResourceIdentifier), ["example.org"])
      assert.isUndefined(ext("2.5.29.17"))
      assert.strictEqual(csr.extensions.length, 3)
    }).pipe(Effect.provide(world)))

  it.effect("holds the issued CA with its key redacted, and renews it at intermediateRenewAt, not before", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      const intermediate = yield* Intermediate
      // A request a previous process left behind (its key died with it), and another trust domain's;
      // both already answered, so the test issuer leaves them alone.
      const stale = { spec: { request: "", issuerRef: { name: "x" } }, status: { conditions: [{ type: "Ready", status: "True" }] } }
      yield* kube.upsert(CertificateRequests, { ...stale, metadata: { name: "left-over", namespace: "signer-ns", annotations: { [CR.INTERMEDIATE_ANNOTATION]: "example.org" } } })
      yield* kube.upsert(CertificateRequests, { ...stale, metadata: { name: "other-td", namespace: "signer-ns", annotations: { [CR.INTERMEDIATE_ANNOTATION]: "other.org" } } })
      yield* Effect.forkScoped(intermediate.run)
      const first = yield* awaitCurrent
      yield* kube.until(Effect.map(kube.client.get(CertificateRequests, "signer-ns", "left-over"), (cr) => cr === undefined).pipe(Effect.orDie))
      assert.isDefined(yield* kube.client.get(CertificateRequests, "signer-ns", "other-td"))
      assert.strictEqual(first.notAfter - first.notBefore, 6 * HOUR)
      assert.strictEqual(first.rootsPem.length, 1)
      assert.strictEqual(String(first.signingKey), "<redacted:IntermediateKey>")
      assert.notInclude(JSON.stringify(first), "PRIVATE")
      // 6 h intermediate, 1 h leaves, margin 1 h: renewed 2 h before its end.
      const renewAt = intermediateRenewAt(first.notBefore, first.notAfter, HOUR)
      assert.strictEqual(first.notAfter - renewAt, 2 * HOUR)
      yield* TestClock.adjust(renewAt - first.notBefore - 1000)
      yield* settle()
      assert.strictEqual((yield* kube.creations).length, 1)
      yield* TestClock.adjust(2000)
      yield* kube.awaitCreations(2)
      yield* kube.until(Effect.map(intermediate.current, (ca) => ca !== undefined && ca.requestName !== first.requestName))
      // The previous request is deleted once its successor is in force.
      yield* kube.until(Effect.map(kube.client.get(CertificateRequests, "signer-ns", first.requestName), (cr) => cr === undefined).pipe(Effect.orDie))
      const second = (yield* intermediate.current)!
      assert.isAbove(second.notAfter, first.notAfter)
      assert.notStrictEqual(Redacted.value(second.signingKey), Redacted.value(first.signingKey))
    }).pipe(Effect.provide(world)))

  it.effect("retries after a denial on intermediateRetry: the next request 1 s later", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      const intermediate = yield* Intermediate
      const issuer = yield* TestCaIssuer.TestCaIssuer
      yield* issuer.setMode({ _tag: "Deny", message: "no" })
      const fiber = yield* Effect.forkScoped(intermediate.run)
      const [first] = yield* kube.awaitCreations(1)
      yield* kube.until(Effect.map(kube.client.get(CertificateRequests, "signer-ns", first!.name), (cr) => cr !== undefined && CR.phase(cr)._tag === "Denied").pipe(Effect.orDie))
      yield* settle()
      assert.strictEqual((yield* kube.creations).length, 1)
      yield* issuer.setMode({ _tag: "Sign" })
      yield* TestClock.adjust(1000)
      yield* kube.awaitCreations(2)
      const ca = yield* awaitCurrent
      assert.notStrictEqual(ca.requestName, first!.name)
      assert.isUndefined(fiber.pollUnsafe())
      yield* Fiber.interrupt(fiber)
      assert.isUndefined(yield* intermediate.current)
    }).pipe(Effect.provide(world)))
})

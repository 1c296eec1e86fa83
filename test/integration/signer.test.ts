/**
 * The PodCertificateRequest signer against the memory API server: the intermediate from a test CA
 * issuer, leaves for P-256 and RSA stub CSRs whose chain verifies to the ClusterTrustBundle's root
 * with the right URI SAN and status times, denials for Ed25519 keys and user annotations, requests
 * for other signers left alone, and the Failed answer once a request waited FAIL_AFTER without an
 * intermediate.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Layer, Stream, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import type { webcrypto } from "node:crypto"
import { ClusterTrustBundles, Events, PodCertificateRequests } from "../../src/domain/KubeObjects.ts"
import * as PC from "../../src/domain/PodCertificate.ts"
import * as EventRecorderLayers from "../../src/layers/EventRecorder.ts"
import * as IntermediateLayers from "../../src/layers/Intermediate.ts"
import { KubeClientMemory, layerMemory } from "../../src/layers/KubeClient.ts"
import { layerAlwaysLeader } from "../../src/layers/LeaderElection.ts"
import { KubeClient } from "../../src/services/KubeClient.ts"
import * as SignerConfig from "../../src/services/SignerConfig.ts"
import * as Controller from "../../src/signer/Controller.ts"
import { x509 } from "../../src/x509.ts"
import * as TestCaIssuer from "../support/TestCaIssuer.ts"
import { settle } from "../support/clock.ts"

const HOUR = 3_600_000
const config = { trustDomain: "example.org", certificateNamespace: "signer-ns", intermediateMillis: 48 * HOUR, maxLeafMillis: 24 * HOUR }

const world = Layer.mergeAll(
  IntermediateLayers.layer.pipe(Layer.provide(SignerConfig.layer(config))),
  SignerConfig.layer(config),
  TestCaIssuer.layer,
  EventRecorderLayers.layer("csi-driver-spiffe-signer"),
  layerAlwaysLeader
).pipe(Layer.provideMerge(layerMemory))

const start = Effect.map(Layer.build(Controller.layer), (ctx) => Context.get(ctx, Controller.SignerController))

type KeyKind = "P-256" | "RSA-3072" | "Ed25519"
const stubCsr = (kind: KeyKind) =>
  Effect.promise(async () => {
    const alg = kind === "P-256"
      ? { gen: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" } }
      : kind === "RSA-3072"
      ? { gen: { name: "RSASSA-PKCS1-v1_5", modulusLength: 3072, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, sign: { name: "RSASSA-PKCS1-v1_5" } }
      : { gen: { name: "Ed25519" }, sign: { name: "Ed25519" } }
    const keys = (await globalThis.crypto.subtle.generateKey(alg.gen, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: alg.sign })
    return { base64: Buffer.from(csr.rawData).toString("base64"), spki: Buffer.from(await globalThis.crypto.subtle.exportKey("spki", keys.publicKey)).toString("hex") }
  })

const createPcr = (name: string, stub: string, over: Partial<PC.PodCertificateRequest["spec"]> = {}) =>
  Effect.gen(function*() {
    const kube = yield* KubeClientMemory
    return yield* kube.client.create(PodCertificateRequests, "team-a", {
      metadata: { name, namespace: "team-a" },
      spec: {
        signerName: PC.DEFAULT_SIGNER_NAME,
        podName: `${name}-pod`,
        podUID: "pod-uid",
        serviceAccountName: "web",
        serviceAccountUID: "sa-uid",
        nodeName: "node-1",
        nodeUID: "node-uid",
        maxExpirationSeconds: 3600,
        stubPKCS10Request: stub,
        ...over
      }
    })
  })

const answered = (name: string) =>
  Effect.gen(function*() {
    const kube = yield* KubeClientMemory
    yield* kube.until(Effect.map(kube.client.get(PodCertificateRequests, "team-a", name), (p) => p !== undefined && PC.terminal(p) !== undefined).pipe(Effect.orDie))
    return (yield* kube.client.get(PodCertificateRequests, "team-a", name))!
  })

const certs = (pem: string) => (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((b) => new x509.X509Certificate(b))

describe("signer", () => {
  it.effect("issues P-256 and RSA-3072 leaves that chain to the ClusterTrustBundle's root", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      yield* start
      for (const kind of ["P-256", "RSA-3072"] as const) {
        const stub = yield* stubCsr(kind)
        const name = `req-${kind.toLowerCase()}`
        yield* createPcr(name, stub.base64)
        const pcr = yield* answered(name)
        assert.strictEqual(PC.terminal(pcr), PC.ISSUED, kind)
        const [leaf, intermediate, ...rest] = certs(pcr.status!.certificateChain!)
        assert.strictEqual(rest.length, 0, "no root in the chain")
        assert.strictEqual(Buffer.from(leaf!.publicKey.rawData).toString("hex"), stub.spki)
        const san = leaf!.getExtension(x509.SubjectAlternativeNameExtension)!
        assert.deepStrictEqual(san.names.items.map((n) => [n.type, n.value]), [["url", "spiffe://example.org/ns/team-a/sa/web"]])
        assert.isTrue(san.critical)
        assert.isFalse(leaf!.getExtension(x509.BasicConstraintsExtension)!.ca)
        assert.strictEqual(leaf!.notAfter.getTime() - leaf!.notBefore.getTime(), HOUR)
        assert.strictEqual(Date.parse(pcr.status!.notBefore!), leaf!.notBefore.getTime())
        assert.strictEqual(Date.parse(pcr.status!.notAfter!), leaf!.notAfter.getTime())
        assert.strictEqual(Date.parse(pcr.status!.beginRefreshAt!) - leaf!.notBefore.getTime(), 40 * 60_000)
        assert.isTrue(yield* Effect.promise(() => leaf!.verify({ publicKey: intermediate!.publicKey, signatureOnly: true })))
        const [bundle] = yield* kube.all(ClusterTrustBundles)
        assert.strictEqual(bundle!.metadata.name, "spiffe.csi.cert-manager.io:svid:bundle")
        assert.strictEqual(bundle!.spec.signerName, PC.DEFAULT_SIGNER_NAME)
        assert.strictEqual(bundle!.metadata.labels?.[PC.TRUST_DOMAIN_LABEL], "example.org")
        const [root] = certs(bundle!.spec.trustBundle)
        assert.isTrue(yield* Effect.promise(() => intermediate!.verify({ publicKey: root!.publicKey, signatureOnly: true })))
        assert.strictEqual(leaf!.issuer, intermediate!.subject)
      }
    }).pipe(Effect.provide(world)))

  it.effect("denies Ed25519 with UnsupportedKeyType and user annotations with InvalidUnverifiedUserAnnotations; ignores other signers", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      const controller = yield* start
      const p256 = yield* stubCsr("P-256")
      yield* createPcr("other", p256.base64, { signerName: "example.com/other" })
      yield* createPcr("ed", (yield* stubCsr("Ed25519")).base64)
      yield* createPcr("annotated", p256.base64, { unverifiedUserAnnotations: { "example.com/team": "a" } })
      const ed = yield* answered("ed")
      const annotated = yield* answered("annotated")
      const cond = (p: PC.PodCertificateRequest) => p.status!.conditions!.map((c) => [c.type, c.reason])
      assert.deepStrictEqual(cond(ed), [[PC.DENIED, PC.UNSUPPORTED_KEY_TYPE]])
      assert.include(ed.status!.conditions![0]!.message!, "ED25519")
      assert.isUndefined(ed.status!.certificateChain)
      assert.deepStrictEqual(cond(annotated), [[PC.DENIED, PC.INVALID_USER_ANNOTATIONS]])
      yield* controller.drain
      const warnings = (yield* kube.all(Events)).map((e) => [e.involvedObject.kind, e.involvedObject.name, e.type, e.reason])
      assert.sameDeepMembers(warnings, [["Pod", "ed-pod", "Warning", PC.UNSUPPORTED_KEY_TYPE], ["Pod", "annotated-pod", "Warning", PC.INVALID_USER_ANNOTATIONS]])
      yield* controller.drain
      assert.isUndefined((yield* kube.client.get(PodCertificateRequests, "team-a", "other"))!.status)
    }).pipe(Effect.provide(world)))

  it.effect("a status write that conflicts is redone on a fresh read after conflictRetry's delay; one that fails is retried on podCertificateRetry", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      // Status writes that have returned, refused or not. A refused write is counted when it returns,
      // and the reconcile registers its retry's sleep before it next yields, so once the count is in,
      // the clock can be moved by the retry's delay (the signature before each write runs on the
      // event loop, which a TestClock cannot drive).
      const writes = yield* SubscriptionRef.make(0)
      const written = (n: number) => SubscriptionRef.changes(writes).pipe(Stream.filter((w) => w >= n), Stream.take(1), Stream.runDrain)
      const counting = KubeClient.of({
        ...kube.client,
        replaceStatus: (resource, namespace, name, body) =>
          kube.client.replaceStatus(resource, namespace, name, body).pipe(Effect.ensuring(SubscriptionRef.update(writes, (n) => n + 1)))
      })
      const controller = yield* start.pipe(Effect.provideService(KubeClient, counting))
      yield* kube.until(Effect.map(kube.all(ClusterTrustBundles), (b) => b.length === 1).pipe(Effect.orDie))
      yield* kube.failNext("replaceStatus", "Conflict", 2)
      yield* createPcr("conflicted", (yield* stubCsr("P-256")).base64)
      yield* written(1)
      // Not redone at once: the second write waits for conflictRetry's first delay (10 ms), the third for its second (20 ms).
      yield* settle()
      assert.strictEqual(yield* SubscriptionRef.get(writes), 1)
      yield* TestClock.adjust("10 millis")
      yield* written(2)
      yield* TestClock.adjust("20 millis")
      assert.strictEqual(PC.terminal(yield* answered("conflicted")), PC.ISSUED)
      yield* written(3)
      assert.strictEqual(yield* SubscriptionRef.get(writes), 3)
      yield* kube.failNext("replaceStatus", "Unavailable", 1)
      yield* createPcr("unavailable", (yield* stubCsr("P-256")).base64)
      // The failed write is behind us once the key's retry waits on the clock with nothing in hand.
      yield* controller.awaitQueue((queue) => queue.active === 0 && queue.delayed === 1)
      assert.isUndefined((yield* kube.client.get(PodCertificateRequests, "team-a", "unavailable"))!.status)
      // podCertificateRetry's first delay; the retry's sleep is registered, so one step fires it.
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(PC.terminal(yield* answered("unavailable")), PC.ISSUED)
    }).pipe(Effect.provide(world)))

  it.effect("fails a request with IntermediateUnavailable once it waited FAIL_AFTER without an intermediate", () =>
    Effect.gen(function*() {
      const issuer = yield* TestCaIssuer.TestCaIssuer
      const kube = yield* KubeClientMemory
      yield* issuer.setMode({ _tag: "Hold" })
      const controller = yield* start
      yield* createPcr("waiting", (yield* stubCsr("P-256")).base64)
      yield* settle()
      assert.isFalse(yield* controller.ready)
      yield* TestClock.adjust(Duration.toMillis(Controller.FAIL_AFTER) - 1000)
      yield* settle()
      assert.isUndefined((yield* kube.client.get(PodCertificateRequests, "team-a", "waiting"))!.status)
      yield* TestClock.adjust(1000)
      const pcr = yield* answered("waiting")
      assert.deepStrictEqual(pcr.status!.conditions!.map((c) => [c.type, c.reason]), [[PC.FAILED, PC.INTERMEDIATE_UNAVAILABLE]])
    }).pipe(Effect.provide(world)))
})

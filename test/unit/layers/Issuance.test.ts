/**
 * Issuance over the memory API server, on its own: the CertificateRequest one attempt creates (with
 * the pod's token), the outcome it waits for (Ready with a chain, Denied, Failed, deleted), the API
 * refusing the create, and the wait bounded by the issuance timeout. The test signer plays
 * cert-manager and the approver; the tests wait on the memory API server's change feed and on the
 * issuing fiber, and move time only with TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Redacted } from "effect"
import { createPublicKey } from "node:crypto"
import { TestClock } from "effect/testing"
import * as CR from "../../../src/domain/CertificateRequest.ts"
import type { IssuerRef } from "../../../src/domain/IssuerRef.ts"
import { CertificateRequests } from "../../../src/domain/KubeObjects.ts"
import * as CryptoLayers from "../../../src/layers/Crypto.ts"
import * as IssuanceLayers from "../../../src/layers/Issuance.ts"
import * as IssuerConfigLayers from "../../../src/layers/IssuerConfig.ts"
import { KubeClientMemory, layerMemory } from "../../../src/layers/KubeClient.ts"
import type { DriverConfigShape } from "../../../src/services/DriverConfig.ts"
import { DriverConfig } from "../../../src/services/DriverConfig.ts"
import { Issuance } from "../../../src/services/Issuance.ts"
import type { IssueInput } from "../../../src/services/Issuance.ts"
import type { KubeErrorReason } from "../../../src/services/KubeClient.ts"
import { x509 } from "../../../src/x509.ts"
import { settle } from "../../support/clock.ts"
import { testConfig } from "../../support/DriverStack.ts"
import * as TestSigner from "../../support/TestSigner.ts"

const ISSUER: IssuerRef = { name: "runtime-ca", kind: "Issuer", group: "example.io" }
const SPIFFE_ID = "spiffe://foo.bar/ns/sandbox/sa/sleep"
const TOKEN = "pod-token-of-sleep"

const input: IssueInput = {
  volumeId: "csi-0123",
  podName: "sleep-0",
  podUid: "uid-sleep-0",
  namespace: "sandbox",
  spiffeId: SPIFFE_ID,
  token: Redacted.make(TOKEN)
}

/**
 * Issuance over a fresh memory API server with the test signer (holding every request until a case
 * sets its mode) and `ISSUER` in force, which differs from the config's static issuer.
 */
const stack = (overrides: Partial<DriverConfigShape> = {}) => {
  const config = testConfig({ extraCertificateRequestAnnotations: { "example.io/team": "sleepers" }, ...overrides })
  return IssuanceLayers.layer.pipe(
    Layer.provide([DriverConfig.layer(config), CryptoLayers.layer, IssuerConfigLayers.layerStatic(ISSUER)]),
    Layer.provideMerge(TestSigner.layer),
    Layer.provideMerge(layerMemory)
  )
}

const hold = Effect.flatMap(TestSigner.TestSigner, (s) => s.setMode({ _tag: "Hold" }))

/** Starts one attempt and returns it with the request it created (awaited on the change feed). */
const startIssue = Effect.gen(function*() {
  const issuance = yield* Issuance
  const kube = yield* KubeClientMemory
  const before = (yield* kube.creations).length
  const fiber = yield* Effect.forkChild(issuance.issue(input))
  const creations = yield* kube.awaitCreations(before + 1)
  const creation = creations[before]!
  const cr = (yield* kube.all(CertificateRequests)).find((c) => c.metadata.name === creation.name)
  assert.isDefined(cr)
  return { fiber, creation, cr: cr! }
})

const failureOf = <A, E extends { readonly reason: string }>(fiber: Fiber.Fiber<A, E>) =>
  Effect.map(Effect.flip(Fiber.join(fiber)), (e) => e.reason)

/**
 * The attempt's failure reason once TestClock reaches `timeoutMillis`, after checking it is still
 * waiting one millisecond before. `settle` first lets the issuing fiber reach its wait (the signal
 * that woke the test reaches it before the issuing fiber) so the clock step finds the timer set.
 */
const reasonAtTimeout = <A, E extends { readonly reason: string }>(fiber: Fiber.Fiber<A, E>, timeoutMillis: number) =>
  Effect.gen(function*() {
    yield* settle()
    yield* TestClock.adjust(timeoutMillis - 1)
    yield* settle()
    assert.isUndefined(fiber.pollUnsafe())
    yield* TestClock.adjust(1)
    return yield* failureOf(fiber)
  })

describe("Issuance", () => {
  it.effect("creates the CertificateRequest with the identity, the issuer in force, duration, usages, a CSR for the SPIFFE ID, and the pod's token", () =>
    Effect.gen(function*() {
      yield* hold
      const { creation, cr } = yield* startIssue
      assert.strictEqual(creation.resource, "certificaterequests.cert-manager.io")
      assert.strictEqual(creation.namespace, "sandbox")
      assert.isDefined(creation.bearerToken)
      assert.strictEqual(Redacted.value(creation.bearerToken!), TOKEN)

      assert.strictEqual(cr.metadata.annotations?.[CR.IDENTITY_ANNOTATION], SPIFFE_ID)
      assert.strictEqual(cr.metadata.annotations?.["spiffe.csi.cert-manager.io/identity"], SPIFFE_ID)
      assert.strictEqual(cr.metadata.annotations?.["example.io/team"], "sleepers")
      assert.deepStrictEqual(cr.spec.issuerRef, { name: "runtime-ca", kind: "Issuer", group: "example.io" })
      assert.strictEqual(cr.spec.duration, "1h0m0s")
      assert.strictEqual(cr.spec.isCA, false)
      assert.deepStrictEqual([...(cr.spec.usages ?? [])], ["digital signature", "key encipherment", "server auth", "client auth"])
      assert.strictEqual(cr.metadata.ownerReferences?.[0]?.uid, "uid-sleep-0")

      const csr = new x509.Pkcs10CertificateRequest(Buffer.from(cr.spec.request, "base64").toString("utf8"))
      const san = csr.getExtension("2.5.29.17")
      assert.isNotNull(san)
      const names = new x509.SubjectAlternativeNameExtension(san!.rawData).names.items
      assert.deepStrictEqual(names.map((n) => [n.type, n.value]), [["url", SPIFFE_ID]])
      assert.isTrue(yield* Effect.promise(() => csr.verify()))
    }).pipe(Effect.provide(stack())))

  it.effect("uses no bearer token when the driver issues with its own ServiceAccount", () =>
    Effect.gen(function*() {
      yield* hold
      const { creation } = yield* startIssue
      assert.isUndefined(creation.bearerToken)
    }).pipe(Effect.provide(stack({ useOwnServiceAccount: true }))))

  it.effect("returns the chain and the key once the request is Ready with a certificate", () =>
    Effect.gen(function*() {
      const issued = yield* Effect.flatMap(Issuance, (i) => i.issue(input))
      const kube = yield* KubeClientMemory
      const [cr] = yield* kube.all(CertificateRequests)
      assert.strictEqual(issued.requestName, cr?.metadata.name)
      assert.strictEqual(issued.chainPem, Buffer.from(cr?.status?.certificate ?? "", "base64").toString("utf8"))
      const leaf = new x509.X509Certificate(issued.chainPem)
      assert.strictEqual(issued.notAfter - issued.notBefore, 3_600_000)
      assert.strictEqual(issued.serialNumber.toLowerCase(), leaf.serialNumber.toLowerCase())
      const pkcs8 = Redacted.value(issued.keyPem)
      assert.match(pkcs8, /^-----BEGIN PRIVATE KEY-----/)
      // The returned key is the one the leaf certifies.
      const spki = createPublicKey(pkcs8).export({ type: "spki", format: "der" }).toString("hex")
      assert.strictEqual(spki, Buffer.from(leaf.publicKey.rawData).toString("hex"))
    }).pipe(Effect.provide(stack())))

  for (const [mode, message] of [["Deny", "identity not allowed"], ["Fail", "issuer is not ready"]] as const) {
    const reason = mode === "Deny" ? "Denied" : "Failed"
    it.effect(`a ${reason} request fails the attempt with reason ${reason} and the ${mode === "Deny" ? "approver" : "issuer"}'s message`, () =>
      Effect.gen(function*() {
        yield* Effect.flatMap(TestSigner.TestSigner, (s) => s.setMode({ _tag: mode, message }))
        const error = yield* Effect.flip(Effect.flatMap(Issuance, (i) => i.issue(input)))
        assert.strictEqual(error.reason, reason)
        assert.include(error.message, message)
      }).pipe(Effect.provide(stack())))
  }

  it.effect("a request deleted while waiting fails the attempt with reason Api", () =>
    Effect.gen(function*() {
      yield* hold
      const kube = yield* KubeClientMemory
      const { cr, fiber } = yield* startIssue
      yield* kube.client.delete(CertificateRequests, cr.metadata.namespace, cr.metadata.name)
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error.reason, "Api")
      assert.include(error.message, "deleted while waiting")
    }).pipe(Effect.provide(stack())))

  describe("the API refusing the create", () => {
    const refused = (reason: KubeErrorReason) =>
      Effect.gen(function*() {
        const kube = yield* KubeClientMemory
        yield* Effect.flatMap(Issuance, (i) => i.awaitSynced)
        yield* kube.failNext("create", reason)
        const error = yield* Effect.flip(Effect.flatMap(Issuance, (i) => i.issue(input)))
        assert.lengthOf(yield* kube.all(CertificateRequests), 0)
        return error
      }).pipe(Effect.provide(stack()))

    it.effect("Forbidden is reason Forbidden", () =>
      Effect.map(refused("Forbidden"), (e) => {
        assert.strictEqual(e.reason, "Forbidden")
        assert.include(e.message, "creating CertificateRequest")
      }))

    it.effect("Unauthorized is reason Unauthenticated", () =>
      Effect.map(refused("Unauthorized"), (e) => assert.strictEqual(e.reason, "Unauthenticated")))

    it.effect("AlreadyExists is reason Api", () =>
      Effect.map(refused("AlreadyExists"), (e) => {
        assert.strictEqual(e.reason, "Api")
        assert.include(e.message, "creating CertificateRequest")
      }))
  })

  it.effect("the wait ends with reason Timeout at the issuance timeout, and the next attempt resumes the same request", () =>
    Effect.gen(function*() {
      yield* hold
      const kube = yield* KubeClientMemory
      const { fiber, creation } = yield* startIssue
      assert.strictEqual(yield* reasonAtTimeout(fiber, 60_000), "Timeout")

      const second = yield* Effect.forkChild(Effect.flatMap(Issuance, (i) => i.issue(input)))
      yield* settle()
      assert.lengthOf(yield* kube.creations, 1)
      yield* Effect.flatMap(TestSigner.TestSigner, (s) => s.release)
      const issued = yield* Fiber.join(second)
      assert.strictEqual(issued.requestName, creation.name)
    }).pipe(Effect.provide(stack({ issuanceTimeoutMillis: 60_000 }))))

  it.effect("an attempt while the API server does not answer the first list fails with reason Api at the issuance timeout", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      yield* kube.failNext("list", "Unavailable", 1_000)
      const fiber = yield* Effect.forkChild(Effect.flatMap(Issuance, (i) => i.issue(input)))
      assert.strictEqual(yield* reasonAtTimeout(fiber, 60_000), "Api")
      assert.lengthOf(yield* kube.creations, 0)
    }).pipe(Effect.provide(stack({ issuanceTimeoutMillis: 60_000 }))))
})

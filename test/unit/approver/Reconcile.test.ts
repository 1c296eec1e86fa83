/**
 * Reconcile on the memory KubeClient: decided requests are never touched, one status write per
 * decision with the conditions cert-manager expects, a Warning Event per denial, write conflicts
 * retried, and the auto-approve cases of the original's controller tests
 * (cert-manager/csi-driver-spiffe, internal/approver/controller/controller_test.go).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Stream, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import { isAdmissionRefusal, reconcile } from "../../../src/approver/Reconcile.ts"
import { KubeClient, KubeError } from "../../../src/services/KubeClient.ts"
import type { CertificateRequest } from "../../../src/domain/CertificateRequest.ts"
import { CertificateRequests, Events } from "../../../src/domain/KubeObjects.ts"
import type { SpiffePolicy } from "../../../src/domain/SpiffeRules.ts"
import { layerStatic } from "../../../src/approver/Evaluator.ts"
import * as EventRecorderLayers from "../../../src/layers/EventRecorder.ts"
import { KubeClientMemory, layerMemory } from "../../../src/layers/KubeClient.ts"
import { certificateRequest, type CrOptions, csrRequest, IDENTITY, NAMESPACE, TEST_POLICY } from "../../support/csr.ts"

const POLICY = TEST_POLICY

const NOW = Date.UTC(2030, 0, 2, 3, 4, 5)
const key = (name: string) => ({ namespace: NAMESPACE, name })

const withPolicy = (policy: SpiffePolicy) =>
  Layer.mergeAll(layerMemory, layerStatic(policy), EventRecorderLayers.layer("csi-driver-spiffe-approver").pipe(Layer.provide(layerMemory)))

const run = <A, E>(effect: Effect.Effect<A, E, any>, policy = POLICY) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(NOW)
    return yield* effect
  }).pipe(Effect.provide(withPolicy(policy))) as Effect.Effect<A, E>

/**
 * `run` on a memory API server that counts finished status writes, with `retrying(fiber, retries)`:
 * joins `fiber` after moving the clock past each of its first `retries` conflict retries. A refused
 * write is counted when it returns, and the reconcile registers its retry's sleep before it next
 * yields, so each adjust comes once that sleep exists (the signature check between attempts runs on
 * the event loop, which a TestClock cannot drive).
 */
const runCountingWrites = <A, E>(
  body: (retrying: <B, F>(fiber: Fiber.Fiber<B, F>, retries: number) => Effect.Effect<B, F>) => Effect.Effect<A, E, any>
) =>
  run(Effect.gen(function*() {
    const writes = yield* SubscriptionRef.make(0)
    const counting = Layer.effect(
      KubeClient,
      Effect.map(KubeClientMemory, (memory) =>
        KubeClient.of({
          ...memory.client,
          replaceStatus: (resource, namespace, name, body) =>
            memory.client.replaceStatus(resource, namespace, name, body).pipe(Effect.ensuring(SubscriptionRef.update(writes, (n) => n + 1)))
        }))
    )
    const retrying = <B, F>(fiber: Fiber.Fiber<B, F>, retries: number) =>
      Effect.gen(function*() {
        for (let written = 1; written <= retries; written++) {
          yield* SubscriptionRef.changes(writes).pipe(Stream.filter((n) => n >= written), Stream.take(1), Stream.runDrain)
          // Past the longest of Schedules.conflictRetry's delays (10 ms doubling, five retries: 160 ms).
          yield* TestClock.adjust("1 second")
        }
        return yield* Fiber.join(fiber)
      })
    const kube = yield* KubeClientMemory
    return yield* body(retrying).pipe(Effect.provide(counting.pipe(Layer.provide(Layer.succeed(KubeClientMemory, kube)))))
  }))

/** Stores a request as the driver (and cert-manager's webhook) would have created it. */
const seed = (name: string, options: CrOptions = {}, status?: CertificateRequest["status"]) =>
  Effect.gen(function*() {
    const memory = yield* KubeClientMemory
    const request = yield* Effect.promise(() => csrRequest(IDENTITY))
    const cr = certificateRequest(request, { ...options, name })
    return yield* memory.upsert(CertificateRequests, status === undefined ? cr : { ...cr, status })
  })

const conditionsOf = (name: string) =>
  Effect.gen(function*() {
    const memory = yield* KubeClientMemory
    const cr = yield* memory.client.get(CertificateRequests, NAMESPACE, name)
    return cr?.status?.conditions ?? []
  })

const settledStatuses: ReadonlyArray<[string, CertificateRequest["status"]]> = [
  ["Approved", { conditions: [{ type: "Approved", status: "True", reason: "someone", message: "ok" }] }],
  ["Denied", { conditions: [{ type: "Denied", status: "True", reason: "someone", message: "no" }] }],
  ["Ready=True", { conditions: [{ type: "Ready", status: "True", reason: "Issued" }], certificate: "Y2VydA==" }],
  ["Ready Failed", { conditions: [{ type: "Ready", status: "False", reason: "Failed", message: "boom" }] }]
]

describe("Reconcile.isAdmissionRefusal", () => {
  const error = (reason: KubeError["reason"], detail: string) => new KubeError({ operation: "replaceStatus", reason, detail })
  it("is a webhook's refusal in the API server's words, whatever the status code", () => {
    assert.isTrue(isAdmissionRefusal(error("Forbidden", `admission webhook "webhook.cert-manager.io" denied the request: no`)))
    assert.isTrue(isAdmissionRefusal(error("Invalid", `admission webhook "w" denied the request without explanation`)))
  })
  it("is not RBAC, a conflict or a server fault", () => {
    assert.isFalse(isAdmissionRefusal(error("Forbidden", `certificaterequests.cert-manager.io "x" is forbidden: User "u" cannot update resource`)))
    assert.isFalse(isAdmissionRefusal(error("Conflict", `admission webhook "w" denied the request: stale`)))
    assert.isFalse(isAdmissionRefusal(error("Unavailable", "the server is currently unable to handle the request")))
  })
})

describe("Reconcile.reconcile", () => {
  it.effect("a missing request is skipped and nothing is written", () =>
    run(Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      const before = yield* memory.resourceVersion
      assert.deepStrictEqual(yield* reconcile(key("missing")), { _tag: "Skipped", why: "not found" })
      assert.strictEqual(yield* memory.resourceVersion, before)
    })))

  for (const [name, status] of settledStatuses) {
    it.effect(`a request already ${name} is left untouched (even with a bad duration)`, () =>
      run(Effect.gen(function*() {
        const memory = yield* KubeClientMemory
        yield* seed("done", { duration: "3h" }, status)
        const before = yield* memory.resourceVersion
        const result = yield* reconcile(key("done"))
        assert.strictEqual(result._tag, "Skipped")
        assert.strictEqual(yield* memory.resourceVersion, before)
        assert.deepStrictEqual(yield* memory.all(Events), [])
      })))
  }

  it.effect("a valid request is approved with one status write and no Event", () =>
    run(Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      const seeded = yield* seed("ok")
      assert.deepStrictEqual(yield* reconcile(key("ok")), { _tag: "Approved" })
      assert.deepStrictEqual(yield* conditionsOf("ok"), [{
        type: "Approved",
        status: "True",
        reason: "spiffe.csi.cert-manager.io",
        message: "Approved request",
        lastTransitionTime: "2030-01-02T03:04:05Z"
      }])
      assert.strictEqual(Number(yield* memory.resourceVersion), Number(seeded.metadata.resourceVersion) + 1)
      assert.deepStrictEqual(yield* memory.all(Events), [])
    })))

  it.effect("existing conditions are kept and the decision appended", () =>
    run(Effect.gen(function*() {
      const pending = { type: "Ready", status: "False", reason: "Pending", message: "waiting for approval" }
      yield* seed("ok", {}, { conditions: [pending] })
      yield* reconcile(key("ok"))
      const conditions = yield* conditionsOf("ok")
      assert.deepStrictEqual(conditions.map((c) => c.type), ["Ready", "Approved"])
      assert.deepStrictEqual(conditions[0], pending)
    })))

  it.effect("an invalid request is denied with every reason and one Warning Event", () =>
    run(Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      const seeded = yield* seed("bad", { duration: "3h0m0s", isCA: true })
      const reasons = ["spec.duration: must be exactly 1h0m0s, got 3h0m0s", "spec.isCA: must be false"]
      assert.deepStrictEqual(yield* reconcile(key("bad")), { _tag: "Denied", reasons })
      assert.deepStrictEqual(yield* conditionsOf("bad"), [{
        type: "Denied",
        status: "True",
        reason: "spiffe.csi.cert-manager.io",
        message: `Denied request: ${reasons.join("; ")}`,
        lastTransitionTime: "2030-01-02T03:04:05Z"
      }])
      const events = yield* memory.all(Events)
      assert.strictEqual(events.length, 1)
      const event = events[0]!
      assert.strictEqual(event.type, "Warning")
      assert.strictEqual(event.reason, "Denied")
      assert.strictEqual(event.message, reasons.join("; "))
      assert.strictEqual(event.metadata.namespace, NAMESPACE)
      assert.deepStrictEqual(event.involvedObject, {
        apiVersion: "cert-manager.io/v1",
        kind: "CertificateRequest",
        name: "bad",
        namespace: NAMESPACE,
        uid: seeded.metadata.uid!,
        resourceVersion: seeded.metadata.resourceVersion!
      })
    })))

  it.effect("a denial's Event and condition never contain the CSR", () =>
    run(Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      const seeded = yield* seed("bad", { annotation: "spiffe://cluster.local/ns/x/sa/y" })
      yield* reconcile(key("bad"))
      const [event] = yield* memory.all(Events)
      const pem = Buffer.from(seeded.spec.request, "base64").toString("utf8")
      const body = pem.split("\n")[1]!
      for (const text of [event!.message, (yield* conditionsOf("bad"))[0]!.message!]) {
        assert.notInclude(text, seeded.spec.request.slice(0, 40))
        assert.notInclude(text, body)
      }
    })))

  it.effect("a failed Event write does not undo or fail the decision", () =>
    run(Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      yield* seed("bad", { duration: "2h" })
      yield* memory.failNext("create", "Forbidden")
      const result = yield* reconcile(key("bad"))
      assert.strictEqual(result._tag, "Denied")
      assert.strictEqual((yield* conditionsOf("bad"))[0]!.type, "Denied")
      assert.deepStrictEqual(yield* memory.all(Events), [])
    })))

  it.effect("a Conflict on the status write is retried with a fresh read", () =>
    runCountingWrites((retrying) => Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      yield* seed("ok")
      yield* memory.failNext("replaceStatus", "Conflict", 3)
      const fiber = yield* Effect.forkChild(reconcile(key("ok")))
      assert.deepStrictEqual(yield* retrying(fiber, 3), { _tag: "Approved" })
      assert.deepStrictEqual((yield* conditionsOf("ok")).map((c) => c.type), ["Approved"])
    })))

  it.effect("a real conflict (cert-manager wrote in between) converges on the newer object", () =>
    runCountingWrites((retrying) => Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      yield* seed("ok")
      // cert-manager adds its Pending condition while we decide: our first write carries a stale
      // resourceVersion. The memory store bumps resourceVersion on every write, so the injected
      // Conflict below stands for exactly that race; the retry must keep cert-manager's condition.
      yield* memory.failNext("replaceStatus", "Conflict", 1)
      const fiber = yield* Effect.forkChild(reconcile(key("ok")))
      yield* memory.modify(CertificateRequests, NAMESPACE, "ok", (cr) => ({
        ...cr,
        status: { conditions: [{ type: "Ready", status: "False", reason: "Pending", message: "waiting" }] }
      }))
      yield* retrying(fiber, 1)
      assert.deepStrictEqual((yield* conditionsOf("ok")).map((c) => c.type), ["Ready", "Approved"])
    })))

  it.effect("conflicts that outlive the retries fail the reconcile (the controller requeues)", () =>
    runCountingWrites((retrying) => Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      yield* seed("ok")
      yield* memory.failNext("replaceStatus", "Conflict", 6)
      const fiber = yield* Effect.forkChild(Effect.flip(reconcile(key("ok"))))
      // Six writes, all refused: five retries, then the Conflict is returned.
      const error = yield* retrying(fiber, 5)
      assert.strictEqual(error._tag === "KubeError" ? error.reason : error._tag, "Conflict")
      assert.deepStrictEqual(yield* conditionsOf("ok"), [])
    })))

  it.effect("without the annotation and auto-approve off, nothing is written", () =>
    run(Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      yield* seed("plain", { annotation: null })
      const before = yield* memory.resourceVersion
      const result = yield* reconcile(key("plain"))
      assert.strictEqual(result._tag, "Skipped")
      assert.strictEqual(yield* memory.resourceVersion, before)
    })))

  describe("auto-approve-non-spiffe", () => {
    const auto = { ...POLICY, autoApproveNonSpiffe: true }
    it.effect("an unannotated request whose CSR cannot be read is denied (it may hide a SPIFFE URI)", () =>
      run(Effect.gen(function*() {
        const memory = yield* KubeClientMemory
        const unreadable = Buffer.from("-----BEGIN CERTIFICATE REQUEST-----\n").toString("base64")
        yield* memory.upsert(
          CertificateRequests,
          certificateRequest(unreadable, { name: "odd", annotation: null, issuerRef: { name: "letsencrypt", kind: "ClusterIssuer" } })
        )
        assert.strictEqual((yield* reconcile(key("odd")))._tag, "Denied")
      }), auto))

    it.effect("an unannotated request for another issuer without SPIFFE URIs is approved", () =>
      run(Effect.gen(function*() {
        const memory = yield* KubeClientMemory
        const request = yield* Effect.promise(() => csrRequest("https://example.com/app"))
        yield* memory.upsert(
          CertificateRequests,
          certificateRequest(request, { name: "web", annotation: null, issuerRef: { name: "letsencrypt", kind: "ClusterIssuer" } })
        )
        assert.deepStrictEqual(yield* reconcile(key("web")), { _tag: "Approved" })
      }), auto))

    it.effect("an unannotated request targeting the SPIFFE issuer is denied", () =>
      run(Effect.gen(function*() {
        const memory = yield* KubeClientMemory
        const request = yield* Effect.promise(() => csrRequest("https://example.com/app"))
        yield* memory.upsert(CertificateRequests, certificateRequest(request, { name: "sneaky", annotation: null }))
        const result = yield* reconcile(key("sneaky"))
        assert.deepStrictEqual(result, {
          _tag: "Denied",
          reasons: [
            "spec.issuerRef: a request without the spiffe.csi.cert-manager.io/identity annotation must not use the SPIFFE issuer ClusterIssuer.cert-manager.io/my-spiffe-ca"
          ]
        })
      }), auto))

    it.effect("an unannotated request with a SPIFFE URI SAN for another issuer is denied", () =>
      run(Effect.gen(function*() {
        yield* seed("smuggle", { annotation: null, issuerRef: { name: "letsencrypt", kind: "ClusterIssuer" } })
        const result = yield* reconcile(key("smuggle"))
        assert.deepStrictEqual(result, {
          _tag: "Denied",
          reasons: ["spec.request: a request without the spiffe.csi.cert-manager.io/identity annotation must not contain a SPIFFE URI SAN"]
        })
      }), auto))
  })
})

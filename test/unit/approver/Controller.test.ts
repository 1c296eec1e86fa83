/**
 * The controller on the memory KubeClient: bursts are fully decided exactly once, watch drops and
 * expired watches lose nothing, transient API errors are survived, and the stream runs only while
 * this replica leads.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Ref, Stream, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import * as ApproverConfig from "../../../src/services/ApproverConfig.ts"
import { Controller, type ControllerShape, layerWith as controllerWith, DEFAULT_OPTIONS } from "../../../src/approver/Controller.ts"
import type { CertificateRequest } from "../../../src/domain/CertificateRequest.ts"
import { CertificateRequests, Events } from "../../../src/domain/KubeObjects.ts"
import * as Evaluator from "../../../src/approver/Evaluator.ts"
import * as EventRecorderLayers from "../../../src/layers/EventRecorder.ts"
import { layerStatic as issuerStatic } from "../../../src/layers/IssuerConfig.ts"
import { KubeClientMemory, layerMemory } from "../../../src/layers/KubeClient.ts"
import { layerAlwaysLeader, makeManual } from "../../../src/layers/LeaderElection.ts"
import { LeaderElection } from "../../../src/services/LeaderElection.ts"
import { KubeClient, KubeError } from "../../../src/services/KubeClient.ts"
import {
  certificateRequest,
  type CrOptions,
  csrRequest,
  IDENTITY,
  intermediateCertificateRequest,
  intermediateRequest,
  NAMESPACE,
  SIGNER_USERNAME
} from "../../support/csr.ts"
import { settle } from "../../support/clock.ts"

const world = (leader: Layer.Layer<LeaderElection> = layerAlwaysLeader, config: Partial<ApproverConfig.ApproverConfigShape> = {}) =>
  Layer.mergeAll(
    layerMemory,
    ApproverConfig.layer(config),
    leader,
    EventRecorderLayers.layer("csi-driver-spiffe-approver").pipe(Layer.provide(layerMemory)),
    Evaluator.layer.pipe(Layer.provide(Layer.merge(ApproverConfig.layer(config), issuerStatic(undefined))))
  )

/** Starts the controller in the test's scope, on the world provided around it. */
const start = Effect.gen(function*() {
  const context = yield* Layer.build(controllerWith(DEFAULT_OPTIONS))
  return Context.get(context, Controller)
})

let request: string | undefined
const validRequest = Effect.promise(async () => (request ??= await csrRequest(IDENTITY)))

/** Creates requests `prefix-0…` through the client, as the driver does. */
const createMany = (prefix: string, count: number, options: CrOptions = {}) =>
  Effect.gen(function*() {
    const memory = yield* KubeClientMemory
    const req = yield* validRequest
    for (let i = 0; i < count; i++) {
      yield* memory.client.create(CertificateRequests, NAMESPACE, certificateRequest(req, { ...options, name: `${prefix}-${i}` }))
    }
  })

const decisionsOf = (cr: CertificateRequest) =>
  (cr.status?.conditions ?? []).filter((c) => c.type === "Approved" || c.type === "Denied")

const allDecided = Effect.gen(function*() {
  const memory = yield* KubeClientMemory
  const all = yield* memory.all(CertificateRequests)
  return all.every((cr) => decisionsOf(cr).length > 0)
})

/** Every request decided, each exactly once; returns the counts. Waits on the store's change feed. */
const awaitDecisions = Effect.gen(function*() {
  const memory = yield* KubeClientMemory
  yield* memory.until(allDecided)
  const all = yield* memory.all(CertificateRequests)
  for (const cr of all) assert.strictEqual(decisionsOf(cr).length, 1, `${cr.metadata.name} decided once`)
  const count = (type: string) => all.filter((cr) => decisionsOf(cr)[0]?.type === type).length
  return { approved: count("Approved"), denied: count("Denied") }
})

/**
 * `awaitDecisions` for work that must sleep through backoffs: whenever the controller has nothing in
 * hand (no key queued or being reconciled: every retry's sleep is registered, and no signature check
 * is still running on the event loop), the clock moves one minute, no less than any reconnect or
 * reconcile-retry delay, so every pending sleep fires (TestClock runs the woken work to
 * its next suspension before it looks at later sleeps). A step is taken only on that signal.
 */
const decideAdvancing = (controller: ControllerShape) =>
  Effect.gen(function*() {
    for (let steps = 0; !(yield* allDecided); steps++) {
      if (steps === 100) return yield* Effect.die(new Error("requests still undecided after 100 minutes of backoff"))
      yield* controller.awaitQueue((queue) => queue.active === 0)
      yield* TestClock.adjust("1 minute")
    }
    return yield* awaitDecisions
  })

/**
 * The memory API server whose status writes an admission webhook refuses while `refusing` holds,
 * with the wording the API server uses (counted in `attempts`).
 */
const refusingStatus = (refusing: Ref.Ref<boolean>, attempts: SubscriptionRef.SubscriptionRef<number>) =>
  Layer.effect(
    KubeClient,
    Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      return KubeClient.of({
        ...memory.client,
        replaceStatus: (resource, namespace, name, body) =>
          Effect.gen(function*() {
            yield* SubscriptionRef.update(attempts, (n) => n + 1)
            if (yield* Ref.get(refusing)) {
              return yield* new KubeError({
                operation: "replaceStatus",
                reason: "Forbidden",
                status: 403,
                detail: `admission webhook "webhook.cert-manager.io" denied the request: status.conditions: Forbidden: user "system:serviceaccount:cert-manager:approver" does not have permissions to set approved/denied conditions for issuer {ca unknown.example.com Issuer}`
              })
            }
            return yield* memory.client.replaceStatus(resource, namespace, name, body)
          })
      })
    })
  ).pipe(Layer.provide(layerMemory))

describe("Controller", () => {
  it.effect("considers the signer's intermediate requests: the signer's own is approved, the same from another requester denied", () =>
    Effect.gen(function*() {
      const program = Effect.gen(function*() {
        const memory = yield* KubeClientMemory
        const req = yield* Effect.promise(() => intermediateRequest())
        yield* memory.client.create(CertificateRequests, "cert-manager", intermediateCertificateRequest(req, { name: "signer" }))
        yield* memory.client.create(
          CertificateRequests,
          "cert-manager",
          intermediateCertificateRequest(req, { name: "impostor", username: "system:serviceaccount:cert-manager:other" })
        )
        yield* start
        assert.deepStrictEqual(yield* awaitDecisions, { approved: 1, denied: 1 })
        const decided = Object.fromEntries((yield* memory.all(CertificateRequests)).map((cr) => [cr.metadata.name, decisionsOf(cr)[0]?.type]))
        assert.deepStrictEqual(decided, { signer: "Approved", impostor: "Denied" })
      })
      yield* program.pipe(Effect.provide(world(layerAlwaysLeader, { signerServiceAccount: SIGNER_USERNAME })))
    }))

  it.effect("a status write refused by admission gets one Warning Event and is retried every 15 minutes, not every minute", () =>
    Effect.gen(function*() {
      const refusing = yield* Ref.make(true)
      const attempts = yield* SubscriptionRef.make(0)
      /** Completes once `count` status writes were attempted (a signal from the refusing API server). */
      const attempted = (count: number) =>
        SubscriptionRef.changes(attempts).pipe(Stream.filter((n) => n >= count), Stream.take(1), Stream.runDrain)
      const program = Effect.gen(function*() {
        const memory = yield* KubeClientMemory
        yield* createMany("refused", 1)
        yield* start
        yield* attempted(1)
        assert.strictEqual(yield* SubscriptionRef.get(attempts), 1, "first attempt")
        // Fourteen minutes: the reconcile retry schedule (capped at one minute) would have tried 14 more times.
        for (let i = 0; i < 14; i++) {
          yield* settle()
          yield* TestClock.adjust("1 minute")
        }
        yield* settle()
        assert.strictEqual(yield* SubscriptionRef.get(attempts), 1)
        yield* TestClock.adjust("1 minute")
        yield* attempted(2)
        assert.strictEqual(yield* SubscriptionRef.get(attempts), 2, "retried after 15 minutes")
        const events = yield* memory.all(Events)
        assert.strictEqual(events.length, 1, "one Warning Event, not one per attempt")
        assert.strictEqual(events[0]!.reason, "ApprovalRefused")
        assert.include(events[0]!.message, "denied the request")
        // The administrator fixes it: the next attempt decides the request.
        yield* Ref.set(refusing, false)
        yield* TestClock.adjust("15 minutes")
        assert.deepStrictEqual(yield* awaitDecisions, { approved: 1, denied: 0 })
        assert.strictEqual((yield* memory.all(Events)).length, 1)
      })
      yield* program.pipe(Effect.provide(Layer.mergeAll(world(), refusingStatus(refusing, attempts))))
    }))


  it.effect("decides a burst of requests, each exactly once, with an Event per denial", () =>
    Effect.gen(function*() {
      const controller = yield* start
      yield* controller.awaitSynced
      assert.isTrue(yield* controller.synced)
      yield* createMany("ok", 40)
      yield* createMany("long", 20, { duration: "3h" })
      assert.deepStrictEqual(yield* awaitDecisions, { approved: 40, denied: 20 })
      yield* controller.drain
      const memory = yield* KubeClientMemory
      assert.strictEqual((yield* memory.all(Events)).length, 20)
    }).pipe(Effect.provide(world())))

  it.effect("busy (the idle GC's signal): false before work, true while a burst is in hand, false once it is decided", () =>
    Effect.gen(function*() {
      const controller = yield* start
      yield* controller.awaitSynced
      const subscribed = yield* Deferred.make<void>()
      const first = yield* Deferred.make<boolean>()
      const drainedAfterWork = yield* controller.busy.pipe(
        Stream.tap((busy) => Effect.andThen(Deferred.succeed(first, busy), Deferred.succeed(subscribed, undefined))),
        Stream.changes,
        Stream.dropWhile((busy) => !busy),
        Stream.filter((busy) => !busy),
        Stream.take(1),
        Stream.runDrain,
        Effect.forkScoped
      )
      yield* Deferred.await(subscribed)
      assert.isFalse(yield* Deferred.await(first), "nothing in hand before the first request")
      yield* createMany("busy", 10)
      yield* Fiber.join(drainedAfterWork)
      assert.deepStrictEqual(yield* awaitDecisions, { approved: 10, denied: 0 })
      yield* controller.drain
      assert.deepStrictEqual(Array.from(yield* controller.busy.pipe(Stream.take(1), Stream.runCollect)), [false])
    }).pipe(Effect.provide(world())))

  it.effect("leaves already decided requests untouched and decides the rest found by the first list", () =>
    Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      const req = yield* validRequest
      const decided = yield* memory.upsert(
        CertificateRequests,
        certificateRequest(req, {
          name: "old",
          duration: "3h",
          status: { conditions: [{ type: "Approved", status: "True", reason: "elsewhere" }] }
        })
      )
      yield* createMany("pending", 5)
      const controller = yield* start
      assert.deepStrictEqual(yield* awaitDecisions, { approved: 6, denied: 0 })
      assert.isTrue(yield* controller.synced)
      const old = yield* memory.client.get(CertificateRequests, NAMESPACE, "old")
      assert.strictEqual(old?.metadata.resourceVersion, decided.metadata.resourceVersion)
    }).pipe(Effect.provide(world())))

  it.effect("a watch drop in the middle of a burst loses no request", () =>
    Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      const controller = yield* start
      yield* controller.awaitSynced
      assert.isTrue(yield* controller.synced)
      yield* createMany("a", 30)
      yield* memory.dropWatches
      yield* createMany("b", 30)
      yield* memory.dropWatches
      yield* memory.dropWatches
      yield* createMany("c", 30, { duration: "2h" })
      assert.deepStrictEqual(yield* awaitDecisions, { approved: 60, denied: 30 })
    }).pipe(Effect.provide(world())))

  it.effect("an expired watch (Gone) relists and finds requests created meanwhile", () =>
    Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      const controller = yield* start
      yield* controller.awaitSynced
      // The next watch fails, so the controller pauses 800 ms; while it does, requests arrive and
      // the history they were written in is compacted away: only a relist can find them.
      yield* memory.failNext("watch", "Unavailable", 1)
      yield* memory.dropWatches
      yield* settle()
      yield* createMany("late", 10)
      yield* memory.expireHistory
      // The reconnect pause is over: the relist runs and finds them.
      yield* TestClock.adjust("800 millis")
      assert.deepStrictEqual(yield* awaitDecisions, { approved: 10, denied: 0 })
    }).pipe(Effect.provide(world())))

  it.effect("survives failing lists and reconciles, with backoff, and never dies", () =>
    Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      yield* createMany("early", 3)
      yield* memory.failNext("list", "Unavailable", 3)
      yield* memory.failNext("get", "Unavailable", 4)
      yield* memory.failNext("replaceStatus", "Forbidden", 2)
      const controller = yield* start
      yield* settle()
      assert.isFalse(yield* controller.synced)
      assert.deepStrictEqual(yield* decideAdvancing(controller), { approved: 3, denied: 0 })
      yield* memory.failNext("watch", "Unavailable", 5)
      yield* memory.dropWatches
      yield* createMany("later", 2)
      assert.deepStrictEqual(yield* decideAdvancing(controller), { approved: 5, denied: 0 })
    }).pipe(Effect.provide(world())))

  it.effect("requests without the identity annotation are ignored when auto-approve is off", () =>
    Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      const controller = yield* start
      yield* controller.awaitSynced
      assert.isTrue(yield* controller.synced)
      yield* createMany("plain", 3, { annotation: null })
      yield* createMany("spiffe", 1)
      yield* memory.until(Effect.map(memory.client.get(CertificateRequests, NAMESPACE, "spiffe-0"), (cr) => cr !== undefined && decisionsOf(cr).length === 1))
      yield* settle()
      yield* controller.drain
      for (const cr of yield* memory.all(CertificateRequests)) {
        assert.strictEqual(decisionsOf(cr).length, cr.metadata.name.startsWith("plain") ? 0 : 1)
      }
    }).pipe(Effect.provide(world())))

  it.effect("with auto-approve, unannotated requests for other issuers are approved", () =>
    Effect.gen(function*() {
      const controller = yield* start
      yield* controller.awaitSynced
      assert.isTrue(yield* controller.synced)
      const memory = yield* KubeClientMemory
      const web = yield* Effect.promise(() => csrRequest("https://example.com/web"))
      yield* memory.client.create(
        CertificateRequests,
        NAMESPACE,
        certificateRequest(web, { name: "web", annotation: null, issuerRef: { name: "letsencrypt", kind: "ClusterIssuer" } })
      )
      yield* memory.client.create(CertificateRequests, NAMESPACE, certificateRequest(web, { name: "sneaky", annotation: null }))
      assert.deepStrictEqual(yield* awaitDecisions, { approved: 1, denied: 1 })
      const sneaky = yield* memory.client.get(CertificateRequests, NAMESPACE, "sneaky")
      assert.strictEqual(decisionsOf(sneaky!)[0]!.type, "Denied")
    }).pipe(Effect.provide(world(layerAlwaysLeader, { autoApproveNonSpiffe: true }))))

  it.effect("runs only while leading; losing leadership stops the stream, regaining resumes it", () =>
    Effect.gen(function*() {
      const manual = yield* makeManual
      return yield* Effect.gen(function*() {
        const memory = yield* KubeClientMemory
        const controller = yield* start
        yield* createMany("first", 2)
        yield* settle()
        assert.isFalse(yield* controller.synced)
        assert.isTrue(yield* controller.ready, "a replica standing by is ready")
        assert.isFalse(yield* allDecided)

        yield* manual.set(true)
        assert.deepStrictEqual(yield* awaitDecisions, { approved: 2, denied: 0 })
        assert.isTrue(yield* controller.ready)

        yield* manual.set(false)
        yield* settle()
        assert.isFalse(yield* controller.synced)
        yield* createMany("second", 2)
        yield* settle()
        const second = yield* memory.client.get(CertificateRequests, NAMESPACE, "second-0")
        assert.strictEqual(decisionsOf(second!).length, 0, "no decision while standing by")

        yield* manual.set(true)
        assert.deepStrictEqual(yield* awaitDecisions, { approved: 4, denied: 0 })
      }).pipe(Effect.provide(world(Layer.succeed(LeaderElection, manual.service))))
    }))
})

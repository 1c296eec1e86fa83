/**
 * The PodCertificateRequest signer's controller: every request for our signer name gets exactly one
 * answer (Issued, Denied or Failed), well inside the kube-controller-manager's 15-minute cleanup.
 *
 * Owns: while leading, the intermediate CA's life (`Intermediate.run`), publishing its roots in the
 * ClusterTrustBundle, the list+watch of PodCertificateRequests in all namespaces
 * (`layers/ListWatch.ts`), the work queue (`layers/WorkQueue.ts`), the reconcile (fresh read → rules
 * → sign → status write, conflicts retried on a fresh read on `Schedules.conflictRetry`), per-key
 * retries on `Schedules.podCertificateRetry`, and requests waiting for an intermediate: re-queued as soon as
 * one is in force, failed with `IntermediateUnavailable` once they are `FAIL_AFTER` old.
 * Does not own: the rules (`domain/PodCertificate.ts`), leaf contents (`Leaf.ts`), the election.
 *
 * Memory: keys only, plus the keys waiting for an intermediate.
 */
import { Clock, Context, Duration, Effect, Layer, Ref, Result, Stream } from "effect"
import { PodCertificateRequests, rfc3339 } from "../domain/KubeObjects.ts"
import * as PC from "../domain/PodCertificate.ts"
import * as Schedules from "../domain/Schedules.ts"
import * as KeyedBackoff from "../layers/KeyedBackoff.ts"
import * as ListWatch from "../layers/ListWatch.ts"
import * as WorkQueue from "../layers/WorkQueue.ts"
import { EventRecorder } from "../services/EventRecorder.ts"
import type { EventRecorderShape } from "../services/EventRecorder.ts"
import { Intermediate } from "../services/Intermediate.ts"
import type { IntermediateCA } from "../services/Intermediate.ts"
import { KubeClient } from "../services/KubeClient.ts"
import type { KubeClientShape, KubeError } from "../services/KubeClient.ts"
import { LeaderElection } from "../services/LeaderElection.ts"
import { SignerConfig } from "../services/SignerConfig.ts"
import type { SignerConfigShape } from "../services/SignerConfig.ts"
import { signLeaf } from "./Leaf.ts"
import * as SignerMetrics from "./SignerMetrics.ts"
import { readStubCsr } from "./StubCsr.ts"
import * as TrustBundle from "./TrustBundle.ts"

/**
 * How old a request may grow while no intermediate CA is in force before it is failed: five
 * minutes leaves two full intermediate attempts (`ATTEMPT_TIMEOUT`), and the Failed condition
 * reaches the kubelet (and the pod's events) ten minutes before the 15-minute cleanup would delete
 * the request unanswered.
 */
export const FAIL_AFTER = Duration.minutes(5)

/**
 * Reconciles at once: each is a GET, a signature (well under a millisecond for P-256) and a PUT;
 * eight in flight stay under client-go's default burst of 10, as the approver's.
 */
const CONCURRENCY = 8

export interface SignerControllerShape {
  /** Standing by, or leading with the first list done and an intermediate CA in force. */
  readonly ready: Effect.Effect<boolean>
  /** Completes once no key is queued, being reconciled or waiting for a retry. */
  readonly drain: Effect.Effect<void>
  /**
   * Completes once this term's work queue is in a state `holds` is true of (at once while standing
   * by): with `active === 0` every outstanding key waits on a retry's delay, so a test moves its
   * TestClock on this signal.
   */
  readonly awaitQueue: (holds: (state: WorkQueue.QueueState) => boolean) => Effect.Effect<void>
}

export class SignerController extends Context.Service<SignerController, SignerControllerShape>()(
  "csi-driver-spiffe/signer/Controller"
) {}

const keyOf = (pcr: PC.PodCertificateRequest): string => `${pcr.metadata.namespace}/${pcr.metadata.name}`
const parseKey = (key: string): { namespace: string; name: string } => {
  const at = key.indexOf("/")
  return { namespace: key.slice(0, at), name: key.slice(at + 1) }
}

const ageMillis = (pcr: PC.PodCertificateRequest, now: number): number => {
  const created = pcr.metadata.creationTimestamp === undefined ? Number.NaN : Date.parse(pcr.metadata.creationTimestamp)
  return Number.isNaN(created) ? 0 : now - created
}

type Reconciled = { readonly outcome: SignerMetrics.Outcome; readonly waitMillis?: number }

/** One request: a fresh read, the rules, the status write (retried on conflict against a fresh read). */
export const reconcile = (
  kube: KubeClientShape,
  events: EventRecorderShape,
  config: SignerConfigShape,
  intermediate: Effect.Effect<IntermediateCA | undefined>,
  key: string
): Effect.Effect<Reconciled, KubeError> => {
  const { namespace, name } = parseKey(key)
  const attempt = Effect.gen(function*() {
    const pcr = yield* kube.get(PodCertificateRequests, namespace, name)
    if (pcr === undefined || !PC.needsAnswer(pcr, config.signerName)) return { outcome: "skipped" } satisfies Reconciled
    const now = yield* Clock.currentTimeMillis
    const write = (status: unknown) => kube.replaceStatus(PodCertificateRequests, namespace, name, { ...pcr, status })
    const latency = ageMillis(pcr, now) / 1000
    // `kubectl describe pod` shows why the pod's certificate was refused (the kubelet's mount error says it too).
    const warn = (reason: string, message: string) =>
      events.record({
        involvedObject: { apiVersion: "v1", kind: "Pod", name: pcr.spec.podName, namespace, uid: pcr.spec.podUID },
        type: "Warning",
        reason,
        message: `PodCertificateRequest ${name}: ${message}`
      })
    const ca = yield* intermediate
    const stub = readStubCsr(pcr.spec.stubPKCS10Request)
    const decision = PC.decide(config, pcr, Result.isSuccess(stub) ? stub.success.facts : stub.failure, now, ca?.notAfter ?? 0)
    if (decision._tag === "Deny") {
      yield* write(PC.refusedStatus(PC.DENIED, decision.reason, decision.reasons.join("; "), rfc3339(now)))
      yield* warn(decision.reason, decision.reasons.join("; "))
      yield* SignerMetrics.answered("denied", decision.reason, latency)
      yield* Effect.logInfo("denied", { reasons: decision.reasons })
      return { outcome: "denied" } satisfies Reconciled
    }
    if (ca === undefined || decision._tag === "Wait" || Result.isFailure(stub)) {
      const left = Duration.toMillis(FAIL_AFTER) - ageMillis(pcr, now)
      if (left > 0) return { outcome: "waiting", waitMillis: left } satisfies Reconciled
      const why = ca === undefined ? "no intermediate CA is in force" : decision._tag === "Wait" ? decision.why : "unreadable stub CSR"
      const message = `${config.signerName} could not sign within ${Duration.format(FAIL_AFTER)}: ${why}; the kubelet retries with a new request`
      yield* write(PC.refusedStatus(PC.FAILED, PC.INTERMEDIATE_UNAVAILABLE, message, rfc3339(now)))
      yield* warn(PC.INTERMEDIATE_UNAVAILABLE, message)
      yield* SignerMetrics.answered("failed", PC.INTERMEDIATE_UNAVAILABLE, latency)
      yield* Effect.logWarning("failed", { why })
      return { outcome: "failed" } satisfies Reconciled
    }
    const chain = yield* signLeaf(ca, stub.success, decision.spiffeId, decision.times).pipe(Effect.orDie)
    yield* write(PC.issuedStatus(chain, decision.times, decision.spiffeId, rfc3339))
    yield* SignerMetrics.answered("issued", PC.ISSUED_REASON, latency)
    yield* Effect.logInfo("issued", { spiffeId: decision.spiffeId, notAfter: rfc3339(decision.times.notAfter) })
    return { outcome: "issued" } satisfies Reconciled
  })
  return attempt.pipe(
    Effect.retry({ schedule: Schedules.conflictRetry, while: (e: KubeError) => e.reason === "Conflict" }),
    Effect.annotateLogs({ podCertificateRequest: key })
  )
}

/** One leadership term: the intermediate, the bundle, the queue and the list+watch feeding it. */
const runTerm = (synced: Ref.Ref<boolean>, current: Ref.Ref<WorkQueue.WorkQueue | undefined>) =>
  Effect.gen(function*() {
    const kube = yield* KubeClient
    const events = yield* EventRecorder
    const config = yield* SignerConfig
    const intermediate = yield* Intermediate
    const queue = yield* WorkQueue.makeNamed(SignerMetrics.CONTROLLER_NAME)
    yield* Ref.set(current, queue)
    const waiting = yield* Ref.make<ReadonlySet<string>>(new Set())

    yield* Effect.forkScoped(intermediate.run)

    // Each new intermediate: its roots into the bundle (retried until written), then every waiting key.
    const publish = (ca: IntermediateCA) =>
      TrustBundle.publish(kube, config.signerName, config.trustDomain, ca.rootsPem).pipe(
        Effect.tap((result) => Effect.logInfo("ClusterTrustBundle", { result, name: PC.trustBundleName(config.signerName) })),
        Effect.tapError((e) => Effect.logWarning("ClusterTrustBundle not written; retrying", { err: e.message })),
        Effect.retry(Schedules.podCertificateRetry)
      )
    yield* Effect.forkScoped(
      intermediate.changes.pipe(
        Stream.filter((ca): ca is IntermediateCA => ca !== undefined),
        Stream.runForEach((ca) =>
          Effect.gen(function*() {
            yield* SignerMetrics.intermediate("issued")
            if (ca.rootsPem.length === 0) yield* Effect.logWarning("the issuer returned no CA certificate (status.ca); the ClusterTrustBundle is not updated")
            else yield* Effect.orDie(publish(ca))
            const keys = yield* Ref.getAndSet(waiting, new Set())
            yield* Effect.forEach(keys, queue.add, { discard: true })
          })
        )
      )
    )

    const backoff = yield* KeyedBackoff.make(Schedules.podCertificateRetry)

    // A waiting key is re-queued by the next intermediate, or when its wait is over (then failed).
    const handle = (key: string): Effect.Effect<void> =>
      reconcile(kube, events, config, intermediate.current, key).pipe(
        Effect.tap((r) =>
          Effect.gen(function*() {
            yield* backoff.forget(key)
            if (r.outcome !== "waiting") return
            yield* Ref.update(waiting, (s) => new Set([...s, key]))
            yield* queue.addAfter(key, Duration.millis(r.waitMillis ?? 0))
          })),
        Effect.map((r) => r.outcome),
        SignerMetrics.timeReconcile,
        Effect.asVoid,
        Effect.catchTag("KubeError", (e) =>
          Effect.gen(function*() {
            const delay = yield* backoff.delay(key)
            yield* Effect.logWarning("reconcile failed; will retry", { podCertificateRequest: key, err: e.message, retryIn: Duration.format(delay) })
            yield* queue.addAfter(key, delay)
          }))
      )

    yield* Effect.forkScoped(queue.run(CONCURRENCY, handle))

    const offer = (pcr: PC.PodCertificateRequest) => (PC.needsAnswer(pcr, config.signerName) ? queue.add(keyOf(pcr)) : Effect.void)
    return yield* ListWatch.run(kube, PodCertificateRequests, { name: "podcertificaterequest watch" }, {
      onList: (items) => Effect.andThen(Effect.forEach(items, offer, { discard: true }), Ref.set(synced, true)),
      onEvent: (event) => (event.type === "DELETED" ? Effect.void : offer(event.object))
    })
  }).pipe(
    Effect.scoped,
    Effect.ensuring(Effect.andThen(Ref.set(synced, false), Ref.set(current, undefined)))
  )

export const layer: Layer.Layer<SignerController, never, KubeClient | EventRecorder | SignerConfig | Intermediate | LeaderElection> = Layer.effect(
  SignerController,
  Effect.gen(function*() {
    const leader = yield* LeaderElection
    const intermediate = yield* Intermediate
    const synced = yield* Ref.make(false)
    const current = yield* Ref.make<WorkQueue.WorkQueue | undefined>(undefined)
    yield* Effect.forkScoped(leader.whileLeader(runTerm(synced, current)))
    return SignerController.of({
      ready: Effect.gen(function*() {
        if (!(yield* leader.isLeader)) return true
        return (yield* Ref.get(synced)) && (yield* intermediate.current) !== undefined
      }),
      drain: Effect.flatMap(Ref.get(current), (queue) => queue?.drain ?? Effect.void),
      awaitQueue: (holds) => Effect.flatMap(Ref.get(current), (queue) => queue?.awaitState(holds) ?? Effect.void)
    })
  })
)

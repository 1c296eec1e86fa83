/**
 * The approver's controller: every CertificateRequest in the cluster that needs a decision gets one.
 *
 * Owns: the list+watch stream over all namespaces (`layers/ListWatch.ts`: resume from the last
 * resourceVersion when a watch ends, relist when it is Gone or failed, reconnect on
 * `Schedules.watchReconnect`, never die), turning events into `namespace/name` keys (only for requests that still need a decision),
 * the work queue and its workers, per-key retry backoff, running only while leading, and `synced`.
 * Does not own: the reconcile step (`Reconcile.ts`), the rules (Evaluator), the election
 * (LeaderElection), HTTP probes and metrics (the composition root reads `ready`).
 *
 * Memory: keys only. Watch events are filtered and dropped as they arrive; no object is cached.
 */
import { Context, Duration, Effect, Layer, Ref, Schedule, Stream, SubscriptionRef } from "effect"
import * as CR from "../domain/CertificateRequest.ts"
import { CertificateRequests } from "../domain/KubeObjects.ts"
import * as Schedules from "../domain/Schedules.ts"
import * as ListWatch from "../layers/ListWatch.ts"
import { Evaluator } from "../services/Evaluator.ts"
import { EventRecorder } from "../services/EventRecorder.ts"
import { KubeClient } from "../services/KubeClient.ts"
import { LeaderElection } from "../services/LeaderElection.ts"
import { ApproverConfig } from "../services/ApproverConfig.ts"
import { alreadySettled, emitRefused, keyString, parseKey, reconcile } from "./Reconcile.ts"
import * as ApproverMetrics from "./ApproverMetrics.ts"
import * as KeyedBackoff from "../layers/KeyedBackoff.ts"
import * as WorkQueue from "../layers/WorkQueue.ts"

export interface ControllerShape {
  /** True once this leadership term's first list has been queued; false while standing by. */
  readonly synced: Effect.Effect<boolean>
  /** Completes once `synced` is true: now, or when a leadership term's first list is queued (a signal, never a poll). */
  readonly awaitSynced: Effect.Effect<void>
  /** For readiness: standing by, or leading and synced. */
  readonly ready: Effect.Effect<boolean>
  /** Completes once no key is queued, being reconciled or waiting for a retry (tests, shutdown). */
  readonly drain: Effect.Effect<void>
  /**
   * Completes once this term's work queue is in a state `holds` is true of (at once while standing
   * by): with `active === 0` every outstanding key waits on a retry's delay, so a test moves its
   * TestClock on this signal.
   */
  readonly awaitQueue: (holds: (state: WorkQueue.QueueState) => boolean) => Effect.Effect<void>
  /**
   * True while this term's queue has a key queued or being reconciled, false otherwise (standing
   * by, or only retries waiting on their delay): the current value first, then every change.
   */
  readonly busy: Stream.Stream<boolean>
}

export class Controller extends Context.Service<Controller, ControllerShape>()("csi-driver-spiffe/approver/Controller") {}

export interface ControllerOptions {
  /** Reconciles running at once (different keys; one key is never reconciled twice at once). */
  readonly concurrency: number
  /** Delays between reconnects after a failed list or watch. */
  readonly reconnect: Schedule.Schedule<unknown>
  /** Delays between retries of one key whose reconcile failed (per key, reset when it succeeds). */
  readonly retry: Schedule.Schedule<unknown>
}

/**
 * - concurrency 8: each reconcile is one GET, one PUT and sometimes one POST; eight in flight stay
 *   under client-go's default client burst of 10, so a burst never queues inside the client, while a
 *   single worker (controller-runtime's default, the original's) serialises a whole node's pods.
 * - reconnect and retry: `Schedules.watchReconnect` and `Schedules.reconcileRetry`.
 */
export const DEFAULT_OPTIONS: ControllerOptions = {
  concurrency: 8,
  reconnect: Schedules.watchReconnect,
  retry: Schedules.reconcileRetry
}

/**
 * Whether an observed request may need a decision from us (the reconcile re-checks on a fresh read):
 * one with the identity or the signer's intermediate annotation, or any under auto-approve.
 */
export const wantsDecision = (cr: CR.CertificateRequest, autoApproveNonSpiffe: boolean): boolean =>
  alreadySettled(cr) === undefined &&
  (autoApproveNonSpiffe ||
    cr.metadata.annotations?.[CR.IDENTITY_ANNOTATION] !== undefined ||
    cr.metadata.annotations?.[CR.INTERMEDIATE_ANNOTATION] !== undefined)

/** One leadership term: a fresh queue, its workers, and the list+watch loop feeding it. Never returns. */
const runTerm = (
  options: ControllerOptions,
  synced: SubscriptionRef.SubscriptionRef<boolean>,
  current: SubscriptionRef.SubscriptionRef<WorkQueue.WorkQueue | undefined>
) =>
  Effect.gen(function*() {
    const kube = yield* KubeClient
    const evaluator = yield* Evaluator
    const events = yield* EventRecorder
    const config = yield* ApproverConfig
    const queue = yield* WorkQueue.makeNamed(ApproverMetrics.CONTROLLER_NAME)
    yield* SubscriptionRef.set(current, queue)

    const backoff = yield* KeyedBackoff.make(options.retry)
    /** Keys whose status write admission refused; each gets one Warning Event and WARN line. */
    const refused = yield* Ref.make<ReadonlySet<string>>(new Set())
    const setRefused = (key: string, on: boolean) =>
      Ref.modify(refused, (set): readonly [boolean, ReadonlySet<string>] => {
        const was = set.has(key)
        if (was === on) return [was, set]
        const next = new Set(set)
        if (on) next.add(key)
        else next.delete(key)
        return [was, next]
      })
    const handle = (key: string): Effect.Effect<void> =>
      reconcile(parseKey(key)).pipe(
        ApproverMetrics.timeReconcile,
        Effect.provideService(KubeClient, kube),
        Effect.provideService(Evaluator, evaluator),
        Effect.provideService(EventRecorder, events),
        Effect.tap((result) =>
          Effect.andThen(
            Effect.andThen(backoff.forget(key), setRefused(key, false)),
            result._tag === "Skipped"
              ? Effect.logDebug("skipped", result.why)
              : result._tag === "Approved"
              ? Effect.logInfo("approved")
              : Effect.logInfo("denied", { reasons: result.reasons })
          )
        ),
        Effect.catchTag("KubeError", (e) =>
          Effect.gen(function*() {
            const delay = yield* backoff.delay(key)
            yield* Effect.logWarning("reconcile failed; will retry", { err: e.message, retryIn: Duration.format(delay) })
            yield* queue.addAfter(key, delay)
          })),
        Effect.catchTag("StatusRefusedError", (e) =>
          Effect.gen(function*() {
            yield* backoff.forget(key)
            const retryIn = Duration.format(Schedules.statusRefusedRequeue)
            if (yield* setRefused(key, true)) yield* Effect.logDebug("status write still refused; will retry", { err: e.detail, retryIn })
            else {
              yield* Effect.logWarning("status write refused by admission; will retry at a long interval", { err: e.detail, retryIn })
              yield* emitRefused(e, retryIn).pipe(Effect.provideService(EventRecorder, events))
            }
            yield* queue.addAfter(key, Schedules.statusRefusedRequeue)
          })),
        Effect.annotateLogs({ certificateRequest: key })
      )
    yield* Effect.forkScoped(queue.run(options.concurrency, handle))

    const offer = (cr: CR.CertificateRequest) =>
      wantsDecision(cr, config.autoApproveNonSpiffe)
        ? queue.add(keyString({ namespace: cr.metadata.namespace, name: cr.metadata.name }))
        : Effect.void

    return yield* ListWatch.run(kube, CertificateRequests, { name: "certificaterequest watch", reconnect: options.reconnect }, {
      onList: (items) => Effect.andThen(Effect.forEach(items, offer, { discard: true }), SubscriptionRef.set(synced, true)),
      onEvent: (event) => (event.type === "DELETED" ? Effect.void : offer(event.object)),
      onWatchEnd: ApproverMetrics.countWatchRestart
    })
  }).pipe(
    Effect.scoped,
    Effect.ensuring(Effect.andThen(SubscriptionRef.set(synced, false), SubscriptionRef.set(current, undefined)))
  )

/** The controller with `options`; it runs (in the layer's scope) only while this replica leads. */
export const layerWith = (
  options: ControllerOptions
): Layer.Layer<Controller, never, KubeClient | Evaluator | EventRecorder | LeaderElection | ApproverConfig> =>
  Layer.effect(
    Controller,
    Effect.gen(function*() {
      const leader = yield* LeaderElection
      const synced = yield* SubscriptionRef.make(false)
      const current = yield* SubscriptionRef.make<WorkQueue.WorkQueue | undefined>(undefined)
      yield* Effect.forkScoped(leader.whileLeader(runTerm(options, synced, current)))
      return Controller.of({
        synced: SubscriptionRef.get(synced),
        awaitSynced: SubscriptionRef.changes(synced).pipe(Stream.filter((done) => done), Stream.take(1), Stream.runDrain),
        ready: Effect.gen(function*() {
          return !(yield* leader.isLeader) || (yield* SubscriptionRef.get(synced))
        }),
        drain: Effect.flatMap(SubscriptionRef.get(current), (queue) => queue?.drain ?? Effect.void),
        awaitQueue: (holds) => Effect.flatMap(SubscriptionRef.get(current), (queue) => queue?.awaitState(holds) ?? Effect.void),
        busy: SubscriptionRef.changes(current).pipe(
          Stream.switchMap((queue) => (queue === undefined ? Stream.make(false) : Stream.map(queue.states, (state) => state.active > 0)))
        )
      })
    })
  )

/** The approver's controller with the documented defaults. */
export const layer = layerWith(DEFAULT_OPTIONS)

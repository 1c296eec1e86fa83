/**
 * The approver's controller: every CertificateRequest in the cluster that needs a decision gets one.
 *
 * Owns: the list+watch stream over all namespaces (resume from the last resourceVersion when a watch
 * ends, relist when it is Gone, reconnect with capped exponential backoff on any other error, never
 * die), turning events into `namespace/name` keys (only for requests that still need a decision),
 * the work queue and its workers, per-key retry backoff, running only while leading, and `synced`.
 * Does not own: the reconcile step (`Reconcile.ts`), the rules (Evaluator), the election
 * (LeaderElection), HTTP probes and metrics (the composition root reads `ready`).
 *
 * Memory: keys only. Watch events are filtered and dropped as they arrive; no object is cached.
 */
import { Context, Duration, Effect, Layer, Ref, Stream } from "effect"
import * as CR from "../domain/CertificateRequest.ts"
import { CertificateRequests } from "../domain/KubeObjects.ts"
import { Evaluator } from "../services/Evaluator.ts"
import { KubeClient } from "../services/KubeClient.ts"
import type { KubeError, WatchEvent } from "../services/KubeClient.ts"
import { LeaderElection } from "../services/LeaderElection.ts"
import { ApproverConfig } from "./ApproverConfig.ts"
import { alreadySettled, keyString, parseKey, reconcile } from "./Reconcile.ts"
import * as ApproverMetrics from "./ApproverMetrics.ts"
import * as WorkQueue from "./WorkQueue.ts"

export interface ControllerShape {
  /** True once this leadership term's first list has been queued; false while standing by. */
  readonly synced: Effect.Effect<boolean>
  /** For readiness: standing by, or leading and synced. */
  readonly ready: Effect.Effect<boolean>
  /** Completes once no key is queued, being reconciled or waiting for a retry (tests, shutdown). */
  readonly drain: Effect.Effect<void>
}

export class Controller extends Context.Service<Controller, ControllerShape>()("csi-driver-spiffe/approver/Controller") {}

export interface ControllerOptions {
  /** Reconciles running at once (different keys; one key is never reconciled twice at once). */
  readonly concurrency: number
  /** First reconnect delay after a failed list or watch; doubles per consecutive failure. */
  readonly reconnectBase: Duration.Duration
  /** Longest reconnect delay. */
  readonly reconnectCap: Duration.Duration
  /** First retry delay for a key whose reconcile failed; doubles per consecutive failure of that key. */
  readonly retryBase: Duration.Duration
  /** Longest retry delay for one key. */
  readonly retryCap: Duration.Duration
}

/**
 * - concurrency 8: each reconcile is one GET, one PUT and sometimes one POST; eight in flight stay
 *   under client-go's default client burst of 10, so a burst never queues inside the client, while a
 *   single worker (controller-runtime's default, the original's) serialises a whole node's pods.
 * - reconnect 800 ms doubling to 30 s: client-go's reflector backoff (`NewExponentialBackoffManager
 *   (800ms, 30s, …)`), so a restarting API server is not stampeded.
 * - retry 50 ms doubling to 60 s: a failed write is usually transient (a 503 or a throttled request);
 *   a minute bounds how long a pod can wait on us after the API server recovers.
 */
export const DEFAULT_OPTIONS: ControllerOptions = {
  concurrency: 8,
  reconnectBase: Duration.millis(800),
  reconnectCap: Duration.seconds(30),
  retryBase: Duration.millis(50),
  retryCap: Duration.seconds(60)
}

const backoff = (base: Duration.Duration, cap: Duration.Duration, failures: number): Duration.Duration =>
  Duration.millis(Math.min(Duration.toMillis(base) * 2 ** Math.max(0, failures - 1), Duration.toMillis(cap)))

/** Whether an observed request may need a decision from us (the reconcile re-checks on a fresh read). */
export const wantsDecision = (cr: CR.CertificateRequest, autoApproveNonSpiffe: boolean): boolean =>
  alreadySettled(cr) === undefined &&
  (autoApproveNonSpiffe || cr.metadata.annotations?.[CR.IDENTITY_ANNOTATION] !== undefined)

/** One leadership term: a fresh queue, its workers, and the list+watch loop feeding it. Never returns. */
const runTerm = (
  options: ControllerOptions,
  synced: Ref.Ref<boolean>,
  current: Ref.Ref<WorkQueue.WorkQueue | undefined>
) =>
  Effect.gen(function*() {
    const kube = yield* KubeClient
    const evaluator = yield* Evaluator
    const config = yield* ApproverConfig
    const queue = yield* WorkQueue.make
    yield* Ref.set(current, queue)

    const failures = new Map<string, number>()
    const handle = (key: string): Effect.Effect<void> =>
      reconcile(parseKey(key)).pipe(
        ApproverMetrics.timeReconcile,
        Effect.provideService(KubeClient, kube),
        Effect.provideService(Evaluator, evaluator),
        Effect.tap((result) => {
          failures.delete(key)
          return result._tag === "Skipped"
            ? Effect.logDebug("skipped", result.why)
            : result._tag === "Approved"
            ? Effect.logInfo("approved")
            : Effect.logInfo("denied", { reasons: result.reasons })
        }),
        Effect.catchTag("KubeError", (e) => {
          const n = (failures.get(key) ?? 0) + 1
          failures.set(key, n)
          const delay = backoff(options.retryBase, options.retryCap, n)
          return Effect.logWarning("reconcile failed; will retry", e.message, Duration.format(delay)).pipe(
            Effect.andThen(queue.addAfter(key, delay))
          )
        }),
        Effect.annotateLogs({ certificateRequest: key })
      )
    yield* Effect.forkScoped(queue.run(options.concurrency, handle))

    const offer = (cr: CR.CertificateRequest) =>
      wantsDecision(cr, config.autoApproveNonSpiffe)
        ? queue.add(keyString({ namespace: cr.metadata.namespace, name: cr.metadata.name }))
        : Effect.void

    let resourceVersion = ""
    let consecutiveFailures = 0
    const pause = (what: string, error: KubeError | undefined) =>
      Effect.gen(function*() {
        consecutiveFailures += 1
        const delay = backoff(options.reconnectBase, options.reconnectCap, consecutiveFailures)
        if (error !== undefined) yield* Effect.logWarning(`${what} failed; reconnecting`, error.message, Duration.format(delay))
        yield* Effect.sleep(delay)
      })

    const relist = Effect.gen(function*() {
      while (true) {
        const listed = yield* Effect.result(kube.list(CertificateRequests, {}))
        if (listed._tag === "Success") {
          yield* Effect.forEach(listed.success.items, offer, { discard: true })
          resourceVersion = listed.success.resourceVersion
          consecutiveFailures = 0
          yield* Ref.set(synced, true)
          return
        }
        yield* pause("list", listed.failure)
      }
    })

    const onEvent = (event: WatchEvent<CR.CertificateRequest>) =>
      Effect.suspend(() => {
        consecutiveFailures = 0
        if (event.type === "BOOKMARK") {
          resourceVersion = event.resourceVersion
          return Effect.void
        }
        resourceVersion = event.object.metadata.resourceVersion ?? resourceVersion
        return event.type === "DELETED" ? Effect.void : offer(event.object)
      })

    yield* relist
    while (true) {
      const before = resourceVersion
      const watched = yield* Effect.result(
        kube.watch(CertificateRequests, { resourceVersion }).pipe(Stream.runForEach(onEvent))
      )
      yield* ApproverMetrics.countWatchRestart(watched._tag === "Success" ? "closed" : watched.failure.reason === "Gone" ? "gone" : "error")
      if (watched._tag === "Failure") {
        if (watched.failure.reason === "Gone") {
          yield* Effect.logInfo("watch expired; relisting")
          yield* relist
        } else {
          yield* pause("watch", watched.failure)
        }
      } else if (resourceVersion === before) {
        // The server closed a watch that delivered nothing; only a repeat of that warrants a pause.
        if (consecutiveFailures > 0) yield* pause("watch", undefined)
        else consecutiveFailures = 1
      }
    }
  }).pipe(
    Effect.scoped,
    Effect.ensuring(Effect.andThen(Ref.set(synced, false), Ref.set(current, undefined)))
  )

/** The controller with `options`; it runs (in the layer's scope) only while this replica leads. */
export const layerWith = (
  options: ControllerOptions
): Layer.Layer<Controller, never, KubeClient | Evaluator | LeaderElection | ApproverConfig> =>
  Layer.effect(
    Controller,
    Effect.gen(function*() {
      const leader = yield* LeaderElection
      const synced = yield* Ref.make(false)
      const current = yield* Ref.make<WorkQueue.WorkQueue | undefined>(undefined)
      yield* Effect.forkScoped(leader.whileLeader(runTerm(options, synced, current)))
      return Controller.of({
        synced: Ref.get(synced),
        ready: Effect.gen(function*() {
          return !(yield* leader.isLeader) || (yield* Ref.get(synced))
        }),
        drain: Effect.flatMap(Ref.get(current), (queue) => queue?.drain ?? Effect.void)
      })
    })
  )

/** The approver's controller with the documented defaults. */
export const layer = layerWith(DEFAULT_OPTIONS)

/**
 * A de-duplicating work queue of string keys, client-go's `workqueue` semantics in Effect.
 *
 * Owns: at most one pending entry per key (adding a queued key again is a no-op), per-key serial
 * processing (a key added while it is being processed runs once more afterwards, never twice at the
 * same time), a fixed number of concurrent workers, delayed re-adds for retries, and its state as a
 * signal (`awaitState`, `drain`): a caller waits for "nothing in hand" instead of polling.
 * Does not own: what a key means or how failures are retried (the handler and its caller decide).
 *
 * Only keys are held, so memory is proportional to the number of requests awaiting a decision.
 * The bookkeeping (`dirty`, `processing`, `addedAt`, `queued`, `waiting`) is plain variables of this
 * closure, not a Ref: every transition reads and writes them in one synchronous step (no `yield`
 * between the read and the write), so no other fiber can see or make a half-done transition, and
 * the hot path of a 500-request burst copies no Set per key. The state others may wait on is
 * published through the `state` SubscriptionRef after each transition.
 * Everything lives in the scope it is made in: closing it interrupts workers and pending re-adds.
 */
import { Clock, Duration, Effect, FiberSet, Metric, Queue, Scope, Stream, SubscriptionRef } from "effect"
import { counter, histogram, increment } from "./Metrics.ts"

/** What the queue holds at one moment. */
export interface QueueState {
  /** Keys queued or being handled. */
  readonly active: number
  /** Delayed re-adds still waiting for their delay (a retry's sleep is registered by then). */
  readonly delayed: number
}

export interface WorkQueue {
  /** Queues `key` unless it is already queued. */
  readonly add: (key: string) => Effect.Effect<void>
  /** Queues `key` after `delay`; the key counts as outstanding meanwhile. */
  readonly addAfter: (key: string, delay: Duration.Input) => Effect.Effect<void>
  /** Runs `handler` for queued keys on `concurrency` workers, forever. The handler must not fail. */
  readonly run: (concurrency: number, handler: (key: string) => Effect.Effect<void>) => Effect.Effect<never>
  /** Completes once nothing is queued, being handled or waiting to be re-added. */
  readonly drain: Effect.Effect<void>
  /**
   * Completes once `holds` is true of the queue's state: now, or after a later change. With
   * `active === 0` nothing is in hand, so what happens next waits only on new keys or on the clock
   * (a test moves the clock then, knowing every retry's sleep is registered).
   */
  readonly awaitState: (holds: (state: QueueState) => boolean) => Effect.Effect<void>
  /** The queue's state: the current one first, then every change (a signal, never a poll). */
  readonly states: Stream.Stream<QueueState>
  /** Keys queued or being handled. */
  readonly size: Effect.Effect<number>
}

/**
 * client-go's workqueue metrics (k8s.io/client-go/util/workqueue, as controller-runtime registers
 * them), under their names, for a queue made with a `name` label.
 */
const addsTotal = counter("workqueue_adds_total", "Keys added to the queue (not counting keys already queued).")
const depthGauge = Metric.gauge("workqueue_depth", { description: "Keys waiting in the queue." })
const retriesTotal = counter("workqueue_retries_total", "Keys re-added after a delay (retries).")
/** Seconds; client-go's buckets, 10 ns to 1000 s by powers of ten. */
const QUEUE_BUCKETS = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000]
const queueDuration = histogram("workqueue_queue_duration_seconds", "Seconds a key waits in the queue before a worker takes it.", QUEUE_BUCKETS)
const workDuration = histogram("workqueue_work_duration_seconds", "Seconds a worker spends on one key.", QUEUE_BUCKETS)

/** A queue; with a `name`, it reports client-go's workqueue metrics labelled `name`. */
export const makeNamed = (name: string | undefined): Effect.Effect<WorkQueue, never, Scope.Scope> => Effect.gen(function*() {
  const queue = yield* Queue.unbounded<string>()
  const delayed = yield* FiberSet.make<void>()
  const dirty = new Set<string>()
  const processing = new Set<string>()
  /** When each dirty key was added, for the queue-duration metric. */
  const addedAt = new Map<string, number>()
  let queued = 0
  let waiting = 0
  const state = yield* SubscriptionRef.make<QueueState>({ active: 0, delayed: 0 })
  const label = { name: name ?? "" }
  const measure = (effect: Effect.Effect<void>): Effect.Effect<void> => (name === undefined ? Effect.void : effect)
  const depth = measure(Effect.suspend(() => Metric.update(Metric.withAttributes(depthGauge, label), queued)))

  // Each dirty key not being handled is in `queue` once: `queued` + `processing` are the active keys.
  const refresh = Effect.suspend(() => SubscriptionRef.set(state, { active: queued + processing.size, delayed: waiting }))

  const offer = (key: string): void => {
    Queue.offerUnsafe(queue, key)
    queued += 1
  }

  /** Marks `key` dirty (queueing it unless it is being handled); false when it already was. */
  const addNow = (key: string, now: number): boolean => {
    if (dirty.has(key)) return false
    dirty.add(key)
    if (!addedAt.has(key)) addedAt.set(key, now)
    if (!processing.has(key)) offer(key)
    return true
  }

  const addAt = (key: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.suspend(() => {
        const added = addNow(key, now)
        return Effect.andThen(added ? measure(Effect.andThen(increment(addsTotal, label), depth)) : Effect.void, refresh)
      }))

  const add = (key: string) => addAt(key)

  const addAfter = (key: string, delay: Duration.Input) =>
    Effect.suspend(() => {
      waiting += 1
      return refresh
    }).pipe(
      Effect.andThen(measure(increment(retriesTotal, label))),
      Effect.andThen(FiberSet.run(
        delayed,
        Effect.sleep(delay).pipe(
          Effect.andThen(addAt(key)),
          Effect.ensuring(Effect.suspend(() => {
            waiting -= 1
            return refresh
          }))
        )
      )),
      Effect.asVoid
    )

  const work = (handler: (key: string) => Effect.Effect<void>) =>
    Effect.gen(function*() {
      const key = yield* Queue.take(queue)
      const taken = yield* Clock.currentTimeMillis
      queued -= 1
      dirty.delete(key)
      processing.add(key)
      const since = addedAt.get(key)
      addedAt.delete(key)
      yield* measure(Effect.andThen(Metric.update(Metric.withAttributes(queueDuration, label), since === undefined ? 0 : (taken - since) / 1000), depth))
      yield* handler(key).pipe(
        Effect.ensuring(Effect.gen(function*() {
          const done = yield* Clock.currentTimeMillis
          yield* measure(Metric.update(Metric.withAttributes(workDuration, label), (done - taken) / 1000))
          processing.delete(key)
          if (dirty.has(key)) offer(key)
          yield* depth
          yield* refresh
        }))
      )
    })

  const run = (concurrency: number, handler: (key: string) => Effect.Effect<void>) =>
    Effect.forEach(
      Array.from({ length: concurrency }, (_, i) => i),
      () => Effect.forever(work(handler)),
      { concurrency: "unbounded", discard: true }
    ).pipe(Effect.andThen(Effect.never))

  const awaitState = (holds: (state: QueueState) => boolean) =>
    SubscriptionRef.changes(state).pipe(Stream.filter(holds), Stream.take(1), Stream.runDrain)

  return {
    add,
    addAfter,
    run,
    drain: awaitState((s) => s.active === 0 && s.delayed === 0),
    awaitState,
    states: SubscriptionRef.changes(state),
    size: Effect.sync(() => new Set([...dirty, ...processing]).size)
  } satisfies WorkQueue
})

/** A queue without metrics. */
export const make: Effect.Effect<WorkQueue, never, Scope.Scope> = makeNamed(undefined)

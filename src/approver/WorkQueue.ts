/**
 * A de-duplicating work queue of string keys, client-go's `workqueue` semantics in Effect.
 *
 * Owns: at most one pending entry per key (adding a queued key again is a no-op), per-key serial
 * processing (a key added while it is being processed runs once more afterwards, never twice at the
 * same time), a fixed number of concurrent workers, delayed re-adds for retries, and `drain`.
 * Does not own: what a key means or how failures are retried (the handler and its caller decide).
 *
 * Only keys are held, so memory is proportional to the number of requests awaiting a decision.
 * Everything lives in the scope it is made in: closing it interrupts workers and pending re-adds.
 */
import { Duration, Effect, FiberSet, Queue, Scope, Stream, SubscriptionRef } from "effect"

export interface WorkQueue {
  /** Queues `key` unless it is already queued. */
  readonly add: (key: string) => Effect.Effect<void>
  /** Queues `key` after `delay`; the key counts as outstanding meanwhile. */
  readonly addAfter: (key: string, delay: Duration.Input) => Effect.Effect<void>
  /** Runs `handler` for queued keys on `concurrency` workers, forever. The handler must not fail. */
  readonly run: (concurrency: number, handler: (key: string) => Effect.Effect<void>) => Effect.Effect<never>
  /** Completes once nothing is queued, being handled or waiting to be re-added. */
  readonly drain: Effect.Effect<void>
  /** Keys queued or being handled. */
  readonly size: Effect.Effect<number>
}

export const make: Effect.Effect<WorkQueue, never, Scope.Scope> = Effect.gen(function*() {
  const queue = yield* Queue.unbounded<string>()
  const delayed = yield* FiberSet.make<void>()
  const dirty = new Set<string>()
  const processing = new Set<string>()
  let waiting = 0
  const idle = yield* SubscriptionRef.make(true)

  const refresh = Effect.suspend(() =>
    SubscriptionRef.set(idle, dirty.size === 0 && processing.size === 0 && waiting === 0)
  )

  const addNow = (key: string): void => {
    if (dirty.has(key)) return
    dirty.add(key)
    if (!processing.has(key)) Queue.offerUnsafe(queue, key)
  }

  const add = (key: string) => Effect.suspend(() => {
    addNow(key)
    return refresh
  })

  const addAfter = (key: string, delay: Duration.Input) =>
    Effect.suspend(() => {
      waiting += 1
      return refresh
    }).pipe(
      Effect.andThen(FiberSet.run(
        delayed,
        Effect.sleep(delay).pipe(
          Effect.andThen(Effect.suspend(() => {
            addNow(key)
            return refresh
          })),
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
      dirty.delete(key)
      processing.add(key)
      yield* handler(key).pipe(
        Effect.ensuring(Effect.suspend(() => {
          processing.delete(key)
          if (dirty.has(key)) Queue.offerUnsafe(queue, key)
          return refresh
        }))
      )
    })

  const run = (concurrency: number, handler: (key: string) => Effect.Effect<void>) =>
    Effect.forEach(
      Array.from({ length: concurrency }, (_, i) => i),
      () => Effect.forever(work(handler)),
      { concurrency: "unbounded", discard: true }
    ).pipe(Effect.andThen(Effect.never))

  const drain = SubscriptionRef.changes(idle).pipe(
    Stream.takeUntil((isIdle) => isIdle),
    Stream.runDrain
  )

  return {
    add,
    addAfter,
    run,
    drain,
    size: Effect.sync(() => new Set([...dirty, ...processing]).size)
  } satisfies WorkQueue
})

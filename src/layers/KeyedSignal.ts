/**
 * A wake-up per key: fibers wait for the next change of one key, and a change wakes only the fibers
 * waiting on that key. Used by Issuance, where every waiting publish or renewal watches its own
 * CertificateRequest: one shared change feed woke all of them on every event, so a burst of N
 * publishes cost N² wake-ups (in a storm of 500, a quarter of the driver's CPU went to it).
 *
 * Owns: the waiters' table (one Deferred per key and generation, with a count of its waiters so a
 * key nobody waits on any more leaves the table) and the order "register, then look", which loses
 * no change that lands between a look and the wait.
 */
import { Deferred, Effect, HashMap, Option, Ref } from "effect"

interface Entry {
  readonly deferred: Deferred.Deferred<void>
  readonly waiters: number
}

export interface KeyedSignal {
  /** Wakes every fiber now waiting on `key`; a later wait waits for the next change. */
  readonly notify: (key: string) => Effect.Effect<void>
  /**
   * Runs `look` until it yields a value, waiting for a change of `key` between tries. The wait is
   * registered before each look, so a change between the look and the wait is not missed.
   */
  readonly waitFor: <A, E, R>(key: string, look: Effect.Effect<Option.Option<A>, E, R>) => Effect.Effect<A, E, R>
  /** Keys with a fiber waiting on them: how the tests see that a waiter left the table. */
  readonly waiting: Effect.Effect<number>
}

export const make: Effect.Effect<KeyedSignal> = Effect.gen(function*() {
  const entries = yield* Ref.make(HashMap.empty<string, Entry>())

  const register = (key: string) =>
    Effect.flatMap(Deferred.make<void>(), (fresh) =>
      Ref.modify(entries, (map) => {
        const entry = Option.match(HashMap.get(map, key), {
          onNone: () => ({ deferred: fresh, waiters: 1 }),
          onSome: (e) => ({ deferred: e.deferred, waiters: e.waiters + 1 })
        })
        return [entry.deferred, HashMap.set(map, key, entry)] as const
      }))

  // Only the generation this waiter registered on: after a notify the key may hold a newer one.
  const unregister = (key: string, deferred: Deferred.Deferred<void>) =>
    Ref.update(entries, (map) =>
      Option.match(HashMap.get(map, key), {
        onNone: () => map,
        onSome: (e) =>
          e.deferred !== deferred
            ? map
            : e.waiters <= 1
            ? HashMap.remove(map, key)
            : HashMap.set(map, key, { deferred, waiters: e.waiters - 1 })
      }))

  const notify = (key: string) =>
    Effect.flatMap(
      Ref.modify(entries, (map) => [HashMap.get(map, key), HashMap.remove(map, key)] as const),
      Option.match({ onNone: () => Effect.void, onSome: (e) => Effect.asVoid(Deferred.succeed(e.deferred, undefined)) })
    )

  const waitFor = <A, E, R>(key: string, look: Effect.Effect<Option.Option<A>, E, R>): Effect.Effect<A, E, R> =>
    Effect.gen(function*() {
      while (true) {
        const found: Option.Option<A> = yield* Effect.acquireUseRelease(
          register(key),
          (deferred) =>
            Effect.flatMap(look, (o): Effect.Effect<Option.Option<A>> => (Option.isSome(o) ? Effect.succeed(o) : Effect.as(Deferred.await(deferred), o))),
          (deferred) => unregister(key, deferred)
        )
        if (Option.isSome(found)) return found.value
      }
    })

  return { notify, waitFor, waiting: Effect.map(Ref.get(entries), HashMap.size) }
})

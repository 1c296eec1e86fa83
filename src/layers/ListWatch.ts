/**
 * The one list-and-watch loop of the project (client-go's reflector, without its cache): list, watch
 * from the list's resourceVersion with bookmarks, resume from the last resourceVersion seen when a
 * watch closes, relist when it is Gone or after any failure, reconnect on a named `Schedule`
 * (`Schedules.watchReconnect` unless told otherwise), never die.
 *
 * Owns: the resourceVersion bookkeeping, the reconnect backoff (reset by every list or event that
 * arrives) and telling the caller when the API answered again after failing (`onRecovered`).
 * Does not own: what the events mean (the caller's handlers), caching, logging of the caller's state.
 *
 * Relisting after a failure, not only after Gone, is deliberate: a list is the first call that proves
 * the API server answers again (a resumed watch may stay silent for minutes), and it brings the
 * caller level with everything that changed while it could not see.
 */
import { Clock, Duration, Effect, Schedule, Stream } from "effect"
import type { Resource } from "../domain/KubeObjects.ts"
import * as Schedules from "../domain/Schedules.ts"
import type { KubeClientShape, KubeError, ListOptions } from "../services/KubeClient.ts"

/** What a list-and-watch needs of an object: its resourceVersion. */
export interface Versioned {
  readonly metadata: { readonly resourceVersion?: string | undefined }
}

export type ObjectEvent<A> = { readonly type: "ADDED" | "MODIFIED" | "DELETED"; readonly object: A }

/** How a watch ended: closed by the server, expired (410 Gone), or failed. */
export type WatchEnding = "closed" | "gone" | "error"

export interface ListWatchHandlers<A, R> {
  /** Every selected object, after each successful list: the caller replaces what it knew. */
  readonly onList: (items: ReadonlyArray<A>) => Effect.Effect<void, never, R>
  /** One change seen by the watch, in order. */
  readonly onEvent: (event: ObjectEvent<A>) => Effect.Effect<void, never, R>
  /** A list succeeded after a failed list or watch: the API server answers again. */
  readonly onRecovered?: Effect.Effect<void, never, R>
  /** Each watch's end (metrics). */
  readonly onWatchEnd?: (ending: WatchEnding) => Effect.Effect<void, never, R>
}

export interface ListWatchOptions extends ListOptions {
  /** Names the loop in its log lines ("certificaterequest watch"). */
  readonly name: string
  /** Reconnect delays; `Schedules.watchReconnect` by default. */
  readonly reconnect?: Schedule.Schedule<unknown>
}

/** Runs forever (interrupt it to stop); failures are logged and retried, never returned. */
export const run = <A extends Versioned, R>(
  kube: KubeClientShape,
  resource: Resource<A>,
  options: ListWatchOptions,
  handlers: ListWatchHandlers<A, R>
): Effect.Effect<never, never, R> =>
  Effect.gen(function*() {
    const { name, reconnect = Schedules.watchReconnect, ...selection } = options
    const freshStep = Schedule.toStep(reconnect)
    let step = yield* freshStep
    /** The backoff has advanced since the last delivered event. */
    let backingOff = false
    /** A list or watch failed and no list has succeeded since. */
    let failed = false
    let resourceVersion: string | undefined
    /** Consecutive watches the server closed without delivering anything. */
    let emptyCloses = 0

    const backoff = Effect.gen(function*() {
      const [, delay] = yield* Effect.orDie(step(yield* Clock.currentTimeMillis, undefined))
      backingOff = true
      return delay
    })

    const resetBackoff = Effect.suspend(() => {
      if (!backingOff) return Effect.void
      backingOff = false
      return Effect.map(freshStep, (s) => {
        step = s
      })
    })

    const pause = (what: string, error: KubeError) =>
      Effect.gen(function*() {
        failed = true
        const delay = yield* backoff
        yield* Effect.logWarning(`${name} failed (${what}); reconnecting`, { error: error.message, retryIn: Duration.format(delay) })
        yield* Effect.sleep(delay)
      })

    const list = Effect.gen(function*() {
      const listed = yield* Effect.result(kube.list(resource, selection))
      if (listed._tag === "Failure") return yield* pause("list", listed.failure)
      yield* handlers.onList(listed.success.items)
      resourceVersion = listed.success.resourceVersion
      emptyCloses = 0
      if (failed) {
        failed = false
        if (handlers.onRecovered !== undefined) yield* handlers.onRecovered
      }
    })

    const watch = (from: string) =>
      Effect.gen(function*() {
        let delivered = false
        const watched = yield* Effect.result(
          kube.watch(resource, { ...selection, resourceVersion: from }).pipe(
            Stream.runForEach((event) =>
              Effect.gen(function*() {
                delivered = true
                yield* resetBackoff
                if (event.type === "BOOKMARK") {
                  resourceVersion = event.resourceVersion
                  return
                }
                resourceVersion = event.object.metadata.resourceVersion ?? resourceVersion
                yield* handlers.onEvent(event)
              })
            )
          )
        )
        const ending: WatchEnding = watched._tag === "Success" ? "closed" : watched.failure.reason === "Gone" ? "gone" : "error"
        if (handlers.onWatchEnd !== undefined) yield* handlers.onWatchEnd(ending)
        if (watched._tag === "Failure") {
          resourceVersion = undefined
          if (ending === "gone") yield* Effect.logInfo(`${name} expired (410 Gone); relisting`)
          else yield* pause("watch", watched.failure)
          return
        }
        // A quiet close is normal (the server's timeout); only a repeat of an empty one warrants a pause.
        emptyCloses = delivered ? 0 : emptyCloses + 1
        if (emptyCloses >= 2) yield* Effect.sleep(yield* backoff)
      })

    return yield* Effect.forever(Effect.suspend(() => (resourceVersion === undefined ? list : watch(resourceVersion))))
  })

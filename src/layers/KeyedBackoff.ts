/**
 * Per-key retry delays for a controller's work queue: each failing key walks its own copy of one
 * named Schedule (from `domain/Schedules.ts`), so a key that keeps failing backs off while a key
 * failing for the first time retries at the schedule's first delay. `forget` resets a key once it
 * succeeds (or is dropped). The steps live in one Ref; a key is never reconciled twice at once (the
 * work queue guarantees it), so a key's step is never taken by two fibers.
 * Used by the approver's and the signer's controllers.
 */
import { Clock, Effect, Ref, Schedule } from "effect"
import type { Duration, Pull } from "effect"

type Step = (now: number, input: unknown) => Pull.Pull<[unknown, Duration.Duration], never, unknown>

export interface KeyedBackoff {
  /** The delay before `key`'s next attempt: the next step of its schedule (a fresh one on its first failure). */
  readonly delay: (key: string) => Effect.Effect<Duration.Duration>
  /** Forgets `key`'s failures: its next failure starts the schedule again. */
  readonly forget: (key: string) => Effect.Effect<void>
}

export const make = <Out>(schedule: Schedule.Schedule<Out, unknown>): Effect.Effect<KeyedBackoff> =>
  Effect.gen(function*() {
    const steps = yield* Ref.make<ReadonlyMap<string, Step>>(new Map())
    const forget = (key: string) =>
      Ref.update(steps, (map) => {
        if (!map.has(key)) return map
        const next = new Map(map)
        next.delete(key)
        return next
      })
    const delay = (key: string) =>
      Effect.gen(function*() {
        let step = (yield* Ref.get(steps)).get(key)
        if (step === undefined) {
          const fresh: Step = yield* Schedule.toStep(schedule)
          step = fresh
          yield* Ref.update(steps, (map) => new Map(map).set(key, fresh))
        }
        const [, next] = yield* Effect.orDie(step(yield* Clock.currentTimeMillis, undefined))
        return next
      })
    return { delay, forget }
  })

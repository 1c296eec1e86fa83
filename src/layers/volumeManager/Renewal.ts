/**
 * One renewal fiber per volume, in a FiberMap owned by the layer's scope.
 *
 * Owns: sleeping until the volume's renewal instant, attempting until one issuance succeeds on
 * `Schedules.renewalRetry` (stepped by hand, because a wake-up must end the wait and start the
 * backoff over), the volume's `retryAt`, announcing each change of it on `statusChanged`, and waking
 * every waiting renewal (one volume renewed after failures; the API connection back).
 * Does not own: the delays themselves (`domain/Schedules.ts`), the issuance (`Issue.ts`), which
 * volumes have a fiber (publish starts one; unpublish and the undo of a first publish stop it).
 */
import { Clock, Deferred, Duration, Effect, FiberMap, PubSub, Random, Ref, Schedule } from "effect"
import { renewalRetry } from "../../domain/Schedules.ts"
import { DriverConfig } from "../../services/DriverConfig.ts"
import type { Issue } from "./Issue.ts"
import type { Volumes, VolumeState } from "./State.ts"
import { wakeUp } from "./State.ts"

export const make = (volumes: Volumes, issue: Issue) =>
  Effect.gen(function*() {
    const policy = (yield* DriverConfig).renewal
    const renewals = yield* FiberMap.make<string>()

    /** Every volume waiting on a renewal backoff tries again now. */
    const wakeAll = Effect.flatMap(volumes.all, (all) => Effect.forEach(all, wakeUp, { discard: true }))

    /**
     * Attempts until one issuance succeeds, on `Schedules.renewalRetry`: "not ready" (no token since
     * a restart, no issuer, request still pending) on the short schedule, real failures backing off
     * as the original does but never past the certificate's expiry. A wake-up (fresh token, API
     * connection back, another volume renewed after failures) ends the wait at once and starts the
     * backoff over.
     */
    const renewUntilIssued = (state: VolumeState) =>
      Effect.gen(function*() {
        let step = yield* Schedule.toStep(renewalRetry(policy))
        let failed = false
        /** One attempt and, when it fails, its backoff wait; true once the volume is renewed. */
        const attempt = Effect.gen(function*() {
          const woken = yield* Ref.get(state.wake)
          const result = yield* state.lock.withPermit(issue.issueAndWrite(state, "renewal")).pipe(Effect.result)
          if (result._tag === "Success") {
            yield* Ref.set(state.retryAt, undefined)
            yield* PubSub.publish(volumes.statusChanged, state.volumeId)
            // The issuer answers again: the others need not sit out their backoff.
            if (failed) yield* wakeAll
            return true
          }
          failed = true
          const e = result.failure
          const notReady = e._tag === "IssuanceError" && (e.reason === "NotReady" || e.reason === "Timeout")
          const now = yield* Clock.currentTimeMillis
          const sample = yield* Random.next
          const notAfter = (yield* Ref.get(state.meta)).notAfter
          const [, delay] = yield* Effect.orDie(step(now, { kind: notReady ? "NotReady" : "Failed", notAfter, sample }))
          const millis = Duration.toMillis(delay)
          yield* (notReady ? Effect.logDebug : Effect.logWarning)("renewal attempt did not complete", {
            volume: state.volumeId,
            reason: e._tag === "IssuanceError" ? e.reason : e._tag,
            error: e.message,
            retryInMillis: millis
          })
          yield* Ref.set(state.retryAt, now + millis)
          // The change is announced by the second racer, which runs after the first has started its
          // sleep: whoever waits for it (awaitStatus) and then moves the clock cannot race the sleep.
          const wokenUp = yield* Effect.raceFirst(
            Effect.as(Effect.sleep(delay), false),
            PubSub.publish(volumes.statusChanged, state.volumeId).pipe(Effect.andThen(Deferred.await(woken)), Effect.as(true))
          )
          if (wokenUp) {
            yield* Effect.logInfo("renewal woken before its backoff ended", { volume: state.volumeId })
            step = yield* Schedule.toStep(renewalRetry(policy))
          }
          return false
        })
        yield* Effect.repeat(attempt, { until: (renewed) => renewed })
      })

    /** Renews the volume when due, forever. */
    const renewalLoop = (state: VolumeState) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const due = (yield* Ref.get(state.meta)).nextIssuanceAt ?? now
        if (due > now) yield* Effect.sleep(due - now)
        yield* renewUntilIssued(state)
      }).pipe(Effect.forever, Effect.annotateLogs({ component: "renewal" }))

    return {
      /** Starts the volume's renewal fiber unless it runs: kubelet retries publish, a healthy loop stays. */
      start: (state: VolumeState) => FiberMap.run(renewals, state.volumeId, renewalLoop(state), { onlyIfMissing: true }).pipe(Effect.asVoid),
      /** Stops the volume's renewal fiber, if one runs. */
      stop: (volumeId: string) => FiberMap.remove(renewals, volumeId),
      /** Volumes with a running renewal fiber. */
      size: FiberMap.size(renewals),
      wakeAll
    }
  })

export type Renewals = Effect.Success<ReturnType<typeof make>>

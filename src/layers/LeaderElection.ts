/**
 * LeaderElection implementations.
 *
 * Owns: the Lease algorithm (client-go's `leaderelection` with a `LeaseLock`): acquire when the lease
 * is absent, released (empty holder) or not renewed for `leaseDuration` as seen on *our* clock (we
 * time how long the record stayed unchanged, never trusting the other holder's timestamps); renew
 * every `retryPeriod`; give leadership up when no renewal succeeded for `renewDeadline`; release the
 * lease on shutdown so a successor need not wait. Time comes only from `Clock`.
 * Does not own: what runs while leading (callers pass it to `whileLeader`).
 *
 * Safety rests on `renewDeadline < leaseDuration`: a leader that cannot renew stops its work (after
 * `renewDeadline`) before any other replica may take the lease (after `leaseDuration` unchanged).
 */
import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import { Clock, Duration, Effect, Layer, Ref, Stream, SubscriptionRef } from "effect"
import { ApproverConfig } from "../services/ApproverConfig.ts"
import { type Lease, Leases } from "../domain/KubeObjects.ts"
import * as Schedules from "../domain/Schedules.ts"
import { rfc3339Micro } from "../domain/UtcTime.ts"
import { KubeClient } from "../services/KubeClient.ts"
import type { KubeError } from "../services/KubeClient.ts"
import { LeaderElection } from "../services/LeaderElection.ts"
import type { LeaderElectionShape } from "../services/LeaderElection.ts"

export interface LeaseTimings {
  /** How long a lease stays valid after its last observed change; a successor waits this long. */
  readonly leaseDuration: Duration.Duration
  /** How long the leader keeps leading without a successful renewal. Must be < leaseDuration. */
  readonly renewDeadline: Duration.Duration
  /** Pause between acquisition attempts and between renewals. */
  readonly retryPeriod: Duration.Duration
}

/**
 * controller-runtime's defaults (`pkg/manager`: LeaseDuration 15 s, RenewDeadline 10 s, RetryPeriod
 * 2 s), which the Go approver uses unchanged: a failover takes at most ~17 s, a leader renews about
 * five times per lease, and stops 5 s before anyone else may start.
 */
export const DEFAULT_TIMINGS: LeaseTimings = {
  leaseDuration: Duration.seconds(15),
  renewDeadline: Duration.seconds(10),
  retryPeriod: Duration.seconds(2)
}

/** A released lease is written with this duration (client-go does the same) so it expires at once. */
const RELEASED_LEASE_SECONDS = 1

/** Bound on the release write at shutdown: shutdown must not hang on an unreachable API server. */
const RELEASE_TIMEOUT = Duration.seconds(5)

export interface LeaseOptions {
  readonly namespace: string
  /** The Lease's name; the approver uses `--csi-driver-name`. */
  readonly name: string
  /** This replica's holder identity; unique per process. */
  readonly identity: string
  readonly timings?: LeaseTimings
}

/** `metav1.MicroTime` on the wire. */
const microTime = rfc3339Micro

/**
 * `whileLeader` over a stream of leadership states. Work that stops while we still lead is restarted
 * on `Schedules.leaderWorkRestart` (the original: process exit).
 */
const whileLeaderOf = (states: Stream.Stream<boolean>): LeaderElectionShape["whileLeader"] => (work) => {
  const supervised = work.pipe(
    Effect.catchCause((cause) => Effect.logError("leader work stopped; restarting", cause)),
    Effect.repeat(Schedules.leaderWorkRestart)
  )
  return states.pipe(
    Stream.changes,
    Stream.switchMap((leading) => (leading ? Stream.fromEffect(supervised) : Stream.empty)),
    Stream.runDrain,
    Effect.andThen(Effect.never)
  )
}

/**
 * Runs the election for `options` in the current scope. The returned service reflects this process's
 * state; on scope close the work is stopped and a held lease is released.
 */
export const make = Effect.fn("LeaderElection.make")(function*(options: LeaseOptions) {
  const kube = yield* KubeClient
  const timings = options.timings ?? DEFAULT_TIMINGS
  const leaseMillis = Duration.toMillis(timings.leaseDuration)
  const leaseSeconds = Math.ceil(leaseMillis / 1000)
  const renewDeadlineMillis = Duration.toMillis(timings.renewDeadline)
  const leading = yield* SubscriptionRef.make(false)
  /**
   * Whether our last write made us the holder. Set the moment the write succeeds, before `leading`:
   * a scope closed between the two (a fast shutdown after start-up) must still release the lease.
   */
  const held = yield* Ref.make(false)
  const { namespace, name, identity } = options

  /** The last lease spec we saw and when it changed, on our clock; `at` of the returned value. */
  const observed = yield* Ref.make<{ readonly record: string; readonly at: number } | undefined>(undefined)
  const observe = (spec: Lease["spec"], now: number): Effect.Effect<number> =>
    Ref.modify(observed, (last) => {
      const record = JSON.stringify(spec ?? {})
      const next = last?.record === record ? last : { record, at: now }
      return [next.at, next] as const
    })

  /** One attempt (client-go `tryAcquireOrRenew`): true when we hold the lease afterwards. */
  const tryAcquireOrRenew: Effect.Effect<boolean, KubeError> = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const lease = yield* kube.get(Leases, namespace, name)
    if (lease === undefined) {
      const created = yield* kube.create(Leases, namespace, {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name, namespace },
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: leaseSeconds,
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: 0
        }
      })
      yield* Ref.set(held, true)
      yield* observe(created.spec, now)
      return true
    }
    const spec = lease.spec ?? {}
    const unchangedSince = yield* observe(spec, now)
    const holder = spec.holderIdentity ?? ""
    const mine = holder === identity
    const validFor = (spec.leaseDurationSeconds ?? leaseSeconds) * 1000
    if (!mine && holder !== "" && unchangedSince + validFor > now) return false
    const transitions = spec.leaseTransitions ?? 0
    const updated = yield* kube.replace(Leases, namespace, name, {
      ...lease,
      spec: {
        holderIdentity: identity,
        leaseDurationSeconds: leaseSeconds,
        acquireTime: mine ? spec.acquireTime ?? microTime(now) : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: mine ? transitions : transitions + 1
      }
    })
    yield* Ref.set(held, true)
    yield* observe(updated.spec, now)
    return true
  })

  /**
   * One attempt within `budget`: held, or why not. Losing a race (Conflict, AlreadyExists), an API
   * error and running out of time all count as "not held"; the reason is kept for the log.
   */
  const attempt = (budget: Duration.Duration): Effect.Effect<{ readonly held: boolean; readonly why?: string }> =>
    tryAcquireOrRenew.pipe(
      Effect.map((held) => (held ? { held } : { held, why: "the lease is held by another replica" })),
      Effect.catchTag("KubeError", (e) => Effect.succeed({ held: false, why: e.message })),
      Effect.timeoutOption(budget),
      Effect.map((r) => (r._tag === "Some" ? r.value : { held: false, why: `no answer from the API server within ${Duration.format(budget)}` }))
    )

  const acquire = attempt(timings.renewDeadline).pipe(
    Effect.tap((r) =>
      r.held || r.why === undefined || r.why === "the lease is held by another replica"
        ? Effect.void
        : Effect.logWarning("leader election: acquiring the lease failed", { cause: r.why })
    ),
    Effect.repeat({ schedule: Schedules.leaseRetry(timings.retryPeriod), until: (r) => r.held })
  )

  /**
   * Renews every retry period until `renewDeadline` passes without a successful renewal; returns why
   * the last attempt failed. Each failed renewal is logged with its cause: a leader must never lose
   * its lease without a line saying why.
   */
  const renew = Effect.gen(function*() {
    /** When the last renewal succeeded (our clock) and why the last attempt failed. */
    const renewal = yield* Ref.make({ lastRenewal: yield* Clock.currentTimeMillis, lastCause: "no renewal attempt completed" })
    const renewOnce = Effect.gen(function*() {
      const before = yield* Ref.get(renewal)
      const left = before.lastRenewal + renewDeadlineMillis - (yield* Clock.currentTimeMillis)
      const r = left > 0 ? yield* attempt(Duration.millis(left)) : { held: false, why: before.lastCause }
      const now = yield* Clock.currentTimeMillis
      if (r.held) {
        yield* Ref.update(renewal, (t) => ({ ...t, lastRenewal: now }))
        return false
      }
      const { lastRenewal, lastCause } = yield* Ref.updateAndGet(renewal, (t) => ({ ...t, lastCause: r.why ?? t.lastCause }))
      yield* Effect.logWarning("leader election: renewing the lease failed", {
        cause: lastCause,
        stepsDownIn: Duration.format(Duration.millis(Math.max(0, renewDeadlineMillis - (now - lastRenewal))))
      })
      return now - lastRenewal >= renewDeadlineMillis
    })
    yield* Effect.sleep(timings.retryPeriod)
    yield* renewOnce.pipe(Effect.repeat({ schedule: Schedules.leaseRetry(timings.retryPeriod), until: (lost) => lost }))
    return (yield* Ref.get(renewal)).lastCause
  })

  const release = Effect.gen(function*() {
    const lease = yield* kube.get(Leases, namespace, name)
    if (lease?.spec?.holderIdentity !== identity) return
    const now = yield* Clock.currentTimeMillis
    yield* kube.replace(Leases, namespace, name, {
      ...lease,
      spec: {
        holderIdentity: "",
        leaseDurationSeconds: RELEASED_LEASE_SECONDS,
        acquireTime: microTime(now),
        renewTime: microTime(now),
        leaseTransitions: lease.spec.leaseTransitions ?? 0
      }
    })
  }).pipe(
    Effect.timeoutOption(RELEASE_TIMEOUT),
    Effect.catchCause((cause) => Effect.logWarning("leader election: releasing the lease failed", cause))
  )

  const term = Effect.gen(function*() {
    yield* acquire
    yield* Effect.logInfo("leader election: became leader").pipe(Effect.annotateLogs({ lease: `${namespace}/${name}` }))
    yield* SubscriptionRef.set(leading, true)
    const cause = yield* renew
    // Stepped down: after renewDeadline without a renewal another replica may hold it by now, so
    // shutdown must not write to it (client-go releases only a lease it still leads with).
    yield* Ref.set(held, false)
    yield* SubscriptionRef.set(leading, false)
    yield* Effect.logWarning("leader election: lost the lease", { cause }).pipe(Effect.annotateLogs({ lease: `${namespace}/${name}` }))
  })

  // Registered before the election fiber is forked, so it runs after that fiber is interrupted.
  // `held`, not `leading`: the lease may be ours although `leading` was not set yet.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      yield* SubscriptionRef.set(leading, false)
      if (yield* Ref.getAndSet(held, false)) yield* release
    })
  )
  yield* Effect.forkScoped(Effect.forever(term))

  return LeaderElection.of({
    isLeader: SubscriptionRef.get(leading),
    whileLeader: whileLeaderOf(SubscriptionRef.changes(leading))
  })
})

/** Lease election for `options`. */
export const layerLease = (options: LeaseOptions): Layer.Layer<LeaderElection, never, KubeClient> =>
  Layer.effect(LeaderElection, make(options))

/** This process's holder identity, as client-go builds it: host name plus a unique suffix. */
export const defaultIdentity: Effect.Effect<string> = Effect.sync(() => `${hostname()}_${randomUUID()}`)

/**
 * The approver's election: Lease `--csi-driver-name` in `--leader-election-namespace`, default timings,
 * a fresh identity per process.
 */
export const layer: Layer.Layer<LeaderElection, never, KubeClient | ApproverConfig> = Layer.effect(
  LeaderElection,
  Effect.gen(function*() {
    const config = yield* ApproverConfig
    const identity = yield* defaultIdentity
    return yield* make({ namespace: config.leaderElectionNamespace, name: config.csiDriverName, identity })
  })
)

/** Always leading: one replica, or tests of the work itself. */
export const layerAlwaysLeader: Layer.Layer<LeaderElection> = Layer.succeed(
  LeaderElection,
  LeaderElection.of({ isLeader: Effect.succeed(true), whileLeader: whileLeaderOf(Stream.make(true)) })
)

/** Leadership flipped by hand with `set`, for tests of what happens when it is gained or lost. */
export const makeManual = Effect.gen(function*() {
  const leading = yield* SubscriptionRef.make(false)
  return {
    service: LeaderElection.of({
      isLeader: SubscriptionRef.get(leading),
      whileLeader: whileLeaderOf(SubscriptionRef.changes(leading))
    }),
    set: (value: boolean) => SubscriptionRef.set(leading, value)
  }
})


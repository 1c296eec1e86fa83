/**
 * Every retry and backoff of the driver, the approver and the signer, named once, as `Schedule`s.
 *
 * Owns: the delays and why each number is what it is. Callers run them with `Effect.retry`,
 * `Effect.repeat` or, where a wait must also end on a signal (a renewal woken by a fresh token),
 * step them with `Schedule.toStep` and race the delay against that signal.
 * Does not own: when a retry is reset (the caller makes a fresh step after a success).
 */
import { Duration, Effect, Schedule } from "effect"
import type { RenewalPolicy } from "./Renewal.ts"
import { failureDelay, notReadyDelay } from "./Renewal.ts"

/** Doubling from `first` on every attempt, never longer than `cap` between two. */
const cappedExponential = (first: Duration.Input, cap: Duration.Input): Schedule.Schedule<Duration.Duration> =>
  Schedule.min([Schedule.exponential(first, 2), Schedule.spaced(cap)])

/**
 * Reconnecting a list or watch after a failure: client-go's reflector backoff
 * (`NewExponentialBackoffManager(800ms, 30s, …)`): the first retry is quick, and a restarting API
 * server is not stampeded by every watcher of the cluster at once. The CA bundle's directory watch
 * is set up again on it too (a failing inotify watch is not retried in a tight loop).
 */
export const watchReconnect: Schedule.Schedule<Duration.Duration> = cappedExponential("800 millis", "30 seconds")

/**
 * Retrying one approver key whose reconcile failed: usually a transient 503 or throttling, so it
 * starts at 50 ms; a minute bounds how long a pod waits on the approver after the API recovers.
 */
export const reconcileRetry: Schedule.Schedule<Duration.Duration> = cappedExponential("50 millis", "60 seconds")

/**
 * Requeueing an approver key whose status write an admission webhook refused (cert-manager's webhook
 * refuses the approval of a request whose issuerRef names a signer the approver may not approve, such
 * as an unknown issuer group). That is a configuration fault, not a transient one: a quarter of an
 * hour costs four writes an hour per request instead of sixty, and an administrator's fix (RBAC, the
 * issuer) still takes effect without a restart. Any change to the request requeues it at once anyway.
 */
export const statusRefusedRequeue: Duration.Duration = Duration.minutes(15)

/**
 * Redoing a status write that failed with 409 Conflict, each time on a fresh read, in the approver
 * (a CertificateRequest) and the signer (a PodCertificateRequest): the other writer (cert-manager
 * adding its own condition, usually) is done within milliseconds, so the first retry comes after
 * 10 ms (client-go's `retry.DefaultRetry` step). Five retries, doubling, span about 300 ms; a key
 * still conflicting after that goes back to its work queue, whose own backoff (`reconcileRetry`,
 * `podCertificateRetry`) takes over.
 */
export const conflictRetry: Schedule.Schedule<Duration.Duration> = Schedule.exponential("10 millis", 2).pipe(
  Schedule.upTo({ times: 5 })
)

/**
 * Offering the kubelet plugin registration socket again after the n-th failed registration in a
 * row: 10 s doubling to 5 min, the kubelet's back-off for a restarting container (its
 * `CrashLoopBackOff`: 10 s initial, 300 s cap), which is what a failed node-driver-registrar sidecar
 * gets. A successful registration starts the schedule afresh.
 */
export const registrationReoffer: Schedule.Schedule<Duration.Duration> = cappedExponential("10 seconds", "5 minutes")

/** Attempts to acquire (or renew) a lease, one per retry period (client-go's `RetryPeriod`). */
export const leaseRetry = (retryPeriod: Duration.Duration): Schedule.Schedule<number> => Schedule.spaced(retryPeriod)

/**
 * Restarting the leader's work after it stopped while still leading. The original exits the process
 * and lets the kubelet restart it; two seconds (one lease retry period) keeps a crash loop from
 * spinning while recovering as fast as a restart would.
 */
export const leaderWorkRestart: Schedule.Schedule<number> = Schedule.spaced("2 seconds")

/**
 * The idle GC's collections while a process stays idle (`layers/IdleGc.ts`): one a minute. An idle
 * approver still renews its Lease every 2 s and refreshes its connection pool every 5 minutes, and
 * V8 starts no major GC while its old generation is under its limit, so that garbage piled up: on
 * the real plane 75.4 MiB after the collection that followed a burst, 87.6 five minutes later, 79.3
 * after one more (bench/results/footprint.md, round 6). One collection of a 24 MiB heap takes about
 * 65 ms of CPU, so a minute apart they cost about 0.1 % of a core; further apart the pile grows by
 * over a MiB between them.
 */
export const idleGcAgain: Schedule.Schedule<number> = Schedule.spaced("1 minute")

/** What the renewal schedule is told about each failed attempt. */
export interface RenewalAttempt {
  /** "not ready" (no token, no issuer, request still pending) or a real failure. */
  readonly kind: "NotReady" | "Failed"
  /** NotAfter of the certificate the volume serves (epoch ms), when it has one. */
  readonly notAfter: number | undefined
  /** A uniform sample in [0, 1) for the failure jitter. */
  readonly sample: number
}

/**
 * Retrying a volume's renewal: "not ready" on the short schedule (`notReadyDelay`), failures on the
 * long one (`failureDelay`), except that no failure delay ever reaches past the certificate's
 * NotAfter, and once the certificate has expired every retry is on the short schedule — a pod with
 * an expired SVID must get a fresh one as soon as the issuer can sign it. The counts of the two
 * kinds are kept apart, so a "not ready" between failures does not shorten the long backoff.
 */
export const renewalRetry = (policy: RenewalPolicy): Schedule.Schedule<Duration.Duration, RenewalAttempt> =>
  Schedule.fromStepWithMetadata(Effect.sync(() => {
    let failures = 0
    let shortRetries = 0
    return (meta: Schedule.InputMetadata<RenewalAttempt>) =>
      Effect.sync(() => {
        const { kind, notAfter, sample } = meta.input
        const expired = notAfter !== undefined && meta.now >= notAfter
        let millis: number
        if (kind === "NotReady" || expired) {
          millis = notReadyDelay(policy, shortRetries++)
        } else {
          millis = failureDelay(policy, failures++, sample)
          if (notAfter !== undefined) millis = Math.min(millis, notAfter - meta.now)
        }
        const delay = Duration.millis(millis)
        return [delay, delay] as [Duration.Duration, Duration.Duration]
      })
  }))

/**
 * Retrying the signer's intermediate CA request after it failed (API error, denial, issuer failure,
 * no answer in time): cert-manager and the approver answer in seconds, so the first retry comes after
 * a second; the one-minute cap keeps a recovered issuer in use within a minute, well inside the
 * bound after which waiting PodCertificateRequests are failed (`PodCertificate` signer, 5 min).
 */
export const intermediateRetry: Schedule.Schedule<Duration.Duration> = cappedExponential("1 second", "60 seconds")

/**
 * Retrying one PodCertificateRequest whose status write failed (a conflict with another writer, a
 * 5xx): quick, since every request must be answered long before the kube-controller-manager's
 * 15-minute cleanup; capped at 30 s.
 */
export const podCertificateRetry: Schedule.Schedule<Duration.Duration> = cappedExponential("100 millis", "30 seconds")

/**
 * When a volume's certificate is renewed, and how long to wait after a failure.
 *
 * Owns: the renewal instant (a fraction of the leaf's actual lifetime, the original's 2/3, plus a
 * bounded jitter so pods started together do not renew together) and the two retry classes:
 * "issuance failed" (the original's 30 s doubling to a 5 min cap: an issuer in trouble should not
 * be hammered, and the certificate still has a third of its life) and "not ready yet" (no token
 * since a restart, or no issuer configured: a wait state that ends on its own, so it retries fast).
 * Pure functions; the random samples are passed in so tests are exact. How the two classes combine
 * with the certificate's expiry (never wait past NotAfter; once expired, only the short schedule) is
 * `Schedules.renewalRetry`.
 */

export interface RenewalPolicy {
  /** Fraction of the lifetime after NotBefore at which to renew (csi-lib: 2/3). */
  readonly ratio: number
  /** Half-width of the uniform jitter, as a fraction of the lifetime (0.05 → ±5 %, i.e. 61.7 %–71.7 %). */
  readonly jitter: number
  /** First delay after a failed issuance (csi-lib: 30 s). */
  readonly failureBaseMillis: number
  /** Growth factor per consecutive failure (csi-lib: 2). */
  readonly failureFactor: number
  /** Longest delay between failed attempts (csi-lib: 5 min). */
  readonly failureCapMillis: number
  /** Random extra on a failure delay, as a fraction (csi-lib: 0.5 → adds 0–50 %). */
  readonly failureJitter: number
  /** First delay while not ready (csi-lib's gate backoff: 1 s). */
  readonly notReadyBaseMillis: number
  /** Longest delay while not ready (csi-lib's gate backoff: 10 s). */
  readonly notReadyCapMillis: number
}

export const defaultPolicy: RenewalPolicy = {
  ratio: 2 / 3,
  jitter: 0.05,
  failureBaseMillis: 30_000,
  failureFactor: 2,
  failureCapMillis: 300_000,
  failureJitter: 0.5,
  notReadyBaseMillis: 1_000,
  notReadyCapMillis: 10_000
}

/**
 * The instant to renew a leaf valid from `notBefore` to `notAfter` (epoch ms). `sample` is uniform in
 * [0, 1); 0.5 means no jitter. Never before NotBefore, never at or after NotAfter.
 */
export const renewalInstant = (policy: RenewalPolicy, notBefore: number, notAfter: number, sample: number): number => {
  const lifetime = Math.max(0, notAfter - notBefore)
  const offset = lifetime * policy.ratio + (sample * 2 - 1) * policy.jitter * lifetime
  const at = Math.floor(notBefore + offset)
  return Math.min(Math.max(at, notBefore), Math.max(notBefore, notAfter - 1))
}

/** Delay before retry number `attempt` (0 for the first retry) after a failed issuance. */
export const failureDelay = (policy: RenewalPolicy, attempt: number, sample: number): number => {
  const base = Math.min(policy.failureBaseMillis * policy.failureFactor ** attempt, policy.failureCapMillis)
  return Math.floor(base * (1 + sample * policy.failureJitter))
}

/** Delay before retry number `attempt` while the volume is not ready to request (doubling, capped). */
export const notReadyDelay = (policy: RenewalPolicy, attempt: number): number =>
  Math.min(policy.notReadyBaseMillis * 2 ** attempt, policy.notReadyCapMillis)

/**
 * Leader election among approver replicas: only the leader decides CertificateRequests.
 *
 * Owns: whether this process leads now, and running work only while it does (started on acquiring
 * the lease, interrupted on losing it, restarted when leadership comes back). Losing the lease never
 * ends the process.
 * Does not own: the work itself (the approver's Controller) or readiness/metrics servers (they read
 * `isLeader`).
 *
 * Implementations: `layers/LeaderElection.ts` — `layer` (a coordination.k8s.io/v1 Lease, client-go's
 * algorithm and controller-runtime's timings), `layerAlwaysLeader` (a single replica, or tests) and
 * `makeManual` (tests flip leadership by hand).
 */
import { Context } from "effect"
import type { Effect } from "effect"

export interface LeaderElectionShape {
  /** True while this process holds the lease. */
  readonly isLeader: Effect.Effect<boolean>
  /**
   * Runs `work` each time this process becomes leader and interrupts it when leadership is lost.
   * Never completes by itself; a failure of `work` is logged and the work is restarted on the next
   * term. Interrupting the returned effect interrupts the work.
   */
  readonly whileLeader: <A, E, R>(work: Effect.Effect<A, E, R>) => Effect.Effect<never, never, R>
}

export class LeaderElection extends Context.Service<LeaderElection, LeaderElectionShape>()(
  "csi-driver-spiffe/services/LeaderElection"
) {}

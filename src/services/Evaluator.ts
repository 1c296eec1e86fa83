/**
 * The approver's decision for one CertificateRequest.
 *
 * Owns: the contract `CertificateRequest → Decision`. The decision is a value (`domain/Decision.ts`),
 * not an error; this service never fails: an unreadable CSR is a denial reason, not an error.
 * Does not own: the rules (`domain/SpiffeRules.ts`), writing the decision (`approver/Reconcile.ts`).
 *
 * Implementations: `approver/Evaluator.ts` — `layer` (reads `ApproverConfig` and the current issuer
 * from `IssuerConfig`) and `layerStatic(policy)` (a fixed policy, for tests and tools).
 */
import { Context } from "effect"
import type { Effect } from "effect"
import type { CertificateRequest } from "../domain/CertificateRequest.ts"
import type { Decision } from "../domain/Decision.ts"

export interface EvaluatorShape {
  /** Inspects `spec.request` and applies the rules with the policy in force now. */
  readonly evaluate: (cr: CertificateRequest) => Effect.Effect<Decision>
}

export class Evaluator extends Context.Service<Evaluator, EvaluatorShape>()("csi-driver-spiffe/services/Evaluator") {}

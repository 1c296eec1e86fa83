/**
 * Evaluator implementations: the pure rules plus where their policy comes from.
 *
 * Owns: building a `SpiffePolicy` per evaluation from `ApproverConfig` and the SPIFFE issuer in force
 * (the runtime issuance ConfigMap's when `IssuerConfig.current` names one, else the `--issuer-*`
 * flags), so a runtime issuer change applies to the next decision without a restart.
 * Does not own: the rules or CSR inspection.
 *
 * From `IssuerConfig` only `current` is used; any implementation whose `current` answers "the issuer
 * to sign SPIFFE requests now, or undefined for the static one" fits.
 */
import { Effect, Layer } from "effect"
import { ApproverConfig } from "../services/ApproverConfig.ts"
import type { ApproverConfigShape } from "../services/ApproverConfig.ts"
import { inspectCsr } from "./InspectCsr.ts"
import type { CertificateRequest } from "../domain/CertificateRequest.ts"
import type { IssuerRef } from "../domain/IssuerRef.ts"
import { evaluate as applyRules, type SpiffePolicy } from "../domain/SpiffeRules.ts"
import { Evaluator } from "../services/Evaluator.ts"
import { IssuerConfig } from "../services/IssuerConfig.ts"

/** The policy for `config` with `issuer` (the runtime one) taking precedence over the flags'. */
export const policyOf = (config: ApproverConfigShape, issuer: IssuerRef | undefined): SpiffePolicy => ({
  trustDomain: config.trustDomain,
  certificateRequestDurationMs: config.certificateRequestDuration,
  issuer: issuer ?? config.issuer,
  allowedKeyTypes: config.allowedKeyTypes,
  autoApproveNonSpiffe: config.autoApproveNonSpiffe,
  driverServiceAccount: config.driverServiceAccount,
  signerServiceAccount: config.signerServiceAccount,
  signerIntermediateDurationMs: config.signerIntermediateDuration
})

/** An Evaluator whose policy is read, per call, from `policy`. */
export const make = (policy: Effect.Effect<SpiffePolicy>) =>
  Evaluator.of({
    evaluate: Effect.fn("Evaluator.evaluate")(function*(cr: CertificateRequest) {
      const current = yield* policy
      const facts = yield* inspectCsr(cr.spec.request)
      return applyRules(current, cr, facts)
    })
  })

/** The approver's Evaluator: flags from `ApproverConfig`, the issuer from `IssuerConfig`. */
export const layer: Layer.Layer<Evaluator, never, ApproverConfig | IssuerConfig> = Layer.effect(
  Evaluator,
  Effect.gen(function*() {
    const config = yield* ApproverConfig
    const issuers = yield* IssuerConfig
    return make(Effect.map(issuers.current, (issuer) => policyOf(config, issuer)))
  })
)

/** An Evaluator with one fixed policy. */
export const layerStatic = (policy: SpiffePolicy): Layer.Layer<Evaluator> =>
  Layer.succeed(Evaluator, make(Effect.succeed(policy)))

/**
 * IssuerConfig implementations. `layerStatic` serves the `--issuer-*` flags (or none) and is also
 * what tests use to switch issuers.
 */
import { Effect, Layer, Stream, SubscriptionRef } from "effect"
import type { IssuerRef } from "../domain/IssuerRef.ts"
import { IssuerConfig } from "../services/IssuerConfig.ts"

export const makeStatic = (issuer: IssuerRef | undefined) =>
  Effect.gen(function*() {
    const ref = yield* SubscriptionRef.make<IssuerRef | undefined>(issuer)
    return {
      service: IssuerConfig.of({
        current: SubscriptionRef.get(ref),
        changes: SubscriptionRef.changes(ref).pipe(Stream.drop(1)),
        loaded: Effect.succeed(true)
      }),
      set: (next: IssuerRef | undefined) => SubscriptionRef.set(ref, next)
    }
  })

export const layerStatic = (issuer: IssuerRef | undefined) =>
  Layer.effect(IssuerConfig, Effect.map(makeStatic(issuer), (s) => s.service))

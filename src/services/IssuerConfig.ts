/**
 * The issuer new CertificateRequests are sent to, which may change at runtime.
 *
 * Owns: the current SPIFFE issuer (or none), a stream of changes, and whether the source has been
 * read at least once (the driver is not ready before that).
 * Implementations: `layers/IssuerConfig.ts` — `layerStatic` (the `--issuer-*` flags) and
 * `layerConfigMap` (watches the runtime issuance ConfigMap, falling back to the static issuer).
 */
import { Context } from "effect"
import type { Effect, Stream } from "effect"
import type { IssuerRef } from "../domain/IssuerRef.ts"

export interface IssuerConfigShape {
  /** The issuer to use now; undefined when none is configured. */
  readonly current: Effect.Effect<IssuerRef | undefined>
  /** Every change of the current issuer. */
  readonly changes: Stream.Stream<IssuerRef | undefined>
  /** True once the configuration source has been read (a probe's question; waiters use `awaitLoaded`). */
  readonly loaded: Effect.Effect<boolean>
  /** Returns once the configuration source has been read (at once for the static issuer). */
  readonly awaitLoaded: Effect.Effect<void>
}

export class IssuerConfig extends Context.Service<IssuerConfig, IssuerConfigShape>()("csi-driver-spiffe/services/IssuerConfig") {}

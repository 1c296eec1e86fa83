/**
 * The trust bundle copied into every volume as `--file-name-ca`, when `--source-ca-bundle` is set.
 *
 * Owns: the current validated PEM bundle (or none when the feature is off) and its changes.
 * Implementations: `layers/CaBundle.ts` — `layerNone`, `layerStatic(pem)`, `layerFile(path)` and its
 * memory twin `layerMemory(pem)`; the last two pass `test/unit/layers/CaBundle.contract.ts`.
 */
import { Context } from "effect"
import type { Effect, Stream } from "effect"

export interface CaBundleShape {
  /** The bundle to write; undefined when no CA file is written at all. */
  readonly current: Effect.Effect<string | undefined>
  /** Each new bundle, after validation. */
  readonly changes: Stream.Stream<string>
}

export class CaBundle extends Context.Service<CaBundle, CaBundleShape>()("csi-driver-spiffe/services/CaBundle") {}

/**
 * CaBundle implementations: none (no CA file), a fixed bundle, or a watched file.
 */
import { Effect, Layer, Stream } from "effect"
import { CaBundle } from "../services/CaBundle.ts"

export const layerNone = Layer.succeed(CaBundle, CaBundle.of({ current: Effect.succeed(undefined), changes: Stream.empty }))

export const layerStatic = (pem: string) =>
  Layer.succeed(CaBundle, CaBundle.of({ current: Effect.succeed(pem), changes: Stream.empty }))

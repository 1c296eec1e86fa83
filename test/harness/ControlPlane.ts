// The control plane as an Effect service with a scoped layer: the plane starts when the layer is
// built and stops (only the processes it started) when the layer's scope closes.
//
//   const program = Effect.gen(function*() {
//     const plane = yield* ControlPlane
//     ...plane.client, plane.users.driver.kubeconfigPath...
//   })
//   program.pipe(Effect.provide(ControlPlane.layer({ log: console.error })))
import { Context, Effect, Layer, Schema } from "effect"
import { type ControlPlane as PlainControlPlane, type ControlPlaneOptions, startControlPlane } from "./plane.ts"

export class ControlPlaneStartError extends Schema.TaggedError<ControlPlaneStartError>()("ControlPlaneStartError", {
  message: Schema.String,
  cause: Schema.Defect()
}) {}

export type ControlPlaneHandle = Omit<PlainControlPlane, "stop">

export class ControlPlane extends Context.Service<ControlPlane, ControlPlaneHandle>()(
  "csi-driver-spiffe/test/harness/ControlPlane"
) {
  /** Start a control plane for the lifetime of the layer's scope. */
  static readonly layer = (options: ControlPlaneOptions = {}): Layer.Layer<ControlPlane, ControlPlaneStartError> =>
    Layer.effect(
      ControlPlane,
      Effect.acquireRelease(
        Effect.tryPromise({
          try: () => startControlPlane(options),
          catch: (cause) =>
            new ControlPlaneStartError({ message: cause instanceof Error ? cause.message : String(cause), cause })
        }),
        (plane) => Effect.promise(() => plane.stop())
      ).pipe(Effect.map((plane) => ControlPlane.of(plane)))
    )
}

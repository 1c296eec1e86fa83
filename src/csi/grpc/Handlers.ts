/**
 * The grpc-js service implementations over `CsiPlugin`: one handler per proto method (unknown ones
 * UNIMPLEMENTED through the same path), each call a fiber of the server's FiberSet, logged at start
 * (redacted request) and end (status, duration), cancelled calls interrupted.
 */
import * as grpc from "@grpc/grpc-js"
import { Cause, Clock, Effect, Exit, Option } from "effect"
import type { Fiber } from "effect"
import { CsiError, type CsiPluginShape } from "../../services/CsiPlugin.ts"
import { redactRequest, statusOfCause } from "./Status.ts"

/** One unary RPC as an Effect over the decoded request. */
type Rpc = (request: unknown) => Effect.Effect<unknown, CsiError>

const unimplemented = (method: string): Rpc => () =>
  Effect.fail(new CsiError({ code: "Unimplemented", detail: `${method} is not implemented by this driver` }))

export const identityRpcs = (plugin: CsiPluginShape): Readonly<Record<string, Rpc>> => ({
  GetPluginInfo: () => plugin.getPluginInfo,
  GetPluginCapabilities: () => plugin.getPluginCapabilities,
  // ProbeResponse.ready is a google.protobuf.BoolValue, i.e. a message with one `value` field.
  Probe: () => Effect.map(plugin.probe, ({ ready }) => ({ ready: { value: ready } }))
})

// NodeStageVolume, NodeUnstageVolume, NodeGetVolumeStats and NodeExpandVolume fall through to
// `unimplemented`: the driver advertises none of the matching capabilities.
export const nodeRpcs = (plugin: CsiPluginShape): Readonly<Record<string, Rpc>> => ({
  NodeGetInfo: () => plugin.nodeGetInfo,
  NodeGetCapabilities: () => plugin.nodeGetCapabilities,
  NodePublishVolume: plugin.nodePublishVolume,
  NodeUnpublishVolume: plugin.nodeUnpublishVolume
})

const logFailure = (cause: Cause.Cause<CsiError>): Effect.Effect<void> => {
  const error = Cause.findErrorOption(cause)
  if (Option.isSome(error)) {
    const fields = { code: error.value.code, detail: error.value.detail }
    // csi-sanity probes the RPCs we do not serve; that is expected, not worth a warning.
    return error.value.code === "Unimplemented"
      ? Effect.logDebug("CSI call failed", fields)
      : Effect.logWarning("CSI call failed", fields)
  }
  if (Cause.hasInterruptsOnly(cause)) return Effect.logDebug("CSI call interrupted")
  return Effect.logError("CSI call died", Cause.pretty(cause))
}

/** The gRPC status name a finished call answers with ("OK", "INVALID_ARGUMENT", …). */
export const statusNameOf = (exit: Exit.Exit<unknown, CsiError>): string =>
  Exit.isSuccess(exit) ? "OK" : grpc.status[statusOfCause(exit.cause).code] ?? "UNKNOWN"

/**
 * Runs one call: logs its start with the redacted request, runs the handler, logs its end with the
 * status and duration (also when it was interrupted, so a call that never answers still shows how
 * long it ran), and logs a failure.
 */
const serve = Effect.fn("GrpcServer.serve")(
  function*(method: string, rpc: Rpc, request: unknown) {
    const start = yield* Clock.currentTimeMillis
    yield* Effect.logDebug("CSI call started", redactRequest(request))
    return yield* rpc(request).pipe(
      Effect.onExit((exit) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.logDebug("CSI call ended", {
            code: Exit.hasInterrupts(exit) ? "CANCELLED" : statusNameOf(exit),
            durationMillis: now - start
          }))
      )
    )
  },
  Effect.tapCause(logFailure),
  (effect, method) => Effect.annotateLogs(effect, { rpc: method })
)

export type RunFork = <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>

/**
 * The grpc-js handler for one method. grpc-js hands us a callback, so this is the bridge: the call
 * runs as a fiber of the layer's FiberSet and a fiber observer (not a promise) answers the callback.
 * A cancelled call (client gone or deadline passed) interrupts its fiber.
 */
const unaryHandler = (run: RunFork, method: string, rpc: Rpc): grpc.handleUnaryCall<unknown, unknown> =>
(call, callback) => {
  const fiber = run(serve(method, rpc, call.request))
  call.on("cancelled", () => fiber.interruptUnsafe())
  fiber.addObserver((exit) => {
    if (Exit.isSuccess(exit)) callback(null, exit.value)
    else callback(statusOfCause(exit.cause))
  })
}

export const implementation = (
  run: RunFork,
  service: grpc.ServiceDefinition,
  rpcs: Readonly<Record<string, Rpc>>
): grpc.UntypedServiceImplementation => {
  const handlers: grpc.UntypedServiceImplementation = {}
  // Keys are the proto method names (`NodePublishVolume`), which grpc-js looks up first. Every
  // method gets a handler, so an RPC missing from `rpcs` is UNIMPLEMENTED through the same path
  // (logged and redacted like the rest).
  for (const name of Object.keys(service)) {
    handlers[name] = unaryHandler(run, name, rpcs[name] ?? unimplemented(name))
  }
  return handlers
}

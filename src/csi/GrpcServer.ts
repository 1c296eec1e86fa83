/**
 * The CSI gRPC endpoint: a scoped grpc-js server that serves the Identity and Node services.
 *
 * Owns: parsing the `--endpoint` value, removing a stale unix socket before binding and the socket
 * file after shutdown, registering the handlers, running each call as a fiber supervised by the layer
 * (interrupted when the layer closes or the caller cancels), mapping `CsiError` codes to gRPC status
 * codes, hiding defects behind a generic INTERNAL status, and logging every call's start (request
 * with its secrets redacted) and end (status code and duration, interrupted calls included).
 * Does not own: what the RPCs do (`CsiPlugin`), decoding request fields (each `CsiPlugin` handler
 * decodes its own request), loading the proto (`csi/CsiProto.ts`).
 */
import * as grpc from "@grpc/grpc-js"
import {
  Cause,
  Clock,
  Context,
  Duration,
  Effect,
  Exit,
  FiberSet,
  FileSystem,
  Layer,
  Option,
  Path,
  Predicate,
  Result,
  Schema
} from "effect"
import type { Fiber } from "effect"
import { TOKENS_KEY } from "../domain/Token.ts"
import { type CsiCode, CsiError, CsiPlugin, type CsiPluginShape } from "../services/CsiPlugin.ts"
import { type CsiServices, loadCsiServices } from "./CsiProto.ts"

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

// InvalidEndpoint: unparseable --endpoint; SocketPath: cannot create the socket directory or remove a
// stale socket; Bind: grpc-js could not listen.
export const GrpcServerErrorReason = Schema.Literals(["InvalidEndpoint", "SocketPath", "Bind"])
export type GrpcServerErrorReason = typeof GrpcServerErrorReason.Type

/** The server could not start. Raised while the layer is built, never while serving. */
export class GrpcServerError extends Schema.TaggedError<GrpcServerError>()("GrpcServerError", {
  reason: GrpcServerErrorReason,
  endpoint: Schema.String,
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `${this.reason} (${this.endpoint}): ${this.detail}`
  }
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

/** Where the server listens: a unix socket path (always absolute) or a TCP host and port. */
export type Endpoint =
  | { readonly _tag: "Unix"; readonly path: string }
  | { readonly _tag: "Tcp"; readonly host: string; readonly port: number }

const invalidEndpoint = (endpoint: string, detail: string) =>
  Result.fail(new GrpcServerError({ reason: "InvalidEndpoint", endpoint, detail }))

// `[v6addr]` or a name/v4 address, then a port of up to 5 digits (range checked below).
const TCP_ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[^:/[\]]*):(\d{1,5})$/

/**
 * Parses `unix:///abs/path`, `unix://rel/path` and `tcp://host:port`.
 *
 * As in the Go driver (csi-lib), the part after `unix://` is made absolute by prefixing `/`, so
 * `unix://plugin/csi.sock` and `unix:///plugin/csi.sock` both mean `/plugin/csi.sock`. An empty TCP
 * host (`tcp://:10000`) listens on every IPv4 interface; port 0 asks the kernel for a free port.
 */
export const parseEndpoint = (endpoint: string): Result.Result<Endpoint, GrpcServerError> => {
  if (endpoint.startsWith("unix://")) {
    const rest = endpoint.slice("unix://".length).replace(/^\/+/, "")
    if (rest === "" || rest.endsWith("/")) return invalidEndpoint(endpoint, "a unix endpoint needs a socket file path")
    return Result.succeed({ _tag: "Unix", path: normalizeAbsolute(`/${rest}`) })
  }
  if (endpoint.startsWith("tcp://")) {
    const match = TCP_ADDRESS.exec(endpoint.slice("tcp://".length))
    const port = Number(match?.[2] ?? Number.NaN)
    if (match === null || !(port <= 65535)) {
      return invalidEndpoint(endpoint, "a tcp endpoint must be tcp://host:port with a port in 0..65535")
    }
    return Result.succeed({ _tag: "Tcp", host: match[1] || "0.0.0.0", port })
  }
  return invalidEndpoint(endpoint, "the endpoint must start with unix:// or tcp://")
}

/** Collapses `.`, `..` and repeated slashes of an absolute POSIX path without touching the disk. */
const normalizeAbsolute = (path: string): string => {
  const parts: Array<string> = []
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue
    if (part === "..") parts.pop()
    else parts.push(part)
  }
  return `/${parts.join("/")}`
}

/** The address string grpc-js binds to. */
export const grpcAddress = (endpoint: Endpoint): string =>
  endpoint._tag === "Unix" ? `unix://${endpoint.path}` : `${endpoint.host}:${endpoint.port}`

// ---------------------------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------------------------

/** What a redacted value is replaced with (the marker the Go CSI sanitizer prints). */
export const REDACTED = "***stripped***"

/**
 * A copy of a decoded request that is safe to log: every `secrets` field (at any depth) is replaced
 * by {@link REDACTED}, and so is the ServiceAccount token entry of every `volume_context`.
 * Pure and total: non-objects are returned unchanged, the input is never mutated.
 */
export const redactRequest = (request: unknown): unknown => {
  if (Array.isArray(request)) return request.map(redactRequest)
  if (!Predicate.isObject(request)) return request
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(request)) {
    if (key === "secrets") {
      out[key] = REDACTED
    } else if (key === "volume_context" && Predicate.isObject(value) && TOKENS_KEY in value) {
      out[key] = { ...value, [TOKENS_KEY]: REDACTED }
    } else {
      out[key] = redactRequest(value)
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Status mapping
// ---------------------------------------------------------------------------------------------

const GRPC_STATUS: { readonly [K in CsiCode]: grpc.status } = {
  InvalidArgument: grpc.status.INVALID_ARGUMENT,
  NotFound: grpc.status.NOT_FOUND,
  AlreadyExists: grpc.status.ALREADY_EXISTS,
  FailedPrecondition: grpc.status.FAILED_PRECONDITION,
  Aborted: grpc.status.ABORTED,
  Unavailable: grpc.status.UNAVAILABLE,
  DeadlineExceeded: grpc.status.DEADLINE_EXCEEDED,
  ResourceExhausted: grpc.status.RESOURCE_EXHAUSTED,
  Internal: grpc.status.INTERNAL,
  Unimplemented: grpc.status.UNIMPLEMENTED,
  Unknown: grpc.status.UNKNOWN,
  Unauthenticated: grpc.status.UNAUTHENTICATED,
  PermissionDenied: grpc.status.PERMISSION_DENIED
}

/** The gRPC status code for a `CsiError` code. */
export const grpcStatusOf = (code: CsiCode): grpc.status => GRPC_STATUS[code]

/** Shown for defects: the caller learns that the driver failed, not how (no stack, no internals). */
export const INTERNAL_DETAIL = "internal error in the CSI driver; see the driver logs"

/** Shown when a call was cut short by driver shutdown; kubelet retries UNAVAILABLE. */
export const INTERRUPTED_DETAIL = "the CSI driver is shutting down"

/**
 * The status a failed call returns: a `CsiError` keeps its code and detail; an interruption is
 * UNAVAILABLE (retryable); anything else (defects) is INTERNAL with a generic message.
 */
export const statusOfCause = (cause: Cause.Cause<CsiError>): grpc.StatusObject => {
  const error = Cause.findErrorOption(cause)
  if (Option.isSome(error)) return statusObject(grpcStatusOf(error.value.code), error.value.detail)
  if (Cause.hasInterruptsOnly(cause)) return statusObject(grpc.status.UNAVAILABLE, INTERRUPTED_DETAIL)
  return statusObject(grpc.status.INTERNAL, INTERNAL_DETAIL)
}

const statusObject = (code: grpc.status, details: string): grpc.StatusObject => ({
  code,
  details,
  metadata: new grpc.Metadata()
})

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/** One unary RPC as an Effect over the decoded request. */
type Rpc = (request: unknown) => Effect.Effect<unknown, CsiError>

const unimplemented = (method: string): Rpc => () =>
  Effect.fail(new CsiError({ code: "Unimplemented", detail: `${method} is not implemented by this driver` }))

const identityRpcs = (plugin: CsiPluginShape): Readonly<Record<string, Rpc>> => ({
  GetPluginInfo: () => plugin.getPluginInfo,
  GetPluginCapabilities: () => plugin.getPluginCapabilities,
  // ProbeResponse.ready is a google.protobuf.BoolValue, i.e. a message with one `value` field.
  Probe: () => Effect.map(plugin.probe, ({ ready }) => ({ ready: { value: ready } }))
})

// NodeStageVolume, NodeUnstageVolume, NodeGetVolumeStats and NodeExpandVolume fall through to
// `unimplemented`: the driver advertises none of the matching capabilities.
const nodeRpcs = (plugin: CsiPluginShape): Readonly<Record<string, Rpc>> => ({
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

type RunFork = <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>

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

const implementation = (
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

// ---------------------------------------------------------------------------------------------
// Layer
// ---------------------------------------------------------------------------------------------

export interface GrpcServerOptions {
  /** `unix:///csi/csi.sock`, `unix://csi/csi.sock` or `tcp://host:port`. */
  readonly endpoint: string
  /**
   * How long shutdown waits for in-flight calls before cancelling them. Default 5 seconds: a publish
   * that is still waiting for issuance then fails and kubelet retries it after restart, and the
   * pod's default 30 s termination grace keeps ample room for the other finalizers.
   */
  readonly shutdownGrace?: Duration.Input | undefined
}

export const DEFAULT_SHUTDOWN_GRACE: Duration.Duration = Duration.seconds(5)

/** The running server: where it listens. `port` is the bound TCP port (meaningless for unix sockets). */
export interface GrpcServerShape {
  readonly endpoint: Endpoint
  readonly port: number
}

/** Binds `server` to `address` (a grpc-js address); the bound port. `endpoint` names it in errors. */
export const bind = (server: grpc.Server, endpoint: string, address: string) =>
  Effect.callback<number, GrpcServerError>((resume) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, port) => {
      if (error === null) resume(Effect.succeed(port))
      else resume(Effect.fail(new GrpcServerError({ reason: "Bind", endpoint, detail: error.message, cause: error })))
    })
  })

/** Waits for in-flight calls up to `grace`, then cancels whatever is left. */
export const shutdown = Effect.fn("GrpcServer.shutdown")(function*(server: grpc.Server, grace: Duration.Duration) {
  const drained = yield* Effect.callback<void>((resume) => {
    server.tryShutdown(() => resume(Effect.void))
  }).pipe(Effect.timeoutOption(grace))
  if (Option.isNone(drained)) {
    yield* Effect.logWarning("gRPC calls still running after the shutdown grace; cancelling them", {
      graceMillis: Duration.toMillis(grace)
    })
    server.forceShutdown()
  }
})

const make = Effect.fn("GrpcServer.make")(function*(options: GrpcServerOptions) {
  const endpoint = yield* Effect.fromResult(parseEndpoint(options.endpoint))
  const grace = options.shutdownGrace === undefined ? DEFAULT_SHUTDOWN_GRACE : Duration.fromInputUnsafe(options.shutdownGrace)
  const services: CsiServices = yield* loadCsiServices
  const plugin = yield* CsiPlugin
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path

  // Created before the server, so it closes after it: in-flight calls get the shutdown grace to
  // finish, then whatever is left is interrupted.
  const run: RunFork = yield* FiberSet.makeRuntime()

  const removeSocket = endpoint._tag === "Unix"
    ? fs.remove(endpoint.path, { force: true })
    : Effect.void
  if (endpoint._tag === "Unix") {
    yield* fs.makeDirectory(path.dirname(endpoint.path), { recursive: true }).pipe(
      Effect.andThen(removeSocket),
      Effect.mapError((cause) =>
        new GrpcServerError({ reason: "SocketPath", endpoint: options.endpoint, detail: cause.message, cause })
      )
    )
  }

  const port = yield* Effect.acquireRelease(
    Effect.suspend(() => {
      const server = new grpc.Server()
      server.addService(services.Identity.service, implementation(run, services.Identity.service, identityRpcs(plugin)))
      server.addService(services.Node.service, implementation(run, services.Node.service, nodeRpcs(plugin)))
      return bind(server, options.endpoint, grpcAddress(endpoint)).pipe(
        Effect.map((port) => ({ server, port })),
        Effect.onError(() => Effect.sync(() => server.forceShutdown()))
      )
    }),
    ({ server }) =>
      shutdown(server, grace).pipe(
        Effect.andThen(removeSocket),
        Effect.catch((error) => Effect.logWarning("could not remove the CSI socket", error.message))
      )
  ).pipe(Effect.map(({ port }) => port))

  yield* Effect.logInfo("CSI gRPC server listening", { endpoint: options.endpoint })
  return GrpcServer.of({ endpoint, port })
})

export class GrpcServer extends Context.Service<GrpcServer, GrpcServerShape>()("csi-driver-spiffe/csi/GrpcServer") {
  /** The server, listening while the layer is alive; needs `CsiPlugin`, `FileSystem` and `Path`. */
  static readonly layer = (options: GrpcServerOptions) => Layer.effect(GrpcServer, make(options))
}

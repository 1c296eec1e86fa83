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
import { Context, Duration, Effect, FiberSet, FileSystem, Layer, Option, Path } from "effect"
import { CsiPlugin } from "../services/CsiPlugin.ts"
import { type CsiServices, loadCsiServices } from "./CsiProto.ts"
import { type Endpoint, grpcAddress, GrpcServerError, parseEndpoint } from "./grpc/Endpoint.ts"
import * as DateHeader from "./grpc/DateHeader.ts"
import { identityRpcs, implementation, nodeRpcs, type RunFork } from "./grpc/Handlers.ts"

export * from "./grpc/Endpoint.ts"
export { statusNameOf } from "./grpc/Handlers.ts"
export * from "./grpc/Status.ts"

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
  const serverOptions = yield* DateHeader.serverOptions

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
      const server = new grpc.Server(serverOptions)
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

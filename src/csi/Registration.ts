/**
 * The kubelet's plugin registration, served by the driver itself: a gRPC server for
 * `pluginregistration.Registration` (GetInfo, NotifyRegistrationStatus) on
 * `<kubelet-root>/plugins_registry/<driver-name>-reg.sock`, so a node needs no node-driver-registrar
 * sidecar (https://github.com/kubernetes-csi/node-driver-registrar).
 *
 * How the kubelet uses it: its plugin watcher sees the socket appear (inotify), dials it, calls
 * GetInfo, dials the CSI endpoint named there (NodeGetInfo) and reports the outcome with
 * NotifyRegistrationStatus. Removing the socket deregisters the plugin.
 *
 * Owns: the registration socket for the layer's lifetime (a stale socket from a killed driver is
 * replaced at start; any other file in its place is an error and is left alone; the socket is removed
 * on shutdown; a registry directory that cannot be created means a warning and no socket), the answer to GetInfo, the registration state the kubelet reported (logged, and read
 * by `/readyz`), and offering the socket again after a failed registration.
 * Does not own: the CSI socket the kubelet then dials (`csi/GrpcServer.ts`); where the kubelet's
 * root directory is (`--kubelet-root-dir`).
 *
 * Why a failure re-offers the socket: the kubelet records the plugin before its CSI handler runs, so
 * after a failed registration (for example NodeGetInfo on an endpoint the kubelet cannot reach) it
 * does not try that socket again. node-driver-registrar exits, the container restarts and the new
 * socket is registered afresh. The driver keeps serving its published volumes instead and re-creates
 * only the registration socket, after the same back-off a crash-looping container would get.
 */
import * as grpc from "@grpc/grpc-js"
import {
  Clock,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  FiberSet,
  FileSystem,
  Layer,
  Option,
  Path,
  Ref,
  Result,
  Schedule,
  Schema,
  SubscriptionRef
} from "effect"
import type { Fiber } from "effect"
import * as Schedules from "../domain/Schedules.ts"
import { CsiError } from "../services/CsiPlugin.ts"
import { loadRegistrationService } from "./CsiProto.ts"
import * as DateHeader from "./grpc/DateHeader.ts"
import { bind, GrpcServerError, shutdown, statusOfCause, UNIX_SOCKET_PATH_MAX_BYTES } from "./GrpcServer.ts"

// ---------------------------------------------------------------------------------------------
// Facts of the API
// ---------------------------------------------------------------------------------------------

/** `PluginInfo.type` of a CSI driver (k8s.io/kubelet pluginregistration/v1 `CSIPlugin`). */
export const CSI_PLUGIN_TYPE = "CSIPlugin"

/** The registration API versions served; the kubelet's CSI handler needs a 1.x entry (node-driver-registrar sends the same). */
export const SUPPORTED_VERSIONS: ReadonlyArray<string> = ["1.0.0"]

/** The socket's file name in the registry directory, as node-driver-registrar names it. */
export const socketFileName = (driverName: string): string => `${driverName}-reg.sock`

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/**
 * What the kubelet last reported: nothing yet, success, or its error message. `Unavailable`: the
 * registry directory cannot be created (the original chart's driver container, read-only and
 * without that mount, whose node-driver-registrar sidecar registers the driver), so nothing is served.
 */
export type RegistrationState =
  | { readonly _tag: "Unavailable"; readonly reason: string }
  | { readonly _tag: "Waiting" }
  | { readonly _tag: "Registered" }
  | { readonly _tag: "Failed"; readonly error: string }

export interface RegistrationOptions {
  /** The CSI driver's name (`--csi-driver-name`), sent as `PluginInfo.name`. */
  readonly driverName: string
  /** `<kubelet-root>/plugins_registry`, the directory the kubelet watches. */
  readonly registryDir: string
  /** The CSI socket's path as the kubelet sees it on the host (`--kubelet-registration-path`). */
  readonly kubeletRegistrationPath: string
}

export interface RegistrationShape {
  /** Absolute path of the registration socket. */
  readonly socketPath: string
  /** The kubelet's last report; `changes` streams every update. */
  readonly state: SubscriptionRef.SubscriptionRef<RegistrationState>
}

// Registration calls answer at once; a second is ample to let one finish before the socket goes.
const SHUTDOWN_GRACE = Duration.seconds(1)

// The registrar sets umask 0077 before listening; only the kubelet (root) needs to dial.
const SOCKET_MODE = 0o600

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

const RegistrationStatus = Schema.Struct({ plugin_registered: Schema.Boolean, error: Schema.String })
const decodeStatus = Schema.decodeUnknownResult(RegistrationStatus)

type RunFork = <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>

const unary = (run: RunFork, rpc: (request: unknown) => Effect.Effect<unknown, CsiError>): grpc.handleUnaryCall<unknown, unknown> =>
(call, callback) => {
  const fiber = run(rpc(call.request))
  call.on("cancelled", () => fiber.interruptUnsafe())
  fiber.addObserver((exit) => {
    if (Exit.isSuccess(exit)) callback(null, exit.value)
    else callback(statusOfCause(exit.cause))
  })
}

// ---------------------------------------------------------------------------------------------
// Layer
// ---------------------------------------------------------------------------------------------

const make = Effect.fn("Registration.make")(function*(options: RegistrationOptions) {
  const service = yield* loadRegistrationService
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const socketPath = path.join(options.registryDir, socketFileName(options.driverName))
  const state = yield* SubscriptionRef.make<RegistrationState>({ _tag: "Waiting" })
  // The back-off before the next offer (`Schedules.registrationReoffer`), stepped once per failure;
  // a successful registration puts a fresh step in place, so the next failure waits 10 s again.
  const freshReoffer = Schedule.toStep(Schedules.registrationReoffer)
  const reoffer = yield* Ref.make(yield* freshReoffer)
  const run: RunFork = yield* FiberSet.makeRuntime()
  const info = {
    type: CSI_PLUGIN_TYPE,
    name: options.driverName,
    endpoint: options.kubeletRegistrationPath,
    supported_versions: SUPPORTED_VERSIONS
  }
  const socketError = (detail: string, cause?: unknown) =>
    new GrpcServerError({ reason: "SocketPath", endpoint: socketPath, detail, cause })

  /** Removes a socket left by a driver that did not shut down; refuses to delete anything else. */
  const removeStale = Effect.gen(function*() {
    const existing = yield* fs.stat(socketPath).pipe(
      Effect.map(Option.some),
      Effect.catch((error) => (error.reason._tag === "NotFound" ? Effect.succeedNone : Effect.fail(error)))
    )
    if (Option.isNone(existing)) return
    if (existing.value.type !== "Socket") {
      return yield* socketError(`a ${existing.value.type} is in the registration socket's place; not removing it`)
    }
    yield* fs.remove(socketPath)
    yield* Effect.logInfo("removed a stale plugin registration socket", { socket: socketPath })
  }).pipe(Effect.catchTag("PlatformError", (cause) => Effect.fail(socketError(cause.message, cause))))

  /** One offer: serves the socket in the caller's scope; the Deferred completes with the kubelet's message when it reports a failure. */
  const offer = Effect.fn("Registration.offer")(function*() {
    const failed = yield* Deferred.make<string>()
    const notify = (request: unknown) =>
      Effect.gen(function*() {
        const decoded = decodeStatus(request)
        if (Result.isFailure(decoded)) {
          return yield* new CsiError({ code: "InvalidArgument", detail: "RegistrationStatus needs plugin_registered and error" })
        }
        const { error, plugin_registered } = decoded.success
        if (plugin_registered) {
          yield* Ref.set(reoffer, yield* freshReoffer)
          yield* SubscriptionRef.set(state, { _tag: "Registered" })
          yield* Effect.logInfo("registered with the kubelet", { driver: options.driverName, endpoint: options.kubeletRegistrationPath })
        } else {
          yield* SubscriptionRef.set(state, { _tag: "Failed", error })
          yield* Effect.logError("the kubelet could not register the plugin", { err: error, endpoint: options.kubeletRegistrationPath })
          yield* Deferred.succeed(failed, error)
        }
        return {}
      })
    const getInfo = () => Effect.as(Effect.logDebug("kubelet plugin watcher asked for the plugin's info", info), info)

    yield* removeStale
    const serverOptions = yield* DateHeader.serverOptions
    yield* Effect.acquireRelease(
      Effect.suspend(() => {
        const server = new grpc.Server(serverOptions)
        server.addService(service.service, { GetInfo: unary(run, getInfo), NotifyRegistrationStatus: unary(run, notify) })
        return bind(server, socketPath, `unix://${socketPath}`).pipe(
          Effect.as(server),
          Effect.onError(() => Effect.sync(() => server.forceShutdown()))
        )
      }),
      (server) =>
        shutdown(server, SHUTDOWN_GRACE).pipe(
          Effect.andThen(fs.remove(socketPath, { force: true })),
          Effect.catch((error) => Effect.logWarning("could not remove the plugin registration socket", { err: error.message }))
        )
    )
    yield* fs.chmod(socketPath, SOCKET_MODE).pipe(Effect.mapError((cause) => socketError(cause.message, cause)))
    yield* Effect.logInfo("plugin registration socket listening", { socket: socketPath, endpoint: options.kubeletRegistrationPath })
    return failed
  })

  const pathBytes = new TextEncoder().encode(socketPath).length
  if (pathBytes > UNIX_SOCKET_PATH_MAX_BYTES) {
    return yield* socketError(`the path is ${pathBytes} bytes; a unix socket path may have at most ${UNIX_SOCKET_PATH_MAX_BYTES} (shorten --kubelet-root-dir)`)
  }
  const directory = yield* Effect.result(fs.makeDirectory(options.registryDir, { recursive: true }))
  if (Result.isFailure(directory)) {
    const reason = directory.failure.message
    yield* Effect.logWarning("cannot create the kubelet's plugin registry directory; not registering the plugin (a node-driver-registrar must, or pass --plugin-registration=false)", { dir: options.registryDir, reason })
    yield* SubscriptionRef.set(state, { _tag: "Unavailable", reason })
    return Registration.of({ socketPath, state })
  }

  // Each offer lives in its own scope: closing it stops that server and removes its socket, which
  // deregisters the plugin before the next offer registers it afresh.
  const listening = yield* Deferred.make<void, GrpcServerError>()
  const round = Effect.scoped(Effect.gen(function*() {
    const failed = yield* offer()
    yield* Deferred.succeed(listening, undefined)
    yield* Deferred.await(failed)
  }))
  const loop = Effect.forever(Effect.gen(function*() {
    const offered = yield* Effect.result(round)
    if (Result.isFailure(offered)) {
      // The first offer is part of start-up: its error (a file in the way, an unwritable
      // directory) fails the driver. A later one is logged and retried after the back-off.
      if (yield* Deferred.fail(listening, offered.failure)) return yield* Effect.never
      yield* Effect.logError("could not offer the plugin registration socket", { err: offered.failure.message })
    }
    const step = yield* Ref.get(reoffer)
    const [, delay] = yield* Effect.orDie(step(yield* Clock.currentTimeMillis, undefined))
    yield* Effect.logInfo("offering the plugin registration socket again after a back-off", { afterMillis: Duration.toMillis(delay) })
    yield* Effect.sleep(delay)
  }))
  yield* Effect.forkScoped(loop)
  yield* Deferred.await(listening)
  return Registration.of({ socketPath, state })
})

export class Registration extends Context.Service<Registration, RegistrationShape>()("csi-driver-spiffe/csi/Registration") {
  /** Serves the registration socket while the layer is alive; needs `FileSystem` and `Path`. */
  static readonly layer = (options: RegistrationOptions) => Layer.effect(Registration, make(options))
}

/** The `/readyz` verdict from the registration state: undefined when ready, else why not. */
export const notReadyReason = (state: RegistrationState): string | undefined => {
  switch (state._tag) {
    case "Registered":
    case "Unavailable":
      return undefined
    case "Waiting":
      return "waiting for the kubelet to register the plugin (its plugin watcher dials the registration socket)"
    case "Failed":
      return `the kubelet could not register the plugin: ${state.error}`
  }
}

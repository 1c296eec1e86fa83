/**
 * The SPIFFE Workload API over grpc-js: one server per volume, on a unix socket in the volume's
 * data directory, serving that volume's SVID only (`WorkloadApi.serve` is handed nothing else).
 *
 * Owns: loading `proto/workload.proto`, the security header (`workload.spiffe.io: true` on every
 * call, else INVALID_ARGUMENT, as the Workload Endpoint standard requires), the two X.509 streams
 * (the full state at once and again on every change; `FetchX509Bundles` only when the bundle
 * changes), UNIMPLEMENTED for the JWT and WIT methods, binding a socket whose path is longer than a
 * unix address holds, the socket's mode and group, and stopping every call and removing the socket
 * when the volume's scope closes.
 * Does not own: when a volume is served or what its SVID is (the volume manager).
 *
 * No identity yet: a stream simply waits for the volume's first SVID instead of answering
 * PERMISSION_DENIED. A socket only exists for a volume the driver has published, so the caller is
 * entitled to the identity; it is only not loaded yet (e.g. while a restarted driver reads the
 * volume back), and waiting spares clients a retry loop.
 */
import { NodeFileSystem } from "@effect/platform-node"
import * as grpc from "@grpc/grpc-js"
import { Cause, Effect, Exit, FiberSet, FileSystem, Layer, PlatformError, Redacted, Stream } from "effect"
import type { Fiber } from "effect"
// Only for the directory descriptor of a socket path too long to bind (`bindSocket`): Effect's
// `FileSystem.File` does not expose its descriptor, and the bind address must name it.
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { WorkloadApi, WorkloadApiError } from "../services/WorkloadApi.ts"
import type { VolumeSvid, WorkloadEndpoint } from "../services/WorkloadApi.ts"
import { platformText } from "../layers/PlatformText.ts"
import { CsiProtoError } from "./CsiProto.ts"
import * as DateHeader from "./grpc/DateHeader.ts"
import { protoJson, protoPath } from "./ProtoSource.ts"
import { rootOf, serviceConstructor } from "./ProtoServices.ts"

/** The metadata every Workload API request must carry (SPIFFE Workload Endpoint §3). */
export const SECURITY_HEADER = "workload.spiffe.io"

/** The Workload API's proto, for errors. */
export const workloadProtoPath: string = protoPath("workload")

/** Socket mode: owner and group read and write (connect needs write); the group is the volume's fs-group. */
const SOCKET_MODE = 0o660

/**
 * Longest path a unix socket address holds on Linux (`sun_path` is 108 bytes with its NUL). A
 * volume's data directory can be longer (`<data-root>/inmemfs/csi-<64 hex>/data/`), so the server
 * binds through `/proc/self/fd/<fd of the directory>/` when the real path does not fit.
 */
const SUN_PATH_MAX = 107

/**
 * How long a closing volume waits for its calls' final statuses to reach the clients. They are
 * written at once; the bound only matters for a client that stopped reading, which is then cut off.
 */
const DRAIN_GRACE = "1 second"

let cached: grpc.ServiceClientConstructor | undefined

/** The `SpiffeWorkloadAPI` service (no proto package), loaded on first use and cached. */
export const loadWorkloadService: Effect.Effect<grpc.ServiceClientConstructor, CsiProtoError> = Effect.try({
  try: () => (cached ??= serviceConstructor(rootOf(protoJson("workload")), "SpiffeWorkloadAPI")),
  catch: (cause) => new CsiProtoError({ path: workloadProtoPath, cause })
})

// ---------------------------------------------------------------------------------------------
// Messages

/** `X509SVIDResponse` for one SVID: the volume's only (and so default) identity, no CRLs, no federation. */
export const x509SvidResponse = (svid: VolumeSvid) => ({
  svids: [{
    spiffe_id: svid.spiffeId,
    x509_svid: svid.chainDer,
    x509_svid_key: Redacted.value(svid.keyDer),
    bundle: svid.bundleDer,
    hint: ""
  }],
  crl: [],
  federated_bundles: {}
})

/** `X509BundlesResponse`: the trust domain's bundle under its SPIFFE ID. */
export const x509BundlesResponse = (svid: VolumeSvid) => ({ crl: [], bundles: { [svid.trustDomainId]: svid.bundleDer } })

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)

const status = (code: grpc.status, details: string): Partial<grpc.StatusObject> => ({ code, details })

const MISSING_HEADER = status(grpc.status.INVALID_ARGUMENT, `security header missing from request: ${SECURITY_HEADER} must be "true"`)
const CLOSING = status(grpc.status.UNAVAILABLE, "the volume's Workload API is closing")
const INTERNAL = status(grpc.status.INTERNAL, "internal error in the Workload API; see the driver logs")

const hasHeader = (metadata: grpc.Metadata): boolean => metadata.get(SECURITY_HEADER).some((v) => v === "true")

// ---------------------------------------------------------------------------------------------
// Handlers

type RunFork = <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>

/** Writes one message, waiting for the transport to drain when grpc-js asks for it. */
const write = (call: grpc.ServerWritableStream<unknown, unknown>, message: unknown) =>
  Effect.callback<void>((resume) => {
    if (call.write(message)) resume(Effect.void)
    else call.once("drain", () => resume(Effect.void))
  })

/**
 * A server stream fed by `messages` until the client goes (its fiber is interrupted) or the volume
 * closes (the fiber is interrupted by the server's FiberSet and the call ends UNAVAILABLE, which
 * SPIFFE clients retry).
 */
const streamHandler = (run: RunFork, method: string, messages: Stream.Stream<unknown>): grpc.handleServerStreamingCall<unknown, unknown> =>
(call) => {
  if (!hasHeader(call.metadata)) {
    call.emit("error", MISSING_HEADER)
    return
  }
  const fiber = run(
    Effect.logDebug("Workload API stream opened").pipe(
      Effect.andThen(Stream.runForEach(messages, (m) => write(call, m))),
      Effect.annotateLogs({ rpc: method })
    )
  )
  call.on("cancelled", () => fiber.interruptUnsafe())
  fiber.addObserver((exit) => {
    if (call.cancelled) return
    if (Exit.isSuccess(exit)) call.end()
    else call.emit("error", Cause.hasInterruptsOnly(exit.cause) ? CLOSING : INTERNAL)
  })
}

const unimplementedDetail = (method: string) => `${method} is not served by csi-driver-spiffe: it delivers X.509-SVIDs only`

const unimplementedUnary = (method: string): grpc.handleUnaryCall<unknown, unknown> => (call, callback) =>
  callback(hasHeader(call.metadata) ? status(grpc.status.UNIMPLEMENTED, unimplementedDetail(method)) : MISSING_HEADER)

const unimplementedStream = (method: string): grpc.handleServerStreamingCall<unknown, unknown> => (call) =>
  call.emit("error", hasHeader(call.metadata) ? status(grpc.status.UNIMPLEMENTED, unimplementedDetail(method)) : MISSING_HEADER)

const implementation = (run: RunFork, svid: Stream.Stream<VolumeSvid>): grpc.UntypedServiceImplementation => ({
  FetchX509SVID: streamHandler(run, "FetchX509SVID", Stream.map(svid, x509SvidResponse)),
  FetchX509Bundles: streamHandler(
    run,
    "FetchX509Bundles",
    svid.pipe(Stream.changesWith((a, b) => a.trustDomainId === b.trustDomainId && sameBytes(a.bundleDer, b.bundleDer)), Stream.map(x509BundlesResponse))
  ),
  FetchJWTSVID: unimplementedUnary("FetchJWTSVID"),
  ValidateJWTSVID: unimplementedUnary("ValidateJWTSVID"),
  FetchJWTBundles: unimplementedStream("FetchJWTBundles"),
  FetchWITSVID: unimplementedStream("FetchWITSVID"),
  FetchWITBundles: unimplementedStream("FetchWITBundles")
})

// ---------------------------------------------------------------------------------------------
// Serving one volume

const failWith = (reason: "SocketPath" | "Bind", volumeId: string) => (cause: unknown) =>
  new WorkloadApiError({
    reason,
    volumeId,
    detail: PlatformError.isPlatformError(cause) ? platformText(cause) : cause instanceof Error ? cause.message : String(cause),
    cause
  })

/** Binds `server` to the socket; through `/proc/self/fd/<dir fd>/` when the path is too long. */
const bindSocket = (server: grpc.Server, endpoint: WorkloadEndpoint) =>
  Effect.acquireUseRelease(
    Effect.try({
      try: () =>
        Buffer.byteLength(endpoint.socketPath) <= SUN_PATH_MAX
          ? { address: endpoint.socketPath, fd: undefined }
          : (() => {
            const fd = fs.openSync(nodePath.dirname(endpoint.socketPath), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
            return { address: `/proc/self/fd/${fd}/${nodePath.basename(endpoint.socketPath)}`, fd }
          })(),
      catch: failWith("SocketPath", endpoint.volumeId)
    }),
    ({ address }) =>
      Effect.callback<void, WorkloadApiError>((resume) => {
        server.bindAsync(`unix://${address}`, grpc.ServerCredentials.createInsecure(), (error) => {
          if (error === null) resume(Effect.void)
          else resume(Effect.fail(failWith("Bind", endpoint.volumeId)(error)))
        })
      }),
    ({ fd }) => Effect.sync(() => fd === undefined || fs.closeSync(fd))
  )

const serveVolume = (service: grpc.ServiceClientConstructor, files: FileSystem.FileSystem) =>
  Effect.fn("WorkloadApi.serve")(function*(endpoint: WorkloadEndpoint, svid: Stream.Stream<VolumeSvid>) {
    const path = endpoint.socketPath
    const removeSocket = files.remove(path, { force: true }).pipe(Effect.mapError(failWith("SocketPath", endpoint.volumeId)))
    // -1: the owner stays (the driver); only the group becomes the volume's fs-group.
    const setMode = files.chmod(path, SOCKET_MODE).pipe(
      Effect.andThen(endpoint.gid === undefined ? Effect.void : files.chown(path, -1, endpoint.gid)),
      Effect.mapError(failWith("SocketPath", endpoint.volumeId))
    )
    // A socket a previous driver left behind (restart) would make the bind fail.
    yield* removeSocket
    const calls = yield* FiberSet.make()
    const run: RunFork = yield* FiberSet.runtime(calls)()
    const serverOptions = yield* DateHeader.serverOptions
    yield* Effect.acquireRelease(
      Effect.suspend(() => {
        const server = new grpc.Server(serverOptions)
        server.addService(service.service, implementation(run, svid))
        return bindSocket(server, endpoint).pipe(
          Effect.andThen(setMode),
          Effect.as(server),
          Effect.onError(() => Effect.sync(() => server.forceShutdown()).pipe(Effect.andThen(Effect.ignore(removeSocket))))
        )
      }),
      // Streams never end on their own: every call is stopped (answering UNAVAILABLE), the server
      // drains those answers (bounded), then it stops and the socket goes.
      (server) =>
        FiberSet.clear(calls).pipe(
          Effect.andThen(Effect.callback<void>((resume) => server.tryShutdown(() => resume(Effect.void)))),
          Effect.timeoutOption(DRAIN_GRACE),
          Effect.andThen(Effect.sync(() => server.forceShutdown())),
          Effect.andThen(removeSocket),
          Effect.catch((e) => Effect.logWarning("could not remove the Workload API socket", { volume: endpoint.volumeId, error: e.message }))
        )
    )
    yield* Effect.logDebug("Workload API listening", { volume: endpoint.volumeId, socket: path })
  })

/** The live `WorkloadApi`: grpc-js servers on unix sockets, on the FileSystem it is given. */
export const layerNoDeps: Layer.Layer<WorkloadApi, CsiProtoError, FileSystem.FileSystem> = Layer.effect(
  WorkloadApi,
  Effect.gen(function*() {
    const service = yield* loadWorkloadService
    return WorkloadApi.of({ serve: serveVolume(service, yield* FileSystem.FileSystem) })
  })
)

/** `layerNoDeps` on Node's file system. */
export const layer: Layer.Layer<WorkloadApi, CsiProtoError> = layerNoDeps.pipe(Layer.provide(NodeFileSystem.layer))

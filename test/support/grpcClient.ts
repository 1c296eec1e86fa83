/**
 * A test-only CSI client: real grpc-js clients for Identity, Node and Controller over a socket.
 *
 * Owns: opening and closing the channels (scoped) and turning a unary call into an Effect that fails
 * with the call's gRPC status. Does not own: the proto (shared with the server via `CsiProto.ts`).
 */
import * as grpc from "@grpc/grpc-js"
import { Effect, Predicate, Schema } from "effect"
import type { Scope } from "effect"
import { type CsiProtoError, type CsiServices, loadCsiServices, loadRegistrationService } from "../../src/csi/CsiProto.ts"

/** A call that ended with a non-OK status. */
export class GrpcCallError extends Schema.TaggedError<GrpcCallError>()("GrpcCallError", {
  method: Schema.String,
  code: Schema.Int,
  details: Schema.String
}) {
  override get message(): string {
    return `${this.method}: ${this.code} ${this.details}`
  }
}

export type CsiServiceName = keyof CsiServices

export interface CsiClient {
  /** Calls `service.method` with `request` (proto-loader shape); the response in proto-loader shape. */
  readonly call: (
    service: CsiServiceName,
    method: string,
    request?: Readonly<Record<string, unknown>>
  ) => Effect.Effect<unknown, GrpcCallError>
}

type UnaryMethod = (
  request: unknown,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void
) => grpc.ClientUnaryCall

/** One unary call on a grpc-js client; fails with the call's status. */
const unaryCall = (client: InstanceType<grpc.ServiceClientConstructor>, service: string, method: string, request: Readonly<Record<string, unknown>>) =>
  Effect.callback<unknown, GrpcCallError>((resume) => {
    const fn = client[method]
    if (!Predicate.isFunction(fn)) {
      resume(Effect.die(new Error(`no method ${service}.${method}`)))
      return
    }
    const pending = (fn as UnaryMethod).call(client, request, (error, response) => {
      if (error === null) resume(Effect.succeed(response))
      else resume(Effect.fail(new GrpcCallError({ method, code: error.code, details: error.details })))
    })
    return Effect.sync(() => pending.cancel())
  })

/** Opens one channel per service to `address` (a grpc-js target such as `unix:///tmp/x/csi.sock`). */
export const makeCsiClient = (address: string): Effect.Effect<CsiClient, CsiProtoError, Scope.Scope> =>
  Effect.gen(function*() {
    const services = yield* loadCsiServices
    const open = (name: CsiServiceName) =>
      Effect.acquireRelease(
        Effect.sync(() => new services[name](address, grpc.credentials.createInsecure())),
        (client) => Effect.sync(() => client.close())
      )
    const clients = {
      Identity: yield* open("Identity"),
      Node: yield* open("Node"),
      Controller: yield* open("Controller")
    }
    const call: CsiClient["call"] = (service, method, request = {}) => unaryCall(clients[service], service, method, request)
    return { call }
  })

/** The kubelet's side of plugin registration: calls `pluginregistration.Registration` as its plugin watcher does. */
export interface RegistrationClient {
  readonly call: (method: "GetInfo" | "NotifyRegistrationStatus", request?: Readonly<Record<string, unknown>>) => Effect.Effect<unknown, GrpcCallError>
}

/** Opens a channel to a registration socket (`unix:///…/plugins_registry/<driver>-reg.sock`). */
export const makeRegistrationClient = (address: string): Effect.Effect<RegistrationClient, CsiProtoError, Scope.Scope> =>
  Effect.gen(function*() {
    const Registration = yield* loadRegistrationService
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => new Registration(address, grpc.credentials.createInsecure())),
      (c) => Effect.sync(() => c.close())
    )
    return { call: (method, request = {}) => unaryCall(client, "Registration", method, request) }
  })

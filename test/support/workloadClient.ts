/**
 * A test-only SPIFFE Workload API client: a real grpc-js client of `proto/workload.proto` over a
 * unix socket, with or without the `workload.spiffe.io` security header.
 *
 * Owns: opening and closing the channel (scoped), turning a server stream into a queue of messages
 * plus its final status (both signals a test waits on), and a unary call's status code.
 * Does not own: the proto (shared with the server via `csi/WorkloadApiServer.ts`).
 */
import * as grpc from "@grpc/grpc-js"
import { Deferred, Effect, Predicate, Queue } from "effect"
import type { Scope } from "effect"
import { loadWorkloadService, SECURITY_HEADER } from "../../src/csi/WorkloadApiServer.ts"
import type { CsiProtoError } from "../../src/csi/CsiProto.ts"

/** A call's final status: its gRPC code and details. */
export interface CallStatus {
  readonly code: number
  readonly details: string
}

/** One open server stream. */
export interface OpenStream {
  /** Every message received, in order. */
  readonly messages: Queue.Queue<any>
  /** Completed with the status the call ended with (OK when the server ended it). */
  readonly status: Deferred.Deferred<CallStatus>
  readonly cancel: Effect.Effect<void>
}

export interface WorkloadClient {
  /** Opens `method` (a server-streaming method); closed with the scope. */
  readonly stream: (method: string, header?: boolean) => Effect.Effect<OpenStream, never, Scope.Scope>
  /** Calls a unary `method`; its status code (OK = 0). */
  readonly unary: (method: string, header?: boolean, request?: Readonly<Record<string, unknown>>) => Effect.Effect<CallStatus>
}

const metadata = (header: boolean) => {
  const m = new grpc.Metadata()
  if (header) m.set(SECURITY_HEADER, "true")
  return m
}

const methodOf = (client: grpc.Client, method: string): ((...args: Array<unknown>) => any) => {
  const fn = (client as unknown as Record<string, unknown>)[method]
  if (!Predicate.isFunction(fn)) throw new Error(`no method SpiffeWorkloadAPI.${method}`)
  return (fn as (...args: Array<unknown>) => any).bind(client)
}

/** Opens a channel to `socketPath` (an absolute unix socket path). */
export const makeWorkloadClient = (socketPath: string): Effect.Effect<WorkloadClient, CsiProtoError, Scope.Scope> =>
  Effect.gen(function*() {
    const Service = yield* loadWorkloadService
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => new Service(`unix://${socketPath}`, grpc.credentials.createInsecure())),
      (c) => Effect.sync(() => c.close())
    )
    const stream: WorkloadClient["stream"] = (method, header = true) =>
      Effect.acquireRelease(
        Effect.gen(function*() {
          const messages = yield* Queue.unbounded<any>()
          const status = yield* Deferred.make<CallStatus>()
          const call: grpc.ClientReadableStream<unknown> = methodOf(client, method)({}, metadata(header))
          call.on("data", (m) => Queue.offerUnsafe(messages, m))
          call.on("status", (s: grpc.StatusObject) => Deferred.doneUnsafe(status, Effect.succeed({ code: s.code, details: s.details })))
          // The status event carries the outcome; without a listener grpc-js would throw the error.
          call.on("error", () => undefined)
          return { messages, status, cancel: Effect.sync(() => call.cancel()) }
        }),
        (s) => s.cancel
      )
    const unary: WorkloadClient["unary"] = (method, header = true, request = {}) =>
      Effect.callback<CallStatus>((resume) => {
        const call: grpc.ClientUnaryCall = methodOf(client, method)(request, metadata(header), (error: grpc.ServiceError | null) =>
          resume(Effect.succeed(error === null ? { code: grpc.status.OK, details: "" } : { code: error.code, details: error.details }))
        )
        return Effect.sync(() => call.cancel())
      })
    return { stream, unary }
  })

/**
 * The `date` header of every gRPC response the driver's servers send (CSI, plugin registration,
 * Workload API), written from the Clock by `domain/UtcTime.ts`. Without it Node's http2 server
 * adds its own with `Date.prototype.toUTCString`, whose first call loads ICU's time-zone data into
 * the driver for good (`domain/UtcTime.ts` says what that costs). The header is what HTTP servers
 * send anyway (RFC 9110 §6.6.1); clients see it as before.
 *
 * Where it goes: a response's header block is sent once, before its first message
 * (`sendMetadata`), or, for an error before any message, as the only block of a trailers-only
 * response (`sendStatus`); never among trailers.
 */
import * as grpc from "@grpc/grpc-js"
import { Clock, Effect } from "effect"
import { httpDate } from "../../domain/UtcTime.ts"

const DATE = "date"

/** A server interceptor that stamps each response's header block with `clock`'s time. */
export const interceptor = (clock: Clock.Clock): grpc.ServerInterceptor => (_method, call) => {
  // Per call: whether its header block went out. The call's own callbacks are its only readers.
  let headersSent = false
  const stamped = (metadata: grpc.Metadata | null | undefined): grpc.Metadata => {
    const out = metadata?.clone() ?? new grpc.Metadata()
    out.set(DATE, httpDate(clock.currentTimeMillisUnsafe()))
    return out
  }
  return new grpc.ServerInterceptingCall(call, {
    sendMetadata: (metadata, next) => {
      headersSent = true
      next(stamped(metadata))
    },
    sendStatus: (status, next) => next(headersSent ? status : { ...status, metadata: stamped(status.metadata) })
  })
}

/** Options for `new grpc.Server(…)`: the interceptor above over the current Clock. */
export const serverOptions: Effect.Effect<grpc.ServerOptions> = Clock.clockWith((clock) =>
  Effect.succeed({ interceptors: [interceptor(clock)] })
)

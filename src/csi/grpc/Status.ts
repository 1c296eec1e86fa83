/**
 * What a call shows the outside: the request as logged (secrets stripped) and the gRPC status it
 * answers with (`CsiError` codes mapped one to one; defects and interruption hidden behind fixed texts).
 */
import * as grpc from "@grpc/grpc-js"
import { Cause, Option, Predicate } from "effect"
import { TOKENS_KEY } from "../../domain/Token.ts"
import type { CsiCode, CsiError } from "../../services/CsiPlugin.ts"

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

/**
 * How API failures become `KubeError`s, shared by the live and the memory KubeClient.
 *
 * Owns: the HTTP status → reason table, the status code each reason stands for (so the memory
 * layer's injected failures look like the live ones), and the summary of a Schema decode failure.
 * Does not own: reading responses (the layers do).
 *
 * A decode summary names paths and expected types only; it never contains the rejected values, so
 * no CSR, certificate or token can leak into an error through it.
 */
import { SchemaIssue } from "effect"
import type { Schema } from "effect"
import { KubeError } from "../../services/KubeClient.ts"
import type { KubeErrorReason } from "../../services/KubeClient.ts"

/** The verbs of `KubeClientShape`; also the keys of the memory layer's failure injection. */
export type Verb = "get" | "list" | "watch" | "create" | "delete" | "replace" | "replaceStatus"

/** Server messages can quote field values; this bounds what an error carries. */
const MAX_DETAIL = 300

export const truncate = (s: string): string => (s.length <= MAX_DETAIL ? s : `${s.slice(0, MAX_DETAIL)}…`)

/** The HTTP status the API server answers with for each reason (none for client-side ones). */
export const statusOf = (reason: KubeErrorReason): number | undefined => {
  switch (reason) {
    case "NotFound":
      return 404
    case "AlreadyExists":
    case "Conflict":
      return 409
    case "Invalid":
      return 422
    case "Forbidden":
      return 403
    case "Unauthorized":
      return 401
    case "Gone":
      return 410
    case "Unavailable":
      return 503
    case "Decode":
    case "Unknown":
      return undefined
  }
}

/**
 * The reason for an HTTP status. 409 means AlreadyExists on create and Conflict otherwise; 429 and
 * 5xx are Unavailable (worth retrying).
 */
export const reasonOf = (verb: Verb, status: number): KubeErrorReason => {
  if (status === 404) return "NotFound"
  if (status === 409) return verb === "create" ? "AlreadyExists" : "Conflict"
  if (status === 400 || status === 422) return "Invalid"
  if (status === 403) return "Forbidden"
  if (status === 401) return "Unauthorized"
  if (status === 410) return "Gone"
  if (status === 429 || status >= 500) return "Unavailable"
  return "Unknown"
}

/**
 * A KubeError for `KubeClient.<operation>`; the status defaults to the reason's usual one. `cause`
 * is for failures below HTTP only, never for a decode failure (see `KubeError.cause`).
 */
export const kubeError = (
  operation: Verb | "layer",
  reason: KubeErrorReason,
  detail: string,
  status?: number,
  cause?: unknown
): KubeError => {
  const code = status ?? statusOf(reason)
  return new KubeError({
    operation: `KubeClient.${operation}`,
    reason,
    detail: truncate(detail),
    ...(code === undefined ? {} : { status: code }),
    ...(cause === undefined ? {} : { cause })
  })
}

const leafMessage = (issue: SchemaIssue.Leaf): string => {
  switch (issue._tag) {
    case "InvalidType":
      // Rebuilt without the input, so the default message names only the expected type.
      return SchemaIssue.defaultLeafHook(new SchemaIssue.InvalidType(issue.ast))
    case "MissingKey":
      return "Missing key"
    case "UnexpectedKey":
      return "Unexpected key"
    case "InvalidValue":
      return "Invalid value"
    case "Forbidden":
      return "Forbidden value"
    case "OneOf":
      return "Expected exactly one member to match"
  }
}

const formatter = SchemaIssue.makeFormatterStandardSchemaV1({
  leafHook: leafMessage,
  checkHook: () => "Invalid value"
})

/** At most this many issues are named in a summary. */
const MAX_ISSUES = 5

/** `"<kind> <what>: spec.request: Expected string; metadata.name: Missing key"`. */
export const decodeSummary = (what: string, error: Schema.SchemaError): string => {
  const issues = formatter(error.issue).issues
  const parts = issues.slice(0, MAX_ISSUES).map((i) => {
    const path = (i.path ?? []).map((p) => String(typeof p === "object" ? p.key : p)).join(".")
    return path === "" ? i.message : `${path}: ${i.message}`
  })
  const more = issues.length > MAX_ISSUES ? ` (and ${issues.length - MAX_ISSUES} more)` : ""
  return `${what} does not match the schema: ${parts.join("; ")}${more}`
}

/**
 * The wire form of the live KubeClient (`../Live.ts`): where a resource lives on the API server,
 * what one call is, how a reply's body is decoded, and how a failed reply becomes a `KubeError`
 * with the API server's own message.
 *
 * Owns: REST paths (`/api/v1/...`, `/apis/<group>/<version>/...`), the `Call` and `Reply` records,
 * the `Status` schema, JSON + Schema decoding of a body, and the KubeError of a transport failure.
 * Does not own: sending anything (`Connections.ts`), or the status → reason table (`../Errors.ts`).
 */
import type { HttpMethod } from "@kubernetes/client-node/dist/gen/http/http.js"
import { Effect, Option, Predicate, Schema } from "effect"
import type { Resource } from "../../../domain/KubeObjects.ts"
import type { KubeError, KubeErrorReason } from "../../../services/KubeClient.ts"
import { decodeSummary, kubeError, reasonOf } from "../Errors.ts"
import type { Verb } from "../Errors.ts"

/** One API call: the verb names it in errors. */
export interface Call {
  readonly verb: Verb
  readonly method: HttpMethod
  readonly path: string
  readonly query?: Readonly<Record<string, string | undefined>>
  readonly body?: unknown
}

/** A whole reply of a request/reply call. */
export interface Reply {
  readonly status: number
  readonly text: string
}

/** An error's message with its cause's (undici says only "fetch failed" and puts ECONNREFUSED below). */
const messageOf = (e: unknown): string => {
  if (!(e instanceof Error)) return String(e)
  return e.cause instanceof Error && e.cause.message !== "" ? `${e.message}: ${e.cause.message}` : e.message
}

/**
 * What a parse failure may say without its input: V8's JSON.parse error quotes the text around the
 * fault (an exec credential plugin's output, which holds a token), js-yaml's quotes lines of the
 * kubeconfig and keeps the whole file in `mark.buffer`. `undefined` for any other error.
 */
const parseFailure = (e: unknown): string | undefined => {
  if (!(e instanceof Error)) return undefined
  if (e.name === "SyntaxError") return "not valid JSON"
  if (e.name !== "YAMLException") return undefined
  const reason = Predicate.hasProperty(e, "reason") && Predicate.isString(e.reason) ? `: ${e.reason}` : ""
  const mark = Predicate.hasProperty(e, "mark") && Predicate.hasProperty(e.mark, "line") && Predicate.isNumber(e.mark.line)
    ? ` (line ${e.mark.line + 1})`
    : ""
  return `not valid YAML${reason}${mark}`
}

/**
 * A failure below HTTP (connecting, TLS, applying credentials, reading a body or the configuration)
 * as a KubeError: `what` and the error's message in `detail`, the error itself as `cause`. undici's
 * errors carry the socket's address and errno, never the request's headers, so no bearer token
 * travels with them. A parse failure is the exception: it quotes its input, so it is named by kind
 * and line only and is not kept as the cause.
 */
export const transportError = (operation: Verb | "layer", reason: KubeErrorReason, what: string, e: unknown): KubeError => {
  const parse = parseFailure(e)
  return parse === undefined
    ? kubeError(operation, reason, `${what}: ${messageOf(e)}`, undefined, e)
    : kubeError(operation, reason, `${what}: ${parse}`)
}

const basePath = (r: Resource<unknown>): string => (r.group === "" ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`)

export const collectionPath = (r: Resource<unknown>, namespace: string | undefined): string =>
  `${basePath(r)}${namespace === undefined || r.clusterScoped === true ? "" : `/namespaces/${encodeURIComponent(namespace)}`}/${r.plural}`

export const itemPath = (r: Resource<unknown>, namespace: string, name: string): string =>
  `${collectionPath(r, namespace)}/${encodeURIComponent(name)}`

/** The `metav1.Status` the API server sends with a failure (in a reply body or a watch ERROR event). */
export const Status = Schema.Struct({
  message: Schema.optional(Schema.String),
  reason: Schema.optional(Schema.String),
  code: Schema.optional(Schema.Int)
})
const decodeStatusText = Schema.decodeUnknownOption(Schema.fromJsonString(Status))

/** A failed reply as a KubeError, with the API server's own message when it sent a Status. */
export const failure = (verb: Verb, reply: Reply): KubeError => {
  const status = decodeStatusText(reply.text)
  const message = Option.isSome(status) && status.value.message !== undefined && status.value.message !== ""
    ? status.value.message
    : `HTTP ${reply.status}`
  return kubeError(verb, reasonOf(verb, reply.status), message, reply.status)
}

/**
 * A body parsed as JSON, then decoded; failures are `Decode` errors naming `what`, never the values.
 * They carry no cause on purpose: the JSON error and the Schema issues quote the body, which can
 * hold a Secret's data, a CSR or a token.
 */
export const decodeJson = <A>(verb: Verb, schema: Schema.Decoder<A>, what: string, text: string): Effect.Effect<A, KubeError> =>
  Effect.try({
    try: (): unknown => JSON.parse(text),
    catch: () => kubeError(verb, "Decode", `${what} is not JSON`)
  }).pipe(
    Effect.flatMap(Schema.decodeUnknownEffect(schema)),
    Effect.mapError((e) => (e._tag === "KubeError" ? e : kubeError(verb, "Decode", decodeSummary(what, e))))
  )

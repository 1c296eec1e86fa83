/**
 * The wire form of the live KubeClient (`../Live.ts`): where a resource lives on the API server,
 * what one call is, how a reply's body is decoded, and how a failed reply becomes a `KubeError`
 * with the API server's own message.
 *
 * Owns: REST paths (`/api/v1/...`, `/apis/<group>/<version>/...`), the `Call` and `Reply` records,
 * the `Status` schema, JSON + Schema decoding of a body, and the message of a transport failure.
 * Does not own: sending anything (`Connections.ts`), or the status → reason table (`../Errors.ts`).
 */
import type { HttpMethod } from "@kubernetes/client-node/dist/gen/http/http.js"
import { Effect, Option, Schema } from "effect"
import type { Resource } from "../../../domain/KubeObjects.ts"
import type { KubeError } from "../../../services/KubeClient.ts"
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
export const messageOf = (e: unknown): string => {
  if (!(e instanceof Error)) return String(e)
  return e.cause instanceof Error && e.cause.message !== "" ? `${e.message}: ${e.cause.message}` : e.message
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

/** A body parsed as JSON, then decoded; failures are `Decode` errors naming `what`, never the values. */
export const decodeJson = <A>(verb: Verb, schema: Schema.Decoder<A>, what: string, text: string): Effect.Effect<A, KubeError> =>
  Effect.try({
    try: (): unknown => JSON.parse(text),
    catch: () => kubeError(verb, "Decode", `${what} is not JSON`)
  }).pipe(
    Effect.flatMap(Schema.decodeUnknownEffect(schema)),
    Effect.mapError((e) => (e._tag === "KubeError" ? e : kubeError(verb, "Decode", decodeSummary(what, e))))
  )

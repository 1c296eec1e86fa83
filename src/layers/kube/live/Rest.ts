/**
 * The request/reply verbs of the live KubeClient (`../Live.ts`): get, list, create, delete,
 * replace and replace of the status subresource, each one call whose reply is decoded with the
 * Resource's schema before it leaves.
 *
 * Owns: which HTTP method and path each verb uses, which statuses are success (a 404 is `undefined`
 * for get and success for delete), and list's tolerance of one malformed object.
 * Does not own: connections and credentials (`Connections.ts`), watch (`Watch.ts`).
 */
import { HttpMethod } from "@kubernetes/client-node/dist/gen/http/http.js"
import { Effect, Schema } from "effect"
import type { Resource } from "../../../domain/KubeObjects.ts"
import type { CallOptions, KubeClientShape, ListOptions, ListResult } from "../../../services/KubeClient.ts"
import { decodeSummary } from "../Errors.ts"
import type { RestClient } from "./Connections.ts"
import { collectionPath, decodeJson, failure, itemPath } from "./Wire.ts"

const ListEnvelope = Schema.Struct({
  metadata: Schema.Struct({ resourceVersion: Schema.String }),
  items: Schema.NullOr(Schema.Array(Schema.Unknown))
})

/**
 * The verbs over the process's own identity (`own`); `create` goes through `clientFor` with its
 * options, so that it can authenticate as a pod's ServiceAccount token.
 */
export const makeRest = (
  own: RestClient,
  clientFor: (options: CallOptions | undefined) => RestClient
): Omit<KubeClientShape, "watch"> => {
  const get = Effect.fn("KubeClient.get")(function*<A>(resource: Resource<A>, namespace: string, name: string) {
    const reply = yield* own.request({ verb: "get", method: HttpMethod.GET, path: itemPath(resource, namespace, name) })
    if (reply.status === 404) return undefined
    if (reply.status !== 200) return yield* failure("get", reply)
    return yield* decodeJson("get", resource.schema, `${resource.kind} ${namespace}/${name}`, reply.text)
  })

  const list = Effect.fn("KubeClient.list")(function*<A>(resource: Resource<A>, options: ListOptions) {
    const reply = yield* own.request({
      verb: "list",
      method: HttpMethod.GET,
      path: collectionPath(resource, options.namespace),
      query: { labelSelector: options.labelSelector, fieldSelector: options.fieldSelector }
    })
    if (reply.status !== 200) return yield* failure("list", reply)
    const envelope = yield* decodeJson("list", ListEnvelope, `${resource.kind} list`, reply.text)
    // One malformed object (another client's) must not make every list fail forever: it is skipped
    // with a warning, as an informer would drop it.
    const decodeItem = Schema.decodeUnknownEffect(resource.schema)
    const decoded = yield* Effect.forEach(envelope.items ?? [], (item, i) =>
      decodeItem(item).pipe(
        Effect.map((a): A | undefined => a),
        Effect.catch((e) =>
          Effect.as(Effect.logWarning("skipping an object that does not decode", { summary: decodeSummary(`${resource.kind} list item ${i}`, e) }), undefined)
        )
      ))
    const items = decoded.filter((a): a is A => a !== undefined)
    return { items, resourceVersion: envelope.metadata.resourceVersion } satisfies ListResult<A>
  })

  const create = Effect.fn("KubeClient.create")(function*<A>(
    resource: Resource<A>,
    namespace: string,
    body: unknown,
    options?: CallOptions
  ) {
    const reply = yield* clientFor(options).request({ verb: "create", method: HttpMethod.POST, path: collectionPath(resource, namespace), body })
    if (reply.status !== 200 && reply.status !== 201 && reply.status !== 202) return yield* failure("create", reply)
    return yield* decodeJson("create", resource.schema, `created ${resource.kind}`, reply.text)
  })

  const delete_ = Effect.fn("KubeClient.delete")(function*<A>(resource: Resource<A>, namespace: string, name: string) {
    const reply = yield* own.request({ verb: "delete", method: HttpMethod.DELETE, path: itemPath(resource, namespace, name) })
    if (reply.status === 404 || (reply.status >= 200 && reply.status < 300)) return
    return yield* failure("delete", reply)
  })

  const put = <A>(verb: "replace" | "replaceStatus", resource: Resource<A>, path: string, name: string, body: unknown) =>
    Effect.gen(function*() {
      const reply = yield* own.request({ verb, method: HttpMethod.PUT, path, body })
      if (reply.status !== 200 && reply.status !== 201) return yield* failure(verb, reply)
      return yield* decodeJson(verb, resource.schema, `${resource.kind} ${name}`, reply.text)
    })

  const replace = Effect.fn("KubeClient.replace")(function*<A>(resource: Resource<A>, namespace: string, name: string, body: unknown) {
    return yield* put("replace", resource, itemPath(resource, namespace, name), name, body)
  })

  const replaceStatus = Effect.fn("KubeClient.replaceStatus")(function*<A>(
    resource: Resource<A>,
    namespace: string,
    name: string,
    body: unknown
  ) {
    return yield* put("replaceStatus", resource, `${itemPath(resource, namespace, name)}/status`, name, body)
  })

  return { get, list, create, delete: delete_, replace, replaceStatus }
}

/**
 * The `KubeClient` verbs of the memory API server (`../Memory.ts`) over one `Store`: what each
 * verb checks before it writes (names, namespaces, resourceVersions, optimistic concurrency, the
 * status subresource split) and the watch stream (history backlog, then the live fan-out).
 *
 * Owns: the API server's answers per verb, with the status codes the live client maps.
 * Does not own: the state or how a write is committed (`Store.ts`).
 */
import { Clock, Effect, PubSub, Stream } from "effect"
import type { Resource } from "../../../domain/KubeObjects.ts"
import { apiVersionOf, rfc3339 } from "../../../domain/KubeObjects.ts"
import type { CallOptions, KubeClientShape, KubeError, ListOptions, ListResult, WatchEvent, WatchOptions } from "../../../services/KubeClient.ts"
import { kubeError } from "../Errors.ts"
import type { Change, Json, Message } from "./Objects.ts"
import {
  createOnUpdate,
  decodeAs,
  eventsFor,
  kindKey,
  metaOf,
  notFound,
  objectKey,
  parseRv,
  readBody,
  scope,
  selectorsOf,
  uidFor,
  unconditionalUpdate,
  withoutStatus
} from "./Objects.ts"
import type { Creation, Store } from "./Store.ts"
import { objectsOf } from "./Store.ts"

/**
 * A body as stored: its own fields but status, then what the server owns — apiVersion, kind, name,
 * namespace (none for cluster-scoped kinds), uid, creationTimestamp — and the status the server keeps.
 */
const asStored = (
  resource: Resource<unknown>,
  namespace: string,
  name: string,
  body: Json,
  server: { readonly uid: unknown; readonly creationTimestamp: unknown; readonly status: unknown }
): Json => ({
  ...withoutStatus(body),
  ...(server.status === undefined ? {} : { status: server.status }),
  apiVersion: apiVersionOf(resource),
  kind: resource.kind,
  metadata: {
    ...metaOf(body),
    name,
    ...(resource.clusterScoped === true ? {} : { namespace }),
    uid: server.uid,
    creationTimestamp: server.creationTimestamp
  }
})

export const makeClient = (store: Store): KubeClientShape => {
  const { commit, injected, lookup, sorted } = store

  const get = Effect.fn("KubeClient.get")(function*<A>(resource: Resource<A>, namespace: string, name: string) {
    yield* injected("get")
    const found = yield* lookup(kindKey(resource), scope(resource, namespace), name)
    return found === undefined ? undefined : yield* decodeAs("get", resource, found)
  })

  const list = Effect.fn("KubeClient.list")(function*<A>(resource: Resource<A>, options: ListOptions) {
    yield* injected("list")
    const selector = yield* selectorsOf("list", resource, options)
    const { counter } = yield* store.state
    const raw = yield* sorted(kindKey(resource), selector)
    const items = yield* Effect.forEach(raw, (o) => decodeAs("list", resource, o))
    return { items, resourceVersion: String(counter) } satisfies ListResult<A>
  })

  const watch = <A>(resource: Resource<A>, options: WatchOptions): Stream.Stream<WatchEvent<A>, KubeError> =>
    Stream.unwrap(
      Effect.gen(function*() {
        yield* injected("watch")
        const selector = yield* selectorsOf("watch", resource, options)
        const from = parseRv(options.resourceVersion)
        if (from === undefined) {
          return yield* kubeError("watch", "Invalid", `invalid resourceVersion "${options.resourceVersion}"`, 400)
        }
        // Subscribe before reading history: a change committed in between arrives twice and the
        // resourceVersion filter below drops the second copy, so nothing is lost.
        const subscription = yield* PubSub.subscribe(store.pubsub)
        const { compactedThrough, history } = yield* store.state
        if (from < compactedThrough) {
          return yield* kubeError("watch", "Gone", `too old resource version: ${from} (${compactedThrough})`)
        }
        const backlog = [...history].filter((c) => c.rv > from)
        const kind = kindKey(resource)
        const live = Stream.fromEffectRepeat(PubSub.take(subscription)).pipe(
          Stream.takeWhile((m): m is Extract<Message, { _tag: "Change" }> => m._tag === "Change"),
          Stream.map((m) => m.change)
        )
        return Stream.concat(Stream.fromIterable(backlog), live).pipe(
          // The newest resourceVersion sent so far, carried through the stream rather than a variable.
          Stream.mapAccum(() => from, (last, c: Change) => c.rv <= last ? [last, []] : [c.rv, [c]]),
          Stream.map((c) => eventsFor(kind, selector, c)),
          Stream.flattenIterable,
          Stream.mapEffect((e) =>
            Effect.map(decodeAs("watch", resource, e.object), (object): WatchEvent<A> => ({ type: e.type, object }))
          )
        )
      }).pipe(Effect.withSpan("KubeClient.watch"))
    )

  /** Stores a new object with the metadata the server sets (uid, creationTimestamp, resourceVersion). */
  const insert = (resource: Resource<unknown>, namespace: string, name: string, json: Json, creation?: Creation) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const uid = uidFor((yield* store.state).counter + 1)
      // A status sent with a create is dropped, as the API server does for every kind with a status
      // subresource (and for kinds with no status field at all).
      const object = asStored(resource, namespace, name, json, { uid, creationTimestamp: rfc3339(now), status: undefined })
      return yield* commit(kindKey(resource), "ADDED", object, undefined, creation)
    })

  const create = Effect.fn("KubeClient.create")(function*<A>(
    resource: Resource<A>,
    requestedNamespace: string,
    body: unknown,
    options?: CallOptions
  ) {
    yield* injected("create")
    const { json, metadata } = yield* readBody("create", body)
    const kind = kindKey(resource)
    const namespace = scope(resource, requestedNamespace)
    const { counter } = yield* store.state
    const generated = metadata.generateName === undefined || metadata.generateName === ""
      ? undefined
      : `${metadata.generateName}${(counter + 1).toString(36).padStart(5, "0").slice(-5)}`
    const name = metadata.name === undefined || metadata.name === "" ? generated : metadata.name
    if (name === undefined) {
      return yield* kubeError("create", "Invalid", "metadata.name: Required value", 422)
    }
    if (resource.clusterScoped !== true && metadata.namespace !== undefined && metadata.namespace !== namespace) {
      return yield* kubeError("create", "Invalid", "the namespace of the provided object does not match the namespace sent on the request", 400)
    }
    if (metadata.resourceVersion !== undefined && metadata.resourceVersion !== "") {
      // kube-apiserver answers this with a 500 (its storage layer refuses it), which the live client
      // maps to Unavailable.
      return yield* kubeError("create", "Unavailable", "resourceVersion should not be set on objects to be created", 500)
    }
    if (objectsOf(yield* store.state, kind).has(objectKey(namespace, name))) {
      return yield* kubeError("create", "AlreadyExists", `${kind} "${name}" already exists`)
    }
    // Recorded in the commit, before it publishes, so a subscriber woken by the change counts it.
    const stored = yield* insert(resource, namespace, name, json, { resource: kind, namespace, name, bearerToken: options?.bearerToken })
    return yield* decodeAs("create", resource, stored)
  })

  const delete_ = Effect.fn("KubeClient.delete")(function*<A>(resource: Resource<A>, namespace: string, name: string) {
    yield* injected("delete")
    const kind = kindKey(resource)
    const existing = yield* lookup(kind, scope(resource, namespace), name)
    if (existing !== undefined) yield* commit(kind, "DELETED", existing, undefined)
  })

  /** Shared by replace and replaceStatus: checks name and resourceVersion, then merges. */
  const update = <A>(
    verb: "replace" | "replaceStatus",
    resource: Resource<A>,
    namespace: string,
    name: string,
    body: unknown,
    merge: (current: Json, incoming: Json) => Json
  ) =>
    Effect.gen(function*() {
      yield* injected(verb)
      const { json, metadata } = yield* readBody(verb, body)
      const kind = kindKey(resource)
      if (metadata.name !== undefined && metadata.name !== name) {
        return yield* kubeError(verb, "Invalid", `the name of the object (${metadata.name}) does not match the name on the URL (${name})`, 400)
      }
      const current = yield* lookup(kind, scope(resource, namespace), name)
      if (current === undefined) {
        // Whatever resourceVersion the body carries, as kube-apiserver does for these kinds.
        if (verb === "replace" && createOnUpdate.has(kind)) {
          return yield* decodeAs(verb, resource, yield* insert(resource, scope(resource, namespace), name, json))
        }
        return yield* notFound(verb, resource, name)
      }
      if (metadata.resourceVersion === undefined || metadata.resourceVersion === "") {
        if (!unconditionalUpdate.has(kind)) {
          return yield* kubeError(verb, "Invalid", "metadata.resourceVersion: Invalid value: 0: must be specified for an update", 422)
        }
      } else if (metadata.resourceVersion !== metaOf(current)["resourceVersion"]) {
        return yield* kubeError(
          verb,
          "Conflict",
          `Operation cannot be fulfilled on ${kind} "${name}": the object has been modified; please apply your changes to the latest version and try again`
        )
      }
      const stored = yield* commit(kind, "MODIFIED", merge(current, json), current)
      return yield* decodeAs(verb, resource, stored)
    })

  const replace = Effect.fn("KubeClient.replace")(function*<A>(resource: Resource<A>, namespace: string, name: string, body: unknown) {
    return yield* update("replace", resource, namespace, name, body, (current, incoming) => {
      const cm = metaOf(current)
      return asStored(resource, namespace, name, incoming, { uid: cm["uid"], creationTimestamp: cm["creationTimestamp"], status: current["status"] })
    })
  })

  const replaceStatus = Effect.fn("KubeClient.replaceStatus")(function*<A>(
    resource: Resource<A>,
    namespace: string,
    name: string,
    body: unknown
  ) {
    return yield* update("replaceStatus", resource, namespace, name, body, (current, incoming) => ({
      ...withoutStatus(current),
      ...(incoming["status"] === undefined ? {} : { status: incoming["status"] })
    }))
  })

  return { get, list, watch, create, delete: delete_, replace, replaceStatus }
}

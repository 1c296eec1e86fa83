/**
 * An in-memory Kubernetes API server behind the `KubeClient` contract, for tests and static modes,
 * plus the hooks tests drive it with (`KubeClientMemory`).
 *
 * Owns: one object store per kind (keyed `<plural>.<group>`), server-set metadata (uid,
 * creationTimestamp from `Clock`, resourceVersion), optimistic concurrency on replace, the watch
 * history and its fan-out through a `PubSub`, and a record of the bearer token each `create` used.
 * Does not own: anything a real API server adds on top of storage.
 *
 * Limits (what differs from a real API server; anything depending on these belongs in the e2e suite):
 * - No admission, no validation, no defaulting, no RBAC, no authentication: every token is accepted
 *   and only recorded. A response that does not decode with the Resource's schema is stored anyway
 *   and the call fails with `Decode`, as the live client would.
 * - resourceVersion is one global counter shared by all kinds, as decimal strings; every successful
 *   write bumps it, even one that changes nothing. History is kept until `expireHistory`; a watch
 *   from a resourceVersion older than the last expiry fails with `Gone`.
 * - Watches send no BOOKMARK events and never time out; they end only on `dropWatches` or when the
 *   consumer stops. `resourceVersion: "0"` means "from the beginning of the retained history", not
 *   the API server's "any version".
 * - Selectors: equality-based labels (`a=b`, `a!=b`, `a`, `!a`, comma-joined) and the fields
 *   `metadata.name` / `metadata.namespace`; anything else fails with `Invalid`.
 * - A filtered watch sees an object that stops matching as DELETED and one that starts matching as
 *   ADDED, as the API server's watch cache does.
 * - `replace` and `replaceStatus` require `metadata.resourceVersion` (as for custom resources);
 *   `create` rejects one. `generateName` appends five characters drawn from the resourceVersion
 *   counter (unique, not random). Cluster-scoped kinds are stored under namespace "" and their
 *   objects carry no namespace. No finalizers, no owner-reference garbage collection,
 *   no `metadata.generation`, no subresource distinction per kind (`replaceStatus` works for all).
 */
import { Clock, Context, Effect, Layer, Predicate, PubSub, Schema, Stream } from "effect"
import type { Redacted } from "effect"
import type { Resource } from "../../domain/KubeObjects.ts"
import { apiVersionOf, rfc3339 } from "../../domain/KubeObjects.ts"
import { KubeClient } from "../../services/KubeClient.ts"
import type {
  CallOptions,
  KubeClientShape,
  KubeError,
  KubeErrorReason,
  ListOptions,
  ListResult,
  WatchEvent,
  WatchOptions
} from "../../services/KubeClient.ts"
import { decodeSummary, kubeError } from "./Errors.ts"
import type { Verb } from "./Errors.ts"
import { fieldSelector, labelSelector } from "./Selectors.ts"
import type { Meta, Selector } from "./Selectors.ts"

/** One `create` call as the store saw it. */
export interface Creation {
  /** `<plural>.<group>`, e.g. `certificaterequests.cert-manager.io`. */
  readonly resource: string
  readonly namespace: string
  readonly name: string
  /** The token passed in `CallOptions`; undefined when the client's own identity was used. */
  readonly bearerToken: Redacted.Redacted<string> | undefined
}

/** Test hooks of the memory KubeClient; provided next to `KubeClient` by `layerMemory`. */
export interface KubeClientMemoryShape {
  /** The `KubeClient` this store serves (the same one `layerMemory` provides). */
  readonly client: KubeClientShape
  /**
   * Creates or overwrites an object as an administrator or another controller would: no
   * resourceVersion check, status included, server metadata kept or assigned. Emits ADDED or MODIFIED.
   */
  readonly upsert: <A>(resource: Resource<A>, object: unknown) => Effect.Effect<A, KubeError>
  /**
   * Reads an object, applies `f` and writes the result back like `upsert` (e.g. cert-manager setting
   * `Ready` and `status.certificate`). Fails with NotFound when the object does not exist.
   */
  readonly modify: <A>(
    resource: Resource<A>,
    namespace: string,
    name: string,
    f: (current: A) => A
  ) => Effect.Effect<A, KubeError>
  /** Every stored object of the kind, ordered by namespace then name. */
  readonly all: <A>(resource: Resource<A>) => Effect.Effect<ReadonlyArray<A>, KubeError>
  /** The most recent `create` of this object, or undefined when it was never created through the client. */
  readonly createdWith: <A>(resource: Resource<A>, namespace: string, name: string) => Effect.Effect<Creation | undefined>
  /** Every `create` in call order (failed ones included only if they reached the store). */
  readonly creations: Effect.Effect<ReadonlyArray<Creation>>
  /** Completes with every `create` once there have been at least `count` (waits on the change feed, never polls). */
  readonly awaitCreations: (count: number) => Effect.Effect<ReadonlyArray<Creation>>
  /** Completes once `check` (a look at the stored objects) holds: now, or after a later committed change (never polls). */
  readonly until: <E, R>(check: Effect.Effect<boolean, E, R>) => Effect.Effect<void, E, R>
  /** The next `times` calls of `verb` (any kind) fail with `reason` before touching the store. */
  readonly failNext: (verb: Verb, reason: KubeErrorReason, times?: number) => Effect.Effect<void>
  /** Ends every open watch stream normally, as when the API server closes watch connections. */
  readonly dropWatches: Effect.Effect<void>
  /** Forgets all history: a watch from any resourceVersion before now fails with `Gone`. */
  readonly expireHistory: Effect.Effect<void>
  /** The current global resourceVersion. */
  readonly resourceVersion: Effect.Effect<string>
}

export class KubeClientMemory extends Context.Service<KubeClientMemory, KubeClientMemoryShape>()(
  "csi-driver-spiffe/layers/KubeClient/KubeClientMemory"
) {}

type Json = { readonly [key: string]: unknown }

interface Change {
  readonly rv: number
  readonly kind: string
  readonly type: "ADDED" | "MODIFIED" | "DELETED"
  readonly object: Json
  /** The object before a MODIFIED, so filtered watches can turn it into ADDED / DELETED. */
  readonly previous: Json | undefined
}

type Message = { readonly _tag: "Change"; readonly change: Change } | { readonly _tag: "Drop" }

/** What the store reads from any body: enough to place it, nothing else. */
const Envelope = Schema.Struct({
  metadata: Schema.Struct({
    name: Schema.optional(Schema.String),
    generateName: Schema.optional(Schema.String),
    namespace: Schema.optional(Schema.String),
    resourceVersion: Schema.optional(Schema.String),
    labels: Schema.optional(Schema.Record(Schema.String, Schema.String))
  })
})
const decodeEnvelope = Schema.decodeUnknownOption(Envelope)

const kindKey = (r: Resource<unknown>): string => (r.group === "" ? r.plural : `${r.plural}.${r.group}`)
const objectKey = (namespace: string, name: string): string => `${namespace}/${name}`
/** The namespace a kind's objects are stored under: "" for cluster-scoped kinds. */
const scope = (r: Resource<unknown>, namespace: string): string => (r.clusterScoped === true ? "" : namespace)

const metaOf = (o: Json): Json => (o["metadata"] ?? {}) as Json

const selectable = (o: Json): Meta => {
  const m = decodeEnvelope(o)
  const md = m._tag === "Some" ? m.value.metadata : {}
  return { name: md.name ?? "", namespace: md.namespace ?? "", labels: md.labels ?? {} }
}

const parseRv = (rv: string): number | undefined => (/^\d+$/.test(rv) ? Number(rv) : undefined)

/** Bodies go through JSON as on the wire, so callers never share objects with the store. */
const toJson = (body: unknown): Json | undefined => {
  try {
    const out: unknown = JSON.parse(JSON.stringify(body))
    return Predicate.isObject(out) ? out : undefined
  } catch {
    return undefined
  }
}

const decodeAs = <A>(verb: Verb, resource: Resource<A>, object: Json): Effect.Effect<A, KubeError> =>
  Schema.decodeEffect(resource.schema)(object).pipe(
    Effect.mapError((e) => kubeError(verb, "Decode", decodeSummary(`${resource.kind} ${String(metaOf(object)["name"])}`, e)))
  )

const selectorsOf = (verb: Verb, options: ListOptions): Effect.Effect<Selector, KubeError> => {
  const labels = labelSelector(options.labelSelector)
  const fields = fieldSelector(options.fieldSelector)
  if (typeof labels === "string") return Effect.fail(kubeError(verb, "Invalid", labels, 400))
  if (typeof fields === "string") return Effect.fail(kubeError(verb, "Invalid", fields, 400))
  const ns = options.namespace
  return Effect.succeed((m: Meta) => (ns === undefined || m.namespace === ns) && labels(m) && fields(m))
}

/** Builds one store; every call of the returned effect is an independent API server. */
export const make: Effect.Effect<KubeClientMemoryShape> = Effect.gen(function*() {
  const pubsub = yield* PubSub.unbounded<Message>()
  const objects = new Map<string, Map<string, Json>>()
  const history: Array<Change> = []
  const creations: Array<Creation> = []
  const failures = new Map<Verb, Array<KubeErrorReason>>()
  let counter = 0
  let compactedThrough = 0

  const store = (kind: string): Map<string, Json> => {
    let s = objects.get(kind)
    if (s === undefined) {
      s = new Map()
      objects.set(kind, s)
    }
    return s
  }

  /** Stores (or removes) an object under a fresh resourceVersion and publishes the change, atomically. */
  const commit = (kind: string, type: Change["type"], object: Json, previous: Json | undefined): Json => {
    counter += 1
    const stored: Json = { ...object, metadata: { ...metaOf(object), resourceVersion: String(counter) } }
    const meta = selectable(stored)
    const key = objectKey(meta.namespace, meta.name)
    if (type === "DELETED") store(kind).delete(key)
    else store(kind).set(key, stored)
    const change: Change = { rv: counter, kind, type, object: stored, previous }
    history.push(change)
    PubSub.publishUnsafe(pubsub, { _tag: "Change", change })
    return stored
  }

  const injected = (verb: Verb): Effect.Effect<void, KubeError> =>
    Effect.suspend(() => {
      const queue = failures.get(verb)
      const reason = queue?.shift()
      return reason === undefined ? Effect.void : Effect.fail(kubeError(verb, reason, "injected failure"))
    })

  const notFound = (verb: Verb, resource: Resource<unknown>, name: string): KubeError =>
    kubeError(verb, "NotFound", `${kindKey(resource)} "${name}" not found`)

  const readBody = (verb: Verb, body: unknown) =>
    Effect.gen(function*() {
      const json = toJson(body)
      const envelope = json === undefined ? undefined : decodeEnvelope(json)
      if (json === undefined || envelope === undefined || envelope._tag === "None") {
        return yield* kubeError(verb, "Invalid", "body is not a JSON object with metadata", 400)
      }
      return { json, metadata: envelope.value.metadata }
    })

  const get = Effect.fn("KubeClient.get")(function*<A>(resource: Resource<A>, namespace: string, name: string) {
    yield* injected("get")
    const found = store(kindKey(resource)).get(objectKey(scope(resource, namespace), name))
    return found === undefined ? undefined : yield* decodeAs("get", resource, found)
  })

  const sorted = (kind: string, selector: Selector): ReadonlyArray<Json> =>
    [...store(kind).entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o)
      .filter((o) => selector(selectable(o)))

  const list = Effect.fn("KubeClient.list")(function*<A>(resource: Resource<A>, options: ListOptions) {
    yield* injected("list")
    const selector = yield* selectorsOf("list", options)
    const resourceVersion = String(counter)
    const raw = sorted(kindKey(resource), selector)
    const items = yield* Effect.forEach(raw, (o) => decodeAs("list", resource, o))
    return { items, resourceVersion } satisfies ListResult<A>
  })

  const eventsFor = (kind: string, selector: Selector, change: Change): ReadonlyArray<{ type: Change["type"]; object: Json }> => {
    if (change.kind !== kind) return []
    const now = selector(selectable(change.object))
    if (change.type !== "MODIFIED" || change.previous === undefined) return now ? [{ type: change.type, object: change.object }] : []
    const before = selector(selectable(change.previous))
    if (now && before) return [{ type: "MODIFIED", object: change.object }]
    if (now) return [{ type: "ADDED", object: change.object }]
    if (before) return [{ type: "DELETED", object: change.object }]
    return []
  }

  const watch = <A>(resource: Resource<A>, options: WatchOptions): Stream.Stream<WatchEvent<A>, KubeError> =>
    Stream.unwrap(
      Effect.gen(function*() {
        yield* injected("watch")
        const selector = yield* selectorsOf("watch", options)
        const from = parseRv(options.resourceVersion)
        if (from === undefined) {
          return yield* kubeError("watch", "Invalid", `invalid resourceVersion "${options.resourceVersion}"`, 400)
        }
        // Subscribe before reading history: a change committed in between arrives twice and the
        // resourceVersion filter below drops the second copy, so nothing is lost.
        const subscription = yield* PubSub.subscribe(pubsub)
        if (from < compactedThrough) {
          return yield* kubeError("watch", "Gone", `too old resource version: ${from} (${compactedThrough})`)
        }
        const backlog = history.filter((c) => c.rv > from)
        const kind = kindKey(resource)
        let last = from
        const live = Stream.fromEffectRepeat(PubSub.take(subscription)).pipe(
          Stream.takeWhile((m): m is Extract<Message, { _tag: "Change" }> => m._tag === "Change"),
          Stream.map((m) => m.change)
        )
        return Stream.concat(Stream.fromIterable(backlog), live).pipe(
          Stream.filter((c) => {
            if (c.rv <= last) return false
            last = c.rv
            return true
          }),
          Stream.map((c) => eventsFor(kind, selector, c)),
          Stream.flattenIterable,
          Stream.mapEffect((e) =>
            Effect.map(decodeAs("watch", resource, e.object), (object): WatchEvent<A> => ({ type: e.type, object }))
          )
        )
      }).pipe(Effect.withSpan("KubeClient.watch"))
    )

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
      return yield* kubeError("create", "Invalid", "resourceVersion should not be set on objects to be created", 500)
    }
    if (store(kind).has(objectKey(namespace, name))) {
      return yield* kubeError("create", "AlreadyExists", `${kind} "${name}" already exists`)
    }
    const now = yield* Clock.currentTimeMillis
    const uid = `00000000-0000-4000-8000-${(counter + 1).toString(16).padStart(12, "0")}`
    // Recorded before the commit publishes, so a subscriber woken by the change counts it.
    creations.push({ resource: kind, namespace, name, bearerToken: options?.bearerToken })
    const stored = commit(
      kind,
      "ADDED",
      {
        ...json,
        apiVersion: apiVersionOf(resource),
        kind: resource.kind,
        metadata: {
          ...metaOf(json),
          name,
          ...(resource.clusterScoped === true ? {} : { namespace }),
          uid,
          creationTimestamp: rfc3339(now)
        }
      },
      undefined
    )
    return yield* decodeAs("create", resource, stored)
  })

  const delete_ = Effect.fn("KubeClient.delete")(function*<A>(resource: Resource<A>, namespace: string, name: string) {
    yield* injected("delete")
    const kind = kindKey(resource)
    const existing = store(kind).get(objectKey(scope(resource, namespace), name))
    if (existing !== undefined) commit(kind, "DELETED", existing, undefined)
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
      const current = store(kind).get(objectKey(scope(resource, namespace), name))
      if (current === undefined) return yield* notFound(verb, resource, name)
      if (metadata.resourceVersion === undefined || metadata.resourceVersion === "") {
        return yield* kubeError(verb, "Invalid", "metadata.resourceVersion: Invalid value: 0: must be specified for an update", 422)
      }
      if (metadata.resourceVersion !== metaOf(current)["resourceVersion"]) {
        return yield* kubeError(
          verb,
          "Conflict",
          `Operation cannot be fulfilled on ${kind} "${name}": the object has been modified; please apply your changes to the latest version and try again`
        )
      }
      const stored = commit(kind, "MODIFIED", merge(current, json), current)
      return yield* decodeAs(verb, resource, stored)
    })

  const withoutStatus = (o: Json): Json => Object.fromEntries(Object.entries(o).filter(([k]) => k !== "status"))

  const replace = Effect.fn("KubeClient.replace")(function*<A>(resource: Resource<A>, namespace: string, name: string, body: unknown) {
    return yield* update("replace", resource, namespace, name, body, (current, incoming) => {
      const cm = metaOf(current)
      return {
        ...withoutStatus(incoming),
        ...(current["status"] === undefined ? {} : { status: current["status"] }),
        apiVersion: apiVersionOf(resource),
        kind: resource.kind,
        metadata: {
          ...metaOf(incoming),
          name,
          ...(resource.clusterScoped === true ? {} : { namespace }),
          uid: cm["uid"],
          creationTimestamp: cm["creationTimestamp"]
        }
      }
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

  const client: KubeClientShape = { get, list, watch, create, delete: delete_, replace, replaceStatus }

  const upsert = Effect.fn("KubeClientMemory.upsert")(function*<A>(resource: Resource<A>, object: unknown) {
    const { json, metadata } = yield* readBody("replace", object)
    const namespace = resource.clusterScoped === true ? "" : metadata.namespace
    if (metadata.name === undefined || namespace === undefined) {
      return yield* kubeError("replace", "Invalid", "upsert needs metadata.name and metadata.namespace", 422)
    }
    const kind = kindKey(resource)
    const current = store(kind).get(objectKey(namespace, metadata.name))
    const now = yield* Clock.currentTimeMillis
    const cm = current === undefined ? {} : metaOf(current)
    const stored = commit(
      kind,
      current === undefined ? "ADDED" : "MODIFIED",
      {
        ...json,
        apiVersion: apiVersionOf(resource),
        kind: resource.kind,
        metadata: {
          ...metaOf(json),
          uid: cm["uid"] ?? `00000000-0000-4000-8000-${(counter + 1).toString(16).padStart(12, "0")}`,
          creationTimestamp: cm["creationTimestamp"] ?? rfc3339(now)
        }
      },
      current
    )
    return yield* decodeAs("replace", resource, stored)
  })

  const modify = Effect.fn("KubeClientMemory.modify")(function*<A>(
    resource: Resource<A>,
    namespace: string,
    name: string,
    f: (current: A) => A
  ) {
    const current = store(kindKey(resource)).get(objectKey(scope(resource, namespace), name))
    if (current === undefined) return yield* notFound("replace", resource, name)
    const decoded = yield* decodeAs("get", resource, current)
    return yield* upsert(resource, f(decoded))
  })

  // Read when run, not when built: `until(all(...))` re-runs one effect value after each change.
  const all = <A>(resource: Resource<A>) =>
    Effect.suspend(() => Effect.forEach(sorted(kindKey(resource), () => true), (o) => decodeAs("list", resource, o)))

  return KubeClientMemory.of({
    client,
    upsert,
    modify,
    all,
    createdWith: (resource, namespace, name) =>
      Effect.sync(() =>
        creations.findLast((c) => c.resource === kindKey(resource) && c.namespace === scope(resource, namespace) && c.name === name)
      ),
    creations: Effect.sync(() => [...creations]),
    // A create is recorded before its commit publishes, so the recount after each message sees it;
    // subscribing before the first count misses nothing.
    awaitCreations: (count) =>
      Effect.scoped(Effect.gen(function*() {
        const subscription = yield* PubSub.subscribe(pubsub)
        while (creations.length < count) yield* PubSub.take(subscription)
        return [...creations]
      })),
    until: (check) =>
      Effect.scoped(Effect.gen(function*() {
        const subscription = yield* PubSub.subscribe(pubsub)
        while (!(yield* check)) yield* PubSub.take(subscription)
      })),
    failNext: (verb, reason, times = 1) =>
      Effect.sync(() => {
        const queue = failures.get(verb) ?? []
        for (let i = 0; i < times; i++) queue.push(reason)
        failures.set(verb, queue)
      }),
    dropWatches: Effect.sync(() => {
      PubSub.publishUnsafe(pubsub, { _tag: "Drop" })
    }),
    expireHistory: Effect.sync(() => {
      history.length = 0
      compactedThrough = counter
    }),
    resourceVersion: Effect.sync(() => String(counter))
  })
})

/** The memory KubeClient and its test hooks, sharing one store. */
export const layerMemory: Layer.Layer<KubeClient | KubeClientMemory> = Layer.effect(
  KubeClient,
  Effect.gen(function*() {
    const memory = yield* KubeClientMemory
    return KubeClient.of(memory.client)
  })
).pipe(Layer.provideMerge(Layer.effect(KubeClientMemory, make)))

/**
 * The test hooks of the memory API server (`../Memory.ts`): writing as another controller would,
 * reading everything stored, the record of `create` calls, failure injection, dropping watches and
 * expiring history, and waits that complete on the change feed (never by polling).
 *
 * Owns: `KubeClientMemoryShape` and its implementation over one `Store`.
 */
import { Chunk, Clock, Effect, PubSub } from "effect"
import type { Resource } from "../../../domain/KubeObjects.ts"
import { apiVersionOf, rfc3339 } from "../../../domain/KubeObjects.ts"
import type { KubeClientShape, KubeError, KubeErrorReason } from "../../../services/KubeClient.ts"
import { kubeError } from "../Errors.ts"
import type { Verb } from "../Errors.ts"
import { decodeAs, kindKey, metaOf, notFound, readBody, scope, uidFor } from "./Objects.ts"
import type { Creation, Store } from "./Store.ts"

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

export const makeHooks = (store: Store, client: KubeClientShape): KubeClientMemoryShape => {
  const creations = Effect.map(store.state, (s) => Chunk.toReadonlyArray(s.creations))

  const upsert = Effect.fn("KubeClientMemory.upsert")(function*<A>(resource: Resource<A>, object: unknown) {
    const { json, metadata } = yield* readBody("replace", object)
    const namespace = resource.clusterScoped === true ? "" : metadata.namespace
    if (metadata.name === undefined || namespace === undefined) {
      return yield* kubeError("replace", "Invalid", "upsert needs metadata.name and metadata.namespace", 422)
    }
    const kind = kindKey(resource)
    const current = yield* store.lookup(kind, namespace, metadata.name)
    const now = yield* Clock.currentTimeMillis
    const cm = current === undefined ? {} : metaOf(current)
    const stored = yield* store.commit(
      kind,
      current === undefined ? "ADDED" : "MODIFIED",
      {
        ...json,
        apiVersion: apiVersionOf(resource),
        kind: resource.kind,
        metadata: {
          ...metaOf(json),
          uid: cm["uid"] ?? uidFor((yield* store.state).counter + 1),
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
    const current = yield* store.lookup(kindKey(resource), scope(resource, namespace), name)
    if (current === undefined) return yield* notFound("replace", resource, name)
    const decoded = yield* decodeAs("get", resource, current)
    return yield* upsert(resource, f(decoded))
  })

  // Read when run, not when built: `until(all(...))` re-runs one effect value after each change.
  const all = <A>(resource: Resource<A>) =>
    Effect.flatMap(store.sorted(kindKey(resource), () => true), (os) => Effect.forEach(os, (o) => decodeAs("list", resource, o)))

  return {
    client,
    upsert,
    modify,
    all,
    createdWith: (resource, namespace, name) =>
      Effect.map(creations, (cs) =>
        cs.findLast((c) => c.resource === kindKey(resource) && c.namespace === scope(resource, namespace) && c.name === name)
      ),
    creations: Effect.map(creations, (cs) => [...cs]),
    // A create is recorded in the same step its commit publishes, so the recount after each message
    // sees it; subscribing before the first count misses nothing.
    awaitCreations: (count) =>
      Effect.scoped(Effect.gen(function*() {
        const subscription = yield* PubSub.subscribe(store.pubsub)
        while ((yield* creations).length < count) yield* PubSub.take(subscription)
        return [...(yield* creations)]
      })),
    until: (check) =>
      Effect.scoped(Effect.gen(function*() {
        const subscription = yield* PubSub.subscribe(store.pubsub)
        while (!(yield* check)) yield* PubSub.take(subscription)
      })),
    failNext: (verb, reason, times = 1) => store.failNext(verb, reason, times),
    dropWatches: Effect.sync(() => {
      PubSub.publishUnsafe(store.pubsub, { _tag: "Drop" })
    }),
    expireHistory: store.expireHistory,
    resourceVersion: Effect.map(store.state, (s) => String(s.counter))
  }
}

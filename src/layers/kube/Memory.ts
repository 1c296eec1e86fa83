/**
 * An in-memory Kubernetes API server behind the `KubeClient` contract, for tests and static modes,
 * plus the hooks tests drive it with (`KubeClientMemory`).
 *
 * Owns: one object store per kind (keyed `<plural>.<group>`), server-set metadata (uid,
 * creationTimestamp from `Clock`, resourceVersion), optimistic concurrency on replace, the watch
 * history and its fan-out through a `PubSub`, and a record of the bearer token each `create` used.
 * Does not own: anything a real API server adds on top of storage.
 *
 * Files: `memory/Store.ts` (the state in one Ref, commit and the watch fan-out PubSub),
 * `memory/Handlers.ts` (the verbs and the watch stream), `memory/Hooks.ts` (the test hooks),
 * `memory/Objects.ts` (pure keying, selection and decoding); this file is the public layer.
 *
 * The behaviour callers rely on is the shared contract (`test/unit/layers/KubeClient.contract.ts`),
 * which this twin and the live client on a real kube-apiserver both pass.
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
 *   `metadata.name` / `metadata.namespace`; anything else fails with `Invalid`. The namespace of a
 *   list or watch is ignored for cluster-scoped kinds, as the live client ignores it.
 * - A filtered watch sees an object that stops matching as DELETED and one that starts matching as
 *   ADDED, as the API server's watch cache does.
 * - `replace` and `replaceStatus` require `metadata.resourceVersion`, except for the kinds
 *   kube-apiserver updates unconditionally (`memory/Objects.ts`, `unconditionalUpdate`); a replace of
 *   a missing object is NotFound, except for the kinds kube-apiserver then creates (`createOnUpdate`).
 *   `create` rejects a resourceVersion (a 500, as kube-apiserver answers) and drops any `status` it
 *   is sent (as the API server does for kinds with a status subresource). `generateName` appends five characters drawn from the resourceVersion
 *   counter (unique, not random). Cluster-scoped kinds are stored under namespace "" and their
 *   objects carry no namespace. No finalizers, no owner-reference garbage collection,
 *   no `metadata.generation`, no subresource distinction per kind (`replaceStatus` works for all and
 *   writes only `status`, as for custom resources; kube-apiserver's own kinds such as
 *   CertificateSigningRequests also take metadata changes through `/status`).
 */
import { Context, Effect, Layer } from "effect"
import { KubeClient } from "../../services/KubeClient.ts"
import { makeClient } from "./memory/Handlers.ts"
import { makeHooks } from "./memory/Hooks.ts"
import type { KubeClientMemoryShape } from "./memory/Hooks.ts"
import { makeStore } from "./memory/Store.ts"

export type { KubeClientMemoryShape } from "./memory/Hooks.ts"
export type { Creation } from "./memory/Store.ts"

export class KubeClientMemory extends Context.Service<KubeClientMemory, KubeClientMemoryShape>()(
  "csi-driver-spiffe/layers/KubeClient/KubeClientMemory"
) {}

/** Builds one store; every call of the returned effect is an independent API server. */
export const make: Effect.Effect<KubeClientMemoryShape> = Effect.gen(function*() {
  const store = yield* makeStore
  return KubeClientMemory.of(makeHooks(store, makeClient(store)))
})

/** The memory KubeClient and its test hooks, sharing one store. */
export const layerMemory: Layer.Layer<KubeClient | KubeClientMemory> = Layer.effect(
  KubeClient,
  Effect.gen(function*() {
    const memory = yield* KubeClientMemory
    return KubeClient.of(memory.client)
  })
).pipe(Layer.provideMerge(Layer.effect(KubeClientMemory, make)))

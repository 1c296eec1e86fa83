/**
 * Implementations of `services/KubeClient.ts`.
 *
 * Owns: choosing and wiring them. `layer` talks to a real API server through
 * @kubernetes/client-node (`kube/Live.ts`: configuration loading, generic REST, watch, per-call
 * bearer tokens). `layerMemory` is an in-memory API server (`kube/Memory.ts`) that also provides
 * `KubeClientMemory`, the hooks tests use to play cert-manager or an administrator, inject failures,
 * drop watches and expire history.
 * Does not own: retries, relisting or caching (callers); anything a real API server adds on top of
 * storage is missing from the memory layer — its limits are listed at the top of `kube/Memory.ts`
 * (no admission, no RBAC, one global resourceVersion counter, equality selectors and
 * metadata.name/metadata.namespace field selectors only, no bookmarks).
 */
import { Duration, Effect, Layer } from "effect"
import { KubeClient } from "../services/KubeClient.ts"
import type { KubeClientShape, KubeError } from "../services/KubeClient.ts"
import { kubeError } from "./kube/Errors.ts"
import type { Verb } from "./kube/Errors.ts"
import { loadConfig, make } from "./kube/Live.ts"
import type { LiveOptions } from "./kube/Live.ts"

export { KubeClientMemory, layerMemory } from "./kube/Memory.ts"
export type { Creation, KubeClientMemoryShape } from "./kube/Memory.ts"
export type { Verb } from "./kube/Errors.ts"
export type { LiveOptions } from "./kube/Live.ts"

/**
 * The KubeClient over the cluster named by `options.kubeconfig`, or the in-cluster configuration,
 * or the default kubeconfig search. Fails with a `KubeError` (operation `KubeClient.layer`) when
 * none of them yields a cluster.
 */
export const layer = (options: LiveOptions): Layer.Layer<KubeClient, KubeError> =>
  Layer.effect(
    KubeClient,
    Effect.flatMap(loadConfig(options), (kc) =>
      Effect.map(make(kc, options), (client) => KubeClient.of(withRequestTimeout(client, options.kubeClientFlags?.requestTimeoutMillis ?? 0))))
  )

/**
 * `--request-timeout`: every request/reply call fails with an `Unavailable` KubeError when it has
 * no reply in time (the request is aborted). Watches are not bounded by it: they end by the
 * server-side timeout they ask for and resume, as an informer's do.
 */
export const withRequestTimeout = (client: KubeClientShape, millis: number): KubeClientShape => {
  if (millis <= 0) return client
  const bound = <A>(verb: Verb, effect: Effect.Effect<A, KubeError>): Effect.Effect<A, KubeError> =>
    Effect.timeoutOrElse(effect, {
      duration: Duration.millis(millis),
      orElse: () => Effect.fail(kubeError(verb, "Unavailable", `no reply within --request-timeout (${millis} ms)`))
    })
  return {
    ...client,
    get: (resource, namespace, name) => bound("get", client.get(resource, namespace, name)),
    list: (resource, options) => bound("list", client.list(resource, options)),
    create: (resource, namespace, body, options) => bound("create", client.create(resource, namespace, body, options)),
    delete: (resource, namespace, name) => bound("delete", client.delete(resource, namespace, name)),
    replace: (resource, namespace, name, body) => bound("replace", client.replace(resource, namespace, name, body)),
    replaceStatus: (resource, namespace, name, body) => bound("replaceStatus", client.replaceStatus(resource, namespace, name, body))
  }
}

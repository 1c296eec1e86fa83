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
import { Effect, Layer } from "effect"
import { KubeClient } from "../services/KubeClient.ts"
import type { KubeError } from "../services/KubeClient.ts"
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
    Effect.flatMap(loadConfig(options), (kc) => Effect.map(make(kc, options), KubeClient.of))
  )

/**
 * The `KubeClient` over a real API server, through @kubernetes/client-node: the entry point of the
 * live client, wiring its parts under one layer scope.
 *
 * Owns: the process's identity and the bearer-token identity per call (`create` may authenticate
 * as a pod's ServiceAccount token, on a pool that carries only the cluster's CA), and the fibers
 * that close retired connection pools (in the layer's scope).
 * Does not own: retries, relisting, caching (callers), discovery (resources are described by
 * `domain/KubeObjects.ts`).
 *
 * Files: `live/Config.ts` (loading the configuration, `LiveOptions`), `live/Connections.ts`
 * (client-node's HTTP stack, connection pools and their refresh), `live/Rest.ts` (the request/reply
 * verbs), `live/Watch.ts` (the watch stream), `live/Wire.ts` (paths, decoding, failed replies).
 *
 * The generated typed APIs are not used: they convert known core kinds (timestamps to `Date`)
 * before our schemas see the wire form, and they have no generic status subresource.
 */
// Sub-paths, not the package index: the index loads every module of client-node (typed APIs,
// informers, exec, port-forward, …) and every generated API model; config.js and gen/http/http.js
// are all this client uses (the bundle also cuts config.js's own import of the models, scripts/bundle.ts).
import { KubeConfig } from "@kubernetes/client-node/dist/config.js"
import { Duration, Effect, FiberSet, Redacted } from "effect"
import type { KubeClientShape } from "../../services/KubeClient.ts"
import type { LiveOptions } from "./live/Config.ts"
import type { Dispatcher } from "./live/Connections.ts"
import { DEFAULT_POOL_REFRESH, newPoolCache, restClient } from "./live/Connections.ts"
import { makeRest } from "./live/Rest.ts"
import { makeWatch } from "./live/Watch.ts"

export { loadConfig } from "./live/Config.ts"
export type { LiveOptions } from "./live/Config.ts"
export { DEFAULT_POOL_REFRESH } from "./live/Connections.ts"

/** The live KubeClient over an already loaded configuration. */
export const make = Effect.fnUntraced(function*(kc: KubeConfig, options: LiveOptions = {}) {
  const refreshMillis = Duration.toMillis(options.poolRefresh ?? DEFAULT_POOL_REFRESH)
  // Retired pools close in fibers of the layer's scope; closing the layer interrupts what is left.
  const closing = yield* FiberSet.make<void>()
  const retire = (old: Dispatcher) => FiberSet.run(closing, Effect.promise(() => old.close().catch(() => undefined))).pipe(Effect.asVoid)
  const own = restClient(kc, newPoolCache(), refreshMillis, retire)
  // Bearer-token calls carry only the cluster's CA: one pool serves every pod's token.
  const bearerPool = newPoolCache()
  const cluster = kc.getCurrentCluster()

  /** Same cluster, CA and TLS settings; the token is the only credential. */
  const asBearer = (token: Redacted.Redacted<string>) => {
    const bearer = new KubeConfig()
    if (cluster !== null) bearer.loadFromClusterAndUser(cluster, { name: "call-bearer-token", token: Redacted.value(token) })
    return restClient(bearer, bearerPool, refreshMillis, retire)
  }

  const rest = makeRest(own, (call) => (call?.bearerToken === undefined ? own : asBearer(call.bearerToken)))
  return { ...rest, watch: makeWatch(own) } satisfies KubeClientShape
})

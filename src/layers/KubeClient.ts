/**
 * Implementations of `services/KubeClient.ts`.
 *
 * Owns: choosing and wiring them. `layer` talks to a real API server through
 * @kubernetes/client-node (`kube/Live.ts` over `kube/live/`: configuration loading, connection
 * pools, REST, watch, per-call bearer tokens). `layerMemory` is an in-memory API server (`kube/Memory.ts`) that also provides
 * `KubeClientMemory`, the hooks tests use to play cert-manager or an administrator, inject failures,
 * drop watches and expire history.
 * Does not own: retries, relisting or caching (callers); anything a real API server adds on top of
 * storage is missing from the memory layer — its limits are listed at the top of `kube/Memory.ts`
 * (no admission, no RBAC, one global resourceVersion counter, equality selectors and
 * metadata.name/metadata.namespace field selectors only, no bookmarks).
 */
import { Cause, Duration, Effect, Exit, Layer, Metric, Option, Stream } from "effect"
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
      Effect.map(make(kc, options), (client) =>
        KubeClient.of(withRequestMetrics(withRequestTimeout(client, options.kubeClientFlags?.requestTimeoutMillis ?? 0), hostOf(kc.getCurrentCluster()?.server)))))
  )

const hostOf = (server: string | undefined): string => {
  try {
    return new URL(server ?? "").host
  } catch {
    return server ?? ""
  }
}

/**
 * client-go's `rest_client_requests_total{code,method,host}` (k8s.io/client-go/tools/metrics, as
 * controller-runtime registers it): one count per API call, by HTTP status code (`<error>` when
 * none came back), method and API server host. A get answered 404 counts as 404, a create as 201;
 * a watch counts when it ends. Both binaries report it.
 */
const restClientRequests = Metric.counter("rest_client_requests_total", {
  description: "API server requests by HTTP status code, method and host.",
  incremental: true
})

export const withRequestMetrics = (client: KubeClientShape, host: string): KubeClientShape => {
  const count = (method: string, code: string) => Metric.update(Metric.withAttributes(restClientRequests, { code, method, host }), 1)
  const codeOf = (e: KubeError): string => (e.status === undefined ? "<error>" : String(e.status))
  const counted = <A>(method: string, ok: (a: A) => string, effect: Effect.Effect<A, KubeError>): Effect.Effect<A, KubeError> =>
    effect.pipe(
      Effect.tap((a) => count(method, ok(a))),
      Effect.tapError((e) => count(method, codeOf(e)))
    )
  return {
    get: (resource, namespace, name) => counted("GET", (a) => (a === undefined ? "404" : "200"), client.get(resource, namespace, name)),
    list: (resource, options) => counted("GET", () => "200", client.list(resource, options)),
    watch: (resource, options) =>
      client.watch(resource, options).pipe(
        // A watch the consumer closes (interruption) had its 200 too.
        Stream.onExit((exit) =>
          count(
            "GET",
            Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)
              ? "200"
              : Option.match(Cause.findErrorOption(exit.cause), { onNone: () => "<error>", onSome: codeOf })
          ))
      ),
    create: (resource, namespace, body, options) => counted("POST", () => "201", client.create(resource, namespace, body, options)),
    delete: (resource, namespace, name) => counted("DELETE", () => "200", client.delete(resource, namespace, name)),
    replace: (resource, namespace, name, body) => counted("PUT", () => "200", client.replace(resource, namespace, name, body)),
    replaceStatus: (resource, namespace, name, body) => counted("PUT", () => "200", client.replaceStatus(resource, namespace, name, body))
  }
}

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

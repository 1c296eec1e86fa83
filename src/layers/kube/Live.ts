/**
 * The `KubeClient` over a real API server, through @kubernetes/client-node.
 *
 * Owns: loading the configuration (a kubeconfig file when given, else in-cluster, else the default
 * kubeconfig search), generic REST on `/api/v1/...` and `/apis/<group>/<version>/...` using the
 * client's own HTTP stack (its `RequestContext`, `applySecurityAuthentication` for credentials and
 * TLS, and its fetch library), Schema decoding of every response, HTTP status → `KubeError`, watch
 * as a line-delimited JSON stream aborted when the consumer stops, per-call bearer tokens, and
 * connections: request/reply calls share one pool per TLS identity, replaced every `poolRefresh`
 * without any caller waiting for the old one to drain; each watch has a connection of its own.
 * Does not own: retries, relisting, caching (callers), discovery (resources are described by
 * `domain/KubeObjects.ts`).
 *
 * The generated typed APIs are not used: they convert known core kinds (timestamps to `Date`)
 * before our schemas see the wire form, and they have no generic status subresource. client-node's
 * `Watch` is not used either: it drops unparsable lines silently and aborts after 30 s without data.
 */
// Sub-paths, not the package index: the index loads every module of client-node (typed APIs,
// informers, exec, port-forward, …) and every generated API model; these three modules are all
// this client uses (the bundle also cuts config.js's own import of the models, scripts/bundle.ts).
import { KubeConfig } from "@kubernetes/client-node/dist/config.js"
import { HttpMethod, IsomorphicFetchHttpLibrary, RequestContext } from "@kubernetes/client-node/dist/gen/http/http.js"
import { Clock, Config, Duration, Effect, FiberSet, Option, Random, Redacted, Result, Schema, Stream } from "effect"
import type { Resource } from "../../domain/KubeObjects.ts"
import type {
  CallOptions,
  KubeClientShape,
  KubeError,
  ListOptions,
  ListResult,
  WatchEvent,
  WatchOptions
} from "../../services/KubeClient.ts"
import type { KubeClientFlags } from "../../services/KubeClient.ts"
import { noKubeClientFlags } from "../../services/KubeClient.ts"
import { decodeSummary, kubeError, reasonOf } from "./Errors.ts"
import { applyKubeClientFlags } from "./Overrides.ts"
import type { Verb } from "./Errors.ts"

export interface LiveOptions {
  /** Path of a kubeconfig file; when absent, in-cluster config, then the default kubeconfig search. */
  readonly kubeconfig?: string | undefined
  /** How long one connection pool is reused; `DEFAULT_POOL_REFRESH` when absent. */
  readonly poolRefresh?: Duration.Duration | undefined
  /** The standard client flags (`--context`, `--server`, `--token`, …), applied by `Overrides.ts`. */
  readonly kubeClientFlags?: KubeClientFlags | undefined
}

/**
 * Server-side watch timeout, drawn per watch as client-go's reflector does so that the watches of
 * many processes do not all reconnect at once. Kept under 300 s, undici's default body timeout, so
 * a quiet watch ends cleanly (the caller resumes) instead of failing.
 */
const WATCH_TIMEOUT_SECONDS = { min: 240, max: 290 } as const

/** What client-node's `loadFromDefault` falls back to when it finds nothing at all. */
const isNothingFound = (kc: KubeConfig): boolean =>
  kc.getCurrentCluster()?.name === "cluster" &&
  kc.getCurrentCluster()?.server === "http://localhost:8080" &&
  kc.getCurrentUser()?.name === "user" &&
  kc.getCurrentUser()?.token === undefined

/** An error's message with its cause's (undici says only "fetch failed" and puts ECONNREFUSED below). */
const messageOf = (e: unknown): string => {
  if (!(e instanceof Error)) return String(e)
  return e.cause instanceof Error && e.cause.message !== "" ? `${e.message}: ${e.cause.message}` : e.message
}

/** Loads the process's configuration; the error names what was tried, never credentials. */
export const loadConfig = Effect.fn("KubeClient.loadConfig")(function*(options: LiveOptions) {
  const inCluster = yield* Config.option(Config.String("KUBERNETES_SERVICE_HOST")).pipe(
    Effect.orElseSucceed(() => Option.none<string>())
  )
  const kc = new KubeConfig()
  const source = options.kubeconfig !== undefined
    ? `kubeconfig ${options.kubeconfig}`
    : Option.isSome(inCluster)
    ? "in-cluster configuration"
    : "default kubeconfig (KUBECONFIG, ~/.kube/config)"
  yield* Effect.try({
    try: () => {
      if (options.kubeconfig !== undefined) kc.loadFromFile(options.kubeconfig)
      else if (Option.isSome(inCluster)) kc.loadFromCluster()
      else kc.loadFromDefault()
    },
    catch: (e) => kubeError("layer", "Invalid", `cannot load ${source}: ${messageOf(e)}`)
  })
  const flags = options.kubeClientFlags ?? noKubeClientFlags
  if (options.kubeconfig === undefined && Option.isNone(inCluster) && isNothingFound(kc) && flags.server === undefined) {
    return yield* kubeError(
      "layer",
      "Invalid",
      "no Kubernetes configuration found: pass a kubeconfig path, set KUBECONFIG, provide ~/.kube/config, or run in a pod"
    )
  }
  const applied = applyKubeClientFlags(kc, flags, options.kubeconfig === undefined && Option.isSome(inCluster) ? "in-cluster" : "kubeconfig")
  if (Result.isFailure(applied)) return yield* kubeError("layer", "Invalid", `${source}: ${applied.failure}`)
  const cluster = applied.success.getCurrentCluster()
  if (cluster === null || cluster.server === "") {
    return yield* kubeError("layer", "Invalid", `${source} has no current cluster`)
  }
  return applied.success
})

const Status = Schema.Struct({
  message: Schema.optional(Schema.String),
  reason: Schema.optional(Schema.String),
  code: Schema.optional(Schema.Int)
})
const decodeStatusText = Schema.decodeUnknownOption(Schema.fromJsonString(Status))
const decodeStatus = Schema.decodeUnknownOption(Status)

const ListEnvelope = Schema.Struct({
  metadata: Schema.Struct({ resourceVersion: Schema.String }),
  items: Schema.NullOr(Schema.Array(Schema.Unknown))
})

const WatchLine = Schema.Struct({
  type: Schema.Literals(["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]),
  object: Schema.Unknown
})

const Bookmark = Schema.Struct({ metadata: Schema.Struct({ resourceVersion: Schema.String }) })

interface Reply {
  readonly status: number
  readonly text: string
}

const http = new IsomorphicFetchHttpLibrary()

const basePath = (r: Resource<unknown>): string => (r.group === "" ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`)

const collectionPath = (r: Resource<unknown>, namespace: string | undefined): string =>
  `${basePath(r)}${namespace === undefined || r.clusterScoped === true ? "" : `/namespaces/${encodeURIComponent(namespace)}`}/${r.plural}`

const itemPath = (r: Resource<unknown>, namespace: string, name: string): string =>
  `${collectionPath(r, namespace)}/${encodeURIComponent(name)}`

/** A failed reply as a KubeError, with the API server's own message when it sent a Status. */
const failure = (verb: Verb, reply: Reply): KubeError => {
  const status = decodeStatusText(reply.text)
  const message = Option.isSome(status) && status.value.message !== undefined && status.value.message !== ""
    ? status.value.message
    : `HTTP ${reply.status}`
  return kubeError(verb, reasonOf(verb, reply.status), message, reply.status)
}

const decodeJson = <A>(verb: Verb, schema: Schema.Decoder<A>, what: string, text: string): Effect.Effect<A, KubeError> =>
  Effect.try({
    try: (): unknown => JSON.parse(text),
    catch: () => kubeError(verb, "Decode", `${what} is not JSON`)
  }).pipe(
    Effect.flatMap(Schema.decodeUnknownEffect(schema)),
    Effect.mapError((e) => (e._tag === "KubeError" ? e : kubeError(verb, "Decode", decodeSummary(what, e))))
  )

/** One API call: the verb names it in errors. */
interface Call {
  readonly verb: Verb
  readonly method: HttpMethod
  readonly path: string
  readonly query?: Readonly<Record<string, string | undefined>>
  readonly body?: unknown
}

/**
 * How long one connection pool (undici dispatcher) is reused before a fresh one is taken from the
 * kubeconfig. client-node builds a new pool — a new TLS connection — for every request; reusing one
 * saves a TLS handshake per call (the approver and a burst of publishes make hundreds). Five minutes
 * bounds how long rotated client certificate files or CA data go unnoticed.
 */
export const DEFAULT_POOL_REFRESH = Duration.minutes(5)

type Dispatcher = NonNullable<ReturnType<RequestContext["getDispatcher"]>>

/** A connection pool shared by every short call with the same TLS identity. */
interface PoolCache {
  dispatcher: Dispatcher | undefined
  takenAt: number
}

const newPoolCache = (): PoolCache => ({ dispatcher: undefined, takenAt: 0 })

/**
 * Whose connection a call uses: `pooled` calls (every request/reply) share the identity's pool;
 * a `dedicated` call (a watch, open for minutes) gets a connection of its own, closed with it, so
 * that no pool ever holds a long-running request and retiring a pool never waits for a watch.
 */
type Connection = "pooled" | "dedicated"

/**
 * One process identity (or one pod's token) speaking REST to the cluster of `kc`. `pool` is shared
 * only between clients with the same TLS settings and no client certificate of their own, so that a
 * pod's bearer token never travels on a connection that authenticated with the process's certificate.
 * `retire` closes a replaced pool in the background: it stops taking calls at once and closes once
 * its in-flight calls (short ones only) have their replies; no caller waits for it.
 */
const restClient = (
  kc: KubeConfig,
  pool: PoolCache,
  refreshMillis: number,
  retire: (old: Dispatcher) => Effect.Effect<void>
) => {
  const server = kc.getCurrentCluster()?.server ?? ""

  /** The request with credentials and TLS settings applied, not yet sent. */
  const prepare = (call: Call, connection: Connection = "pooled"): Effect.Effect<RequestContext, KubeError> =>
    Effect.gen(function*() {
      const ctx = new RequestContext(server + call.path, call.method)
      for (const [key, value] of Object.entries(call.query ?? {})) if (value !== undefined) ctx.setQueryParam(key, value)
      ctx.setHeaderParam("Accept", "application/json")
      if (call.body !== undefined) {
        const json = yield* Effect.try({
          try: () => JSON.stringify(call.body),
          catch: () => kubeError(call.verb, "Invalid", "body cannot be serialised as JSON", 400)
        })
        ctx.setHeaderParam("Content-Type", "application/json")
        ctx.setBody(json)
      }
      yield* Effect.tryPromise({
        try: () => kc.applySecurityAuthentication(ctx),
        catch: (e) => kubeError(call.verb, "Unauthorized", `cannot apply credentials: ${messageOf(e)}`)
      })
      // A dedicated call keeps the dispatcher client-node just built for it.
      if (connection === "dedicated") return ctx
      const fresh = ctx.getDispatcher()
      if (fresh === undefined) return ctx
      const now = yield* Clock.currentTimeMillis
      const old = pool.dispatcher
      if (old === undefined || now - pool.takenAt >= refreshMillis) {
        // The swap is synchronous: every call after this line uses the fresh pool.
        pool.dispatcher = fresh
        pool.takenAt = now
        if (old !== undefined) {
          yield* retire(old)
          yield* Effect.logDebug("KubeClient: connection pool refreshed; the old one closes in the background")
        }
      } else {
        // Built by client-node for this call and never connected: closing it is immediate.
        yield* retire(fresh)
        ctx.setDispatcher(old)
      }
      return ctx
    })

  /** Sends the call and reads the whole reply; interruption aborts the request. */
  const request = (call: Call): Effect.Effect<Reply, KubeError> =>
    Effect.flatMap(prepare(call), (ctx) =>
      Effect.tryPromise({
        try: async (signal) => {
          ctx.setSignal(signal)
          const response = await http.send(ctx).toPromise()
          return { status: response.httpStatusCode, text: await response.body.text() }
        },
        catch: (e) => kubeError(call.verb, "Unavailable", `request failed: ${messageOf(e)}`)
      })
    )

  return { prepare, request }
}

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

  const parseEvent = <A>(resource: Resource<A>, line: string): Effect.Effect<WatchEvent<A>, KubeError> =>
    Effect.gen(function*() {
      const event = yield* decodeJson("watch", WatchLine, "watch event", line)
      switch (event.type) {
        case "ERROR": {
          const status = decodeStatus(event.object)
          const code = Option.isSome(status) ? status.value.code : undefined
          const message = Option.isSome(status) ? status.value.message : undefined
          return yield* kubeError("watch", reasonOf("watch", code ?? 500), message ?? "watch error event", code)
        }
        case "BOOKMARK": {
          const bookmark = yield* Schema.decodeUnknownEffect(Bookmark)(event.object).pipe(
            Effect.mapError((e) => kubeError("watch", "Decode", decodeSummary("watch bookmark", e)))
          )
          return { type: "BOOKMARK", resourceVersion: bookmark.metadata.resourceVersion }
        }
        default: {
          const decoded = yield* Effect.result(Schema.decodeUnknownEffect(resource.schema)(event.object))
          if (decoded._tag === "Success") return { type: event.type, object: decoded.success }
          // A malformed object is skipped like in `list`; its resourceVersion still moves the watch on.
          yield* Effect.logWarning("skipping a watch event whose object does not decode", {
            summary: decodeSummary(`${resource.kind} in ${event.type} event`, decoded.failure)
          })
          const bookmark = yield* Schema.decodeUnknownEffect(Bookmark)(event.object).pipe(
            Effect.mapError((e) => kubeError("watch", "Decode", decodeSummary(`${resource.kind} in ${event.type} event`, e)))
          )
          return { type: "BOOKMARK", resourceVersion: bookmark.metadata.resourceVersion }
        }
      }
    })

  const watch = <A>(resource: Resource<A>, options: WatchOptions): Stream.Stream<WatchEvent<A>, KubeError> =>
    Stream.unwrap(
      Effect.gen(function*() {
        const timeoutSeconds = yield* Random.nextIntBetween(WATCH_TIMEOUT_SECONDS.min, WATCH_TIMEOUT_SECONDS.max)
        const ctx = yield* own.prepare({
          verb: "watch",
          method: HttpMethod.GET,
          path: collectionPath(resource, options.namespace),
          query: {
            watch: "true",
            resourceVersion: options.resourceVersion,
            allowWatchBookmarks: "true",
            timeoutSeconds: String(timeoutSeconds),
            labelSelector: options.labelSelector,
            fieldSelector: options.fieldSelector
          }
        }, "dedicated")
        // The watch's own connection goes when the stream's scope closes, however it ends.
        const dispatcher = ctx.getDispatcher()
        if (dispatcher !== undefined) yield* Effect.addFinalizer(() => Effect.promise(() => dispatcher.destroy().catch(() => undefined)))
        // Not the signal of tryPromise: the body is read after the response promise settles, and
        // the connection must close exactly when the stream's scope does.
        ctx.setSignal(yield* Effect.abortSignal)
        const response = yield* Effect.tryPromise({
          try: () => http.send(ctx).toPromise(),
          catch: (e) => kubeError("watch", "Unavailable", `request failed: ${messageOf(e)}`)
        })
        if (response.httpStatusCode !== 200) {
          const text = yield* Effect.tryPromise({
            try: () => response.body.text(),
            catch: (e) => kubeError("watch", "Unavailable", `reading error response: ${messageOf(e)}`)
          })
          return yield* failure("watch", { status: response.httpStatusCode, text })
        }
        const body = response.body.stream()
        if (body === null) return Stream.empty
        return Stream.fromReadableStream({
          evaluate: () => body,
          onError: (e) => kubeError("watch", "Unavailable", `watch connection: ${messageOf(e)}`)
        }).pipe(
          Stream.decodeText(),
          Stream.splitLines,
          Stream.filter((line) => line.trim() !== ""),
          Stream.mapEffect((line) => parseEvent(resource, line))
        )
      }).pipe(Effect.withSpan("KubeClient.watch"))
    )

  const create = Effect.fn("KubeClient.create")(function*<A>(
    resource: Resource<A>,
    namespace: string,
    body: unknown,
    options?: CallOptions
  ) {
    const client = options?.bearerToken === undefined ? own : asBearer(options.bearerToken)
    const reply = yield* client.request({ verb: "create", method: HttpMethod.POST, path: collectionPath(resource, namespace), body })
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

  return { get, list, watch, create, delete: delete_, replace, replaceStatus } satisfies KubeClientShape
})

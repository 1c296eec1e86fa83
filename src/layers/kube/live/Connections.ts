/**
 * How the live KubeClient (`../Live.ts`) reaches the API server: client-node's own HTTP stack
 * (its `RequestContext`, `applySecurityAuthentication` for credentials and TLS, and its fetch
 * library), and the connection pools calls share.
 *
 * Owns: preparing a request (query, JSON body, credentials, TLS), which connection it goes on and
 * the pool refresh: request/reply calls share one pool per TLS identity, replaced every
 * `poolRefresh` without any caller waiting for the old one to drain; a watch has a connection of
 * its own. Sending a request/reply call and reading its whole reply.
 * Does not own: what a reply means (`Rest.ts`, `Watch.ts`), paths and decoding (`Wire.ts`).
 */
import type { KubeConfig } from "@kubernetes/client-node/dist/config.js"
import { IsomorphicFetchHttpLibrary, RequestContext } from "@kubernetes/client-node/dist/gen/http/http.js"
import type { ResponseContext } from "@kubernetes/client-node/dist/gen/http/http.js"
import { Clock, Duration, Effect } from "effect"
import type { KubeError } from "../../../services/KubeClient.ts"
import { kubeError } from "../Errors.ts"
import type { Call, Reply } from "./Wire.ts"
import { transportError } from "./Wire.ts"

/**
 * How long one connection pool (undici dispatcher) is reused before a fresh one is taken from the
 * kubeconfig. client-node builds a new pool — a new TLS connection — for every request; reusing one
 * saves a TLS handshake per call (the approver and a burst of publishes make hundreds). Five minutes
 * bounds how long rotated client certificate files or CA data go unnoticed.
 */
export const DEFAULT_POOL_REFRESH = Duration.minutes(5)

const http = new IsomorphicFetchHttpLibrary()

/** Sends a prepared request; the reply's body is still to be read. */
export const send = (ctx: RequestContext): Promise<ResponseContext> => http.send(ctx).toPromise()

export type Dispatcher = NonNullable<ReturnType<RequestContext["getDispatcher"]>>

/** A connection pool shared by every short call with the same TLS identity. */
export interface PoolCache {
  dispatcher: Dispatcher | undefined
  takenAt: number
}

export const newPoolCache = (): PoolCache => ({ dispatcher: undefined, takenAt: 0 })

/**
 * Whose connection a call uses: `pooled` calls (every request/reply) share the identity's pool;
 * a `dedicated` call (a watch, open for minutes) gets a connection of its own, closed with it, so
 * that no pool ever holds a long-running request and retiring a pool never waits for a watch.
 */
export type Connection = "pooled" | "dedicated"

/** One identity's way to the cluster: `prepare` for a watch, `request` for a request/reply call. */
export interface RestClient {
  /** The request with credentials and TLS settings applied, not yet sent. */
  readonly prepare: (call: Call, connection?: Connection) => Effect.Effect<RequestContext, KubeError>
  /** Sends the call and reads the whole reply; interruption aborts the request. */
  readonly request: (call: Call) => Effect.Effect<Reply, KubeError>
}

/**
 * One process identity (or one pod's token) speaking REST to the cluster of `kc`. `pool` is shared
 * only between clients with the same TLS settings and no client certificate of their own, so that a
 * pod's bearer token never travels on a connection that authenticated with the process's certificate.
 * `retire` closes a replaced pool in the background: it stops taking calls at once and closes once
 * its in-flight calls (short ones only) have their replies; no caller waits for it.
 */
export const restClient = (
  kc: KubeConfig,
  pool: PoolCache,
  refreshMillis: number,
  retire: (old: Dispatcher) => Effect.Effect<void>
): RestClient => {
  const server = kc.getCurrentCluster()?.server ?? ""

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
        catch: (e) => transportError(call.verb, "Unauthorized", "cannot apply credentials", e)
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

  const request = (call: Call): Effect.Effect<Reply, KubeError> =>
    Effect.flatMap(prepare(call), (ctx) =>
      Effect.tryPromise({
        try: async (signal) => {
          ctx.setSignal(signal)
          const response = await send(ctx)
          return { status: response.httpStatusCode, text: await response.body.text() }
        },
        catch: (e) => transportError(call.verb, "Unavailable", "request failed", e)
      })
    )

  return { prepare, request }
}

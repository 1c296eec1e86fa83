/**
 * A tiny HTTP endpoint for probes and metrics, shared by the driver and the approver: a fixed table
 * of GET paths, each answered by an Effect, and the running endpoint's bound port.
 *
 * Implementation: `layers/HttpEndpoint.ts` (node:http). The routes are the edges' business:
 * `csi/HealthServer.ts` for the driver, `bin/ApproverLive.ts` for the approver.
 */
import { Context } from "effect"
import type { Effect } from "effect"

export interface HttpResponse {
  readonly status: number
  readonly body: string
  readonly contentType?: string
}

export type Routes<R> = Readonly<Record<string, Effect.Effect<HttpResponse, never, R>>>

export const ok: HttpResponse = { status: 200, body: "ok\n" }
export const notReady = (why: string): HttpResponse => ({ status: 503, body: `not ready: ${why}\n` })

/** The running endpoint: the port actually bound (useful with port 0). */
export class HttpEndpoint extends Context.Service<HttpEndpoint, { readonly port: number }>()("csi-driver-spiffe/services/HttpEndpoint") {}

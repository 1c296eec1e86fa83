/**
 * The benchmark's own API access where timing matters: a watch connection whose events are stamped
 * with the monotonic clock (performance.now()) when their bytes arrive, and a keep-alive JSON client
 * for bursts of creates (the harness client opens a connection per request).
 */
import * as https from "node:https"
import type { ControlPlaneInfo } from "../../test/harness/globalSetup.ts"

export interface WatchEvent {
  readonly type: string
  readonly object: {
    metadata?: { name?: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string }
    status?: { conditions?: Array<{ type?: string; status?: string; reason?: string }>; certificate?: string }
    [k: string]: unknown
  }
  /** performance.now() when the chunk holding the event arrived */
  readonly at: number
}

export interface Watch {
  readonly close: () => void
  /** Resolves once the connection is established (response headers received). */
  readonly opened: Promise<void>
}

/** Watches `path` (a collection), reconnecting from the last resourceVersion until closed. */
export const watch = (plane: ControlPlaneInfo, path: string, onEvent: (e: WatchEvent) => void): Watch => {
  let closed = false
  let req: ReturnType<typeof https.request> | undefined
  let rv: string | undefined
  let resolveOpened: () => void = () => {}
  const opened = new Promise<void>((r) => (resolveOpened = r))
  const connect = () => {
    if (closed) return
    const url = new URL(path, plane.server)
    url.searchParams.set("watch", "1")
    url.searchParams.set("timeoutSeconds", "3600")
    url.searchParams.set("allowWatchBookmarks", "true")
    if (rv !== undefined) url.searchParams.set("resourceVersion", rv)
    req = https.request(url, { method: "GET", ca: plane.caPem, headers: { Authorization: `Bearer ${plane.adminToken}`, Accept: "application/json" } }, (res) => {
      resolveOpened()
      let buf = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        const at = performance.now()
        buf += chunk
        let nl: number
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl)
          buf = buf.slice(nl + 1)
          if (line.trim() === "") continue
          const e = JSON.parse(line) as Omit<WatchEvent, "at">
          if (e.type === "ERROR") {
            rv = undefined // e.g. 410 Gone: start over (callers key on names, so replays are harmless)
            continue
          }
          rv = e.object.metadata?.resourceVersion ?? rv
          if (e.type !== "BOOKMARK") onEvent({ ...e, at })
        }
      })
      res.on("end", () => setTimeout(connect, 50))
      res.on("error", () => setTimeout(connect, 200))
    })
    req.on("error", () => setTimeout(connect, 200))
    req.end()
  }
  connect()
  return {
    opened,
    close: () => {
      closed = true
      req?.destroy()
    }
  }
}

export const conditionOf = (e: WatchEvent, type: string): string | undefined =>
  e.object.status?.conditions?.find((c) => c.type === type)?.status

export class Api {
  private readonly agent: https.Agent
  private readonly plane: ControlPlaneInfo
  private readonly token: string
  constructor(plane: ControlPlaneInfo, token: string, maxSockets = 32) {
    this.plane = plane
    this.token = token
    this.agent = new https.Agent({ keepAlive: true, maxSockets, ca: plane.caPem })
  }
  request(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
    const text = body === undefined ? undefined : JSON.stringify(body)
    return new Promise((resolve, reject) => {
      const req = https.request(
        new URL(path, this.plane.server),
        {
          method,
          agent: this.agent,
          headers: {
            Authorization: `Bearer ${this.token}`,
            Accept: "application/json",
            ...(text === undefined ? {} : { "Content-Type": "application/json", "Content-Length": String(Buffer.byteLength(text)) })
          }
        },
        (res) => {
          const chunks: Array<Buffer> = []
          res.on("data", (c: Buffer) => chunks.push(c))
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }))
          res.on("error", reject)
        }
      )
      req.setTimeout(120_000, () => req.destroy(new Error(`${method} ${path}: timed out`)))
      req.on("error", reject)
      if (text !== undefined) req.write(text)
      req.end()
    })
  }
  async ok(method: string, path: string, body?: unknown): Promise<unknown> {
    const r = await this.request(method, path, body)
    if (r.status < 200 || r.status >= 300) throw new Error(`${method} ${path} -> ${r.status}: ${r.body.slice(0, 300)}`)
    return r.body === "" ? {} : JSON.parse(r.body)
  }
  close(): void {
    this.agent.destroy()
  }
}

/** Runs `fn` over `items` with at most `limit` in flight; results in input order. */
export const mapLimit = async <A, B>(items: ReadonlyArray<A>, limit: number, fn: (a: A, i: number) => Promise<B>): Promise<Array<B>> => {
  const out: Array<B> = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

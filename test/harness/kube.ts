// A deliberately small Kubernetes REST client for the harness: bearer token + pinned CA over
// node:https, JSON in and out. It keeps the harness independent of the driver's own client code.
import { request } from "node:https"

export class KubeApiError extends Error {
  override readonly name = "KubeApiError"
  readonly status: number
  readonly reason: string | undefined
  readonly body: string
  constructor(method: string, path: string, status: number, body: string) {
    let message = body
    let reason: string | undefined
    try {
      const parsed = JSON.parse(body) as { message?: string; reason?: string }
      message = parsed.message ?? body
      reason = parsed.reason
    } catch {
      // not JSON
    }
    super(`${method} ${path} -> ${status}${reason ? ` ${reason}` : ""}: ${message}`)
    this.status = status
    this.reason = reason
    this.body = body
  }
}

export interface KubeClientOptions {
  /** https://127.0.0.1:<port> */
  readonly server: string
  /** PEM of the CA that signed the apiserver's serving certificate */
  readonly caPem: string
  /** bearer token; omit for anonymous requests (e.g. /readyz) */
  readonly token?: string
  readonly timeoutMs?: number
}

export interface RequestOptions {
  readonly contentType?: string
  readonly query?: Record<string, string>
}

export type KubeObject = {
  apiVersion?: string
  kind?: string
  metadata?: { name?: string; namespace?: string; uid?: string; [k: string]: unknown }
  [k: string]: unknown
}

export class KubeClient {
  readonly server: string
  readonly caPem: string
  readonly token: string | undefined
  readonly timeoutMs: number

  constructor(opts: KubeClientOptions) {
    this.server = opts.server
    this.caPem = opts.caPem
    this.token = opts.token
    this.timeoutMs = opts.timeoutMs ?? 30_000
  }

  /** The same server and CA, another identity. */
  withToken(token: string): KubeClient {
    return new KubeClient({ server: this.server, caPem: this.caPem, token, timeoutMs: this.timeoutMs })
  }

  /** Raw request; resolves with status and body text, never rejects on HTTP status. */
  raw(
    method: string,
    path: string,
    body?: string,
    opts: RequestOptions = {}
  ): Promise<{ status: number; body: string }> {
    const url = new URL(path, this.server)
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v)
    const headers: Record<string, string> = { Accept: "application/json" }
    if (this.token !== undefined) headers["Authorization"] = `Bearer ${this.token}`
    if (body !== undefined) {
      headers["Content-Type"] = opts.contentType ?? "application/json"
      headers["Content-Length"] = String(Buffer.byteLength(body))
    }
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        { method, headers, ca: this.caPem, timeout: this.timeoutMs },
        (res) => {
          const chunks: Array<Buffer> = []
          res.on("data", (c: Buffer) => chunks.push(c))
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }))
          res.on("error", reject)
        }
      )
      req.on("timeout", () => req.destroy(new Error(`${method} ${url.pathname}: timed out after ${this.timeoutMs} ms`)))
      req.on("error", reject)
      if (body !== undefined) req.write(body)
      req.end()
    })
  }

  async json<T = KubeObject>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    const text = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body)
    const res = await this.raw(method, path, text, opts)
    if (res.status < 200 || res.status >= 300) throw new KubeApiError(method, path, res.status, res.body)
    return (res.body === "" ? {} : JSON.parse(res.body)) as T
  }

  get<T = KubeObject>(path: string): Promise<T> {
    return this.json<T>("GET", path)
  }

  create<T = KubeObject>(path: string, obj: unknown): Promise<T> {
    return this.json<T>("POST", path, obj)
  }

  /** Create, or leave the existing object alone on 409 AlreadyExists. */
  async ensure<T = KubeObject>(path: string, obj: unknown): Promise<T | undefined> {
    try {
      return await this.create<T>(path, obj)
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 409) return undefined
      throw err
    }
  }

  /** Server-side apply. The body is YAML text or an object (sent as JSON, which is YAML). */
  apply<T = KubeObject>(path: string, body: unknown, fieldManager = "csi-driver-spiffe-harness"): Promise<T> {
    return this.json<T>("PATCH", path, body, {
      contentType: "application/apply-patch+yaml",
      query: { fieldManager, force: "true" }
    })
  }

  mergePatch<T = KubeObject>(path: string, patch: unknown): Promise<T> {
    return this.json<T>("PATCH", path, patch, { contentType: "application/merge-patch+json" })
  }

  update<T = KubeObject>(path: string, obj: unknown): Promise<T> {
    return this.json<T>("PUT", path, obj)
  }

  delete<T = KubeObject>(path: string): Promise<T> {
    return this.json<T>("DELETE", path)
  }
}

/** The PEM certificate chain in a cert-manager status field (base64) decoded to text. */
export const decodeB64 = (b64: string): string => Buffer.from(b64, "base64").toString("utf8")

/**
 * A minimal fake Kubernetes API server for the live KubeClient's tests: plain HTTP on 127.0.0.1
 * with a random port, a kubeconfig file pointing at it, and a record of every request.
 *
 * Owns: the listening socket and the temporary kubeconfig (both scoped), request recording
 * (method, path, query, Authorization header, JSON body) and a promise per request that settles
 * when its connection closes (to observe watch aborts).
 * Does not own: any API semantics — each test answers requests itself through `handler`.
 * Limits: no TLS (the kubeconfig sets `insecure-skip-tls-verify`, which client-node requires for
 * http), no discovery, no real kube-apiserver behaviour; the e2e suite covers those.
 */
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import type { Scope } from "effect"

export interface RecordedRequest {
  readonly method: string
  readonly path: string
  readonly query: Readonly<Record<string, string>>
  readonly authorization: string | undefined
  readonly body: unknown
  /** Settles when the client or the server closes this request's connection. */
  readonly closed: Promise<void>
}

export type Handler = (request: RecordedRequest, response: http.ServerResponse) => void

export interface FakeApiServer {
  readonly url: string
  /** A kubeconfig for `url` whose user has the bearer token `token`. */
  readonly kubeconfig: string
  readonly token: string
  /** Every request so far, in arrival order. */
  readonly requests: () => ReadonlyArray<RecordedRequest>
}

/** Writes a JSON reply (a Kubernetes `Status` for errors, an object otherwise). */
export const reply = (response: http.ServerResponse, status: number, body: unknown): void => {
  response.writeHead(status, { "content-type": "application/json" })
  response.end(JSON.stringify(body))
}

/** A Kubernetes `Status` failure body. */
export const status = (code: number, reason: string, message: string) => ({
  kind: "Status",
  apiVersion: "v1",
  status: "Failure",
  message,
  reason,
  code
})

const kubeconfigYaml = (url: string, token: string): string =>
  [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: fake",
    "  cluster:",
    `    server: ${url}`,
    "    insecure-skip-tls-verify: true",
    "users:",
    "- name: driver",
    "  user:",
    `    token: ${token}`,
    "contexts:",
    "- name: fake",
    "  context:",
    "    cluster: fake",
    "    user: driver",
    "current-context: fake",
    ""
  ].join("\n")

/** Writes a kubeconfig for `url` and bearer `token` into a temporary directory removed with the scope. */
export const writeKubeconfig = (url: string, token: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "fake-apiserver-"))),
      (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true }))
    )
    const file = path.join(dir, "kubeconfig")
    fs.writeFileSync(file, kubeconfigYaml(url, token))
    return file
  })

/** Starts the server; it and its kubeconfig are removed when the scope closes. */
export const makeFakeApiServer = (
  handler: Handler,
  options: { readonly token?: string } = {}
): Effect.Effect<FakeApiServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const token = options.token ?? "driver-sa-token"
    const recorded: Array<RecordedRequest> = []
    const server = yield* Effect.acquireRelease(
      Effect.callback<http.Server>((resume) => {
        const s = http.createServer((req, res) => {
          const chunks: Array<Buffer> = []
          req.on("data", (c: Buffer) => chunks.push(c))
          req.on("end", () => {
            const url = new URL(req.url ?? "/", "http://fake")
            const text = Buffer.concat(chunks).toString("utf8")
            const closed = new Promise<void>((resolve) => res.on("close", () => resolve()))
            const request: RecordedRequest = {
              method: req.method ?? "",
              path: url.pathname,
              query: Object.fromEntries(url.searchParams),
              authorization: req.headers.authorization,
              body: text === "" ? undefined : JSON.parse(text),
              closed
            }
            recorded.push(request)
            handler(request, res)
          })
        })
        s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
      }),
      (s) =>
        Effect.callback<void>((resume) => {
          s.closeAllConnections()
          s.close(() => resume(Effect.void))
        })
    )
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const kubeconfig = yield* writeKubeconfig(url, token)
    return { url, kubeconfig, token, requests: () => [...recorded] }
  })

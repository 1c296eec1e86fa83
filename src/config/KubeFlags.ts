/**
 * The standard Kubernetes client flags both binaries take, as the Go original gets them from
 * k8s.io/cli-runtime's `genericclioptions.NewConfigFlags` (same names, shorthands and defaults):
 * which kubeconfig context, cluster and user to use, and overrides of the server, credentials, TLS
 * settings, impersonation and request timeout.
 *
 * Owns: the flag specs and their decoding into `KubeClientFlags` (the shape is KubeClient's contract), including client-go's rules that
 * can be checked before a kubeconfig is read (`--request-timeout` syntax, impersonating groups, a
 * uid or extras only together with a user). The token is `Redacted` from here on.
 * Does not own: applying them to a loaded kubeconfig (`layers/kube/Overrides.ts`).
 */
import { Redacted, Result } from "effect"
import * as GoDuration from "../domain/GoDuration.ts"
import type { KubeClientFlags } from "../services/KubeClient.ts"
import { DEFAULT_CACHE_DIR } from "../services/KubeClient.ts"
import type { FlagSpec } from "./Flags.ts"

const flag = (name: string, usage: string, extra: Partial<FlagSpec> = {}): FlagSpec =>
  ({ section: "Kubernetes", name, kind: "string", default: "", usage, ...extra })

export const kubeClientFlags: ReadonlyArray<FlagSpec> = [
  flag("context", "Name of the kubeconfig context to use."),
  flag("cluster", "Name of the kubeconfig cluster to use."),
  flag("user", "Name of the kubeconfig user to use."),
  flag("server", "Address and port of the Kubernetes API server.", { short: "s" }),
  flag("token", "Bearer token for authentication to the API server.", { secret: true }),
  flag("certificate-authority", "Path to a CA certificate file for the API server."),
  flag("client-certificate", "Path to a client certificate file for TLS."),
  flag("client-key", "Path to a client key file for TLS."),
  flag("insecure-skip-tls-verify", "Do not check the API server's certificate (insecure).", { kind: "bool", default: "false" }),
  flag("tls-server-name", "Server name to check in the API server's certificate; the host of --server when empty."),
  flag("as", "User to impersonate."),
  flag("as-group", "Group to impersonate; repeat for several.", { kind: "stringArray" }),
  flag("as-uid", "UID to impersonate."),
  flag("as-user-extra", "User extra to impersonate, key=value; repeat for several.", { kind: "stringArray" }),
  flag("request-timeout", "Longest wait for one API request (e.g. 1s, 2m, 3h; a bare integer is seconds); 0 means no limit.", { default: "0" }),
  flag("namespace", "Namespace of the kubeconfig context (no request of these binaries depends on it).", { short: "n" }),
  flag("cache-dir", "Cache directory (accepted for compatibility; nothing is cached).", { default: DEFAULT_CACHE_DIR }),
  flag("disable-compression", "Ask the API server for uncompressed responses.", { kind: "bool", default: "false" })
]

/** client-go's `clientcmd.ParseTimeout`: a non-negative integer of seconds, or a Go duration. */
export const parseRequestTimeout = (raw: string): Result.Result<number, string> => {
  if (/^\+?\d+$/.test(raw)) return Result.succeed(Number(raw) * 1000)
  const ns = GoDuration.parse(raw)
  // client-go accepts a negative Go duration too, and then never times out; so does this.
  if (Result.isSuccess(ns)) return Result.succeed(ns.success <= 0n ? 0 : GoDuration.nanosToMillis(ns.success))
  return Result.fail(
    `--request-timeout: invalid timeout value ${JSON.stringify(raw)}: a single integer in seconds, or an integer followed by a time unit (e.g. 1s | 2m | 3h)`
  )
}

const optional = (v: string): string | undefined => (v === "" ? undefined : v)

/** Decodes the Kubernetes client flags; `errors` receives every problem. */
export const decodeKubeClientFlags = (
  value: (name: string) => string,
  list: (name: string) => ReadonlyArray<string>,
  errors: Array<string>
): KubeClientFlags => {
  const timeout = parseRequestTimeout(value("request-timeout"))
  if (Result.isFailure(timeout)) errors.push(timeout.failure)
  const asUserExtra: Array<readonly [string, string]> = []
  for (const kv of list("as-user-extra")) {
    const eq = kv.indexOf("=")
    if (eq <= 0) errors.push(`--as-user-extra must be key=value, got ${JSON.stringify(kv)}`)
    else asUserExtra.push([kv.slice(0, eq), kv.slice(eq + 1)])
  }
  const as = optional(value("as"))
  if (as === undefined && (list("as-group").length > 0 || value("as-uid") !== "" || asUserExtra.length > 0)) {
    errors.push("--as-group, --as-uid and --as-user-extra need --as: requesting uid, groups or user-extra without impersonating a user")
  }
  const token = optional(value("token"))
  return {
    context: optional(value("context")),
    cluster: optional(value("cluster")),
    user: optional(value("user")),
    server: optional(value("server")),
    token: token === undefined ? undefined : Redacted.make(token),
    certificateAuthority: optional(value("certificate-authority")),
    clientCertificate: optional(value("client-certificate")),
    clientKey: optional(value("client-key")),
    insecureSkipTlsVerify: value("insecure-skip-tls-verify") === "true",
    tlsServerName: optional(value("tls-server-name")),
    as,
    asGroups: list("as-group"),
    asUid: optional(value("as-uid")),
    asUserExtra,
    requestTimeoutMillis: Result.isSuccess(timeout) ? timeout.success : 0,
    namespace: optional(value("namespace")),
    cacheDir: optional(value("cache-dir")),
    disableCompression: value("disable-compression") === "true"
  }
}

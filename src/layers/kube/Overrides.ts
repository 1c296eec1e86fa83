/**
 * The Kubernetes client flags (`config/KubeFlags.ts`) applied to a loaded client-node `KubeConfig`,
 * with client-go's precedence (k8s.io/client-go/tools/clientcmd, `DirectClientConfig` and
 * `inClusterClientConfig`):
 *
 * - `--context` picks the context, then `--cluster` and `--user` replace its cluster and user; a
 *   name that does not exist is an error.
 * - From a kubeconfig, every override applies to the chosen cluster and user. `--server` without
 *   `--tls-server-name` clears the kubeconfig's tls-server-name; `--insecure-skip-tls-verify` or
 *   `--certificate-authority` replace the CA and the skip setting together; `--client-certificate`
 *   and `--client-key` replace inline data as well.
 * - In a pod (in-cluster configuration) only `--server`, `--token` and `--certificate-authority`
 *   apply, exactly as client-go's in-cluster configuration takes only those three.
 *
 * Owns: that mapping, and the request headers client-node cannot express in a kubeconfig user
 * (`Impersonate-Group` once per group, `Impersonate-Uid`, `Impersonate-Extra-*`, and
 * `Accept-Encoding: identity` for `--disable-compression`); `--as` is client-node's own
 * `impersonateUser`. Does not own: loading (`Live.ts`), `--request-timeout` (`KubeClient.ts` bounds
 * every request/reply call with it).
 */
// Sub-paths, not the package index (why: kube/Live.ts).
import { KubeConfig } from "@kubernetes/client-node/dist/config.js"
import type { Cluster, User } from "@kubernetes/client-node/dist/config_types.js"
import type { RequestContext } from "@kubernetes/client-node/dist/gen/http/http.js"
import { Redacted, Result } from "effect"
import type { KubeClientFlags } from "../../services/KubeClient.ts"

/** Where the configuration came from: client-go treats in-cluster configuration differently. */
export type Source = "kubeconfig" | "in-cluster"

type Dispatcher = NonNullable<ReturnType<RequestContext["getDispatcher"]>>

/**
 * A KubeConfig that adds headers after client-node applied its own credentials. The API server
 * reads one `Impersonate-Group` header line per group, and fetch joins repeated headers into one
 * comma-separated line; so the groups are added below fetch, by a dispatcher that wraps the one
 * client-node chose (closing the wrapper closes it).
 */
export class HeaderKubeConfig extends KubeConfig {
  readonly extraHeaders: ReadonlyArray<readonly [string, string]>
  readonly impersonateGroups: ReadonlyArray<string>

  constructor(extraHeaders: ReadonlyArray<readonly [string, string]>, impersonateGroups: ReadonlyArray<string>) {
    super()
    this.extraHeaders = extraHeaders
    this.impersonateGroups = impersonateGroups
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context)
    for (const [name, value] of this.extraHeaders) context.setHeaderParam(name, value)
    if (this.impersonateGroups.length === 0) return
    // client-node leaves the dispatcher unset when the cluster has no TLS settings at all (fetch
    // then uses its global one); ask it for an agent of its own, which the wrapper may close.
    const inner = context.getDispatcher() ?? this["createDispatcher"](this.getCurrentCluster(), { rejectUnauthorized: true })
    if (inner !== undefined) context.setDispatcher(withHeaderLines(inner, "impersonate-group", this.impersonateGroups))
  }
}

/**
 * `inner` with every request's `name` header replaced by one line per value; every other member
 * (close, destroy, events) is `inner`'s own, called on `inner`.
 */
const withHeaderLines = (inner: Dispatcher, name: string, values: ReadonlyArray<string>): Dispatcher => {
  const dispatch: Dispatcher["dispatch"] = (options, handler) =>
    inner.dispatch({ ...options, headers: replaceHeader(options.headers, name, values) }, handler)
  return new Proxy(inner, {
    get: (target, prop) => {
      if (prop === "dispatch") return dispatch
      const value: unknown = Reflect.get(target, prop, target)
      return typeof value === "function" ? value.bind(target) : value
    }
  })
}

type DispatchHeaders = Parameters<Dispatcher["dispatch"]>[0]["headers"]

/** Headers as undici's dispatch takes them (a record, or a flat name/value array), `name` replaced. */
const replaceHeader = (headers: DispatchHeaders, name: string, values: ReadonlyArray<string>): Record<string, string | Array<string>> => {
  const out: Record<string, string | Array<string>> = {}
  const add = (key: string, value: unknown) => {
    if (key.toLowerCase() === name || value === undefined || value === null) return
    out[key] = Array.isArray(value) ? value.map(String) : String(value)
  }
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) add(String(headers[i]), headers[i + 1])
  } else if (headers !== null && headers !== undefined && typeof headers === "object") {
    const entries = Symbol.iterator in headers
      ? [...(headers as Iterable<readonly [string, unknown]>)]
      : Object.entries(headers)
    for (const [key, value] of entries) add(key, value)
  }
  out[name] = [...values]
  return out
}

const pick = <A extends { readonly name: string }>(items: ReadonlyArray<A>, name: string): A | undefined =>
  items.find((i) => i.name === name)

/** The configuration with the flags applied; an error names the flag and never carries a credential. */
export const applyKubeClientFlags = (
  kc: KubeConfig,
  flags: KubeClientFlags,
  source: Source
): Result.Result<KubeConfig, string> => {
  const contextName = source === "in-cluster" ? kc.getCurrentContext() : (flags.context ?? kc.getCurrentContext())
  let context = pick(kc.contexts, contextName)
  if (context === undefined) {
    if (flags.context !== undefined) return Result.fail(`--context: context ${JSON.stringify(flags.context)} does not exist`)
    context = { name: contextName, cluster: "", user: "" }
  }
  if (source === "kubeconfig") {
    if (flags.cluster !== undefined) {
      if (pick(kc.clusters, flags.cluster) === undefined) return Result.fail(`--cluster: cluster ${JSON.stringify(flags.cluster)} does not exist`)
      context = { ...context, cluster: flags.cluster }
    }
    if (flags.user !== undefined) {
      if (pick(kc.users, flags.user) === undefined) return Result.fail(`--user: auth info ${JSON.stringify(flags.user)} does not exist`)
      context = { ...context, user: flags.user }
    }
    if (flags.namespace !== undefined) context = { ...context, namespace: flags.namespace }
  }
  const baseCluster: Cluster = pick(kc.clusters, context.cluster) ?? { name: context.cluster || "flags", server: "", skipTLSVerify: false }
  const baseUser: User = pick(kc.users, context.user) ?? { name: context.user || "flags" }
  const cluster = overrideCluster(baseCluster, flags, source)
  const user = overrideUser(baseUser, flags, source)
  context = { ...context, cluster: cluster.name, user: user.name }

  const headers: Array<readonly [string, string]> = []
  if (source === "kubeconfig") {
    if (flags.asUid !== undefined) headers.push(["Impersonate-Uid", flags.asUid])
    for (const [key, value] of flags.asUserExtra) headers.push([`Impersonate-Extra-${encodeURIComponent(key)}`, value])
  }
  if (flags.disableCompression) headers.push(["Accept-Encoding", "identity"])

  const out = new HeaderKubeConfig(headers, source === "kubeconfig" ? flags.asGroups : [])
  const replace = <A extends { readonly name: string }>(items: ReadonlyArray<A>, item: A): Array<A> =>
    [...items.filter((i) => i.name !== item.name), item]
  out.loadFromOptions({
    clusters: replace(kc.clusters, cluster),
    users: replace(kc.users, user),
    contexts: replace(kc.contexts, context),
    currentContext: context.name
  })
  return Result.succeed(out)
}

const overrideCluster = (c: Cluster, flags: KubeClientFlags, source: Source): Cluster => {
  let out: Cluster = { ...c }
  if (flags.server !== undefined) {
    out = { ...out, server: flags.server }
    if (source === "kubeconfig") out = withoutKey(out, "tlsServerName")
  }
  if (flags.certificateAuthority !== undefined) {
    out = { ...withoutKey(out, "caData"), caFile: flags.certificateAuthority }
    if (source === "kubeconfig") out = { ...out, skipTLSVerify: flags.insecureSkipTlsVerify }
  }
  if (source === "in-cluster") return out
  if (flags.insecureSkipTlsVerify && flags.certificateAuthority === undefined) {
    out = { ...withoutKey(withoutKey(out, "caData"), "caFile"), skipTLSVerify: true }
  }
  if (flags.tlsServerName !== undefined) out = { ...out, tlsServerName: flags.tlsServerName }
  return out
}

const overrideUser = (u: User, flags: KubeClientFlags, source: Source): User => {
  let out: User = { ...u }
  // client-node sends the user's token last, over any auth provider's: a --token always wins.
  if (flags.token !== undefined) out = { ...out, token: Redacted.value(flags.token) }
  if (source === "in-cluster") return out
  if (flags.clientCertificate !== undefined) out = { ...withoutKey(out, "certData"), certFile: flags.clientCertificate }
  if (flags.clientKey !== undefined) out = { ...withoutKey(out, "keyData"), keyFile: flags.clientKey }
  if (flags.as !== undefined) out = { ...out, impersonateUser: flags.as }
  return out
}

const withoutKey = <A extends object, K extends keyof A>(a: A, key: K): A => {
  const copy = { ...a }
  delete copy[key]
  return copy
}

/**
 * The boundary between this product and the Kubernetes API server.
 *
 * Owns: the few verbs we use (get, list, watch, create, delete, replace, replace status) over typed
 * resources (see `domain/KubeObjects.ts`), every response decoded with Schema before it leaves the
 * layer, and per-call credentials: `create` may authenticate as a pod's ServiceAccount token instead
 * of the process's own identity (the driver creates CertificateRequests *as the pod*).
 * Does not own: caching, informers, retries (callers decide; watches end and callers resume).
 *
 * Implementations: `layers/KubeClient.ts` — `layer` over @kubernetes/client-node (kubeconfig or
 * in-cluster), `layerMemory` (an object store with resourceVersions and watch, limits documented).
 */
import { Context, Schema } from "effect"
import type { Effect, Redacted, Stream } from "effect"
import type { Resource } from "../domain/KubeObjects.ts"

/**
 * The standard Kubernetes client flags (k8s.io/cli-runtime's `genericclioptions`) as the live client
 * applies them to a loaded kubeconfig; decoded from the command line by `config/KubeFlags.ts`.
 */
export interface KubeClientFlags {
  /** `--context`: the kubeconfig context to use instead of its current-context. */
  readonly context: string | undefined
  /** `--cluster`: the kubeconfig cluster to use instead of the context's. */
  readonly cluster: string | undefined
  /** `--user`: the kubeconfig user to use instead of the context's. */
  readonly user: string | undefined
  /** `-s`, `--server`: the API server URL. */
  readonly server: string | undefined
  /** `--token`: a bearer token, winning over any other credential of the user. */
  readonly token: Redacted.Redacted<string> | undefined
  /** `--certificate-authority`: CA file for the server's certificate. */
  readonly certificateAuthority: string | undefined
  /** `--client-certificate` and `--client-key`: files of a TLS client identity. */
  readonly clientCertificate: string | undefined
  readonly clientKey: string | undefined
  /** `--insecure-skip-tls-verify`: do not check the server's certificate. */
  readonly insecureSkipTlsVerify: boolean
  /** `--tls-server-name`: the name checked in the server's certificate. */
  readonly tlsServerName: string | undefined
  /** `--as`, `--as-group` (repeatable), `--as-uid`, `--as-user-extra` (repeatable, key=value): impersonation. */
  readonly as: string | undefined
  readonly asGroups: ReadonlyArray<string>
  readonly asUid: string | undefined
  readonly asUserExtra: ReadonlyArray<readonly [string, string]>
  /** `--request-timeout`: limit of one request/reply call; 0 means none (the default). */
  readonly requestTimeoutMillis: number
  /** `-n`, `--namespace`: the context's namespace; neither binary has a namespaced default to apply it to. */
  readonly namespace: string | undefined
  /** `--cache-dir`: accepted for compatibility; neither binary uses discovery, so nothing is cached. */
  readonly cacheDir: string | undefined
  /** `--disable-compression`: ask the server for uncompressed replies. */
  readonly disableCompression: boolean
}

/** cli-runtime's default `--cache-dir`. */
export const DEFAULT_CACHE_DIR = "~/.kube/cache"

/** What no client flag on the command line decodes to. */
export const noKubeClientFlags: KubeClientFlags = {
  context: undefined,
  cluster: undefined,
  user: undefined,
  server: undefined,
  token: undefined,
  certificateAuthority: undefined,
  clientCertificate: undefined,
  clientKey: undefined,
  insecureSkipTlsVerify: false,
  tlsServerName: undefined,
  as: undefined,
  asGroups: [],
  asUid: undefined,
  asUserExtra: [],
  requestTimeoutMillis: 0,
  namespace: undefined,
  cacheDir: DEFAULT_CACHE_DIR,
  disableCompression: false
}

export const KubeErrorReason = Schema.Literals([
  "NotFound",
  "AlreadyExists",
  "Conflict",
  "Invalid",
  "Forbidden",
  "Unauthorized",
  "Gone",
  "Unavailable",
  "Decode",
  "Unknown"
])
export type KubeErrorReason = typeof KubeErrorReason.Type

/**
 * One failed API call. `detail` is the API server's own message (or a summary of a decode failure):
 * it never contains request bodies, tokens or CSRs.
 */
export class KubeError extends Schema.TaggedError<KubeError>()("KubeError", {
  operation: Schema.String,
  reason: KubeErrorReason,
  status: Schema.optional(Schema.Int),
  detail: Schema.String,
  /**
   * The failure below HTTP behind it (connection, TLS, credentials, reading the configuration),
   * when there is one. Replies of the API server and decode failures have none: a Schema issue can
   * quote the values it rejected, and those may be secrets.
   */
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `${this.operation}: ${this.reason}${this.status === undefined ? "" : ` (${this.status})`}: ${this.detail}`
  }
}

export interface ListOptions {
  /** Omit for all namespaces. */
  readonly namespace?: string
  readonly labelSelector?: string
  readonly fieldSelector?: string
}

export interface WatchOptions extends ListOptions {
  /** Resume point from a list or an earlier event; the watch starts after it. */
  readonly resourceVersion: string
}

export interface ListResult<A> {
  readonly items: ReadonlyArray<A>
  readonly resourceVersion: string
}

export type WatchEvent<A> =
  | { readonly type: "ADDED" | "MODIFIED" | "DELETED"; readonly object: A }
  | { readonly type: "BOOKMARK"; readonly resourceVersion: string }

export interface CallOptions {
  /** Authenticate this call with this bearer token instead of the client's own credentials. */
  readonly bearerToken?: Redacted.Redacted<string>
}

export interface KubeClientShape {
  /** The object, or undefined when it does not exist. */
  readonly get: <A>(resource: Resource<A>, namespace: string, name: string) => Effect.Effect<A | undefined, KubeError>
  readonly list: <A>(resource: Resource<A>, options: ListOptions) => Effect.Effect<ListResult<A>, KubeError>
  /**
   * Events after `resourceVersion`, in order. The stream ends when the server closes the watch;
   * an expired resourceVersion fails with reason `Gone` (the caller relists).
   */
  readonly watch: <A>(resource: Resource<A>, options: WatchOptions) => Stream.Stream<WatchEvent<A>, KubeError>
  /**
   * Creates an object (namespace ignored for cluster-scoped kinds); without `metadata.name`, the
   * server completes `metadata.generateName` into a unique name, returned in the created object.
   */
  readonly create: <A>(resource: Resource<A>, namespace: string, body: unknown, options?: CallOptions) => Effect.Effect<A, KubeError>
  /** Deletes; a missing object is success. */
  readonly delete: <A>(resource: Resource<A>, namespace: string, name: string) => Effect.Effect<void, KubeError>
  /** PUT of the whole object; `metadata.resourceVersion` must match or it fails with `Conflict`. */
  readonly replace: <A>(resource: Resource<A>, namespace: string, name: string, body: unknown) => Effect.Effect<A, KubeError>
  /** PUT to the `status` subresource; `metadata.resourceVersion` must match or it fails with `Conflict`. */
  readonly replaceStatus: <A>(resource: Resource<A>, namespace: string, name: string, body: unknown) => Effect.Effect<A, KubeError>
}

export class KubeClient extends Context.Service<KubeClient, KubeClientShape>()("csi-driver-spiffe/services/KubeClient") {}

/**
 * The flags more than one binary takes, with the original's names and defaults, and their decoding:
 * each binary lists these, words the help text of the ones whose meaning differs for it, and
 * decodes them with the functions here, so one flag means one thing in every binary.
 */
import { Result } from "effect"
import { parseGoDuration } from "../domain/CertificateRequest.ts"
import * as GoDuration from "../domain/GoDuration.ts"
import type { DefaultedIssuerRef } from "../domain/IssuerRef.ts"
import { withDefaults } from "../domain/IssuerRef.ts"
import type { LogFormat } from "../services/DriverConfig.ts"
import type { KubeClientFlags } from "../services/KubeClient.ts"
import type { Collector, FlagSpec } from "./Flags.ts"
import { decodeKubeClientFlags, kubeClientFlags } from "./KubeFlags.ts"

export const csiDriverName = (usage: string): FlagSpec =>
  ({ section: "App", name: "csi-driver-name", kind: "string", default: "spiffe.csi.cert-manager.io", usage })

export const logLevel: FlagSpec = {
  section: "App",
  name: "log-level",
  short: "v",
  aliases: ["v"],
  kind: "string",
  default: "1",
  usage: "Log verbosity, as klog's -v: 0-3 info, 4 adds debug, 5 adds trace lines."
}

export const loggingFormat: FlagSpec = {
  section: "App",
  name: "logging-format",
  kind: "string",
  default: "text",
  usage: "Log format: text (klog's) or json (Kubernetes' JSON log schema)."
}

export const versionFlag: FlagSpec = { section: "App", name: "version", kind: "bool", default: "false", usage: "Print the version and exit." }

/** `--logging-format`: text or json. */
export const parseLoggingFormat = (raw: string): Result.Result<LogFormat, string> =>
  raw === "text" || raw === "json" ? Result.succeed(raw) : Result.fail(`--logging-format must be text or json, got ${JSON.stringify(raw)}`)

export const kubeconfig: FlagSpec = {
  section: "Kubernetes",
  name: "kubeconfig",
  kind: "string",
  default: "",
  usage: "Path to a kubeconfig; in-cluster configuration when empty."
}

export const kubeClientPoolRefresh: FlagSpec = {
  section: "Kubernetes",
  name: "kube-client-pool-refresh",
  kind: "string",
  default: "5m",
  usage: "How long one connection pool to the API server is reused before a fresh one picks up rotated credentials (e.g. 5m, 30s)."
}

/** At least a second: a shorter period would open a connection per call, as client-node does alone. */
export const parsePoolRefresh = (raw: string): Result.Result<number, string> => {
  const ms = parseGoDuration(raw)
  return ms === undefined || ms < 1_000
    ? Result.fail(`--kube-client-pool-refresh must be a duration of at least 1s, such as 5m or 30s, got ${JSON.stringify(raw)}`)
    : Result.succeed(ms)
}

export const runtimeIssuanceConfigMap: ReadonlyArray<FlagSpec> = [
  { section: "cert-manager", name: "runtime-issuance-config-map-name", kind: "string", default: "", usage: "Name of a ConfigMap with issuer-name, issuer-kind and issuer-group, watched at runtime." },
  { section: "cert-manager", name: "runtime-issuance-config-map-namespace", kind: "string", default: "", usage: "Namespace of the runtime issuance ConfigMap." }
]

export const trustDomain = (usage: string): FlagSpec => ({ section: "cert-manager", name: "trust-domain", kind: "string", default: "cluster.local", usage })

export const certificateRequestDuration = (usage: string): FlagSpec =>
  ({ section: "cert-manager", name: "certificate-request-duration", kind: "string", default: "1h", usage })

export const issuer: ReadonlyArray<FlagSpec> = [
  { section: "cert-manager", name: "issuer-name", kind: "string", default: "my-spiffe-ca", usage: "Name of the issuer that signs the SVIDs." },
  { section: "cert-manager", name: "issuer-kind", kind: "string", default: "ClusterIssuer", usage: "Kind of the issuer." },
  { section: "cert-manager", name: "issuer-group", kind: "string", default: "cert-manager.io", usage: "API group of the issuer." }
]

/** `host:port`, `:port` or `0`; returns undefined for "0" (disabled). */
export const parseBindAddress = (flag: string, v: string): Result.Result<string | undefined, string> => {
  if (v === "0" || v === "") return Result.succeed(undefined)
  const m = /^(.*):(\d{1,5})$/.exec(v)
  if (m === null || Number(m[2]) > 65535) return Result.fail(`--${flag} must be host:port, :port or 0, got ${JSON.stringify(v)}`)
  return Result.succeed(v)
}

export const parseLogLevel = (raw: string): Result.Result<number, string> =>
  /^\d$/.test(raw) ? Result.succeed(Number(raw)) : Result.fail(`--log-level must be an integer from 0 to 9, got ${JSON.stringify(raw)}`)

/**
 * A Go duration (`time.ParseDuration`: `1h`, `90m`, `.5h`, `1h30m`), then checked: the original
 * coerces zero to 1 h; a negative one, or one under cert-manager's minimum of 1 m, is refused here
 * instead of by cert-manager on every request.
 */
export const parseRequestDuration = (raw: string): Result.Result<number, string> =>
  Result.flatMap(GoDuration.parseFlag("certificate-request-duration", raw), (ms) => {
    if (ms < 0) return Result.fail(`--certificate-request-duration must not be negative, got ${JSON.stringify(raw)}`)
    if (ms === 0) return Result.succeed(3_600_000)
    if (ms < 60_000) return Result.fail(`--certificate-request-duration must be at least 1m (cert-manager's minimum), got ${JSON.stringify(raw)}`)
    return Result.succeed(ms)
  })

/** The flags every binary takes about its own process: logging, `--version`, how it reaches the API server. */
export const processFlags: ReadonlyArray<FlagSpec> = [logLevel, loggingFormat, versionFlag, kubeconfig, ...kubeClientFlags, kubeClientPoolRefresh]

/** What `processFlags` decode to. */
export interface ProcessSettings {
  /** klog-style verbosity 0–9 (1 = info, ≥4 = debug). */
  readonly logLevel: number
  /** `--logging-format`: klog text (the default) or Kubernetes' JSON. */
  readonly logFormat: LogFormat
  readonly kubeconfig: string | undefined
  /** The standard Kubernetes client flags (`--context`, `--server`, `--token`, …). */
  readonly kubeClient: KubeClientFlags
  /** How long the KubeClient reuses one connection pool (`--kube-client-pool-refresh`). */
  readonly kubeClientPoolRefreshMillis: number
}

/** Decodes `processFlags`; a bad value is added to the collector's errors. */
export const decodeProcessSettings = ({ errors, list, take, value: v }: Collector): ProcessSettings => ({
  kubeClient: decodeKubeClientFlags(v, list, errors),
  logLevel: take(parseLogLevel(v("log-level")), 1),
  logFormat: take(parseLoggingFormat(v("logging-format")), "text"),
  kubeClientPoolRefreshMillis: take(parsePoolRefresh(v("kube-client-pool-refresh")), 300_000),
  kubeconfig: v("kubeconfig") === "" ? undefined : v("kubeconfig")
})

/** A controller's flags (the approver's and the signer's): its Lease's namespace and its two HTTP endpoints. */
export const controllerFlags = (leaseUsage: string): ReadonlyArray<FlagSpec> => [
  { section: "Controller", name: "leader-election-namespace", kind: "string", default: "cert-manager", usage: leaseUsage },
  { section: "Controller", name: "readiness-probe-bind-address", kind: "string", default: ":6060", usage: "Address of the readiness endpoint (/readyz); 0 disables." },
  { section: "Controller", name: "metrics-bind-address", kind: "string", default: ":9402", usage: "Address of the Prometheus endpoint (/metrics); 0 disables." }
]

/** What `controllerFlags` decode to; an endpoint is undefined when its flag is `0`. */
export interface ControllerSettings {
  readonly leaderElectionNamespace: string
  readonly readinessBindAddress: string | undefined
  readonly metricsBindAddress: string | undefined
}

/** Decodes `controllerFlags`; a bad value is added to the collector's errors. */
export const decodeControllerSettings = ({ errors, take, value: v }: Collector): ControllerSettings => {
  const readinessBindAddress = take(parseBindAddress("readiness-probe-bind-address", v("readiness-probe-bind-address")), undefined)
  const metricsBindAddress = take(parseBindAddress("metrics-bind-address", v("metrics-bind-address")), undefined)
  if (v("leader-election-namespace") === "") errors.push("--leader-election-namespace must not be empty")
  return { leaderElectionNamespace: v("leader-election-namespace"), readinessBindAddress, metricsBindAddress }
}

/** `--issuer-name`, `--issuer-kind`, `--issuer-group` with cert-manager's defaults for an empty kind or group. */
export const decodeDefaultedIssuer = ({ value: v }: Collector): DefaultedIssuerRef =>
  withDefaults({ name: v("issuer-name"), kind: v("issuer-kind"), group: v("issuer-group") })

/**
 * The flags both binaries take, with the original's names and defaults; each binary words the help
 * text of the ones whose meaning differs for it.
 */
import { Result } from "effect"
import { parseGoDuration } from "../domain/CertificateRequest.ts"
import * as GoDuration from "../domain/GoDuration.ts"
import type { LogFormat } from "../services/DriverConfig.ts"
import type { FlagSpec } from "./Flags.ts"

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

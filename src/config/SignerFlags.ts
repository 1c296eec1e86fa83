/**
 * The PodCertificateRequest signer's command line (`csi-driver-spiffe-signer`), decoded once into
 * `SignerConfigShape` plus the process settings around it. Flag names are the ones the chart passes
 * (see the Pod Certificates section of the README); the shared ones (`--trust-domain`, the issuer,
 * logging, the Kubernetes client flags) mean what they mean for the approver. A bad value is one
 * line and exit code 2.
 */
import { Result } from "effect"
import { intermediateDurationViolation, REFRESH_EDGE_MILLIS, MIN_LIFETIME_MILLIS } from "../domain/PodCertificate.ts"
import { trustDomainViolations } from "../domain/SpiffeId.ts"
import * as GoDuration from "../domain/GoDuration.ts"
import type { LogFormat } from "../services/DriverConfig.ts"
import type { KubeClientFlags } from "../services/KubeClient.ts"
import type { SignerConfigShape } from "../services/SignerConfig.ts"
import { defaults } from "../services/SignerConfig.ts"
import * as Common from "./CommonFlags.ts"
import { parseBindAddress, parseLogLevel } from "./CommonFlags.ts"
import type { FlagSpec, SettingsArgs } from "./Flags.ts"
import { collector, settingsParser } from "./Flags.ts"
import { decodeKubeClientFlags, kubeClientFlags } from "./KubeFlags.ts"

export interface SignerSettings {
  readonly config: SignerConfigShape
  readonly logLevel: number
  readonly logFormat: LogFormat
  readonly kubeconfig: string | undefined
  readonly kubeClient: KubeClientFlags
  readonly kubeClientPoolRefreshMillis: number
  readonly readinessBindAddress: string | undefined
  readonly metricsBindAddress: string | undefined
}

export const signerFlags: ReadonlyArray<FlagSpec> = [
  Common.logLevel,
  Common.loggingFormat,
  Common.versionFlag,
  Common.kubeconfig,
  ...kubeClientFlags,
  Common.kubeClientPoolRefresh,
  { section: "Signer", name: "signer-name", kind: "string", default: defaults.signerName, usage: "The PodCertificateRequest signer name this signer answers for." },
  Common.trustDomain("The trust domain of every SPIFFE ID this signer issues."),
  ...Common.issuer.map((f) => ({ ...f, usage: f.usage.replace("signs the SVIDs", "signs the signer's intermediate CA") })),
  { section: "Signer", name: "certificate-namespace", kind: "string", default: "cert-manager", usage: "Namespace of the intermediate CA's CertificateRequests." },
  { section: "Signer", name: "intermediate-duration", kind: "string", default: "168h", usage: "Lifetime requested for the intermediate CA (Go duration)." },
  { section: "Signer", name: "max-leaf-duration", kind: "string", default: "24h", usage: "Longest SVID lifetime; a request's maxExpirationSeconds may only shorten it (Go duration, at least 1h)." },
  { section: "Signer", name: "begin-refresh-after", kind: "string", default: "", usage: "When the kubelet should refresh an SVID, from its notBefore (Go duration); empty: two thirds of its lifetime." },
  { section: "Controller", name: "leader-election-namespace", kind: "string", default: "cert-manager", usage: "Namespace of the leader-election Lease csi-driver-spiffe-signer." },
  { section: "Controller", name: "readiness-probe-bind-address", kind: "string", default: ":6060", usage: "Address of the readiness endpoint (/readyz); 0 disables." },
  { section: "Controller", name: "metrics-bind-address", kind: "string", default: ":9402", usage: "Address of the Prometheus endpoint (/metrics); 0 disables." }
]

const duration = (flag: string, raw: string, errors: Array<string>): number | undefined => {
  const r = GoDuration.parseFlag(flag, raw)
  if (Result.isFailure(r)) {
    errors.push(r.failure)
    return undefined
  }
  if (r.success <= 0) {
    errors.push(`--${flag} must be positive, got ${JSON.stringify(raw)}`)
    return undefined
  }
  return r.success
}

export const decodeSignerSettings = (
  values: Readonly<Record<string, string>>,
  lists: Readonly<Record<string, ReadonlyArray<string>>> = {}
): Result.Result<SignerSettings, string> => {
  const { errors, value: v, list, take } = collector(values, lists)
  const kubeClient = decodeKubeClientFlags(v, list, errors)
  const logLevel = take(parseLogLevel(v("log-level")), 1)
  const logFormat = take(Common.parseLoggingFormat(v("logging-format")), "text")
  const poolRefresh = take(Common.parsePoolRefresh(v("kube-client-pool-refresh")), 300_000)
  const readiness = take(parseBindAddress("readiness-probe-bind-address", v("readiness-probe-bind-address")), undefined)
  const metrics = take(parseBindAddress("metrics-bind-address", v("metrics-bind-address")), undefined)
  for (const td of trustDomainViolations(v("trust-domain"))) errors.push(`--trust-domain: ${td}`)
  if (!/^[a-z0-9.-]+\/[A-Za-z0-9._-]+$/.test(v("signer-name"))) errors.push(`--signer-name must be <domain>/<name>, got ${JSON.stringify(v("signer-name"))}`)
  if (v("issuer-name") === "") errors.push("--issuer-name must not be empty")
  if (v("certificate-namespace") === "") errors.push("--certificate-namespace must not be empty")
  if (v("leader-election-namespace") === "") errors.push("--leader-election-namespace must not be empty")
  const intermediate = duration("intermediate-duration", v("intermediate-duration"), errors)
  const maxLeaf = duration("max-leaf-duration", v("max-leaf-duration"), errors)
  const refresh = v("begin-refresh-after") === "" ? undefined : duration("begin-refresh-after", v("begin-refresh-after"), errors)
  if (maxLeaf !== undefined && maxLeaf < MIN_LIFETIME_MILLIS) errors.push("--max-leaf-duration must be at least 1h (the API server's minimum leaf lifetime)")
  if (intermediate !== undefined && maxLeaf !== undefined) {
    const why = intermediateDurationViolation(intermediate, maxLeaf)
    if (why !== undefined) errors.push(`--intermediate-duration ${why}`)
  }
  if (refresh !== undefined && refresh < REFRESH_EDGE_MILLIS) errors.push("--begin-refresh-after must be at least 10m (the API server's bound)")
  if (errors.length > 0) return Result.fail(errors.join("; "))
  return Result.succeed({
    config: {
      signerName: v("signer-name"),
      trustDomain: v("trust-domain"),
      maxLeafMillis: maxLeaf!,
      beginRefreshAfterMillis: refresh,
      issuer: { name: v("issuer-name"), kind: v("issuer-kind") === "" ? "Issuer" : v("issuer-kind"), group: v("issuer-group") === "" ? "cert-manager.io" : v("issuer-group") },
      certificateNamespace: v("certificate-namespace"),
      intermediateMillis: intermediate!,
      leaderElectionNamespace: v("leader-election-namespace")
    },
    logLevel,
    logFormat,
    kubeconfig: v("kubeconfig") === "" ? undefined : v("kubeconfig"),
    kubeClient,
    kubeClientPoolRefreshMillis: poolRefresh,
    readinessBindAddress: readiness,
    metricsBindAddress: metrics
  })
}

export type SignerArgs = SettingsArgs<SignerSettings>

export const parseSignerArgs = settingsParser(signerFlags, decodeSignerSettings)

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
import type { SignerConfigShape } from "../services/SignerConfig.ts"
import { defaults } from "../services/SignerConfig.ts"
import * as Common from "./CommonFlags.ts"
import type { FlagSpec, SettingsArgs } from "./Flags.ts"
import { collector, settingsParser } from "./Flags.ts"

export interface SignerSettings extends Common.ProcessSettings, Omit<Common.ControllerSettings, "leaderElectionNamespace"> {
  readonly config: SignerConfigShape
}

export const signerFlags: ReadonlyArray<FlagSpec> = [
  ...Common.processFlags,
  { section: "Signer", name: "signer-name", kind: "string", default: defaults.signerName, usage: "The PodCertificateRequest signer name this signer answers for." },
  Common.trustDomain("The trust domain of every SPIFFE ID this signer issues."),
  ...Common.issuer.map((f) => ({ ...f, usage: f.usage.replace("signs the SVIDs", "signs the signer's intermediate CA") })),
  { section: "Signer", name: "certificate-namespace", kind: "string", default: "cert-manager", usage: "Namespace of the intermediate CA's CertificateRequests." },
  { section: "Signer", name: "intermediate-duration", kind: "string", default: "168h", usage: "Lifetime requested for the intermediate CA (Go duration)." },
  { section: "Signer", name: "max-leaf-duration", kind: "string", default: "24h", usage: "Longest SVID lifetime; a request's maxExpirationSeconds may only shorten it (Go duration, at least 1h)." },
  { section: "Signer", name: "begin-refresh-after", kind: "string", default: "", usage: "When the kubelet should refresh an SVID, from its notBefore (Go duration); empty: two thirds of its lifetime." },
  ...Common.controllerFlags("Namespace of the leader-election Lease csi-driver-spiffe-signer.")
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
  const c = collector(values, lists)
  const { errors, value: v } = c
  const process = Common.decodeProcessSettings(c)
  const { leaderElectionNamespace, ...endpoints } = Common.decodeControllerSettings(c)
  for (const td of trustDomainViolations(v("trust-domain"))) errors.push(`--trust-domain: ${td}`)
  if (!/^[a-z0-9.-]+\/[A-Za-z0-9._-]+$/.test(v("signer-name"))) errors.push(`--signer-name must be <domain>/<name>, got ${JSON.stringify(v("signer-name"))}`)
  if (v("issuer-name") === "") errors.push("--issuer-name must not be empty")
  if (v("certificate-namespace") === "") errors.push("--certificate-namespace must not be empty")
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
      issuer: Common.decodeDefaultedIssuer(c),
      certificateNamespace: v("certificate-namespace"),
      intermediateMillis: intermediate!,
      leaderElectionNamespace
    },
    ...process,
    ...endpoints
  })
}

export type SignerArgs = SettingsArgs<SignerSettings>

export const parseSignerArgs = settingsParser(signerFlags, decodeSignerSettings)

/**
 * The approver's command line: the Go original's flags, names and defaults (cert-manager's
 * csi-driver-spiffe, internal/approver/app/options), decoded once into `ApproverConfigShape` plus the process
 * settings around it. A bad value is one line and exit code 2.
 */
import { Result } from "effect"
import { driverServiceAccountViolations, KNOWN_KEY_TYPES } from "../domain/SpiffeRules.ts"
import * as GoDuration from "../domain/GoDuration.ts"
import { trustDomainViolations } from "../domain/SpiffeId.ts"
import type { ApproverConfigShape } from "../services/ApproverConfig.ts"
import * as Common from "./CommonFlags.ts"
import { parseRequestDuration } from "./CommonFlags.ts"
import type { FlagSpec, SettingsArgs } from "./Flags.ts"
import { collector, settingsParser } from "./Flags.ts"

export interface ApproverSettings extends Common.ProcessSettings, Omit<Common.ControllerSettings, "leaderElectionNamespace"> {
  readonly config: ApproverConfigShape
  readonly runtimeIssuanceConfigMap: { readonly name: string; readonly namespace: string } | undefined
  /** Whether `--issuer-name` was empty: then only the runtime ConfigMap names the SPIFFE issuer. */
  readonly staticIssuer: boolean
}

export const approverFlags: ReadonlyArray<FlagSpec> = [
  Common.csiDriverName("Name of the CSI driver; also the name of the leader-election Lease."),
  ...Common.processFlags,
  ...Common.runtimeIssuanceConfigMap,
  Common.trustDomain("The only trust domain requests may ask for."),
  Common.certificateRequestDuration("Duration every request must ask for, exactly."),
  ...Common.issuer,
  { section: "cert-manager", name: "allowed-key-types", kind: "string", default: "ecdsa-p256", usage: `Comma-separated key types requests may use (${KNOWN_KEY_TYPES.join(", ")}).` },
  { section: "cert-manager", name: "use-own-service-account", kind: "bool", default: "false", usage: "Approve only requests the CSI driver made with its own ServiceAccount (--driver-service-account) for a workload ID in the request's own namespace; the driver must run with --use-own-service-account too." },
  { section: "cert-manager", name: "driver-service-account", kind: "string", default: "", usage: "With --use-own-service-account (required there, ignored otherwise): the driver's ServiceAccount username, system:serviceaccount:<namespace>:<name>." },
  { section: "Pod Certificates", name: "signer-service-account", kind: "string", default: "", usage: "The Pod Certificate signer's ServiceAccount, <namespace>:<name>: the only requester whose intermediate CA request (annotation spiffe.csi.cert-manager.io/intermediate) may be approved; empty: every such request is denied." },
  { section: "Pod Certificates", name: "signer-intermediate-duration", kind: "string", default: "168h", usage: "Duration the signer's intermediate CA request must ask for, exactly (the signer's --intermediate-duration)." },
  { section: "Controller", name: "auto-approve-non-spiffe", kind: "bool", default: "false", usage: "Also approve requests without the identity annotation, unless they target the SPIFFE issuer or carry a spiffe:// URI." },
  ...Common.controllerFlags("Namespace of the leader-election Lease.")
]

/**
 * `--signer-service-account`, `<namespace>:<name>`, as the username its requests carry
 * (`system:serviceaccount:<namespace>:<name>`); empty is undefined.
 */
export const parseSignerServiceAccount = (raw: string): Result.Result<string | undefined, string> => {
  if (raw === "") return Result.succeed(undefined)
  const parts = raw.split(":")
  if (parts.length !== 2 || parts.some((p) => p === "")) {
    return Result.fail(`--signer-service-account must be <namespace>:<name>, got ${JSON.stringify(raw)}`)
  }
  const username = `system:serviceaccount:${parts[0]}:${parts[1]}`
  const why = driverServiceAccountViolations(username)
  return why.length === 0 ? Result.succeed(username) : Result.fail(`--signer-service-account: ${why.join(", ")}`)
}

/** `--signer-intermediate-duration`: a Go duration of at least cert-manager's minimum of 1 m. */
export const parseIntermediateDuration = (raw: string): Result.Result<number, string> =>
  Result.flatMap(GoDuration.parseFlag("signer-intermediate-duration", raw), (ms) =>
    ms < 60_000
      ? Result.fail(`--signer-intermediate-duration must be at least 1m (cert-manager's minimum), got ${JSON.stringify(raw)}`)
      : Result.succeed(ms))

export const decodeApproverSettings = (
  values: Readonly<Record<string, string>>,
  lists: Readonly<Record<string, ReadonlyArray<string>>> = {}
): Result.Result<ApproverSettings, string> => {
  const c = collector(values, lists)
  const { errors, value: v, take } = c
  const process = Common.decodeProcessSettings(c)
  for (const td of trustDomainViolations(v("trust-domain"))) errors.push(`--trust-domain: ${td}`)
  const duration = take(parseRequestDuration(v("certificate-request-duration")), 3_600_000)
  const { leaderElectionNamespace, ...endpoints } = Common.decodeControllerSettings(c)
  const keyTypes = v("allowed-key-types").split(",").map((s) => s.trim()).filter((s) => s !== "")
  for (const k of keyTypes) if (!KNOWN_KEY_TYPES.includes(k)) errors.push(`--allowed-key-types: unknown key type ${JSON.stringify(k)}`)
  if (keyTypes.length === 0) errors.push("--allowed-key-types must name at least one key type")
  const cmName = v("runtime-issuance-config-map-name")
  const cmNamespace = v("runtime-issuance-config-map-namespace")
  if (cmName !== "" && cmNamespace === "") errors.push("--runtime-issuance-config-map-namespace is required with --runtime-issuance-config-map-name")
  const ownServiceAccount = v("use-own-service-account") === "true"
  const driverServiceAccount = v("driver-service-account")
  if (ownServiceAccount) {
    for (const why of driverServiceAccountViolations(driverServiceAccount)) {
      errors.push(driverServiceAccount === "" ? "--driver-service-account is required with --use-own-service-account" : `--driver-service-account: ${why}`)
    }
  }
  const signerServiceAccount = take(parseSignerServiceAccount(v("signer-service-account")), undefined)
  const intermediateDuration = take(parseIntermediateDuration(v("signer-intermediate-duration")), 0)
  if (errors.length > 0) return Result.fail(errors.join("; "))
  return Result.succeed({
    config: {
      csiDriverName: v("csi-driver-name"),
      trustDomain: v("trust-domain"),
      certificateRequestDuration: duration,
      issuer: Common.decodeDefaultedIssuer(c),
      autoApproveNonSpiffe: v("auto-approve-non-spiffe") === "true",
      leaderElectionNamespace,
      allowedKeyTypes: keyTypes,
      driverServiceAccount: ownServiceAccount ? driverServiceAccount : undefined,
      signerServiceAccount,
      signerIntermediateDuration: intermediateDuration
    },
    ...process,
    runtimeIssuanceConfigMap: cmName === "" ? undefined : { name: cmName, namespace: cmNamespace },
    staticIssuer: v("issuer-name") !== "",
    ...endpoints
  })
}

export type ApproverArgs = SettingsArgs<ApproverSettings>

export const parseApproverArgs = settingsParser(approverFlags, decodeApproverSettings)

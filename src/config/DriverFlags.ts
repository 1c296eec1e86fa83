/**
 * The driver's command line (the Go original's flags, names and defaults) decoded once into a
 * `DriverConfigShape` (the contract in `services/DriverConfig.ts`).
 *
 * Owns: flag names, defaults, help text and every cross-flag rule; the one-line error a bad value gets.
 * Does not own: the runtime issuer (IssuerConfig follows the ConfigMap), the CA bundle's content.
 */
import { Result } from "effect"
import { defaultPolicy } from "../domain/Renewal.ts"
import { trustDomainViolations } from "../domain/SpiffeId.ts"
import type { DriverConfigShape } from "../services/DriverConfig.ts"
import * as Common from "./CommonFlags.ts"
import { parseBindAddress, parseRequestDuration } from "./CommonFlags.ts"
import type { FlagSpec, ParsedFlags } from "./Flags.ts"
import { collector, parseFlags } from "./Flags.ts"

export const driverFlags: ReadonlyArray<FlagSpec> = [
  Common.csiDriverName("Name of the CSI driver as installed (the CSIDriver object's name)."),
  ...Common.processFlags,
  { section: "Driver", name: "node-id", kind: "string", default: "", usage: "Name of the node the driver runs on (required)." },
  { section: "Driver", name: "endpoint", kind: "string", default: "", usage: "gRPC endpoint, unix:///path/to/csi.sock (required)." },
  { section: "Driver", name: "data-root", kind: "string", default: "", usage: "Directory for the driver's tmpfs and volume state (required)." },
  { section: "Driver", name: "kubelet-root-dir", kind: "string", default: "/var/lib/kubelet", usage: "The kubelet's root directory (its --root-dir); every target path must lie under its pods/ directory." },
  { section: "Driver", name: "plugin-registration", kind: "bool", default: "true", usage: "Register with the kubelet through <kubelet-root-dir>/plugins_registry/<csi-driver-name>-reg.sock; false when a node-driver-registrar sidecar does it." },
  { section: "Driver", name: "kubelet-registration-path", kind: "string", default: "", usage: "Path of the CSI socket on the host, as the kubelet dials it (default: the --endpoint unix socket's path)." },
  { section: "Driver", name: "metrics-bind-address", kind: "string", default: "0", usage: "Address for /metrics, /healthz and /readyz; 0 disables." },
  { section: "cert-manager", name: "use-own-service-account", kind: "bool", default: "false", usage: "Create CertificateRequests with the driver's ServiceAccount instead of the pod's." },
  ...Common.runtimeIssuanceConfigMap,
  Common.trustDomain("Trust domain of the SPIFFE IDs issued."),
  Common.certificateRequestDuration("Duration requested for every certificate."),
  { section: "cert-manager", name: "extra-certificate-request-annotations", kind: "string", default: "", usage: "Extra annotations for every CertificateRequest, as k1=v1,k2=v2." },
  ...Common.issuer,
  { section: "Volume", name: "file-name-certificate", kind: "string", default: "tls.crt", usage: "File name of the certificate chain in the volume." },
  { section: "Volume", name: "file-name-key", kind: "string", default: "tls.key", usage: "File name of the private key in the volume." },
  { section: "Volume", name: "file-name-ca", kind: "string", default: "ca.crt", usage: "File name of the CA bundle in the volume." },
  { section: "Volume", name: "source-ca-bundle", kind: "string", default: "", usage: "File of PEM CA certificates copied into every volume; empty writes no CA file." },
  { section: "Volume", name: "workload-api", kind: "bool", default: "true", usage: "Serve the SPIFFE Workload API on a unix socket in every volume; a volume's spiffe.csi.cert-manager.io/workload-api attribute (\"true\" or \"false\") overrides it." },
  { section: "Volume", name: "workload-api-socket-name", kind: "string", default: "spiffe.sock", usage: "File name of the SPIFFE Workload API socket in the volume." }
]

const fileNameViolation = (flag: string, v: string): string | undefined =>
  v === "" || v === "." || v === ".." || v.includes("/") || v.startsWith("..") || v.includes("\0")
    ? `--${flag} must be a plain file name, got ${JSON.stringify(v)}`
    : undefined

/**
 * `--extra-certificate-request-annotations` (`k1=v1,k2=v2`). Keys in the driver's own
 * `spiffe.csi.cert-manager.io` prefix are dropped and returned in `reserved`, to be logged as an
 * error at start-up; the driver still starts. This is what the Go original does
 * (cert-manager/csi-driver-spiffe, internal/csi/driver `sanitizeAnnotations`), and refusing to
 * start would fix nothing: the identity annotation the approver checks
 * (`spiffe.csi.cert-manager.io/identity`) is written by the driver after the extra annotations, so
 * configuration can never forge it either way; a refusal would only break installs the original
 * runs.
 */
export const parseAnnotations = (
  raw: string
): Result.Result<{ readonly annotations: Record<string, string>; readonly reserved: ReadonlyArray<string> }, string> => {
  const annotations: Record<string, string> = {}
  const reserved: Array<string> = []
  const trimmed = raw.trim()
  if (trimmed === "" || trimmed === "{}") return Result.succeed({ annotations, reserved })
  const pairs = annotationPairs(trimmed)
  if (Result.isFailure(pairs)) return Result.fail(pairs.failure)
  for (const pair of pairs.success) {
    const eq = pair.indexOf("=")
    if (eq <= 0) return Result.fail(`--extra-certificate-request-annotations must be k1=v1,k2=v2, got ${JSON.stringify(pair)}`)
    const key = pair.slice(0, eq).trim()
    if (key.startsWith(RESERVED_ANNOTATION_PREFIX)) reserved.push(key)
    else annotations[key] = pair.slice(eq + 1).trim()
  }
  return Result.succeed({ annotations, reserved })
}

/**
 * The `k=v` items of the flag as pflag's `StringToString` splits them: one `=` is one pair (its
 * surrounding double quotes dropped); otherwise a CSV record, so an item holding a comma can be
 * quoted whole (`"a=x,y",b=2`), `""` standing for a quote inside it. Stricter than pflag in one
 * place: `a=1,` is refused (a trailing comma), where pflag would read the value `1,`.
 */
const annotationPairs = (raw: string): Result.Result<ReadonlyArray<string>, string> => {
  const quoted = raw.startsWith("\"") && raw.endsWith("\"")
  if (raw.split("=").length === 2 && (!raw.includes(",") || quoted)) return Result.succeed([raw.replace(/^"+|"+$/g, "")])
  const out: Array<string> = []
  let i = 0
  for (;;) {
    let field = ""
    if (raw[i] === "\"") {
      i++
      for (;;) {
        if (i >= raw.length) return Result.fail("--extra-certificate-request-annotations: a quoted item has no closing quote")
        if (raw[i] === "\"") {
          if (raw[i + 1] === "\"") {
            field += "\""
            i += 2
            continue
          }
          i++
          break
        }
        field += raw[i]
        i++
      }
      if (i < raw.length && raw[i] !== ",") return Result.fail("--extra-certificate-request-annotations: text after a quoted item")
    } else {
      const end = raw.indexOf(",", i)
      field = raw.slice(i, end < 0 ? raw.length : end)
      if (field.includes("\"")) return Result.fail("--extra-certificate-request-annotations: a quote inside an unquoted item")
      i = end < 0 ? raw.length : end
    }
    out.push(field)
    if (i >= raw.length) return Result.succeed(out)
    i++ // the comma
  }
}

/** The prefix of the annotations the driver itself sets (the Go original's `annotations.Prefix`). */
export const RESERVED_ANNOTATION_PREFIX = "spiffe.csi.cert-manager.io"

/**
 * The kubelet dials the CSI socket by its host path. Without `--kubelet-registration-path` that is
 * the `--endpoint` socket's own path (`unix://` plus the path, made absolute as the endpoint is),
 * which is right when the driver runs on the host; a container passes the host path.
 */
export const parsePluginRegistration = (
  enabled: string,
  registrationPath: string,
  endpoint: string
): Result.Result<DriverConfigShape["pluginRegistration"], string> => {
  // A missing --endpoint is reported on its own.
  if (enabled !== "true" || (endpoint === "" && registrationPath === "")) return Result.succeed(undefined)
  const path = registrationPath !== ""
    ? registrationPath
    : endpoint.startsWith("unix://")
    ? `/${endpoint.slice("unix://".length).replace(/^\/+/, "")}`
    : ""
  if (path === "") return Result.fail("--kubelet-registration-path is required with --plugin-registration when --endpoint is not a unix socket")
  if (!path.startsWith("/") || path.endsWith("/") || path.includes("\0")) {
    return Result.fail(`--kubelet-registration-path must be the absolute path of the CSI socket on the host, got ${JSON.stringify(path)}`)
  }
  return Result.succeed({ kubeletRegistrationPath: path })
}

/** Decodes flag values into the driver's config; every problem is reported in one line. */
export const decodeDriverConfig = (
  values: Readonly<Record<string, string>>,
  version: string,
  lists: Readonly<Record<string, ReadonlyArray<string>>> = {}
): Result.Result<DriverConfigShape, string> => {
  const c = collector(values, lists)
  const { errors, value: v, take } = c
  const process = Common.decodeProcessSettings(c)
  for (const req of ["node-id", "endpoint", "data-root"]) if (v(req) === "") errors.push(`--${req} is required`)
  const kubeletRootDir = v("kubelet-root-dir").replace(/(.)\/+$/, "$1")
  if (!kubeletRootDir.startsWith("/") || kubeletRootDir.includes("\0") || kubeletRootDir.split("/").some((c) => c === "." || c === "..")) {
    errors.push(`--kubelet-root-dir must be an absolute path without . or .. components, got ${JSON.stringify(v("kubelet-root-dir"))}`)
  }
  const pluginRegistration = take(parsePluginRegistration(v("plugin-registration"), v("kubelet-registration-path"), v("endpoint")), undefined)
  for (const td of trustDomainViolations(v("trust-domain"))) errors.push(`--trust-domain: ${td}`)
  const duration = take(parseRequestDuration(v("certificate-request-duration")), 3_600_000)
  const { annotations, reserved } = take(parseAnnotations(v("extra-certificate-request-annotations")), { annotations: {}, reserved: [] })
  const metrics = take(parseBindAddress("metrics-bind-address", v("metrics-bind-address")), undefined)
  const fileNames = { certificate: v("file-name-certificate"), key: v("file-name-key"), ca: v("file-name-ca") }
  for (const [flag, name] of [["file-name-certificate", fileNames.certificate], ["file-name-key", fileNames.key], ["file-name-ca", fileNames.ca]] as const) {
    const e = fileNameViolation(flag, name)
    if (e !== undefined) errors.push(e)
  }
  if (new Set(Object.values(fileNames)).size !== 3) errors.push("--file-name-certificate, --file-name-key and --file-name-ca must differ")
  const socketName = v("workload-api-socket-name")
  const socketError = fileNameViolation("workload-api-socket-name", socketName)
  if (socketError !== undefined) errors.push(socketError)
  else if (Object.values(fileNames).includes(socketName)) errors.push("--workload-api-socket-name must differ from the --file-name-* flags")
  const cmName = v("runtime-issuance-config-map-name")
  const cmNamespace = v("runtime-issuance-config-map-namespace")
  if (cmName !== "" && cmNamespace === "") errors.push("--runtime-issuance-config-map-namespace is required with --runtime-issuance-config-map-name")
  // An empty name with a namespace is what the original chart renders when no runtime ConfigMap is
  // set (the namespace flag is always the release namespace): no runtime configuration, as there.
  if (v("issuer-name") === "" && cmName === "") {
    errors.push("runtime issuance configuration is required if no issuer is provided at startup: set --issuer-name or --runtime-issuance-config-map-name")
  }
  if (errors.length > 0) return Result.fail(errors.join("; "))
  return Result.succeed({
    csiDriverName: v("csi-driver-name"),
    version,
    ...process,
    nodeId: v("node-id"),
    endpoint: v("endpoint"),
    dataRoot: v("data-root"),
    kubeletRootDir,
    pluginRegistration,
    useOwnServiceAccount: v("use-own-service-account") === "true",
    runtimeIssuanceConfigMap: cmName === "" ? undefined : { name: cmName, namespace: cmNamespace },
    trustDomain: v("trust-domain"),
    certificateRequestDurationMillis: duration,
    extraCertificateRequestAnnotations: annotations,
    ...(reserved.length === 0 ? {} : { droppedAnnotationKeys: reserved }),
    issuer: v("issuer-name") === "" ? undefined : { name: v("issuer-name"), kind: v("issuer-kind"), group: v("issuer-group") },
    fileNames,
    workloadApi: { socketName, byDefault: v("workload-api") === "true" },
    sourceCaBundle: v("source-ca-bundle") === "" ? undefined : v("source-ca-bundle"),
    metricsBindAddress: metrics,
    renewal: defaultPolicy,
    issuanceTimeoutMillis: 60_000
  })
}

export type DriverArgs = { readonly _tag: "Help" } | { readonly _tag: "Config"; readonly config: DriverConfigShape }

export const parseDriverArgs = (argv: ReadonlyArray<string>, version: string): Result.Result<DriverArgs, string> =>
  Result.flatMap(parseFlags(driverFlags, argv), (p: ParsedFlags): Result.Result<DriverArgs, string> =>
    p._tag === "Help"
      ? Result.succeed({ _tag: "Help" })
      : Result.map(decodeDriverConfig(p.values, version, p.lists), (config): DriverArgs => ({ _tag: "Config", config })))

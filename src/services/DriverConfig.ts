/**
 * The driver's start-up settings as typed values: what its pieces read, decoded once from the
 * command line by `config/DriverFlags.ts`.
 *
 * Owns: the shape and the `DriverConfig` service that hands it to the layers.
 * Does not own: flag names, defaults and decoding (`config/`), the runtime issuer (IssuerConfig
 * follows the ConfigMap), the CA bundle's content.
 */
import { Context, Layer } from "effect"
import type { IssuerRef } from "../domain/IssuerRef.ts"
import type { RenewalPolicy } from "../domain/Renewal.ts"
import type { KubeClientFlags } from "./KubeClient.ts"

/** The log formats of `--logging-format` (written by `layers/Logging.ts`). */
export type LogFormat = "text" | "json"

export interface DriverConfigShape {
  readonly csiDriverName: string
  readonly version: string
  /** klog-style verbosity 0–5 (1 = info, ≥4 = debug). */
  readonly logLevel: number
  /** `--logging-format`: klog text (the default) or Kubernetes' JSON. */
  readonly logFormat?: LogFormat | undefined
  readonly kubeconfig: string | undefined
  /** The standard Kubernetes client flags (`--context`, `--server`, `--token`, …); none when absent. */
  readonly kubeClient?: KubeClientFlags | undefined
  /** How long the KubeClient reuses one connection pool (`--kube-client-pool-refresh`); 5 min when absent. */
  readonly kubeClientPoolRefreshMillis?: number | undefined
  readonly nodeId: string
  readonly endpoint: string
  /** Directory holding `inmemfs/` (the tmpfs with every volume). */
  readonly dataRoot: string
  /** The kubelet's root directory (`--root-dir`): target paths live under its `pods/`, plugin registration under `plugins_registry/`. */
  readonly kubeletRootDir: string
  /**
   * Serve the kubelet's plugin registration (`<kubeletRootDir>/plugins_registry/<csiDriverName>-reg.sock`)
   * and tell it to dial `kubeletRegistrationPath`, the CSI socket's host path; undefined when a
   * node-driver-registrar sidecar registers the driver instead (`--plugin-registration=false`).
   */
  readonly pluginRegistration: { readonly kubeletRegistrationPath: string } | undefined
  /** Create requests as the driver's own ServiceAccount instead of the pod's. */
  readonly useOwnServiceAccount: boolean
  readonly runtimeIssuanceConfigMap: { readonly name: string; readonly namespace: string } | undefined
  readonly trustDomain: string
  readonly certificateRequestDurationMillis: number
  readonly extraCertificateRequestAnnotations: Readonly<Record<string, string>>
  /** Keys of `--extra-certificate-request-annotations` dropped for the reserved prefix (logged at start-up). */
  readonly droppedAnnotationKeys?: ReadonlyArray<string> | undefined
  /** The static issuer; undefined when `--issuer-name` is empty (runtime ConfigMap only). */
  readonly issuer: IssuerRef | undefined
  readonly fileNames: { readonly certificate: string; readonly key: string; readonly ca: string }
  /**
   * The SPIFFE Workload API socket in each volume (`--workload-api-socket-name`, `--workload-api`):
   * its file name, and whether a volume without the `spiffe.csi.cert-manager.io/workload-api`
   * attribute gets one. Undefined: no volume ever gets a socket.
   */
  readonly workloadApi?: { readonly socketName: string; readonly byDefault: boolean } | undefined
  readonly sourceCaBundle: string | undefined
  /** `host:port` for /metrics, /healthz and /readyz; undefined disables the server. */
  readonly metricsBindAddress: string | undefined
  readonly renewal: RenewalPolicy
  /** How long one publish waits for its request before returning to the kubelet (the original: 60 s). */
  readonly issuanceTimeoutMillis: number
}

export class DriverConfig extends Context.Service<DriverConfig, DriverConfigShape>()("csi-driver-spiffe/services/DriverConfig") {
  static readonly layer = (config: DriverConfigShape) => Layer.succeed(DriverConfig, DriverConfig.of(config))
}

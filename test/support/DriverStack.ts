/**
 * The driver's whole service stack on memory layers (KubeClient, VolumeStore, Mounter) with the
 * test signer acting as cert-manager and approver. The "node" part (memory API server, store, mount
 * table, signer) is built separately from the "driver process" part (Issuance, VolumeManager,
 * CsiPlugin), so a test can stop the driver and start a new one over the same node state.
 */
import { Context, Effect, Layer, Scope } from "effect"
import * as Renewal from "../../src/domain/Renewal.ts"
import * as CaBundleLayers from "../../src/layers/CaBundle.ts"
import * as CryptoLayers from "../../src/layers/Crypto.ts"
import * as EventRecorderLayers from "../../src/layers/EventRecorder.ts"
import * as CsiPluginLayers from "../../src/layers/CsiPlugin.ts"
import * as IssuanceLayers from "../../src/layers/Issuance.ts"
import * as IssuerConfigLayers from "../../src/layers/IssuerConfig.ts"
import * as KubeLayers from "../../src/layers/KubeClient.ts"
import * as MounterLayers from "../../src/layers/Mounter.ts"
import * as VolumeManagerLayers from "../../src/layers/VolumeManager.ts"
import * as VolumeStoreLayers from "../../src/layers/VolumeStore.ts"
import * as WorkloadApiLayers from "../../src/layers/WorkloadApi.ts"
import type { CaBundle } from "../../src/services/CaBundle.ts"
import type { DriverConfigShape } from "../../src/services/DriverConfig.ts"
import type { IssuerConfig } from "../../src/services/IssuerConfig.ts"
import type { KubeClient } from "../../src/services/KubeClient.ts"
import { DriverConfig } from "../../src/services/DriverConfig.ts"
import * as TestSigner from "./TestSigner.ts"

/** Exact renewal timing for TestClock assertions: no jitter anywhere. */
export const exactPolicy: Renewal.RenewalPolicy = { ...Renewal.defaultPolicy, jitter: 0, failureJitter: 0 }

export const testConfig = (overrides: Partial<DriverConfigShape> = {}): DriverConfigShape => ({
  csiDriverName: "spiffe.csi.cert-manager.io",
  version: "test",
  logLevel: 1,
  kubeconfig: undefined,
  nodeId: "test-node",
  endpoint: "unix:///tmp/unused.sock",
  dataRoot: "data",
  kubeletRootDir: "/var/lib/kubelet",
  pluginRegistration: undefined,
  useOwnServiceAccount: false,
  runtimeIssuanceConfigMap: undefined,
  trustDomain: "foo.bar",
  certificateRequestDurationMillis: 3_600_000,
  extraCertificateRequestAnnotations: {},
  issuer: { name: "csi-driver-spiffe-ca", kind: "ClusterIssuer", group: "cert-manager.io" },
  fileNames: { certificate: "tls.crt", key: "tls.key", ca: "ca.crt" },
  sourceCaBundle: undefined,
  metricsBindAddress: undefined,
  renewal: exactPolicy,
  issuanceTimeoutMillis: 60_000,
  ...overrides
})

/**
 * What stays when the driver process restarts: API server, tmpfs contents, mount table, signer, and
 * the Workload API twin (it records which volumes a driver serves; a stopping driver closes them).
 */
export const nodeLayer = Layer.mergeAll(VolumeStoreLayers.layerMemory("data/inmemfs"), MounterLayers.layerMemory, EventRecorderLayers.layerMemory, WorkloadApiLayers.layerMemory).pipe(
  Layer.provideMerge(TestSigner.layer.pipe(Layer.provideMerge(KubeLayers.layerMemory)))
)

/**
 * Replacements for the driver's IssuerConfig and CaBundle (by default: the static issuer from the
 * config, and `caPem` or no CA). Each is built once per driver process.
 */
export interface DriverOverrides {
  readonly issuerConfig?: Layer.Layer<IssuerConfig, never, KubeClient>
  readonly caBundle?: Layer.Layer<CaBundle>
}

/** One driver process over the node's services. */
export const driverLayer = (config: DriverConfigShape, caPem?: string, overrides: DriverOverrides = {}) => {
  const ConfigLive = DriverConfig.layer(config)
  const IssuerLive = overrides.issuerConfig ?? IssuerConfigLayers.layerStatic(config.issuer)
  const CaLive = overrides.caBundle ?? (caPem === undefined ? CaBundleLayers.layerNone : CaBundleLayers.layerStatic(caPem))
  const IssuanceLive = IssuanceLayers.layer.pipe(Layer.provide([ConfigLive, CryptoLayers.layer, IssuerLive]))
  const ManagerLive = VolumeManagerLayers.layer.pipe(Layer.provide([ConfigLive, CaLive]), Layer.provideMerge(IssuanceLive))
  return CsiPluginLayers.layer.pipe(Layer.provide([ConfigLive, IssuerLive]), Layer.provideMerge(ManagerLive))
}

/**
 * One driver over a fresh node, with its config and the static issuer among the outputs: what the
 * driver's /metrics, /healthz and /readyz server (`csi/HealthServer.ts`) reads.
 */
export const driverOnNode = (config: DriverConfigShape) =>
  driverLayer(config).pipe(
    Layer.provideMerge(DriverConfig.layer(config)),
    Layer.provideMerge(IssuerConfigLayers.layerStatic(config.issuer)),
    Layer.provideMerge(nodeLayer)
  )

/** Builds a driver over an already built node context in its own scope, so it can be stopped. */
export const startDriver = <N>(node: Context.Context<N>, config: DriverConfigShape, caPem?: string, overrides: DriverOverrides = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const ctx = yield* Layer.buildWithScope(driverLayer(config, caPem, overrides).pipe(Layer.provide(Layer.succeedContext(node))), scope)
    return { ctx, stop: Scope.close(scope, undefined as never) }
  })

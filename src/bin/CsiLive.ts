/**
 * Composition root of the CSI node driver: every service wired with its live implementation.
 */
import { NodeFileSystem, NodePath } from "@effect/platform-node"
import { Duration, Effect, Layer } from "effect"
import * as path from "node:path"
import * as v8 from "node:v8"
import { GrpcServer } from "../csi/GrpcServer.ts"
import * as HealthServer from "../csi/HealthServer.ts"
import { Registration } from "../csi/Registration.ts"
import type { DriverConfigShape } from "../services/DriverConfig.ts"
import { DriverConfig } from "../services/DriverConfig.ts"
import { VolumeManager } from "../services/VolumeManager.ts"
import * as CaBundleLayers from "../layers/CaBundle.ts"
import * as CryptoLayers from "../layers/Crypto.ts"
import * as CsiPluginLayers from "../layers/CsiPlugin.ts"
import * as EventRecorderLayers from "../layers/EventRecorder.ts"
import * as IdleGc from "../layers/IdleGc.ts"
import * as IssuanceLayers from "../layers/Issuance.ts"
import * as IssuerConfigLayers from "../layers/IssuerConfig.ts"
import * as KubeClientLayers from "../layers/KubeClient.ts"
import * as Logging from "../layers/Logging.ts"
import * as MounterLayers from "../layers/Mounter.ts"
import * as VolumeManagerLayers from "../layers/VolumeManager.ts"
import * as VolumeStoreLayers from "../layers/VolumeStore.ts"
import * as WorkloadApiServer from "../csi/WorkloadApiServer.ts"
import * as CompilerTiers from "./CompilerTiers.ts"

/**
 * The file system and paths, all the driver's own sockets and files need of the platform; not
 * `NodeServices.layer`, which brings a terminal (Node's readline), stdio and a process spawner
 * too, none used by the layers given it here (the mounter has its own spawner).
 */
const NodeFiles = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)

/**
 * The kubelet's plugin registration on `<kubeletRootDir>/plugins_registry/`; nothing at all with
 * `--plugin-registration=false` (a node-driver-registrar sidecar registers the driver then).
 */
export const registrationLayer = (config: DriverConfigShape) =>
  config.pluginRegistration === undefined
    ? Layer.empty
    : Registration.layer({
      driverName: config.csiDriverName,
      registryDir: path.join(config.kubeletRootDir, "plugins_registry"),
      kubeletRegistrationPath: config.pluginRegistration.kubeletRegistrationPath
    }).pipe(Layer.provide(NodeFiles))

/** `CompilerTiers.DRIVER_LISTENING`, set once the CSI socket listens (provided after `ServerLive`). */
const optimizeForSize = Layer.effectDiscard(Effect.sync(() => v8.setFlagsFromString(CompilerTiers.DRIVER_LISTENING)))

/**
 * A memory-reducing full GC once no publish or unpublish has been in hand for `IdleGc.QUIET`
 * (`layers/IdleGc.ts` says why), as a scoped fiber. After 500 volumes were published and
 * unpublished the driver held 91.3 MiB, 80.7 after such a GC (bench/results/footprint.md, round 4).
 * Renewals do not count as work: with them the GC would run after most renewals of a busy node.
 */
const idleGc = IdleGc.layer(Effect.map(Effect.service(VolumeManager), (manager) => manager.busy))

export const CsiLive = (config: DriverConfigShape) => {
  const ConfigLive = DriverConfig.layer(config)
  const KubeLive = KubeClientLayers.layer({
    kubeconfig: config.kubeconfig,
    poolRefresh: config.kubeClientPoolRefreshMillis === undefined ? undefined : Duration.millis(config.kubeClientPoolRefreshMillis),
    kubeClientFlags: config.kubeClient
  })
  // Events name the driver and its node as their source, as `kubectl describe` shows under "From".
  const EventsLive = EventRecorderLayers.layer("csi-driver-spiffe", config.nodeId).pipe(Layer.provide(KubeLive))
  const IssuerLive = IssuerConfigLayers.layerFor(config).pipe(Layer.provide([KubeLive, EventsLive]))
  const CaBundleLive = CaBundleLayers.layerFor(config).pipe(Layer.provide([CryptoLayers.layer, NodeFiles]))
  const IssuanceLive = IssuanceLayers.layer.pipe(Layer.provide([ConfigLive, KubeLive, CryptoLayers.layer, IssuerLive]))
  const StoreLive = VolumeStoreLayers.layerFileSystem(path.resolve(config.dataRoot, "inmemfs"))
  const ManagerLive = VolumeManagerLayers.layer.pipe(
    Layer.provide([ConfigLive, IssuanceLive, StoreLive, MounterLayers.layerLinux, CaBundleLive, EventsLive, WorkloadApiServer.layer])
  )
  const PluginLive = CsiPluginLayers.layer.pipe(Layer.provide([ConfigLive, ManagerLive, IssuanceLive, IssuerLive]))
  const ServerLive = GrpcServer.layer({ endpoint: config.endpoint }).pipe(Layer.provide([PluginLive, NodeFiles]))
  // Offered to the kubelet only once the CSI socket it will dial is listening (provide builds
  // ServerLive first), and withdrawn before that socket closes.
  const RegistrationLive = registrationLayer(config).pipe(Layer.provide(ServerLive))
  const HeapLive = Layer.mergeAll(optimizeForSize.pipe(Layer.provide(ServerLive)), idleGc.pipe(Layer.provide(ManagerLive)))
  const HealthLive = config.metricsBindAddress === undefined
    ? Layer.empty
    : HealthServer.layer(config.metricsBindAddress).pipe(Layer.provide([ConfigLive, PluginLive, ManagerLive, IssuerLive, RegistrationLive, NodeFiles]))
  return Layer.mergeAll(ServerLive, RegistrationLive, HeapLive, HealthLive).pipe(Layer.provide(Logging.layer(config.logLevel, config.logFormat)))
}

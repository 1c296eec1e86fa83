/**
 * The driver over its real edges, for integration tests run as root: volume files under
 * `<dataRoot>/inmemfs` (VolumeStore on the file system), Linux mounts, the gRPC server on
 * `config.endpoint`, a fixed CA bundle, no Workload API. The Kubernetes side (KubeClient,
 * EventRecorder, the test signer) comes from the context the caller provides; `issuanceKube`
 * replaces the KubeClient that Issuance talks to (e.g. one that holds creates at a gate).
 * VolumeManager and CsiPlugin stay visible next to GrpcServer for state checks.
 */
import { NodeServices } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as path from "node:path"
import { GrpcServer } from "../../src/csi/GrpcServer.ts"
import * as CaBundleLayers from "../../src/layers/CaBundle.ts"
import * as CryptoLayers from "../../src/layers/Crypto.ts"
import * as CsiPluginLayers from "../../src/layers/CsiPlugin.ts"
import * as IssuanceLayers from "../../src/layers/Issuance.ts"
import * as IssuerConfigLayers from "../../src/layers/IssuerConfig.ts"
import * as MounterLayers from "../../src/layers/Mounter.ts"
import * as VolumeManagerLayers from "../../src/layers/VolumeManager.ts"
import * as VolumeStoreLayers from "../../src/layers/VolumeStore.ts"
import * as WorkloadApiLayers from "../../src/layers/WorkloadApi.ts"
import { DriverConfig } from "../../src/services/DriverConfig.ts"
import type { DriverConfigShape } from "../../src/services/DriverConfig.ts"
import { KubeClient } from "../../src/services/KubeClient.ts"

export const realDriverLayer = <RK = never>(
  config: DriverConfigShape,
  caPem: string,
  options: { readonly issuanceKube?: Layer.Layer<KubeClient, never, RK> } = {}
) => {
  const ConfigLive = DriverConfig.layer(config)
  const IssuerLive = IssuerConfigLayers.layerStatic(config.issuer)
  // Without `issuanceKube`, Issuance uses the context's KubeClient like everything else.
  const IssuanceKube: Layer.Layer<KubeClient, never, RK | KubeClient> = options.issuanceKube ??
    Layer.effect(KubeClient, Effect.service(KubeClient))
  const IssuanceLive = IssuanceLayers.layer.pipe(
    Layer.provide([ConfigLive, CryptoLayers.layer, IssuerLive, IssuanceKube])
  )
  const ManagerLive = VolumeManagerLayers.layer.pipe(
    Layer.provide([
      ConfigLive,
      IssuanceLive,
      VolumeStoreLayers.layerFileSystem(path.join(config.dataRoot, "inmemfs")),
      MounterLayers.layerLinux,
      CaBundleLayers.layerStatic(caPem),
      WorkloadApiLayers.layerNone
    ])
  )
  const PluginLive = CsiPluginLayers.layer.pipe(Layer.provide([ConfigLive, IssuanceLive, IssuerLive]), Layer.provideMerge(ManagerLive))
  return GrpcServer.layer({ endpoint: config.endpoint }).pipe(Layer.provideMerge(PluginLive), Layer.provide(NodeServices.layer))
}

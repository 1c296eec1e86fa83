/**
 * NodePublishVolume latency and memory in the integration setting: the real gRPC server on
 * a unix socket, a real tmpfs and read-only bind mounts, the memory API server and the test signer
 * in the same process, real clock. Needs root (mount). Prints and writes bench/results/driver.json.
 *
 *   node scripts/bench-driver.ts [publishes=100] [volumes=110] [workload-api=off|on]
 *
 * With `on`, every volume also serves the SPIFFE Workload API on its socket (the live grpc-js
 * server), so two runs give the socket's added memory per volume; the result is written to
 * bench/results/driver-workload-api.json instead.
 */
import { NodeServices } from "@effect/platform-node"
import { Context, Effect, Layer } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { GrpcServer } from "../src/csi/GrpcServer.ts"
import * as CaBundleLayers from "../src/layers/CaBundle.ts"
import * as CryptoLayers from "../src/layers/Crypto.ts"
import * as EventRecorderLayers from "../src/layers/EventRecorder.ts"
import * as CsiPluginLayers from "../src/layers/CsiPlugin.ts"
import * as IssuanceLayers from "../src/layers/Issuance.ts"
import * as IssuerConfigLayers from "../src/layers/IssuerConfig.ts"
import * as KubeLayers from "../src/layers/KubeClient.ts"
import * as MounterLayers from "../src/layers/Mounter.ts"
import * as VolumeManagerLayers from "../src/layers/VolumeManager.ts"
import * as VolumeStoreLayers from "../src/layers/VolumeStore.ts"
import * as Logging from "../src/layers/Logging.ts"
import * as WorkloadApiLayers from "../src/layers/WorkloadApi.ts"
import * as WorkloadApiServer from "../src/csi/WorkloadApiServer.ts"
import { DriverConfig } from "../src/services/DriverConfig.ts"
import { Mounter } from "../src/services/Mounter.ts"
import { testConfig } from "../test/support/DriverStack.ts"
import { makeCsiClient } from "../test/support/grpcClient.ts"
import { publishRequest } from "../test/support/publish.ts"
import * as TestSigner from "../test/support/TestSigner.ts"

const publishes = Number(process.argv[2] ?? 100)
const volumes = Number(process.argv[3] ?? 110)
const workloadApi = (process.argv[4] ?? "off") === "on"

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}

const program = Effect.gen(function*() {
  const tmp = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "csi-spiffe-bench-")))
  const dataRoot = path.join(tmp, "data")
  const socket = path.join(tmp, "csi.sock")
  const config = testConfig({
    endpoint: `unix://${socket}`,
    dataRoot,
    // Target paths are the kubelet's shape under the temporary directory.
    kubeletRootDir: tmp,
    renewal: { ...testConfig().renewal, jitter: 0.05 },
    workloadApi: workloadApi ? { socketName: "spiffe.sock", byDefault: true } : undefined
  })
  const node = yield* Layer.build(Layer.merge(TestSigner.layer, EventRecorderLayers.layerMemory).pipe(Layer.provideMerge(KubeLayers.layerMemory)))
  const signer = Context.get(node, TestSigner.TestSigner)
  const ConfigLive = DriverConfig.layer(config)
  const IssuerLive = IssuerConfigLayers.layerStatic(config.issuer)
  const IssuanceLive = IssuanceLayers.layer.pipe(Layer.provide([ConfigLive, CryptoLayers.layer, IssuerLive]))
  const ManagerLive = VolumeManagerLayers.layer.pipe(
    Layer.provide([ConfigLive, IssuanceLive, VolumeStoreLayers.layerFileSystem(path.join(dataRoot, "inmemfs")), MounterLayers.layerLinux, CaBundleLayers.layerStatic(signer.ca.certPem), workloadApi ? WorkloadApiServer.layer : WorkloadApiLayers.layerNone])
  )
  const targets: Array<string> = []
  const mounter = yield* Effect.provide(Effect.service(Mounter), MounterLayers.layerLinux)
  // Added before the driver is built, so it runs after the driver stopped: a bound Workload API
  // socket keeps the tmpfs busy until its server is closed.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      for (const t of targets) yield* mounter.unmount(t).pipe(Effect.ignore)
      yield* mounter.unmount(path.join(dataRoot, "inmemfs")).pipe(Effect.ignore)
      yield* Effect.promise(() => fs.rm(tmp, { recursive: true, force: true }))
    })
  )
  const PluginLive = CsiPluginLayers.layer.pipe(Layer.provide([ConfigLive, ManagerLive, IssuanceLive, IssuerLive]))
  yield* Layer.build(
    GrpcServer.layer({ endpoint: config.endpoint }).pipe(Layer.provide([PluginLive, NodeServices.layer]), Layer.provide(Layer.succeedContext(node)))
  )
  const client = yield* makeCsiClient(`unix://${socket}`)
  const publishOne = (i: number) =>
    Effect.gen(function*() {
      const uid = `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`
      const { token: _t, ...req } = publishRequest({
        podName: `pod-${i}`,
        podUid: uid,
        volumeId: `csi-bench-${i}`,
        targetPath: path.join(tmp, "pods", uid, "volumes", "kubernetes.io~csi", "spiffe", "mount")
      })
      targets.push(req.target_path)
      const started = performance.now()
      yield* client.call("Node", "NodePublishVolume", req)
      return performance.now() - started
    })

  // Warm-up (JIT, first crypto init), not counted.
  yield* publishOne(100_000)
  globalThis.gc?.()
  const rssBefore = process.memoryUsage().rss / (1024 * 1024)
  const heapBefore = process.memoryUsage().heapUsed / (1024 * 1024)
  const times: Array<number> = []
  for (let i = 0; i < publishes; i++) times.push(yield* publishOne(i))
  for (let i = publishes; i < volumes; i++) yield* publishOne(i)
  globalThis.gc?.()
  const rss = process.memoryUsage().rss / (1024 * 1024)
  const heap = process.memoryUsage().heapUsed / (1024 * 1024)
  const result = {
    setting: "in-process: real gRPC unix socket, tmpfs, bind mounts; memory API server and test signer",
    workload_api: workloadApi ? "on: a grpc-js Workload API server per volume" : "off",
    publishes,
    publish_p50_ms: Number(percentile(times, 50).toFixed(2)),
    publish_p99_ms: Number(percentile(times, 99).toFixed(2)),
    publish_max_ms: Number(Math.max(...times).toFixed(2)),
    volumes_published: volumes + 1,
    rss_mib_after_first_volume: Number(rssBefore.toFixed(1)),
    rss_mib_with_volumes: Number(rss.toFixed(1)),
    heap_used_mib_after_first_volume: Number(heapBefore.toFixed(1)),
    heap_used_mib_with_volumes: Number(heap.toFixed(1)),
    note: "RSS is the whole test process (driver + in-memory API server + signer + gRPC client)"
  }
  console.log(JSON.stringify(result, null, 2))
  yield* Effect.promise(() => fs.mkdir("bench/results", { recursive: true }))
  yield* Effect.promise(() => fs.writeFile(workloadApi ? "bench/results/driver-workload-api.json" : "bench/results/driver.json", JSON.stringify(result, null, 2) + "\n"))
})

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(Logging.layer(0)))).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)

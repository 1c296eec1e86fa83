/**
 * The driver over its real edges: the gRPC server on a temporary unix socket, a real tmpfs, real
 * read-only bind mounts and real files, with the memory API server and the test signer standing in
 * for kube-apiserver and cert-manager. The driver is stopped and started again over the same node
 * state (tmpfs, mounts, API objects), as a DaemonSet pod restart does.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { x509 } from "../../src/x509.ts"
import * as EventRecorderLayers from "../../src/layers/EventRecorder.ts"
import * as KubeLayers from "../../src/layers/KubeClient.ts"
import * as MounterLayers from "../../src/layers/Mounter.ts"
import type { DriverConfigShape } from "../../src/services/DriverConfig.ts"
import { Mounter } from "../../src/services/Mounter.ts"
import { testConfig } from "../support/DriverStack.ts"
import { makeCsiClient } from "../support/grpcClient.ts"
import { realDriverLayer } from "../support/RealDriver.ts"
import { untilChanged } from "../support/scratch.ts"
import { publishRequest, unpublishRequest } from "../support/publish.ts"
import * as TestSigner from "../support/TestSigner.ts"

const isRoot = process.getuid?.() === 0
const HOUR = 3_600_000

const start = <N>(node: Context.Context<N>, config: DriverConfigShape, caPem: string) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Layer.buildWithScope(realDriverLayer(config, caPem).pipe(Layer.provide(Layer.succeedContext(node))), scope)
    return Scope.close(scope, undefined as never)
  })

const read = (p: string) => Effect.promise(() => fs.readFile(p, "utf8"))

describe.skipIf(!isRoot)("driver over real gRPC, tmpfs and bind mounts (needs root; skipped otherwise)", () => {
  it.effect("publishes a verifiable SVID, survives a driver restart with renewal, and unpublishes cleanly", () =>
    Effect.gen(function*() {
      const tmp = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "csi-spiffe-it-"))),
        (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
      )
      const dataRoot = path.join(tmp, "data")
      const socket = path.join(tmp, "csi.sock")
      const req = publishRequest({ targetPath: path.join(tmp, "pods", publishRequest().volume_context["csi.storage.k8s.io/pod.uid"], "volumes", "kubernetes.io~csi", "spiffe", "mount") })
      const { token: _t, ...publish } = req
      const target = req.target_path
      const config = testConfig({ endpoint: `unix://${socket}`, dataRoot, kubeletRootDir: tmp })
      // Whatever happens, leave no mount behind: target first, then the driver's tmpfs.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          const m = yield* Mounter
          yield* m.unmount(target).pipe(Effect.ignore)
          yield* m.unmount(path.join(dataRoot, "inmemfs")).pipe(Effect.ignore)
        }).pipe(Effect.provide(MounterLayers.layerLinux))
      )

      const node = yield* Layer.build(Layer.merge(TestSigner.layer, EventRecorderLayers.layerMemory).pipe(Layer.provideMerge(KubeLayers.layerMemory)))
      const signer = Context.get(node, TestSigner.TestSigner)
      const kube = Context.get(node, KubeLayers.KubeClientMemory)

      const stop1 = yield* start(node, config, signer.ca.certPem)
      const client = yield* makeCsiClient(`unix://${socket}`)
      const info = (yield* client.call("Identity", "GetPluginInfo")) as { name: string }
      assert.strictEqual(info.name, "spiffe.csi.cert-manager.io")
      yield* client.call("Node", "NodePublishVolume", publish)

      const crt = yield* read(path.join(target, "tls.crt"))
      const key = yield* read(path.join(target, "tls.key"))
      assert.strictEqual(yield* read(path.join(target, "ca.crt")), signer.ca.certPem)
      const leaf = new x509.X509Certificate(crt)
      assert.deepStrictEqual(leaf.getExtension(x509.SubjectAlternativeNameExtension)!.names.items.map((n) => n.value), ["spiffe://foo.bar/ns/sandbox/sa/example-app"])
      assert.isTrue(yield* Effect.promise(() => leaf.verify({ publicKey: signer.ca.cert.publicKey, signatureOnly: true })))
      const priv = yield* Effect.promise(() =>
        globalThis.crypto.subtle.importKey("pkcs8", x509.PemConverter.decodeFirst(key), { name: "ECDSA", namedCurve: "P-256" }, true, ["sign"])
      )
      const sig = yield* Effect.promise(() => globalThis.crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, priv, Buffer.from("proof")))
      const pub = yield* Effect.promise(() => leaf.publicKey.export())
      assert.isTrue(yield* Effect.promise(() => globalThis.crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, pub, sig, Buffer.from("proof"))), "the key matches the certificate")
      const writeExit = yield* Effect.exit(Effect.tryPromise(() => fs.writeFile(path.join(target, "x"), "no")))
      assert.include(String(writeExit), "EROFS", "the pod's view is read-only")
      const keyMode = (yield* Effect.promise(() => fs.stat(path.join(target, "tls.key")))).mode & 0o777
      assert.strictEqual(keyMode, 0o440)

      // The driver goes away (DaemonSet pod restart): the pod keeps its files.
      yield* stop1
      yield* Effect.promise(() => fs.access(socket).then(() => assert.fail("socket left behind"), () => undefined))
      assert.strictEqual(yield* read(path.join(target, "tls.crt")), crt)

      const stop2 = yield* start(node, config, signer.ca.certPem)
      const client2 = yield* makeCsiClient(`unix://${socket}`)
      const probe = (yield* client2.call("Identity", "Probe")) as { ready: { value: boolean } }
      assert.isTrue(probe.ready.value)
      // Renewal falls due; without a token since the restart it waits, then the kubelet's
      // republish brings one and the renewed certificate appears through the same mount.
      yield* TestClock.adjust((2 * HOUR) / 3 + 1)
      assert.strictEqual(yield* signer.signed, 1)
      const { token: _t2, ...republish } = publishRequest({ serial: 3, targetPath: target })
      yield* client2.call("Node", "NodePublishVolume", republish)
      yield* TestClock.adjust(10_000)
      // The renewed certificate becomes visible in the pod with the `..data` swap in the target.
      yield* untilChanged(target, Effect.promise(() => fs.readFile(path.join(target, "tls.crt"), "utf8").then((c) => c !== crt)))
      const renewed = new x509.X509Certificate(yield* read(path.join(target, "tls.crt")))
      assert.notStrictEqual(renewed.serialNumber, leaf.serialNumber)

      const { volume_id, target_path } = unpublishRequest({ targetPath: target })
      yield* client2.call("Node", "NodeUnpublishVolume", { volume_id, target_path })
      const mounted = yield* Effect.provide(Effect.flatMap(Effect.service(Mounter), (m) => m.isMountPoint(target)), MounterLayers.layerLinux)
      assert.isFalse(mounted)
      assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(path.join(dataRoot, "inmemfs"))), [])
      assert.strictEqual((yield* kube.all((yield* Effect.promise(() => import("../../src/domain/KubeObjects.ts"))).CertificateRequests)).length, 0)
      yield* client2.call("Node", "NodeUnpublishVolume", { volume_id, target_path })
      yield* stop2
    }), { timeout: 60_000 })
})

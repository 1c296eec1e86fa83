/**
 * The real gRPC server on a temp unix socket, driven by a real grpc-js client, with a recording
 * CsiPlugin and a logger that keeps every line so the tests can look for leaked secrets.
 */
import { NodeFileSystem, NodePath } from "@effect/platform-node"
import { assert, describe, it, layer } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, FileSystem, Layer, Logger, Predicate, Ref, References, Scope } from "effect"
import { TestClock } from "effect/testing"
import { CsiError, CsiPlugin } from "../../src/services/CsiPlugin.ts"
import { GrpcServer, INTERNAL_DETAIL, REDACTED } from "../../src/csi/GrpcServer.ts"
import { type CsiClient, GrpcCallError, makeCsiClient } from "../support/grpcClient.ts"
import { TOKENS_KEY } from "../../src/domain/Token.ts"

interface Call {
  readonly rpc: string
  readonly request: unknown
}

const TOKEN = "eyJhbGciOiJSUzI1NiJ9.token-that-must-never-be-logged"
const SECRET = "secret-value-that-must-never-be-logged"
const DEFECT_TEXT = "defect text with /internal/path that must not reach the caller"

const volumeIdOf = (request: unknown): string =>
  Predicate.hasProperty(request, "volume_id") && Predicate.isString(request.volume_id) ? request.volume_id : ""

/** Signals of a publish that never finishes (`volume_id` "hang"). */
interface Hang {
  readonly started: Deferred.Deferred<void>
  readonly interrupted: Deferred.Deferred<void>
}

/**
 * Records every call; `volume_id` "invalid" fails with InvalidArgument, "boom" dies, "hang" runs
 * until interrupted.
 */
const recordingPlugin = (calls: Ref.Ref<ReadonlyArray<Call>>, ready: Ref.Ref<boolean>, hang?: Hang) => {
  const record = (rpc: string, request: unknown = {}) => Ref.update(calls, (all) => [...all, { rpc, request }])
  const volumeCall = (rpc: string) => (request: unknown) =>
    record(rpc, request).pipe(
      Effect.andThen(() => {
        const id = volumeIdOf(request)
        if (id === "invalid") return Effect.fail(new CsiError({ code: "InvalidArgument", detail: "volume_id invalid is not valid" }))
        if (id === "boom") return Effect.die(new Error(DEFECT_TEXT))
        if (id === "hang" && hang !== undefined) {
          return Deferred.succeed(hang.started, undefined).pipe(
            Effect.andThen(Effect.never),
            Effect.onInterrupt(() => Deferred.succeed(hang.interrupted, undefined))
          )
        }
        return Effect.succeed({})
      })
    )
  return Layer.succeed(CsiPlugin, CsiPlugin.of({
    getPluginInfo: Effect.as(record("GetPluginInfo"), { name: "spiffe.csi.cert-manager.io", vendor_version: "v-test" }),
    getPluginCapabilities: Effect.as(record("GetPluginCapabilities"), {
      capabilities: [{ service: { type: "VOLUME_ACCESSIBILITY_CONSTRAINTS" } }]
    }),
    probe: Effect.andThen(record("Probe"), Effect.map(Ref.get(ready), (value) => ({ ready: value }))),
    nodeGetInfo: Effect.as(record("NodeGetInfo"), { node_id: "node-1" }),
    nodeGetCapabilities: Effect.as(record("NodeGetCapabilities"), {
      capabilities: [{ rpc: { type: "VOLUME_MOUNT_GROUP" } }]
    }),
    nodePublishVolume: volumeCall("NodePublishVolume"),
    nodeUnpublishVolume: volumeCall("NodeUnpublishVolume")
  }))
}

/** Every log line, JSON-formatted, at debug and above. */
const captureLogs = (lines: Array<string>) =>
  Layer.mergeAll(
    Logger.layer([Logger.map(Logger.formatJson, (line) => void lines.push(line))]),
    Layer.succeed(References.MinimumLogLevel, "Debug")
  )

const serverLayer = (
  endpoint: string,
  calls: Ref.Ref<ReadonlyArray<Call>>,
  ready: Ref.Ref<boolean>,
  lines: Array<string>,
  hang?: Hang
) =>
  GrpcServer.layer({ endpoint, shutdownGrace: SHUTDOWN_GRACE }).pipe(
    Layer.provide([recordingPlugin(calls, ready, hang), captureLogs(lines), NodeFileSystem.layer, NodePath.layer])
  )

// Any value works: the tests advance the TestClock past it instead of waiting.
const SHUTDOWN_GRACE = "5 seconds"

class Fixture extends Context.Service<Fixture, {
  readonly client: CsiClient
  readonly calls: Ref.Ref<ReadonlyArray<Call>>
  readonly ready: Ref.Ref<boolean>
  readonly lines: ReadonlyArray<string>
}>()("test/integration/grpc-server/Fixture") {
  static readonly layer = Layer.effect(
    Fixture,
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "csi-grpc-" })
      // `plugin/` does not exist yet: the server creates the socket's directory.
      const socket = `${dir}/plugin/csi.sock`
      const calls = yield* Ref.make<ReadonlyArray<Call>>([])
      const ready = yield* Ref.make(true)
      const lines: Array<string> = []
      yield* Layer.build(serverLayer(`unix://${socket}`, calls, ready, lines))
      const client = yield* makeCsiClient(`unix://${socket}`)
      return { client, calls, ready, lines }
    })
  ).pipe(Layer.provide(NodeFileSystem.layer))
}

const failureOf = <A>(effect: Effect.Effect<A, GrpcCallError>) =>
  Effect.flip(effect).pipe(Effect.map((error) => ({ code: error.code, details: error.details })))

layer(Fixture.layer)("GrpcServer over a unix socket", (it) => {
  it.effect("GetPluginInfo returns the plugin's name and version", () =>
    Effect.gen(function*() {
      const { client } = yield* Fixture
      const info = yield* client.call("Identity", "GetPluginInfo")
      assert.deepStrictEqual(info, { name: "spiffe.csi.cert-manager.io", vendor_version: "v-test", manifest: {} })
    }))

  it.effect("capabilities round-trip with their oneofs and enum names", () =>
    Effect.gen(function*() {
      const { client } = yield* Fixture
      assert.deepStrictEqual(yield* client.call("Identity", "GetPluginCapabilities"), {
        capabilities: [{ service: { type: "VOLUME_ACCESSIBILITY_CONSTRAINTS" }, type: "service" }]
      })
      assert.deepStrictEqual(yield* client.call("Node", "NodeGetCapabilities"), {
        capabilities: [{ rpc: { type: "VOLUME_MOUNT_GROUP" }, type: "rpc" }]
      })
      assert.deepStrictEqual(yield* client.call("Node", "NodeGetInfo"), {
        node_id: "node-1",
        max_volumes_per_node: "0",
        accessible_topology: null
      })
    }))

  it.effect("Probe reports readiness as a BoolValue", () =>
    Effect.gen(function*() {
      const { client, ready } = yield* Fixture
      assert.deepStrictEqual(yield* client.call("Identity", "Probe"), { ready: { value: true } })
      yield* Ref.set(ready, false)
      assert.deepStrictEqual(yield* client.call("Identity", "Probe"), { ready: { value: false } })
      yield* Ref.set(ready, true)
    }))

  it.effect("NodePublishVolume reaches the plugin intact but is logged redacted", () =>
    Effect.gen(function*() {
      const { calls, client, lines } = yield* Fixture
      const response = yield* client.call("Node", "NodePublishVolume", {
        volume_id: "csi-0123",
        target_path: "/var/lib/kubelet/pods/p/volumes/v/mount",
        volume_capability: { mount: { fs_type: "", mount_flags: [], volume_mount_group: "2000" } },
        readonly: true,
        secrets: { key: SECRET },
        volume_context: {
          "csi.storage.k8s.io/ephemeral": "true",
          [TOKENS_KEY]: JSON.stringify({ "": { token: TOKEN } })
        }
      })
      assert.deepStrictEqual(response, {})

      const published = (yield* Ref.get(calls)).filter((call) => call.rpc === "NodePublishVolume")
      const request = published.at(-1)?.request
      assert.isTrue(Predicate.isObject(request))
      assert.strictEqual(volumeIdOf(request), "csi-0123")
      const context = Predicate.hasProperty(request, "volume_context") ? request.volume_context : undefined
      assert.isTrue(Predicate.hasProperty(context, TOKENS_KEY))
      assert.include(String((context as Record<string, unknown>)[TOKENS_KEY]), TOKEN)
      assert.include(JSON.stringify(request), "\"access_type\":\"mount\"")

      const logged = lines.filter((line) => line.includes("csi-0123"))
      assert.isAbove(logged.length, 0, "the publish call is logged at debug")
      assert.isTrue(logged.some((line) => line.includes(REDACTED)))
      for (const line of lines) {
        assert.notInclude(line, TOKEN)
        assert.notInclude(line, SECRET)
      }
    }))

  it.effect("a CsiError keeps its code and detail", () =>
    Effect.gen(function*() {
      const { client } = yield* Fixture
      const failure = yield* failureOf(client.call("Node", "NodePublishVolume", { volume_id: "invalid" }))
      assert.deepStrictEqual(failure, { code: 3, details: "volume_id invalid is not valid" })
      const unpublish = yield* failureOf(client.call("Node", "NodeUnpublishVolume", { volume_id: "invalid" }))
      assert.strictEqual(unpublish.code, 3)
    }))

  it.effect("every call logs its start and its end with the status code and duration, at debug level", () =>
    Effect.gen(function*() {
      const { client, lines } = yield* Fixture
      const from = lines.length
      yield* client.call("Node", "NodeUnpublishVolume", { volume_id: "log-ok", target_path: "/t" })
      yield* failureOf(client.call("Node", "NodePublishVolume", { volume_id: "invalid" }))
      const logged = lines.slice(from).map((line) => JSON.parse(line) as { message: unknown; level: string; annotations: Record<string, unknown> })
      const of = (rpc: string, message: string) =>
        logged.filter((l) => l.annotations["rpc"] === rpc && JSON.stringify(l.message).includes(message))
      for (const rpc of ["NodeUnpublishVolume", "NodePublishVolume"]) {
        assert.strictEqual(of(rpc, "CSI call started").length, 1, rpc)
        const ended = of(rpc, "CSI call ended")
        assert.strictEqual(ended.length, 1, rpc)
        assert.strictEqual(ended[0]!.level, "DEBUG")
      }
      const endOf = (rpc: string) => JSON.stringify(of(rpc, "CSI call ended")[0]!.message)
      assert.include(endOf("NodeUnpublishVolume"), "\"code\":\"OK\"")
      assert.include(endOf("NodePublishVolume"), "\"code\":\"INVALID_ARGUMENT\"")
      assert.match(endOf("NodePublishVolume"), /"durationMillis":\d+/)
    }))

  it.effect("a defect is INTERNAL without its text", () =>
    Effect.gen(function*() {
      const { client, lines } = yield* Fixture
      const failure = yield* failureOf(client.call("Node", "NodePublishVolume", { volume_id: "boom" }))
      assert.deepStrictEqual(failure, { code: 13, details: INTERNAL_DETAIL })
      assert.notInclude(failure.details, "internal/path")
      assert.isTrue(lines.some((line) => line.includes(DEFECT_TEXT)), "the defect is logged on the server side")
    }))

  it.effect("the Node RPCs the driver does not serve are UNIMPLEMENTED", () =>
    Effect.gen(function*() {
      const { client, calls } = yield* Fixture
      const before = (yield* Ref.get(calls)).length
      for (const method of ["NodeStageVolume", "NodeUnstageVolume", "NodeGetVolumeStats", "NodeExpandVolume"]) {
        const failure = yield* failureOf(client.call("Node", method, { volume_id: "v" }))
        assert.strictEqual(failure.code, 12, method)
      }
      const controller = yield* failureOf(client.call("Controller", "ControllerGetCapabilities"))
      assert.strictEqual(controller.code, 12)
      assert.strictEqual((yield* Ref.get(calls)).length, before, "the plugin is never called")
    }))

  it.effect("NodeStageVolume's secrets are redacted in the log too", () =>
    Effect.gen(function*() {
      const { client, lines } = yield* Fixture
      const failure = yield* failureOf(client.call("Node", "NodeStageVolume", {
        volume_id: "stage-1",
        secrets: { key: SECRET }
      }))
      assert.strictEqual(failure.code, 12)
      assert.isTrue(lines.some((line) => line.includes("stage-1")))
      for (const line of lines) assert.notInclude(line, SECRET)
    }))
})

describe("GrpcServer lifecycle", () => {
  it.effect("removes a stale socket before binding and the socket after the scope closes", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "csi-grpc-" })
      const socket = `${dir}/csi.sock`
      yield* fs.writeFileString(socket, "left behind by a crashed driver")
      const calls = yield* Ref.make<ReadonlyArray<Call>>([])
      const ready = yield* Ref.make(true)

      // `unix://` + a path without its leading `/`: the driver makes it absolute again.
      const endpoint = `unix://${socket.slice(1)}`
      yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* Layer.build(serverLayer(endpoint, calls, ready, []))
        assert.deepStrictEqual(Context.get(server, GrpcServer).endpoint, { _tag: "Unix", path: socket })
        assert.strictEqual((yield* fs.stat(socket)).type, "Socket")
        const client = yield* makeCsiClient(`unix://${socket}`)
        const info = yield* client.call("Identity", "GetPluginInfo")
        assert.isTrue(Predicate.hasProperty(info, "name"))
      }))

      assert.isFalse(yield* fs.exists(socket), "the socket file is removed on shutdown")
    }).pipe(Effect.scoped, Effect.provide(NodeFileSystem.layer)))

  it.effect("interrupts a call still running after the shutdown grace", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "csi-grpc-" })
      const socket = `${dir}/csi.sock`
      const calls = yield* Ref.make<ReadonlyArray<Call>>([])
      const ready = yield* Ref.make(true)
      const lines: Array<string> = []
      const hang: Hang = { started: yield* Deferred.make<void>(), interrupted: yield* Deferred.make<void>() }

      const serverScope = yield* Scope.make()
      yield* Layer.buildWithScope(serverLayer(`unix://${socket}`, calls, ready, lines, hang), serverScope)
      const client = yield* makeCsiClient(`unix://${socket}`)
      const call = yield* Effect.forkChild(Effect.flip(client.call("Node", "NodePublishVolume", { volume_id: "hang" })))
      yield* Deferred.await(hang.started)

      const closing = yield* Effect.forkChild(Scope.close(serverScope, Exit.void))
      // The grace timer is registered once the closing fiber reaches tryShutdown; advance the clock
      // until the server has given up waiting (it logs that), never sleeping for real.
      const gaveUp = () => lines.some((line) => line.includes("after the shutdown grace"))
      yield* Effect.andThen(TestClock.adjust(SHUTDOWN_GRACE), Effect.yieldNow).pipe(
        Effect.repeat({ until: gaveUp, times: 1_000 })
      )
      assert.isTrue(gaveUp())
      yield* Fiber.join(closing)

      assert.isTrue(yield* Deferred.isDone(hang.interrupted), "the handler fiber is interrupted")
      const failure = yield* Fiber.join(call)
      assert.notStrictEqual(failure.code, 0)
      assert.isFalse(yield* fs.exists(socket))
    }).pipe(Effect.scoped, Effect.provide(NodeFileSystem.layer)))

  it.effect("fails to start on an endpoint it cannot parse", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make<ReadonlyArray<Call>>([])
      const ready = yield* Ref.make(true)
      const exit = yield* Effect.exit(Effect.scoped(Layer.build(serverLayer("http://localhost:1", calls, ready, []))))
      assert.isTrue(Exit.isFailure(exit))
      const error = yield* Effect.flip(Effect.scoped(Layer.build(serverLayer("/csi/csi.sock", calls, ready, []))))
      assert.strictEqual(error._tag, "GrpcServerError")
    }))
})

/**
 * The kubelet's plugin registration served by the driver: the real registration server on a temp
 * `plugins_registry/`, called by a real grpc-js client the way the kubelet's plugin watcher calls it
 * (GetInfo, then NotifyRegistrationStatus), and what each report does to the state, the logs, the
 * socket and `/readyz`.
 */
import { NodeFileSystem, NodePath } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, FileSystem, Layer, Logger, Option, Predicate, Scope, Stream, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import { spawnSync } from "node:child_process"
import * as HealthServer from "../../src/csi/HealthServer.ts"
import { notReadyReason, Registration, type RegistrationOptions, type RegistrationShape } from "../../src/csi/Registration.ts"
import { registrationLayer } from "../../src/bin/CsiLive.ts"
import { driverOnNode, testConfig } from "../support/DriverStack.ts"
import { makeRegistrationClient } from "../support/grpcClient.ts"

const DRIVER = "spiffe.csi.cert-manager.io"
const HOST_CSI_SOCKET = `/var/lib/kubelet/plugins/${DRIVER}/csi.sock`
const KUBELET_ERROR = "RegisterPlugin error -- plugin registration failed with err: rpc error: code = Unavailable desc = connection refused"

interface LogEntry {
  readonly level: string
  readonly message: string
  readonly fields: unknown
}

/** Every log line as (level, first string, the annotations object after it). */
const capture = (logs: SubscriptionRef.SubscriptionRef<ReadonlyArray<LogEntry>>) =>
  Logger.layer([
    Logger.make(({ logLevel, message }) => {
      const parts = Array.isArray(message) ? message : [message]
      const entry = { level: logLevel, message: String(parts[0]), fields: parts[1] }
      Effect.runSync(SubscriptionRef.update(logs, (all) => [...all, entry]))
    })
  ])

/** Waits until `n` lines with this message were logged; the n-th. */
const logged = (logs: SubscriptionRef.SubscriptionRef<ReadonlyArray<LogEntry>>, message: string, n = 1) =>
  SubscriptionRef.changes(logs).pipe(
    Stream.map((all) => all.filter((e) => e.message === message)),
    Stream.filter((matching) => matching.length >= n),
    Stream.runHead,
    Effect.map((matching) => Option.getOrThrow(matching)[n - 1]!)
  )

interface Started {
  readonly dir: string
  readonly registryDir: string
  readonly registration: RegistrationShape
  readonly logs: SubscriptionRef.SubscriptionRef<ReadonlyArray<LogEntry>>
}

/** A temp kubelet root whose `plugins_registry/` does not exist yet; `prepare` runs before start. */
const start = (prepare: (registryDir: string) => Effect.Effect<void, unknown, FileSystem.FileSystem> = () => Effect.void) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "csi-registration-" })
    const registryDir = `${dir}/plugins_registry`
    yield* Effect.orDie(prepare(registryDir))
    const logs = yield* SubscriptionRef.make<ReadonlyArray<LogEntry>>([])
    const options: RegistrationOptions = { driverName: DRIVER, registryDir, kubeletRegistrationPath: HOST_CSI_SOCKET }
    const context = yield* Layer.build(
      Registration.layer(options).pipe(Layer.provide([capture(logs), NodeFileSystem.layer, NodePath.layer]))
    )
    return { dir, registryDir, registration: Context.get(context, Registration), logs } satisfies Started
  })

const client = (socketPath: string) => makeRegistrationClient(`unix://${socketPath}`)

const notify = (socketPath: string, registered: boolean, error = "") =>
  Effect.flatMap(client(socketPath), (c) => c.call("NotifyRegistrationStatus", { plugin_registered: registered, error }))

const isSocket = (path: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    return yield* fs.stat(path).pipe(Effect.map((info) => info.type === "Socket"), Effect.orElseSucceed(() => false))
  })

const nameOf = (info: unknown): unknown => (Predicate.hasProperty(info, "name") ? info.name : undefined)

const FsLive = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)

describe("plugin registration over a unix socket", () => {
  it.effect("GetInfo answers as node-driver-registrar does, from <registry>/<driver>-reg.sock (created with its directory, mode 0600)", () =>
    Effect.gen(function*() {
      const { registration, registryDir } = yield* start()
      assert.strictEqual(registration.socketPath, `${registryDir}/${DRIVER}-reg.sock`)
      const fs = yield* FileSystem.FileSystem
      const info = yield* fs.stat(registration.socketPath)
      assert.strictEqual(info.type, "Socket")
      assert.strictEqual(info.mode & 0o777, 0o600)
      const c = yield* client(registration.socketPath)
      assert.deepStrictEqual(yield* c.call("GetInfo"), {
        type: "CSIPlugin",
        name: DRIVER,
        endpoint: HOST_CSI_SOCKET,
        supported_versions: ["1.0.0"]
      })
      assert.deepStrictEqual(yield* SubscriptionRef.get(registration.state), { _tag: "Waiting" })
    }).pipe(Effect.provide(FsLive)))

  it.effect("a successful registration is recorded and logged at info", () =>
    Effect.gen(function*() {
      const { logs, registration } = yield* start()
      assert.deepStrictEqual(yield* notify(registration.socketPath, true), {})
      assert.deepStrictEqual(yield* SubscriptionRef.get(registration.state), { _tag: "Registered" })
      const line = yield* logged(logs, "registered with the kubelet")
      assert.strictEqual(line.level, "Info")
      assert.deepStrictEqual(line.fields, { driver: DRIVER, endpoint: HOST_CSI_SOCKET })
    }).pipe(Effect.provide(FsLive)))

  it.effect("a failed registration is logged with the kubelet's message; the socket is withdrawn and offered again after 10 s, 20 s, reset by success", () =>
    Effect.gen(function*() {
      const { logs, registration } = yield* start()
      const socket = registration.socketPath
      const listening = "plugin registration socket listening"
      const again = "offering the plugin registration socket again after a back-off"

      assert.deepStrictEqual(yield* notify(socket, false, KUBELET_ERROR), {})
      assert.deepStrictEqual(yield* SubscriptionRef.get(registration.state), { _tag: "Failed", error: KUBELET_ERROR })
      const error = yield* logged(logs, "the kubelet could not register the plugin")
      assert.strictEqual(error.level, "Error")
      assert.deepStrictEqual(error.fields, { err: KUBELET_ERROR, endpoint: HOST_CSI_SOCKET })
      // Logged once the failed socket's server is closed and its file removed (the kubelet deregisters).
      assert.deepStrictEqual((yield* logged(logs, again, 1)).fields, { afterMillis: 10_000 })
      assert.isFalse(yield* isSocket(socket), "socket withdrawn during the back-off")

      yield* TestClock.adjust("10 seconds")
      yield* logged(logs, listening, 2)
      assert.strictEqual(nameOf(yield* (yield* client(socket)).call("GetInfo")), DRIVER)
      assert.deepStrictEqual(yield* SubscriptionRef.get(registration.state), { _tag: "Failed", error: KUBELET_ERROR }, "failed until the kubelet reports success")

      // A second failure in a row doubles the back-off.
      yield* notify(socket, false, KUBELET_ERROR)
      assert.deepStrictEqual((yield* logged(logs, again, 2)).fields, { afterMillis: 20_000 })
      yield* TestClock.adjust("20 seconds")
      yield* logged(logs, listening, 3)

      // Success resets it.
      yield* notify(socket, true)
      assert.deepStrictEqual(yield* SubscriptionRef.get(registration.state), { _tag: "Registered" })
      yield* notify(socket, false, "again")
      assert.deepStrictEqual((yield* logged(logs, again, 3)).fields, { afterMillis: 10_000 })
    }).pipe(Effect.provide(FsLive)))

  it.effect("closing the scope stops serving and removes the socket", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { registration } = yield* Scope.provide(start(), scope)
      assert.isTrue(yield* isSocket(registration.socketPath))
      yield* Scope.close(scope, Exit.void)
      const fs = yield* FileSystem.FileSystem
      assert.isFalse(yield* fs.exists(registration.socketPath))
      const failure = yield* Effect.flip((yield* client(registration.socketPath)).call("GetInfo"))
      assert.strictEqual(failure.code, 14, "UNAVAILABLE")
    }).pipe(Effect.provide(FsLive)))

  it.effect("a stale socket left by a killed driver is replaced", () =>
    Effect.gen(function*() {
      const socketOf = (registryDir: string) => `${registryDir}/${DRIVER}-reg.sock`
      const { logs, registration } = yield* start((registryDir) =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          yield* fs.makeDirectory(registryDir)
          // A process that listens and exits without closing leaves its socket file behind.
          const r = spawnSync(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(socketOf(registryDir))}, () => process.exit(0))`])
          assert.strictEqual(r.status, 0, String(r.stderr))
          assert.isTrue(yield* isSocket(socketOf(registryDir)), "stale socket in place")
        }))
      assert.deepStrictEqual((yield* logged(logs, "removed a stale plugin registration socket")).fields, { socket: registration.socketPath })
      assert.strictEqual(nameOf(yield* (yield* client(registration.socketPath)).call("GetInfo")), DRIVER)
    }).pipe(Effect.provide(FsLive)))

  it.effect("a file that is not a socket in its place stops start-up and is left alone", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "csi-registration-" })
      const registryDir = `${dir}/plugins_registry`
      const path = `${registryDir}/${DRIVER}-reg.sock`
      yield* fs.makeDirectory(registryDir)
      yield* fs.writeFileString(path, "not a socket")
      const exit = yield* Effect.exit(Layer.build(
        Registration.layer({ driverName: DRIVER, registryDir, kubeletRegistrationPath: HOST_CSI_SOCKET }).pipe(Layer.provide(FsLive))
      ))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
      assert.isTrue(Predicate.hasProperty(error, "error") && Predicate.hasProperty(error.error, "reason") && error.error.reason === "SocketPath", String(exit))
      assert.strictEqual(yield* fs.readFileString(path), "not a socket")
    }).pipe(Effect.provide(FsLive)))
})

describe("plugin registration on a socket path a unix socket cannot have", () => {
  it.effect("more than 107 bytes stops start-up with the reason, creating nothing", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "csi-registration-" })
      const registryDir = `${dir}/${"k".repeat(100)}/plugins_registry`
      const exit = yield* Effect.exit(Layer.build(
        Registration.layer({ driverName: DRIVER, registryDir, kubeletRegistrationPath: HOST_CSI_SOCKET }).pipe(Layer.provide(FsLive))
      ))
      const failure = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
      const error = Predicate.hasProperty(failure, "error") ? failure.error : undefined
      assert.isTrue(Predicate.hasProperty(error, "reason") && error.reason === "SocketPath", String(exit))
      assert.include(String(Predicate.hasProperty(error, "message") ? error.message : ""), "a unix socket path may have at most 107")
      assert.deepStrictEqual(yield* fs.readDirectory(dir), [])
    }).pipe(Effect.provide(FsLive)))
})

describe("plugin registration without a registry directory", () => {
  it.effect("one that cannot be created (the original chart's read-only driver container) is a warning, no socket, and no readiness gate", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "csi-registration-" })
      // A file where the kubelet root should be: mkdir fails (ENOTDIR), as it does (EROFS) on a read-only root.
      yield* fs.writeFileString(`${dir}/kubelet`, "")
      const registryDir = `${dir}/kubelet/plugins_registry`
      const logs = yield* SubscriptionRef.make<ReadonlyArray<LogEntry>>([])
      const context = yield* Layer.build(
        Registration.layer({ driverName: DRIVER, registryDir, kubeletRegistrationPath: HOST_CSI_SOCKET }).pipe(Layer.provide([capture(logs), FsLive]))
      )
      const registration = Context.get(context, Registration)
      const state = yield* SubscriptionRef.get(registration.state)
      assert.strictEqual(state._tag, "Unavailable")
      assert.isUndefined(notReadyReason(state))
      const warning = (yield* SubscriptionRef.get(logs)).find((e) => e.level === "Warn")
      assert.isTrue(warning?.message.startsWith("cannot create the kubelet's plugin registry directory"), String(warning?.message))
      assert.deepStrictEqual(yield* fs.readDirectory(dir), ["kubelet"])
    }).pipe(Effect.provide(FsLive)))
})

describe("registrationLayer (the driver's composition)", () => {
  it.effect("--plugin-registration=false serves nothing and creates no directory", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "csi-registration-" })
      const context = yield* Layer.build(registrationLayer(testConfig({ kubeletRootDir: dir, pluginRegistration: undefined })))
      assert.isTrue(Option.isNone(yield* Effect.provide(Effect.serviceOption(Registration), context)))
      assert.deepStrictEqual(yield* fs.readDirectory(dir), [])
    }).pipe(Effect.provide(FsLive)))

  it.effect("on, it serves <kubelet-root-dir>/plugins_registry/<csi-driver-name>-reg.sock naming --kubelet-registration-path", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "csi-registration-" })
      const config = testConfig({ kubeletRootDir: dir, csiDriverName: "other.example.com", pluginRegistration: { kubeletRegistrationPath: "/host/csi.sock" } })
      const context = yield* Layer.build(registrationLayer(config))
      const { socketPath } = Option.getOrThrow(yield* Effect.provide(Effect.serviceOption(Registration), context))
      assert.strictEqual(socketPath, `${dir}/plugins_registry/other.example.com-reg.sock`)
      const info = yield* (yield* client(socketPath)).call("GetInfo")
      assert.deepStrictEqual(info, { type: "CSIPlugin", name: "other.example.com", endpoint: "/host/csi.sock", supported_versions: ["1.0.0"] })
    }).pipe(Effect.provide(FsLive)))
})

describe("/readyz follows the registration", () => {
  const get = (port: number, path: string) =>
    Effect.promise(async () => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`)
      return { status: res.status, body: await res.text() }
    })

  it.effect("not ready until the kubelet registers the plugin, ready after, not ready with its error after a failure", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "csi-registration-" })
      const config = testConfig({ kubeletRootDir: dir, pluginRegistration: { kubeletRegistrationPath: HOST_CSI_SOCKET } })
      const context = yield* Layer.build(
        HealthServer.layer("127.0.0.1:0").pipe(Layer.provideMerge(registrationLayer(config)), Layer.provideMerge(driverOnNode(config)))
      )
      const { port } = Context.get(context, HealthServer.HealthServer)
      const { socketPath } = Option.getOrThrow(yield* Effect.provide(Effect.serviceOption(Registration), context))

      assert.deepStrictEqual(yield* get(port, "/readyz"), {
        status: 503,
        body: "not ready: waiting for the kubelet to register the plugin (its plugin watcher dials the registration socket)\n"
      })
      assert.deepStrictEqual(yield* get(port, "/healthz"), { status: 200, body: "ok\n" }, "liveness does not depend on registration")
      yield* notify(socketPath, true)
      assert.deepStrictEqual(yield* get(port, "/readyz"), { status: 200, body: "ok\n" })
      yield* notify(socketPath, false, KUBELET_ERROR)
      assert.deepStrictEqual(yield* get(port, "/readyz"), { status: 503, body: `not ready: the kubelet could not register the plugin: ${KUBELET_ERROR}\n` })
    }).pipe(Effect.provide(FsLive)))
})

/**
 * The standard Kubernetes client flags on both binaries: each parsed from a command line and — for
 * the ones that become headers or limits — seen on the wire by a fake API server. How they apply to
 * a kubeconfig (`layers/kube/Overrides.ts`) is tested in `test/unit/layers/kube/Overrides.test.ts`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Redacted, Result } from "effect"
import { TestClock } from "effect/testing"
import type * as http from "node:http"
import { parseApproverArgs } from "../../../src/config/ApproverFlags.ts"
import type { KubeClientFlags } from "../../../src/services/KubeClient.ts"
import { parseRequestTimeout } from "../../../src/config/KubeFlags.ts"
import { noKubeClientFlags } from "../../../src/services/KubeClient.ts"
import { ConfigMaps } from "../../../src/domain/KubeObjects.ts"
import { layer } from "../../../src/layers/KubeClient.ts"
import { parseDriverArgs } from "../../../src/config/DriverFlags.ts"
import { KubeClient } from "../../../src/services/KubeClient.ts"
import { makeFakeApiServer, reply, writeKubeconfig } from "../../support/FakeApiServer.ts"

const DRIVER_REQUIRED = ["--node-id=n", "--endpoint=unix:///csi.sock", "--data-root=d"]

const driverFlags = (...args: ReadonlyArray<string>): KubeClientFlags => {
  const r = parseDriverArgs([...DRIVER_REQUIRED, ...args], "v0")
  if (Result.isFailure(r)) assert.fail(r.failure)
  if (r.success._tag !== "Config") assert.fail("help")
  return r.success.config.kubeClient ?? assert.fail("no kubeClient")
}

const approverFlags = (...args: ReadonlyArray<string>): KubeClientFlags => {
  const r = parseApproverArgs(args)
  if (Result.isFailure(r)) assert.fail(r.failure)
  if (r.success._tag !== "Settings") assert.fail("help")
  return r.success.settings.kubeClient
}

const driverError = (...args: ReadonlyArray<string>): string => {
  const r = parseDriverArgs([...DRIVER_REQUIRED, ...args], "v0")
  return Result.isFailure(r) ? r.failure : assert.fail(`expected an error for ${args.join(" ")}`)
}


describe("client flags: parsed the same on both binaries", () => {
  const argv = [
    "--context=two", "--cluster=c1", "--user=u2", "-s", "https://api.example:6443", "--token=s3cr3t-token",
    "--certificate-authority=/ca.crt", "--client-certificate=/tls.crt", "--client-key=/tls.key", "--insecure-skip-tls-verify",
    "--tls-server-name=api.internal", "--as=jane", "--as-group=devs", "--as-group", "ops", "--as-uid=1234",
    "--request-timeout=1m30s", "-n", "team", "--cache-dir=/tmp/cache", "--disable-compression"
  ]
  const expected: KubeClientFlags = {
    context: "two",
    cluster: "c1",
    user: "u2",
    server: "https://api.example:6443",
    token: Redacted.make("s3cr3t-token"),
    certificateAuthority: "/ca.crt",
    clientCertificate: "/tls.crt",
    clientKey: "/tls.key",
    insecureSkipTlsVerify: true,
    tlsServerName: "api.internal",
    as: "jane",
    asGroups: ["devs", "ops"],
    asUid: "1234",
    asUserExtra: [],
    requestTimeoutMillis: 90_000,
    namespace: "team",
    cacheDir: "/tmp/cache",
    disableCompression: true
  }
  const comparable = (f: KubeClientFlags) => ({ ...f, token: f.token === undefined ? undefined : Redacted.value(f.token) })

  it("driver", () => assert.deepStrictEqual(comparable(driverFlags(...argv)), comparable(expected)))
  it("approver", () => assert.deepStrictEqual(comparable(approverFlags(...argv)), comparable(expected)))
  it("the defaults are no override at all", () => {
    assert.deepStrictEqual(driverFlags(), noKubeClientFlags)
    assert.deepStrictEqual(approverFlags(), noKubeClientFlags)
  })

  it("the token is Redacted: no string form of the settings contains it", () => {
    const flags = driverFlags("--token=s3cr3t-token")
    assert.notInclude(JSON.stringify(flags), "s3cr3t-token")
    assert.notInclude(String(flags.token), "s3cr3t-token")
    assert.strictEqual(Redacted.value(flags.token!), "s3cr3t-token")
  })

  it("--request-timeout is client-go's ParseTimeout: integer seconds or a Go duration, 0 for none", () => {
    assert.deepStrictEqual(parseRequestTimeout("0"), Result.succeed(0))
    assert.deepStrictEqual(parseRequestTimeout("5"), Result.succeed(5_000))
    assert.deepStrictEqual(parseRequestTimeout("2m"), Result.succeed(120_000))
    assert.deepStrictEqual(parseRequestTimeout(".5s"), Result.succeed(500))
    for (const bad of ["soon", "-5", "1d", ""]) assert.include(driverError(`--request-timeout=${bad}`), "--request-timeout")
  })

  it("groups, uid and extras need --as (client-go refuses them without a user)", () => {
    assert.include(driverError("--as-group=devs"), "--as")
    assert.include(driverError("--as-uid=1"), "--as")
    assert.include(driverError("--as=jane", "--as-user-extra=novalue"), "--as-user-extra must be key=value")
  })
})

const emptyList = { kind: "ConfigMapList", apiVersion: "v1", metadata: { resourceVersion: "1" }, items: [] }

describe("client flags: on the wire (fake API server)", () => {
  it.effect("token, impersonation (one header per group) and disabled compression reach the server", () =>
    Effect.gen(function*() {
      const seen: Array<ReadonlyArray<string>> = []
      const server = yield* makeFakeApiServer((_req, res: http.ServerResponse) => {
        seen.push(res.req.rawHeaders)
        reply(res, 200, emptyList)
      })
      const flags = driverFlags("--token=flag-token", "--as=jane", "--as-group=devs", "--as-group=ops", "--as-uid=1234", "--as-user-extra=team=blue", "--disable-compression")
      yield* Effect.gen(function*() {
        const kube = yield* KubeClient
        yield* kube.list(ConfigMaps, { namespace: "x" })
      }).pipe(Effect.provide(layer({ kubeconfig: server.kubeconfig, kubeClientFlags: flags })))
      const raw = seen[0] ?? assert.fail("no request")
      const pairs: Array<[string, string]> = []
      for (let i = 0; i < raw.length; i += 2) pairs.push([raw[i]!.toLowerCase(), raw[i + 1]!])
      const all = (name: string) => pairs.filter(([k]) => k === name).map(([, v]) => v)
      assert.deepStrictEqual(all("authorization"), ["Bearer flag-token"])
      assert.deepStrictEqual(all("impersonate-user"), ["jane"])
      assert.deepStrictEqual(all("impersonate-group"), ["devs", "ops"])
      assert.deepStrictEqual(all("impersonate-uid"), ["1234"])
      assert.deepStrictEqual(all("impersonate-extra-team"), ["blue"])
      assert.deepStrictEqual(all("accept-encoding"), ["identity"])
    }))

  it.effect("--server and --token win over the kubeconfig's server and token", () =>
    Effect.gen(function*() {
      const server = yield* makeFakeApiServer((_req, res) => reply(res, 200, emptyList))
      // A kubeconfig naming a port nothing listens on, with another token.
      const stale = yield* writeKubeconfig("http://127.0.0.1:9", "kubeconfig-token")
      const flags = driverFlags(`--server=${server.url}`, "--token=flag-token")
      const list = yield* Effect.gen(function*() {
        const kube = yield* KubeClient
        return yield* kube.list(ConfigMaps, { namespace: "x" })
      }).pipe(Effect.provide(layer({ kubeconfig: stale, kubeClientFlags: flags })))
      assert.deepStrictEqual(list.items, [])
      assert.strictEqual(server.requests()[0]?.authorization, "Bearer flag-token")
    }))

  it.effect("--request-timeout fails a call that gets no reply in time, as Unavailable", () =>
    Effect.gen(function*() {
      const server = yield* makeFakeApiServer(() => {
        // never answers
      })
      const flags = driverFlags("--request-timeout=5s")
      const fiber = yield* Effect.gen(function*() {
        const kube = yield* KubeClient
        return yield* kube.get(ConfigMaps, "x", "y")
      }).pipe(Effect.provide(layer({ kubeconfig: server.kubeconfig, kubeClientFlags: flags })), Effect.forkChild)
      yield* TestClock.adjust("5 seconds")
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) assert.include(String(exit.cause), "no reply within --request-timeout")
    }))
})

/**
 * The standard Kubernetes client flags on both binaries: each parsed from a command line, applied
 * to a client-node KubeConfig with client-go's precedence (the resulting context, cluster and user
 * fields), and — for the ones that become headers or limits — seen on the wire by a fake API server.
 */
import { assert, describe, it } from "@effect/vitest"
import * as k8s from "@kubernetes/client-node"
import { Effect, Exit, Fiber, Redacted, Result } from "effect"
import { TestClock } from "effect/testing"
import type * as http from "node:http"
import { parseApproverArgs } from "../../../src/config/ApproverFlags.ts"
import type { KubeClientFlags } from "../../../src/services/KubeClient.ts"
import { parseRequestTimeout } from "../../../src/config/KubeFlags.ts"
import { noKubeClientFlags } from "../../../src/services/KubeClient.ts"
import { ConfigMaps } from "../../../src/domain/KubeObjects.ts"
import { layer } from "../../../src/layers/KubeClient.ts"
import { applyKubeClientFlags } from "../../../src/layers/kube/Overrides.ts"
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

/** Two of everything, current context "one". */
const base = (): k8s.KubeConfig => {
  const kc = new k8s.KubeConfig()
  kc.loadFromOptions({
    clusters: [
      { name: "c1", server: "https://one.example:6443", caData: "Q0Ex", tlsServerName: "kubernetes", skipTLSVerify: false },
      { name: "c2", server: "https://two.example:6443", caFile: "/etc/two-ca.crt", skipTLSVerify: false }
    ],
    users: [
      { name: "u1", token: "kubeconfig-token" },
      { name: "u2", certData: "Q0VSVA==", keyData: "S0VZ" }
    ],
    contexts: [
      { name: "one", cluster: "c1", user: "u1" },
      { name: "two", cluster: "c2", user: "u2", namespace: "two-ns" }
    ],
    currentContext: "one"
  })
  return kc
}

const apply = (flags: KubeClientFlags, source: "kubeconfig" | "in-cluster" = "kubeconfig"): k8s.KubeConfig => {
  const r = applyKubeClientFlags(base(), flags, source)
  if (Result.isFailure(r)) assert.fail(r.failure)
  return r.success
}

const current = (kc: k8s.KubeConfig) => ({
  context: kc.getContextObject(kc.getCurrentContext()),
  cluster: kc.getCurrentCluster(),
  user: kc.getCurrentUser()
})

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

describe("client flags: applied to a kubeconfig", () => {
  it("no flags leave the current context, cluster and user as they are", () => {
    const { cluster, context, user } = current(apply(noKubeClientFlags))
    assert.strictEqual(context?.name, "one")
    assert.deepStrictEqual(cluster, base().getCurrentCluster())
    assert.deepStrictEqual(user, base().getCurrentUser())
  })

  it("--context picks another context; an unknown one is an error", () => {
    const { cluster, context, user } = current(apply({ ...noKubeClientFlags, context: "two" }))
    assert.strictEqual(context?.name, "two")
    assert.strictEqual(cluster?.server, "https://two.example:6443")
    assert.strictEqual(user?.name, "u2")
    assert.deepStrictEqual(applyKubeClientFlags(base(), { ...noKubeClientFlags, context: "nope" }, "kubeconfig"), Result.fail("--context: context \"nope\" does not exist"))
  })

  it("--cluster and --user replace the context's; unknown names are errors", () => {
    const { cluster, user } = current(apply({ ...noKubeClientFlags, cluster: "c2", user: "u2" }))
    assert.strictEqual(cluster?.name, "c2")
    assert.strictEqual(user?.name, "u2")
    assert.isTrue(Result.isFailure(applyKubeClientFlags(base(), { ...noKubeClientFlags, cluster: "nope" }, "kubeconfig")))
    assert.isTrue(Result.isFailure(applyKubeClientFlags(base(), { ...noKubeClientFlags, user: "nope" }, "kubeconfig")))
  })

  it("--server replaces the server and clears the kubeconfig's tls-server-name; --tls-server-name sets it", () => {
    const { cluster } = current(apply({ ...noKubeClientFlags, server: "https://api.example:6443" }))
    assert.strictEqual(cluster?.server, "https://api.example:6443")
    assert.isUndefined(cluster?.tlsServerName)
    assert.strictEqual(current(apply({ ...noKubeClientFlags, tlsServerName: "api.internal" })).cluster?.tlsServerName, "api.internal")
    const both = current(apply({ ...noKubeClientFlags, server: "https://x:1", tlsServerName: "api.internal" })).cluster
    assert.strictEqual(both?.tlsServerName, "api.internal")
  })

  it("--certificate-authority replaces inline CA data; --insecure-skip-tls-verify clears the CA", () => {
    const ca = current(apply({ ...noKubeClientFlags, certificateAuthority: "/ca.crt" })).cluster
    assert.strictEqual(ca?.caFile, "/ca.crt")
    assert.isUndefined(ca?.caData)
    assert.isFalse(ca?.skipTLSVerify)
    const insecure = current(apply({ ...noKubeClientFlags, insecureSkipTlsVerify: true })).cluster
    assert.isTrue(insecure?.skipTLSVerify)
    assert.isUndefined(insecure?.caData)
    assert.isUndefined(insecure?.caFile)
  })

  it("--token, --client-certificate and --client-key replace the user's credentials", () => {
    const { user } = current(apply({ ...noKubeClientFlags, user: "u2", token: Redacted.make("t"), clientCertificate: "/tls.crt", clientKey: "/tls.key" }))
    assert.strictEqual(user?.token, "t")
    assert.strictEqual(user?.certFile, "/tls.crt")
    assert.strictEqual(user?.keyFile, "/tls.key")
    assert.isUndefined(user?.certData)
    assert.isUndefined(user?.keyData)
  })

  it("--as is client-node's impersonateUser; --namespace the context's namespace", () => {
    const { context, user } = current(apply({ ...noKubeClientFlags, as: "jane", namespace: "team" }))
    assert.strictEqual(user?.impersonateUser, "jane")
    assert.strictEqual(context?.namespace, "team")
  })

  it("in a pod only --server, --token and --certificate-authority apply, as client-go's in-cluster config", () => {
    const { cluster, context, user } = current(apply({
      ...noKubeClientFlags,
      context: "two",
      server: "https://api.example:6443",
      token: Redacted.make("t"),
      certificateAuthority: "/ca.crt",
      insecureSkipTlsVerify: true,
      tlsServerName: "ignored",
      as: "ignored",
      clientCertificate: "/ignored"
    }, "in-cluster"))
    assert.strictEqual(context?.name, "one")
    assert.strictEqual(cluster?.server, "https://api.example:6443")
    assert.strictEqual(cluster?.caFile, "/ca.crt")
    assert.isFalse(cluster?.skipTLSVerify)
    assert.strictEqual(cluster?.tlsServerName, "kubernetes")
    assert.strictEqual(user?.token, "t")
    assert.isUndefined(user?.impersonateUser)
    assert.isUndefined(user?.certFile)
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

/**
 * The KubeClient implementations: a contract suite for the memory API server (every verb, watch
 * semantics, test hooks) and the live client against a minimal fake API server over HTTP
 * (credentials per call, status mapping, decoding, chunked watch streams, abort on interruption).
 */
import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { Cause, Deferred, Duration, Effect, Fiber, Logger, Redacted, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { CertificateRequest } from "../../../src/domain/CertificateRequest.ts"
import { CertificateRequests, ConfigMaps, Leases } from "../../../src/domain/KubeObjects.ts"
import { KubeClientMemory, layer, layerMemory } from "../../../src/layers/KubeClient.ts"
import * as Logging from "../../../src/layers/Logging.ts"
import { KubeClient } from "../../../src/services/KubeClient.ts"
import type { KubeError, WatchEvent } from "../../../src/services/KubeClient.ts"
import { makeFakeApiServer, reply, status, writeKubeconfig } from "../../support/FakeApiServer.ts"
import type { FakeApiServer, Handler } from "../../support/FakeApiServer.ts"

const NS = "app"

const crBody = (name: string, labels?: Record<string, string>, namespace = NS) => ({
  apiVersion: "cert-manager.io/v1",
  kind: "CertificateRequest",
  metadata: { name, namespace, ...(labels === undefined ? {} : { labels }) },
  spec: { request: "Q1NSLVBFTQ==", issuerRef: { name: "ca", kind: "ClusterIssuer", group: "cert-manager.io" } }
})

const summary = (events: ReadonlyArray<WatchEvent<CertificateRequest>>): ReadonlyArray<string> =>
  events.map((e) => (e.type === "BOOKMARK" ? `BOOKMARK ${e.resourceVersion}` : `${e.type} ${e.object.metadata.name}`))

const failed = <A, R>(effect: Effect.Effect<A, KubeError, R>) => Effect.flip(effect)

/** The lines `effect` logs in klog text and in Kubernetes JSON, as the binaries write them. */
const logged = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    for (const format of ["text", "json"] as const) {
      yield* effect.pipe(Effect.provide(Logger.layer([Logger.map(Logging.make(format, 1), (line) => void lines.push(line))])))
    }
    return lines
  })

describe("layerMemory", () => {
  const memory = <A, E>(effect: Effect.Effect<A, E, KubeClient | KubeClientMemory>) =>
    effect.pipe(Effect.provide(layerMemory))

  it.effect("create assigns uid, creationTimestamp from the Clock and a resourceVersion; get reads it back", () =>
    memory(Effect.gen(function*() {
      yield* TestClock.setTime(Date.UTC(2030, 0, 2, 3, 4, 5, 678))
      const kube = yield* KubeClient
      const created = yield* kube.create(CertificateRequests, NS, crBody("a"))
      assert.strictEqual(created.metadata.creationTimestamp, "2030-01-02T03:04:05Z")
      assert.strictEqual(created.metadata.resourceVersion, "1")
      assert.isString(created.metadata.uid)
      assert.strictEqual(created.metadata.namespace, NS)
      assert.deepStrictEqual(yield* kube.get(CertificateRequests, NS, "a"), created)
      assert.isUndefined(yield* kube.get(CertificateRequests, NS, "missing"))
      assert.isUndefined(yield* kube.get(CertificateRequests, "other", "a"))
      const second = yield* kube.create(CertificateRequests, NS, crBody("b"))
      assert.notStrictEqual(second.metadata.uid, created.metadata.uid)
      assert.strictEqual(second.metadata.resourceVersion, "2")
    })))

  it.effect("create of an existing name fails with AlreadyExists (409); bad bodies with Invalid", () =>
    memory(Effect.gen(function*() {
      const kube = yield* KubeClient
      yield* kube.create(CertificateRequests, NS, crBody("a"))
      const dup = yield* failed(kube.create(CertificateRequests, NS, crBody("a")))
      assert.strictEqual(dup.reason, "AlreadyExists")
      assert.strictEqual(dup.status, 409)
      assert.strictEqual(dup.operation, "KubeClient.create")
      assert.strictEqual((yield* failed(kube.create(CertificateRequests, "elsewhere", crBody("b")))).reason, "Invalid")
      const withRv = { ...crBody("c"), metadata: { name: "c", resourceVersion: "1" } }
      // kube-apiserver refuses it with a 500 (its storage layer), which the live client reads as Unavailable.
      assert.strictEqual((yield* failed(kube.create(CertificateRequests, NS, withRv))).reason, "Unavailable")
      assert.strictEqual((yield* failed(kube.create(CertificateRequests, NS, { metadata: {} }))).reason, "Invalid")
      // Same name in another namespace is another object.
      yield* kube.create(CertificateRequests, "other", crBody("a", undefined, "other"))
    })))

  it.effect("records the bearer token each create used, Redacted", () =>
    memory(Effect.gen(function*() {
      const kube = yield* KubeClient
      const hooks = yield* KubeClientMemory
      const token = Redacted.make("pod-token")
      yield* kube.create(CertificateRequests, NS, crBody("as-pod"), { bearerToken: token })
      yield* kube.create(CertificateRequests, NS, crBody("as-self"))
      const asPod = yield* hooks.createdWith(CertificateRequests, NS, "as-pod")
      assert.isDefined(asPod?.bearerToken)
      assert.strictEqual(Redacted.value(asPod!.bearerToken!), "pod-token")
      assert.notInclude(String(asPod!.bearerToken), "pod-token")
      assert.isUndefined((yield* hooks.createdWith(CertificateRequests, NS, "as-self"))?.bearerToken)
      assert.isUndefined(yield* hooks.createdWith(CertificateRequests, NS, "never"))
      assert.deepStrictEqual((yield* hooks.creations).map((c) => `${c.resource} ${c.namespace}/${c.name}`), [
        "certificaterequests.cert-manager.io app/as-pod",
        "certificaterequests.cert-manager.io app/as-self"
      ])
    })))

  it.effect("list filters by namespace, label and field selectors and returns the current resourceVersion", () =>
    memory(Effect.gen(function*() {
      const kube = yield* KubeClient
      yield* kube.create(CertificateRequests, NS, crBody("a", { node: "n1", team: "x" }))
      yield* kube.create(CertificateRequests, NS, crBody("b", { node: "n2" }))
      yield* kube.create(CertificateRequests, NS, crBody("c"))
      yield* kube.create(CertificateRequests, "other", crBody("d", { node: "n1" }, "other"))
      yield* kube.create(ConfigMaps, NS, { metadata: { name: "not-a-cr" }, data: {} })
      const names = (labelSelector?: string, namespace?: string, fieldSelector?: string) =>
        kube.list(CertificateRequests, {
          ...(namespace === undefined ? {} : { namespace }),
          ...(labelSelector === undefined ? {} : { labelSelector }),
          ...(fieldSelector === undefined ? {} : { fieldSelector })
        }).pipe(Effect.map((r) => r.items.map((i) => i.metadata.name)))
      assert.deepStrictEqual(yield* names(), ["a", "b", "c", "d"])
      assert.deepStrictEqual(yield* names(undefined, NS), ["a", "b", "c"])
      assert.deepStrictEqual(yield* names("node=n1"), ["a", "d"])
      assert.deepStrictEqual(yield* names("node==n1", NS), ["a"])
      assert.deepStrictEqual(yield* names("node!=n1"), ["b", "c"])
      assert.deepStrictEqual(yield* names("node"), ["a", "b", "d"])
      assert.deepStrictEqual(yield* names("!node"), ["c"])
      assert.deepStrictEqual(yield* names("node=n1,team=x"), ["a"])
      assert.deepStrictEqual(yield* names(undefined, undefined, "metadata.name=b"), ["b"])
      assert.deepStrictEqual(yield* names(undefined, undefined, "metadata.namespace!=app"), ["d"])
      const listed = yield* kube.list(CertificateRequests, {})
      assert.strictEqual(listed.resourceVersion, "5")
      const bad = yield* failed(kube.list(CertificateRequests, { labelSelector: "node in (n1,n2)" }))
      assert.strictEqual(bad.reason, "Invalid")
      assert.strictEqual((yield* failed(kube.list(CertificateRequests, { fieldSelector: "spec.x=y" }))).reason, "Invalid")
    })))

  it.effect("replace needs the current resourceVersion and keeps status; replaceStatus changes only status", () =>
    memory(Effect.gen(function*() {
      const kube = yield* KubeClient
      const created = yield* kube.create(CertificateRequests, NS, crBody("a"))
      const stale = yield* failed(kube.replaceStatus(CertificateRequests, NS, "a", {
        ...created,
        metadata: { ...created.metadata, resourceVersion: "999" },
        status: { conditions: [{ type: "Approved", status: "True" }] }
      }))
      assert.strictEqual(stale.reason, "Conflict")
      assert.strictEqual(stale.status, 409)
      const approved = yield* kube.replaceStatus(CertificateRequests, NS, "a", {
        ...created,
        metadata: { ...created.metadata, labels: { ignored: "yes" } },
        spec: { ...created.spec, duration: "1h" },
        status: { conditions: [{ type: "Approved", status: "True", reason: "r" }] }
      })
      assert.deepStrictEqual(approved.status?.conditions?.map((c) => c.type), ["Approved"])
      assert.isUndefined(approved.metadata.labels)
      assert.isUndefined(approved.spec.duration)
      assert.strictEqual(approved.metadata.resourceVersion, "2")
      // replace with the now stale resourceVersion of `created`.
      assert.strictEqual((yield* failed(kube.replace(CertificateRequests, NS, "a", created))).reason, "Conflict")
      const relabelled = yield* kube.replace(CertificateRequests, NS, "a", {
        ...approved,
        metadata: { ...approved.metadata, labels: { x: "y" } },
        status: { conditions: [] }
      })
      assert.deepStrictEqual(relabelled.metadata.labels, { x: "y" })
      assert.deepStrictEqual(relabelled.status?.conditions?.map((c) => c.type), ["Approved"])
      assert.strictEqual(relabelled.metadata.uid, created.metadata.uid)
      assert.strictEqual(relabelled.metadata.creationTimestamp, created.metadata.creationTimestamp)
      const noRv = { ...relabelled, metadata: { name: "a", namespace: NS } }
      assert.strictEqual((yield* failed(kube.replace(CertificateRequests, NS, "a", noRv))).reason, "Invalid")
      assert.strictEqual((yield* failed(kube.replaceStatus(CertificateRequests, NS, "gone", relabelled))).reason, "Invalid")
      const missing = yield* failed(kube.replace(CertificateRequests, NS, "missing", { ...relabelled, metadata: { name: "missing" } }))
      assert.strictEqual(missing.reason, "NotFound")
      assert.strictEqual(missing.status, 404)
    })))

  it.effect("delete removes the object and emits DELETED; deleting a missing object succeeds", () =>
    memory(Effect.gen(function*() {
      const kube = yield* KubeClient
      yield* kube.create(CertificateRequests, NS, crBody("a"))
      const { resourceVersion } = yield* kube.list(CertificateRequests, {})
      yield* kube.delete(CertificateRequests, NS, "a")
      yield* kube.delete(CertificateRequests, NS, "a")
      assert.isUndefined(yield* kube.get(CertificateRequests, NS, "a"))
      const events = yield* Stream.runCollect(Stream.take(kube.watch(CertificateRequests, { resourceVersion }), 1))
      assert.deepStrictEqual(summary(events), ["DELETED a"])
      assert.strictEqual(events[0]?.type === "DELETED" ? events[0].object.metadata.resourceVersion : "", "2")
    })))

  it.effect("watch delivers history after the resourceVersion, then live events, in order", () =>
    memory(Effect.gen(function*() {
      const kube = yield* KubeClient
      yield* kube.create(CertificateRequests, NS, crBody("before"))
      const { resourceVersion } = yield* kube.list(CertificateRequests, {})
      const a = yield* kube.create(CertificateRequests, NS, crBody("a"))
      const seen = yield* Deferred.make<void>()
      const fiber = yield* kube.watch(CertificateRequests, { resourceVersion }).pipe(
        Stream.tap(() => Deferred.succeed(seen, undefined)),
        Stream.take(4),
        Stream.runCollect,
        Effect.forkChild
      )
      yield* Deferred.await(seen)
      yield* kube.create(ConfigMaps, NS, { metadata: { name: "other-kind" } })
      yield* kube.replaceStatus(CertificateRequests, NS, "a", { ...a, status: { conditions: [] } })
      yield* kube.create(CertificateRequests, NS, crBody("b"))
      yield* kube.delete(CertificateRequests, NS, "a")
      const events = yield* Fiber.join(fiber)
      assert.deepStrictEqual(summary(events), ["ADDED a", "MODIFIED a", "ADDED b", "DELETED a"])
      const rvs = events.map((e) => (e.type === "BOOKMARK" ? "" : e.object.metadata.resourceVersion))
      assert.deepStrictEqual(rvs, ["2", "4", "5", "6"])
      // Resuming from the second event's resourceVersion replays exactly what came after it.
      const resumed = yield* Stream.runCollect(Stream.take(kube.watch(CertificateRequests, { resourceVersion: "4" }), 2))
      assert.deepStrictEqual(summary(resumed), ["ADDED b", "DELETED a"])
    })))

  it.effect("two watchers each see every event; a watcher started at the list's resourceVersion loses nothing", () =>
    memory(Effect.gen(function*() {
      const kube = yield* KubeClient
      const { resourceVersion } = yield* kube.list(CertificateRequests, {})
      const watchers = yield* Effect.forEach([1, 2], () =>
        kube.watch(CertificateRequests, { resourceVersion }).pipe(Stream.take(3), Stream.runCollect, Effect.forkChild))
      yield* Effect.forEach(["x", "y", "z"], (n) => kube.create(CertificateRequests, NS, crBody(n)))
      for (const w of watchers) assert.deepStrictEqual(summary(yield* Fiber.join(w)), ["ADDED x", "ADDED y", "ADDED z"])
    })))

  it.effect("a watch with a label selector sees objects enter and leave the selection as ADDED and DELETED", () =>
    memory(Effect.gen(function*() {
      const kube = yield* KubeClient
      const hooks = yield* KubeClientMemory
      const resourceVersion = yield* hooks.resourceVersion
      yield* kube.create(CertificateRequests, NS, crBody("in", { node: "n1" }))
      const out = yield* kube.create(CertificateRequests, NS, crBody("out", { node: "n2" }))
      const moved = yield* kube.replace(CertificateRequests, NS, "out", { ...out, metadata: { ...out.metadata, labels: { node: "n1" } } })
      yield* kube.replace(CertificateRequests, NS, "out", { ...moved, metadata: { ...moved.metadata, labels: {} } })
      yield* kube.create(CertificateRequests, "other", crBody("elsewhere", { node: "n1" }, "other"))
      const events = yield* Stream.runCollect(
        Stream.take(kube.watch(CertificateRequests, { resourceVersion, namespace: NS, labelSelector: "node=n1" }), 3)
      )
      assert.deepStrictEqual(summary(events), ["ADDED in", "ADDED out", "DELETED out"])
    })))

  it.effect("a watch from before expired history fails with Gone; from the current resourceVersion it works", () =>
    memory(Effect.gen(function*() {
      const kube = yield* KubeClient
      const hooks = yield* KubeClientMemory
      yield* kube.create(CertificateRequests, NS, crBody("a"))
      yield* hooks.expireHistory
      const gone = yield* failed(Stream.runCollect(kube.watch(CertificateRequests, { resourceVersion: "0" })))
      assert.strictEqual(gone.reason, "Gone")
      assert.strictEqual(gone.status, 410)
      const { resourceVersion } = yield* kube.list(CertificateRequests, {})
      const fiber = yield* kube.watch(CertificateRequests, { resourceVersion }).pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
      yield* kube.create(CertificateRequests, NS, crBody("b"))
      assert.deepStrictEqual(summary(yield* Fiber.join(fiber)), ["ADDED b"])
      assert.strictEqual((yield* failed(Stream.runCollect(kube.watch(CertificateRequests, { resourceVersion: "x" })))).reason, "Invalid")
    })))

  it.effect("dropWatches ends open watch streams normally, after what they already received", () =>
    memory(Effect.gen(function*() {
      const kube = yield* KubeClient
      const hooks = yield* KubeClientMemory
      const { resourceVersion } = yield* kube.list(CertificateRequests, {})
      const first = yield* Deferred.make<void>()
      const fiber = yield* kube.watch(CertificateRequests, { resourceVersion }).pipe(
        Stream.tap(() => Deferred.succeed(first, undefined)),
        Stream.runCollect,
        Effect.forkChild
      )
      yield* kube.create(CertificateRequests, NS, crBody("a"))
      yield* Deferred.await(first)
      yield* hooks.dropWatches
      assert.deepStrictEqual(summary(yield* Fiber.join(fiber)), ["ADDED a"])
      // A watch opened afterwards is not affected.
      const later = yield* kube.watch(CertificateRequests, { resourceVersion }).pipe(Stream.take(2), Stream.runCollect, Effect.forkChild)
      yield* kube.create(CertificateRequests, NS, crBody("b"))
      assert.deepStrictEqual(summary(yield* Fiber.join(later)), ["ADDED a", "ADDED b"])
    })))

  it.effect("failNext injects failures for the next N calls of one verb", () =>
    memory(Effect.gen(function*() {
      const kube = yield* KubeClient
      const hooks = yield* KubeClientMemory
      const created = yield* kube.create(CertificateRequests, NS, crBody("a"))
      yield* hooks.failNext("replaceStatus", "Conflict", 2)
      yield* hooks.failNext("watch", "Unavailable")
      const body = { ...created, status: { conditions: [] } }
      assert.strictEqual((yield* failed(kube.replaceStatus(CertificateRequests, NS, "a", body))).reason, "Conflict")
      assert.isDefined(yield* kube.get(CertificateRequests, NS, "a"))
      assert.strictEqual((yield* failed(kube.replaceStatus(CertificateRequests, NS, "a", body))).reason, "Conflict")
      yield* kube.replaceStatus(CertificateRequests, NS, "a", body)
      const unavailable = yield* failed(Stream.runCollect(kube.watch(CertificateRequests, { resourceVersion: "0" })))
      assert.strictEqual(unavailable.reason, "Unavailable")
      assert.strictEqual(unavailable.status, 503)
      assert.deepStrictEqual(summary(yield* Stream.runCollect(Stream.take(kube.watch(CertificateRequests, { resourceVersion: "0" }), 1))), [
        "ADDED a"
      ])
    })))

  it.effect("upsert and modify act as an administrator: no resourceVersion check, status included, events emitted", () =>
    memory(Effect.gen(function*() {
      const kube = yield* KubeClient
      const hooks = yield* KubeClientMemory
      const created = yield* kube.create(CertificateRequests, NS, crBody("a"))
      const resourceVersion = created.metadata.resourceVersion ?? ""
      const issued = yield* hooks.modify(CertificateRequests, NS, "a", (cr) => ({
        ...cr,
        status: { conditions: [{ type: "Ready", status: "True", reason: "Issued" }], certificate: "Q0VSVA==" }
      }))
      assert.strictEqual(issued.status?.certificate, "Q0VSVA==")
      assert.strictEqual(issued.metadata.uid, created.metadata.uid)
      const lease = yield* hooks.upsert(Leases, { metadata: { name: "leader", namespace: NS }, spec: { holderIdentity: "me" } })
      assert.strictEqual(lease.spec?.holderIdentity, "me")
      assert.deepStrictEqual((yield* hooks.all(CertificateRequests)).map((c) => c.status?.certificate), ["Q0VSVA=="])
      const events = yield* Stream.runCollect(Stream.take(kube.watch(CertificateRequests, { resourceVersion }), 1))
      assert.deepStrictEqual(summary(events), ["MODIFIED a"])
      assert.strictEqual((yield* failed(hooks.modify(CertificateRequests, NS, "none", (cr) => cr))).reason, "NotFound")
    })))

  it.effect("objects that do not decode with the Resource's schema fail with Decode, naming paths, not values", () =>
    memory(Effect.gen(function*() {
      const hooks = yield* KubeClientMemory
      const kube = yield* KubeClient
      const bad = yield* failed(hooks.upsert(CertificateRequests, {
        metadata: { name: "bad", namespace: NS },
        spec: { request: 12345, issuerRef: { name: "SECRET-VALUE" } }
      }))
      assert.strictEqual(bad.reason, "Decode")
      assert.include(bad.detail, "spec.request")
      assert.notInclude(bad.detail, "12345")
      assert.notInclude(bad.detail, "SECRET-VALUE")
      assert.strictEqual((yield* failed(kube.get(CertificateRequests, NS, "bad"))).reason, "Decode")
    })))
})

describe("layer (live, against a fake API server)", () => {
  const withServer = <A, E>(handler: Handler, body: (server: FakeApiServer) => Effect.Effect<A, E, KubeClient>) =>
    Effect.gen(function*() {
      const server = yield* makeFakeApiServer(handler)
      return yield* body(server).pipe(Effect.provide(layer({ kubeconfig: server.kubeconfig })))
    })

  const crJson = (name: string, rv = "7") => ({
    ...crBody(name),
    metadata: { name, namespace: NS, uid: `uid-${name}`, resourceVersion: rv, creationTimestamp: "2030-01-01T00:00:00Z" }
  })

  it.effect("get decodes the object, uses the kubeconfig's token and the group path; 404 is undefined", () =>
    withServer((req, res) => {
      if (req.path.endsWith("/a")) reply(res, 200, crJson("a"))
      else reply(res, 404, status(404, "NotFound", "certificaterequests.cert-manager.io \"b\" not found"))
    }, (server) =>
      Effect.gen(function*() {
        const kube = yield* KubeClient
        const a = yield* kube.get(CertificateRequests, NS, "a")
        assert.strictEqual(a?.metadata.uid, "uid-a")
        assert.isUndefined(yield* kube.get(CertificateRequests, NS, "b"))
        const [first] = server.requests()
        assert.strictEqual(first?.method, "GET")
        assert.strictEqual(first?.path, "/apis/cert-manager.io/v1/namespaces/app/certificaterequests/a")
        assert.strictEqual(first?.authorization, "Bearer driver-sa-token")
      })))

  it.effect("create with a bearer token authenticates as that token only; other calls use the kubeconfig's", () =>
    withServer((req, res) => {
      if (req.method === "POST") reply(res, 201, { ...(req.body as object), metadata: { ...crJson("a").metadata } })
      else reply(res, 200, crJson("a"))
    }, (server) =>
      Effect.gen(function*() {
        const kube = yield* KubeClient
        const created = yield* kube.create(CertificateRequests, NS, crBody("a"), { bearerToken: Redacted.make("pod-token") })
        assert.strictEqual(created.metadata.uid, "uid-a")
        yield* kube.create(CertificateRequests, NS, crBody("a"))
        yield* kube.get(CertificateRequests, NS, "a")
        assert.deepStrictEqual(server.requests().map((r) => `${r.method} ${r.authorization}`), [
          "POST Bearer pod-token",
          "POST Bearer driver-sa-token",
          "GET Bearer driver-sa-token"
        ])
        const [post] = server.requests()
        assert.strictEqual(post?.path, "/apis/cert-manager.io/v1/namespaces/app/certificaterequests")
        assert.deepStrictEqual(post?.body, crBody("a"))
      })))

  it.effect("maps statuses: 409 on create → AlreadyExists, on update → Conflict; 401, 403, 422, 500", () =>
    withServer((req, res) => {
      if (req.path.endsWith("/forbidden")) reply(res, 403, status(403, "Forbidden", "no"))
      else if (req.path.endsWith("/unauthorized")) reply(res, 401, status(401, "Unauthorized", "Unauthorized"))
      else if (req.path.endsWith("/invalid")) reply(res, 422, status(422, "Invalid", "spec.request: Required value"))
      else if (req.path.endsWith("/broken")) reply(res, 500, "not a status")
      else reply(res, 409, status(409, req.method === "POST" ? "AlreadyExists" : "Conflict", "the object has been modified"))
    }, (server) =>
      Effect.gen(function*() {
        const kube = yield* KubeClient
        const exists = yield* failed(kube.create(CertificateRequests, NS, crBody("a")))
        assert.strictEqual(exists.reason, "AlreadyExists")
        assert.strictEqual(exists.status, 409)
        assert.strictEqual(exists.detail, "the object has been modified")
        const conflict = yield* failed(kube.replaceStatus(CertificateRequests, NS, "a", crJson("a")))
        assert.strictEqual(conflict.reason, "Conflict")
        assert.strictEqual(conflict.operation, "KubeClient.replaceStatus")
        assert.strictEqual(server.requests().at(-1)?.path, "/apis/cert-manager.io/v1/namespaces/app/certificaterequests/a/status")
        assert.strictEqual(server.requests().at(-1)?.method, "PUT")
        assert.strictEqual((yield* failed(kube.replace(CertificateRequests, NS, "a", crJson("a")))).reason, "Conflict")
        assert.strictEqual((yield* failed(kube.get(CertificateRequests, NS, "forbidden"))).reason, "Forbidden")
        assert.strictEqual((yield* failed(kube.get(CertificateRequests, NS, "unauthorized"))).reason, "Unauthorized")
        assert.strictEqual((yield* failed(kube.get(CertificateRequests, NS, "invalid"))).reason, "Invalid")
        const broken = yield* failed(kube.get(CertificateRequests, NS, "broken"))
        assert.strictEqual(broken.reason, "Unavailable")
        assert.strictEqual(broken.detail, "HTTP 500")
      })))

  it.effect("delete succeeds on 200 and on 404", () =>
    withServer((req, res) => {
      if (req.path.endsWith("/a")) reply(res, 200, status(200, "", ""))
      else reply(res, 404, status(404, "NotFound", "not found"))
    }, (server) =>
      Effect.gen(function*() {
        const kube = yield* KubeClient
        yield* kube.delete(CertificateRequests, NS, "a")
        yield* kube.delete(CertificateRequests, NS, "b")
        assert.deepStrictEqual(server.requests().map((r) => r.method), ["DELETE", "DELETE"])
      })))

  it.effect("a response that does not match the schema fails with Decode, without the body", () =>
    withServer((_req, res) => reply(res, 200, { metadata: { name: "a", namespace: NS }, spec: { request: 42, issuerRef: { name: "SECRET" } } }), () =>
      Effect.gen(function*() {
        const kube = yield* KubeClient
        const error = yield* failed(kube.get(CertificateRequests, NS, "a"))
        assert.strictEqual(error.reason, "Decode")
        assert.include(error.detail, "spec.request")
        assert.notInclude(error.detail, "42")
        assert.notInclude(error.detail, "SECRET")
      })))

  it.effect("list uses the core path for core kinds, passes selectors and returns items with the list's resourceVersion", () =>
    withServer((_req, res) =>
      reply(res, 200, {
        kind: "ConfigMapList",
        apiVersion: "v1",
        metadata: { resourceVersion: "42" },
        items: [{ metadata: { name: "c", namespace: NS, resourceVersion: "40" }, data: { k: "v" } }]
      }), (server) =>
      Effect.gen(function*() {
        const kube = yield* KubeClient
        const listed = yield* kube.list(ConfigMaps, { namespace: NS, labelSelector: "a=b", fieldSelector: "metadata.name=c" })
        assert.strictEqual(listed.resourceVersion, "42")
        assert.deepStrictEqual(listed.items.map((i) => i.data), [{ k: "v" }])
        const [req] = server.requests()
        assert.strictEqual(req?.path, "/api/v1/namespaces/app/configmaps")
        assert.deepStrictEqual(req?.query, { labelSelector: "a=b", fieldSelector: "metadata.name=c" })
      })))

  it.effect("watch parses events from a chunked JSON stream and ends when the server closes it", () =>
    withServer((_req, res) => {
      const lines = [
        { type: "ADDED", object: crJson("a", "10") },
        { type: "BOOKMARK", object: { kind: "CertificateRequest", apiVersion: "cert-manager.io/v1", metadata: { resourceVersion: "11" } } },
        { type: "MODIFIED", object: crJson("a", "12") }
      ].map((l) => JSON.stringify(l) + "\n").join("")
      res.writeHead(200, { "content-type": "application/json" })
      // Split inside JSON documents to check the line reassembly.
      for (let at = 0; at < lines.length; at += 37) res.write(lines.slice(at, at + 37))
      res.end()
    }, (server) =>
      Effect.gen(function*() {
        const kube = yield* KubeClient
        const events = yield* Stream.runCollect(kube.watch(CertificateRequests, { resourceVersion: "9", namespace: NS, labelSelector: "x=y" }))
        assert.deepStrictEqual(summary(events), ["ADDED a", "BOOKMARK 11", "MODIFIED a"])
        const [req] = server.requests()
        assert.strictEqual(req?.path, "/apis/cert-manager.io/v1/namespaces/app/certificaterequests")
        assert.strictEqual(req?.query["watch"], "true")
        assert.strictEqual(req?.query["allowWatchBookmarks"], "true")
        assert.strictEqual(req?.query["resourceVersion"], "9")
        assert.strictEqual(req?.query["labelSelector"], "x=y")
        const timeout = Number(req?.query["timeoutSeconds"])
        assert.isTrue(timeout >= 240 && timeout < 300, `timeoutSeconds ${timeout}`)
        assert.strictEqual(req?.authorization, "Bearer driver-sa-token")
      })))

  it.effect("one malformed object never blocks the others: list skips it, watch turns it into a bookmark", () =>
    withServer((req, res) => {
      const malformed = { metadata: { name: "bad", namespace: NS, resourceVersion: "13" }, spec: { request: 42 } }
      if (req.query["watch"] === "true") {
        res.writeHead(200, { "content-type": "application/json" })
        res.end([{ type: "ADDED", object: malformed }, { type: "ADDED", object: crJson("b", "14") }].map((l) => JSON.stringify(l) + "\n").join(""))
      } else {
        reply(res, 200, { kind: "CertificateRequestList", apiVersion: "cert-manager.io/v1", metadata: { resourceVersion: "12" }, items: [crJson("a", "10"), malformed] })
      }
    }, () =>
      Effect.gen(function*() {
        const kube = yield* KubeClient
        const listed = yield* kube.list(CertificateRequests, {})
        assert.deepStrictEqual(listed.items.map((i) => i.metadata.name), ["a"])
        const events = yield* Stream.runCollect(kube.watch(CertificateRequests, { resourceVersion: "12" }))
        assert.deepStrictEqual(summary(events), ["BOOKMARK 13", "ADDED b"])
      })))

  it.effect("a watch ERROR event with code 410 fails with Gone, as does an HTTP 410", () =>
    withServer((req, res) => {
      if (req.query["resourceVersion"] === "1") {
        res.writeHead(200, { "content-type": "application/json" })
        res.write(JSON.stringify({ type: "ADDED", object: crJson("a", "2") }) + "\n")
        res.end(JSON.stringify({ type: "ERROR", object: status(410, "Expired", "too old resource version: 1 (5)") }) + "\n")
      } else reply(res, 410, status(410, "Gone", "too old"))
    }, () =>
      Effect.gen(function*() {
        const kube = yield* KubeClient
        const seen: Array<string> = []
        const gone = yield* failed(Stream.runForEach(kube.watch(CertificateRequests, { resourceVersion: "1" }), (e) =>
          Effect.sync(() => seen.push(e.type))))
        assert.deepStrictEqual(seen, ["ADDED"])
        assert.strictEqual(gone.reason, "Gone")
        assert.strictEqual(gone.status, 410)
        assert.strictEqual(gone.detail, "too old resource version: 1 (5)")
        assert.strictEqual((yield* failed(Stream.runCollect(kube.watch(CertificateRequests, { resourceVersion: "2" })))).reason, "Gone")
      })))

  it.effect("stopping a watch stream aborts its request", () =>
    withServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" })
      res.write(JSON.stringify({ type: "ADDED", object: crJson("a", "2") }) + "\n")
    }, (server) =>
      Effect.gen(function*() {
        const kube = yield* KubeClient
        const events = yield* Stream.runCollect(Stream.take(kube.watch(CertificateRequests, { resourceVersion: "1" }), 1))
        assert.deepStrictEqual(summary(events), ["ADDED a"])
        const [req] = server.requests()
        yield* Effect.promise(() => req!.closed)
      })))

  it.effect("a pool refresh while a watch is open never makes the next call wait for that watch", () =>
    Effect.gen(function*() {
      const server = yield* makeFakeApiServer((req, res) => {
        if (req.query["watch"] === "true") {
          // A quiet watch: headers and one event, then nothing until the client goes away.
          res.writeHead(200, { "content-type": "application/json" })
          res.write(JSON.stringify({ type: "ADDED", object: crJson("a", "2") }) + "\n")
        } else reply(res, 200, crJson("a"))
      })
      const kube = yield* KubeClient.pipe(Effect.provide(layer({ kubeconfig: server.kubeconfig, poolRefresh: Duration.minutes(1) })))
      // A call first, so that the process's pool exists before the watch opens.
      yield* kube.get(CertificateRequests, NS, "a")
      const first = yield* Deferred.make<void>()
      const watching = yield* kube.watch(CertificateRequests, { resourceVersion: "1" }).pipe(
        Stream.runForEach(() => Deferred.succeed(first, undefined)),
        Effect.forkScoped
      )
      yield* Deferred.await(first)
      // Past the refresh period: the next call takes a fresh pool while the watch is still open.
      yield* TestClock.adjust(Duration.minutes(2))
      const a = yield* kube.get(CertificateRequests, NS, "a")
      assert.strictEqual(a?.metadata.uid, "uid-a")
      // The pool swap left the open watch alone.
      assert.isUndefined(watching.pollUnsafe())
      yield* kube.get(CertificateRequests, NS, "a")
      assert.deepStrictEqual(server.requests().map((r) => `${r.method} ${r.query["watch"] ?? "-"}`), ["GET -", "GET true", "GET -", "GET -"])
      yield* Fiber.interrupt(watching)
    }), { timeout: 10_000 })

  it.effect("connection failures are Unavailable, with undici's error as the cause; no log of it names the token", () =>
    Effect.gen(function*() {
      // A port that was just listened on and closed again refuses connections.
      const closed = yield* Effect.scoped(Effect.map(makeFakeApiServer(() => undefined), (s) => s.url))
      const kubeconfig = yield* writeKubeconfig(closed, "driver-sa-token")
      const kube = yield* KubeClient.pipe(Effect.provide(layer({ kubeconfig })))
      const refused = yield* failed(kube.get(CertificateRequests, NS, "a"))
      assert.strictEqual(refused.reason, "Unavailable")
      assert.strictEqual(refused.operation, "KubeClient.get")
      assert.include(refused.detail, "ECONNREFUSED")
      const watch = yield* failed(Stream.runCollect(kube.watch(CertificateRequests, { resourceVersion: "1" })))
      assert.strictEqual(watch.reason, "Unavailable")
      for (const error of [refused, watch]) {
        assert.instanceOf(error.cause, TypeError)
        assert.strictEqual((error.cause as TypeError).message, "fetch failed")
        assert.strictEqual(((error.cause as TypeError).cause as { readonly code?: unknown }).code, "ECONNREFUSED")
        // What an operator sees of it: the pretty cause (with the chain below it) and both log formats.
        const pretty = Cause.pretty(Cause.fail(error))
        assert.include(pretty, "ECONNREFUSED")
        const lines = yield* logged(Effect.logWarning("call failed", Cause.fail(error), { error, failure: error }))
        for (const text of [pretty, ...lines]) assert.notInclude(text, "driver-sa-token")
      }
    }))

  it.effect("a credential plugin whose output is not JSON: the call fails Unauthorized without quoting it", () =>
    Effect.gen(function*() {
      const valid = yield* writeKubeconfig("http://127.0.0.1:1", "unused")
      const file = path.join(path.dirname(valid), "exec")
      // V8 quotes the text around an unexpected token in its message: here, the start of the token.
      const output = `{"kind":"ExecCredential","status":{"token":SECRET-TOKEN}}`
      fs.writeFileSync(file, [
        "apiVersion: v1",
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1', insecure-skip-tls-verify: true}}]",
        `users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: sh, args: ['-c', ${JSON.stringify(`echo '${output}'`)}]}}}]`,
        "contexts: [{name: x, context: {cluster: c, user: u}}]",
        "current-context: x",
        ""
      ].join("\n"))
      const kube = yield* KubeClient.pipe(Effect.provide(layer({ kubeconfig: file })))
      const error = yield* failed(kube.get(CertificateRequests, NS, "a"))
      assert.strictEqual(error.reason, "Unauthorized")
      assert.notInclude(error.detail, "SECRET")
      assert.strictEqual(error.detail, "cannot apply credentials: not valid JSON")
      assert.isUndefined(error.cause)
    }))

  it.effect("a kubeconfig that cannot be loaded fails the layer with a clear error", () =>
    Effect.gen(function*() {
      const error = yield* failed(KubeClient.pipe(Effect.provide(layer({ kubeconfig: "does-not-exist/kubeconfig" }))))
      assert.strictEqual(error.operation, "KubeClient.layer")
      assert.include(error.detail, "cannot load kubeconfig does-not-exist/kubeconfig")
      assert.strictEqual((error.cause as { readonly code?: unknown } | undefined)?.code, "ENOENT")
    }))

  it.effect("a kubeconfig that is not valid YAML is named by line, never quoted, and not kept as the cause", () =>
    Effect.gen(function*() {
      const valid = yield* writeKubeconfig("http://127.0.0.1:1", "driver-sa-token")
      const broken = path.join(path.dirname(valid), "broken")
      fs.writeFileSync(broken, ["apiVersion: v1", "users:", "- name: u", "  user:", "    token: SECRET-TOKEN", "    : bad: [", ""].join("\n"))
      const error = yield* failed(KubeClient.pipe(Effect.provide(layer({ kubeconfig: broken }))))
      assert.strictEqual(error.reason, "Invalid")
      assert.strictEqual(error.detail, `cannot load kubeconfig ${broken}: not valid YAML: deficient indentation (line 7)`)
      assert.isUndefined(error.cause)
      assert.notInclude(Cause.pretty(Cause.fail(error)), "SECRET-TOKEN")
    }))
})

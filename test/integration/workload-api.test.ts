/**
 * The SPIFFE Workload API server on real unix sockets with a real grpc-js client: the security
 * header, the two X.509 streams (full state first, again on every change), UNIMPLEMENTED for JWT
 * and WIT, a stream that waits for a first SVID, two volumes that never see each other's SVID, a
 * socket path longer than a unix address holds, and the socket removed when the volume closes.
 * Every wait is on a message or a status (queues and deferreds), never on time.
 */
import * as grpc from "@grpc/grpc-js"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Queue, Redacted, Scope, Stream, SubscriptionRef } from "effect"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as WorkloadApiServer from "../../src/csi/WorkloadApiServer.ts"
import { WorkloadApi } from "../../src/services/WorkloadApi.ts"
import type { VolumeSvid } from "../../src/services/WorkloadApi.ts"
import { makeWorkloadClient } from "../support/workloadClient.ts"

const isRoot = process.getuid?.() === 0
const TD = "spiffe://foo.bar"

const svid = (id: string, generation: number, bundle = "bundle-A"): VolumeSvid => ({
  spiffeId: `${TD}/ns/sandbox/sa/${id}`,
  trustDomainId: TD,
  chainDer: Buffer.from(`chain ${id} ${generation}`),
  keyDer: Redacted.make(Buffer.from(`key ${id} ${generation}`)),
  bundleDer: Buffer.from(bundle)
})

const text = (b: Uint8Array) => Buffer.from(b).toString()

/** A temporary directory; removed with the scope. `deep` makes its path longer than a unix address. */
const tmpDir = (deep = false) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const base = await fsp.mkdtemp(path.join(os.tmpdir(), "workload-api-"))
      const dir = deep ? path.join(base, "inmemfs", `csi-${"a".repeat(64)}`, "data") : base
      await fsp.mkdir(dir, { recursive: true })
      return { base, dir }
    }),
    ({ base }) => Effect.promise(() => fsp.rm(base, { recursive: true, force: true }))
  )

/** A served volume whose SVID the test sets; `close` ends it as an unpublish does. */
const serveVolume = (volumeId: string, dir: string, initial: VolumeSvid | undefined, gid?: number) =>
  Effect.gen(function*() {
    const api = yield* WorkloadApi
    const ref = yield* SubscriptionRef.make<VolumeSvid | undefined>(initial)
    const socketPath = path.join(dir, "spiffe.sock")
    const scope = yield* Scope.make()
    yield* api.serve({ volumeId, socketPath, gid }, SubscriptionRef.changes(ref).pipe(Stream.filter((s) => s !== undefined))).pipe(Scope.provide(scope))
    return { socketPath, set: (s: VolumeSvid) => SubscriptionRef.set(ref, s), close: Scope.close(scope, undefined as never) }
  })

const run = <A, E>(effect: Effect.Effect<A, E, WorkloadApi | Scope.Scope>) =>
  effect.pipe(Effect.provide(WorkloadApiServer.layer), Effect.scoped)

describe("Workload API server", () => {
  it.effect("every method without the workload.spiffe.io header is INVALID_ARGUMENT", () =>
    run(Effect.gen(function*() {
      const { dir } = yield* tmpDir()
      const v = yield* serveVolume("v1", dir, svid("a", 1))
      const client = yield* makeWorkloadClient(v.socketPath)
      for (const method of ["FetchX509SVID", "FetchX509Bundles", "FetchJWTBundles", "FetchWITSVID", "FetchWITBundles"]) {
        const s = yield* client.stream(method, false)
        const status = yield* Deferred.await(s.status)
        assert.strictEqual(status.code, grpc.status.INVALID_ARGUMENT, method)
        assert.include(status.details, "workload.spiffe.io", method)
        assert.strictEqual(yield* Queue.size(s.messages), 0, `${method} sent nothing`)
      }
      for (const method of ["FetchJWTSVID", "ValidateJWTSVID"]) {
        assert.strictEqual((yield* client.unary(method, false)).code, grpc.status.INVALID_ARGUMENT, method)
      }
    })))

  it.effect("the JWT and WIT methods are UNIMPLEMENTED with the header", () =>
    run(Effect.gen(function*() {
      const { dir } = yield* tmpDir()
      const v = yield* serveVolume("v1", dir, svid("a", 1))
      const client = yield* makeWorkloadClient(v.socketPath)
      for (const method of ["FetchJWTSVID", "ValidateJWTSVID"]) {
        assert.strictEqual((yield* client.unary(method)).code, grpc.status.UNIMPLEMENTED, method)
      }
      for (const method of ["FetchJWTBundles", "FetchWITSVID", "FetchWITBundles"]) {
        const s = yield* client.stream(method)
        assert.strictEqual((yield* Deferred.await(s.status)).code, grpc.status.UNIMPLEMENTED, method)
      }
    })))

  it.effect("FetchX509SVID sends the full state at once and again on every change; FetchX509Bundles only when the bundle changes", () =>
    run(Effect.gen(function*() {
      const { dir } = yield* tmpDir()
      const v = yield* serveVolume("v1", dir, svid("a", 1))
      const client = yield* makeWorkloadClient(v.socketPath)
      const svids = yield* client.stream("FetchX509SVID")
      const bundles = yield* client.stream("FetchX509Bundles")

      const first = yield* Queue.take(svids.messages)
      assert.strictEqual(first.svids.length, 1)
      assert.strictEqual(first.svids[0].spiffe_id, `${TD}/ns/sandbox/sa/a`)
      assert.strictEqual(text(first.svids[0].x509_svid), "chain a 1")
      assert.strictEqual(text(first.svids[0].x509_svid_key), "key a 1")
      assert.strictEqual(text(first.svids[0].bundle), "bundle-A")
      assert.deepStrictEqual(Object.keys(first.federated_bundles), [])
      const firstBundles = yield* Queue.take(bundles.messages)
      assert.deepStrictEqual(Object.keys(firstBundles.bundles), [TD])
      assert.strictEqual(text(firstBundles.bundles[TD]), "bundle-A")

      // A renewal: a new chain and key, the same bundle.
      yield* v.set(svid("a", 2))
      const renewed = yield* Queue.take(svids.messages)
      assert.strictEqual(text(renewed.svids[0].x509_svid), "chain a 2")
      assert.strictEqual(text(renewed.svids[0].x509_svid_key), "key a 2")
      assert.strictEqual(text(renewed.svids[0].bundle), "bundle-A", "full state: the bundle again")

      // A CA change: the same chain, a new bundle, on both streams.
      yield* v.set(svid("a", 2, "bundle-B"))
      const rotated = yield* Queue.take(svids.messages)
      assert.strictEqual(text(rotated.svids[0].x509_svid), "chain a 2", "full state: the chain again")
      assert.strictEqual(text(rotated.svids[0].bundle), "bundle-B")
      const nextBundles = yield* Queue.take(bundles.messages)
      assert.strictEqual(text(nextBundles.bundles[TD]), "bundle-B", "the renewal sent no bundles message; this is the next")
      assert.strictEqual(yield* Queue.size(bundles.messages), 0)
    })))

  it.effect("with no SVID yet a stream waits (no error, no message) and gets the first one when it is known", () =>
    run(Effect.gen(function*() {
      const { dir } = yield* tmpDir()
      const v = yield* serveVolume("v1", dir, undefined)
      const client = yield* makeWorkloadClient(v.socketPath)
      const svids = yield* client.stream("FetchX509SVID")
      // A later call on the same connection has been answered, so the stream was opened before it.
      assert.strictEqual((yield* client.unary("FetchJWTSVID")).code, grpc.status.UNIMPLEMENTED)
      assert.strictEqual(yield* Queue.size(svids.messages), 0)
      assert.isFalse(yield* Deferred.isDone(svids.status))
      yield* v.set(svid("a", 1))
      assert.strictEqual(text((yield* Queue.take(svids.messages)).svids[0].x509_svid), "chain a 1")
    })))

  it.effect("two volumes: each socket serves its own SVID only, also after the other's renewal", () =>
    run(Effect.gen(function*() {
      const one = yield* tmpDir()
      const two = yield* tmpDir()
      const a = yield* serveVolume("v1", one.dir, svid("a", 1))
      const b = yield* serveVolume("v2", two.dir, svid("b", 1))
      const streamA = yield* (yield* makeWorkloadClient(a.socketPath)).stream("FetchX509SVID")
      const streamB = yield* (yield* makeWorkloadClient(b.socketPath)).stream("FetchX509SVID")
      assert.strictEqual((yield* Queue.take(streamA.messages)).svids[0].spiffe_id, `${TD}/ns/sandbox/sa/a`)
      assert.strictEqual((yield* Queue.take(streamB.messages)).svids[0].spiffe_id, `${TD}/ns/sandbox/sa/b`)
      yield* b.set(svid("b", 2))
      yield* a.set(svid("a", 2))
      const nextA = yield* Queue.take(streamA.messages)
      assert.strictEqual(text(nextA.svids[0].x509_svid), "chain a 2", "a's stream skipped b's renewal")
      const nextB = yield* Queue.take(streamB.messages)
      assert.strictEqual(text(nextB.svids[0].x509_svid), "chain b 2")
      assert.strictEqual(yield* Queue.size(streamA.messages), 0)
      assert.strictEqual(yield* Queue.size(streamB.messages), 0)
    })))

  it.effect("a socket path longer than a unix address holds is served (the volume's real data directory)", () =>
    run(Effect.gen(function*() {
      const { base, dir } = yield* tmpDir(true)
      const v = yield* serveVolume("v1", dir, svid("a", 1))
      assert.isAbove(Buffer.byteLength(v.socketPath), 107)
      assert.isTrue(fs.lstatSync(v.socketPath).isSocket())
      // A client cannot dial the long path either; this one goes through a short symlink to the directory.
      const short = path.join(base, "s")
      yield* Effect.promise(() => fsp.symlink(dir, short))
      const s = yield* (yield* makeWorkloadClient(path.join(short, "spiffe.sock"))).stream("FetchX509SVID")
      assert.strictEqual(text((yield* Queue.take(s.messages)).svids[0].x509_svid), "chain a 1")
    })))

  it.effect("closing the volume ends its streams UNAVAILABLE and removes the socket; a stale socket is replaced", () =>
    run(Effect.gen(function*() {
      const { dir } = yield* tmpDir()
      fs.writeFileSync(path.join(dir, "spiffe.sock"), "left behind by an earlier driver")
      const v = yield* serveVolume("v1", dir, svid("a", 1))
      assert.isTrue(fs.lstatSync(v.socketPath).isSocket())
      assert.strictEqual(fs.lstatSync(v.socketPath).mode & 0o777, 0o660)
      const s = yield* (yield* makeWorkloadClient(v.socketPath)).stream("FetchX509SVID")
      yield* Queue.take(s.messages)
      yield* v.close
      assert.strictEqual((yield* Deferred.await(s.status)).code, grpc.status.UNAVAILABLE)
      assert.isFalse(fs.existsSync(v.socketPath))
    })))

  it.effect.skipIf(!isRoot)("the socket belongs to the volume's fs-group", () =>
    run(Effect.gen(function*() {
      const { dir } = yield* tmpDir()
      const v = yield* serveVolume("v1", dir, svid("a", 1), 2345)
      assert.strictEqual(fs.lstatSync(v.socketPath).gid, 2345)
    })))
})

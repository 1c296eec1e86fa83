/**
 * go-spiffe (the checker built from scripts/upstream/spiffe-checker) against the driver's Workload
 * API server on real unix sockets, with real X.509-SVIDs: `workloadapi.NewX509Source` gets the SVID
 * and sees a renewal and a bundle change on its own stream; one raw FetchX509SVID stream carries
 * every update (no reconnect); a call without the header is InvalidArgument; `spiffetls` mTLS
 * between two volumes' identities works and a third identity is refused. The volume manager's part
 * (what state each socket gets) is tested in test/unit/layers/volumeManager/Socket.test.ts; the
 * real node runs the same checker in pods (test/node/workload-api.test.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Queue, Scope, SubscriptionRef } from "effect"
import { spawn } from "node:child_process"
import * as fsp from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as WorkloadApiServer from "../../src/csi/WorkloadApiServer.ts"
import { pemToConcatenatedDer } from "../../src/domain/Pem.ts"
import { WorkloadApi } from "../../src/services/WorkloadApi.ts"
import type { VolumeSvid } from "../../src/services/WorkloadApi.ts"
import { ensureUpstream } from "../harness/upstream.ts"
import { issueSvid } from "../support/svids.ts"
import { makeTestCa } from "../support/TestSigner.ts"

const TD = "spiffe://foo.bar"
const ID_A = `${TD}/ns/sandbox/sa/a`
const ID_B = `${TD}/ns/sandbox/sa/b`
const ID_C = `${TD}/ns/other/sa/c`

const checkerBin = Effect.promise(() => ensureUpstream(["spiffe-checker"], { build: true, onProgress: () => {} })).pipe(
  Effect.map((up) => up.bin("spiffe-checker"))
)

/** A running checker: its stdout lines as they come, and its exit (code and all output). */
const runChecker = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const bin = yield* checkerBin
    const lines = yield* Queue.unbounded<string>()
    const exit = yield* Deferred.make<{ code: number | null; out: string }>()
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = spawn(bin, [...args], { stdio: ["ignore", "pipe", "pipe"] })
        let out = ""
        let pending = ""
        child.stdout.on("data", (chunk: Buffer) => {
          out += chunk.toString()
          pending += chunk.toString()
          const parts = pending.split("\n")
          pending = parts.pop()!
          for (const line of parts) Queue.offerUnsafe(lines, line)
        })
        child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()))
        child.on("close", (code) => Deferred.doneUnsafe(exit, Effect.succeed({ code, out })))
        return child
      }),
      (child) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
    )
    return { nextLine: Queue.take(lines), exit: Deferred.await(exit) }
  })

/** One served volume whose SVID the test replaces. */
const serve = (dir: string, name: string, initial: VolumeSvid) =>
  Effect.gen(function*() {
    const api = yield* WorkloadApi
    const ref = yield* SubscriptionRef.make(initial)
    const socketPath = path.join(dir, `${name}.sock`)
    yield* api.serve({ volumeId: name, socketPath, gid: undefined }, SubscriptionRef.changes(ref))
    return { address: `unix://${socketPath}`, set: (s: VolumeSvid) => SubscriptionRef.set(ref, s) }
  })

const freePort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })
)

const setup = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.promise(() => fsp.mkdtemp(path.join(os.tmpdir(), "wl-e2e-"))),
    (d) => Effect.promise(() => fsp.rm(d, { recursive: true, force: true }))
  )
  const ca = yield* makeTestCa()
  return { dir, ca }
})

const run = <A, E>(effect: Effect.Effect<A, E, WorkloadApi | Scope.Scope>) => effect.pipe(Effect.provide(WorkloadApiServer.layer), Effect.scoped)

describe("go-spiffe against the Workload API server", () => {
  it.live("NewX509Source gets the SVID, then the renewal's new serial and the bundle change, on one stream", () =>
    run(Effect.gen(function*() {
      const { dir, ca } = yield* setup
      const first = yield* issueSvid(ca, ID_A)
      const v = yield* serve(dir, "a", first.svid)

      const source = yield* runChecker(["x509source", "--socket", v.address, "--updates", "2", "--timeout", "2m"])
      const stream = yield* runChecker(["x509stream", "--socket", v.address, "--updates", "2", "--timeout", "2m"])
      assert.match(yield* source.nextLine, new RegExp(`^SVID id=${ID_A} serial=${first.serial} `))
      assert.match(yield* stream.nextLine, new RegExp(`^MESSAGE 0 id=${ID_A} serial=${first.serial} `))

      const renewed = yield* issueSvid(ca, ID_A)
      yield* v.set(renewed.svid)
      assert.match(yield* source.nextLine, new RegExp(`^UPDATE 1 kind=svid id=${ID_A} serial=${renewed.serial} `))
      assert.match(yield* stream.nextLine, new RegExp(`^MESSAGE 1 id=${ID_A} serial=${renewed.serial} `))

      const other = yield* makeTestCa("another-ca")
      yield* v.set({ ...renewed.svid, bundleDer: pemToConcatenatedDer(ca.certPem + other.certPem, "CERTIFICATE") })
      assert.match(yield* source.nextLine, new RegExp(`^UPDATE 2 kind=bundle id=${ID_A} serial=${renewed.serial} `))
      assert.match(yield* stream.nextLine, /^MESSAGE 2 .*bundleBytes=\d+/)

      const s = yield* source.exit
      assert.strictEqual(s.code, 0, s.out)
      const t = yield* stream.exit
      assert.strictEqual(t.code, 0, t.out)
      assert.include(t.out, "every message on one stream")
    })))

  it.live("a call without the workload.spiffe.io header gets InvalidArgument", () =>
    run(Effect.gen(function*() {
      const { dir, ca } = yield* setup
      const v = yield* serve(dir, "a", (yield* issueSvid(ca, ID_A)).svid)
      const r = yield* (yield* runChecker(["noheader", "--socket", v.address])).exit
      assert.strictEqual(r.code, 0, r.out)
      assert.include(r.out, "OK noheader: InvalidArgument")
    })))

  it.live("spiffetls mTLS: a and b authorize each other's IDs; c is refused by a's server", () =>
    run(Effect.gen(function*() {
      const { dir, ca } = yield* setup
      const a = yield* serve(dir, "a", (yield* issueSvid(ca, ID_A)).svid)
      const b = yield* serve(dir, "b", (yield* issueSvid(ca, ID_B)).svid)
      const c = yield* serve(dir, "c", (yield* issueSvid(ca, ID_C)).svid)
      const port = yield* freePort
      const server = yield* runChecker(["mtls-server", "--socket", a.address, "--listen", `127.0.0.1:${port}`, "--authorize-id", ID_B, "--timeout", "2m"])
      assert.match(yield* server.nextLine, /^LISTENING /)

      const good = yield* (yield* runChecker(["mtls-client", "--socket", b.address, "--connect", `127.0.0.1:${port}`, "--authorize-id", ID_A])).exit
      assert.strictEqual(good.code, 0, good.out)
      assert.strictEqual(yield* server.nextLine, `SERVED ${ID_B}`)

      const refused = yield* (yield* runChecker(["mtls-client", "--socket", c.address, "--connect", `127.0.0.1:${port}`, "--authorize-id", ID_A])).exit
      assert.strictEqual(refused.code, 1, refused.out)
      assert.match(yield* server.nextLine, /^REFUSED /)
    })))
})

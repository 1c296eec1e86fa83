/**
 * Socket connect → first SVID on the driver's Workload API server (csi/WorkloadApiServer.ts), one
 * volume with a real X.509-SVID on a unix socket, real clock, in process:
 *
 *   - grpc-js: a new channel per sample, FetchX509SVID with the header, until the first message;
 *   - go-spiffe (when the upstream spiffe-checker is built): `workloadapi.NewX509Source` until it
 *     holds the SVID, as the checker's `x509source` mode measures it (its process start excluded).
 *
 *   node scripts/bench-workload-api.ts [grpc-samples=200] [go-samples=20]
 *
 * Prints the figures and writes bench/results/workload-api.json.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Queue, SubscriptionRef } from "effect"
import * as WorkloadApiServer from "../src/csi/WorkloadApiServer.ts"
import * as Logging from "../src/layers/Logging.ts"
import { WorkloadApi } from "../src/services/WorkloadApi.ts"
import { ensureUpstream } from "../test/harness/upstream.ts"
import { issueSvid } from "../test/support/svids.ts"
import { makeTestCa } from "../test/support/TestSigner.ts"
import { makeWorkloadClient } from "../test/support/workloadClient.ts"

const grpcSamples = Number(process.argv[2] ?? 200)
const goSamples = Number(process.argv[3] ?? 20)

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}
const round = (n: number) => Number(n.toFixed(2))
const summary = (xs: ReadonlyArray<number>) => ({ samples: xs.length, p50_ms: round(percentile(xs, 50)), p90_ms: round(percentile(xs, 90)), max_ms: round(Math.max(...xs)) })

const program = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "bench-wl-"))),
    (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
  )
  const ca = yield* makeTestCa()
  const { svid } = yield* issueSvid(ca, "spiffe://foo.bar/ns/sandbox/sa/app")
  const ref = yield* SubscriptionRef.make(svid)
  const socketPath = path.join(dir, "spiffe.sock")
  const api = yield* WorkloadApi
  yield* api.serve({ volumeId: "bench", socketPath, gid: undefined }, SubscriptionRef.changes(ref))

  const once = Effect.scoped(Effect.gen(function*() {
    const started = performance.now()
    const client = yield* makeWorkloadClient(socketPath)
    const stream = yield* client.stream("FetchX509SVID")
    yield* Queue.take(stream.messages)
    return performance.now() - started
  }))
  for (let i = 0; i < 20; i++) yield* once // warm-up: JIT, proto caches
  const grpc: Array<number> = []
  for (let i = 0; i < grpcSamples; i++) grpc.push(yield* once)

  const go: Array<number> = []
  const up = yield* Effect.promise(() => ensureUpstream(["spiffe-checker"], { build: false, onProgress: () => {} }))
  if (up.env["CSI_SPIFFE_BIN_SPIFFE_CHECKER"] !== undefined) {
    for (let i = 0; i < goSamples; i++) {
      // Asynchronously: the server answers on this process's event loop.
      const r = yield* Effect.promise(() =>
        new Promise<{ ok: boolean; out: string }>((resolve) =>
          execFile(up.bin("spiffe-checker"), ["x509source", "--socket", `unix://${socketPath}`, "--timeout", "30s"], (error, stdout, stderr) =>
            resolve({ ok: error === null, out: `${stdout}${stderr}` })))
      )
      const ms = /firstAfterMs=(\d+)/.exec(r.out)?.[1]
      if (!r.ok || ms === undefined) throw new Error(`spiffe-checker x509source failed: ${r.out}`)
      go.push(Number(ms))
    }
  }
  const result = {
    setting: `in-process server, one volume, unix socket on ${os.tmpdir()}, ${os.cpus().length} cores, node ${process.version}`,
    grpc_js_new_channel_to_first_svid: summary(grpc),
    go_spiffe_new_x509source_to_svid: go.length === 0 ? "spiffe-checker not built" : { ...summary(go), note: "whole milliseconds, as the checker prints them" }
  }
  console.log(JSON.stringify(result, null, 2))
  yield* Effect.promise(() => fs.mkdir("bench/results", { recursive: true }))
  yield* Effect.promise(() => fs.writeFile("bench/results/workload-api.json", JSON.stringify(result, null, 2) + "\n"))
})

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(WorkloadApiServer.layer), Effect.provide(Logging.layer(0)))).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)

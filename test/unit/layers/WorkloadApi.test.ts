/**
 * The WorkloadApi contract (`WorkloadApi.contract.ts`) against the live server on real unix
 * sockets with a real grpc-js client, and against the memory twin read through the stream it
 * recorded. The live server's own details (the security header, UNIMPLEMENTED methods, long socket
 * paths, modes and groups) are in `test/integration/workload-api.test.ts`.
 */
import * as grpc from "@grpc/grpc-js"
import { Effect, Queue, Stream, SubscriptionRef } from "effect"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as WorkloadApiServer from "../../../src/csi/WorkloadApiServer.ts"
import * as WorkloadApiLayers from "../../../src/layers/WorkloadApi.ts"
import { WorkloadApiMemory } from "../../../src/layers/WorkloadApi.ts"
import { makeWorkloadClient } from "../../support/workloadClient.ts"
import type { Seen } from "./WorkloadApi.contract.ts"
import { contract } from "./WorkloadApi.contract.ts"

const text = (b: Uint8Array) => Buffer.from(b).toString()

contract("live (grpc-js on a unix socket)", WorkloadApiServer.layer, {
  endpoint: (volumeId) =>
    Effect.map(
      Effect.acquireRelease(
        Effect.promise(() => fsp.mkdtemp(path.join(os.tmpdir(), "workload-contract-"))),
        (dir) => Effect.promise(() => fsp.rm(dir, { recursive: true, force: true }))
      ),
      (dir) => ({ volumeId, socketPath: path.join(dir, "spiffe.sock"), gid: undefined })
    ),
  connect: (endpoint) =>
    Effect.gen(function*() {
      const client = yield* Effect.orDie(makeWorkloadClient(endpoint.socketPath))
      const call = yield* client.stream("FetchX509SVID")
      const out = yield* Queue.unbounded<Seen>()
      yield* Queue.take(call.messages).pipe(
        Effect.flatMap((m) => Queue.offer(out, { spiffeId: m.svids[0].spiffe_id, chain: text(m.svids[0].x509_svid), bundle: text(m.svids[0].bundle) })),
        Effect.forever,
        Effect.forkScoped
      )
      return out
    }),
  served: (endpoint) => Effect.sync(() => fs.existsSync(endpoint.socketPath)),
  // A later call on a new connection has been answered, so the server took the earlier stream.
  connected: (endpoint) =>
    Effect.gen(function*() {
      const client = yield* Effect.orDie(makeWorkloadClient(endpoint.socketPath))
      const status = yield* client.unary("FetchJWTSVID")
      if (status.code !== grpc.status.UNIMPLEMENTED) yield* Effect.die(new Error(`FetchJWTSVID: ${status.code}`))
    })
})

contract("memory twin", WorkloadApiLayers.layerMemory, {
  endpoint: (volumeId) => Effect.succeed({ volumeId, socketPath: `/memory/${volumeId}/spiffe.sock`, gid: undefined }),
  connect: (endpoint) =>
    Effect.gen(function*() {
      const { awaitServed } = yield* WorkloadApiMemory
      const volume = yield* awaitServed(endpoint.volumeId)
      const out = yield* Queue.unbounded<Seen>()
      yield* volume.svid.pipe(
        Stream.runForEach((s) => Queue.offer(out, { spiffeId: s.spiffeId, chain: text(s.chainDer), bundle: text(s.bundleDer) })),
        Effect.forkScoped({ startImmediately: true })
      )
      return out
    }),
  served: (endpoint) =>
    Effect.gen(function*() {
      const { served } = yield* WorkloadApiMemory
      return (yield* SubscriptionRef.get(served)).has(endpoint.volumeId)
    }),
  // The twin's reader subscribed before `connect` returned (startImmediately).
  connected: () => Effect.void
})


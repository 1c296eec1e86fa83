/**
 * The `date` header of the driver's gRPC servers: a real grpc-js server with the interceptor over
 * the TestClock, called by a real grpc-js client; the header carries the clock's time (so it is
 * ours, not Node's, which would carry the wall clock), once, in the header block only.
 */
import { assert, describe, it } from "@effect/vitest"
import * as grpc from "@grpc/grpc-js"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import * as DateHeader from "../../../../src/csi/grpc/DateHeader.ts"
import { httpDate } from "../../../../src/domain/UtcTime.ts"

// A time no wall clock reads now: the header must come from the TestClock.
const NOW = Date.UTC(2031, 4, 6, 7, 8, 9, 250)

const bytes = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b }
const method = (name: string, responseStream: boolean) => ({
  path: `/t.T/${name}`, requestStream: false, responseStream,
  requestSerialize: bytes.serialize, requestDeserialize: bytes.deserialize,
  responseSerialize: bytes.serialize, responseDeserialize: bytes.deserialize
})
const service = { Ok: method("Ok", false), Fail: method("Fail", false), StreamThenFail: method("StreamThenFail", true) }

interface Seen {
  readonly headers: ReadonlyArray<grpc.MetadataValue>
  readonly trailers: ReadonlyArray<grpc.MetadataValue>
  readonly code: grpc.status
}

/** One call of `name`: the `date` values of its header block and of its trailers. */
const call = (client: grpc.Client, name: keyof typeof service) =>
  Effect.callback<Seen>((resume) => {
    const def = service[name]
    let headers: ReadonlyArray<grpc.MetadataValue> = []
    const stream = def.responseStream
      ? client.makeServerStreamRequest(def.path, bytes.serialize, bytes.deserialize, Buffer.alloc(0))
      : client.makeUnaryRequest(def.path, bytes.serialize, bytes.deserialize, Buffer.alloc(0), () => {})
    stream.on("metadata", (m: grpc.Metadata) => headers = m.get("date"))
    // The status event below carries the outcome; a stream also emits it as an error.
    if (def.responseStream) stream.on("data", () => {}).on("error", () => {})
    stream.on("status", (s: grpc.StatusObject) => resume(Effect.succeed({ headers, trailers: s.metadata.get("date"), code: s.code })))
  })

describe("DateHeader", () => {
  it.effect("stamps the header block with the Clock's time, on success and on a trailers-only error", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const server = new grpc.Server(yield* DateHeader.serverOptions)
      server.addService(service, {
        Ok: (_call: unknown, done: grpc.sendUnaryData<Buffer>) => done(null, Buffer.from("ok")),
        Fail: (_call: unknown, done: grpc.sendUnaryData<Buffer>) => done({ code: grpc.status.INVALID_ARGUMENT, details: "no" }),
        StreamThenFail: (stream: grpc.ServerWritableStream<Buffer, Buffer>) => {
          stream.write(Buffer.from("one"))
          stream.emit("error", { code: grpc.status.UNAVAILABLE, details: "gone" })
        }
      })
      const port = yield* Effect.acquireRelease(
        Effect.callback<number, Error>((resume) =>
          server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => resume(e === null ? Effect.succeed(p) : Effect.fail(e)))
        ),
        () => Effect.sync(() => server.forceShutdown())
      )
      const client = yield* Effect.acquireRelease(
        Effect.sync(() => new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure())),
        (c) => Effect.sync(() => c.close())
      )
      const expected = httpDate(NOW)

      const ok = yield* call(client, "Ok")
      assert.strictEqual(ok.code, grpc.status.OK)
      assert.deepStrictEqual(ok.headers, [expected])
      assert.deepStrictEqual(ok.trailers, [])

      // Trailers-only: its one block is both the headers and the status.
      const fail = yield* call(client, "Fail")
      assert.strictEqual(fail.code, grpc.status.INVALID_ARGUMENT)
      assert.deepStrictEqual(fail.trailers, [expected])

      yield* TestClock.adjust(61_000)
      const streamed = yield* call(client, "StreamThenFail")
      assert.strictEqual(streamed.code, grpc.status.UNAVAILABLE)
      assert.deepStrictEqual(streamed.headers, [httpDate(NOW + 61_000)])
      assert.deepStrictEqual(streamed.trailers, [])
    }))
})

/**
 * The pure parts of the gRPC server: endpoint parsing, request redaction and status mapping.
 */
import { assert, describe, it } from "@effect/vitest"
import * as grpc from "@grpc/grpc-js"
import { Cause, Result } from "effect"
import {
  grpcAddress,
  grpcStatusOf,
  INTERNAL_DETAIL,
  parseEndpoint,
  REDACTED,
  redactRequest,
  statusOfCause
} from "../../../src/csi/GrpcServer.ts"
import { CsiCode, CsiError } from "../../../src/services/CsiPlugin.ts"
import { TOKENS_KEY } from "../../../src/domain/Token.ts"

const parsed = (endpoint: string) => Result.getOrThrow(parseEndpoint(endpoint))
const rejected = (endpoint: string) => {
  const result = parseEndpoint(endpoint)
  assert.isTrue(Result.isFailure(result), endpoint)
  return Result.isFailure(result) ? result.failure : undefined
}

describe("parseEndpoint", () => {
  it("takes an absolute unix path as is", () => {
    assert.deepStrictEqual(parsed("unix:///plugin/csi.sock"), { _tag: "Unix", path: "/plugin/csi.sock" })
  })

  it("makes the unix://host/path form absolute, as the Go driver does", () => {
    assert.deepStrictEqual(parsed("unix://plugin/csi.sock"), { _tag: "Unix", path: "/plugin/csi.sock" })
    assert.deepStrictEqual(parsed("unix://csi.sock"), { _tag: "Unix", path: "/csi.sock" })
  })

  it("normalises dots and repeated slashes", () => {
    assert.deepStrictEqual(parsed("unix:////plugin//./x/../csi.sock"), { _tag: "Unix", path: "/plugin/csi.sock" })
  })

  it("parses tcp host:port, IPv6 literals and an empty host", () => {
    assert.deepStrictEqual(parsed("tcp://127.0.0.1:10000"), { _tag: "Tcp", host: "127.0.0.1", port: 10000 })
    assert.deepStrictEqual(parsed("tcp://localhost:0"), { _tag: "Tcp", host: "localhost", port: 0 })
    assert.deepStrictEqual(parsed("tcp://[::1]:9000"), { _tag: "Tcp", host: "[::1]", port: 9000 })
    assert.deepStrictEqual(parsed("tcp://:10000"), { _tag: "Tcp", host: "0.0.0.0", port: 10000 })
  })

  it("rejects anything else with a clear InvalidEndpoint error", () => {
    for (
      const endpoint of [
        "",
        "/csi/csi.sock",
        "unix:/csi.sock",
        "unix://",
        "unix:///",
        "unix:///plugin/",
        "http://localhost:80",
        "tcp://localhost",
        "tcp://localhost:65536",
        "tcp://localhost:port",
        "tcp://a:1/path"
      ]
    ) {
      const error = rejected(endpoint)
      assert.strictEqual(error?.reason, "InvalidEndpoint", endpoint)
      assert.strictEqual(error?.endpoint, endpoint)
      assert.isAbove(error?.message.length ?? 0, endpoint.length)
    }
  })

  it("renders grpc-js addresses", () => {
    assert.strictEqual(grpcAddress(parsed("unix://plugin/csi.sock")), "unix:///plugin/csi.sock")
    assert.strictEqual(grpcAddress(parsed("tcp://[::1]:9000")), "[::1]:9000")
  })
})

describe("redactRequest", () => {
  const request = {
    volume_id: "csi-1",
    secrets: { password: "hunter2" },
    volume_context: {
      "csi.storage.k8s.io/pod.name": "pod-a",
      [TOKENS_KEY]: "{\"\":{\"token\":\"jwt\"}}"
    },
    volume_capability: { mount: { fs_type: "" }, access_type: "mount" },
    nested: [{ secrets: { k: "v" } }]
  }

  it("strips secrets and the ServiceAccount tokens, keeps everything else", () => {
    assert.deepStrictEqual(redactRequest(request), {
      volume_id: "csi-1",
      secrets: REDACTED,
      volume_context: { "csi.storage.k8s.io/pod.name": "pod-a", [TOKENS_KEY]: REDACTED },
      volume_capability: { mount: { fs_type: "" }, access_type: "mount" },
      nested: [{ secrets: REDACTED }]
    })
  })

  it("never mutates its input", () => {
    const before = JSON.stringify(request)
    redactRequest(request)
    assert.strictEqual(JSON.stringify(request), before)
  })

  it("leaves a volume_context without tokens and non-objects alone", () => {
    assert.deepStrictEqual(redactRequest({ volume_context: { a: "b" } }), { volume_context: { a: "b" } })
    assert.strictEqual(redactRequest("text"), "text")
    assert.strictEqual(redactRequest(null), null)
    assert.strictEqual(redactRequest(undefined), undefined)
  })
})

describe("status mapping", () => {
  it("maps every CsiCode to the gRPC code of the same name", () => {
    const expected: Record<CsiCode, number> = {
      InvalidArgument: 3,
      NotFound: 5,
      AlreadyExists: 6,
      FailedPrecondition: 9,
      Aborted: 10,
      Unavailable: 14,
      Unauthenticated: 16,
      PermissionDenied: 7,
      DeadlineExceeded: 4,
      ResourceExhausted: 8,
      Internal: 13,
      Unimplemented: 12,
      Unknown: 2
    }
    for (const code of CsiCode.literals) assert.strictEqual(grpcStatusOf(code), expected[code], code)
  })

  it("keeps a CsiError's detail, hides a defect, reports interruption as UNAVAILABLE", () => {
    const failed = statusOfCause(Cause.fail(new CsiError({ code: "NotFound", detail: "no such volume" })))
    assert.deepStrictEqual([failed.code, failed.details], [grpc.status.NOT_FOUND, "no such volume"])
    const died = statusOfCause(Cause.die(new Error("ENOENT /var/lib/secret")))
    assert.deepStrictEqual([died.code, died.details], [grpc.status.INTERNAL, INTERNAL_DETAIL])
    assert.strictEqual(statusOfCause(Cause.interrupt()).code, grpc.status.UNAVAILABLE)
  })
})

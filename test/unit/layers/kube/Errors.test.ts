/**
 * How API failures become KubeErrors, for the live and the memory KubeClient alike: the HTTP
 * status table (409 by verb, 429 and 5xx retryable), the status each reason stands for, the
 * bounded detail, and decode summaries that name paths and types but never the rejected values.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { decodeSummary, kubeError, reasonOf, statusOf, truncate } from "../../../../src/layers/kube/Errors.ts"
import type { Verb } from "../../../../src/layers/kube/Errors.ts"
import type { KubeErrorReason } from "../../../../src/services/KubeClient.ts"

describe("reasonOf", () => {
  it("maps the API server's statuses", () => {
    const table: ReadonlyArray<readonly [number, KubeErrorReason]> = [
      [404, "NotFound"],
      [400, "Invalid"],
      [422, "Invalid"],
      [403, "Forbidden"],
      [401, "Unauthorized"],
      [410, "Gone"],
      [429, "Unavailable"],
      [500, "Unavailable"],
      [503, "Unavailable"],
      [504, "Unavailable"],
      [418, "Unknown"]
    ]
    for (const [status, reason] of table) assert.strictEqual(reasonOf("get", status), reason, String(status))
  })

  it("409 is AlreadyExists on create and Conflict on every other verb", () => {
    assert.strictEqual(reasonOf("create", 409), "AlreadyExists")
    for (const verb of ["get", "list", "watch", "delete", "replace", "replaceStatus"] as const) assert.strictEqual(reasonOf(verb, 409), "Conflict", verb)
  })

  it("statusOf is its inverse, so injected failures carry the status a live one would", () => {
    const reasons: ReadonlyArray<readonly [KubeErrorReason, Verb]> = [
      ["NotFound", "get"],
      ["AlreadyExists", "create"],
      ["Conflict", "replace"],
      ["Invalid", "create"],
      ["Forbidden", "list"],
      ["Unauthorized", "watch"],
      ["Gone", "watch"],
      ["Unavailable", "get"]
    ]
    for (const [reason, verb] of reasons) assert.strictEqual(reasonOf(verb, statusOf(reason)!), reason, reason)
    assert.isUndefined(statusOf("Decode"))
    assert.isUndefined(statusOf("Unknown"))
  })
})

describe("kubeError", () => {
  it("names the operation, defaults the status to the reason's and bounds the detail", () => {
    const e = kubeError("replaceStatus", "Conflict", "x".repeat(1000))
    assert.strictEqual(e.operation, "KubeClient.replaceStatus")
    assert.strictEqual(e.reason, "Conflict")
    assert.strictEqual(e.status, 409)
    assert.strictEqual(e.detail, truncate("x".repeat(1000)))
    assert.strictEqual(e.detail.length, 301)
    assert.isTrue(e.detail.endsWith("…"))
    assert.strictEqual(kubeError("get", "NotFound", "gone", 410).status, 410, "an explicit status wins")
    assert.isUndefined(kubeError("list", "Decode", "bad").status)
    assert.strictEqual(truncate("short"), "short")
  })
})

describe("decodeSummary", () => {
  const Secretish = Schema.Struct({
    metadata: Schema.Struct({ name: Schema.String }),
    spec: Schema.Struct({ request: Schema.String, duration: Schema.Number })
  })

  it("names the paths and expected types, never the rejected values", () =>
    Effect.gen(function*() {
      const input = { metadata: {}, spec: { request: 123456789, duration: "SECRET-TOKEN-VALUE" } }
      const error = yield* Effect.flip(Schema.decodeUnknownEffect(Secretish)(input))
      const summary = decodeSummary("CertificateRequest team-a/cr-1", error)
      assert.match(summary, /^CertificateRequest team-a\/cr-1 does not match the schema: /)
      assert.include(summary, "metadata.name: Missing key")
      assert.include(summary, "spec.request")
      assert.include(summary, "spec.duration")
      assert.notInclude(summary, "SECRET-TOKEN-VALUE")
      assert.notInclude(summary, "123456789")
    }))

  it("names at most five issues and counts the rest", () =>
    Effect.gen(function*() {
      const Many = Schema.Struct({ a: Schema.String, b: Schema.String, c: Schema.String, d: Schema.String, e: Schema.String, f: Schema.String, g: Schema.String })
      const error = yield* Effect.flip(Schema.decodeUnknownEffect(Many)({}, { errors: "all" }))
      const summary = decodeSummary("thing", error)
      assert.include(summary, "(and 2 more)")
      assert.strictEqual(summary.split(": Missing key").length - 1, 5)
    }))
})

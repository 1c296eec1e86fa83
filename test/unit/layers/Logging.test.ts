/**
 * Log lines as Kubernetes components write them: golden klog text and JSON lines with a fixed
 * TestClock time and process id, the message as one string with values as structured keys, klog
 * verbosity, and secrets kept out.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Layer, Logger, Redacted, References, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Logging from "../../../src/layers/Logging.ts"

const PID = 20761
/** 2026-12-01T20:40:29.766Z */
const AT = Date.UTC(2026, 11, 1, 20, 40, 29, 766)

/** Runs `effect` with the `format` logger writing into `lines`, at verbosity `v`. */
const capture = <A, E>(format: "text" | "json", effect: Effect.Effect<A, E>, v = 1) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    yield* TestClock.setTime(AT)
    yield* effect.pipe(
      Effect.provide(Layer.mergeAll(
        Logger.layer([Logger.map(Logging.make(format, PID), (line) => void lines.push(line))]),
        Layer.succeed(References.MinimumLogLevel, Logging.minimumLevel(v))
      ))
    )
    return lines
  })

const issue = Effect.fn("Issuance.issue")(function*() {
  yield* Effect.logInfo("certificate written", { volume: "csi-1", serial: 42, renewIn: "40m0s" })
})

describe("klog text", () => {
  it.effect("golden line: header, caller, quoted message, key=value pairs", () =>
    Effect.gen(function*() {
      const [line] = yield* capture("text", issue())
      assert.match(line!, /^I1201 20:40:29\.766000   20761 Logging\.test\.ts:\d+\] /)
      assert.strictEqual(
        line!.replace(/Logging\.test\.ts:\d+/, "Logging.test.ts:L"),
        "I1201 20:40:29.766000   20761 Logging.test.ts:L] \"certificate written\" volume=\"csi-1\" serial=42 renewIn=\"40m0s\""
      )
    }))

  it("formatText golden line with a fixed caller", () => {
    const entry = Logging.entryOf(["starting SPIFFE approver...", { logger: "main" }], {}, Cause.empty)
    assert.strictEqual(
      Logging.formatText("Info", new Date(AT), PID, "app.go:130", entry),
      "I1201 20:40:29.766000   20761 app.go:130] \"starting SPIFFE approver...\" logger=\"main\""
    )
  })

  it.effect("severity letters: W for warnings, E for errors with err=", () =>
    Effect.gen(function*() {
      const lines = yield* capture(
        "text",
        Effect.gen(function*() {
          yield* Effect.logWarning("lease update failed", { lease: "cert-manager/x" })
          yield* Effect.logError("CSI call died", new Error("boom"))
        })
      )
      assert.match(lines[0]!, /^W1201 .* "lease update failed" lease="cert-manager\/x"$/)
      assert.match(lines[1]!, /^E1201 .* "CSI call died" err="boom"$/)
    }))

  it.effect("the message is one string: further strings become detail keys, annotations key/values", () =>
    Effect.gen(function*() {
      const [line] = yield* capture(
        "text",
        Effect.logWarning("reconcile failed; will retry", "Unavailable: timeout", "5s").pipe(Effect.annotateLogs({ key: "ns/cr" }))
      )
      assert.match(line!, /"reconcile failed; will retry" detail="Unavailable: timeout" detail2="5s" key="ns\/cr"$/)
    }))

  it.effect("klog verbosity: debug needs -v=4, trace -v=5; info always shows", () =>
    Effect.gen(function*() {
      const logs = Effect.gen(function*() {
        yield* Effect.logInfo("info")
        yield* Effect.logDebug("debug")
        yield* Effect.logTrace("trace")
      })
      const count = (lines: ReadonlyArray<string>) => lines.map((l) => /"(\w+)"/.exec(l)?.[1])
      assert.deepStrictEqual(count(yield* capture("text", logs, 0)), ["info"])
      assert.deepStrictEqual(count(yield* capture("text", logs, 3)), ["info"])
      assert.deepStrictEqual(count(yield* capture("text", logs, 4)), ["info", "debug"])
      assert.deepStrictEqual(count(yield* capture("text", logs, 5)), ["info", "debug", "trace"])
    }))

  it.effect("a Redacted value prints as <redacted>", () =>
    Effect.gen(function*() {
      const lines = yield* capture("text", Effect.logInfo("token read", { token: Redacted.make("s3cr3t-token") }))
      const json = yield* capture("json", Effect.logInfo("token read", { token: Redacted.make("s3cr3t-token") }))
      for (const l of [...lines, ...json]) {
        assert.notInclude(l, "s3cr3t-token")
        assert.include(l, "<redacted>")
      }
    }))

  it.effect("an Error inside a logged value prints as its message: not its fields, not its cause", () =>
    Effect.gen(function*() {
      class CallError extends Schema.TaggedError<CallError>()("CallError", { detail: Schema.String, cause: Schema.optional(Schema.Defect()) }) {
        override get message() {
          return `call failed: ${this.detail}`
        }
      }
      // A library's error with a field it should not have: the request's headers.
      const thrown = Object.assign(new TypeError("fetch failed"), { headers: { authorization: "Bearer s3cr3t-token" } })
      const error = new CallError({ detail: "refused", cause: thrown })
      const logged = Effect.logWarning("call failed", { failure: error, nested: { thrown } })
      for (const line of [...yield* capture("text", logged), ...yield* capture("json", logged)]) {
        assert.notInclude(line, "s3cr3t-token")
        assert.include(line, "call failed: refused")
        assert.include(line, "fetch failed")
      }
    }))

  it.effect("outside any Effect.fn the caller is klog's ???:1", () =>
    Effect.gen(function*() {
      const [line] = yield* capture("text", Effect.logInfo("bare"))
      assert.strictEqual(line, "I1201 20:40:29.766000   20761 ???:1] \"bare\"")
    }))
})

describe("Kubernetes JSON", () => {
  it.effect("golden line: ts (epoch ms), caller, msg, v, then the key/value pairs", () =>
    Effect.gen(function*() {
      const [line] = yield* capture("json", issue())
      assert.strictEqual(
        line!.replace(/Logging\.test\.ts:\d+/, "Logging.test.ts:L"),
        `{"ts":${AT},"caller":"Logging.test.ts:L","msg":"certificate written","v":0,"volume":"csi-1","serial":42,"renewIn":"40m0s"}`
      )
    }))

  it.effect("errors have no v and carry err last; debug lines v=4", () =>
    Effect.gen(function*() {
      const lines = yield* capture(
        "json",
        Effect.gen(function*() {
          yield* Effect.logError("the kubelet could not register the plugin", { endpoint: "/p", error: new Error("refused") })
          yield* Effect.logDebug("CSI call started", { method: "NodePublishVolume" })
        }),
        4
      )
      assert.strictEqual(lines[0], `{"ts":${AT},"caller":"???:1","msg":"the kubelet could not register the plugin","endpoint":"/p","err":"refused"}`)
      assert.strictEqual(lines[1], `{"ts":${AT},"caller":"???:1","msg":"CSI call started","v":4,"method":"NodePublishVolume"}`)
    }))
})

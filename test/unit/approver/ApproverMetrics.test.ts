import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { countWatchRestart, reasonField, timeReconcile } from "../../../src/approver/ApproverMetrics.ts"

const sample = (text: string, prefix: string) => text.split("\n").filter((l) => l.startsWith(prefix)).sort()

describe("approver metrics", () => {
  it("labels a denial by the field its reason names, and never by free text", () => {
    assert.strictEqual(reasonField("spec.duration: must be exactly 1h0m0s, got 3h0m0s"), "spec.duration")
    assert.strictEqual(reasonField("csr.uris[0]: trust domain must be foo.bar"), "csr.uris[0]")
    assert.strictEqual(reasonField("no colon here"), "other")
    assert.strictEqual(reasonField("a field with spaces: x"), "other")
  })

  it.effect("counts decisions by result, denial fields once per reconcile, and watch restarts by cause", () =>
    Effect.gen(function*() {
      yield* timeReconcile(Effect.succeed({ _tag: "Approved" } as const))
      yield* timeReconcile(Effect.succeed({ _tag: "Denied", reasons: ["spec.duration: a", "spec.duration: b", "spec.usages: c"] } as const))
      yield* Effect.exit(timeReconcile(Effect.fail("boom")))
      yield* countWatchRestart("gone")
      const text = yield* PrometheusMetrics.format()
      assert.deepStrictEqual(sample(text, "csi_spiffe_approver_decisions_total"), [
        'csi_spiffe_approver_decisions_total{result="approved"} 1',
        'csi_spiffe_approver_decisions_total{result="denied"} 1',
        'csi_spiffe_approver_decisions_total{result="error"} 1'
      ])
      assert.deepStrictEqual(sample(text, "csi_spiffe_approver_denial_reasons_total"), [
        'csi_spiffe_approver_denial_reasons_total{field="spec.duration"} 1',
        'csi_spiffe_approver_denial_reasons_total{field="spec.usages"} 1'
      ])
      assert.deepStrictEqual(sample(text, "csi_spiffe_approver_watch_restarts_total"), ['csi_spiffe_approver_watch_restarts_total{cause="gone"} 1'])
      assert.deepStrictEqual(sample(text, "csi_spiffe_approver_reconcile_duration_seconds_count"), ["csi_spiffe_approver_reconcile_duration_seconds_count 3"])
    }))
})

import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { answered, intermediate, timeReconcile } from "../../../src/signer/SignerMetrics.ts"

const sample = (text: string, prefix: string) => text.split("\n").filter((l) => l.startsWith(prefix)).sort()

describe("signer metrics", () => {
  it.effect("counts reconciles by outcome, answers by result and reason, intermediates by result", () =>
    Effect.gen(function*() {
      yield* timeReconcile(Effect.succeed("issued" as const))
      yield* timeReconcile(Effect.succeed("waiting" as const))
      assert.deepStrictEqual(yield* Effect.exit(timeReconcile(Effect.fail("boom"))), Exit.fail("boom"))
      yield* answered("issued", "SpiffeSvidIssued", 3)
      yield* answered("denied", "UnsupportedKeyType", undefined)
      yield* intermediate("error")
      const text = yield* PrometheusMetrics.format()
      assert.deepStrictEqual(sample(text, "csi_spiffe_signer_reconciles_total"), [
        'csi_spiffe_signer_reconciles_total{result="error"} 1',
        'csi_spiffe_signer_reconciles_total{result="issued"} 1',
        'csi_spiffe_signer_reconciles_total{result="waiting"} 1'
      ])
      assert.deepStrictEqual(sample(text, "csi_spiffe_signer_requests_total"), [
        'csi_spiffe_signer_requests_total{result="denied",reason="UnsupportedKeyType"} 1',
        'csi_spiffe_signer_requests_total{result="issued",reason="SpiffeSvidIssued"} 1'
      ])
      assert.deepStrictEqual(sample(text, "csi_spiffe_signer_reconcile_duration_seconds_count"), ["csi_spiffe_signer_reconcile_duration_seconds_count 3"])
      // Only answers with a known creationTimestamp have a latency.
      assert.deepStrictEqual(sample(text, "csi_spiffe_signer_issue_latency_seconds_count"), ["csi_spiffe_signer_issue_latency_seconds_count 1"])
      assert.deepStrictEqual(sample(text, "csi_spiffe_signer_intermediates_total"), ['csi_spiffe_signer_intermediates_total{result="error"} 1'])
    }))
})

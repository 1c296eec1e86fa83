/**
 * The bookkeeping of failed first publishes (`layers/volumeManager/Publish.ts`, the volume map in
 * `State.ts`) over a scripted Issuance: nothing of them stays in memory, in the metrics or on disk.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { renderVolumeGauges } from "../../../../src/layers/DriverMetrics.ts"
import { VolumeManager } from "../../../../src/services/VolumeManager.ts"
import { VolumeStore } from "../../../../src/services/VolumeStore.ts"
import { nextAttempt, publish, setOutcome, stack } from "../../../support/ScriptedIssuance.ts"

describe("first publish", () => {
  it.effect("30 failed first publishes leave no entry, no metric series and no files", () =>
    Effect.gen(function*() {
      const manager = yield* VolumeManager
      const store = yield* VolumeStore
      yield* setOutcome("Denied")
      for (let i = 0; i < 30; i++) {
        const exit = yield* Effect.exit(publish(`failed-${i}`))
        assert.isTrue(Exit.isFailure(exit), `publish ${i} fails`)
        yield* nextAttempt
      }
      assert.deepStrictEqual(yield* manager.statuses, [])
      assert.strictEqual(yield* manager.managed, 0)
      const gauges = renderVolumeGauges("test-node", yield* manager.statuses)
      assert.notInclude(gauges, "csi_spiffe_volume_ready{")
      assert.include(gauges, 'csi_spiffe_managed_volumes{node="test-node"} 0')
      assert.deepStrictEqual(yield* store.list, [])
      // A later publish of one of them works from a clean slate.
      yield* setOutcome("Sign")
      yield* publish("failed-3")
      assert.strictEqual((yield* manager.status("failed-3"))?.issued, true)
      assert.strictEqual((yield* manager.statuses).length, 1)
    }).pipe(Effect.provide(stack)), { timeout: 10_000 })
})

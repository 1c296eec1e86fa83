/**
 * The volume map and the per-volume state (`layers/volumeManager/State.ts`) on their own: when a
 * volume leaves the map (nothing issued, no publish left, not being unpublished), that `remove`
 * with a state never takes a newer entry, that a wake-up ends exactly the wait taken before it, and
 * what the status reports.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Redacted, Ref } from "effect"
import { VolumeMetadata } from "../../../../src/domain/VolumeMetadata.ts"
import { makeVolumes, statusOf, wakeUp } from "../../../../src/layers/volumeManager/State.ts"

const meta = (volumeId: string, nextIssuanceAt?: number) =>
  new VolumeMetadata({
    volumeId,
    targetPath: `/var/lib/kubelet/pods/p/volumes/kubernetes.io~csi/${volumeId}/mount`,
    podName: "my-csi-app",
    podNamespace: "sandbox",
    podUid: "0b8c8a1e-3c1f-4a52-9d39-5f1d2e6b7a10",
    serviceAccount: "example-app",
    spiffeId: "spiffe://foo.bar/ns/sandbox/sa/example-app",
    ...(nextIssuanceAt === undefined ? {} : { nextIssuanceAt, notAfter: nextIssuanceAt + 1_000 })
  })

describe("the volume map", () => {
  it.effect("a volume nothing was issued for leaves with its last publish, not before", () =>
    Effect.gen(function*() {
      const volumes = yield* makeVolumes
      const first = yield* volumes.enter(meta("v1"))
      const second = yield* volumes.enter(meta("v1"))
      assert.strictEqual(second, first, "a second publish of the id shares the state")
      yield* volumes.leave(first)
      assert.strictEqual(yield* volumes.get("v1"), first, "one publish is still in flight")
      yield* volumes.leave(second)
      assert.isUndefined(yield* volumes.get("v1"))
      assert.strictEqual(yield* volumes.size, 0)
    }))

  it.effect("an issued volume stays when its publishes leave; a resumed one counts no publish", () =>
    Effect.gen(function*() {
      const volumes = yield* makeVolumes
      const state = yield* volumes.enter(meta("v1"))
      yield* Ref.set(state.meta, meta("v1", 5_000))
      yield* volumes.leave(state)
      assert.strictEqual(yield* volumes.get("v1"), state)

      const resumed = yield* volumes.resume(meta("v2"))
      const entered = yield* volumes.enter(meta("v2"))
      assert.strictEqual(entered, resumed)
      yield* volumes.leave(entered)
      assert.isUndefined(yield* volumes.get("v2"), "resume added no publish that would keep it")
      assert.deepStrictEqual((yield* volumes.all).map((s) => s.volumeId), ["v1"])
    }))

  it.effect("an unpublished volume stays until its unpublish removes it; remove with a state spares a newer entry", () =>
    Effect.gen(function*() {
      const volumes = yield* makeVolumes
      const old = yield* volumes.enter(meta("v1"))
      yield* Deferred.succeed(old.unpublished, undefined)
      yield* volumes.leave(old)
      assert.strictEqual(yield* volumes.get("v1"), old, "a publish arriving now must find it")
      yield* volumes.remove("v1", old)
      assert.isUndefined(yield* volumes.get("v1"))

      const newer = yield* volumes.enter(meta("v1"))
      assert.notStrictEqual(newer, old)
      yield* volumes.remove("v1", old)
      yield* volumes.leave(old)
      assert.strictEqual(yield* volumes.get("v1"), newer, "the old state neither removes nor releases the new entry")
      yield* volumes.remove("v1")
      assert.isUndefined(yield* volumes.get("v1"))
    }))
})

describe("a volume's state", () => {
  it.effect("a wake-up completes the signal taken before it and leaves a fresh one for the next wait", () =>
    Effect.gen(function*() {
      const volumes = yield* makeVolumes
      const state = yield* volumes.resume(meta("v1", 5_000))
      const taken = yield* Ref.get(state.wake)
      assert.isFalse(yield* Deferred.isDone(taken))
      yield* wakeUp(state)
      assert.isTrue(yield* Deferred.isDone(taken))
      const next = yield* Ref.get(state.wake)
      assert.notStrictEqual(next, taken)
      assert.isFalse(yield* Deferred.isDone(next), "the next wait is not ended by the past wake-up")
    }))

  it.effect("the status reports the metadata, whether a token is held, and the retry instant", () =>
    Effect.gen(function*() {
      const volumes = yield* makeVolumes
      const state = yield* volumes.enter(meta("v1"))
      assert.deepStrictEqual(yield* statusOf(state), {
        volumeId: "v1",
        podNamespace: "sandbox",
        podName: "my-csi-app",
        issued: false,
        hasToken: false,
        nextIssuanceAt: undefined,
        notAfter: undefined,
        retryAt: undefined
      })
      yield* Ref.set(state.meta, meta("v1", 5_000))
      yield* Ref.set(state.token, { token: Redacted.make("t"), namespace: "sandbox", serviceAccount: "example-app", podName: "my-csi-app", podUid: "u", expiresAt: undefined })
      yield* Ref.set(state.retryAt, 7_000)
      assert.deepStrictEqual(yield* statusOf(state), {
        volumeId: "v1",
        podNamespace: "sandbox",
        podName: "my-csi-app",
        issued: true,
        hasToken: true,
        nextIssuanceAt: 5_000,
        notAfter: 6_000,
        retryAt: 7_000
      })
    }))
})

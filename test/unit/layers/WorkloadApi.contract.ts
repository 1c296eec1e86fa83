/**
 * The WorkloadApi contract: what serving one volume means, run by `WorkloadApi.test.ts` against
 * the live server (`csi/WorkloadApiServer.ts`, grpc-js on a real unix socket, read by a real
 * grpc-js client) and the memory twin (`layers/WorkloadApi.ts`, read through the stream it
 * recorded). Not a test file itself (no `.test.`). Every wait ends on a message or a signal.
 *
 * The contract: while the scope is open the volume is served and a workload gets the current SVID
 * first, then every change, each as the full state; a workload that connects before the first SVID
 * waits for it; two volumes never see each other's SVID; closing the scope ends the serving.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Queue, Redacted, Scope, Stream, SubscriptionRef } from "effect"
import type { Layer } from "effect"
import { WorkloadApi } from "../../../src/services/WorkloadApi.ts"
import type { VolumeSvid, WorkloadEndpoint } from "../../../src/services/WorkloadApi.ts"

const TD = "spiffe://foo.bar"

export const svid = (sa: string, generation: number, bundle = "bundle-A"): VolumeSvid => ({
  spiffeId: `${TD}/ns/sandbox/sa/${sa}`,
  trustDomainId: TD,
  chainDer: Buffer.from(`chain ${sa} ${generation}`),
  keyDer: Redacted.make(Buffer.from(`key ${sa} ${generation}`)),
  bundleDer: Buffer.from(bundle)
})

/** What a workload receives, reduced to what both implementations can show. */
export interface Seen {
  readonly spiffeId: string
  readonly chain: string
  readonly bundle: string
}

/** How one implementation is observed from the workload's side. */
export interface Observer<R> {
  /** An endpoint for `volumeId` (a socket path in a fresh directory for the live server). */
  readonly endpoint: (volumeId: string) => Effect.Effect<WorkloadEndpoint, never, Scope.Scope | R>
  /** A workload reading the volume's SVIDs: each one it receives, in order. */
  readonly connect: (endpoint: WorkloadEndpoint) => Effect.Effect<Queue.Dequeue<Seen>, never, Scope.Scope | R>
  /** Whether the volume is being served (the socket exists; the twin holds the volume). */
  readonly served: (endpoint: WorkloadEndpoint) => Effect.Effect<boolean, never, R>
  /** Completes when a workload connected before the first SVID is known is surely waiting on it. */
  readonly connected: (endpoint: WorkloadEndpoint) => Effect.Effect<void, never, Scope.Scope | R>
}

/** A served volume whose SVID the test sets; `close` ends it as an unpublish does. */
const serve = <R>(observer: Observer<R>, volumeId: string, initial: VolumeSvid | undefined) =>
  Effect.gen(function*() {
    const api = yield* WorkloadApi
    const endpoint = yield* observer.endpoint(volumeId)
    const ref = yield* SubscriptionRef.make<VolumeSvid | undefined>(initial)
    const scope = yield* Scope.make()
    yield* api.serve(endpoint, SubscriptionRef.changes(ref).pipe(Stream.filter((s) => s !== undefined))).pipe(Scope.provide(scope))
    return { endpoint, set: (s: VolumeSvid) => SubscriptionRef.set(ref, s), close: Scope.close(scope, undefined as never) }
  })

const seen = (s: VolumeSvid): Seen => ({
  spiffeId: s.spiffeId,
  chain: Buffer.from(s.chainDer).toString(),
  bundle: Buffer.from(s.bundleDer).toString()
})

export const contract = <R, LE>(name: string, layer: Layer.Layer<WorkloadApi | R, LE>, observer: Observer<R>) =>
  describe(`WorkloadApi contract: ${name}`, () => {
    const run = <A, E>(effect: Effect.Effect<A, E, WorkloadApi | R | Scope.Scope>) =>
      effect.pipe(Effect.scoped, Effect.provide(layer))

    it.effect("the current SVID first, then every change as the full state", () =>
      run(Effect.gen(function*() {
        const v = yield* serve(observer, "v1", svid("a", 1))
        const workload = yield* observer.connect(v.endpoint)
        assert.deepStrictEqual(yield* Queue.take(workload), seen(svid("a", 1)))
        yield* v.set(svid("a", 2))
        assert.deepStrictEqual(yield* Queue.take(workload), seen(svid("a", 2)))
        yield* v.set(svid("a", 2, "bundle-B"))
        assert.deepStrictEqual(yield* Queue.take(workload), seen(svid("a", 2, "bundle-B")), "a CA change carries the chain again")
      })))

    it.effect("a workload that comes before the first SVID waits for it", () =>
      run(Effect.gen(function*() {
        const v = yield* serve(observer, "v1", undefined)
        const workload = yield* observer.connect(v.endpoint)
        yield* observer.connected(v.endpoint)
        assert.strictEqual(yield* Queue.size(workload), 0)
        yield* v.set(svid("a", 1))
        assert.deepStrictEqual(yield* Queue.take(workload), seen(svid("a", 1)))
      })))

    it.effect("two volumes never see each other's SVID", () =>
      run(Effect.gen(function*() {
        const a = yield* serve(observer, "v1", svid("a", 1))
        const b = yield* serve(observer, "v2", svid("b", 1))
        const wa = yield* observer.connect(a.endpoint)
        const wb = yield* observer.connect(b.endpoint)
        assert.strictEqual((yield* Queue.take(wa)).spiffeId, `${TD}/ns/sandbox/sa/a`)
        assert.strictEqual((yield* Queue.take(wb)).spiffeId, `${TD}/ns/sandbox/sa/b`)
        yield* b.set(svid("b", 2))
        yield* a.set(svid("a", 2))
        assert.deepStrictEqual(yield* Queue.take(wa), seen(svid("a", 2)), "a's workload skipped b's renewal")
        assert.deepStrictEqual(yield* Queue.take(wb), seen(svid("b", 2)))
        assert.strictEqual(yield* Queue.size(wa), 0)
      })))

    it.effect("served while the scope is open, not after it closes", () =>
      run(Effect.gen(function*() {
        const v = yield* serve(observer, "v1", svid("a", 1))
        assert.isTrue(yield* observer.served(v.endpoint))
        yield* v.close
        assert.isFalse(yield* observer.served(v.endpoint))
      })))
  })

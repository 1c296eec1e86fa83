/**
 * The CaBundle contract: what a changing bundle source must do, run by `CaBundle.test.ts` against
 * `layerFile` (a real file and directory watch) and `layerMemory` (the twin tests set). Not a test
 * file itself (no `.test.`), so it runs only through it. Every wait ends on a signal (a published
 * change, a refusal), bounded by WAIT, never a fixed sleep.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream, SubscriptionRef } from "effect"
import type { Scope } from "effect"
import type { CaBundleShape } from "../../../src/services/CaBundle.ts"
import { makeTestCa } from "../../support/TestSigner.ts"

/** Bounded waits: far above the file layer's 100 ms debounce, far below the test timeout. */
export const WAIT = "10 seconds"

/** Distinct valid bundles: one CA each, and one with two CAs. */
export const bundles = Effect.gen(function*() {
  const [a, b, c, d] = yield* Effect.all([makeTestCa("ca-a"), makeTestCa("ca-b"), makeTestCa("ca-c"), makeTestCa("ca-d")])
  return { A: a!.certPem, B: b!.certPem, C: c!.certPem, D: d!.certPem, AB: a!.certPem + b!.certPem }
})

/** Waits (bounded by WAIT) until `ref` holds at least `n` entries; returns them. */
export const reach = <A>(ref: SubscriptionRef.SubscriptionRef<ReadonlyArray<A>>, n: number, what: string) =>
  SubscriptionRef.changes(ref).pipe(
    Stream.filter((xs) => xs.length >= n),
    Stream.runHead,
    Effect.timeoutOrElse({ duration: WAIT, orElse: () => Effect.die(new Error(`timed out waiting for ${n} ${what}`)) }),
    Effect.flatMap(() => SubscriptionRef.get(ref))
  )

/** Records every change `bundle` publishes from now on, subscribed before this returns. */
export const recordChanges = (bundle: CaBundleShape) =>
  Effect.gen(function*() {
    const changes = yield* SubscriptionRef.make<ReadonlyArray<string>>([])
    yield* bundle.changes.pipe(
      Stream.runForEach((pem) => SubscriptionRef.update(changes, (xs) => [...xs, pem])),
      Effect.forkScoped({ startImmediately: true })
    )
    return { changes, changesReach: (n: number) => reach(changes, n, "changes") }
  })

/** One bundle source under test, started with some initial bundle. */
export interface Subject {
  readonly bundle: CaBundleShape
  /** Makes `pem` the source's new content (the file replaced, or `CaBundleMemory.set`). */
  readonly replace: (pem: string) => Effect.Effect<void>
  /** Waits until the source has refused `n` contents (an error logged, or `set` failing). */
  readonly refusalsReach: (n: number) => Effect.Effect<void>
}

const INVALID = "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"

export const contractSuite = (name: string, start: (initial: string) => Effect.Effect<Subject, unknown, Scope.Scope>) =>
  describe(`CaBundle contract: ${name}`, () => {
    const setup = (initial: (pems: Effect.Success<typeof bundles>) => string) =>
      Effect.gen(function*() {
        const pems = yield* bundles
        const subject = yield* start(initial(pems))
        return { pems, subject, ...(yield* recordChanges(subject.bundle)) }
      })

    it.live("serves the initial bundle, all of its certificates", () =>
      Effect.gen(function*() {
        const { pems, subject } = yield* setup((p) => p.AB)
        assert.strictEqual(yield* subject.bundle.current, pems.AB)
      }))

    it.live("a new bundle is published and becomes current; the next follows in order", () =>
      Effect.gen(function*() {
        const { changesReach, pems, subject } = yield* setup((p) => p.A)
        assert.strictEqual(yield* subject.bundle.current, pems.A)
        yield* subject.replace(pems.B)
        assert.deepStrictEqual(yield* changesReach(1), [pems.B])
        assert.strictEqual(yield* subject.bundle.current, pems.B)
        yield* subject.replace(pems.C)
        assert.deepStrictEqual(yield* changesReach(2), [pems.B, pems.C])
        assert.strictEqual(yield* subject.bundle.current, pems.C)
      }))

    it.live("invalid content is refused: not published, the current bundle kept; valid content after it is published", () =>
      Effect.gen(function*() {
        const { changes, changesReach, pems, subject } = yield* setup((p) => p.A)
        yield* subject.replace(INVALID)
        yield* subject.refusalsReach(1)
        assert.strictEqual(yield* subject.bundle.current, pems.A)
        assert.deepStrictEqual(yield* SubscriptionRef.get(changes), [])
        yield* subject.replace("")
        yield* subject.refusalsReach(2)
        assert.strictEqual(yield* subject.bundle.current, pems.A)
        yield* subject.replace(pems.B)
        assert.deepStrictEqual(yield* changesReach(1), [pems.B])
        assert.strictEqual(yield* subject.bundle.current, pems.B)
      }))

    it.live("the same content again publishes nothing: the next real change is the first one published", () =>
      Effect.gen(function*() {
        const { changesReach, pems, subject } = yield* setup((p) => p.A)
        yield* subject.replace(pems.A)
        yield* subject.replace(pems.B)
        assert.deepStrictEqual(yield* changesReach(1), [pems.B])
        yield* subject.replace(pems.B)
        yield* subject.replace(pems.C)
        assert.deepStrictEqual(yield* changesReach(2), [pems.B, pems.C])
      }))
  })

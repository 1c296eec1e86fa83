/**
 * Lease leader election under the TestClock: two electors share one memory API server; at most one
 * leads at any instant; when the leader can no longer renew it stops its work within the renew
 * deadline and the other takes over once the lease has gone unrenewed for the lease duration; a
 * clean shutdown releases the lease so the successor starts within one retry period.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Logger, Ref, Scope } from "effect"
import type { Duration } from "effect"
import { TestClock } from "effect/testing"
import { Leases } from "../../../src/domain/KubeObjects.ts"
import { KubeClientMemory, layerMemory } from "../../../src/layers/KubeClient.ts"
import { make } from "../../../src/layers/LeaderElection.ts"
import { KubeClient, KubeError } from "../../../src/services/KubeClient.ts"
import type { KubeClientShape } from "../../../src/services/KubeClient.ts"
import type { LeaderElectionShape } from "../../../src/services/LeaderElection.ts"
import { macrotask } from "../../support/clock.ts"

const NS = "cert-manager"
const LEASE = "spiffe.csi.cert-manager.io"

/** A view of `client` that fails every call with Unavailable while `cut` is set (a network partition). */
const partitionable = (client: KubeClientShape, cut: Ref.Ref<boolean>): KubeClientShape => {
  const guard = <A>(operation: string, effect: Effect.Effect<A, KubeError>) =>
    Effect.flatMap(Ref.get(cut), (isCut) =>
      isCut ? Effect.fail(new KubeError({ operation, reason: "Unavailable", detail: "partitioned" })) : effect)
  return {
    get: (r, ns, n) => guard("get", client.get(r, ns, n)),
    list: (r, o) => guard("list", client.list(r, o)),
    watch: (r, o) => client.watch(r, o),
    create: (r, ns, b, o) => guard("create", client.create(r, ns, b, o)),
    delete: (r, ns, n) => guard("delete", client.delete(r, ns, n)),
    replace: (r, ns, n, b) => guard("replace", client.replace(r, ns, n, b)),
    replaceStatus: (r, ns, n, b) => guard("replaceStatus", client.replaceStatus(r, ns, n, b))
  }
}

interface Elector {
  readonly election: LeaderElectionShape
  readonly cut: Ref.Ref<boolean>
  readonly scope: Scope.Closeable
  /** Times the work was started and interrupted. */
  readonly starts: Ref.Ref<number>
  readonly stops: Ref.Ref<number>
}

const elector = (identity: string) =>
  Effect.gen(function*() {
    const memory = yield* KubeClientMemory
    const cut = yield* Ref.make(false)
    const scope = yield* Scope.make()
    const election = yield* make({ namespace: NS, name: LEASE, identity }).pipe(
      Effect.provideService(KubeClient, partitionable(memory.client, cut)),
      Scope.provide(scope)
    )
    const starts = yield* Ref.make(0)
    const stops = yield* Ref.make(0)
    const work = Effect.andThen(Ref.update(starts, (n) => n + 1), Effect.never).pipe(
      Effect.onInterrupt(() => Ref.update(stops, (n) => n + 1))
    )
    yield* Effect.forkIn(election.whileLeader(work), scope)
    return { election, cut, scope, starts, stops } satisfies Elector
  })

/** Moves the clock in one-second steps, checking after each that at most one elector leads. */
const advance = (seconds: number, electors: ReadonlyArray<Elector>) =>
  Effect.gen(function*() {
    for (let i = 0; i < seconds; i++) {
      yield* TestClock.adjust("1 second" satisfies Duration.Input)
      yield* macrotask
      const leaders = yield* Effect.forEach(electors, (e) => e.election.isLeader)
      assert.isAtMost(leaders.filter(Boolean).length, 1, "two leaders at once")
    }
  })

const holder = Effect.gen(function*() {
  const memory = yield* KubeClientMemory
  const lease = yield* memory.client.get(Leases, NS, LEASE)
  return lease?.spec?.holderIdentity
})

/** Every log line, its message parts joined by spaces, and the logger layer that records them. */
const captureLogs = () => {
  const lines: Array<string> = []
  const capture = Logger.layer([
    Logger.make(({ message }) => {
      const parts = Array.isArray(message) ? message : [message]
      lines.push(parts.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join(" "))
    })
  ])
  return { capture, lines }
}

describe("LeaderElection (Lease)", () => {
  it.effect("one leader at a time; a partitioned leader steps down within 10 s and the other takes over after 15 s", () =>
    Effect.gen(function*() {
      const a = yield* elector("a")
      yield* advance(1, [a])
      assert.isTrue(yield* a.election.isLeader)
      assert.strictEqual(yield* holder, "a")
      assert.strictEqual(yield* Ref.get(a.starts), 1)

      const b = yield* elector("b")
      yield* advance(60, [a, b])
      assert.isTrue(yield* a.election.isLeader, "a keeps renewing")
      assert.isFalse(yield* b.election.isLeader)
      assert.strictEqual(yield* Ref.get(b.starts), 0)

      // a can no longer reach the API server; its last renewal was at most 2 s ago.
      yield* Ref.set(a.cut, true)
      yield* advance(8, [a, b])
      assert.isTrue(yield* a.election.isLeader, "still within the renew deadline")
      yield* advance(4, [a, b])
      assert.isFalse(yield* a.election.isLeader, "gave up after the renew deadline")
      assert.strictEqual(yield* Ref.get(a.stops), 1, "a's work was interrupted")
      assert.isFalse(yield* b.election.isLeader, "the lease is still valid for b")

      yield* advance(8, [a, b])
      assert.isTrue(yield* b.election.isLeader, "b took over once the lease went unrenewed for 15 s")
      assert.strictEqual(yield* holder, "b")
      assert.strictEqual(yield* Ref.get(b.starts), 1)

      // a comes back: it must not take the lease from a healthy b.
      yield* Ref.set(a.cut, false)
      yield* advance(30, [a, b])
      assert.isFalse(yield* a.election.isLeader)
      assert.isTrue(yield* b.election.isLeader)
      const memory = yield* KubeClientMemory
      assert.strictEqual((yield* memory.client.get(Leases, NS, LEASE))?.spec?.leaseTransitions, 1)
    }).pipe(Effect.provide(layerMemory)))

  it.effect("a leader that shuts down releases the lease; the other leads within one retry period", () =>
    Effect.gen(function*() {
      const a = yield* elector("a")
      yield* advance(1, [a])
      const b = yield* elector("b")
      yield* advance(5, [a, b])
      assert.isTrue(yield* a.election.isLeader)

      yield* Scope.close(a.scope, Exit.void)
      assert.strictEqual(yield* holder, "")
      assert.strictEqual(yield* Ref.get(a.stops), 1)
      yield* advance(2, [b])
      assert.isTrue(yield* b.election.isLeader)
      assert.strictEqual(yield* holder, "b")
    }).pipe(Effect.provide(layerMemory)))

  it.effect("API errors while acquiring are survived; the lease is taken once the API answers", () =>
    Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      yield* memory.failNext("get", "Unavailable", 3)
      const a = yield* elector("a")
      yield* advance(1, [a])
      assert.isFalse(yield* a.election.isLeader)
      yield* advance(8, [a])
      assert.isTrue(yield* a.election.isLeader)
    }).pipe(Effect.provide(layerMemory)))

  it.effect("a leader that cannot renew logs every failed renewal with its cause, and the loss with the last one", () => {
    const { capture, lines } = captureLogs()
    return Effect.gen(function*() {
      const memory = yield* KubeClientMemory
      // Calls that never answer while `hung` is set (a stalled connection), not errors.
      const hung = yield* Ref.make(false)
      const stall = <A>(effect: Effect.Effect<A, KubeError>) => Effect.flatMap(Ref.get(hung), (h) => (h ? Effect.never : effect))
      const client: KubeClientShape = {
        ...memory.client,
        get: (r, ns, n) => stall(memory.client.get(r, ns, n)),
        replace: (r, ns, n, b) => stall(memory.client.replace(r, ns, n, b))
      }
      const scope = yield* Scope.make()
      const election = yield* make({ namespace: NS, name: LEASE, identity: "a" }).pipe(
        Effect.provideService(KubeClient, client),
        Scope.provide(scope)
      )
      yield* TestClock.adjust("1 second")
      yield* macrotask
      assert.isTrue(yield* election.isLeader)
      yield* Ref.set(hung, true)
      for (let i = 0; i < 12 && (yield* election.isLeader); i++) {
        yield* TestClock.adjust("1 second")
        yield* macrotask
      }
      assert.isFalse(yield* election.isLeader)
      const failures = lines.filter((l) => l.includes("renewing the lease failed"))
      assert.isAtLeast(failures.length, 1)
      for (const l of failures) assert.include(l, "no answer from the API server within")
      const lost = lines.filter((l) => l.includes("lost the lease"))
      assert.strictEqual(lost.length, 1)
      assert.include(lost[0], "no answer from the API server within")
      yield* Scope.close(scope, Exit.void)
    }).pipe(Effect.provide(Layer.merge(layerMemory, capture)))
  })

  it.effect("a renewal refused by the API server is logged with the server's reason", () => {
    const { capture, lines } = captureLogs()
    return Effect.gen(function*() {
      const a = yield* elector("a")
      yield* advance(1, [a])
      assert.isTrue(yield* a.election.isLeader)
      yield* Ref.set(a.cut, true)
      yield* advance(12, [a])
      assert.isFalse(yield* a.election.isLeader)
      const failures = lines.filter((l) => l.includes("renewing the lease failed"))
      assert.isAtLeast(failures.length, 4)
      for (const l of failures) assert.include(l, "Unavailable: partitioned")
      assert.include(lines.find((l) => l.includes("lost the lease")) ?? "", "Unavailable: partitioned")
      yield* Scope.close(a.scope, Exit.void)
    }).pipe(Effect.provide(Layer.merge(layerMemory, capture)))
  })
})

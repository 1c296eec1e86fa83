/**
 * The list-and-watch loop over the memory API server, with every list and watch call recorded:
 * resume from the last resourceVersion after a close, relist at once after Gone, relist on
 * `Schedules.watchReconnect` after a failure (exact delays under TestClock), `onRecovered` once the
 * API answers again. Progress is awaited on the handlers' own signals (a queue of what they saw).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Queue } from "effect"
import { TestClock } from "effect/testing"
import type { ConfigMap } from "../../../src/domain/KubeObjects.ts"
import { ConfigMaps } from "../../../src/domain/KubeObjects.ts"
import { KubeClientMemory, layerMemory } from "../../../src/layers/KubeClient.ts"
import * as ListWatch from "../../../src/layers/ListWatch.ts"
import type { KubeClientShape } from "../../../src/services/KubeClient.ts"

const NS = "ns"
const cm = (name: string) => ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: NS }, data: { k: name } })

/** Starts the loop; returns what its handlers saw, one entry per call, and the calls it made. */
const start = Effect.gen(function*() {
  const memory = yield* KubeClientMemory
  const seen = yield* Queue.unbounded<string>()
  const calls: Array<string> = []
  const client: KubeClientShape = {
    ...memory.client,
    list: (r, o) => Effect.suspend(() => {
      calls.push("list")
      return memory.client.list(r, o)
    }),
    watch: (r, o) => {
      calls.push(`watch@${o.resourceVersion}`)
      return memory.client.watch(r, o)
    }
  }
  yield* ListWatch.run(client, ConfigMaps, { name: "test watch", namespace: NS }, {
    onList: (items: ReadonlyArray<ConfigMap>) => Queue.offer(seen, `list ${items.map((i) => i.metadata.name).join(",")}`),
    onEvent: (ev) => Queue.offer(seen, `${ev.type} ${ev.object.metadata.name}`),
    onRecovered: Queue.offer(seen, "recovered"),
    onWatchEnd: (ending) => Queue.offer(seen, `end ${ending}`)
  }).pipe(Effect.forkScoped)
  /** Until the loop has opened its `n`th watch (scheduler turns only, no clock time). */
  const watching = (n: number) =>
    Effect.gen(function*() {
      for (let i = 0; i < 200 && calls.filter((c) => c.startsWith("watch")).length < n; i++) yield* Effect.yieldNow
      assert.strictEqual(calls.filter((c) => c.startsWith("watch")).length, n, `watch ${n} open`)
    })
  return { memory, seen, calls, watching }
})

const next = (q: Queue.Queue<string>) => Queue.take(q)

describe("ListWatch.run", () => {
  it.effect("lists, watches from the list's resourceVersion and resumes from the last event's after a close", () =>
    Effect.gen(function*() {
      const { memory, seen, calls } = yield* start
      assert.strictEqual(yield* next(seen), "list ")
      const a = yield* memory.client.create(ConfigMaps, NS, cm("a"))
      assert.strictEqual(yield* next(seen), "ADDED a")
      yield* memory.dropWatches
      assert.strictEqual(yield* next(seen), "end closed")
      yield* memory.client.create(ConfigMaps, NS, cm("b"))
      assert.strictEqual(yield* next(seen), "ADDED b")
      assert.deepStrictEqual(calls, ["list", "watch@0", `watch@${a.metadata.resourceVersion}`])
    }).pipe(Effect.provide(layerMemory)))

  it.effect("relists at once when the watch is Gone", () =>
    Effect.gen(function*() {
      const { memory, seen, calls } = yield* start
      assert.strictEqual(yield* next(seen), "list ")
      yield* memory.client.create(ConfigMaps, NS, cm("a"))
      assert.strictEqual(yield* next(seen), "ADDED a")
      yield* memory.failNext("watch", "Gone", 1)
      yield* memory.dropWatches
      assert.strictEqual(yield* next(seen), "end closed")
      assert.strictEqual(yield* next(seen), "end gone")
      assert.strictEqual(yield* next(seen), "list a")
      assert.deepStrictEqual(calls.filter((c) => c === "list").length, 2)
    }).pipe(Effect.provide(layerMemory)))

  it.effect("after failures relists on the schedule (800 ms, 1.6 s, 3.2 s) and says the API answers again", () =>
    Effect.gen(function*() {
      const { memory, seen, watching } = yield* start
      assert.strictEqual(yield* next(seen), "list ")
      yield* watching(1)
      yield* memory.failNext("watch", "Unavailable", 1)
      yield* memory.failNext("list", "Unavailable", 2)
      yield* memory.dropWatches
      assert.strictEqual(yield* next(seen), "end closed")
      assert.strictEqual(yield* next(seen), "end error")
      // The failed watch waits 800 ms; the two failed lists 1.6 s and 3.2 s.
      for (const millis of [800, 1_600, 3_200]) {
        yield* TestClock.adjust(millis - 1)
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        assert.strictEqual(yield* Queue.size(seen), 0, `nothing before ${millis} ms`)
        yield* TestClock.adjust(1)
      }
      assert.strictEqual(yield* next(seen), "list ")
      assert.strictEqual(yield* next(seen), "recovered")
      yield* memory.client.create(ConfigMaps, NS, cm("a"))
      assert.strictEqual(yield* next(seen), "ADDED a")
      yield* watching(3)
      // An event resets the backoff: the next failure waits 800 ms again.
      yield* memory.failNext("watch", "Unavailable", 1)
      yield* memory.dropWatches
      assert.strictEqual(yield* next(seen), "end closed")
      assert.strictEqual(yield* next(seen), "end error")
      yield* TestClock.adjust(800)
      assert.strictEqual(yield* next(seen), "list a")
      assert.strictEqual(yield* next(seen), "recovered")
    }).pipe(Effect.provide(layerMemory)))
})

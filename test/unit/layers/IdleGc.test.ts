/**
 * The idle GC's timing: nothing before any work, nothing while work is in hand, one collection once
 * the work has drained and stayed drained for the quiet period, none more until work comes and goes
 * again (with the approver's schedule: one a minute while it stays drained), and work arriving
 * during the quiet period restarts it. Driven by a SubscriptionRef as the
 * busy signal and the TestClock; the real GC is run too: it drops the compiled form of functions
 * that are not running (they answer as before after it) and leaves the process' global without `gc`;
 * work arriving during its first, asynchronous GC leaves the second, compacting one out; and a
 * process started with a compile cache gets back the memory Node kept of it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Ref, type Schedule, Stream, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import * as Schedules from "../../../src/domain/Schedules.ts"
import * as IdleGc from "../../../src/layers/IdleGc.ts"

const QUIET = Duration.seconds(30)

/** A busy signal under the test's control and a counting collect, with the idle GC running on them. */
const setup = (again?: Schedule.Schedule<unknown>) => Effect.gen(function*() {
  const busy = yield* SubscriptionRef.make(false)
  const collected = yield* Ref.make(0)
  const subscribed = yield* Deferred.make<void>()
  const signal = SubscriptionRef.changes(busy).pipe(Stream.tap(() => Deferred.succeed(subscribed, undefined)))
  yield* Effect.forkScoped(IdleGc.run(signal, QUIET, Ref.update(collected, (n) => n + 1), again))
  yield* Deferred.await(subscribed)
  /** Moves the clock by `elapsed`, then checks how many collections ran so far. */
  const after = (elapsed: Duration.Input, expected: number, message?: string) =>
    Effect.gen(function*() {
      yield* TestClock.adjust(elapsed)
      assert.strictEqual(yield* Ref.get(collected), expected, message)
    })
  return { setBusy: (on: boolean) => SubscriptionRef.set(busy, on), after }
})

describe("IdleGc", () => {
  it.effect("nothing before any work: an idle process from its start is not collected", () =>
    Effect.gen(function*() {
      const t = yield* setup()
      yield* t.after("10 minutes", 0)
    }))

  it.effect("runs once after the queue drains and stays empty for the quiet period, not while work is in hand", () =>
    Effect.gen(function*() {
      const t = yield* setup()
      yield* t.setBusy(true)
      yield* t.after("10 minutes", 0, "not while work is in hand")
      yield* t.setBusy(false)
      yield* t.after("29 seconds", 0, "not before the quiet period is over")
      yield* t.after("1 second", 1)
      yield* t.after("1 hour", 1, "once per drain")
      yield* t.setBusy(true)
      yield* t.setBusy(false)
      yield* t.after("30 seconds", 2, "again after the next work drained")
    }))

  it.effect("with Schedules.idleGcAgain (the approver): then once a minute while idle, none once work comes", () =>
    Effect.gen(function*() {
      const t = yield* setup(Schedules.idleGcAgain)
      yield* t.after("10 minutes", 0, "nothing before any work")
      yield* t.setBusy(true)
      yield* t.setBusy(false)
      yield* t.after("30 seconds", 1)
      yield* t.after("59 seconds", 1, "not before a minute")
      yield* t.after("1 second", 2, "a minute later")
      yield* t.after("58 minutes", 60, "one a minute while idle")
      yield* t.setBusy(true)
      yield* t.after("1 hour", 60, "none while work is in hand")
      yield* t.setBusy(false)
      yield* t.after("29 seconds", 60, "the next drain waits its quiet period again")
      yield* t.after("1 second", 61)
    }))

  it.effect("work arriving during the quiet period restarts it", () =>
    Effect.gen(function*() {
      const t = yield* setup()
      yield* t.setBusy(true)
      yield* t.setBusy(false)
      yield* t.after("20 seconds", 0)
      yield* t.setBusy(true)
      yield* t.after("20 seconds", 0, "interrupted by the new work")
      yield* t.setBusy(false)
      yield* t.after("20 seconds", 0, "the quiet period starts again at the last drain")
      yield* t.after("10 seconds", 1)
    }))

  it.effect("the real GC drops the bytecode of functions not running, which still answer after it", () =>
    Effect.gen(function*() {
      const bytecode = () => v8.getHeapCodeStatistics().bytecode_and_metadata_size
      const before = bytecode()
      // 2000 functions, each called once and kept: only a flush, not the GC itself, can drop their bytecode.
      const source = Array.from({ length: 2000 }, (_, i) => `(a) => { let s = ${i}; for (let j = 0; j < a; j++) s += j * ${i} % 7; return s }`)
      const fns = vm.runInThisContext(`[${source.join(",\n")}]`) as ReadonlyArray<(a: number) => number>
      const answers = fns.map((f) => f(10))
      const compiled = bytecode()
      assert.isAbove(compiled - before, 100_000, "the functions compiled to bytecode")
      yield* IdleGc.fullGc
      const after = bytecode()
      assert.isBelow(after, compiled - 0.8 * (compiled - before), `bytecode ${before} → ${compiled} → ${after}`)
      assert.deepStrictEqual(fns.map((f) => f(10)), answers)
    }))

  it.effect("the two GCs in order; work arriving during the first leaves the second out", () =>
    Effect.gen(function*() {
      /** A stand-in `gc` whose asynchronous GC ends when the test says, recording each call. */
      const fake = () => {
        const calls: Array<string> = []
        let finish!: () => void
        const started = Deferred.makeUnsafe<void>()
        const finished = new Promise<void>((resolve) => (finish = resolve))
        const gc = ((options: { execution: string }) => {
          calls.push(options.execution)
          if (options.execution === "sync") return undefined
          Deferred.doneUnsafe(started, Effect.void)
          return finished
        }) as IdleGc.GcFunction
        // After the asynchronous GC ends: its continuation has run once the microtasks drained.
        const end = Effect.promise(() => (finish(), finished).then(() => new Promise<void>((r) => setImmediate(r))))
        return { gc, calls, started, end }
      }
      const quiet = fake()
      const whole = yield* Effect.forkChild(IdleGc.collectWith(quiet.gc))
      yield* Deferred.await(quiet.started)
      yield* quiet.end
      yield* Fiber.join(whole)
      assert.deepStrictEqual(quiet.calls, ["async", "sync"])

      const busy = fake()
      const cut = yield* Effect.forkChild(IdleGc.collectWith(busy.gc))
      yield* Deferred.await(busy.started)
      yield* Fiber.interrupt(cut)
      yield* busy.end
      assert.deepStrictEqual(busy.calls, ["async"], "no last-resort GC once work came")
    }))

  it.effect("releaseCompileCache: a process started with a filled compile cache gets back what Node kept of it", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "idle-gc-cache-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      // 20 000 functions: a module of 1.9 MB whose code cache is about 2.8 MB.
      const functions = Array.from({ length: 20_000 }, (_, i) => `export function f${i}(a) { let s = ${i}; for (let j = 0; j < a; j++) s += j * ${i} % 7; return s }`)
      fs.writeFileSync(path.join(dir, "big.mjs"), functions.join("\n"))
      const idleGc = new URL("../../../src/layers/IdleGc.ts", import.meta.url).href
      fs.writeFileSync(path.join(dir, "main.mjs"), [
        `import * as fs from "node:fs"`,
        `import { releaseCompileCache } from ${JSON.stringify(idleGc)}`,
        `const anonKiB = () => Number(/RssAnon:\\s+(\\d+)/.exec(fs.readFileSync("/proc/self/status", "utf8"))[1])`,
        `const m = await import("./big.mjs")`,
        `for (let i = 0; i < 20000; i += 7) m["f" + i](3)`,
        `const before = anonKiB()`,
        `releaseCompileCache()`,
        `console.log(JSON.stringify({ before, after: anonKiB() }))`
      ].join("\n"))
      const run = Effect.callback<{ before: number; after: number }, Error>((resume) => {
        execFile(process.execPath, [path.join(dir, "main.mjs")], { env: { ...process.env, NODE_COMPILE_CACHE: path.join(dir, "cache") }, timeout: 60_000 }, (error, stdout) =>
          resume(error === null ? Effect.succeed(JSON.parse(stdout)) : Effect.fail(error)))
      })
      yield* run // fills the cache (Node writes it at exit)
      const { before, after } = yield* run // reads it
      assert.isAbove(before - after, 1536, `RssAnon ${before} → ${after} KiB`)
    }), 120_000)

  it.effect("the real memory-reducing GC runs, and the process' own global gets no gc", () =>
    Effect.gen(function*() {
      yield* IdleGc.fullGc
      yield* IdleGc.fullGc
      assert.strictEqual((globalThis as { gc?: unknown }).gc, undefined)
    }))
})

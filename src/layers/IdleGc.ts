/**
 * A memory-reducing full garbage collection once a process's work has drained and stayed drained,
 * and, where asked (the approver: `Schedules.idleGcAgain` says why), again while it stays idle.
 *
 * Why: V8 hands the garbage of a burst back to the system through its memory reducer, which runs
 * when the embedder tells V8 the process went idle; Node never does. So after deciding a burst of
 * CertificateRequests the approver kept what the burst left: on the real plane its RSS 60 s after a
 * burst of 110 was 96.9 MiB without this and 84.6 MiB with it (bench/results/footprint.md, round 3);
 * the driver, once 500 volumes had been published and unpublished, 91.3 MiB without and 80.7 with
 * it (round 4).
 *
 * Owns: watching a `busy` signal and, once it has been false for `quiet` after having been true,
 * running `collect`, then again on `again` (if given) until work comes; none before the first
 * work. Work that arrives stops the repeats, and during the quiet period restarts it. And what
 * `fullGc` hands back besides V8's garbage: the compile cache Node kept, the code a burst compiled.
 * Does not own: what "busy" means (the approver's work queue, the driver's publishes and
 * unpublishes in hand) or when a process is worth collecting.
 *
 * How the GC is reached without a command-line flag: `--expose-gc` set at run time makes V8 give
 * every context created afterwards a global `gc`; a fresh `vm` context hands it over, while the
 * process' own global stays without it. The "last-resort" flavour is V8's memory-reducing full GC
 * (it compacts and returns freed pages, as the memory reducer would).
 */
import { Duration, Effect, Layer, type Schedule, Stream } from "effect"
import * as nodeModule from "node:module"
import * as v8 from "node:v8"
import * as vm from "node:vm"

/**
 * 10 s: longer than the gaps inside a burst (a rollout's pods, their volumes and requests come
 * milliseconds to a second apart; each takes milliseconds to a few seconds), so one burst costs one
 * GC (tens of ms of CPU); short enough that what a burst left goes back to the node within seconds
 * of it rather than half a minute later. A trickle with gaps over 10 s pays one GC per piece of
 * work, which at that rate is well under 1 % of a core.
 */
export const QUIET = Duration.seconds(10)

export interface GcFunction {
  (options: { readonly type: "major"; readonly execution: "async" }): Promise<void>
  (options: { readonly type: "major"; readonly execution: "sync"; readonly flavor: "last-resort" }): void
}

/**
 * The compile cache Node kept, what a burst compiled, then V8's memory-reducing full GC, run on this
 * thread.
 *
 * First `releaseCompileCache`. Then a major GC that drops the compiled form of every function not
 * running (its bytecode, its Sparkplug and Maglev code, its feedback): a function called again is
 * compiled afresh from its source, which V8 keeps. V8 ages bytecode out on its own only after five
 * major GCs without a call (`--bytecode-old-age`), which an idle process does not reach; so
 * `--stress-flush-code` (flush whatever the age) and `--flush-baseline-code` (Sparkplug's code
 * too, which otherwise pins its bytecode) are set only while this GC runs. It is asked for
 * asynchronously: a synchronous `gc` call with the same flags left every function's bytecode in
 * place in a trial with the functions of an ES module, the asynchronous one dropped it there and in
 * the unit test. What it bought, 60 s after 110 publishes on the real plane
 * (bench/results/footprint.md, round 9): the approver 77.3 → 74.5 MiB, the driver 79.5 → 78.5, the
 * burst's p99 unchanged.
 *
 * Then the "last-resort" GC, which compacts what is left and hands the freed pages back. The
 * context that hands `gc` over is made on each call (about a millisecond, next to the tens of
 * milliseconds of the GC) rather than kept.
 */
export const fullGc: Effect.Effect<void> = Effect.suspend(() => {
  releaseCompileCache()
  v8.setFlagsFromString("--expose-gc")
  return collectWith(vm.runInNewContext("gc") as GcFunction)
})

/**
 * Hands back the compile cache Node read at start (`NODE_COMPILE_CACHE`, filled in the image by
 * `dist/warm-up.mjs`). Node keeps every entry it read and V8 accepted in memory until it persists
 * the cache, which it does at exit or on `module.flushCompileCache()`; then it writes what changed
 * (nothing, when every entry was accepted) and drops them all. By the first idle GC each binary
 * has loaded every chunk it loads, so what is kept after that serves nothing. What it bought, 60 s
 * after 110 publishes on the real plane (bench/results/footprint.md, round 10): the driver 78.6 →
 * 76.9 MiB, the approver 72.2 → 70.9. A chunk imported later gets an entry of its own, dropped at
 * the next idle GC. Without a compile cache this does nothing.
 */
export const releaseCompileCache = (): void => nodeModule.flushCompileCache()

/**
 * `fullGc`'s two steps on a given `gc`. Work that arrives while the asynchronous GC is under way
 * interrupts the idle fiber; the GC itself runs to its end, but the last-resort one is then left
 * out, so the work that came is not held up by a second pause that would only compact a heap about
 * to grow again.
 */
export const collectWith = (gc: GcFunction): Effect.Effect<void> =>
  Effect.promise(async (signal) => {
    v8.setFlagsFromString("--stress-flush-code --flush-baseline-code")
    try {
      await gc({ type: "major", execution: "async" })
    } finally {
      v8.setFlagsFromString("--no-stress-flush-code --no-flush-baseline-code")
    }
    if (!signal.aborted) gc({ type: "major", execution: "sync", flavor: "last-resort" })
  })

/**
 * Runs `collect` each time `busy` has been false for `quiet` after being true, and again on `again`
 * (when given) while it stays false. Never returns; run it as a scoped fiber. `busy` is a signal
 * (each change, current value first), never polled.
 */
export const run = (
  busy: Stream.Stream<boolean>,
  quiet: Duration.Input,
  collect: Effect.Effect<void>,
  again?: Schedule.Schedule<unknown>
): Effect.Effect<never> =>
  busy.pipe(
    Stream.changes,
    Stream.dropWhile((working) => !working),
    Stream.switchMap((working) => (working ? Stream.empty : Stream.fromEffect(Effect.andThen(Effect.sleep(quiet), again === undefined ? collect : Effect.repeat(collect, again))))),
    Stream.runDrain,
    Effect.andThen(Effect.never)
  )

/**
 * `run` with `QUIET`, `fullGc` and `again` on the busy signal `busy` yields, as a scoped fiber for
 * the layer's life: what each binary's composition root adds (`bin/ApproverLive.ts` with
 * `Schedules.idleGcAgain`, `bin/CsiLive.ts` without: idle, the driver's RSS stayed within a MiB
 * for five minutes, and a collection a minute would be its only CPU).
 */
export const layer = <R>(busy: Effect.Effect<Stream.Stream<boolean>, never, R>, again?: Schedule.Schedule<unknown>) =>
  Layer.effectDiscard(Effect.flatMap(busy, (signal) => Effect.forkScoped(run(signal, QUIET, fullGc, again))))

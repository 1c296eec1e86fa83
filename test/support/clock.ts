/**
 * Letting real asynchronous I/O run in a TestClock test (WebCrypto signature checks resolve on the
 * event loop, not on the Effect scheduler) without moving the clock: before asserting that something
 * has *not* happened (yet), or before moving the clock a fixed step that must find the work waiting.
 * A test that waits for something to happen waits on that thing's signal instead.
 */
import { Effect } from "effect"

/** One turn of the Node event loop (lets resolved WebCrypto promises reach their fibers). */
export const macrotask: Effect.Effect<void> = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Lets other fibers and pending I/O run `turns` times without moving the clock. */
export const settle = (turns = 20) => Effect.repeat(macrotask, { times: turns - 1 })

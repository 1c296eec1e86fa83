/**
 * Which of V8's compilers each binary runs with, and when that is set: at run time, once the Node
 * built-ins the binary needs are loaded, just before its composition root is imported (and, for
 * the driver, once more when its CSI socket listens).
 *
 * Why not on the first line (`#!/usr/bin/env -S node --max-opt=0`, as before): V8 keys every code
 * cache by its flags, and so rejects the one built into the Node binary for Node's own JavaScript
 * when a process starts with any compiler flag. Every built-in (http2, tls, crypto, child_process
 * and the 140-odd internal modules under them) was then compiled from its source at each start:
 * with `NODE_DEBUG_NATIVE=CODE_CACHE` the driver printed 141 "is rejected" lines before its CSI
 * socket listened, and now prints one (a module loaded by a call, below). A flag set at run time
 * changes the key only for what is compiled after it, so the built-ins are loaded first, with
 * their cache, then the flags are set, then the binary's own chunk is imported (its entry in the
 * image's compile cache is made after the same flags: `dist/warm-up.mjs`, `scripts/bundle.ts`).
 * Measured against the flags on the first line (bench/results/footprint.md, round 5): the driver's
 * spawn → Probe ready=true on the real plane 403.5 against 507.2 ms, its CPU to a first Probe
 * answer without a cluster 380 against 450 ms; the approver after 500 requests 85.0 against
 * 89.8 MiB; the driver idle with 110 volumes 79.8–81.7 against 78.3–79.3 MiB, because with every
 * tier on while the built-ins load, Maglev compiles Node's `requireBuiltin` (400 calls) and the
 * process touches 2.2 MiB of the Node binary's text that holds Maglev.
 *
 * V8 reads `--max-opt` only at start (its implications are resolved then: set at run time it
 * changed nothing), so the tiers are turned off by name. A hot loop, 20 × 10^6 iterations: 166 ms
 * with every tier, 1463 ms after `--no-sparkplug --no-maglev --no-turbofan` at run time, 1828 ms
 * with `--max-opt=0` on the command line.
 *
 * The built-ins listed are what each binary loads before it listens: the integration test
 * `test/integration/compiler-tiers.test.ts` starts each one with `NODE_DEBUG_NATIVE=CODE_CACHE`
 * and fails on a built-in compiled without its cache before then, naming it.
 */
import * as v8 from "node:v8"

export interface CompilerTiers {
  /**
   * Node built-ins the binary's modules import (`import … from "node:fs"`), loaded the same way
   * before `flags` is set: an ES module's view of a built-in reads every export, and some are
   * getters that load more (`fs.ReadStream`, `net.BlockList`, `crypto.webcrypto`).
   */
  readonly imported: ReadonlyArray<string>
  /** Node built-ins the binary's CommonJS dependencies `require` (gRPC's http2, undici's zlib). */
  readonly required: ReadonlyArray<string>
  /** V8 flags set before the composition root is imported. */
  readonly flags: string
}

/** What both binaries' chunks import as ES modules (the bundle makes `node:http` a `require`, `scripts/bundle.ts` says why). */
const IMPORTED = [
  "child_process", "crypto", "dns", "fs", "https", "module", "net", "os", "path", "perf_hooks", "stream", "tls", "url",
  "v8", "vm"
] as const

/** What both binaries' CommonJS dependencies require (the Kubernetes client's undici, the metrics), and gRPC the driver. */
const REQUIRED = [
  "assert", "async_hooks", "buffer", "cluster", "console", "diagnostics_channel", "events", "fs/promises", "http",
  "http2", "querystring", "stream/web", "string_decoder", "timers", "tty", "util", "worker_threads", "zlib"
] as const

/**
 * The driver: V8's interpreter only. The driver waits on the API server, cert-manager and the
 * disk, not on its own JavaScript; what the compilers would buy is not seen in its latencies,
 * while their code, their working memory and the pages of the Node binary that hold them stayed
 * resident after a burst: idle with 110 volumes 82 MiB RSS instead of 113, every latency of
 * `npm run bench` where it was or lower (bench/results/footprint.md, round 4).
 */
export const DRIVER: CompilerTiers = {
  imported: IMPORTED,
  // process: gRPC's logging.
  required: [...REQUIRED, "process"],
  flags: "--no-sparkplug --no-maglev --no-turbofan"
}

/**
 * V8's `--optimize-for-size`, set by the driver once its CSI socket listens (`CsiLive.ts`), before
 * its X.509 chunk loads on the first publish: it keeps the heap small after a burst of publishes,
 * and set from the start it cost 50–80 ms of start-up CPU (bench/results/footprint.md, round 3).
 */
export const DRIVER_LISTENING = "--optimize-for-size"

/**
 * The approver: V8's interpreter and Sparkplug, neither Maglev nor Turbofan. The approver waits on
 * the API server for every decision (a GET, a PUT); its own JavaScript is a small part of each.
 * With Maglev on, more of what a burst cost stayed resident once it was over. After 380 requests
 * on the real plane the approver idled at 73.6 and 72.9 MiB RSS without Maglev against 81.6 and 76.6 with
 * it, deciding 47.0 and 48.8 requests/s against 49.1 and 54.6, create → decision p99 of a burst of
 * 500 8.6 and 8.3 s against 7.9 and 7.2 (bench/results/footprint.md, round 10). Turbofan was left
 * out before for the same reason: 60 s after 110 requests 78.5 MiB instead of 83.9 (round 4).
 * `--optimize-for-size` here (with glibc's mmap threshold at 8 KiB) held 1.1 MiB less after 110
 * requests but not after 380 (round 7): not kept.
 */
export const APPROVER: CompilerTiers = {
  imported: IMPORTED,
  required: REQUIRED,
  flags: "--no-maglev --no-turbofan"
}

/** Loads the built-ins of `tiers`, sets its flags, then imports the composition root. */
export const importWith = async <A>(tiers: CompilerTiers, load: () => Promise<A>): Promise<A> => {
  for (const name of tiers.imported) await import(`node:${name}`)
  for (const name of tiers.required) process.getBuiltinModule(name)
  // More of Node's own modules load on first use, not on import: the streams behind stdout and
  // stderr (which kind depends on what they are: a file, a pipe, a terminal), the one behind every
  // module's `import.meta`, and the `navigator` global's (undici reads it).
  void process.stdout
  void process.stderr
  void import.meta.url
  void globalThis.navigator
  v8.setFlagsFromString(tiers.flags)
  return load()
}

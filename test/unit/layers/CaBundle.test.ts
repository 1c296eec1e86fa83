/**
 * CaBundle layers: the shared contract (`CaBundle.contract.ts`) against `layerFile` and
 * `layerMemory`, plus what only one layer does. `layerFile` runs on a real temporary directory with
 * a real directory watch, so those tests are `it.live`: every wait is bounded and ends on an event
 * (a published change, a log line), never a fixed sleep.
 */
import { NodeFileSystem } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, FileSystem, Layer, Logger, PlatformError, Stream, SubscriptionRef } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as CaBundleLayers from "../../../src/layers/CaBundle.ts"
import * as CryptoLayers from "../../../src/layers/Crypto.ts"
import { CaBundle } from "../../../src/services/CaBundle.ts"
import { bundles, contractSuite, reach, recordChanges } from "./CaBundle.contract.ts"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ca-bundle-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** Writes `content` to a temporary name and renames it over `file`, as an atomic writer does. */
const replaceAtomically = (file: string, content: string) => {
  const tmp = `${file}.tmp-${Math.random().toString(16).slice(2)}`
  fs.writeFileSync(tmp, content)
  fs.renameSync(tmp, file)
}

/**
 * A Secret / ConfigMap volume as the kubelet lays it out: `<dir>/ca.crt -> ..data/ca.crt`,
 * `..data -> ..<timestamp>/`; `swap` publishes new content by renaming a fresh `..data` symlink.
 */
const secretVolume = (dir: string, content: string) => {
  let n = 0
  const publish = (next: string) => {
    n += 1
    const version = `..2024_01_01_00_00_${String(n).padStart(2, "0")}.${n}`
    fs.mkdirSync(path.join(dir, version))
    fs.writeFileSync(path.join(dir, version, "ca.crt"), next)
    fs.symlinkSync(version, path.join(dir, "..data_tmp"))
    fs.renameSync(path.join(dir, "..data_tmp"), path.join(dir, "..data"))
  }
  publish(content)
  fs.symlinkSync(path.join("..data", "ca.crt"), path.join(dir, "ca.crt"))
  return { file: path.join(dir, "ca.crt"), swap: publish }
}

interface Watched {
  readonly bundle: CaBundle["Service"]
  /** Every change published since the layer was built. */
  readonly changes: SubscriptionRef.SubscriptionRef<ReadonlyArray<string>>
  /** Waits (bounded) until `n` changes have been published; returns them. */
  readonly changesReach: (n: number) => Effect.Effect<ReadonlyArray<string>>
  /** Waits (bounded) until `n` error lines have been logged. */
  readonly errorsReach: (n: number) => Effect.Effect<void>
}

/** Builds `layerFile(file)` in the test's scope (on `files`) and records what it publishes and logs. */
const watch = (file: string, files: Layer.Layer<FileSystem.FileSystem> = NodeFileSystem.layer) =>
  Effect.gen(function*() {
    const errorLines = yield* SubscriptionRef.make<ReadonlyArray<string>>([])
    const logger = Logger.make(({ logLevel, message }) => {
      if (logLevel !== "Error") return
      const line = (Array.isArray(message) ? message : [message]).map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join(" ")
      Effect.runSync(SubscriptionRef.update(errorLines, (xs) => [...xs, line]))
    })
    const ctx = yield* Layer.build(
      CaBundleLayers.layerFile(file).pipe(Layer.provide([CryptoLayers.layer, files]), Layer.provide(Logger.layer([logger])))
    )
    const bundle = Context.get(ctx, CaBundle)
    const { changes, changesReach } = yield* recordChanges(bundle)
    return {
      bundle,
      changes,
      changesReach,
      errorsReach: (n) => Effect.asVoid(reach(errorLines, n, "error logs"))
    } satisfies Watched
  })

/** `ca.crt` holding `content` in a fresh directory. */
const bundleFile = (content: string) =>
  Effect.map(tempDir, (dir) => {
    const file = path.join(dir, "ca.crt")
    fs.writeFileSync(file, content)
    return { dir, file }
  })

/** A bundle file in a fresh directory holding bundle A, watched through `layerFile`. */
const watchedBundle = Effect.gen(function*() {
  const pems = yield* bundles
  const { dir, file } = yield* bundleFile(pems.A)
  return { dir, file, pems, w: yield* watch(file) }
})

contractSuite("layerFile", (initial) =>
  Effect.gen(function*() {
    const file = path.join(yield* tempDir, "ca.crt")
    fs.writeFileSync(file, initial)
    const w = yield* watch(file)
    return { bundle: w.bundle, replace: (pem) => Effect.sync(() => replaceAtomically(file, pem)), refusalsReach: w.errorsReach }
  }))

contractSuite("layerMemory", (initial) =>
  Effect.gen(function*() {
    const ctx = yield* Layer.build(CaBundleLayers.layerMemory(initial).pipe(Layer.provide(CryptoLayers.layer)))
    const memory = Context.get(ctx, CaBundleLayers.CaBundleMemory)
    const refusals = yield* SubscriptionRef.make<ReadonlyArray<string>>([])
    return {
      bundle: Context.get(ctx, CaBundle),
      replace: (pem) => memory.set(pem).pipe(Effect.catch((e) => SubscriptionRef.update(refusals, (xs) => [...xs, e.message]))),
      refusalsReach: (n) => Effect.asVoid(reach(refusals, n, "refusals"))
    }
  }))

describe("layerMemory", () => {
  it.effect("an invalid initial bundle fails the layer, as an invalid file does", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(Layer.build(CaBundleLayers.layerMemory("hello\n").pipe(Layer.provide(CryptoLayers.layer))))
      assert.strictEqual(e._tag, "CryptoError")
      assert.include(e.message, "validate CA bundle")
    }))

  it.effect("set fails with the validation error for invalid content", () =>
    Effect.gen(function*() {
      const pems = yield* bundles
      const ctx = yield* Layer.build(CaBundleLayers.layerMemory(pems.A).pipe(Layer.provide(CryptoLayers.layer)))
      const e = yield* Effect.flip(Context.get(ctx, CaBundleLayers.CaBundleMemory).set("not PEM"))
      assert.strictEqual(e._tag, "CryptoError")
      assert.strictEqual(yield* Context.get(ctx, CaBundle).current, pems.A)
    }))
})

describe("layerNone and layerStatic", () => {
  it.effect("none writes no CA file and never changes", () =>
    Effect.gen(function*() {
      const bundle = yield* CaBundle
      assert.strictEqual(yield* bundle.current, undefined)
      assert.deepStrictEqual(yield* Stream.runCollect(bundle.changes), [])
    }).pipe(Effect.provide(CaBundleLayers.layerNone)))

  it.effect("static serves its bundle", () =>
    Effect.gen(function*() {
      const bundle = yield* CaBundle
      assert.strictEqual(yield* bundle.current, "PEM")
    }).pipe(Effect.provide(CaBundleLayers.layerStatic("PEM"))))

  it.effect("layerFor without --source-ca-bundle is none", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* (yield* CaBundle).current, undefined)
    }).pipe(Effect.provide(CaBundleLayers.layerFor({ sourceCaBundle: undefined }).pipe(Layer.provide([CryptoLayers.layer, NodeFileSystem.layer])))))

  it.live("layerFor with --source-ca-bundle reads that file", () =>
    Effect.gen(function*() {
      const pems = yield* bundles
      const { file } = yield* bundleFile(pems.AB)
      const ctx = yield* Layer.build(CaBundleLayers.layerFor({ sourceCaBundle: file }).pipe(Layer.provide([CryptoLayers.layer, NodeFileSystem.layer])))
      assert.strictEqual(yield* Context.get(ctx, CaBundle).current, pems.AB)
    }))
})

describe("layerFile", () => {
  it.live("a missing file fails the layer with an error naming the file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "ca.crt")
      const e = yield* Effect.flip(Layer.build(CaBundleLayers.layerFile(file).pipe(Layer.provide([CryptoLayers.layer, NodeFileSystem.layer]))))
      assert.strictEqual(e._tag, "CryptoError")
      assert.include(e.message, file)
      assert.include(e.message, "ENOENT")
    }))

  it.live("a missing directory fails the layer with a clear error (not a defect)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "absent", "ca.crt")
      const e = yield* Effect.flip(Layer.build(CaBundleLayers.layerFile(file).pipe(Layer.provide([CryptoLayers.layer, NodeFileSystem.layer]))))
      assert.strictEqual(e._tag, "CryptoError")
      assert.include(e.message, path.join(dir, "absent"))
    }))

  it.live("a watcher that cannot be installed (node:fs `watch` throws, a defect in NodeFileSystem) fails the layer with a clear error", () =>
    Effect.gen(function*() {
      const pems = yield* bundles
      const { dir, file } = yield* bundleFile(pems.A)
      const limit = "ENOSPC: System limit for number of file watchers reached, watch"
      const throwing = Layer.effect(
        FileSystem.FileSystem,
        Effect.map(FileSystem.FileSystem, (real) => FileSystem.FileSystem.of({ ...real, watch: () => Stream.die(new Error(limit)) }))
      ).pipe(Layer.provide(NodeFileSystem.layer))
      const e = yield* Effect.flip(Layer.build(CaBundleLayers.layerFile(file).pipe(Layer.provide([CryptoLayers.layer, throwing]))))
      assert.strictEqual(e._tag, "CryptoError")
      assert.include(e.message, `watch CA bundle directory ${dir}`)
      assert.include(e.message, limit)
    }))

  it.live.each([
    ["empty", ""],
    ["not PEM", "hello\n"],
    ["a PEM block that is not a certificate", "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"]
  ])("an invalid bundle (%s) fails the layer: never an empty CA file", ([_what, content]) =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "ca.crt")
      fs.writeFileSync(file, content!)
      const e = yield* Effect.flip(Layer.build(CaBundleLayers.layerFile(file).pipe(Layer.provide([CryptoLayers.layer, NodeFileSystem.layer]))))
      assert.strictEqual(e._tag, "CryptoError")
      assert.include(e.message, `validate CA bundle ${file}`)
    }))

  it.live("serves a valid bundle, and publishes an atomic replace (temporary file + rename)", () =>
    Effect.gen(function*() {
      const { dir, file, pems, w } = yield* watchedBundle
      assert.strictEqual(yield* w.bundle.current, pems.A)
      replaceAtomically(file, pems.AB)
      assert.deepStrictEqual(yield* w.changesReach(1), [pems.AB])
      assert.strictEqual(yield* w.bundle.current, pems.AB)
      // An in-place write is seen too.
      fs.writeFileSync(file, pems.B)
      assert.deepStrictEqual(yield* w.changesReach(2), [pems.AB, pems.B])
    }))

  it.live("follows a Secret volume's `..data` symlink swap", () =>
    Effect.gen(function*() {
      const pems = yield* bundles
      const dir = yield* tempDir
      const volume = secretVolume(dir, pems.A)
      const w = yield* watch(volume.file)
      assert.strictEqual(yield* w.bundle.current, pems.A)
      volume.swap(pems.B)
      assert.deepStrictEqual(yield* w.changesReach(1), [pems.B])
      volume.swap(pems.C)
      assert.deepStrictEqual(yield* w.changesReach(2), [pems.B, pems.C])
      assert.strictEqual(yield* w.bundle.current, pems.C)
    }))

  it.live("a burst of writes is coalesced into one change", () =>
    Effect.gen(function*() {
      const { dir, file, pems, w } = yield* watchedBundle
      // Five replacements in a few milliseconds, well inside one debounce window.
      for (const pem of [pems.B, pems.C, pems.AB, pems.C, pems.D]) replaceAtomically(file, pem)
      assert.deepStrictEqual(yield* w.changesReach(1), [pems.D])
      // A later, separate change proves nothing else was queued from the burst.
      replaceAtomically(file, pems.B)
      assert.deepStrictEqual(yield* w.changesReach(2), [pems.D, pems.B])
    }))

  it.live("invalid new content is logged and not published; the current bundle stays the old one", () =>
    Effect.gen(function*() {
      const { dir, file, pems, w } = yield* watchedBundle
      replaceAtomically(file, "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
      yield* w.errorsReach(1)
      assert.strictEqual(yield* w.bundle.current, pems.A)
      assert.deepStrictEqual(yield* SubscriptionRef.get(w.changes), [])
      // Emptied (e.g. truncated mid-write by a careless writer): also refused.
      fs.writeFileSync(file, "")
      yield* w.errorsReach(2)
      assert.strictEqual(yield* w.bundle.current, pems.A)
      // Valid again: published.
      replaceAtomically(file, pems.B)
      assert.deepStrictEqual(yield* w.changesReach(1), [pems.B])
    }))

  it.live("rewriting identical content publishes nothing", () =>
    Effect.gen(function*() {
      const { dir, file, pems, w } = yield* watchedBundle
      replaceAtomically(file, pems.A)
      fs.writeFileSync(file, pems.A)
      // Unrelated files in the directory trigger a reload too; unchanged content is not a change.
      fs.writeFileSync(path.join(dir, "other.txt"), "x")
      // The next real change must be the first one published.
      replaceAtomically(file, pems.B)
      assert.deepStrictEqual(yield* w.changesReach(1), [pems.B])
      replaceAtomically(file, pems.B)
      replaceAtomically(file, pems.C)
      assert.deepStrictEqual(yield* w.changesReach(2), [pems.B, pems.C])
    }))

  it.live("a watch that fails once it is running is set up again, and a change made while nothing watched is published", () =>
    Effect.gen(function*() {
      const pems = yield* bundles
      const { file } = yield* bundleFile(pems.A)
      // Node's file system, except that the first watch is one that reports nothing and fails
      // (as a watcher's `error` event would fail it) once `fail` is completed.
      const fail = yield* Deferred.make<void>()
      const watches = yield* SubscriptionRef.make(0)
      const flaky = Layer.effect(
        FileSystem.FileSystem,
        Effect.map(FileSystem.FileSystem, (real) =>
          FileSystem.FileSystem.of({
            ...real,
            watch: (target, options) =>
              Stream.unwrap(Effect.map(SubscriptionRef.getAndUpdate(watches, (n) => n + 1), (n) =>
                n > 0 ? real.watch(target, options) : Stream.fromEffect(Effect.sync(() => options?.onReady?.())).pipe(
                  Stream.drain,
                  Stream.concat(Stream.fromEffect(Effect.andThen(
                    Deferred.await(fail),
                    Effect.fail(PlatformError.systemError({ _tag: "Unknown", module: "FileSystem", method: "watch", pathOrDescriptor: target }))
                  )))
                )))
          }))
      ).pipe(Layer.provide(NodeFileSystem.layer))
      const w = yield* watch(file, flaky)
      yield* Deferred.succeed(fail, undefined)
      replaceAtomically(file, pems.B)
      yield* w.errorsReach(1)
      assert.deepStrictEqual(yield* w.changesReach(1), [pems.B], "read again once watched again")
      assert.strictEqual(yield* SubscriptionRef.get(watches), 2)
      replaceAtomically(file, pems.C)
      assert.deepStrictEqual(yield* w.changesReach(2), [pems.B, pems.C], "the new watch reports changes")
    }))

  it.live("a file that disappears is logged and the last good bundle stays; it is picked up when it returns", () =>
    Effect.gen(function*() {
      const { dir, file, pems, w } = yield* watchedBundle
      fs.rmSync(file)
      yield* w.errorsReach(1)
      assert.strictEqual(yield* w.bundle.current, pems.A)
      replaceAtomically(file, pems.B)
      assert.deepStrictEqual(yield* w.changesReach(1), [pems.B])
    }))
})

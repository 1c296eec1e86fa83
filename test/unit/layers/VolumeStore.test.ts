/**
 * The file-system VolumeStore: the shared contract (`VolumeStore.contract.ts`), plus checks only
 * the real file system can answer: the AtomicWriter layout, modes, gid, crash left-overs and readers
 * racing a publish.
 */
import * as fsp from "node:fs/promises"
import * as os from "node:os"
import * as net from "node:net"
import * as nodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted, Ref } from "effect"
import type { Scope } from "effect"
import { TestClock } from "effect/testing"
import { layerFileSystem } from "../../../src/layers/VolumeStore.ts"
import { VolumeStore, type VolumeFile } from "../../../src/services/VolumeStore.ts"
import { contractSuite, GID, metadataFor, OTHER_GID, pair } from "./VolumeStore.contract.ts"

const isRoot = process.getuid?.() === 0

/** A fresh scratch directory per test, removed when the test's layer scope closes. */
const scratchDir = Effect.acquireRelease(
  Effect.promise(() => fsp.mkdtemp(nodePath.join(os.tmpdir(), "volumestore-"))),
  (dir) => Effect.promise(() => fsp.rm(dir, { recursive: true, force: true }))
)

const fileSystemLayer = (): Layer.Layer<VolumeStore> =>
  Layer.unwrap(Effect.map(scratchDir, (dir) => layerFileSystem(nodePath.join(dir, "inmemfs"))))

describe.skipIf(!isRoot)("VolumeStore (needs root: data/ is 0550 as in csi-lib, only root may write into it)", () => {
  contractSuite("layerFileSystem", fileSystemLayer)
})

// ---------------------------------------------------------------------------------------------
// File-system-only behaviour

const PAYLOAD_DIR = /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.[A-Za-z0-9]{6}$/

const fsTest = (title: string, body: Effect.Effect<void, unknown, VolumeStore | Scope.Scope>) =>
  it.effect(title, () => body.pipe(Effect.provide(fileSystemLayer())))

const promise = <A>(run: () => Promise<A>) => Effect.promise(run)
const modeOf = (path: string) => promise(() => fsp.lstat(path)).pipe(Effect.map((stat) => stat.mode & 0o7777))
const sortedEntries = (dir: string) => promise(() => fsp.readdir(dir)).pipe(Effect.map((names) => [...names].sort()))
const payloadDirs = (dir: string) =>
  Effect.map(sortedEntries(dir), (names) => names.filter((name) => name.startsWith("..") && name !== "..data"))

describe.skipIf(!isRoot)("layerFileSystem on disk (needs root)", () => {
  fsTest("lays out metadata.json (0600) and data/ (0550) with the AtomicWriter symlinks", Effect.gen(function*() {
    const store = yield* VolumeStore
    yield* TestClock.setTime(Date.UTC(2030, 0, 2, 3, 4, 5))
    yield* store.write(metadataFor("vol-a"))
    yield* store.writeFiles("vol-a", [...pair("1"), { name: "ca.crt", content: "ca", mode: 0o444 }], undefined)
    const volumeDir = nodePath.join(store.root, "vol-a")
    const dataDir = store.dataDir("vol-a")
    assert.strictEqual(dataDir, nodePath.join(volumeDir, "data"))
    assert.deepStrictEqual(yield* sortedEntries(volumeDir), ["data", "metadata.json"])
    assert.strictEqual(yield* modeOf(nodePath.join(volumeDir, "metadata.json")), 0o600)
    assert.strictEqual(yield* modeOf(volumeDir), 0o700)
    assert.strictEqual(yield* modeOf(dataDir), 0o550)

    const [payload, ...more] = yield* payloadDirs(dataDir)
    assert.deepStrictEqual(more, [])
    assert.match(payload ?? "", PAYLOAD_DIR)
    assert.isTrue(payload?.startsWith("..2030_01_02_03_04_05."))
    assert.strictEqual(yield* promise(() => fsp.readlink(nodePath.join(dataDir, "..data"))), payload)
    assert.strictEqual(yield* modeOf(nodePath.join(dataDir, payload ?? "")), 0o750)
    for (const name of ["ca.crt", "tls.crt", "tls.key"]) {
      assert.strictEqual(yield* promise(() => fsp.readlink(nodePath.join(dataDir, name))), `..data/${name}`)
    }
    assert.strictEqual(yield* modeOf(nodePath.join(dataDir, payload ?? "", "tls.key")), 0o440)
    assert.strictEqual(yield* modeOf(nodePath.join(dataDir, payload ?? "", "ca.crt")), 0o444)
    assert.strictEqual(
      yield* promise(() => fsp.readFile(nodePath.join(dataDir, "tls.key"), "utf8")),
      "key-1"
    )
  }))

  fsTest("an identical payload keeps the published directory; a change swaps it and drops the old", Effect.gen(function*() {
    const store = yield* VolumeStore
    const dataDir = store.dataDir("vol-a")
    const published = promise(() => fsp.readlink(nodePath.join(dataDir, "..data")))
    yield* store.writeFiles("vol-a", pair("1"), undefined)
    const first = yield* published
    yield* store.writeFiles("vol-a", pair("1"), undefined)
    assert.strictEqual(yield* published, first)
    yield* store.writeFiles("vol-a", [{ name: "tls.crt", content: "crt-1", mode: 0o400 }, pair("1")[1]!], undefined)
    const second = yield* published
    assert.notStrictEqual(second, first)
    yield* store.writeFiles("vol-a", pair("2"), undefined)
    const third = yield* published
    assert.notStrictEqual(third, second)
    assert.deepStrictEqual(yield* payloadDirs(dataDir), [third])
  }))

  fsTest("a unix socket in data/ (the Workload API's) survives every swap; a stray file does not", Effect.gen(function*() {
    const store = yield* VolumeStore
    yield* store.writeFiles("vol-a", pair("1"), undefined)
    const dataDir = store.dataDir("vol-a")
    const socket = nodePath.join(dataDir, "spiffe.sock")
    yield* Effect.acquireRelease(
      promise(() => new Promise<net.Server>((resolve) => { const server = net.createServer().listen(socket, () => resolve(server)) })),
      (server) => promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
    )
    yield* promise(() => fsp.writeFile(nodePath.join(dataDir, "stray"), "x"))
    yield* store.writeFiles("vol-a", pair("2"), undefined)
    assert.deepStrictEqual((yield* sortedEntries(dataDir)).filter((name) => !name.startsWith("..")), ["spiffe.sock", "tls.crt", "tls.key"])
    assert.isTrue((yield* promise(() => fsp.lstat(socket))).isSocket())
  }))

  it.effect.skipIf(!isRoot)("chowns data/, the payload directory and files to the gid; a gid change republishes", () =>
    Effect.gen(function*() {
      const store = yield* VolumeStore
      const dataDir = store.dataDir("vol-a")
      const gidOf = (path: string) => promise(() => fsp.stat(path)).pipe(Effect.map((stat) => stat.gid))
      yield* store.writeFiles("vol-a", pair("1"), GID)
      const first = yield* promise(() => fsp.readlink(nodePath.join(dataDir, "..data")))
      for (const path of [dataDir, nodePath.join(dataDir, first), nodePath.join(dataDir, "tls.crt"), nodePath.join(dataDir, "tls.key")]) {
        assert.strictEqual(yield* gidOf(path), GID, path)
      }
      assert.strictEqual((yield* promise(() => fsp.stat(nodePath.join(dataDir, "tls.key")))).uid, 0)
      yield* store.writeFiles("vol-a", pair("1"), OTHER_GID)
      const second = yield* promise(() => fsp.readlink(nodePath.join(dataDir, "..data")))
      assert.notStrictEqual(second, first)
      assert.strictEqual(yield* gidOf(dataDir), OTHER_GID)
      assert.strictEqual(yield* gidOf(nodePath.join(dataDir, "tls.crt")), OTHER_GID)
    }).pipe(Effect.provide(fileSystemLayer())))

  fsTest("the next publish cleans a stray ..data_tmp and orphaned payload directories", Effect.gen(function*() {
    const store = yield* VolumeStore
    const dataDir = store.dataDir("vol-a")
    yield* store.writeFiles("vol-a", pair("1"), undefined)
    const published = yield* promise(() => fsp.readlink(nodePath.join(dataDir, "..data")))
    const orphan = nodePath.join(dataDir, "..2020_01_01_00_00_00.abcdef")
    yield* promise(async () => {
      await fsp.symlink("..2020_01_01_00_00_00.gone00", nodePath.join(dataDir, "..data_tmp"))
      await fsp.mkdir(orphan)
      await fsp.writeFile(nodePath.join(orphan, "tls.crt"), "half")
      await fsp.writeFile(nodePath.join(dataDir, "stale.pem"), "not in the payload")
    })
    // An identical payload skips the swap but still cleans up.
    yield* store.writeFiles("vol-a", pair("1"), undefined)
    assert.deepStrictEqual(yield* sortedEntries(dataDir), ["..data", published, "tls.crt", "tls.key"].sort())
    yield* promise(() => fsp.mkdir(orphan))
    yield* store.writeFiles("vol-a", pair("2"), undefined)
    const next = yield* promise(() => fsp.readlink(nodePath.join(dataDir, "..data")))
    assert.deepStrictEqual(yield* sortedEntries(dataDir), ["..data", next, "tls.crt", "tls.key"].sort())
    assert.strictEqual(yield* store.readFile("vol-a", "tls.crt"), "crt-2")
  }))

  fsTest("a user-visible link lost in a crash after the swap is restored by the next publish", Effect.gen(function*() {
    const store = yield* VolumeStore
    const dataDir = store.dataDir("vol-a")
    yield* store.writeFiles("vol-a", pair("1"), undefined)
    yield* promise(() => fsp.unlink(nodePath.join(dataDir, "tls.key")))
    assert.isUndefined(yield* store.readFile("vol-a", "tls.key"))
    yield* store.writeFiles("vol-a", pair("1"), undefined)
    assert.strictEqual(yield* store.readFile("vol-a", "tls.key"), "key-1")
  }))

  fsTest("metadata is replaced by rename: no temporary file remains and a left-over one is overwritten", Effect.gen(function*() {
    const store = yield* VolumeStore
    const volumeDir = nodePath.join(store.root, "vol-a")
    yield* store.write(metadataFor("vol-a"))
    yield* promise(() => fsp.writeFile(nodePath.join(volumeDir, ".metadata.json.tmp"), "{\"half\":"))
    yield* store.write(metadataFor("vol-a", 5))
    assert.deepStrictEqual(yield* sortedEntries(volumeDir), ["metadata.json"])
    assert.deepStrictEqual(yield* store.read("vol-a"), metadataFor("vol-a", 5))
  }))

  fsTest("read fails on undecodable metadata; list removes such directories and keeps the rest", Effect.gen(function*() {
    const store = yield* VolumeStore
    yield* store.write(metadataFor("good"))
    yield* promise(async () => {
      for (const [id, text] of [["garbage", "{not json"], ["wrong-id", JSON.stringify({ ...metadataFor("other") })]]) {
        await fsp.mkdir(nodePath.join(store.root, id ?? ""))
        await fsp.writeFile(nodePath.join(store.root, id ?? "", "metadata.json"), text ?? "")
      }
      await fsp.mkdir(nodePath.join(store.root, "empty"))
      await fsp.writeFile(nodePath.join(store.root, "not-a-volume"), "a stray file is left alone")
    })
    const error = yield* Effect.flip(store.read("garbage"))
    assert.strictEqual(error._tag, "VolumeStoreError")
    assert.include(error.detail, "metadata.json")
    assert.isDefined(error.cause, "the decode failure is kept as the cause")
    assert.deepStrictEqual(yield* store.list, [metadataFor("good")])
    assert.deepStrictEqual(yield* sortedEntries(store.root), ["good", "not-a-volume"])
  }))

  fsTest("a reader resolving ..data once never sees a mixed pair while publishes race it", Effect.gen(function*() {
    const store = yield* VolumeStore
    const dataDir = store.dataDir("vol-race")
    /** Enough swaps for the reader to interleave with every step of a publish many times. */
    const publishes = 150
    const both = (n: number): ReadonlyArray<VolumeFile> => [
      { name: "tls.crt", content: `gen-${n}`, mode: 0o440 },
      { name: "tls.key", content: `gen-${n}`, mode: 0o440 }
    ]
    yield* store.writeFiles("vol-race", both(0), undefined)
    const done = yield* Ref.make(false)
    const writer = Effect.gen(function*() {
      for (let n = 1; n <= publishes; n++) yield* store.writeFiles("vol-race", both(n), undefined)
      yield* Ref.set(done, true)
    })
    const reader = Effect.gen(function*() {
      let consistent = 0
      const problems: Array<string> = []
      while (!(yield* Ref.get(done))) {
        const seen = yield* promise(async () => {
          const viaLink = await fsp.readFile(nodePath.join(dataDir, "tls.crt"), "utf8")
          try {
            const payload = await fsp.readlink(nodePath.join(dataDir, "..data"))
            const crt = await fsp.readFile(nodePath.join(dataDir, payload, "tls.crt"), "utf8")
            const key = await fsp.readFile(nodePath.join(dataDir, payload, "tls.key"), "utf8")
            return { viaLink, pair: [crt, key] as const }
          } catch (cause) {
            // The payload directory was retired between readlink and read: a reader retries.
            if ((cause as NodeJS.ErrnoException).code === "ENOENT") return { viaLink, pair: undefined }
            throw cause
          }
        })
        if (!/^gen-\d+$/.test(seen.viaLink)) problems.push(`partial file ${JSON.stringify(seen.viaLink)}`)
        if (seen.pair === undefined) continue
        if (seen.pair[0] !== seen.pair[1]) problems.push(`mixed pair ${seen.pair.join(" / ")}`)
        consistent++
      }
      return { consistent, problems }
    })
    const [, observed] = yield* Effect.all([writer, reader], { concurrency: 2 })
    assert.deepStrictEqual(observed.problems, [])
    assert.isAbove(observed.consistent, 0)
    assert.strictEqual(yield* store.readFile("vol-race", "tls.key"), `gen-${publishes}`)
  }))
})

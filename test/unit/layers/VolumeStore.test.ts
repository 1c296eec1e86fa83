/**
 * One contract suite for every VolumeStore layer, plus checks only the real file system can answer:
 * the AtomicWriter layout, modes, gid, crash left-overs and readers racing a publish.
 */
import * as fsp from "node:fs/promises"
import * as os from "node:os"
import * as nodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted, Ref } from "effect"
import type { Scope } from "effect"
import { TestClock } from "effect/testing"
import { VolumeMetadata } from "../../../src/domain/VolumeMetadata.ts"
import { layerFileSystem, layerMemory, VolumeStoreMemory } from "../../../src/layers/VolumeStore.ts"
import { VolumeStore, type VolumeFile } from "../../../src/services/VolumeStore.ts"

const isRoot = process.getuid?.() === 0
/** Any group id other than root's, so a chown is observable. */
const GID = 4242
const OTHER_GID = 4243

const metadataFor = (volumeId: string, nextIssuanceAt?: number) =>
  new VolumeMetadata({
    volumeId,
    targetPath: `kubelet/pods/pod-uid/volumes/kubernetes.io~csi/${volumeId}/mount`,
    podName: "web-0",
    podNamespace: "sandbox",
    podUid: "pod-uid",
    serviceAccount: "web",
    spiffeId: "spiffe://cluster.local/ns/sandbox/sa/web",
    ...(nextIssuanceAt === undefined ? {} : { nextIssuanceAt })
  })

const pair = (generation: string): ReadonlyArray<VolumeFile> => [
  { name: "tls.crt", content: `crt-${generation}`, mode: 0o440 },
  { name: "tls.key", content: Redacted.make(`key-${generation}`), mode: 0o440 }
]

/** A fresh scratch directory per test, removed when the test's layer scope closes. */
const scratchDir = Effect.acquireRelease(
  Effect.promise(() => fsp.mkdtemp(nodePath.join(os.tmpdir(), "volumestore-"))),
  (dir) => Effect.promise(() => fsp.rm(dir, { recursive: true, force: true }))
)

const fileSystemLayer = (): Layer.Layer<VolumeStore> =>
  Layer.unwrap(Effect.map(scratchDir, (dir) => layerFileSystem(nodePath.join(dir, "inmemfs"))))

const UNSAFE_IDS = ["", ".", "..", "a/b", "../escape", "a\0b", "x".repeat(256)]

const contractSuite = (name: string, makeLayer: () => Layer.Layer<VolumeStore>) =>
  describe(`VolumeStore contract: ${name}`, () => {
    const test = (title: string, body: Effect.Effect<void, unknown, VolumeStore | Scope.Scope>) =>
      it.effect(title, () => body.pipe(Effect.provide(makeLayer())))

    test("an unknown volume reads as absent and an empty store lists nothing", Effect.gen(function*() {
      const store = yield* VolumeStore
      assert.isUndefined(yield* store.read("vol-a"))
      assert.isUndefined(yield* store.readFile("vol-a", "tls.crt"))
      assert.deepStrictEqual(yield* store.list, [])
    }))

    test("metadata round-trips and a second write replaces it", Effect.gen(function*() {
      const store = yield* VolumeStore
      yield* store.write(metadataFor("vol-a"))
      assert.deepStrictEqual(yield* store.read("vol-a"), metadataFor("vol-a"))
      yield* store.write(metadataFor("vol-a", 1_000))
      assert.deepStrictEqual(yield* store.read("vol-a"), metadataFor("vol-a", 1_000))
      assert.deepStrictEqual(yield* store.list, [metadataFor("vol-a", 1_000)])
    }))

    test("published files are readable, Redacted content included", Effect.gen(function*() {
      const store = yield* VolumeStore
      yield* store.write(metadataFor("vol-a"))
      yield* store.writeFiles("vol-a", pair("1"), GID)
      assert.strictEqual(yield* store.readFile("vol-a", "tls.crt"), "crt-1")
      assert.strictEqual(yield* store.readFile("vol-a", "tls.key"), "key-1")
      assert.isUndefined(yield* store.readFile("vol-a", "ca.crt"))
    }))

    test("a publish replaces the whole set: new content shows, dropped names disappear", Effect.gen(function*() {
      const store = yield* VolumeStore
      yield* store.write(metadataFor("vol-a"))
      yield* store.writeFiles("vol-a", [...pair("1"), { name: "ca.crt", content: "ca-1", mode: 0o440 }], GID)
      yield* store.writeFiles("vol-a", pair("2"), GID)
      assert.strictEqual(yield* store.readFile("vol-a", "tls.crt"), "crt-2")
      assert.strictEqual(yield* store.readFile("vol-a", "tls.key"), "key-2")
      assert.isUndefined(yield* store.readFile("vol-a", "ca.crt"))
    }))

    test("an identical publish and an empty publish are both fine", Effect.gen(function*() {
      const store = yield* VolumeStore
      yield* store.write(metadataFor("vol-a"))
      yield* store.writeFiles("vol-a", pair("1"), undefined)
      yield* store.writeFiles("vol-a", pair("1"), undefined)
      assert.strictEqual(yield* store.readFile("vol-a", "tls.crt"), "crt-1")
      yield* store.writeFiles("vol-a", [], undefined)
      assert.isUndefined(yield* store.readFile("vol-a", "tls.crt"))
    }))

    test("volumes are independent and remove is idempotent", Effect.gen(function*() {
      const store = yield* VolumeStore
      for (const id of ["vol-a", "vol-b"]) {
        yield* store.write(metadataFor(id))
        yield* store.writeFiles(id, pair(id), GID)
      }
      yield* store.remove("vol-a")
      yield* store.remove("vol-a")
      yield* store.remove("never-existed")
      assert.isUndefined(yield* store.read("vol-a"))
      assert.isUndefined(yield* store.readFile("vol-a", "tls.crt"))
      assert.strictEqual(yield* store.readFile("vol-b", "tls.crt"), "crt-vol-b")
      assert.deepStrictEqual(yield* store.list, [metadataFor("vol-b")])
    }))

    test("list removes volumes that have files but no metadata", Effect.gen(function*() {
      const store = yield* VolumeStore
      yield* store.write(metadataFor("vol-a"))
      yield* store.writeFiles("orphan", pair("1"), undefined)
      assert.deepStrictEqual(yield* store.list, [metadataFor("vol-a")])
      assert.isUndefined(yield* store.readFile("orphan", "tls.crt"))
    }))

    test("dataDir is stable, per volume, and refuses unsafe ids", Effect.gen(function*() {
      const store = yield* VolumeStore
      assert.strictEqual(store.dataDir("vol-a"), store.dataDir("vol-a"))
      assert.notStrictEqual(store.dataDir("vol-a"), store.dataDir("vol-b"))
      assert.include(store.dataDir("vol-a"), "vol-a")
      for (const id of UNSAFE_IDS) assert.throws(() => store.dataDir(id))
    }))

    test("every operation refuses a volume id that is not one safe path segment", Effect.gen(function*() {
      const store = yield* VolumeStore
      for (const id of UNSAFE_IDS) {
        const errors = [
          yield* Effect.flip(store.read(id)),
          yield* Effect.flip(store.write(metadataFor(id))),
          yield* Effect.flip(store.writeFiles(id, pair("1"), undefined)),
          yield* Effect.flip(store.readFile(id, "tls.crt")),
          yield* Effect.flip(store.remove(id))
        ]
        for (const error of errors) {
          assert.strictEqual(error._tag, "VolumeStoreError")
          assert.strictEqual(error.volumeId, id)
        }
      }
    }))

    test("writeFiles refuses bad names, duplicates, modes and gids without touching the volume", Effect.gen(function*() {
      const store = yield* VolumeStore
      yield* store.write(metadataFor("vol-a"))
      yield* store.writeFiles("vol-a", pair("1"), undefined)
      const bad: ReadonlyArray<[ReadonlyArray<VolumeFile>, number | undefined]> = [
        [[{ name: "..data", content: "x", mode: 0o440 }], undefined],
        [[{ name: "sub/file", content: "x", mode: 0o440 }], undefined],
        [[{ name: "", content: "x", mode: 0o440 }], undefined],
        [[{ name: "a", content: "x", mode: 0o440 }, { name: "a", content: "y", mode: 0o440 }], undefined],
        [[{ name: "a", content: "x", mode: 0o4755 }], undefined],
        [[{ name: "a", content: "x", mode: 1.5 }], undefined],
        [pair("2"), -1],
        [pair("2"), 4_294_967_295],
        [pair("2"), 1.5]
      ]
      for (const [files, gid] of bad) {
        const error = yield* Effect.flip(store.writeFiles("vol-a", files, gid))
        assert.strictEqual(error._tag, "VolumeStoreError")
        assert.strictEqual(error.operation, "writeFiles")
      }
      assert.strictEqual(yield* store.readFile("vol-a", "tls.crt"), "crt-1")
      for (const name of ["..data", "a/b", ""]) {
        assert.strictEqual((yield* Effect.flip(store.readFile("vol-a", name)))._tag, "VolumeStoreError")
      }
    }))
  })

contractSuite("layerMemory", () => layerMemory("inmemfs"))

describe.skipIf(!isRoot)("VolumeStore (needs root: data/ is 0550 as in csi-lib, only root may write into it)", () => {
  contractSuite("layerFileSystem", fileSystemLayer)
})

describe("layerMemory state", () => {
  it.effect("records gid, modes and counts only real swaps", () =>
    Effect.gen(function*() {
      const store = yield* VolumeStore
      const { volumes } = yield* VolumeStoreMemory
      yield* store.write(metadataFor("vol-a"))
      yield* store.writeFiles("vol-a", pair("1"), GID)
      yield* store.writeFiles("vol-a", pair("1"), GID)
      let volume = (yield* Ref.get(volumes)).get("vol-a")
      assert.strictEqual(volume?.swaps, 1)
      assert.strictEqual(volume?.gid, GID)
      assert.deepStrictEqual(volume?.files.get("tls.key"), { content: "key-1", mode: 0o440 })
      yield* store.writeFiles("vol-a", pair("1"), OTHER_GID)
      volume = (yield* Ref.get(volumes)).get("vol-a")
      assert.strictEqual(volume?.swaps, 2)
      assert.strictEqual(volume?.gid, OTHER_GID)
      assert.strictEqual(store.dataDir("vol-a"), "memory://inmemfs/vol-a/data")
    }).pipe(Effect.provide(layerMemory("inmemfs"))))
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

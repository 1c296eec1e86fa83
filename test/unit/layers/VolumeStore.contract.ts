/**
 * The VolumeStore contract: what every layer (the file-system layer and the memory twin) must do,
 * run by `VolumeStore.test.ts` against `layerFileSystem` and by `volumeStore/Memory.test.ts`
 * against `layerMemory`. Not a test file itself (no `.test.`), so it runs only through them.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import type { Layer, Scope } from "effect"
import { VolumeMetadata } from "../../../src/domain/VolumeMetadata.ts"
import { VolumeStore, type VolumeFile } from "../../../src/services/VolumeStore.ts"

/** Any group id other than root's, so a chown is observable. */
export const GID = 4242
export const OTHER_GID = 4243

export const metadataFor = (volumeId: string, nextIssuanceAt?: number) =>
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

export const pair = (generation: string): ReadonlyArray<VolumeFile> => [
  { name: "tls.crt", content: `crt-${generation}`, mode: 0o440 },
  { name: "tls.key", content: Redacted.make(`key-${generation}`), mode: 0o440 }
]

const UNSAFE_IDS = ["", ".", "..", "a/b", "../escape", "a\0b", "x".repeat(256)]

export const contractSuite = (name: string, makeLayer: () => Layer.Layer<VolumeStore>) =>
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

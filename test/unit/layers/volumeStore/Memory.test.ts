/**
 * The VolumeStore memory twin: the shared contract, plus the state it exposes for other tests.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Ref } from "effect"
import { layerMemory, VolumeStoreMemory } from "../../../../src/layers/volumeStore/Memory.ts"
import { VolumeStore } from "../../../../src/services/VolumeStore.ts"
import { contractSuite, GID, metadataFor, OTHER_GID, pair } from "../VolumeStore.contract.ts"

contractSuite("layerMemory", () => layerMemory("inmemfs"))

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

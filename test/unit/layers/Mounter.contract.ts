/**
 * The Mounter contract both layers keep: what the driver relies on. Run against `layerMemory` by
 * `Mounter.test.ts` and against `layerLinux` (real tmpfs and bind mounts, as root) by
 * `test/integration/mounts.test.ts`. Not a test file itself (no `.test.`).
 *
 * A fixture gives each case a fresh directory and a way to create directories in it (a no-op for
 * the memory table, which has no files).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { Scope } from "effect"
import { Mounter } from "../../../src/services/Mounter.ts"

export interface MounterFixture {
  /** A fresh, empty directory for one case, cleaned up (mounts included) when its scope closes. */
  readonly scratch: Effect.Effect<string, never, Scope.Scope>
  /** Creates a directory (with parents); the memory table needs none. */
  readonly makeDirectory: (path: string) => Effect.Effect<void>
}

export const contractSuite = (name: string, layer: Layer.Layer<Mounter>, fixture: MounterFixture) =>
  describe(`Mounter contract: ${name}`, () => {
    const test = (title: string, body: (dir: string) => Effect.Effect<void, unknown, Mounter | Scope.Scope>) =>
      it.effect(title, () => Effect.flatMap(fixture.scratch, body).pipe(Effect.provide(layer), Effect.scoped))

    test("a tmpfs is a mount point until unmounted; unmount is idempotent", (dir) =>
      Effect.gen(function*() {
        const mounter = yield* Mounter
        const path = `${dir}/inmemfs`
        assert.isFalse(yield* mounter.isMountPoint(path))
        yield* mounter.mountTmpfs(path, { mode: 0o700 })
        assert.isTrue(yield* mounter.isMountPoint(path))
        assert.isTrue(yield* mounter.isMountPoint(`${path}/`), "a trailing slash names the same mount point")
        yield* mounter.unmount(path)
        assert.isFalse(yield* mounter.isMountPoint(path))
        yield* mounter.unmount(path)
        yield* mounter.unmount(`${dir}/never-mounted`)
      }))

    test("a read-only bind is a mount point at the target, and inspectTarget says so", (dir) =>
      Effect.gen(function*() {
        const mounter = yield* Mounter
        const source = `${dir}/source`
        const target = `${dir}/pods/p/mount`
        yield* fixture.makeDirectory(source)
        assert.deepStrictEqual(yield* mounter.inspectTarget(dir, target), { _tag: "Missing" })
        yield* mounter.bindReadOnly(source, target)
        assert.isTrue(yield* mounter.isMountPoint(target))
        assert.deepStrictEqual(yield* mounter.inspectTarget(dir, target), { _tag: "MountPoint" })
        yield* mounter.unmount(target)
        assert.isFalse(yield* mounter.isMountPoint(target))
      }))

    test("a tmpfs mode outside 0..0o7777 is refused before anything is mounted", (dir) =>
      Effect.gen(function*() {
        const mounter = yield* Mounter
        for (const mode of [0o10000, -1, 1.5]) {
          const error = yield* Effect.flip(mounter.mountTmpfs(`${dir}/bad`, { mode }))
          assert.strictEqual(error._tag, "MountError")
          assert.include(error.detail, "mode must be an integer")
        }
        assert.isFalse(yield* mounter.isMountPoint(`${dir}/bad`))
      }))
  })

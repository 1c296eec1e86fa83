/**
 * Real mounts: layerLinux mounts a tmpfs in a scratch directory, layerFileSystem publishes into it,
 * and the data directory is bind-mounted read-only onto a pod-like target. Needs root (mount(8)
 * needs CAP_SYS_ADMIN); every mount under the scratch directory is undone by a finalizer, also when
 * a test fails.
 */
import * as fsp from "node:fs/promises"
import * as nodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Ref } from "effect"
import { VolumeMetadata } from "../../src/domain/VolumeMetadata.ts"
import { layerLinux, TMPFS_SIZE } from "../../src/layers/Mounter.ts"
import { layerFileSystem } from "../../src/layers/VolumeStore.ts"
import { Mounter } from "../../src/services/Mounter.ts"
import { VolumeStore } from "../../src/services/VolumeStore.ts"
import { mountsUnder, scratchDir } from "../support/scratch.ts"
import { contractSuite } from "../unit/layers/Mounter.contract.ts"

const isRoot = process.getuid?.() === 0
/** A group other than root's, so the chown is observable through the bind mount. */
const GID = 4242
const VOLUME_ID = "csi-0123456789abcdef"

/**
 * A scratch directory whose finalizer lazily unmounts everything below it (newest first) and then
 * deletes it. Lazy unmount is for this clean-up only: it detaches even a mount a failed test left busy.
 */
const scratchWithMounts = scratchDir("mounts-")

const mountInfoAt = (path: string) =>
  Effect.promise(async () => (await mountsUnder(path)).findLast((entry) => entry.mountPoint === path))

const errnoOf = (run: () => Promise<unknown>) =>
  Effect.promise(() => run().then(() => "no error", (cause: NodeJS.ErrnoException) => cause.code ?? "no code"))

const metadata = (targetPath: string) =>
  new VolumeMetadata({
    volumeId: VOLUME_ID,
    targetPath,
    podName: "web-0",
    podNamespace: "sandbox",
    podUid: "pod-uid",
    serviceAccount: "web",
    spiffeId: "spiffe://cluster.local/ns/sandbox/sa/web"
  })

describe.skipIf(!isRoot)("the Mounter contract on Linux (needs root for mount(8); skipped otherwise)", () => {
  contractSuite("layerLinux", layerLinux, {
    scratch: scratchDir("mounter-contract-"),
    makeDirectory: (path) => Effect.promise(() => fsp.mkdir(path, { recursive: true }))
  })
})

describe.skipIf(!isRoot)("real tmpfs and read-only bind mounts (needs root for mount(8); skipped otherwise)", () => {
  it.live("publishes into a tmpfs and shows the files read-only at the target, across a republish", () =>
    Effect.gen(function*() {
      const mounter = yield* Mounter
      const dir = yield* scratchWithMounts
      const root = nodePath.join(dir, "inmemfs")
      const target = nodePath.join(dir, "pods", "pod-uid", "volumes", "kubernetes.io~csi", "tls", "mount")

      yield* mounter.mountTmpfs(root, { mode: 0o700 })
      assert.isTrue(yield* mounter.isMountPoint(root))
      const tmpfs = yield* mountInfoAt(root)
      assert.strictEqual(tmpfs?.fsType, "tmpfs")
      assert.includeMembers([...(tmpfs?.superOptions ?? [])], [`size=${64 * 1024}k`, "mode=700"])
      assert.strictEqual(TMPFS_SIZE, "64m")
      assert.includeMembers([...(tmpfs?.mountOptions ?? [])], ["nosuid", "nodev", "noexec"])

      const store = yield* Effect.service(VolumeStore).pipe(Effect.provide(layerFileSystem(root)))
      yield* store.write(metadata(target))
      yield* store.writeFiles(VOLUME_ID, [
        { name: "tls.crt", content: "crt-1", mode: 0o440 },
        { name: "tls.key", content: "key-1", mode: 0o440 }
      ], GID)

      assert.isFalse(yield* mounter.isMountPoint(target))
      yield* mounter.bindReadOnly(store.dataDir(VOLUME_ID), target)
      assert.isTrue(yield* mounter.isMountPoint(target))
      assert.isTrue(yield* mounter.isMountPoint(`${target}/`))
      const bind = yield* mountInfoAt(target)
      assert.includeMembers([...(bind?.mountOptions ?? [])], ["ro", "nosuid", "nodev", "noexec"])
      assert.strictEqual(bind?.root, `/${VOLUME_ID}/data`)

      const seen = yield* Effect.promise(() => fsp.stat(target))
      assert.strictEqual(seen.mode & 0o7777, 0o550)
      assert.strictEqual(seen.gid, GID)
      assert.strictEqual(yield* Effect.promise(() => fsp.readFile(nodePath.join(target, "tls.crt"), "utf8")), "crt-1")

      // Even root cannot write through a read-only mount.
      assert.strictEqual(yield* errnoOf(() => fsp.writeFile(nodePath.join(target, "new.pem"), "x")), "EROFS")
      assert.strictEqual(yield* errnoOf(() => fsp.appendFile(nodePath.join(target, "tls.key"), "x")), "EROFS")
      assert.strictEqual(yield* errnoOf(() => fsp.unlink(nodePath.join(target, "tls.crt"))), "EROFS")

      // A republish swaps ..data inside the bound directory, so the pod sees it without a remount.
      yield* store.writeFiles(VOLUME_ID, [
        { name: "tls.crt", content: "crt-2", mode: 0o440 },
        { name: "tls.key", content: "key-2", mode: 0o440 }
      ], GID)
      assert.strictEqual(yield* Effect.promise(() => fsp.readFile(nodePath.join(target, "tls.key"), "utf8")), "key-2")

      // isMountPoint resolves symlinks before comparing with mountinfo.
      const link = nodePath.join(dir, "link-to-target")
      yield* Effect.promise(() => fsp.symlink(target, link))
      assert.isTrue(yield* mounter.isMountPoint(link))

      yield* mounter.unmount(target)
      assert.isFalse(yield* mounter.isMountPoint(target))
      yield* mounter.unmount(target)
      yield* mounter.unmount(nodePath.join(dir, "never", "created"))
      assert.deepStrictEqual(yield* Effect.promise(() => fsp.readdir(target)), [])

      yield* store.remove(VOLUME_ID)
      yield* mounter.unmount(root)
      assert.isFalse(yield* mounter.isMountPoint(root))
      assert.deepStrictEqual(yield* Effect.promise(() => mountsUnder(dir)), [])
    }).pipe(Effect.provide(layerLinux)))

  it.live("a missing bind source fails with MountError and mounts nothing", () =>
    Effect.gen(function*() {
      const mounter = yield* Mounter
      const dir = yield* scratchWithMounts
      const target = nodePath.join(dir, "target")
      const error = yield* Effect.flip(mounter.bindReadOnly(nodePath.join(dir, "missing"), target))
      assert.strictEqual(error._tag, "MountError")
      assert.isFalse(yield* mounter.isMountPoint(target))
      assert.deepStrictEqual(yield* Effect.promise(() => mountsUnder(dir)), [])
    }).pipe(Effect.provide(layerLinux)))

  it.live("the clean-up finalizer removes mounts left by a failing test", () =>
    Effect.gen(function*() {
      const mounter = yield* Mounter
      const used = yield* Ref.make("")
      const exit = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
        const dir = yield* scratchWithMounts
        yield* Ref.set(used, dir)
        yield* mounter.mountTmpfs(nodePath.join(dir, "inmemfs"), { mode: 0o700 })
        yield* Effect.promise(() => fsp.mkdir(nodePath.join(dir, "inmemfs", "src")))
        yield* mounter.bindReadOnly(nodePath.join(dir, "inmemfs", "src"), nodePath.join(dir, "target"))
        assert.strictEqual((yield* Effect.promise(() => mountsUnder(dir))).length, 2)
        return yield* Effect.fail("simulated test failure")
      })))
      assert.isTrue(Exit.isFailure(exit))
      const dir = yield* Ref.get(used)
      assert.deepStrictEqual(yield* Effect.promise(() => mountsUnder(dir)), [])
      assert.strictEqual(yield* errnoOf(() => fsp.stat(dir)), "ENOENT")
    }).pipe(Effect.provide(layerLinux)))
})

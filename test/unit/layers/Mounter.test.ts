/**
 * mountinfo parsing, the recorded memory mounter, and the parts of layerLinux that need no privilege
 * (real mounts are in test/integration/mounts.test.ts).
 */
import * as fsp from "node:fs/promises"
import * as os from "node:os"
import * as nodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Ref } from "effect"
import { layerLinux, layerMemory, MounterMemory, parseMountInfo } from "../../../src/layers/Mounter.ts"
import { contractSuite } from "./Mounter.contract.ts"
import { Mounter } from "../../../src/services/Mounter.ts"

describe("parseMountInfo", () => {
  it("reads every field, with and without optional fields", () => {
    const text = [
      "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
      "42 27 0:39 / /var/lib/driver/inmemfs rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,size=65536k,mode=700",
      "43 42 0:39 /vol/data /pods/p/mount ro,relatime shared:7 master:3 propagate_from:2 - tmpfs tmpfs rw"
    ].join("\n")
    const [first, second, third] = parseMountInfo(text)
    assert.deepStrictEqual(first, {
      mountId: 36,
      parentId: 35,
      root: "/mnt1",
      mountPoint: "/mnt2",
      mountOptions: ["rw", "noatime"],
      fsType: "ext3",
      source: "/dev/root",
      superOptions: ["rw", "errors=continue"]
    })
    assert.strictEqual(second?.mountPoint, "/var/lib/driver/inmemfs")
    assert.deepStrictEqual(second?.superOptions, ["rw", "size=65536k", "mode=700"])
    assert.strictEqual(third?.root, "/vol/data")
    assert.strictEqual(third?.mountPoint, "/pods/p/mount")
    assert.deepStrictEqual(third?.mountOptions, ["ro", "relatime"])
    assert.strictEqual(third?.fsType, "tmpfs")
  })

  it("decodes the kernel's octal escapes for space, tab, newline and backslash", () => {
    const [entry] = parseMountInfo(
      "50 27 0:40 / /pods/with\\040space\\011tab\\012nl\\134slash rw - tmpfs my\\040src rw\n"
    )
    assert.strictEqual(entry?.mountPoint, "/pods/with space\ttab\nnl\\slash")
    assert.strictEqual(entry?.source, "my src")
  })

  it("skips blank and malformed lines", () => {
    const entries = parseMountInfo([
      "",
      "garbage",
      "1 2 3:4 / /no-separator rw tmpfs tmpfs rw",
      "x 2 3:4 / /bad-id rw - tmpfs tmpfs rw",
      "7 1 0:5 / /ok rw - proc proc rw",
      "8 1 0:6 / /truncated rw - tmpfs"
    ].join("\n"))
    assert.deepStrictEqual(entries.map((entry) => entry.mountPoint), ["/ok"])
  })
})

contractSuite("layerMemory", layerMemory, {
  scratch: Effect.succeed("/scratch"),
  makeDirectory: () => Effect.void
})

describe("Mounter layerMemory", () => {
  it.effect("records tmpfs and read-only bind mounts and answers isMountPoint from the table", () =>
    Effect.gen(function*() {
      const mounter = yield* Mounter
      const { table } = yield* MounterMemory
      assert.isFalse(yield* mounter.isMountPoint("/data/inmemfs"))
      yield* mounter.mountTmpfs("/data/inmemfs", { mode: 0o700 })
      yield* mounter.bindReadOnly("/data/inmemfs/vol/data", "/pods/p/mount/")
      assert.isTrue(yield* mounter.isMountPoint("/data/inmemfs/"))
      assert.isTrue(yield* mounter.isMountPoint("/pods/p/mount"))
      assert.deepStrictEqual([...(yield* Ref.get(table))], [
        ["/data/inmemfs", { _tag: "Tmpfs", mode: 0o700 }],
        ["/pods/p/mount", { _tag: "Bind", source: "/data/inmemfs/vol/data", readOnly: true }]
      ])
    }).pipe(Effect.provide(layerMemory)))

  it.effect("unmount is idempotent and fine for paths that were never mounted", () =>
    Effect.gen(function*() {
      const mounter = yield* Mounter
      yield* mounter.bindReadOnly("/src", "/target")
      yield* mounter.unmount("/target")
      yield* mounter.unmount("/target")
      yield* mounter.unmount("/never/mounted")
      assert.isFalse(yield* mounter.isMountPoint("/target"))
      assert.strictEqual((yield* Ref.get((yield* MounterMemory).table)).size, 0)
    }).pipe(Effect.provide(layerMemory)))

  it.effect("fails loudly on misuse: mounting over a mount point, binding onto itself, a bad mode", () =>
    Effect.gen(function*() {
      const mounter = yield* Mounter
      yield* mounter.bindReadOnly("/src", "/target")
      const errors = [
        yield* Effect.flip(mounter.bindReadOnly("/other", "/target")),
        yield* Effect.flip(mounter.mountTmpfs("/target", { mode: 0o700 })),
        yield* Effect.flip(mounter.bindReadOnly("/same", "/same/")),
        yield* Effect.flip(mounter.bindReadOnly("", "/t2")),
        yield* Effect.flip(mounter.mountTmpfs("/t3", { mode: 0o10000 }))
      ]
      for (const error of errors) assert.strictEqual(error._tag, "MountError")
      assert.strictEqual(errors[0]?.detail, "already a mount point")
    }).pipe(Effect.provide(layerMemory)))
})

describe("Mounter layerLinux without privilege", () => {
  const scratch = Effect.acquireRelease(
    Effect.promise(() => fsp.mkdtemp(nodePath.join(os.tmpdir(), "mounter-"))),
    (dir) => Effect.promise(() => fsp.rm(dir, { recursive: true, force: true }))
  )

  it.effect("the root is a mount point; a plain directory and a missing path are not", () =>
    Effect.gen(function*() {
      const mounter = yield* Mounter
      const dir = yield* scratch
      assert.isTrue(yield* mounter.isMountPoint("/"))
      assert.isFalse(yield* mounter.isMountPoint(dir))
      assert.isFalse(yield* mounter.isMountPoint(nodePath.join(dir, "missing", "deeper")))
      yield* Effect.promise(() => fsp.writeFile(nodePath.join(dir, "file"), ""))
      assert.isFalse(yield* mounter.isMountPoint(nodePath.join(dir, "file", "below-a-file")))
    }).pipe(Effect.provide(layerLinux)))

  /**
   * An `umount` first on PATH for the test's duration that only records its arguments: layerLinux
   * runs umount(8) by name, so any call would land here (and a real umount of a path that is not
   * mounted fails in a way layerLinux forgives, which would hide the call).
   */
  const recordingUmount = Effect.acquireRelease(
    Effect.promise(async () => {
      const bin = await fsp.mkdtemp(nodePath.join(os.tmpdir(), "mounter-bin-"))
      const calls = nodePath.join(bin, "calls")
      await fsp.writeFile(nodePath.join(bin, "umount"), `#!/bin/sh\necho "$@" >> '${calls}'\n`, { mode: 0o755 })
      const saved = process.env["PATH"]
      process.env["PATH"] = `${bin}:${saved ?? ""}`
      return { bin, calls, saved }
    }),
    ({ bin, saved }) =>
      Effect.promise(async () => {
        process.env["PATH"] = saved
        await fsp.rm(bin, { recursive: true, force: true })
      })
  )

  it.effect("unmounting a path that is not mounted or missing succeeds without running umount", () =>
    Effect.gen(function*() {
      const mounter = yield* Mounter
      const dir = yield* scratch
      const umount = yield* recordingUmount
      yield* mounter.unmount(dir)
      yield* mounter.unmount(nodePath.join(dir, "missing"))
      const calls = yield* Effect.promise(() => fsp.readFile(umount.calls, "utf8").catch(() => ""))
      assert.strictEqual(calls, "", "umount(8) was run")
    }).pipe(Effect.provide(layerLinux)))

  it.effect("refuses a bad tmpfs mode and a missing bind source before running mount", () =>
    Effect.gen(function*() {
      const mounter = yield* Mounter
      const dir = yield* scratch
      const badMode = yield* Effect.flip(mounter.mountTmpfs(nodePath.join(dir, "t"), { mode: -1 }))
      assert.strictEqual(badMode._tag, "MountError")
      const missing = yield* Effect.flip(mounter.bindReadOnly(nodePath.join(dir, "nope"), nodePath.join(dir, "target")))
      assert.strictEqual(missing._tag, "MountError")
      assert.include(missing.detail, "is not a directory")
      assert.deepStrictEqual(yield* Effect.promise(() => fsp.readdir(dir)), [])
    }).pipe(Effect.provide(layerLinux)))
})

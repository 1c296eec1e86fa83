/**
 * The node's mount table, as far as the driver changes it.
 *
 * Owns: asking whether a path is a mount point, reporting what is on disk at a target path (without
 * following symlinks), mounting the driver's tmpfs, bind-mounting a volume's data directory
 * read-only onto the kubelet's target path, and unmounting.
 * Does not own: which paths (the driver decides), file contents (VolumeStore).
 *
 * Implementations: `layers/Mounter.ts` — `layerLinux` (mount(8)/umount(8) and /proc/self/mountinfo)
 * and `layerMemory` (a recorded mount table, so tests can assert what was mounted).
 */
import { Context, Schema } from "effect"
import type { Effect } from "effect"

export class MountError extends Schema.TaggedError<MountError>()("MountError", {
  operation: Schema.String,
  path: Schema.String,
  detail: Schema.String,
  /** The file-system or process failure behind it, when there is one. */
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `${this.operation} ${this.path}: ${this.detail}`
  }
}

/**
 * What is at a target path below a root, walked component by component with lstat: `Missing` (the
 * path or a parent does not exist yet), an `EmptyDirectory`, a `MountPoint` (a directory something
 * is mounted on), or `Refused` with the reason no mount may go there (a symlink in any component
 * below the root, a component that is not a directory, a regular file, a non-empty directory).
 */
export type TargetState =
  | { readonly _tag: "Missing" }
  | { readonly _tag: "EmptyDirectory" }
  | { readonly _tag: "MountPoint" }
  | { readonly _tag: "Refused"; readonly reason: string }

export interface MounterShape {
  /** What is at `target`, which lies below `root`; components of `root` itself are not inspected. */
  readonly inspectTarget: (root: string, target: string) => Effect.Effect<TargetState, MountError>
  /** True when `path` is itself a mount point; false when it is not or does not exist. */
  readonly isMountPoint: (path: string) => Effect.Effect<boolean, MountError>
  /** Mounts a fresh tmpfs at `path` (created if missing) with the given mode. */
  readonly mountTmpfs: (path: string, options: { readonly mode: number }) => Effect.Effect<void, MountError>
  /** Bind-mounts `source` onto `target` (created if missing) read-only. */
  readonly bindReadOnly: (source: string, target: string) => Effect.Effect<void, MountError>
  /** Unmounts `path`; a path that is not mounted (or missing) is fine. */
  readonly unmount: (path: string) => Effect.Effect<void, MountError>
}

export class Mounter extends Context.Service<Mounter, MounterShape>()("csi-driver-spiffe/services/Mounter") {}

/**
 * Per-volume state on the node: the metadata record and the files the pod sees.
 *
 * Owns: the layout under `<data-root>/inmemfs/<volumeId>/` (`metadata.json`, `data/`), atomic
 * publication of the pod-visible files (kubelet's `..data` symlink swap: a reader sees the old set or
 * the new set, never a mix), file modes and the fs-group gid, and removal.
 * Does not own: mounting the tmpfs or bind mounts (Mounter), deciding what to write (the driver).
 *
 * Implementations: `layers/VolumeStore.ts` — `layer` on Effect's FileSystem (`layerFileSystem` on
 * Node's) and `layerMemory`; both pass `test/unit/layers/VolumeStore.contract.ts`.
 */
import { Context, Schema } from "effect"
import type { Effect, Redacted } from "effect"
import type { VolumeMetadata } from "../domain/VolumeMetadata.ts"

export class VolumeStoreError extends Schema.TaggedError<VolumeStoreError>()("VolumeStoreError", {
  operation: Schema.String,
  volumeId: Schema.String,
  detail: Schema.String,
  /** The file-system failure behind it, when there is one (validation errors have none). */
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `${this.operation} ${this.volumeId}: ${this.detail}`
  }
}

/** One pod-visible file. Keys are passed Redacted so they cannot reach a log by accident. */
export interface VolumeFile {
  readonly name: string
  readonly content: string | Redacted.Redacted<string>
  /** Mode bits of the file: 0o440 for the certificate chain, the CA bundle and the key alike (readable by owner and gid only). */
  readonly mode: number
}

export interface VolumeStoreShape {
  /** The root holding every volume (`<data-root>/inmemfs`). */
  readonly root: string
  /** Every stored volume's metadata; directories without readable metadata are removed. */
  readonly list: Effect.Effect<ReadonlyArray<VolumeMetadata>, VolumeStoreError>
  /** The volume's metadata, or undefined when the volume is unknown. */
  readonly read: (volumeId: string) => Effect.Effect<VolumeMetadata | undefined, VolumeStoreError>
  /** Creates the volume directory if needed and replaces metadata.json atomically (mode 0600). */
  readonly write: (metadata: VolumeMetadata) => Effect.Effect<void, VolumeStoreError>
  /**
   * Publishes exactly these files into the volume's data directory in one atomic swap; names not in
   * the set disappear, except unix sockets (the volume's Workload API endpoint, which its server
   * owns). Files and the data directory get group `gid` when given.
   */
  readonly writeFiles: (
    volumeId: string,
    files: ReadonlyArray<VolumeFile>,
    gid: number | undefined
  ) => Effect.Effect<void, VolumeStoreError>
  /** The current content of a pod-visible file, or undefined. */
  readonly readFile: (volumeId: string, name: string) => Effect.Effect<string | undefined, VolumeStoreError>
  /** The directory that is bind-mounted into the pod. */
  readonly dataDir: (volumeId: string) => string
  /** Removes everything stored for the volume; unknown volumes are fine. */
  readonly remove: (volumeId: string) => Effect.Effect<void, VolumeStoreError>
}

export class VolumeStore extends Context.Service<VolumeStore, VolumeStoreShape>()("csi-driver-spiffe/services/VolumeStore") {}

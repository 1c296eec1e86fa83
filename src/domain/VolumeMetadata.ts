/**
 * The per-volume record the driver persists under `--data-root` so that a restarted driver can
 * resume renewing every published volume. It never holds the pod's token (the original kept it on
 * disk for the pod's lifetime); the token lives only in memory and returns with the next republish.
 */
import { Schema } from "effect"

export class VolumeMetadata extends Schema.Class<VolumeMetadata>("csi-driver-spiffe/domain/VolumeMetadata")({
  volumeId: Schema.String,
  targetPath: Schema.String,
  podName: Schema.String,
  podNamespace: Schema.String,
  podUid: Schema.String,
  serviceAccount: Schema.String,
  /** `spiffe://<td>/ns/<ns>/sa/<sa>` */
  spiffeId: Schema.String,
  /** gid the files belong to (the fs-group attribute, else the CSI volume_mount_group). */
  fsGroup: Schema.optional(Schema.Int),
  /** The volume serves the SPIFFE Workload API on this socket name in its data directory; absent: no socket. */
  workloadApiSocket: Schema.optional(Schema.String),
  /** The volume also holds the SPIFFE filesystem-delivery files (domain/FilesystemDelivery.ts). */
  filesystemDelivery: Schema.optional(Schema.Boolean),
  /** Epoch milliseconds of the next renewal; absent until the first certificate was written. */
  nextIssuanceAt: Schema.optional(Schema.Int),
  /** Epoch milliseconds of the current leaf's NotAfter. */
  notAfter: Schema.optional(Schema.Int)
}) {}

export const decodeJson = Schema.decodeUnknownEffect(Schema.fromJsonString(VolumeMetadata))
export const encodeJson = Schema.encodeEffect(Schema.fromJsonString(VolumeMetadata))

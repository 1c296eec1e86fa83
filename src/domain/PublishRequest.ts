/**
 * NodePublishVolume and NodeUnpublishVolume requests, checked before the driver does anything.
 *
 * Owns: every rule a request must meet (CSI spec required fields, this driver's ephemeral read-only
 * model, kubelet's pod info, the token and its agreement with the pod info, the fs-group), each
 * violation named by its field, all of them reported at once. A request that fails here creates no
 * CertificateRequest, no directory and no mount.
 */
import { Result, Schema } from "effect"
import type { PodToken } from "./Token.ts"
import { parseTokens } from "./Token.ts"

export const EPHEMERAL_KEY = "csi.storage.k8s.io/ephemeral"
export const POD_NAME_KEY = "csi.storage.k8s.io/pod.name"
export const POD_NAMESPACE_KEY = "csi.storage.k8s.io/pod.namespace"
export const POD_UID_KEY = "csi.storage.k8s.io/pod.uid"
export const SERVICE_ACCOUNT_KEY = "csi.storage.k8s.io/serviceAccount.name"
export const FS_GROUP_KEY = "spiffe.csi.cert-manager.io/fs-group"

/**
 * Linux gids are 32-bit, and chown(2) reads 4294967295 ((gid_t)-1) as "leave unchanged", so the
 * largest usable gid is one less. 0 (root's group) is refused: it would give the key to root's group
 * only by accident.
 */
export const MAX_GID = 4294967294
/** kubelet's volume handles are `csi-<64 hex>`; 128 leaves room for other callers while staying a sane path segment. */
export const MAX_VOLUME_ID_LENGTH = 128

const StringMap = Schema.Record(Schema.String, Schema.String)

/** The proto-loader shape of the fields we read; everything else is ignored. */
const RawPublish = Schema.Struct({
  volume_id: Schema.optional(Schema.NullOr(Schema.String)),
  target_path: Schema.optional(Schema.NullOr(Schema.String)),
  readonly: Schema.optional(Schema.NullOr(Schema.Boolean)),
  volume_context: Schema.optional(Schema.NullOr(StringMap)),
  volume_capability: Schema.optional(
    Schema.NullOr(
      Schema.Struct({
        access_type: Schema.optional(Schema.NullOr(Schema.String)),
        block: Schema.optional(Schema.NullOr(Schema.Unknown)),
        mount: Schema.optional(
          Schema.NullOr(
            Schema.Struct({
              fs_type: Schema.optional(Schema.NullOr(Schema.String)),
              mount_flags: Schema.optional(Schema.NullOr(Schema.Array(Schema.String))),
              volume_mount_group: Schema.optional(Schema.NullOr(Schema.String))
            })
          )
        ),
        access_mode: Schema.optional(Schema.NullOr(Schema.Struct({ mode: Schema.optional(Schema.NullOr(Schema.Union([Schema.String, Schema.Int]))) })))
      })
    )
  )
})

const RawUnpublish = Schema.Struct({
  volume_id: Schema.optional(Schema.NullOr(Schema.String)),
  target_path: Schema.optional(Schema.NullOr(Schema.String))
})

/** A publish request that passed every check. */
export interface PublishRequest {
  readonly volumeId: string
  readonly targetPath: string
  readonly podName: string
  readonly podNamespace: string
  readonly podUid: string
  readonly serviceAccount: string
  readonly token: PodToken
  /** From the fs-group attribute, else the CSI volume_mount_group; undefined leaves files root-only. */
  readonly fsGroup: number | undefined
}

export interface UnpublishRequest {
  readonly volumeId: string
  readonly targetPath: string
}

/** A volume id must be usable as one path segment under the data root. */
export const volumeIdViolations = (id: string | null | undefined): ReadonlyArray<string> => {
  if (id === undefined || id === null || id === "") return ["volume_id is required"]
  if (id.length > MAX_VOLUME_ID_LENGTH) return [`volume_id is longer than ${MAX_VOLUME_ID_LENGTH} characters`]
  if (id === "." || id === ".." || !/^[A-Za-z0-9._-]+$/.test(id)) {
    return ["volume_id may only contain letters, digits, '.', '-' and '_' and must not be '.' or '..'"]
  }
  return []
}

const targetPathViolations = (p: string | null | undefined): ReadonlyArray<string> => {
  if (p === undefined || p === null || p === "") return ["target_path is required"]
  if (!p.startsWith("/")) return ["target_path must be absolute"]
  if (p.split("/").some((s) => s === "..")) return ["target_path must not contain '..'"]
  return []
}

/** Parses a gid from the attribute or mount group; reports the field it came from. */
export const parseGid = (field: string, raw: string): Result.Result<number, string> => {
  if (!/^\d+$/.test(raw)) return Result.fail(`${field} must be an integer gid, got ${JSON.stringify(raw)}`)
  const n = Number(raw)
  if (n < 1 || n > MAX_GID) return Result.fail(`${field} must be between 1 and ${MAX_GID}, got ${raw}`)
  return Result.succeed(n)
}

const summary = (violations: ReadonlyArray<string>): string => violations.join("; ")

/**
 * Checks a NodePublishVolume request. Fails with one message naming every violated field, in the
 * order the fields appear in the request.
 */
export const decodePublish = (input: unknown): Result.Result<PublishRequest, string> => {
  const raw = Schema.decodeUnknownResult(RawPublish)(input)
  if (Result.isFailure(raw)) return Result.fail("request is not a NodePublishVolumeRequest")
  const r = raw.success
  const v: Array<string> = []
  v.push(...volumeIdViolations(r.volume_id))
  v.push(...targetPathViolations(r.target_path))

  const ctx = r.volume_context ?? {}
  const fsGroupAttr = ctx[FS_GROUP_KEY]
  let fsGroup: number | undefined
  const cap = r.volume_capability
  if (cap === undefined || cap === null) v.push("volume_capability is required")
  else if (cap.access_type === "block" || (cap.block !== undefined && cap.block !== null)) {
    v.push("volume_capability.block is not supported: this driver only publishes mount volumes")
  } else if (cap.mount === undefined || cap.mount === null) v.push("volume_capability.mount is required")
  else {
    if (cap.access_mode === undefined || cap.access_mode === null) v.push("volume_capability.access_mode is required")
    // The fs-group attribute wins over the CSI mount group (as in the original); the mount group is
    // only checked when it is the one that will be used.
    const g = cap.mount.volume_mount_group
    if (fsGroupAttr === undefined && g !== undefined && g !== null && g !== "") {
      const gid = parseGid("volume_capability.mount.volume_mount_group", g)
      if (Result.isFailure(gid)) v.push(gid.failure)
      else fsGroup = gid.success
    }
  }

  if (r.readonly !== true) v.push("readonly must be true: set pod.spec.volumes[].csi.readOnly to 'true'")

  if (ctx[EPHEMERAL_KEY] !== "true") {
    v.push(`volume_context["${EPHEMERAL_KEY}"] must be "true": only inline ephemeral volumes are supported`)
  }
  const need = (key: string): string => {
    const value = ctx[key]
    if (value === undefined || value === "") {
      v.push(`volume_context["${key}"] is required: the CSIDriver must set podInfoOnMount`)
      return ""
    }
    return value
  }
  const podName = need(POD_NAME_KEY)
  const podNamespace = need(POD_NAMESPACE_KEY)
  const podUid = need(POD_UID_KEY)
  const serviceAccount = need(SERVICE_ACCOUNT_KEY)

  const token = parseTokens(ctx["csi.storage.k8s.io/serviceAccount.tokens"])
  if (Result.isFailure(token)) v.push(token.failure)
  else {
    const t = token.success
    if (podNamespace !== "" && t.namespace !== podNamespace) {
      v.push(`token namespace ${JSON.stringify(t.namespace)} does not match volume_context["${POD_NAMESPACE_KEY}"] ${JSON.stringify(podNamespace)}`)
    }
    if (serviceAccount !== "" && t.serviceAccount !== serviceAccount) {
      v.push(`token serviceaccount ${JSON.stringify(t.serviceAccount)} does not match volume_context["${SERVICE_ACCOUNT_KEY}"] ${JSON.stringify(serviceAccount)}`)
    }
    if (t.podUid !== undefined && podUid !== "" && t.podUid !== podUid) {
      v.push(`token is bound to pod uid ${JSON.stringify(t.podUid)}, not volume_context["${POD_UID_KEY}"] ${JSON.stringify(podUid)}`)
    }
  }

  if (fsGroupAttr !== undefined) {
    const g = parseGid(`volume_context["${FS_GROUP_KEY}"]`, fsGroupAttr)
    if (Result.isFailure(g)) v.push(g.failure)
    else fsGroup = g.success
  }

  if (v.length > 0 || Result.isFailure(token)) return Result.fail(summary(v))
  return Result.succeed({
    volumeId: r.volume_id!,
    targetPath: r.target_path!,
    podName,
    podNamespace,
    podUid,
    serviceAccount,
    token: token.success,
    fsGroup
  })
}

/** Checks a NodeUnpublishVolume request: both fields are required by the CSI spec. */
export const decodeUnpublish = (input: unknown): Result.Result<UnpublishRequest, string> => {
  const raw = Schema.decodeUnknownResult(RawUnpublish)(input)
  if (Result.isFailure(raw)) return Result.fail("request is not a NodeUnpublishVolumeRequest")
  const v = [...volumeIdViolations(raw.success.volume_id), ...targetPathViolations(raw.success.target_path)]
  if (v.length > 0) return Result.fail(summary(v))
  return Result.succeed({ volumeId: raw.success.volume_id!, targetPath: raw.success.target_path! })
}

/**
 * NodePublishVolume and NodeUnpublishVolume requests, checked before the driver does anything.
 *
 * Owns: every rule a request must meet (CSI spec required fields, this driver's ephemeral read-only
 * model, kubelet's pod info, the token and its agreement with every pod field, the fs-group, and the
 * shape of the target path: exactly the directory the kubelet makes for this pod's volume), each
 * violation named by its field, all of them reported at once. A request that fails here creates no
 * CertificateRequest, no directory and no mount.
 * Does not own: what is on disk at the target path (the volume manager asks the Mounter).
 */
import { Result, Schema } from "effect"
import type { PodToken } from "./Token.ts"
import { parseTokens, TOKENS_IN_SECRETS, TOKENS_IN_VOLUME_CONTEXT, TOKENS_KEY } from "./Token.ts"

export const EPHEMERAL_KEY = "csi.storage.k8s.io/ephemeral"
export const POD_NAME_KEY = "csi.storage.k8s.io/pod.name"
export const POD_NAMESPACE_KEY = "csi.storage.k8s.io/pod.namespace"
export const POD_UID_KEY = "csi.storage.k8s.io/pod.uid"
export const SERVICE_ACCOUNT_KEY = "csi.storage.k8s.io/serviceAccount.name"
export const FS_GROUP_KEY = "spiffe.csi.cert-manager.io/fs-group"
/** `"true"` or `"false"`: serve the SPIFFE Workload API socket in this volume, whatever the driver's `--workload-api` says. */
export const WORKLOAD_API_KEY = "spiffe.csi.cert-manager.io/workload-api"
/** `"true"`: also write the SPIFFE filesystem-delivery files (domain/FilesystemDelivery.ts) in this volume. */
export const FILESYSTEM_DELIVERY_KEY = "spiffe.csi.cert-manager.io/filesystem-delivery"

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
  secrets: Schema.optional(Schema.NullOr(StringMap)),
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
  /** From the workload-api attribute; undefined leaves it to the driver's default. */
  readonly workloadApi?: boolean | undefined
  /** From the filesystem-delivery attribute; undefined or false writes the usual files only. */
  readonly filesystemDelivery?: boolean | undefined
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

/** What the target path is checked against: the kubelet's `--root-dir` (the driver's `--kubelet-root-dir`). */
export interface TargetRules {
  readonly kubeletRootDir: string
}

/** The kubelet's directory for CSI volumes of a pod (pkg/volume/csi: `kubernetes.io~csi` is the escaped plugin name). */
export const CSI_PLUGIN_DIR = "kubernetes.io~csi"

/**
 * A pod volume's name as the API server validates it (a DNS-1123 label), which is also the one
 * path component of the target the kubelet derives from the pod spec.
 */
const VOLUME_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
/** A pod uid as one path segment: API-server UUIDs and the kubelet's 32-hex static-pod uids both fit. */
const POD_UID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/

/**
 * The kubelet's target for a pod's inline CSI volume is
 * `<kubelet root>/pods/<pod uid>/volumes/kubernetes.io~csi/<volume name>/mount` (kubelet
 * pkg/volume/csi/csi_mounter.go). Anything else is not a path this driver may mount onto.
 * `podUid` undefined (unpublish) checks the shape only.
 */
export const targetPathViolations = (
  p: string | null | undefined,
  rules: TargetRules,
  podUid: string | undefined
): ReadonlyArray<string> => {
  if (p === undefined || p === null || p === "") return ["target_path is required"]
  if (p.includes("\0")) return ["target_path must not contain a NUL byte"]
  if (!p.startsWith("/")) return ["target_path must be absolute"]
  const root = rules.kubeletRootDir === "/" ? "" : rules.kubeletRootDir
  const shape = `${root}/pods/<pod uid>/volumes/${CSI_PLUGIN_DIR}/<volume name>/mount`
  const bad = [`target_path must be ${shape}, the kubelet's directory for the pod's volume`]
  if (!p.startsWith(`${root}/pods/`)) return bad
  const parts = p.slice(`${root}/pods/`.length).split("/")
  if (parts.length !== 5) return bad
  const [uid, volumes, plugin, name, mount] = parts as [string, string, string, string, string]
  if (!POD_UID.test(uid) || volumes !== "volumes" || plugin !== CSI_PLUGIN_DIR || !VOLUME_NAME.test(name) || mount !== "mount") {
    return bad
  }
  if (podUid !== undefined && podUid !== "" && uid !== podUid) {
    return [`target_path is in the directory of pod uid ${JSON.stringify(uid)}, not of volume_context["${POD_UID_KEY}"] ${JSON.stringify(podUid)}`]
  }
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
export const decodePublish = (input: unknown, rules: TargetRules): Result.Result<PublishRequest, string> => {
  const raw = Schema.decodeUnknownResult(RawPublish)(input)
  if (Result.isFailure(raw)) return Result.fail("request is not a NodePublishVolumeRequest")
  const r = raw.success
  const v: Array<string> = []
  const ctx = r.volume_context ?? {}
  v.push(...volumeIdViolations(r.volume_id))
  v.push(...targetPathViolations(r.target_path, rules, POD_UID.test(ctx[POD_UID_KEY] ?? "") ? ctx[POD_UID_KEY] : undefined))

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
  if (podUid !== "" && !POD_UID.test(podUid)) v.push(`volume_context["${POD_UID_KEY}"] is not a pod uid`)
  const serviceAccount = need(SERVICE_ACCOUNT_KEY)

  // The kubelet puts the tokens in secrets when the CSIDriver sets serviceAccountTokenInSecrets
  // (Kubernetes 1.35+), else in the volume context (older kubelets, or the field unset); never in
  // both, so two different token sets are a request not made by a kubelet.
  const inSecrets = r.secrets?.[TOKENS_KEY]
  const inContext = ctx[TOKENS_KEY]
  const fromSecrets = inSecrets !== undefined && inSecrets !== ""
  if (fromSecrets && inContext !== undefined && inContext !== inSecrets) {
    v.push(`${TOKENS_IN_SECRETS} and ${TOKENS_IN_VOLUME_CONTEXT} hold different tokens: the kubelet sends them in one place`)
  }
  const tokenField = fromSecrets ? TOKENS_IN_SECRETS : TOKENS_IN_VOLUME_CONTEXT
  const token = parseTokens(fromSecrets ? inSecrets : inContext, tokenField)
  if (Result.isFailure(token)) v.push(token.failure)
  else {
    const t = token.success
    if (podNamespace !== "" && t.namespace !== podNamespace) {
      v.push(`token namespace ${JSON.stringify(t.namespace)} does not match volume_context["${POD_NAMESPACE_KEY}"] ${JSON.stringify(podNamespace)}`)
    }
    if (serviceAccount !== "" && t.serviceAccount !== serviceAccount) {
      v.push(`token serviceaccount ${JSON.stringify(t.serviceAccount)} does not match volume_context["${SERVICE_ACCOUNT_KEY}"] ${JSON.stringify(serviceAccount)}`)
    }
    // The kubelet asks for tokens bound to the pod (TokenRequest boundObjectRef), so a token without
    // pod claims is not one the kubelet made for this volume; with them, every pod field must agree,
    // or the CertificateRequest's ownerReference would name one pod and the identity another's.
    if (t.podName === undefined || t.podUid === undefined) {
      v.push(`${tokenField}[""] is not bound to a pod: the kubelet's tokens carry the kubernetes.io pod claims`)
    } else {
      if (podName !== "" && t.podName !== podName) {
        v.push(`token is bound to pod ${JSON.stringify(t.podName)}, not volume_context["${POD_NAME_KEY}"] ${JSON.stringify(podName)}`)
      }
      if (podUid !== "" && t.podUid !== podUid) {
        v.push(`token is bound to pod uid ${JSON.stringify(t.podUid)}, not volume_context["${POD_UID_KEY}"] ${JSON.stringify(podUid)}`)
      }
    }
  }

  if (fsGroupAttr !== undefined) {
    const g = parseGid(`volume_context["${FS_GROUP_KEY}"]`, fsGroupAttr)
    if (Result.isFailure(g)) v.push(g.failure)
    else fsGroup = g.success
  }

  const workloadApiAttr = ctx[WORKLOAD_API_KEY]
  const deliveryAttr = ctx[FILESYSTEM_DELIVERY_KEY]
  for (const [key, value] of [[WORKLOAD_API_KEY, workloadApiAttr], [FILESYSTEM_DELIVERY_KEY, deliveryAttr]] as const) {
    if (value !== undefined && value !== "true" && value !== "false") v.push(`volume_context["${key}"] must be "true" or "false", got ${JSON.stringify(value)}`)
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
    fsGroup,
    ...(workloadApiAttr === undefined ? {} : { workloadApi: workloadApiAttr === "true" }),
    ...(deliveryAttr === undefined ? {} : { filesystemDelivery: deliveryAttr === "true" })
  })
}

/**
 * Checks a NodeUnpublishVolume request: both fields are required by the CSI spec, and the target must
 * have the kubelet's shape (which pod's it is, only the volume's record knows).
 */
export const decodeUnpublish = (input: unknown, rules: TargetRules): Result.Result<UnpublishRequest, string> => {
  const raw = Schema.decodeUnknownResult(RawUnpublish)(input)
  if (Result.isFailure(raw)) return Result.fail("request is not a NodeUnpublishVolumeRequest")
  const v = [...volumeIdViolations(raw.success.volume_id), ...targetPathViolations(raw.success.target_path, rules, undefined)]
  if (v.length > 0) return Result.fail(summary(v))
  return Result.succeed({ volumeId: raw.success.volume_id!, targetPath: raw.success.target_path! })
}

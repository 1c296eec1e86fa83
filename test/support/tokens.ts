/**
 * Test fixtures for what kubelet hands a CSI driver on NodePublishVolume: ServiceAccount tokens
 * (unsigned but well-formed JWTs carrying the `kubernetes.io` claims a bound token has), the
 * `csi.storage.k8s.io/serviceAccount.tokens` JSON, the pod-info volume context and the whole request
 * in proto-loader's shape (keepCase, enums as strings, defaults, oneofs).
 *
 * Nothing here is signed: the driver never verifies the signature (the API server does when the token
 * is used), so a fake third segment keeps the token well-formed.
 */

/** The workload every fixture describes unless told otherwise. */
export const WORKLOAD = {
  namespace: "sandbox",
  serviceAccount: "app",
  serviceAccountUid: "5b1d7f0c-0f4e-4d53-9a0a-3f3a9a0c1a11",
  podName: "app-7d9c8",
  podUid: "0e6c5b9a-2f1d-4c8e-b7a3-6d2f1e0c9b44"
} as const

/** A kubelet-style volume handle: `csi-` and 64 hex digits. */
export const VOLUME_ID = `csi-${"3f9a1c".padEnd(64, "0")}`
export const TARGET_PATH = `/var/lib/kubelet/pods/${WORKLOAD.podUid}/volumes/kubernetes.io~csi/spiffe/mount`

/** Fixed token times (seconds since the epoch) so decoded values are exact. */
export const ISSUED_AT = 1_780_000_000
export const EXPIRES_AT = ISSUED_AT + 3600
export const ISSUER = "https://kubernetes.default.svc.cluster.local"

/** The fake third JWT segment: base64url of a marker no message should ever contain. */
export const FAKE_SIGNATURE = Buffer.from("not-a-real-signature-TOKEN-SECRET-MARKER").toString("base64url")

export const DEFAULT_HEADER: Readonly<Record<string, unknown>> = { alg: "RS256", kid: "x" }

export const b64url = (value: unknown): string =>
  Buffer.from(typeof value === "string" ? value : JSON.stringify(value), "utf8").toString("base64url")

/** Any header and payload as a three-segment compact JWS with the fake signature. */
export const jwt = (payload: unknown, header: unknown = DEFAULT_HEADER): string =>
  `${b64url(header)}.${b64url(payload)}.${FAKE_SIGNATURE}`

export interface ClaimOptions {
  readonly namespace?: string
  readonly serviceAccount?: string
  readonly serviceAccountUid?: string
  readonly podName?: string
  readonly podUid?: string
  /** Leave out the `pod` claim (a token not bound to a pod). */
  readonly noPod?: boolean
  readonly aud?: ReadonlyArray<string>
  /** Seconds since the epoch; null leaves `exp` out. */
  readonly exp?: number | null
  readonly iat?: number
  readonly iss?: string
}

/** The claims of a pod-bound ServiceAccount token as the API server writes them. */
export const kubernetesClaims = (o: ClaimOptions = {}): Record<string, unknown> => {
  const namespace = o.namespace ?? WORKLOAD.namespace
  const serviceAccount = o.serviceAccount ?? WORKLOAD.serviceAccount
  const k8s: Record<string, unknown> = {
    namespace,
    serviceaccount: { name: serviceAccount, uid: o.serviceAccountUid ?? WORKLOAD.serviceAccountUid }
  }
  if (o.noPod !== true) k8s["pod"] = { name: o.podName ?? WORKLOAD.podName, uid: o.podUid ?? WORKLOAD.podUid }
  const claims: Record<string, unknown> = {
    aud: o.aud ?? [ISSUER],
    iat: o.iat ?? ISSUED_AT,
    iss: o.iss ?? ISSUER,
    sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
    "kubernetes.io": k8s
  }
  if (o.exp !== null) claims["exp"] = o.exp ?? EXPIRES_AT
  return claims
}

/** A well-formed, unsigned pod token for the workload (or the overrides). */
export const podToken = (o: ClaimOptions = {}, header: unknown = DEFAULT_HEADER): string => jwt(kubernetesClaims(o), header)

/** `csi.storage.k8s.io/serviceAccount.tokens`: JSON of audience → {token, expirationTimestamp}. */
export const tokensJson = (byAudience: Readonly<Record<string, string>>): string =>
  JSON.stringify(
    Object.fromEntries(
      Object.entries(byAudience).map(([aud, token]) => [aud, { token, expirationTimestamp: new Date(EXPIRES_AT * 1000).toISOString() }])
    )
  )

export interface ContextOptions {
  readonly podName?: string
  readonly podNamespace?: string
  readonly podUid?: string
  readonly serviceAccount?: string
  /** The "" audience token; defaults to `podToken()`. */
  readonly token?: string
  /** Extra audiences next to "". */
  readonly otherAudiences?: Readonly<Record<string, string>>
  readonly fsGroup?: string
}

/** The volume context kubelet sends for an inline ephemeral volume with podInfoOnMount and tokenRequests. */
export const volumeContext = (o: ContextOptions = {}): Record<string, string> => {
  const ctx: Record<string, string> = {
    "csi.storage.k8s.io/ephemeral": "true",
    "csi.storage.k8s.io/pod.name": o.podName ?? WORKLOAD.podName,
    "csi.storage.k8s.io/pod.namespace": o.podNamespace ?? WORKLOAD.namespace,
    "csi.storage.k8s.io/pod.uid": o.podUid ?? WORKLOAD.podUid,
    "csi.storage.k8s.io/serviceAccount.name": o.serviceAccount ?? WORKLOAD.serviceAccount,
    "csi.storage.k8s.io/serviceAccount.tokens": tokensJson({ ...o.otherAudiences, "": o.token ?? podToken() })
  }
  if (o.fsGroup !== undefined) ctx["spiffe.csi.cert-manager.io/fs-group"] = o.fsGroup
  return ctx
}

/** A valid NodePublishVolumeRequest as @grpc/proto-loader delivers it (defaults on, oneofs on). */
export const publishRequest = (o: { readonly volumeMountGroup?: string; readonly context?: ContextOptions } = {}) => ({
  volume_id: VOLUME_ID,
  publish_context: {},
  staging_target_path: "",
  target_path: TARGET_PATH,
  volume_capability: {
    mount: { fs_type: "", mount_flags: [] as Array<string>, volume_mount_group: o.volumeMountGroup ?? "" },
    block: null,
    access_mode: { mode: "SINGLE_NODE_WRITER" },
    access_type: "mount"
  },
  readonly: true,
  secrets: {},
  volume_context: volumeContext(o.context)
})

export type PublishRequestFixture = ReturnType<typeof publishRequest>

/** NodePublishVolume / NodeUnpublishVolume requests shaped as the kubelet sends them. */

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url")

/** A JWT with the claims a kubelet-requested ServiceAccount token carries (the signature is not checked). */
export const fakeToken = (p: { namespace: string; serviceAccount: string; podName: string; podUid: string; serial?: number }) =>
  [
    b64url({ alg: "RS256", kid: "test" }),
    b64url({
      aud: ["https://kubernetes.default.svc"],
      exp: 4_102_444_800,
      iat: 1_700_000_000 + (p.serial ?? 0),
      iss: "https://kubernetes.default.svc",
      sub: `system:serviceaccount:${p.namespace}:${p.serviceAccount}`,
      "kubernetes.io": {
        namespace: p.namespace,
        serviceaccount: { name: p.serviceAccount, uid: "sa-uid" },
        pod: { name: p.podName, uid: p.podUid }
      }
    }),
    "c2lnbmF0dXJl"
  ].join(".")

export interface PodSpec {
  readonly namespace?: string
  readonly serviceAccount?: string
  readonly podName?: string
  readonly podUid?: string
  readonly volumeId?: string
  readonly targetPath?: string
  readonly attributes?: Record<string, string>
  readonly volumeMountGroup?: string
  /** Changes the token's iat, as a fresh token from a republish does. */
  readonly serial?: number
}

export const publishRequest = (spec: PodSpec = {}) => {
  const namespace = spec.namespace ?? "sandbox"
  const serviceAccount = spec.serviceAccount ?? "example-app"
  const podName = spec.podName ?? "my-csi-app"
  const podUid = spec.podUid ?? "0b8c8a1e-3c1f-4a52-9d39-5f1d2e6b7a10"
  const token = fakeToken({ namespace, serviceAccount, podName, podUid, serial: spec.serial ?? 0 })
  return {
    volume_id: spec.volumeId ?? "csi-4d3c2b1a",
    target_path: spec.targetPath ?? `/var/lib/kubelet/pods/${podUid}/volumes/kubernetes.io~csi/spiffe/mount`,
    readonly: true,
    volume_capability: {
      access_type: "mount",
      mount: { fs_type: "", mount_flags: [], volume_mount_group: spec.volumeMountGroup ?? "" },
      access_mode: { mode: "SINGLE_NODE_WRITER" }
    },
    secrets: {},
    publish_context: {},
    staging_target_path: "",
    volume_context: {
      "csi.storage.k8s.io/ephemeral": "true",
      "csi.storage.k8s.io/pod.name": podName,
      "csi.storage.k8s.io/pod.namespace": namespace,
      "csi.storage.k8s.io/pod.uid": podUid,
      "csi.storage.k8s.io/serviceAccount.name": serviceAccount,
      "csi.storage.k8s.io/serviceAccount.tokens": JSON.stringify({ "": { token, expirationTimestamp: "2100-01-01T00:00:00Z" } }),
      ...spec.attributes
    },
    token
  }
}

export const unpublishRequest = (spec: PodSpec = {}) => {
  const p = publishRequest(spec)
  return { volume_id: p.volume_id, target_path: p.target_path }
}

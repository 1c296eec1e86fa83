// A kubelet stand-in: the API objects a real pod has (Namespace, ServiceAccount, Role/RoleBinding
// allowing `create certificaterequests`, a Pod bound to a node), the TokenRequest the kubelet makes
// for a CSIDriver with `tokenRequests: [{audience: ""}]`, and the NodePublishVolume request the
// kubelet builds (pkg/volume/csi/csi_mounter.go): volume handle, target path and volume context.
// No kubelet or container runtime runs; the Pod stays Pending, which the apiserver accepts.
import { createHash } from "node:crypto"
import { join } from "node:path"
import { KubeApiError, type KubeClient, type KubeObject } from "./kube.ts"

export const DEFAULT_DRIVER_NAME = "spiffe.csi.cert-manager.io"

/** kubelet's makeVolumeHandle: "csi-" + hex(sha256(podUID + volumeSpecName)) */
export const volumeHandle = (podUid: string, volumeName: string): string =>
  `csi-${createHash("sha256").update(`${podUid}${volumeName}`).digest("hex")}`

/** <kubeletRoot>/pods/<podUID>/volumes/kubernetes.io~csi/<volumeName>/mount */
export const targetPath = (kubeletRoot: string, podUid: string, volumeName: string): string =>
  join(kubeletRoot, "pods", podUid, "volumes", "kubernetes.io~csi", volumeName, "mount")

export interface ServiceAccountToken {
  readonly token: string
  /** RFC 3339, as metav1.Time marshals */
  readonly expirationTimestamp: string
}

export interface CsiVolumeSpec {
  readonly name: string
  readonly driver?: string
  readonly readOnly?: boolean
  readonly volumeAttributes?: Readonly<Record<string, string>>
}

export interface WorkloadOptions {
  readonly namespace: string
  readonly serviceAccount: string
  readonly podName: string
  /** spec.nodeName (the driver's --node-id); the apiserver embeds it in bound tokens */
  readonly nodeName?: string
  readonly volumes?: ReadonlyArray<CsiVolumeSpec>
  /** pod securityContext.fsGroup (passed as volume_mount_group by the kubelet) */
  readonly fsGroup?: number
  /** create the Namespace (ignored if it exists); default true */
  readonly createNamespace?: boolean
  /** create Role/RoleBinding granting the SA `create` on certificaterequests; default true */
  readonly grantCertificateRequestCreate?: boolean
  readonly image?: string
}

export interface Workload {
  readonly namespace: string
  readonly serviceAccount: string
  readonly podName: string
  readonly podUid: string
  readonly nodeName: string | undefined
  readonly fsGroup: number | undefined
  readonly volumes: ReadonlyArray<CsiVolumeSpec>
  readonly pod: KubeObject
}

const ensure = async (client: KubeClient, path: string, obj: KubeObject): Promise<void> => {
  try {
    await client.create(path, obj)
  } catch (err) {
    if (!(err instanceof KubeApiError && err.status === 409)) throw err
  }
}

/** Namespace, ServiceAccount, Role/RoleBinding and a Pod with inline CSI volumes (as admin). */
export const createWorkload = async (client: KubeClient, opts: WorkloadOptions): Promise<Workload> => {
  const ns = opts.namespace
  if (opts.createNamespace ?? true) {
    await ensure(client, "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } })
  }
  await ensure(client, `/api/v1/namespaces/${ns}/serviceaccounts`, {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: opts.serviceAccount, namespace: ns }
  })
  if (opts.grantCertificateRequestCreate ?? true) {
    const name = `${opts.serviceAccount}-create-certificaterequests`
    await ensure(client, `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name, namespace: ns },
      rules: [{ apiGroups: ["cert-manager.io"], resources: ["certificaterequests"], verbs: ["create"] }]
    })
    await ensure(client, `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name, namespace: ns },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name: opts.serviceAccount, namespace: ns }]
    })
  }
  const volumes = opts.volumes ?? []
  const pod = await client.create(`/api/v1/namespaces/${ns}/pods`, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: opts.podName, namespace: ns, labels: { app: opts.podName } },
    spec: {
      serviceAccountName: opts.serviceAccount,
      automountServiceAccountToken: false,
      ...(opts.nodeName === undefined ? {} : { nodeName: opts.nodeName }),
      ...(opts.fsGroup === undefined ? {} : { securityContext: { fsGroup: opts.fsGroup } }),
      containers: [
        {
          name: "app",
          image: opts.image ?? "registry.invalid/e2e/placeholder:0",
          command: ["sleep", "infinity"],
          volumeMounts: volumes.map((v) => ({ name: v.name, mountPath: `/var/run/secrets/${v.name}`, readOnly: true }))
        }
      ],
      volumes: volumes.map((v) => ({
        name: v.name,
        csi: {
          driver: v.driver ?? DEFAULT_DRIVER_NAME,
          readOnly: v.readOnly ?? true,
          ...(v.volumeAttributes === undefined ? {} : { volumeAttributes: v.volumeAttributes })
        }
      }))
    }
  })
  const podUid = pod.metadata?.uid
  if (podUid === undefined) throw new Error(`pod ${ns}/${opts.podName} has no uid`)
  return {
    namespace: ns,
    serviceAccount: opts.serviceAccount,
    podName: opts.podName,
    podUid,
    nodeName: opts.nodeName,
    fsGroup: opts.fsGroup,
    volumes,
    pod
  }
}

/**
 * TokenRequest for the pod's ServiceAccount, bound to the Pod, as the kubelet makes it for a
 * CSIDriver tokenRequest. Audience "" means `audiences: []`, which the apiserver fills with its
 * API audiences (the issuer unless --api-audiences says otherwise).
 */
export const requestPodToken = async (
  client: KubeClient,
  workload: Pick<Workload, "namespace" | "serviceAccount" | "podName" | "podUid">,
  opts: { readonly audience?: string; readonly expirationSeconds?: number } = {}
): Promise<ServiceAccountToken> => {
  const audience = opts.audience ?? ""
  const tr = await client.create<{ status?: { token?: string; expirationTimestamp?: string } }>(
    `/api/v1/namespaces/${workload.namespace}/serviceaccounts/${workload.serviceAccount}/token`,
    {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: {
        audiences: audience === "" ? [] : [audience],
        expirationSeconds: opts.expirationSeconds ?? 3600,
        boundObjectRef: { apiVersion: "v1", kind: "Pod", name: workload.podName, uid: workload.podUid }
      }
    }
  )
  const token = tr.status?.token
  const expirationTimestamp = tr.status?.expirationTimestamp
  if (token === undefined || expirationTimestamp === undefined) throw new Error("TokenRequest returned no token")
  return { token, expirationTimestamp }
}

/**
 * The volume_context the kubelet sends: volumeAttributes, then pod info (podInfoOnMount), the
 * ephemeral flag, and serviceAccount.tokens = JSON {audience: {token, expirationTimestamp}}.
 */
export const buildVolumeContext = (
  workload: Pick<Workload, "namespace" | "serviceAccount" | "podName" | "podUid">,
  opts: {
    readonly volumeAttributes?: Readonly<Record<string, string>>
    readonly tokens: Readonly<Record<string, ServiceAccountToken>>
    readonly podInfoOnMount?: boolean
  }
): Record<string, string> => ({
  ...opts.volumeAttributes,
  ...((opts.podInfoOnMount ?? true)
    ? {
        "csi.storage.k8s.io/pod.name": workload.podName,
        "csi.storage.k8s.io/pod.namespace": workload.namespace,
        "csi.storage.k8s.io/pod.uid": workload.podUid,
        "csi.storage.k8s.io/serviceAccount.name": workload.serviceAccount
      }
    : {}),
  "csi.storage.k8s.io/ephemeral": "true",
  "csi.storage.k8s.io/serviceAccount.tokens": JSON.stringify(
    Object.fromEntries(
      Object.entries(opts.tokens).map(([aud, t]) => [aud, { token: t.token, expirationTimestamp: t.expirationTimestamp }])
    )
  )
})

/** A NodePublishVolumeRequest in the CSI proto's field names (keepCase). */
export interface NodePublishVolumeRequest {
  volume_id: string
  target_path: string
  volume_capability: {
    mount: { fs_type?: string; mount_flags?: Array<string>; volume_mount_group?: string }
    access_mode: { mode: "SINGLE_NODE_WRITER" }
  }
  readonly: boolean
  volume_context: Record<string, string>
  publish_context?: Record<string, string>
  secrets?: Record<string, string>
}

export interface NodeUnpublishVolumeRequest {
  volume_id: string
  target_path: string
}

export interface PublishOptions {
  readonly kubeletRoot: string
  /** CSIDriver tokenRequests; default [{audience: "", expirationSeconds: 3600}] as in the chart */
  readonly tokenRequests?: ReadonlyArray<{ readonly audience: string; readonly expirationSeconds?: number }>
  /** pass the pod's fsGroup as volume_mount_group (kubelet does when the driver advertises VOLUME_MOUNT_GROUP) */
  readonly volumeMountGroup?: boolean
}

/**
 * Build the NodePublishVolume request for one of the workload's volumes with fresh tokens,
 * as the kubelet does on the first mount and on every republish (requiresRepublish: true).
 */
export const nodePublishRequest = async (
  client: KubeClient,
  workload: Workload,
  volumeName: string,
  opts: PublishOptions
): Promise<NodePublishVolumeRequest> => {
  const vol = workload.volumes.find((v) => v.name === volumeName)
  if (vol === undefined) throw new Error(`pod ${workload.namespace}/${workload.podName} has no volume ${volumeName}`)
  const tokens: Record<string, ServiceAccountToken> = {}
  for (const tr of opts.tokenRequests ?? [{ audience: "", expirationSeconds: 3600 }]) {
    tokens[tr.audience] = await requestPodToken(client, workload, {
      audience: tr.audience,
      ...(tr.expirationSeconds === undefined ? {} : { expirationSeconds: tr.expirationSeconds })
    })
  }
  const mount: NodePublishVolumeRequest["volume_capability"]["mount"] = {}
  if ((opts.volumeMountGroup ?? true) && workload.fsGroup !== undefined) mount.volume_mount_group = String(workload.fsGroup)
  return {
    volume_id: volumeHandle(workload.podUid, volumeName),
    target_path: targetPath(opts.kubeletRoot, workload.podUid, volumeName),
    volume_capability: { mount, access_mode: { mode: "SINGLE_NODE_WRITER" } },
    readonly: vol.readOnly ?? true,
    volume_context: buildVolumeContext(workload, {
      ...(vol.volumeAttributes === undefined ? {} : { volumeAttributes: vol.volumeAttributes }),
      tokens
    })
  }
}

export const nodeUnpublishRequest = (
  workload: Pick<Workload, "podUid">,
  volumeName: string,
  kubeletRoot: string
): NodeUnpublishVolumeRequest => ({
  volume_id: volumeHandle(workload.podUid, volumeName),
  target_path: targetPath(kubeletRoot, workload.podUid, volumeName)
})

/** The CSIDriver object of the csi-driver-spiffe chart (templates/csidriver.yaml). */
export const csiDriverObject = (name = DEFAULT_DRIVER_NAME): KubeObject => ({
  apiVersion: "storage.k8s.io/v1",
  kind: "CSIDriver",
  metadata: { name },
  spec: {
    podInfoOnMount: true,
    volumeLifecycleModes: ["Ephemeral"],
    tokenRequests: [{ audience: "", expirationSeconds: 3600 }],
    requiresRepublish: true
  }
})

export const ensureCsiDriver = async (client: KubeClient, name = DEFAULT_DRIVER_NAME): Promise<void> =>
  ensure(client, "/apis/storage.k8s.io/v1/csidrivers", csiDriverObject(name))

/** Delete the Pod (bound tokens stop working once it is gone). */
export const deletePod = async (client: KubeClient, workload: Pick<Workload, "namespace" | "podName">): Promise<void> => {
  try {
    await client.json("DELETE", `/api/v1/namespaces/${workload.namespace}/pods/${workload.podName}`, { gracePeriodSeconds: 0 })
  } catch (err) {
    if (!(err instanceof KubeApiError && err.status === 404)) throw err
  }
}

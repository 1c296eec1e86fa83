// Helpers of the real-node specs: kubectl and helm against the node of the run (inject("nodeCluster")),
// workloads with an inline spiffe.csi.cert-manager.io volume, reads from inside their containers.
// Waits use `kubectl wait` / `kubectl rollout status` (watches), not sleeps.
import { X509Certificate, createPrivateKey } from "node:crypto"
import { inject } from "vitest"
import { connect } from "../harness/globalSetup.ts"
import type { KubeClient } from "../harness/kube.ts"
import { runCommand, type RunResult } from "../harness/node.ts"

export const node = inject("nodeCluster")
export const env = { ...process.env, ...node.env }

export const kubectl = (args: ReadonlyArray<string>, input?: string, timeoutMs = 180_000): Promise<RunResult> =>
  runCommand("kubectl", args, env, { timeoutMs, ...(input === undefined ? {} : { input }) })

export const helm = (args: ReadonlyArray<string>, timeoutMs = 330_000): Promise<RunResult> => runCommand("helm", args, env, { timeoutMs })

/** kubectl that must succeed; returns stdout. */
export const k = async (args: ReadonlyArray<string>, input?: string): Promise<string> => {
  const r = await kubectl(args, input)
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (exit ${r.code}): ${r.stderr}${r.stdout}`)
  return r.stdout
}

export const admin = (): KubeClient => connect(node.plane)

export const TRUST_DOMAIN = "foo.bar"
export const DRIVER = "spiffe.csi.cert-manager.io"

/** Namespace, ServiceAccount and the Role/RoleBinding letting it create CertificateRequests. */
export const workloadNamespace = async (ns: string, sa: string): Promise<void> => {
  await k(
    ["apply", "-f", "-"],
    `apiVersion: v1
kind: Namespace
metadata: {name: ${ns}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ${sa}, namespace: ${ns}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: ${sa}, namespace: ${ns}}
rules: [{apiGroups: [cert-manager.io], resources: [certificaterequests], verbs: [create]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ${sa}, namespace: ${ns}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ${sa}}
subjects: [{kind: ServiceAccount, name: ${sa}, namespace: ${ns}}]
`
  )
}

export interface PodSpec {
  readonly ns: string
  readonly name: string
  readonly sa: string
  readonly attributes?: Readonly<Record<string, string>>
  readonly runAsUser?: number
  readonly runAsGroup?: number
}

export const podManifest = (p: PodSpec): string => {
  const sc = p.runAsUser === undefined ? "" : `\n  securityContext: {runAsUser: ${p.runAsUser}, runAsGroup: ${p.runAsGroup ?? p.runAsUser}}`
  const attrs = p.attributes === undefined ? "" : `\n      volumeAttributes: ${JSON.stringify(p.attributes)}`
  return `apiVersion: v1
kind: Pod
metadata: {name: ${p.name}, namespace: ${p.ns}, labels: {app: ${p.name}}}
spec:
  serviceAccountName: ${p.sa}
  terminationGracePeriodSeconds: 1${sc}
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sleep", "1000000"]
    volumeMounts: [{name: spiffe, mountPath: /var/run/secrets/spiffe.io}]
  volumes:
  - name: spiffe
    csi:
      driver: ${DRIVER}
      readOnly: true${attrs}
`
}

/** Create a pod and wait (watch) until it is Ready: the kubelet started it with the volume published. */
export const startPod = async (p: PodSpec, timeout = "150s"): Promise<{ uid: string }> => {
  await k(["apply", "-f", "-"], podManifest(p))
  await k(["wait", "-n", p.ns, "--for=condition=Ready", `pod/${p.name}`, `--timeout=${timeout}`])
  return { uid: (await k(["get", "pod", "-n", p.ns, p.name, "-o", "jsonpath={.metadata.uid}"])).trim() }
}

export const deletePod = async (ns: string, name: string, wait = true): Promise<void> => {
  await k(["delete", "pod", "-n", ns, name, `--wait=${wait}`, "--timeout=150s", "--ignore-not-found"])
}

export const deleteNamespace = async (ns: string): Promise<void> => {
  await kubectl(["delete", "namespace", ns, "--wait=true", "--timeout=180s", "--ignore-not-found"])
}

/** Run a command in the pod's container. */
export const exec = (ns: string, pod: string, cmd: ReadonlyArray<string>): Promise<RunResult> =>
  kubectl(["exec", "-n", ns, pod, "--", ...cmd])

/** Read a volume file from inside the container. */
export const readInPod = async (ns: string, pod: string, file: string): Promise<string> => {
  const r = await exec(ns, pod, ["cat", `/var/run/secrets/spiffe.io/${file}`])
  if (r.code !== 0) throw new Error(`cat ${file} in ${ns}/${pod} failed (exit ${r.code}): ${r.stderr}`)
  return r.stdout
}

/** The leaf of a PEM chain. */
export const leaf = (chainPem: string): X509Certificate => new X509Certificate(chainPem)

export const keyMatches = (chainPem: string, keyPem: string): boolean => leaf(chainPem).checkPrivateKey(createPrivateKey(keyPem))

export const signedBy = (chainPem: string, caPem: string): boolean => {
  try {
    return leaf(chainPem).verify(new X509Certificate(caPem).publicKey)
  } catch {
    return false
  }
}

/** The kubelet's target path of a pod's CSI volume. */
export const targetPathOf = (uid: string, volume = "spiffe"): string =>
  `${node.kubeletRootDir}/pods/${uid}/volumes/kubernetes.io~csi/${volume}/mount`

export const mountPoints = async (): Promise<Array<string>> => {
  const { readFileSync } = await import("node:fs")
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split(" ")[4] ?? "")
}

/** The CertificateRequests in a namespace. */
export interface CrJson {
  metadata: { name: string; annotations?: Record<string, string> }
  spec: { username?: string; extra?: Record<string, Array<string>>; issuerRef?: { name?: string } }
}
export const certificateRequests = async (ns: string): Promise<Array<CrJson>> =>
  (JSON.parse(await k(["get", "certificaterequests.cert-manager.io", "-n", ns, "-o", "json"])) as { items: Array<CrJson> }).items

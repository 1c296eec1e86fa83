// Where the upstream binaries are: runs scripts/upstream/build.sh (which builds what is missing
// and is instant when everything is cached) and reads the CSI_SPIFFE_BIN_* lines it prints.
// Variables already set in the environment win, so a caller can point at other builds.
import { fileURLToPath } from "node:url"
import { envLines, HarnessError, runCollecting } from "./process.ts"

export const buildScript = fileURLToPath(new URL("../../scripts/upstream/build.sh", import.meta.url))

export type Component =
  | "etcd"
  | "kubernetes"
  | "kube-apiserver"
  | "containerd"
  | "cert-manager"
  | "csi-sanity"
  | "helm"
  | "spiffe-checker"

/**
 * The components startControlPlane needs; helm renders the RBAC of our chart, which the plane applies
 * (least privilege proven by the real authorizer).
 */
export const controlPlaneComponents: ReadonlyArray<Component> = ["etcd", "kube-apiserver", "cert-manager", "helm"]

/** What a plane without cert-manager needs (`startControlPlane({ certManager: false })`). */
export const apiServerComponents: ReadonlyArray<Component> = ["etcd", "kube-apiserver"]

export interface UpstreamPaths {
  /** CSI_SPIFFE_BIN_* (bin directories) and CSI_SPIFFE_CERT_MANAGER_CRDS */
  readonly env: Readonly<Record<string, string>>
  readonly bin: (name: string) => string
}

const envKey: Record<string, string> = {
  etcd: "CSI_SPIFFE_BIN_ETCD",
  // one `kubernetes` component builds all five Kubernetes commands into one directory
  "kube-apiserver": "CSI_SPIFFE_BIN_KUBERNETES",
  kubelet: "CSI_SPIFFE_BIN_KUBERNETES",
  kubectl: "CSI_SPIFFE_BIN_KUBERNETES",
  "kube-controller-manager": "CSI_SPIFFE_BIN_KUBERNETES",
  "kube-scheduler": "CSI_SPIFFE_BIN_KUBERNETES",
  // containerd 2.x, its runc shim and ctr: one `containerd` component, one directory
  containerd: "CSI_SPIFFE_BIN_CONTAINERD",
  "containerd-shim-runc-v2": "CSI_SPIFFE_BIN_CONTAINERD",
  ctr: "CSI_SPIFFE_BIN_CONTAINERD",
  "cm-controller": "CSI_SPIFFE_BIN_CERT_MANAGER",
  "cm-webhook": "CSI_SPIFFE_BIN_CERT_MANAGER",
  "csi-sanity": "CSI_SPIFFE_BIN_CSI_SANITY",
  helm: "CSI_SPIFFE_BIN_HELM",
  "spiffe-checker": "CSI_SPIFFE_BIN_SPIFFE_CHECKER"
}

export interface EnsureOptions {
  /** false: only report what is already built (build.sh --print-env); default true */
  readonly build?: boolean
  /** progress lines from build.sh (stderr); default: written to process.stderr */
  readonly onProgress?: (line: string) => void
}

export const ensureUpstream = async (
  components: ReadonlyArray<Component> = controlPlaneComponents,
  opts: EnsureOptions = {}
): Promise<UpstreamPaths> => {
  const args = opts.build === false ? ["--print-env", ...components] : [...components]
  const onProgress = opts.onProgress ?? ((line: string) => process.stderr.write(`${line}\n`))
  const stdout = await runCollecting("bash", [buildScript, ...args], onProgress)
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(envLines(stdout, "CSI_SPIFFE_"))) env[k] = process.env[k] ?? v
  return {
    env,
    bin: (name) => {
      const key = envKey[name]
      const dir = key === undefined ? undefined : env[key]
      if (dir === undefined) {
        throw new HarnessError(`binary ${name} is not built; run: ${buildScript} ${components.join(" ")}`)
      }
      return `${dir}/${name}`
    }
  }
}

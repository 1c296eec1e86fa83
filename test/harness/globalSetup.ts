// vitest globalSetup: one control plane for the whole run, handed to tests with `inject`.
//
//   // vitest.config.ts, e2e project:  globalSetup: ["test/harness/globalSetup.ts"]
//   // in a test:
//   import { inject } from "vitest"
//   import { connect } from "../harness/globalSetup.ts"
//   const plane = inject("controlPlane"); const admin = connect(plane)
//
// Set CSI_SPIFFE_KEEP_TMP=1 to keep the run directory (process logs, kubeconfigs, PKI).
import type { TestProject } from "vitest/node"
import { KubeClient } from "./kube.ts"
import { type ComponentUser, type ControlPlane, startControlPlane } from "./plane.ts"

/** The serialisable part of a ControlPlane (what `inject("controlPlane")` returns). */
export type ControlPlaneInfo = Pick<
  ControlPlane,
  | "tmpDir"
  | "server"
  | "caPem"
  | "caFile"
  | "kubeconfigPath"
  | "adminToken"
  | "serviceAccountIssuer"
  | "clusterResourceNamespace"
  | "issuer"
  | "logs"
> & { readonly users: Readonly<Record<string, Omit<ComponentUser, "groups">>> }

declare module "vitest" {
  export interface ProvidedContext {
    controlPlane: ControlPlaneInfo
  }
}

export const toInfo = (plane: ControlPlane): ControlPlaneInfo => ({
  tmpDir: plane.tmpDir,
  server: plane.server,
  caPem: plane.caPem,
  caFile: plane.caFile,
  kubeconfigPath: plane.kubeconfigPath,
  adminToken: plane.adminToken,
  serviceAccountIssuer: plane.serviceAccountIssuer,
  clusterResourceNamespace: plane.clusterResourceNamespace,
  issuer: plane.issuer,
  users: Object.fromEntries(
    Object.entries(plane.users).map(([k, u]) => [k, { username: u.username, token: u.token, kubeconfigPath: u.kubeconfigPath }])
  ),
  logs: plane.logs
})

/** An admin client (or another user's, by token) for an injected control plane. */
export const connect = (info: ControlPlaneInfo, token: string = info.adminToken): KubeClient =>
  new KubeClient({ server: info.server, caPem: info.caPem, token })

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const plane = await startControlPlane({ log: (m) => process.stderr.write(`${m}\n`) })
  project.provide("controlPlane", toInfo(plane))
  return async () => {
    await plane.stop()
  }
}

// vitest globalSetup of the `node` project: one real node (test/harness/node.ts) per run, with our
// chart installed by helm (seed values, the CA bundle, 1-minute certificates so renewals happen
// within a test), handed to the tests with `inject("nodeCluster")`. Teardown checks that nothing
// is left on the host and fails the run if something is.
import type { TestProject } from "vitest/node"
import { ensureImages } from "./images.ts"
import { type ControlPlaneInfo, toInfo } from "./globalSetup.ts"
import { checkHostClean, installChart, type NodeCluster, startNodeCluster } from "./node.ts"

/** The serialisable part of a NodeCluster. */
export type NodeClusterInfo = Pick<NodeCluster, "tmpDir" | "nodeName" | "nodeIp" | "kubeletRootDir" | "csiDataDir" | "kubeconfigPath" | "images"> & {
  readonly plane: ControlPlaneInfo
  readonly env: Readonly<Record<string, string>>
}

declare module "vitest" {
  export interface ProvidedContext {
    nodeCluster: NodeClusterInfo
  }
}

/** The chart values the node specs run with (besides the seed's and the CA bundle). */
export const nodeSuiteValues = ["app.certificateRequestDuration=1m"] as const

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = (m: string) => process.stderr.write(`${m}\n`)
  const images = await ensureImages({ onProgress: log })
  const node = await startNodeCluster({ images, log })
  try {
    await installChart(node, { caBundle: true, extra: nodeSuiteValues })
  } catch (err) {
    await node.stop()
    throw err
  }
  const env: Record<string, string> = {}
  for (const k of ["KUBECONFIG", "PATH", "HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"]) env[k] = node.env[k] ?? ""
  project.provide("nodeCluster", {
    plane: toInfo(node.plane),
    tmpDir: node.tmpDir,
    nodeName: node.nodeName,
    nodeIp: node.nodeIp,
    kubeletRootDir: node.kubeletRootDir,
    csiDataDir: node.csiDataDir,
    kubeconfigPath: node.kubeconfigPath,
    env,
    images: node.images
  })
  return async () => {
    await node.stop()
    const left = await checkHostClean(node.baseline)
    if (left.length > 0) throw new Error(`the node left this on the host:\n  ${left.join("\n  ")}`)
  }
}

/**
 * The frame of a benchmark on the real node (test/harness/node.ts): images, a fresh node, the
 * benchmark's body, then the node's teardown and the host residue check. Exits the process with 1
 * when the body, the teardown or the residue check failed.
 */
import { ensureImages } from "../../test/harness/images.ts"
import { checkHostClean, type NodeCluster, startNodeCluster } from "../../test/harness/node.ts"

export const runOnNode = async (log: (m: string) => void, body: (node: NodeCluster) => Promise<void>): Promise<never> => {
  const images = await ensureImages({ onProgress: log })
  const node = await startNodeCluster({ images, log })
  let code = 0
  try {
    await body(node)
  } catch (err) {
    code = 1
    log(`FAILED: ${err instanceof Error ? err.stack : String(err)}`)
  }
  await node.stop().catch((e: unknown) => {
    code = 1
    log(String(e))
  })
  const left = await checkHostClean(node.baseline)
  if (left.length > 0) {
    code = 1
    log(`left on the host:\n  ${left.join("\n  ")}`)
  }
  process.exit(code)
}

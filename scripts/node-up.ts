// node scripts/node-up.ts [--keep] [--chart]
//
// Starts the real node of test/harness/node.ts (optionally with our chart), runs one busybox pod,
// reads `id` from it with kubectl exec, tears down and checks the host is clean. A quick check of
// the node harness itself; `npm run demo` is the full walk-through.
import { ensureImages } from "../test/harness/images.ts"
import { checkHostClean, installChart, startNodeCluster } from "../test/harness/node.ts"

const args = process.argv.slice(2)
const t0 = Date.now()
const log = (m: string) => process.stderr.write(`[node-up ${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}\n`)
const images = await ensureImages({ onProgress: log })
const node = await startNodeCluster({ images, log })
let code = 0
try {
  log(JSON.stringify(node.timings))
  if (args.includes("--chart")) {
    const r = await installChart(node)
    log(r.stdout.split("\n").slice(0, 6).join(" | "))
  }
  const pod = `apiVersion: v1
kind: Pod
metadata: {name: hello, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, "100000"]}]
`
  let r = await node.kubectl(["apply", "-f", "-"], { input: pod })
  log(r.stdout + r.stderr)
  r = await node.kubectl(["wait", "--for=condition=Ready", "pod/hello", "--timeout=120s"])
  log(r.stdout + r.stderr)
  r = await node.kubectl(["exec", "hello", "--", "sh", "-c", "id; ip -4 addr show eth0 | grep inet; wget -q -O- --no-check-certificate https://10.0.0.1/healthz 2>&1 | head -c 200"])
  log(`exec: ${r.code} ${r.stdout}${r.stderr}`)
  if (r.code !== 0) code = 1
  if (args.includes("--keep")) {
    process.stdout.write(`export KUBECONFIG=${node.kubeconfigPath}\nexport PATH=${node.upstream.env["CSI_SPIFFE_BIN_KUBERNETES"]}:${node.upstream.env["CSI_SPIFFE_BIN_HELM"]}:$PATH\n`)
    await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()))
  }
} catch (err) {
  code = 1
  log(`FAILED: ${err instanceof Error ? err.stack : String(err)}`)
}
const tStop = Date.now()
try {
  await node.stop()
} catch (err) {
  code = 1
  log(err instanceof Error ? err.message : String(err))
}
log(`teardown ${((Date.now() - tStop) / 1000).toFixed(1)}s`)
const left = await checkHostClean(node.baseline)
log(left.length === 0 ? "host clean" : `LEFT:\n  ${left.join("\n  ")}`)
process.exit(left.length === 0 ? code : 1)

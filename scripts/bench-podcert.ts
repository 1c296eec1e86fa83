// npm run bench:podcert [-- --pods=100]
//
// Figures of Pod Certificates on the real node (test/harness/node.ts), the chart installed by helm
// with app.podCertificates.enabled=true:
//   - PodCertificateRequest create -> issued, for N pods of deploy/example/pod-certificate-app.yaml
//     created at once (one Deployment of N replicas): for each request, from the watch event that
//     first shows it (ADDED) to the one that first shows status.certificateChain, both stamped with
//     the monotonic clock when their bytes arrive. The kubelets' own delay before creating the
//     request is not in it; pod create -> Ready is reported beside it.
//   - resident memory of the signer process (VmRSS) idle after start-up and after the N requests.
// Prints the figures and writes bench/results/podcert.json.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { toInfo } from "../test/harness/globalSetup.ts"
import { installChart, RELEASE_NAMESPACE } from "../test/harness/node.ts"
import { runOnNode } from "./bench/node.ts"
import { percentile, round } from "./bench/report.ts"
import { rssMiB } from "./bench/stack.ts"
import { watch, type WatchEvent } from "./bench/watch.ts"

const arg = (name: string, dflt: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? dflt)
const N = arg("pods", 100)
const NS = "bench-podcert"
const TRUST_DOMAIN = "foo.bar"
/** Bound of the whole burst: the API server's PodCertificateRequest cleaner deletes requests after 15 minutes. */
const BURST_TIMEOUT_MS = 10 * 60_000
const t0 = Date.now()
const log = (m: string) => process.stderr.write(`[bench-podcert ${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}\n`)

const example = readFileSync(new URL("../deploy/example/pod-certificate-app.yaml", import.meta.url), "utf8")
  .replaceAll("namespace: sandbox", `namespace: ${NS}`)
  .replace(/kind: Namespace\nmetadata:\n  name: sandbox/, `kind: Namespace\nmetadata:\n  name: ${NS}`)
  .replace("replicas: 2", `replicas: ${N}`)
  .replace("spiffe.csi.cert-manager.io/trust-domain: cluster.local", `spiffe.csi.cert-manager.io/trust-domain: ${TRUST_DOMAIN}`)

const signerPids = (): Array<number> =>
  readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, "utf8")
      return cmd.includes("csi-driver-spiffe-signer") && cmd.includes("--signer-name=")
    } catch {
      return false
    }
  }).map(Number)

await runOnNode(log, async (node) => {
  await installChart(node, { extra: ["app.podCertificates.enabled=true"] })
  const sh = async (line: string, input?: string) => {
    const r = await node.sh(line, input === undefined ? {} : { input })
    if (r.code !== 0) throw new Error(`${line}: ${r.stderr}`)
    return r.stdout
  }
  await sh(`kubectl rollout status -n ${RELEASE_NAMESPACE} deployment/cert-manager-csi-driver-spiffe-signer --timeout=180s`)
  const pids = signerPids()
  if (pids.length !== 1) throw new Error(`expected one signer process, found ${pids.length}`)
  const idleMiB = rssMiB(pids[0]!)
  log(`chart installed; signer pid ${pids[0]} ${round(idleMiB)} MiB`)

  const seen = new Map<string, number>()
  const latencies: Array<number> = []
  let done: () => void = () => {}
  const allIssued = new Promise<void>((resolve) => (done = resolve))
  const plane = toInfo(node.plane)
  const onPcr = (e: WatchEvent) => {
    const name = e.object.metadata?.name
    if (name === undefined || e.type === "BOOKMARK") return
    if (!seen.has(name)) seen.set(name, e.at)
    const chain = (e.object.status as { certificateChain?: string } | undefined)?.certificateChain
    if (chain !== undefined && chain !== "" && seen.get(name)! >= 0) {
      latencies.push(e.at - seen.get(name)!)
      seen.set(name, -1)
      if (latencies.length === N) done()
    }
  }
  const pcrWatch = watch(plane, `/apis/certificates.k8s.io/v1/namespaces/${NS}/podcertificaterequests`, onPcr)
  await sh("kubectl apply -f -", example.replace(/apiVersion: apps\/v1[\s\S]*$/, ""))
  await pcrWatch.opened
  const start = performance.now()
  await sh("kubectl apply -f -", example)
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`only ${latencies.length} of ${N} issued in ${BURST_TIMEOUT_MS} ms`)), BURST_TIMEOUT_MS))
  await Promise.race([allIssued, timeout])
  const issuedAllMs = performance.now() - start
  await sh(`kubectl rollout status -n ${NS} deployment/pod-certificate-app --timeout=600s`)
  const readyAllMs = performance.now() - start
  pcrWatch.close()
  const loadedMiB = rssMiB(pids[0]!)
  const result = {
    date: new Date().toISOString(),
    pods: N,
    pcrCreateToIssuedMs: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), max: round(Math.max(...latencies)) },
    burst: { allIssuedMs: Math.round(issuedAllMs), allReadyMs: Math.round(readyAllMs) },
    signerRssMiB: { idle: round(idleMiB), afterBurst: round(loadedMiB) },
    samplesMs: latencies.map((x) => round(x))
  }
  mkdirSync("bench/results", { recursive: true })
  writeFileSync("bench/results/podcert.json", JSON.stringify(result, null, 2) + "\n")
  process.stdout.write(`PodCertificateRequest create -> issued over ${N} pods created at once: p50 ${result.pcrCreateToIssuedMs.p50} ms, p99 ${result.pcrCreateToIssuedMs.p99} ms, max ${result.pcrCreateToIssuedMs.max} ms\n`)
  process.stdout.write(`all ${N} issued ${result.burst.allIssuedMs} ms, all Ready ${result.burst.allReadyMs} ms after the Deployment was applied\n`)
  process.stdout.write(`signer RSS: ${result.signerRssMiB.idle} MiB idle, ${result.signerRssMiB.afterBurst} MiB after the burst\n`)
  process.stdout.write("written: bench/results/podcert.json\n")
})

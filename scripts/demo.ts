// npm run demo [-- --keep]
//
// The usage section of cert-manager's csi-driver-spiffe README, command for command, on a real node
// of this machine (test/harness/node.ts): a kubelet and containerd, our image installed with
// `helm upgrade -i` of helm/csi-driver-spiffe, the example apps of deploy/example. Every command is
// printed (`$ ...`) with its output; the certificate lines are read with `kubectl exec` from
// containers the kubelet started.
//
//   1. builds or finds the upstream programs and the images (cached), starts the node
//   2. installs the chart (trust domain foo.bar, runtime issuer ConfigMap spiffe-issuer, ClusterIssuer
//      csi-driver-spiffe-ca), then runs the example app, the fs-group app, the runtime ConfigMap, the
//      `helm upgrade -i` with the CA bundle, `kubectl rollout restart` and the `ls` of the volume
//   3. tears everything down and checks that nothing is left on the host; --keep leaves it all up
//      until Ctrl-C and prints the `export KUBECONFIG=...` line.
// Exits non-zero with the reason when an expected output is missing. Progress (one line per phase,
// with elapsed time) goes to stderr; every process log is under <run dir>/logs.
import { ensureImages } from "../test/harness/images.ts"
import {
  caBundleValues,
  checkHostClean,
  type NodeCluster,
  nodeChartValues,
  RELEASE,
  RELEASE_NAMESPACE,
  seedValues,
  startNodeCluster
} from "../test/harness/node.ts"

const args = import.meta.main ? process.argv.slice(2) : []
const usage = "usage: npm run demo [-- --keep]"
for (const a of args) {
  if (a === "--help" || a === "-h") {
    process.stdout.write(`${usage}\n`)
    process.exit(0)
  }
  if (a !== "--keep") {
    process.stderr.write(`demo: unknown argument ${a} (${usage})\n`)
    process.exit(2)
  }
}
const keep = args.includes("--keep")

const t0 = Date.now()
const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`
const progress = (msg: string) => process.stderr.write(`[demo ${secs(Date.now() - t0).padStart(6)}] ${msg}\n`)
const out = (line = "") => process.stdout.write(`${line}\n`)

class DemoError extends Error {
  override readonly name = "DemoError"
}

const phases: Array<[string, number]> = []
let tPhase = Date.now()
const phaseDone = (name: string) => {
  const now = Date.now()
  phases.push([name, now - tPhase])
  tPhase = now
  progress(`${name} done (${secs(phases.at(-1)![1])})`)
}

const POD_OF = (label: string) => `$(kubectl get pod -n sandbox -l app=${label} -o jsonpath='{.items[0].metadata.name}')`

/** The `helm upgrade -i` line as the seed writes it, with our chart directory and this node's values. */
const helmLine = (withCaBundle: boolean, node: NodeCluster): string => {
  const sets = [...seedValues, ...(withCaBundle ? caBundleValues : [])].map((v) => `  --set "${v}"`)
  const local = nodeChartValues(node).map((v) => `  --set "${v}"`)
  return [
    `helm upgrade -i -n ${RELEASE_NAMESPACE} ${RELEASE} ./helm/csi-driver-spiffe --wait`,
    ...sets,
    ...local
  ].join(" \\\n")
}

let node: NodeCluster | undefined

/** Print a command, run it, print its output; `expect` is a line its output must contain. */
const step = async (line: string, opts: { expect?: string | RegExp; timeoutMs?: number; quiet?: boolean } = {}) => {
  if (node === undefined) throw new DemoError("no node")
  out(`$ ${line}`)
  const started = Date.now()
  const r = await node.sh(line.replace(/\\\n/g, " "), { timeoutMs: opts.timeoutMs ?? 330_000 })
  const text = `${r.stdout}${r.stderr}`.trimEnd()
  if (!(opts.quiet ?? false) && text !== "") out(text)
  if (Date.now() - started > 3_000) progress(`  ${line.split("\n")[0]!.slice(0, 70)} (${secs(Date.now() - started)})`)
  if (r.code !== 0) throw new DemoError(`command failed (exit ${r.code}): ${line.split("\n")[0]}\n${text}`)
  if (opts.expect !== undefined) {
    const ok = typeof opts.expect === "string" ? text.split("\n").some((l) => l.includes(opts.expect as string)) : opts.expect.test(text)
    if (!ok) throw new DemoError(`expected output missing: ${String(opts.expect)}\n  from: ${line.split("\n")[0]}\n  got: ${text}`)
    out(`# expected output present: ${String(opts.expect)}`)
  }
  out()
  return text
}

/** Names of the pods of a Deployment now, to wait for their deletion after a restart. */
const podNames = async (label: string): Promise<Array<string>> => {
  const r = await node!.kubectl(["get", "pod", "-n", "sandbox", "-l", `app=${label}`, "-o", "jsonpath={.items[*].metadata.name}"])
  return r.stdout.split(" ").filter((s) => s !== "")
}

const main = async (): Promise<void> => {
  progress(`node ${process.version}; ${keep ? "--keep: the node stays up until Ctrl-C" : "tears down at the end"}`)
  progress("images: our Dockerfile's image, pause, the app image (built once, then cached)")
  const images = await ensureImages({ onProgress: (m: string) => progress(`  ${m}`) })
  phaseDone("images")
  progress("node: upstream programs, control plane, controller-manager, scheduler, containerd, kubelet")
  // the CA ClusterIssuer comes from deploy/example/clusterissuer.yaml, as a user would make it
  node = await startNodeCluster({ images, planeIssuer: false, log: (m) => progress(`  ${m}`) })
  phaseDone("node up")
  progress(`logs of every process: ${node.tmpDir}/logs`)
  out(`# a real node: kubelet + containerd on ${node.nodeIp}, kubectl and helm ${node.upstream.env["CSI_SPIFFE_BIN_KUBERNETES"] ?? ""}`)
  out()

  await step("kubectl get nodes -o wide")
  progress("the CA ClusterIssuer csi-driver-spiffe-ca from deploy/example/clusterissuer.yaml")
  await step("kubectl apply -f deploy/example/clusterissuer.yaml")
  out("# cert-manager runs here without its built-in approver (csi-driver-spiffe requires that), so the")
  out("# CA's own CertificateRequest is approved by hand, as `cmctl approve` would")
  await step("kubectl wait -n cert-manager --for=create certificaterequest/csi-driver-spiffe-ca-1 --timeout=2m")
  await step(
    `kubectl patch certificaterequest -n cert-manager csi-driver-spiffe-ca-1 --subresource=status --type=merge -p '${JSON.stringify({
      status: { conditions: [{ type: "Approved", status: "True", reason: "ApprovedByDemo", message: "the CA of deploy/example/clusterissuer.yaml" }] }
    })}'`,
    { expect: "patched" }
  )
  await step("kubectl wait --for=condition=Ready clusterissuer/csi-driver-spiffe-ca --timeout=2m", { expect: "condition met" })
  phaseDone("CA ClusterIssuer Ready")
  progress("helm install of our chart (DaemonSet of our image + approver Deployment)")
  out("# the last --set lines fit the chart to this node: the kubelet's root directory, the driver's")
  out("# data directory under it, and our locally built image (no registry here)")
  await step(helmLine(false, node), { expect: /STATUS: deployed/ })
  await step(`kubectl get pods -n ${RELEASE_NAMESPACE} -o wide`)
  phaseDone("chart installed")

  // ---- usage: the example app
  await step("kubectl apply -f deploy/example/example-app.yaml")
  await step("kubectl rollout status -n sandbox deployment/my-csi-app --timeout=5m", { quiet: true })
  await step(
    `kubectl exec -n sandbox ${POD_OF("my-csi-app")} -- cat /var/run/secrets/spiffe.io/tls.crt | openssl x509 --noout --text | grep "Issuer:"`,
    { expect: "Issuer: CN = csi-driver-spiffe-ca" }
  )
  await step(
    `kubectl exec -n sandbox ${POD_OF("my-csi-app")} -- cat /var/run/secrets/spiffe.io/tls.crt | openssl x509 --noout --text | grep "URI:"`,
    { expect: "URI:spiffe://foo.bar/ns/sandbox/sa/example-app" }
  )
  phaseDone("example app")

  // ---- fs-group: a non-root container (uid 123, gid 456) reads its certificate
  await step("kubectl apply -f deploy/example/fs-group-app.yaml")
  await step("kubectl rollout status -n sandbox deployment/my-csi-app-fs-group --timeout=5m", { quiet: true })
  await step(`kubectl exec -n sandbox ${POD_OF("my-csi-app-fs-group")} -- id`, { expect: /uid=123 gid=456/ })
  await step(
    `kubectl exec -n sandbox ${POD_OF("my-csi-app-fs-group")} -- cat /var/run/secrets/spiffe.io/tls.crt | openssl x509 --noout --text | grep URI:`,
    { expect: "URI:spiffe://foo.bar/ns/sandbox/sa/fs-group-app" }
  )
  phaseDone("fs-group app")

  // ---- runtime configuration: the ConfigMap names the issuer (here the same CA ClusterIssuer)
  await step(
    [
      "kubectl create configmap spiffe-issuer -n cert-manager",
      "  --from-literal=issuer-name=csi-driver-spiffe-ca",
      "  --from-literal=issuer-kind=ClusterIssuer",
      "  --from-literal=issuer-group=cert-manager.io"
    ].join(" \\\n"),
    { expect: "configmap/spiffe-issuer created" }
  )

  // ---- root CA bundle
  progress("helm upgrade -i with the CA bundle")
  await step(helmLine(true, node), { expect: /STATUS: deployed/ })
  const before = await podNames("my-csi-app")
  await step("kubectl rollout restart deployment -n sandbox my-csi-app", { expect: "restarted" })
  await step("kubectl rollout status -n sandbox deployment/my-csi-app --timeout=5m", { quiet: true })
  if (before.length > 0) await step(`kubectl wait -n sandbox --for=delete pod ${before.join(" ")} --timeout=5m`, { quiet: true })
  await step(`kubectl exec -n sandbox ${POD_OF("my-csi-app")} -- ls /var/run/secrets/spiffe.io/`, {
    // the seed's three files, and the Workload API socket the driver serves in every volume by default
    expect: /^ca\.crt\s+spiffe\.sock\s+tls\.crt\s+tls\.key$/m
  })
  phaseDone("runtime ConfigMap and CA bundle")
}

const finish = async (ok: boolean): Promise<number> => {
  if (node === undefined) return ok ? 0 : 1
  tPhase = Date.now()
  progress("tearing down: pods, kubelet, containers, containerd, control plane, mounts, cgroups, network, sysctls")
  try {
    await node.stop()
  } catch (err) {
    progress(err instanceof Error ? err.message : String(err))
    return 1
  }
  const left = await checkHostClean(node.baseline)
  if (left.length > 0) {
    progress(`left on the host after teardown:\n  ${left.join("\n  ")}`)
    return 1
  }
  phaseDone("teardown (host checked clean)")
  return ok ? 0 : 1
}

const summary = () => {
  out("# phases")
  for (const [name, ms] of phases) out(`#   ${name.padEnd(34)} ${secs(ms).padStart(7)}`)
  out(`#   ${"total".padEnd(34)} ${secs(Date.now() - t0).padStart(7)}`)
}

if (import.meta.main) {
  let code = 0
  try {
    await main()
    out("# the seed's usage ran on a real node: all expected outputs present")
  } catch (err) {
    code = 1
    process.stderr.write(`\ndemo FAILED: ${err instanceof Error ? err.message : String(err)}\n`)
    if (node !== undefined) process.stderr.write(`(process logs: ${node.tmpDir}/logs; set CSI_SPIFFE_KEEP_TMP=1 to keep them)\n`)
  }
  if (keep && code === 0 && node !== undefined) {
    out()
    out("The node is up (--keep). In another shell:")
    out(`  export KUBECONFIG=${node.kubeconfigPath}`)
    out(`  export PATH=${node.upstream.env["CSI_SPIFFE_BIN_KUBERNETES"]}:${node.upstream.env["CSI_SPIFFE_BIN_HELM"]}:$PATH`)
    out("  kubectl get pods -A -o wide")
    out("Ctrl-C here tears everything down.")
    await new Promise<void>((resolve) => {
      process.once("SIGINT", () => resolve())
      process.once("SIGTERM", () => resolve())
    })
  }
  code = (await finish(code === 0)) === 0 ? code : 1
  summary()
  process.exit(code)
}

// A real, local Kubernetes control plane on loopback for the e2e tests and the demo:
// etcd -> kube-apiserver (RBAC, static tokens, ServiceAccount token issuer) -> cert-manager CRDs ->
// cert-manager webhook (registered by URL) -> cert-manager controller (built-in approver off) ->
// CA ClusterIssuer `csi-driver-spiffe-ca`.
//
//   const plane = await startControlPlane({ log: console.error })
//   ... plane.client (admin), plane.users.driver.kubeconfigPath ...
//   await plane.stop()
//
// Every process logs to <tmpDir>/logs/<name>.log. stop() signals only the processes started here.
import { randomBytes } from "node:crypto"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { KubeClient, type KubeObject } from "./kube.ts"
import { generatePki, type Pki } from "./pki.ts"
import { HarnessError, type ManagedProcess, startProcess, waitFor } from "./process.ts"
import { makeRenderer } from "../chart/render.ts"
import { controlPlaneComponents, ensureUpstream, type UpstreamPaths } from "./upstream.ts"

export interface ComponentUser {
  /** the user name the apiserver authenticates the token as */
  readonly username: string
  readonly groups: ReadonlyArray<string>
  readonly token: string
  /** token-based kubeconfig (server, CA file, bearer token) */
  readonly kubeconfigPath: string
}

export interface ControlPlaneOptions {
  /** run directory; default: a fresh mkdtemp under os.tmpdir() */
  readonly tmpDir?: string
  /** keep tmpDir after stop() (it is always kept when start-up fails); env CSI_SPIFFE_KEEP_TMP=1 also keeps it */
  readonly keepTmpDir?: boolean
  /** progress messages; default: none */
  readonly log?: (msg: string) => void
  /** binaries; default: ensureUpstream(["etcd","kube-apiserver","cert-manager"]) builds or finds them */
  readonly upstream?: UpstreamPaths
  /** namespace of the ClusterIssuer's Secret (cert-manager --cluster-resource-namespace) */
  readonly clusterResourceNamespace?: string
  /** name of the CA ClusterIssuer (and of its Secret) */
  readonly issuerName?: string
  /** extra static-token users: name -> identity; the built-in ones are admin, driver, approver, certManager */
  readonly extraUsers?: Readonly<Record<string, { readonly username: string; readonly groups?: ReadonlyArray<string> }>>
  /** timeout of each readiness wait */
  readonly readyTimeoutMs?: number
  /** kube-apiserver --v */
  readonly apiserverVerbosity?: number
}

/** The processes a plane runs, by their log names. */
export type PlaneComponent = "etcd" | "kube-apiserver" | "cm-webhook" | "cm-controller"

export interface ControlPlane {
  readonly tmpDir: string
  /** https://127.0.0.1:<port> */
  readonly server: string
  /** PEM of the CA that signed the apiserver's (and webhook's) serving certificate */
  readonly caPem: string
  readonly caFile: string
  /** admin kubeconfig (token auth, system:masters) */
  readonly kubeconfigPath: string
  readonly adminToken: string
  /** admin client */
  readonly client: KubeClient
  /** the ServiceAccount token issuer, which is also the default API audience */
  readonly serviceAccountIssuer: string
  readonly users: Readonly<Record<"admin" | "driver" | "approver" | "certManager", ComponentUser>> &
    Readonly<Record<string, ComponentUser>>
  /** the ClusterIssuer and its CA */
  readonly issuer: {
    readonly name: string
    readonly kind: "ClusterIssuer"
    readonly group: "cert-manager.io"
    readonly caPem: string
    readonly caFile: string
  }
  readonly clusterResourceNamespace: string
  readonly pki: Pki
  readonly etcdUrl: string
  readonly webhookUrl: string
  /** log file per process */
  readonly logs: Readonly<Record<string, string>>
  /** milliseconds per start-up step */
  readonly timings: Readonly<Record<string, number>>
  /** stop every process this plane started (reverse order); remove tmpDir unless kept */
  readonly stop: () => Promise<void>
  /**
   * Stops one component started here (SIGTERM, then SIGKILL after 5 s), e.g. "kube-apiserver",
   * "cm-controller", "cm-webhook", for fault tests; `startComponent` brings it back.
   */
  readonly stopComponent: (name: PlaneComponent) => Promise<void>
  /** Starts a stopped component again with the same flags, ports and data, and waits until it is ready. */
  readonly startComponent: (name: PlaneComponent) => Promise<void>
}

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on("error", reject)
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address()
      srv.close(() => (typeof addr === "object" && addr !== null ? resolve(addr.port) : reject(new Error("no port"))))
    })
  })

const freePorts = async (n: number): Promise<Array<number>> => {
  const ports = new Set<number>()
  while (ports.size < n) ports.add(await freePort())
  return [...ports]
}

const token = (): string => randomBytes(24).toString("hex")

export const writeKubeconfig = (
  path: string,
  opts: { server: string; caFile: string; user: string; token: string; namespace?: string }
): void => {
  const ns = opts.namespace === undefined ? "" : `\n    namespace: ${opts.namespace}`
  writeFileSync(
    path,
    `apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: ${opts.server}
    certificate-authority: ${opts.caFile}
users:
- name: ${JSON.stringify(opts.user)}
  user:
    token: ${opts.token}
contexts:
- name: e2e
  context:
    cluster: e2e
    user: ${JSON.stringify(opts.user)}${ns}
current-context: e2e
`,
    { mode: 0o600 }
  )
}

const conditionTrue = (obj: KubeObject, type: string): boolean => {
  const conds = (obj["status"] as { conditions?: Array<{ type?: string; status?: string }> } | undefined)?.conditions
  return conds?.some((c) => c.type === type && c.status === "True") ?? false
}

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")


/** The runtime issuance ConfigMap name the plane's RBAC is rendered for (the original's e2e name). */
export const RUNTIME_CONFIG_MAP = "runtime-config-map"

const rbacKinds = new Set(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"])

/**
 * The RBAC of our own chart (`helm template` of helm/csi-driver-spiffe with the runtime ConfigMap
 * set), as [path, object] pairs. The driver's and approver's static-token users are named like the
 * chart's ServiceAccounts, so these bindings are exactly what authorizes them.
 */
const chartRbac = (helm: string, ns: string): Array<[string, KubeObject]> => {
  const renderer = makeRenderer(helm)
  try {
    const rendered = renderer.render({ app: { runtimeIssuanceConfigMap: RUNTIME_CONFIG_MAP } }, { namespace: ns })
    return rendered.objects
      .filter((o) => rbacKinds.has(o.kind))
      .map((o): [string, KubeObject] => {
        const plural = `${o.kind.toLowerCase()}s`
        const path = o.kind === "ServiceAccount"
          ? `/api/v1/namespaces/${ns}/serviceaccounts`
          : o.kind.startsWith("Cluster")
          ? `/apis/rbac.authorization.k8s.io/v1/${plural}`
          : `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/${plural}`
        return [path, o as unknown as KubeObject]
      })
  } finally {
    renderer.dispose()
  }
}

const webhookConfigs = (url: string, caPem: string): Array<[string, KubeObject]> => {
  const common = {
    name: "webhook.cert-manager.io",
    admissionReviewVersions: ["v1"],
    matchPolicy: "Equivalent",
    timeoutSeconds: 10,
    failurePolicy: "Fail",
    sideEffects: "None"
  }
  const ar = "/apis/admissionregistration.k8s.io/v1"
  return [
    [
      `${ar}/mutatingwebhookconfigurations/cert-manager-webhook`,
      {
        apiVersion: "admissionregistration.k8s.io/v1",
        kind: "MutatingWebhookConfiguration",
        metadata: { name: "cert-manager-webhook" },
        webhooks: [
          {
            ...common,
            rules: [{ apiGroups: ["cert-manager.io"], apiVersions: ["v1"], operations: ["CREATE"], resources: ["certificaterequests"] }],
            clientConfig: { url: `${url}/mutate`, caBundle: b64(caPem) }
          }
        ]
      }
    ],
    [
      `${ar}/validatingwebhookconfigurations/cert-manager-webhook`,
      {
        apiVersion: "admissionregistration.k8s.io/v1",
        kind: "ValidatingWebhookConfiguration",
        metadata: { name: "cert-manager-webhook" },
        webhooks: [
          {
            ...common,
            rules: [
              {
                apiGroups: ["cert-manager.io", "acme.cert-manager.io"],
                apiVersions: ["v1"],
                operations: ["CREATE", "UPDATE"],
                resources: ["*/*"]
              }
            ],
            clientConfig: { url: `${url}/validate`, caBundle: b64(caPem) }
          }
        ]
      }
    ]
  ]
}

export const startControlPlane = async (opts: ControlPlaneOptions = {}): Promise<ControlPlane> => {
  const log = opts.log ?? (() => {})
  const timeoutMs = opts.readyTimeoutMs ?? 90_000
  const crNs = opts.clusterResourceNamespace ?? "cert-manager"
  const issuerName = opts.issuerName ?? "csi-driver-spiffe-ca"
  const timings: Record<string, number> = {}
  const t0 = Date.now()
  let tStep = t0
  const step = (name: string) => {
    const now = Date.now()
    timings[name] = now - tStep
    tStep = now
    log(`[control-plane] ${name} (${timings[name]} ms)`)
  }

  const upstream = opts.upstream ?? (await ensureUpstream(controlPlaneComponents, { onProgress: (l) => log(l) }))
  const crdsDir = upstream.env["CSI_SPIFFE_CERT_MANAGER_CRDS"]
  if (crdsDir === undefined) throw new HarnessError("cert-manager CRDs not found (CSI_SPIFFE_CERT_MANAGER_CRDS)")
  step("upstream binaries")

  const tmpDir = opts.tmpDir ?? mkdtempSync(join(tmpdir(), "csi-spiffe-e2e-"))
  const pkiDir = join(tmpDir, "pki")
  const logDir = join(tmpDir, "logs")
  for (const d of [pkiDir, logDir, join(tmpDir, "etcd")]) mkdirSync(d, { recursive: true })
  const procs: Array<ManagedProcess> = []
  const logs: Record<string, string> = {}
  /** How each component was started, so that a fault test can start it again the same way. */
  const specs = new Map<string, { readonly command: string; readonly args: ReadonlyArray<string> }>()
  const start = (name: string, command: string, args: ReadonlyArray<string>) => {
    const logFile = join(logDir, `${name}.log`)
    logs[name] = logFile
    specs.set(name, { command, args })
    const p = startProcess({ name, command, args, logFile })
    procs.push(p)
    return p
  }
  /** Readiness checks by component, filled in as each is first started. */
  const readiness = new Map<string, (proc: ManagedProcess) => Promise<void>>()
  const stopComponent = async (name: PlaneComponent): Promise<void> => {
    const running = procs.filter((p) => p.name === name && p.exited() === undefined)
    if (running.length === 0) throw new HarnessError(`${name} is not running`)
    for (const p of running) {
      await p.stop()
      procs.splice(procs.indexOf(p), 1)
    }
  }
  const startComponent = async (name: PlaneComponent): Promise<void> => {
    const spec = specs.get(name)
    if (spec === undefined) throw new HarnessError(`${name} was never started by this plane`)
    if (procs.some((p) => p.name === name && p.exited() === undefined)) throw new HarnessError(`${name} is already running`)
    const p = start(name, spec.command, spec.args)
    await readiness.get(name)?.(p)
  }
  let stopped = false
  const stopAll = async () => {
    if (stopped) return
    stopped = true
    for (const p of [...procs].reverse()) await p.stop()
  }

  try {
    const pki = await generatePki(pkiDir)
    const [etcdPort, etcdPeerPort, apiPort, webhookPort, webhookHealthPort] = (await freePorts(5)) as [
      number,
      number,
      number,
      number,
      number
    ]
    const server = `https://127.0.0.1:${apiPort}`
    const issuer = server

    // ---- static tokens and token-based kubeconfigs
    const identities: Record<string, { username: string; groups: ReadonlyArray<string> }> = {
      admin: { username: "admin", groups: ["system:masters"] },
      driver: {
        username: `system:serviceaccount:${crNs}:cert-manager-csi-driver-spiffe`,
        groups: ["system:serviceaccounts", `system:serviceaccounts:${crNs}`]
      },
      approver: {
        username: `system:serviceaccount:${crNs}:cert-manager-csi-driver-spiffe-approver`,
        groups: ["system:serviceaccounts", `system:serviceaccounts:${crNs}`]
      },
      certManager: {
        username: `system:serviceaccount:${crNs}:cert-manager`,
        groups: ["system:masters", "system:serviceaccounts", `system:serviceaccounts:${crNs}`]
      }
    }
    for (const [name, u] of Object.entries(opts.extraUsers ?? {})) identities[name] = { username: u.username, groups: u.groups ?? [] }
    const users: Record<string, ComponentUser> = {}
    const csv: Array<string> = []
    for (const [name, id] of Object.entries(identities)) {
      const t = token()
      const kubeconfigPath = join(tmpDir, `${name}.kubeconfig`)
      writeKubeconfig(kubeconfigPath, { server, caFile: pki.ca.certFile, user: id.username, token: t })
      users[name] = { username: id.username, groups: id.groups, token: t, kubeconfigPath }
      csv.push(`${t},${id.username},uid-${name},"${id.groups.join(",")}"`)
    }
    const tokenFile = join(pkiDir, "tokens.csv")
    writeFileSync(tokenFile, csv.join("\n") + "\n", { mode: 0o600 })
    const admin = users["admin"]!
    const client = new KubeClient({ server, caPem: pki.ca.certPem, token: admin.token })
    step("pki and kubeconfigs")

    // ---- etcd
    const etcdUrl = `http://127.0.0.1:${etcdPort}`
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`
    const etcd = start("etcd", upstream.bin("etcd"), [
      "--name=e2e",
      `--data-dir=${join(tmpDir, "etcd", "data")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=e2e=${peerUrl}`,
      "--unsafe-no-fsync=true",
      "--log-level=warn"
    ])
    await waitFor(
      "etcd /health",
      async () => {
        const res = await fetch(`${etcdUrl}/health`)
        const body = (await res.json()) as { health?: string }
        return body.health === "true" ? true : undefined
      },
      { timeoutMs, proc: etcd }
    )
    step("etcd ready")

    // ---- kube-apiserver
    const apiserver = start("kube-apiserver", upstream.bin("kube-apiserver"), [
      `--etcd-servers=${etcdUrl}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(tmpDir, "apiserver-certs")}`,
      `--tls-cert-file=${pki.apiserver.certFile}`,
      `--tls-private-key-file=${pki.apiserver.keyFile}`,
      `--token-auth-file=${tokenFile}`,
      "--authorization-mode=RBAC",
      `--service-account-issuer=${issuer}`,
      `--service-account-key-file=${pki.serviceAccount.pubFile}`,
      `--service-account-signing-key-file=${pki.serviceAccount.keyFile}`,
      "--service-cluster-ip-range=10.0.0.0/24",
      "--allow-privileged=true",
      "--endpoint-reconciler-type=none",
      "--profiling=false",
      `--v=${opts.apiserverVerbosity ?? 1}`
    ])
    const anon = new KubeClient({ server, caPem: pki.ca.certPem, timeoutMs: 5_000 })
    readiness.set("kube-apiserver", (proc) =>
      waitFor(
        "kube-apiserver /readyz",
        async () => {
          const res = await anon.raw("GET", "/readyz")
          if (res.status === 200) return true
          throw new Error(`/readyz ${res.status}: ${res.body.split("\n").filter((l) => l.includes("failed")).join("; ")}`)
        },
        { timeoutMs, proc, intervalMs: 500 }
      ).then(() => undefined))
    await readiness.get("kube-apiserver")!(apiserver)
    step("kube-apiserver ready")

    // ---- namespace, CRDs, RBAC
    await client.ensure("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: crNs } })
    const crdFiles = readdirSync(crdsDir).filter((f) => f.endsWith(".yaml"))
    const crdNames = await Promise.all(
      crdFiles.map(async (f) => {
        const text = readFileSync(join(crdsDir, f), "utf8")
        const name = /^metadata:\s*\n(?:\s+.*\n)*?\s+name:\s*(\S+)/m.exec(text)?.[1]
        if (name === undefined) throw new HarnessError(`no metadata.name in CRD file ${f}`)
        await client.apply(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`, text)
        return name
      })
    )
    await waitFor(
      `CRDs Established (${crdNames.join(", ")})`,
      async () => {
        for (const name of crdNames) {
          const crd = await client.get(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`)
          if (!conditionTrue(crd, "Established")) throw new Error(`${name} not Established`)
        }
        return true
      },
      { timeoutMs, proc: apiserver }
    )
    for (const [path, obj] of chartRbac(upstream.bin("helm"), crNs)) await client.ensure(path, obj)
    step("cert-manager CRDs and RBAC")

    // ---- cert-manager webhook, then its registration by URL
    const webhookUrl = `https://127.0.0.1:${webhookPort}`
    const certManagerUser = users["certManager"]!
    const webhook = start("cm-webhook", upstream.bin("cm-webhook"), [
      `--kubeconfig=${certManagerUser.kubeconfigPath}`,
      `--secure-port=${webhookPort}`,
      `--healthz-port=${webhookHealthPort}`,
      `--tls-cert-file=${pki.webhook.certFile}`,
      `--tls-private-key-file=${pki.webhook.keyFile}`,
      "--metrics-listen-address=0",
      "--v=2"
    ])
    // The controller needs no webhook to start; run it while the webhook comes up.
    const controller = start("cm-controller", upstream.bin("cm-controller"), [
      `--kubeconfig=${certManagerUser.kubeconfigPath}`,
      `--cluster-resource-namespace=${crNs}`,
      "--controllers=*,-certificaterequests-approver",
      "--v=2"
    ])
    readiness.set("cm-webhook", (proc) =>
      waitFor(
        "cert-manager webhook /healthz",
        async () => ((await fetch(`http://127.0.0.1:${webhookHealthPort}/healthz`)).ok ? true : undefined),
        { timeoutMs, proc }
      ).then(() => undefined))
    await readiness.get("cm-webhook")!(webhook)
    for (const [path, obj] of webhookConfigs(webhookUrl, pki.ca.certPem)) await client.apply(path, obj)
    step("cert-manager webhook ready and registered")

    // ---- the CA ClusterIssuer (its create goes through the validating webhook)
    await client.apply(`/api/v1/namespaces/${crNs}/secrets/${issuerName}`, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: issuerName, namespace: crNs },
      type: "kubernetes.io/tls",
      data: { "tls.crt": b64(pki.spiffeCa.certPem), "tls.key": b64(pki.spiffeCa.keyPem), "ca.crt": b64(pki.spiffeCa.certPem) }
    })
    await waitFor(
      `ClusterIssuer ${issuerName} accepted (apiserver -> webhook ${webhookUrl})`,
      async () =>
        client.apply(`/apis/cert-manager.io/v1/clusterissuers/${issuerName}`, {
          apiVersion: "cert-manager.io/v1",
          kind: "ClusterIssuer",
          metadata: { name: issuerName },
          spec: { ca: { secretName: issuerName } }
        }),
      { timeoutMs, proc: webhook }
    )
    await waitFor(
      `ClusterIssuer ${issuerName} Ready`,
      async () => {
        const ci = await client.get(`/apis/cert-manager.io/v1/clusterissuers/${issuerName}`)
        if (conditionTrue(ci, "Ready")) return true
        throw new Error(`status: ${JSON.stringify(ci["status"] ?? {})}`)
      },
      { timeoutMs, proc: controller }
    )
    step("cert-manager controller ready, ClusterIssuer Ready")
    timings["total"] = Date.now() - t0

    const keep = opts.keepTmpDir ?? process.env["CSI_SPIFFE_KEEP_TMP"] === "1"
    return {
      tmpDir,
      server,
      caPem: pki.ca.certPem,
      caFile: pki.ca.certFile,
      kubeconfigPath: admin.kubeconfigPath,
      adminToken: admin.token,
      client,
      serviceAccountIssuer: issuer,
      users: users as ControlPlane["users"],
      issuer: {
        name: issuerName,
        kind: "ClusterIssuer",
        group: "cert-manager.io",
        caPem: pki.spiffeCa.certPem,
        caFile: pki.spiffeCa.certFile
      },
      clusterResourceNamespace: crNs,
      pki,
      etcdUrl,
      webhookUrl,
      logs,
      timings,
      stop: async () => {
        await stopAll()
        if (!keep) rmSync(tmpDir, { recursive: true, force: true })
        else log(`[control-plane] kept ${tmpDir}`)
      },
      stopComponent,
      startComponent
    }
  } catch (err) {
    await stopAll()
    const msg = err instanceof Error ? err.message : String(err)
    throw new HarnessError(`control plane failed to start: ${msg}\n(run directory kept: ${tmpDir})`, {
      cause: err
    })
  }
}

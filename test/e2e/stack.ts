/**
 * Our driver and approver as real processes against the injected control plane, plus the kubelet's
 * side of the CSI conversation. Each e2e file starts its own stack (files run one after another) so
 * that files can use different flags; the control plane is shared (vitest globalSetup).
 *
 * The driver authenticates as the chart's driver ServiceAccount and the approver as the chart's
 * approver ServiceAccount (the plane binds the chart's RBAC to both), so least privilege is what the
 * real authorizer enforces here.
 */
import * as grpc from "@grpc/grpc-js"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { loadCsiServices } from "../../src/csi/CsiProto.ts"
import { connect, type ControlPlaneInfo } from "../harness/globalSetup.ts"
import type { KubeClient } from "../harness/kube.ts"
import {
  createWorkload,
  deletePod,
  ensureCsiDriver,
  nodePublishRequest,
  nodeUnpublishRequest,
  type NodePublishVolumeRequest,
  type Workload,
  type WorkloadOptions
} from "../harness/kubelet.ts"
import { acceptsConnections, type ManagedProcess, startProcess, waitFor } from "../harness/process.ts"

const repo = fileURLToPath(new URL("../..", import.meta.url))
export const NODE = "e2e-node"

export interface StackOptions {
  readonly name: string
  readonly trustDomain?: string
  readonly duration?: string
  /** `--issuer-name`; "" leaves only the runtime ConfigMap */
  readonly issuerName?: string
  readonly runtimeConfigMap?: string
  readonly sourceCaBundle?: string
  readonly driverArgs?: ReadonlyArray<string>
  readonly approverArgs?: ReadonlyArray<string>
  /** Run our approver (default true). */
  readonly approver?: boolean
}

export interface Stack {
  readonly dir: string
  readonly kubeletRoot: string
  readonly socket: string
  readonly admin: KubeClient
  readonly plane: ControlPlaneInfo
  driver: ManagedProcess
  readonly approver: ManagedProcess | undefined
  readonly call: (method: string, request: object) => Promise<unknown>
  readonly pod: (opts: Partial<WorkloadOptions> & { readonly serviceAccount: string; readonly podName: string }) => Promise<Workload>
  readonly publishRequest: (workload: Workload, volumeName?: string) => Promise<NodePublishVolumeRequest>
  readonly publish: (workload: Workload, volumeName?: string) => Promise<string>
  readonly unpublish: (workload: Workload, volumeName?: string) => Promise<void>
  readonly deletePod: (workload: Workload) => Promise<void>
  /** SIGKILL (or SIGTERM) the driver and start a new one with the same flags. */
  readonly restartDriver: (signal: "SIGKILL" | "SIGTERM") => Promise<void>
  readonly stop: () => Promise<void>
}

const node = process.execPath

export const isMountPoint = (p: string): boolean => {
  const real = fs.existsSync(p) ? fs.realpathSync(p) : p
  return fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((l) => l.split(" ")[4] === real)
}

export const startStack = async (plane: ControlPlaneInfo, opts: StackOptions): Promise<Stack> => {
  const admin = connect(plane)
  const dir = fs.mkdtempSync(path.join(plane.tmpDir, `stack-${opts.name}-`))
  const kubeletRoot = path.join(dir, "kubelet")
  const dataRoot = path.join(dir, "data")
  const socket = path.join(dir, "plugin", "csi.sock")
  await ensureCsiDriver(admin)
  const trustDomain = opts.trustDomain ?? "foo.bar"
  const duration = opts.duration ?? "1h"
  const issuerArgs = [
    `--issuer-name=${opts.issuerName ?? plane.issuer.name}`,
    `--issuer-kind=${plane.issuer.kind}`,
    `--issuer-group=${plane.issuer.group}`
  ]
  const runtime = opts.runtimeConfigMap === undefined
    ? []
    : [`--runtime-issuance-config-map-name=${opts.runtimeConfigMap}`, `--runtime-issuance-config-map-namespace=${plane.clusterResourceNamespace}`]
  const driverArgs = [
    path.join(repo, "src/bin/csi.ts"),
    `--kubeconfig=${plane.users["driver"]!.kubeconfigPath}`,
    `--node-id=${NODE}`,
    `--endpoint=unix://${socket}`,
    `--data-root=${dataRoot}`,
    // Target paths lie under it; the driver's plugin-registration socket goes to its plugins_registry/.
    `--kubelet-root-dir=${kubeletRoot}`,
    `--trust-domain=${trustDomain}`,
    `--certificate-request-duration=${duration}`,
    ...issuerArgs,
    ...runtime,
    ...(opts.sourceCaBundle === undefined ? [] : [`--source-ca-bundle=${opts.sourceCaBundle}`]),
    "--log-level=4",
    // No kubelet watches this node, and a registration socket under the temp kubelet root would
    // pass the 107 bytes a unix socket path may have; test/e2e/registration.test.ts turns it on.
    "--plugin-registration=false",
    ...(opts.driverArgs ?? [])
  ]
  const startDriver = async (): Promise<ManagedProcess> => {
    const proc = startProcess({ name: `driver-${opts.name}`, command: node, args: driverArgs, logFile: path.join(dir, "driver.log"), cwd: repo })
    // Accepting connections, not just present: a SIGKILLed driver leaves its socket file behind.
    await waitFor(`driver ${opts.name} serving the CSI socket`, async () => (fs.existsSync(socket) && (await acceptsConnections(socket)) ? true : undefined), { timeoutMs: 30_000, intervalMs: 50, proc })
    return proc
  }

  let approver: ManagedProcess | undefined
  if (opts.approver ?? true) {
    approver = startProcess({
      name: `approver-${opts.name}`,
      command: node,
      args: [
        path.join(repo, "src/bin/approver.ts"),
        `--kubeconfig=${plane.users["approver"]!.kubeconfigPath}`,
        `--trust-domain=${trustDomain}`,
        `--certificate-request-duration=${duration}`,
        ...issuerArgs,
        ...runtime,
        `--leader-election-namespace=${plane.clusterResourceNamespace}`,
        "--readiness-probe-bind-address=127.0.0.1:0",
        "--metrics-bind-address=0",
        "--log-level=4",
        ...(opts.approverArgs ?? [])
      ],
      logFile: path.join(dir, "approver.log"),
      cwd: repo
    })
  }
  let driver = await startDriver()

  const services = Effect.runSync(loadCsiServices)
  let client = new services.Node(`unix://${socket}`, grpc.credentials.createInsecure())
  const call = (method: string, request: object) =>
    new Promise<unknown>((resolve, reject) => {
      const fn = (client as unknown as Record<string, (r: object, o: object, cb: (e: grpc.ServiceError | null, v?: unknown) => void) => void>)[method]!
      fn.call(client, request, { deadline: Date.now() + 90_000 }, (e, v) => (e === null ? resolve(v) : reject(e)))
    })

  const stack: Stack = {
    dir,
    kubeletRoot,
    socket,
    admin,
    plane,
    driver,
    approver,
    call,
    pod: (o) => createWorkload(admin, { namespace: "sandbox", nodeName: NODE, volumes: [{ name: "spiffe", driver: "spiffe.csi.cert-manager.io", readOnly: true }], ...o }),
    publishRequest: (w, v = "spiffe") => nodePublishRequest(admin, w, v, { kubeletRoot }),
    publish: async (w, v = "spiffe") => {
      const req = await nodePublishRequest(admin, w, v, { kubeletRoot })
      await call("NodePublishVolume", req)
      return req.target_path
    },
    unpublish: async (w, v = "spiffe") => {
      await call("NodeUnpublishVolume", nodeUnpublishRequest(w, v, kubeletRoot))
    },
    deletePod: (w) => deletePod(admin, w),
    restartDriver: async (signal) => {
      if (signal === "SIGKILL") process.kill(stack.driver.pid, "SIGKILL")
      await stack.driver.stop()
      client.close()
      stack.driver = driver = await startDriver()
      client = new services.Node(`unix://${socket}`, grpc.credentials.createInsecure())
    },
    stop: async () => {
      client.close()
      await driver.stop()
      await approver?.stop()
      // Whatever a failed test left mounted: every bind under the kubelet root, then the driver's tmpfs.
      const mounts = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4] ?? "")
      for (const m of mounts.filter((m) => m.startsWith(kubeletRoot)).sort().reverse()) execFileSync("umount", [m])
      for (const m of mounts.filter((m) => m.startsWith(dataRoot))) execFileSync("umount", [m])
    }
  }
  return stack
}

/** Reads the SVID files a pod sees; `names` also lists the Workload API socket (spiffe.sock, on by default). */
export const readVolume = (target: string) => ({
  crt: fs.readFileSync(path.join(target, "tls.crt"), "utf8"),
  key: fs.readFileSync(path.join(target, "tls.key"), "utf8"),
  ca: fs.existsSync(path.join(target, "ca.crt")) ? fs.readFileSync(path.join(target, "ca.crt"), "utf8") : undefined,
  names: fs.readdirSync(target).filter((n) => !n.startsWith("..")).sort()
})

/**
 * What the Helm chart must render, as tables of cases run by scripts/chart-check.ts.
 *
 * Sources: cert-manager/csi-driver-spiffe's chart, deploy/charts/csi-driver-spiffe (every value,
 * object, RBAC rule and DaemonSet/Deployment detail) and its helm unit tests (tests/: image configuration, deprecation banner,
 * approver flags), plus the rebuild's fixes (data dir outside /tmp with Bidirectional propagation,
 * kubeletRootDir, nameOverride, pull secrets on both pods, driver metrics, PDB), its single driver
 * container (plugin registration and /healthz served by the driver; the original's sidecars behind
 * a switch) and its own image as the default.
 */
import { deepStrictEqual } from "node:assert/strict"
import { Result } from "effect"
import { parseApproverArgs } from "../../src/config/ApproverFlags.ts"
import { parseDriverArgs } from "../../src/config/DriverFlags.ts"
import { parseSignerArgs } from "../../src/config/SignerFlags.ts"
import type { Container, K8sObject, RenderOptions, Rendered } from "./render.ts"
import { at, container, containers, envValue, expandEnv, find, flag, names, podSpec } from "./render.ts"

export interface RenderCase {
  readonly name: string
  readonly values?: unknown
  readonly options?: RenderOptions
  /** Throws (with a message) when the rendered chart is wrong. */
  readonly expect: (r: Rendered) => void
}

/** Values helm must refuse (values.schema.json), with the error it must print. */
export interface RejectCase {
  readonly name: string
  readonly values: unknown
  readonly error: RegExp
}

const NS = "cert-manager"
const BASE = "cert-manager-csi-driver-spiffe"
const APPROVER = `${BASE}-approver`
const APP_VERSION = "0.1.0"
/** The one image of this rebuild, as the Dockerfile's build command tags it. */
const OUR_IMAGE = `csi-driver-spiffe:${APP_VERSION}`
const SIDECARS_ON = { app: { driver: { sidecars: { nodeDriverRegistrar: { enabled: true }, livenessProbe: { enabled: true } } } } }

export const eq = (actual: unknown, expected: unknown, what: string): void => {
  try {
    deepStrictEqual(actual, expected)
  } catch {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`)
  }
}
const ok = (cond: boolean, what: string): void => {
  if (!cond) throw new Error(what)
}

const ds = (r: Rendered, base = BASE) => find(r, "DaemonSet", `${base}-driver`)
const deploy = (r: Rendered, base = BASE) => find(r, "Deployment", `${base}-approver`)
const driverC = (r: Rendered, base = BASE) => container(ds(r, base), base)
const approverC = (r: Rendered, base = BASE) => container(deploy(r, base), `${base}-approver`)
const rules = (r: Rendered, kind: string, name: string) => at(find(r, kind, name), "rules")

/** The driver's arguments as the kubelet passes them, decoded by the driver's own flag parser. */
const driverConfig = (c: Container) => {
  const endpoint = at(envValue(c, "CSI_ENDPOINT"), "value")
  const args = expandEnv(c.args ?? [], { NODE_ID: "node-1", CSI_ENDPOINT: String(endpoint) })
  const parsed = parseDriverArgs(args, APP_VERSION)
  if (Result.isFailure(parsed)) throw new Error(`the driver refuses the chart's flags: ${parsed.failure}`)
  if (parsed.success._tag !== "Config") throw new Error("the driver printed help")
  return parsed.success.config
}

/**
 * The approver's arguments, decoded by the approver's own flag parser (POD_NAMESPACE filled in as
 * the Deployment's env does). Any refusal fails: unknown flags, bad values, or an own-ServiceAccount
 * mode without a well-formed `--driver-service-account`.
 */
const approverConfig = (c: Container) => {
  const args = expandEnv(c.args ?? [], { POD_NAMESPACE: "cert-manager" })
  const parsed = parseApproverArgs(args)
  if (Result.isFailure(parsed)) throw new Error(`the approver refuses the chart's flags: ${parsed.failure}`)
  if (parsed.success._tag !== "Settings") throw new Error("the approver printed help")
  return parsed.success.settings.config
}

const sharedArgs = (extra: ReadonlyArray<string> = []) => [
  "--log-level=1",
  "--logging-format=text",
  "--csi-driver-name=spiffe.csi.cert-manager.io",
  "--certificate-request-duration=1h",
  "--issuer-name=spiffe-ca",
  "--issuer-kind=ClusterIssuer",
  "--issuer-group=cert-manager.io",
  "--trust-domain=cluster.local",
  ...extra
]

const DEFAULT_DRIVER_ARGS = [
  ...sharedArgs(),
  "--file-name-certificate=tls.crt",
  "--file-name-key=tls.key",
  "--file-name-ca=ca.crt",
  "--node-id=$(NODE_ID)",
  "--endpoint=$(CSI_ENDPOINT)",
  "--data-root=/csi-data-dir",
  "--kubelet-root-dir=/var/lib/kubelet",
  `--kubelet-registration-path=/var/lib/kubelet/plugins/${BASE}/csi.sock`,
  "--metrics-bind-address=:9403"
]

const DEFAULT_APPROVER_ARGS = [
  ...sharedArgs(),
  "--leader-election-namespace=$(POD_NAMESPACE)",
  "--metrics-bind-address=:9402",
  "--readiness-probe-bind-address=:6060"
]

const CR_RULE_DRIVER = { apiGroups: ["cert-manager.io"], resources: ["certificaterequests"], verbs: ["watch", "create", "delete", "list"] }
const EVENTS_RULE = { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] }
const approverClusterRules = (signerName?: string) => [
  { apiGroups: ["cert-manager.io"], resources: ["certificaterequests"], verbs: ["get", "list", "watch"] },
  { apiGroups: ["cert-manager.io"], resources: ["certificaterequests/status"], verbs: ["update"] },
  { apiGroups: ["cert-manager.io"], resources: ["signers"], verbs: ["approve"], ...(signerName === undefined ? {} : { resourceNames: [signerName] }) },
  EVENTS_RULE
]
const LEASE_RULE = { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "update", "create"] }
const configMapRule = (name: string) => ({ apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch"], resourceNames: [name] })

/** Every object of the original chart with default values, by the original's names (its templates/). */
const ORIGINAL_OBJECTS = [
  `ServiceAccount/${BASE}`, `ServiceAccount/${APPROVER}`,
  `ClusterRole/${BASE}`, `ClusterRole/${APPROVER}`, `ClusterRoleBinding/${BASE}`, `ClusterRoleBinding/${APPROVER}`,
  `Role/${BASE}`, `Role/${APPROVER}`, `RoleBinding/${BASE}`, `RoleBinding/${APPROVER}`,
  "CSIDriver/spiffe.csi.cert-manager.io", `DaemonSet/${BASE}-driver`, `Deployment/${APPROVER}`, `Service/${APPROVER}-metrics`
]

const hostPathOf = (o: K8sObject, volume: string) =>
  at((podSpec(o)["volumes"] as ReadonlyArray<Record<string, unknown>>).find((v) => v["name"] === volume), "hostPath")

const mountOf = (c: Container, name: string) => (c.volumeMounts ?? []).find((m) => m.name === name)

// ------------------------------------------------------------------------------------ defaults

const defaults: ReadonlyArray<RenderCase> = [
  {
    name: "defaults: the original's objects and names, plus the driver metrics Service",
    expect: (r) => eq(names(r), [...ORIGINAL_OBJECTS, `Service/${BASE}-driver-metrics`].sort(), "objects")
  },
  {
    name: "defaults: namespaced objects live in the release namespace; every object has the common labels",
    expect: (r) => {
      for (const o of r.objects) {
        const clusterScoped = ["ClusterRole", "ClusterRoleBinding", "CSIDriver"].includes(o.kind)
        eq(o.metadata.namespace, clusterScoped ? undefined : NS, `${o.kind}/${o.metadata.name} namespace`)
        const l = o.metadata.labels ?? {}
        eq([l["app.kubernetes.io/name"], l["helm.sh/chart"], l["app.kubernetes.io/instance"], l["app.kubernetes.io/version"], l["app.kubernetes.io/managed-by"]],
          [BASE, `${BASE}-${APP_VERSION}`, "csi-spiffe", APP_VERSION, "Helm"], `${o.kind}/${o.metadata.name} labels`)
      }
    }
  },
  {
    name: "defaults: CSIDriver spec (Ephemeral, podInfoOnMount, token audience \"\" passed in secrets, requiresRepublish, fsGroupPolicy File)",
    expect: (r) =>
      eq(at(find(r, "CSIDriver", "spiffe.csi.cert-manager.io"), "spec"), {
        volumeLifecycleModes: ["Ephemeral"],
        podInfoOnMount: true,
        tokenRequests: [{ audience: "", expirationSeconds: 3600 }],
        serviceAccountTokenInSecrets: true,
        requiresRepublish: true,
        fsGroupPolicy: "File"
      }, "CSIDriver spec")
  },
  {
    name: "defaults: driver flags, exactly, and accepted by the driver's own parser",
    expect: (r) => {
      const c = driverC(r)
      eq(c.command, ["csi-driver-spiffe"], "driver command")
      eq(c.args, DEFAULT_DRIVER_ARGS, "driver args")
      const config = driverConfig(c)
      eq([config.nodeId, config.endpoint, config.dataRoot, config.metricsBindAddress, config.sourceCaBundle, config.runtimeIssuanceConfigMap],
        ["node-1", "unix:///plugin/csi.sock", "/csi-data-dir", ":9403", undefined, undefined], "decoded driver config")
      eq(config.fileNames, { certificate: "tls.crt", key: "tls.key", ca: "ca.crt" }, "file names")
      eq([config.kubeletRootDir, config.pluginRegistration], ["/var/lib/kubelet", { kubeletRegistrationPath: `/var/lib/kubelet/plugins/${BASE}/csi.sock` }], "decoded kubelet root and registration")
      eq(envValue(c, "NODE_ID"), { name: "NODE_ID", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }, "NODE_ID env")
    }
  },
  {
    name: "defaults: driver mounts; pods dir and data dir Bidirectional; plugins_registry at its host path; data dir outside /tmp",
    expect: (r) => {
      const c = driverC(r)
      eq(c.volumeMounts, [
        { name: "plugin-dir", mountPath: "/plugin" },
        { name: "pods-mount-dir", mountPath: "/var/lib/kubelet/pods", mountPropagation: "Bidirectional" },
        { name: "csi-data-dir", mountPath: "/csi-data-dir", mountPropagation: "Bidirectional" },
        { name: "registration-dir", mountPath: "/var/lib/kubelet/plugins_registry" }
      ], "driver volumeMounts")
      eq(podSpec(ds(r))["volumes"], [
        { name: "plugin-dir", hostPath: { path: `/var/lib/kubelet/plugins/${BASE}`, type: "DirectoryOrCreate" } },
        { name: "pods-mount-dir", hostPath: { path: "/var/lib/kubelet/pods", type: "Directory" } },
        { name: "registration-dir", hostPath: { path: "/var/lib/kubelet/plugins_registry", type: "DirectoryOrCreate" } },
        { name: "csi-data-dir", hostPath: { path: "/var/lib/cert-manager-csi-driver-spiffe", type: "DirectoryOrCreate" } }
      ], "DaemonSet volumes")
      const dataDir = String(at(hostPathOf(ds(r), "csi-data-dir"), "path"))
      ok(!dataDir.startsWith("/tmp"), `csiDataDir ${dataDir} is under /tmp`)
    }
  },
  {
    name: "defaults: one container of ours, registering itself; no sidecar; registry socket path the driver derives",
    expect: (r) => {
      eq(containers(ds(r)).map((c) => c.name), [BASE], "containers")
      const c = driverC(r)
      const config = driverConfig(c)
      // The driver's socket <kubeletRootDir>/plugins_registry/<csi-driver-name>-reg.sock, inside the mount.
      ok(mountOf(c, "registration-dir")?.mountPath === `${config.kubeletRootDir}/plugins_registry`, "registry mounted where the driver looks")
      eq(at(envValue(c, "CSI_ENDPOINT"), "value"), "unix:///plugin/csi.sock", "CSI socket inside")
      eq(at(hostPathOf(ds(r), "plugin-dir"), "path") + "/csi.sock", config.pluginRegistration?.kubeletRegistrationPath, "registration path is the CSI socket's host path")
    }
  },
  {
    name: "sidecars on: the original's registrar and livenessprobe, --plugin-registration=false, liveness via the sidecar",
    values: SIDECARS_ON,
    expect: (r) => {
      const d = ds(r)
      eq(containers(d).map((c) => c.name), ["node-driver-registrar", "liveness-probe", BASE], "container order")
      const reg = container(d, "node-driver-registrar")
      eq(reg.args, ["-v=1", "--csi-address=/plugin/csi.sock", `--kubelet-registration-path=/var/lib/kubelet/plugins/${BASE}/csi.sock`], "registrar args")
      eq(reg.volumeMounts, [{ name: "plugin-dir", mountPath: "/plugin" }, { name: "registration-dir", mountPath: "/registration" }], "registrar mounts")
      eq(envValue(reg, "KUBE_NODE_NAME"), { name: "KUBE_NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }, "KUBE_NODE_NAME")
      const live = container(d, "liveness-probe")
      eq(live.args, ["--csi-address=/plugin/csi.sock", "--probe-timeout=3s", "--health-port=9809", "-v=1"], "livenessprobe args")
      eq(live.volumeMounts, [{ name: "plugin-dir", mountPath: "/plugin" }], "livenessprobe mounts")
      for (const s of [reg, live]) {
        eq(s["securityContext"], { runAsUser: 0, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, readOnlyRootFilesystem: true }, `${s.name} securityContext`)
      }
      const c = driverC(r)
      eq(c.args, [...DEFAULT_DRIVER_ARGS.filter((a) => !a.startsWith("--kubelet-registration-path=")).slice(0, -1), "--plugin-registration=false", "--metrics-bind-address=:9403"], "driver args")
      eq(driverConfig(c).pluginRegistration, undefined, "decoded: no registration by the driver")
      eq(mountOf(c, "registration-dir"), undefined, "driver does not mount plugins_registry")
      eq(c.ports, [{ name: "healthz", containerPort: 9809 }, { name: "metrics", containerPort: 9403 }], "driver ports")
      eq(c["livenessProbe"], { httpGet: { path: "/healthz", port: "healthz" }, initialDelaySeconds: 5, timeoutSeconds: 5 }, "livenessProbe")
      eq([reg.image, live.image], ["quay.io/jetstack/csi-node-driver-registrar:v2.17.0", "quay.io/jetstack/livenessprobe:v2.19.0"], "sidecar images: the original's released references")
    }
  },
  {
    name: "only the livenessprobe sidecar: the driver still registers itself",
    values: { app: { driver: { sidecars: { livenessProbe: { enabled: true } } } } },
    expect: (r) => {
      eq(containers(ds(r)).map((c) => c.name), ["liveness-probe", BASE], "containers")
      eq(driverConfig(driverC(r)).pluginRegistration, { kubeletRegistrationPath: `/var/lib/kubelet/plugins/${BASE}/csi.sock` }, "decoded registration")
      eq(at(driverC(r)["livenessProbe"], "httpGet.port"), "healthz", "liveness via the sidecar")
    }
  },
  {
    name: "only the registrar sidecar: the driver's own /healthz stays the liveness probe",
    values: { app: { driver: { sidecars: { nodeDriverRegistrar: { enabled: true } } } } },
    expect: (r) => {
      eq(containers(ds(r)).map((c) => c.name), ["node-driver-registrar", BASE], "containers")
      eq(flag(driverC(r).args, "plugin-registration"), "false", "--plugin-registration")
      eq(driverC(r)["livenessProbe"], { httpGet: { path: "/healthz", port: "metrics" }, initialDelaySeconds: 5, timeoutSeconds: 5 }, "livenessProbe")
    }
  },
  {
    name: "defaults: DaemonSet pod (selector, SA, seccomp, default container, privileged driver, probes, ports)",
    expect: (r) => {
      const d = ds(r)
      eq(at(d, "spec.selector.matchLabels"), { app: BASE }, "selector")
      eq(at(d, "spec.template.metadata.labels.app"), BASE, "pod app label")
      eq(at(d, "spec.template.metadata.annotations"), { "kubectl.kubernetes.io/default-container": BASE }, "annotations")
      const p = podSpec(d)
      eq([p["serviceAccountName"], p["securityContext"], p["nodeSelector"], p["imagePullSecrets"], p["automountServiceAccountToken"]],
        [BASE, { seccompProfile: { type: "RuntimeDefault" } }, { "kubernetes.io/os": "linux" }, undefined, true], "pod spec")
      const c = driverC(r)
      eq(c["securityContext"], { runAsUser: 0, privileged: true, capabilities: { drop: ["ALL"] }, readOnlyRootFilesystem: true }, "driver securityContext")
      eq(c.ports, [{ name: "metrics", containerPort: 9403 }], "driver ports")
      // The driver's own /healthz on its metrics port (no livenessprobe sidecar by default).
      eq(c["livenessProbe"], { httpGet: { path: "/healthz", port: "metrics" }, initialDelaySeconds: 5, timeoutSeconds: 5 }, "livenessProbe")
      eq(c["readinessProbe"], { httpGet: { path: "/readyz", port: "metrics" }, initialDelaySeconds: 3, periodSeconds: 7 }, "readinessProbe")
    }
  },
  {
    name: "defaults: approver Deployment (flags exactly, env, readiness probe, non-root, selector)",
    expect: (r) => {
      const d = deploy(r)
      const c = approverC(r)
      eq(c.command, ["csi-driver-spiffe-approver"], "approver command")
      eq(c.args, DEFAULT_APPROVER_ARGS, "approver args")
      eq(approverConfig(c).driverServiceAccount, undefined, "default mode: workloads request with their own ServiceAccount")
      eq(envValue(c, "POD_NAMESPACE"), { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } }, "POD_NAMESPACE")
      eq(c["readinessProbe"], { httpGet: { path: "/readyz", port: 6060 }, initialDelaySeconds: 3, periodSeconds: 7 }, "readinessProbe")
      eq(c["securityContext"], { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, readOnlyRootFilesystem: true }, "container securityContext")
      eq(c.ports, [{ name: "metrics", containerPort: 9402 }, { name: "readiness", containerPort: 6060 }], "approver ports")
      eq(at(d, "spec.replicas"), 1, "replicas")
      eq(at(d, "spec.selector.matchLabels"), { app: APPROVER }, "selector")
      const p = podSpec(d)
      eq([p["serviceAccountName"], p["securityContext"], p["imagePullSecrets"]],
        [APPROVER, { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } }, undefined], "approver pod spec")
    }
  },
  {
    name: "defaults: RBAC rules exactly (driver: CRs + events; approver: CRs get/list/watch, status, signers, events, leases)",
    expect: (r) => {
      eq(rules(r, "ClusterRole", BASE), [CR_RULE_DRIVER, EVENTS_RULE], "driver ClusterRole")
      eq(rules(r, "ClusterRole", APPROVER), approverClusterRules(), "approver ClusterRole")
      eq(rules(r, "Role", BASE), [], "driver Role")
      eq(rules(r, "Role", APPROVER), [LEASE_RULE], "approver Role")
      for (const [kind, roleKind] of [["ClusterRoleBinding", "ClusterRole"], ["RoleBinding", "Role"]] as const) {
        for (const n of [BASE, APPROVER]) {
          const b = find(r, kind, n)
          eq([at(b, "roleRef"), at(b, "subjects")], [
            { apiGroup: "rbac.authorization.k8s.io", kind: roleKind, name: n },
            [{ kind: "ServiceAccount", name: n, namespace: NS }]
          ], `${kind} ${n}`)
        }
      }
    }
  },
  {
    name: "defaults: metrics Services (approver 9402 as the original, driver 9403); no ServiceMonitor, no PDB",
    expect: (r) => {
      eq(at(find(r, "Service", `${APPROVER}-metrics`), "spec"), { type: "ClusterIP", ports: [{ name: "metrics", port: 9402, targetPort: 9402, protocol: "TCP" }], selector: { app: APPROVER } }, "approver Service")
      eq(at(find(r, "Service", `${BASE}-driver-metrics`), "spec"), { type: "ClusterIP", ports: [{ name: "metrics", port: 9403, targetPort: 9403, protocol: "TCP" }], selector: { app: BASE } }, "driver Service")
      ok(!r.objects.some((o) => o.kind === "ServiceMonitor" || o.kind === "PodDisruptionBudget"), "unexpected ServiceMonitor or PDB")
    }
  },
  {
    name: "defaults: ServiceAccounts without pull secrets, token automount on",
    expect: (r) => {
      for (const n of [BASE, APPROVER]) {
        const sa = find(r, "ServiceAccount", n)
        eq([sa["imagePullSecrets"], sa["automountServiceAccountToken"]], [undefined, true], `ServiceAccount ${n}`)
      }
    }
  }
]

// ------------------------------------------------------------------------------------ matrix

const matrix: ReadonlyArray<RenderCase> = [
  {
    name: "runtime ConfigMap: both binaries get name + release namespace; both Roles read only that ConfigMap",
    values: { app: { runtimeIssuanceConfigMap: "runtime-config-map" } },
    options: { namespace: "csi-ns" },
    expect: (r) => {
      for (const c of [driverC(r), approverC(r)]) {
        eq([flag(c.args, "runtime-issuance-config-map-name"), flag(c.args, "runtime-issuance-config-map-namespace")], ["runtime-config-map", "csi-ns"], `${c.name} ConfigMap flags`)
      }
      eq(driverConfig(driverC(r)).runtimeIssuanceConfigMap, { name: "runtime-config-map", namespace: "csi-ns" }, "decoded")
      eq(rules(r, "Role", BASE), [configMapRule("runtime-config-map")], "driver Role")
      eq(rules(r, "Role", APPROVER), [LEASE_RULE, configMapRule("runtime-config-map")], "approver Role")
      ok(r.notes.includes("overridden at runtime by ConfigMap csi-ns/runtime-config-map"), "NOTES names the ConfigMap")
    }
  },
  {
    name: "no runtime ConfigMap: neither binary gets the ConfigMap flags (ours refuse a namespace without a name)",
    expect: (r) => {
      for (const c of [driverC(r), approverC(r)]) {
        ok(!(c.args ?? []).some((a) => a.startsWith("--runtime-issuance-config-map")), `${c.name} has ConfigMap flags`)
      }
    }
  },
  {
    name: "sourceCABundle + volumes + volumeMounts: flag, extra volume and mount after the standard ones",
    values: {
      app: {
        driver: {
          sourceCABundle: "/var/run/secrets/spiffe.io/ca.pem",
          volumes: [{ name: "root-cas", secret: { secretName: "csi-driver-spiffe-ca" } }],
          volumeMounts: [{ name: "root-cas", mountPath: "/var/run/secrets/spiffe.io" }]
        }
      }
    },
    expect: (r) => {
      const c = driverC(r)
      eq(flag(c.args, "source-ca-bundle"), "/var/run/secrets/spiffe.io/ca.pem", "--source-ca-bundle")
      eq(driverConfig(c).sourceCaBundle, "/var/run/secrets/spiffe.io/ca.pem", "decoded")
      eq(c.volumeMounts?.map((m) => m.name), ["plugin-dir", "pods-mount-dir", "csi-data-dir", "registration-dir", "root-cas"], "mount order")
      eq(mountOf(c, "root-cas"), { name: "root-cas", mountPath: "/var/run/secrets/spiffe.io" }, "extra mount")
      eq((podSpec(ds(r))["volumes"] as ReadonlyArray<unknown>).at(-1), { name: "root-cas", secret: { secretName: "csi-driver-spiffe-ca" } }, "extra volume")
    }
  },
  {
    name: "volume file names: --file-name-certificate/key/ca all passed",
    values: { app: { driver: { volumeFileName: { cert: "svid.pem", key: "svid_key.pem", ca: "bundle.pem" } } } },
    expect: (r) => eq(driverConfig(driverC(r)).fileNames, { certificate: "svid.pem", key: "svid_key.pem", ca: "bundle.pem" }, "file names")
  },
  {
    name: "workloadApi: --workload-api and --workload-api-socket-name passed",
    values: { app: { driver: { workloadApi: { enabled: false, socketName: "agent.sock" } } } },
    expect: (r) => eq(driverConfig(driverC(r)).workloadApi, { socketName: "agent.sock", byDefault: false }, "workload API settings")
  },
  {
    name: "useOwnServiceAccount: driver flag; approver flag + driver ServiceAccount username",
    values: { app: { driver: { useOwnServiceAccount: true } } },
    options: { namespace: "csi-ns" },
    expect: (r) => {
      eq(flag(driverC(r).args, "use-own-service-account"), "true", "driver flag")
      eq(driverConfig(driverC(r)).useOwnServiceAccount, true, "decoded")
      const a = approverC(r)
      eq([flag(a.args, "use-own-service-account"), flag(a.args, "driver-service-account")], ["true", `system:serviceaccount:csi-ns:${BASE}`], "approver flags")
      eq(approverConfig(a).driverServiceAccount, `system:serviceaccount:csi-ns:${BASE}`, "decoded driver ServiceAccount")
      ok(!r.notes.includes("needs `create` on certificaterequests"), "NOTES still asks workloads for RBAC")
    }
  },
  {
    name: "autoApproveNonSPIFFE: --auto-approve-non-spiffe on the approver only",
    values: { app: { approver: { autoApproveNonSPIFFE: true } } },
    expect: (r) => {
      ok((approverC(r).args ?? []).includes("--auto-approve-non-spiffe"), "approver flag missing")
      ok(!(driverC(r).args ?? []).includes("--auto-approve-non-spiffe"), "driver got the approver flag")
    }
  },
  {
    name: "signerName: approve permission limited to that signer",
    values: { app: { approver: { signerName: "clusterissuers.cert-manager.io/spiffe-ca" } } },
    expect: (r) => eq(rules(r, "ClusterRole", APPROVER), approverClusterRules("clusterissuers.cert-manager.io/spiffe-ca"), "approver ClusterRole")
  },
  {
    name: "extraCertificateRequestAnnotations: passed verbatim to the driver, not the approver",
    values: { app: { extraCertificateRequestAnnotations: "team=platform,env=prod" } },
    expect: (r) => {
      eq(flag(driverC(r).args, "extra-certificate-request-annotations"), "team=platform,env=prod", "driver flag")
      eq(driverConfig(driverC(r)).extraCertificateRequestAnnotations, { team: "platform", env: "prod" }, "decoded")
      eq(flag(approverC(r).args, "extra-certificate-request-annotations"), undefined, "approver flag")
    }
  },
  {
    name: "logFormat json reaches both binaries, and both decode it",
    values: { app: { logFormat: "json" } },
    expect: (r) => {
      for (const c of [driverC(r), approverC(r)]) eq(flag(c.args, "logging-format"), "json", `${c.name} flag`)
      eq(driverConfig(driverC(r)).logFormat, "json", "driver decoded")
      approverConfig(approverC(r))
    }
  },
  {
    name: "issuer, trust domain, duration, driver name and log level reach every binary and sidecar",
    values: { app: { ...SIDECARS_ON.app, logLevel: 4, trustDomain: "foo.bar", certificateRequestDuration: "2h", name: "spiffe.example.com", issuer: { name: "csi-driver-spiffe-ca", kind: "Issuer", group: "example.io" } } },
    expect: (r) => {
      for (const c of [driverC(r), approverC(r)]) {
        eq(["log-level", "csi-driver-name", "certificate-request-duration", "issuer-name", "issuer-kind", "issuer-group", "trust-domain"].map((f) => flag(c.args, f)),
          ["4", "spiffe.example.com", "2h", "csi-driver-spiffe-ca", "Issuer", "example.io", "foo.bar"], `${c.name} flags`)
      }
      for (const s of ["node-driver-registrar", "liveness-probe"]) ok((container(ds(r), s).args ?? []).includes("-v=4"), `${s} -v`)
      ok(r.objects.some((o) => o.kind === "CSIDriver" && o.metadata.name === "spiffe.example.com"), "CSIDriver name")
      eq(driverConfig(driverC(r)).issuer, { name: "csi-driver-spiffe-ca", kind: "Issuer", group: "example.io" }, "decoded issuer")
    }
  },
  {
    name: "nameOverride: every object name, selector, ServiceAccount reference and the plugin dir follow it",
    values: { nameOverride: "spiffe", app: { driver: { useOwnServiceAccount: true } } },
    expect: (r) => {
      eq(names(r), [...ORIGINAL_OBJECTS, `Service/${BASE}-driver-metrics`].map((n) => n.replace(BASE, "spiffe")).sort(), "objects")
      eq(at(ds(r, "spiffe"), "spec.selector.matchLabels"), { app: "spiffe" }, "DaemonSet selector")
      eq(podSpec(deploy(r, "spiffe"))["serviceAccountName"], "spiffe-approver", "approver SA")
      eq(flag(approverC(r, "spiffe").args, "driver-service-account"), `system:serviceaccount:${NS}:spiffe`, "--driver-service-account")
      eq(approverConfig(approverC(r, "spiffe")).driverServiceAccount, `system:serviceaccount:${NS}:spiffe`, "decoded driver ServiceAccount")
      eq(at(hostPathOf(ds(r, "spiffe"), "plugin-dir"), "path"), "/var/lib/kubelet/plugins/spiffe", "plugin dir")
      eq(at(find(r, "ClusterRoleBinding", "spiffe"), "subjects"), [{ kind: "ServiceAccount", name: "spiffe", namespace: NS }], "binding subject")
    }
  },
  {
    name: "servicemonitor on: approver ServiceMonitor as the original, and one for the driver",
    values: {
      app: {
        approver: { metrics: { service: { servicemonitor: { enabled: true, prometheusInstance: "ops", interval: "30s", scrapeTimeout: "10s", labels: { team: "a" } } } } },
        driver: { metrics: { service: { servicemonitor: { enabled: true } } } }
      }
    },
    expect: (r) => {
      const sm = find(r, "ServiceMonitor", APPROVER)
      eq([sm.apiVersion, sm.metadata.labels?.["prometheus"], sm.metadata.labels?.["team"], sm.metadata.labels?.["app"]], ["monitoring.coreos.com/v1", "ops", "a", APPROVER], "labels")
      eq(at(sm, "spec"), {
        jobLabel: APPROVER,
        selector: { matchLabels: { app: APPROVER } },
        namespaceSelector: { matchNames: [NS] },
        endpoints: [{ targetPort: 9402, path: "/metrics", interval: "30s", scrapeTimeout: "10s" }]
      }, "approver ServiceMonitor spec")
      eq(at(find(r, "ServiceMonitor", `${BASE}-driver`), "spec.endpoints"), [{ targetPort: 9403, path: "/metrics", interval: "10s", scrapeTimeout: "5s" }], "driver endpoints")
    }
  },
  {
    name: "servicemonitor without its Service: not rendered (as the original)",
    values: { app: { approver: { metrics: { service: { enabled: false, servicemonitor: { enabled: true } } } } } },
    expect: (r) => ok(!r.objects.some((o) => o.kind === "ServiceMonitor" || o.metadata.name === `${APPROVER}-metrics`), "Service or ServiceMonitor rendered")
  },
  {
    name: "driver metrics off: --metrics-bind-address=0, no probes (nothing serves /healthz), no ports or Service",
    values: { app: { driver: { metrics: { enabled: false } } } },
    expect: (r) => {
      const c = driverC(r)
      eq([flag(c.args, "metrics-bind-address"), c["readinessProbe"], c["livenessProbe"], c.ports], ["0", undefined, undefined, undefined], "driver")
      eq(driverConfig(c).metricsBindAddress, undefined, "decoded")
      ok(!r.objects.some((o) => o.metadata.name === `${BASE}-driver-metrics`), "driver Service rendered")
    }
  },
  {
    name: "driver metrics off with the livenessprobe sidecar: liveness through the sidecar only",
    values: { app: { driver: { metrics: { enabled: false }, sidecars: { livenessProbe: { enabled: true } } } } },
    expect: (r) => {
      const c = driverC(r)
      eq([c["readinessProbe"], c.ports], [undefined, [{ name: "healthz", containerPort: 9809 }]], "driver")
      eq(at(c["livenessProbe"], "httpGet"), { path: "/healthz", port: "healthz" }, "livenessProbe")
    }
  },
  {
    name: "custom kubeletRootDir: --kubelet-root-dir, registration path and mount, pods mount (same path inside) and host paths follow it",
    values: { kubeletRootDir: "/var/lib/k0s/kubelet/" },
    expect: (r) => {
      const d = ds(r)
      const config = driverConfig(driverC(r))
      eq([config.kubeletRootDir, config.pluginRegistration?.kubeletRegistrationPath], ["/var/lib/k0s/kubelet", `/var/lib/k0s/kubelet/plugins/${BASE}/csi.sock`], "decoded kubelet root and registration path")
      eq(mountOf(driverC(r), "registration-dir"), { name: "registration-dir", mountPath: "/var/lib/k0s/kubelet/plugins_registry" }, "registry mount")
      eq(mountOf(driverC(r), "pods-mount-dir"), { name: "pods-mount-dir", mountPath: "/var/lib/k0s/kubelet/pods", mountPropagation: "Bidirectional" }, "pods mount")
      eq(["plugin-dir", "pods-mount-dir", "registration-dir"].map((v) => at(hostPathOf(d, v), "path")),
        [`/var/lib/k0s/kubelet/plugins/${BASE}`, "/var/lib/k0s/kubelet/pods", "/var/lib/k0s/kubelet/plugins_registry"], "host paths")
      ok(!JSON.stringify(d).includes("/var/lib/kubelet"), "a /var/lib/kubelet path is left")
    }
  },
  {
    name: "custom kubeletRootDir with the registrar sidecar: its registration path follows it",
    values: { kubeletRootDir: "/var/lib/k0s/kubelet", ...SIDECARS_ON },
    expect: (r) => {
      eq(flag(container(ds(r), "node-driver-registrar").args, "kubelet-registration-path"), `/var/lib/k0s/kubelet/plugins/${BASE}/csi.sock`, "registration path")
      eq(flag(driverC(r).args, "kubelet-root-dir"), "/var/lib/k0s/kubelet", "--kubelet-root-dir")
      ok(!JSON.stringify(ds(r)).includes("/var/lib/kubelet"), "a /var/lib/kubelet path is left")
    }
  },
  {
    name: "custom csiDataDir: host path follows, mount stays /csi-data-dir with Bidirectional",
    values: { app: { driver: { csiDataDir: "/opt/spiffe-state" } } },
    expect: (r) => {
      eq(hostPathOf(ds(r), "csi-data-dir"), { path: "/opt/spiffe-state", type: "DirectoryOrCreate" }, "host path")
      eq(mountOf(driverC(r), "csi-data-dir"), { name: "csi-data-dir", mountPath: "/csi-data-dir", mountPropagation: "Bidirectional" }, "mount")
    }
  },
  {
    name: "imagePullSecrets: on both pod specs (the original missed the Deployment) and both ServiceAccounts",
    values: { imagePullSecrets: [{ name: "regcred" }] },
    expect: (r) => {
      for (const o of [ds(r), deploy(r), find(r, "ServiceAccount", BASE), find(r, "ServiceAccount", APPROVER)]) {
        eq(o.kind === "ServiceAccount" ? o["imagePullSecrets"] : podSpec(o)["imagePullSecrets"], [{ name: "regcred" }], `${o.kind}/${o.metadata.name}`)
      }
    }
  },
  {
    name: "automountServiceAccountToken false: on both pods and ServiceAccounts; approver extra volumes",
    values: { automountServiceAccountToken: false, app: { approver: { volumes: [{ name: "tok", projected: { sources: [] } }], volumeMounts: [{ name: "tok", mountPath: "/var/run/secrets/kubernetes.io/serviceaccount" }] } } },
    expect: (r) => {
      for (const o of [ds(r), deploy(r)]) eq(podSpec(o)["automountServiceAccountToken"], false, `${o.kind} automount`)
      for (const n of [BASE, APPROVER]) eq(find(r, "ServiceAccount", n)["automountServiceAccountToken"], false, `SA ${n}`)
      eq(podSpec(deploy(r))["volumes"], [{ name: "tok", projected: { sources: [] } }], "approver volumes")
      eq(approverC(r).volumeMounts, [{ name: "tok", mountPath: "/var/run/secrets/kubernetes.io/serviceaccount" }], "approver mounts")
    }
  },
  {
    name: "scheduling: priorityClassName, nodeSelector, affinity, tolerations on both; topologySpreadConstraints on the approver only",
    values: {
      priorityClassName: "system-node-critical",
      nodeSelector: { pool: "a" },
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: "k", operator: "Exists" }] }] } } },
      tolerations: [{ operator: "Exists" }],
      topologySpreadConstraints: [{ maxSkew: 1, topologyKey: "zone", whenUnsatisfiable: "ScheduleAnyway", labelSelector: { matchLabels: { app: APPROVER } } }],
      commonLabels: { team: "sec" },
      app: { approver: { replicaCount: 3, resources: { limits: { memory: "128Mi" } } }, driver: { resources: { requests: { cpu: "10m" } } } }
    },
    expect: (r) => {
      for (const o of [ds(r), deploy(r)]) {
        const p = podSpec(o)
        eq([p["priorityClassName"], p["nodeSelector"], p["tolerations"]], ["system-node-critical", { "kubernetes.io/os": "linux", pool: "a" }, [{ operator: "Exists" }]], `${o.kind} scheduling`)
        ok(p["affinity"] !== undefined, `${o.kind} affinity`)
      }
      eq(podSpec(ds(r))["topologySpreadConstraints"], undefined, "DaemonSet topologySpreadConstraints")
      eq((podSpec(deploy(r))["topologySpreadConstraints"] as ReadonlyArray<unknown>).length, 1, "Deployment topologySpreadConstraints")
      eq(at(deploy(r), "spec.replicas"), 3, "replicas")
      eq([approverC(r)["resources"], driverC(r)["resources"]], [{ limits: { memory: "128Mi" } }, { requests: { cpu: "10m" } }], "resources")
      ok(r.objects.every((o) => o.metadata.labels?.["team"] === "sec"), "commonLabels on every object")
    }
  },
  {
    name: "PodDisruptionBudget: minAvailable 1 when enabled without fields; maxUnavailable alone when set",
    values: { app: { approver: { podDisruptionBudget: { enabled: true } } } },
    expect: (r) => eq(at(find(r, "PodDisruptionBudget", APPROVER), "spec"), { selector: { matchLabels: { app: APPROVER } }, minAvailable: 1 }, "PDB spec")
  },
  {
    name: "PodDisruptionBudget with maxUnavailable",
    values: { app: { approver: { podDisruptionBudget: { enabled: true, maxUnavailable: "50%" } } } },
    expect: (r) => eq(at(find(r, "PodDisruptionBudget", APPROVER), "spec"), { selector: { matchLabels: { app: APPROVER } }, maxUnavailable: "50%" }, "PDB spec")
  },
  {
    name: "command []: both containers use the image's entrypoint",
    values: { app: { driver: { command: [] }, approver: { command: [] } } },
    expect: (r) => eq([driverC(r).command, approverC(r).command], [undefined, undefined], "commands")
  },
  {
    name: "fsGroupPolicy None is passed to the CSIDriver",
    values: { app: { driver: { fsGroupPolicy: "None" } } },
    expect: (r) => eq(at(find(r, "CSIDriver", "spiffe.csi.cert-manager.io"), "spec.fsGroupPolicy"), "None", "fsGroupPolicy")
  },
  {
    name: "openshift SCC true: the driver may use the named SCC",
    values: { openshift: { securityContextConstraint: { enabled: true, name: "csi-scc" } } },
    expect: (r) => eq(rules(r, "ClusterRole", BASE), [CR_RULE_DRIVER, EVENTS_RULE, { apiGroups: ["security.openshift.io"], resources: ["securitycontextconstraints"], resourceNames: ["csi-scc"], verbs: ["use"] }], "driver ClusterRole")
  },
  {
    name: "openshift SCC detect on an OpenShift API: rule present",
    options: { apiVersions: ["security.openshift.io/v1"] },
    expect: (r) => eq((rules(r, "ClusterRole", BASE) as ReadonlyArray<unknown>).length, 3, "driver ClusterRole rules")
  },
  {
    name: "openshift SCC false on an OpenShift API: no rule",
    values: { openshift: { securityContextConstraint: { enabled: false } } },
    options: { apiVersions: ["security.openshift.io/v1"] },
    expect: (r) => eq(rules(r, "ClusterRole", BASE), [CR_RULE_DRIVER, EVENTS_RULE], "driver ClusterRole")
  }
]

// ------------------------ original helm unit tests (deploy/charts/csi-driver-spiffe/tests/)

const image = (component: "driver" | "approver", r: Rendered): Container => (component === "driver" ? driverC(r) : approverC(r))

/** [name, values, component, expected image, expected pullPolicy?] — the original's 17 image cases. */
const IMAGE_CASES: ReadonlyArray<readonly [string, unknown, "driver" | "approver", string, string?]> = [
  ["new format: driverImage registry/repository/tag/pullPolicy", { driverImage: { registry: "registry.example.com", repository: "custom/driver", tag: "v1.2.3", pullPolicy: "Always" } }, "driver", "registry.example.com/custom/driver:v1.2.3", "Always"],
  ["new format: approverImage registry/repository/tag/pullPolicy", { approverImage: { registry: "registry.example.com", repository: "custom/approver", tag: "v1.2.3", pullPolicy: "Always" } }, "approver", "registry.example.com/custom/approver:v1.2.3", "Always"],
  ["new format: driverImage digest", { driverImage: { registry: "registry.example.com", repository: "custom/driver", digest: "sha256:abcdef123456" } }, "driver", "registry.example.com/custom/driver@sha256:abcdef123456"],
  ["new format: approverImage digest", { approverImage: { registry: "registry.example.com", repository: "custom/approver", digest: "sha256:fedcba654321" } }, "approver", "registry.example.com/custom/approver@sha256:fedcba654321"],
  ["legacy format: driver", { image: { registry: "quay.io", repository: { driver: "legacy/driver-image" }, tag: "v0.9.0", pullPolicy: "Never" } }, "driver", "quay.io/legacy/driver-image:v0.9.0", "Never"],
  ["legacy format: approver", { image: { registry: "quay.io", repository: { approver: "legacy/approver-image" }, tag: "v0.9.0", pullPolicy: "Never" } }, "approver", "quay.io/legacy/approver-image:v0.9.0", "Never"],
  ["legacy format: driver digest", { image: { registry: "quay.io", repository: { driver: "legacy/driver-image" }, digest: { driver: "sha256:olddriver123" } } }, "driver", "quay.io/legacy/driver-image@sha256:olddriver123"],
  ["legacy format: approver digest", { image: { registry: "quay.io", repository: { approver: "legacy/approver-image" }, digest: { approver: "sha256:oldapprover456" } } }, "approver", "quay.io/legacy/approver-image@sha256:oldapprover456"],
  ["legacy wins over new: driver", { image: { registry: "old.registry.io", repository: { driver: "old/driver" }, tag: "v0.5.0" }, driverImage: { registry: "new.registry.io", repository: "new/driver", tag: "v1.0.0" } }, "driver", "old.registry.io/old/driver:v0.5.0"],
  ["legacy wins over new: approver", { image: { registry: "old.registry.io", repository: { approver: "old/approver" }, tag: "v0.5.0" }, approverImage: { registry: "new.registry.io", repository: "new/approver", tag: "v1.0.0" } }, "approver", "old.registry.io/old/approver:v0.5.0"],
  // The original prepends to its default quay.io/jetstack/… reference; ours prepends to our image's.
  ["legacy registry only: prepended to the default reference", { image: { registry: "custom.registry.io", tag: "v0.9.0" } }, "driver", "custom.registry.io/csi-driver-spiffe:v0.9.0"],
  // The original's defaults are jetstack's Go images; ours are this rebuild's one image.
  ["default driver image", {}, "driver", OUR_IMAGE, "IfNotPresent"],
  ["default approver image", {}, "approver", OUR_IMAGE, "IfNotPresent"],
  ["appVersion when no tag: new format", { driverImage: { repository: "custom/driver" } }, "driver", `custom/driver:${APP_VERSION}`],
  ["appVersion when no tag: legacy format", { image: { repository: { driver: "legacy/driver" } } }, "driver", `legacy/driver:${APP_VERSION}`],
  ["repository without registry: new format", { driverImage: { repository: "standalone/driver", tag: "v2.0.0" } }, "driver", "standalone/driver:v2.0.0"],
  ["repository without registry: legacy format", { image: { repository: { approver: "standalone/approver" }, tag: "v2.0.0" } }, "approver", "standalone/approver:v2.0.0"]
]

const imageCases: ReadonlyArray<RenderCase> = [
  ...IMAGE_CASES.map(([name, values, component, expected, pullPolicy]): RenderCase => ({
    name: `image (original test): ${name}`,
    values,
    expect: (r) => {
      const c = image(component, r)
      eq(c.image, expected, `${component} image`)
      if (pullPolicy !== undefined) eq(c.imagePullPolicy, pullPolicy, `${component} imagePullPolicy`)
    }
  })),
  {
    name: "image: tag and digest together render :tag@digest",
    values: { driverImage: { repository: "r.io/d", tag: "v1", digest: "sha256:aa" } },
    expect: (r) => eq(driverC(r).image, "r.io/d:v1@sha256:aa", "driver image")
  },
  {
    name: "image: defaults name our one image for driver and approver, and nothing of jetstack's",
    expect: (r) => {
      eq([driverC(r).image, approverC(r).image], [OUR_IMAGE, OUR_IMAGE], "images")
      const all = [...containers(ds(r)), ...containers(deploy(r))].map((c) => c.image)
      ok(all.every((i) => !i.includes("jetstack")), `a jetstack image is rendered: ${all.join(", ")}`)
    }
  },
  {
    name: "image: sidecars, when on, default to the original's released references",
    values: SIDECARS_ON,
    expect: (r) => eq([container(ds(r), "node-driver-registrar").image, container(ds(r), "liveness-probe").image],
      ["quay.io/jetstack/csi-node-driver-registrar:v2.17.0", "quay.io/jetstack/livenessprobe:v2.19.0"], "sidecar images")
  },
  {
    name: "image: imageRegistry/imageNamespace apply to all four images once driver/approver repository is emptied; sidecar repository override",
    values: {
      imageRegistry: "mirror.example.com/docker",
      imageNamespace: "",
      driverImage: { repository: "" },
      approverImage: { repository: "" },
      app: { driver: { ...SIDECARS_ON.app.driver, livenessProbeImage: { repository: "registry.k8s.io/sig-storage/livenessprobe", tag: "v2.19.0", pullPolicy: "Always" } } }
    },
    expect: (r) => {
      eq(containers(ds(r)).map((c) => c.image), [
        "mirror.example.com/docker/csi-node-driver-registrar:v2.17.0",
        "registry.k8s.io/sig-storage/livenessprobe:v2.19.0",
        `mirror.example.com/docker/csi-driver-spiffe:${APP_VERSION}`
      ], "DaemonSet images")
      eq(container(ds(r), "liveness-probe").imagePullPolicy, "Always", "livenessprobe pull policy")
      eq(approverC(r).image, `mirror.example.com/docker/csi-driver-spiffe:${APP_VERSION}`, "approver image")
    }
  }
]

const BANNER = "WARNING: The 'image' section in your values is DEPRECATED"
const MIGRATE = "Please migrate to using 'driverImage' and 'approverImage'"

const notesCases: ReadonlyArray<RenderCase> = [
  {
    name: "NOTES (original test): deprecation banner for the legacy image section",
    values: { image: { registry: "quay.io", repository: { driver: "old/driver", approver: "old/approver" } } },
    expect: (r) => ok(r.notes.includes(BANNER) && r.notes.includes(MIGRATE), `banner missing from NOTES:\n${r.notes}`)
  },
  {
    name: "NOTES (original test): no banner with the new format only",
    values: { driverImage: { repository: "new/driver" }, approverImage: { repository: "new/approver" } },
    expect: (r) => ok(!r.notes.includes(BANNER), "banner shown")
  },
  {
    name: "NOTES (original test): no banner with defaults; success line and workload RBAC hint",
    expect: (r) => {
      ok(!r.notes.includes(BANNER), "banner shown")
      ok(r.notes.startsWith(`csi-driver-spiffe ${APP_VERSION} has been deployed successfully!`), "success line")
      ok(r.notes.includes("needs `create` on certificaterequests"), "RBAC hint")
    }
  }
]

/** The original's approver-non-spiffe_test.yaml (5 cases). */
const approverFlagCases: ReadonlyArray<RenderCase> = [
  { name: "approver (original test): --auto-approve-non-spiffe when enabled", values: { app: { approver: { autoApproveNonSPIFFE: true } } }, expect: (r) => ok((approverC(r).args ?? []).includes("--auto-approve-non-spiffe"), "flag missing") },
  { name: "approver (original test): no --auto-approve-non-spiffe by default", expect: (r) => ok(!(approverC(r).args ?? []).includes("--auto-approve-non-spiffe"), "flag present") },
  {
    name: "approver (original test): issuer flags always rendered",
    values: { app: { issuer: { name: "spiffe-ca", kind: "ClusterIssuer", group: "cert-manager.io" } } },
    expect: (r) => eq(["issuer-name", "issuer-kind", "issuer-group"].map((f) => flag(approverC(r).args, f)), ["spiffe-ca", "ClusterIssuer", "cert-manager.io"], "issuer flags")
  },
  {
    name: "approver (original test): runtime ConfigMap name flag",
    values: { app: { runtimeIssuanceConfigMap: "my-runtime-config" } },
    expect: (r) => ok((approverC(r).args ?? []).includes("--runtime-issuance-config-map-name=my-runtime-config"), "flag missing")
  },
  {
    name: "approver (original test): runtime ConfigMap namespace is the release namespace",
    values: { app: { runtimeIssuanceConfigMap: "my-runtime-config" } },
    options: { namespace: "cert-manager" },
    expect: (r) => ok((approverC(r).args ?? []).includes("--runtime-issuance-config-map-namespace=cert-manager"), "flag missing")
  }
]

// ------------------------------------------------------------ Pod Certificates (the signer)

const SIGNER = `${BASE}-signer`
const PC_ON = { app: { podCertificates: { enabled: true } } }
const SIGNER_OBJECTS = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment"].map((k) => `${k}/${SIGNER}`)
const signerC = (r: Rendered, base = BASE) => container(find(r, "Deployment", `${base}-signer`), `${base}-signer`)
const signerClusterRules = (signerName: string) => [
  { apiGroups: ["certificates.k8s.io"], resources: ["podcertificaterequests"], verbs: ["get", "list", "watch"] },
  { apiGroups: ["certificates.k8s.io"], resources: ["podcertificaterequests/status"], verbs: ["update"] },
  { apiGroups: ["certificates.k8s.io"], resources: ["signers"], verbs: ["sign", "attest"], resourceNames: [signerName] },
  { apiGroups: ["certificates.k8s.io"], resources: ["clustertrustbundles"], verbs: ["get", "list", "watch", "create", "update"] },
  EVENTS_RULE
]
const signerArgs = (o: { signerName?: string; intermediate?: string; maxLeaf?: string; refresh?: string } = {}) => [
  "--log-level=1",
  "--logging-format=text",
  `--signer-name=${o.signerName ?? "spiffe.csi.cert-manager.io/svid"}`,
  "--trust-domain=cluster.local",
  "--issuer-name=spiffe-ca",
  "--issuer-kind=ClusterIssuer",
  "--issuer-group=cert-manager.io",
  "--certificate-namespace=$(POD_NAMESPACE)",
  `--intermediate-duration=${o.intermediate ?? "168h"}`,
  `--max-leaf-duration=${o.maxLeaf ?? "24h"}`,
  ...(o.refresh === undefined ? [] : [`--begin-refresh-after=${o.refresh}`]),
  "--leader-election-namespace=$(POD_NAMESPACE)",
  "--metrics-bind-address=:9402",
  "--readiness-probe-bind-address=:6060"
]

/** The signer's arguments, decoded by the signer's own flag parser (POD_NAMESPACE filled in). */
const signerSettings = (c: Container) => {
  const parsed = parseSignerArgs(expandEnv(c.args ?? [], { POD_NAMESPACE: "cert-manager" }))
  if (Result.isFailure(parsed)) throw new Error(`the signer refuses the chart's flags: ${parsed.failure}`)
  if (parsed.success._tag !== "Settings") throw new Error("the signer printed help")
  return parsed.success.settings
}

const podCertificateCases: ReadonlyArray<RenderCase> = [
  {
    name: "pod certificates off (default): identical to a chart without the section, approver without --signer-*",
    values: { app: { podCertificates: { enabled: false, signerName: "example.com/other", maxLeafDuration: "2h" } } },
    expect: (r) => {
      eq(names(r), [...ORIGINAL_OBJECTS, `Service/${BASE}-driver-metrics`].sort(), "objects")
      eq(approverC(r).args, DEFAULT_APPROVER_ARGS, "approver args")
      eq(approverConfig(approverC(r)).signerServiceAccount, undefined, "decoded signer ServiceAccount")
    }
  },
  {
    name: "pod certificates on: the signer's own ServiceAccount, Deployment, RBAC and bindings; the original objects unchanged",
    values: PC_ON,
    expect: (r) => {
      eq(names(r), [...ORIGINAL_OBJECTS, `Service/${BASE}-driver-metrics`, ...SIGNER_OBJECTS].sort(), "objects")
      eq(rules(r, "ClusterRole", APPROVER), approverClusterRules(), "approver ClusterRole unchanged")
      eq(rules(r, "Role", APPROVER), [LEASE_RULE], "approver Role unchanged")
      eq(rules(r, "ClusterRole", SIGNER), signerClusterRules("spiffe.csi.cert-manager.io/svid"), "signer ClusterRole")
      eq(rules(r, "Role", SIGNER), [
        { apiGroups: ["cert-manager.io"], resources: ["certificaterequests"], verbs: ["create", "get", "list", "watch", "delete"] },
        LEASE_RULE
      ], "signer Role")
      for (const kind of ["ClusterRoleBinding", "RoleBinding"]) {
        const b = find(r, kind, SIGNER)
        eq(at(b, "roleRef.name"), SIGNER, `${kind} roleRef`)
        eq(at(b, "subjects"), [{ kind: "ServiceAccount", name: SIGNER, namespace: NS }], `${kind} subjects`)
      }
      for (const kind of ["ServiceAccount", "Role", "RoleBinding", "Deployment"]) eq(find(r, kind, SIGNER).metadata.namespace, NS, `${kind} namespace`)
    }
  },
  {
    name: "pod certificates on: signer flags exactly, the approver image, its own ServiceAccount, non-root, read-only root",
    values: PC_ON,
    expect: (r) => {
      const d = find(r, "Deployment", SIGNER)
      const c = signerC(r)
      eq(c.command, ["csi-driver-spiffe-signer"], "signer command")
      eq(c.args, signerArgs(), "signer args")
      const { config, readinessBindAddress, metricsBindAddress } = signerSettings(c)
      eq(
        [config.signerName, config.trustDomain, config.issuer, config.certificateNamespace, config.intermediateMillis, config.maxLeafMillis, config.beginRefreshAfterMillis, config.leaderElectionNamespace],
        ["spiffe.csi.cert-manager.io/svid", "cluster.local", { name: "spiffe-ca", kind: "ClusterIssuer", group: "cert-manager.io" }, NS, 168 * 3_600_000, 24 * 3_600_000, undefined, NS],
        "decoded by the signer"
      )
      eq([readinessBindAddress, metricsBindAddress], [":6060", ":9402"], "signer endpoints")
      eq(c.image, approverC(r).image, "signer image is the approver's")
      eq(podSpec(d)["serviceAccountName"], SIGNER, "signer ServiceAccount")
      eq(at(d, "spec.replicas"), 1, "replicas")
      eq(at(podSpec(d), "securityContext.runAsNonRoot"), true, "runAsNonRoot")
      eq(at(c, "securityContext.readOnlyRootFilesystem"), true, "readOnlyRootFilesystem")
      eq(at(c, "readinessProbe.httpGet"), { path: "/readyz", port: 6060 }, "readiness probe")
      eq(at(envValue(c, "POD_NAMESPACE"), "valueFrom.fieldRef.fieldPath"), "metadata.namespace", "POD_NAMESPACE")
    }
  },
  {
    name: "pod certificates on: the approver gets --signer-service-account (the signer's ServiceAccount) and the same intermediate duration",
    values: { app: { podCertificates: { enabled: true, intermediateDuration: "72h" } } },
    expect: (r) => {
      const args = approverC(r).args ?? []
      eq(args, [...DEFAULT_APPROVER_ARGS, `--signer-service-account=${NS}:${SIGNER}`, "--signer-intermediate-duration=72h"], "approver args")
      const config = approverConfig(approverC(r))
      eq([config.signerServiceAccount, config.signerIntermediateDuration], [`system:serviceaccount:${NS}:${SIGNER}`, 72 * 3_600_000], "decoded by the approver")
      eq(flag(signerC(r).args, "intermediate-duration"), "72h", "signer intermediate duration")
    }
  },
  {
    name: "pod certificates: signer name, leaf duration, refresh point, replicas, log level and resources pass through",
    values: {
      app: {
        logFormat: "json",
        podCertificates: {
          enabled: true,
          signerName: "example.com/spiffe",
          maxLeafDuration: "1h",
          beginRefreshAfter: "20m",
          replicaCount: 2,
          logLevel: 4,
          resources: { requests: { memory: "64Mi" } }
        }
      }
    },
    expect: (r) => {
      const c = signerC(r)
      eq(c.args, signerArgs({ signerName: "example.com/spiffe", maxLeaf: "1h", refresh: "20m" }).map((a) =>
        a.replace("--log-level=1", "--log-level=4").replace("--logging-format=text", "--logging-format=json")), "signer args")
      eq([signerSettings(c).config.maxLeafMillis, signerSettings(c).config.beginRefreshAfterMillis, signerSettings(c).logFormat], [3_600_000, 20 * 60_000, "json"], "decoded by the signer")
      eq(at(find(r, "Deployment", SIGNER), "spec.replicas"), 2, "replicas")
      eq(c["resources"], { requests: { memory: "64Mi" } }, "resources")
      eq(rules(r, "ClusterRole", SIGNER), signerClusterRules("example.com/spiffe"), "sign/attest limited to the signer name")
    }
  },
  {
    name: "pod certificates: nameOverride, trust domain and issuer reach the signer; the approver names the renamed ServiceAccount",
    values: { nameOverride: "spiffe", app: { trustDomain: "example.org", issuer: { name: "corp-ca", kind: "Issuer", group: "example.io" }, podCertificates: { enabled: true } } },
    options: { namespace: "security" },
    expect: (r) => {
      const c = signerC(r, "spiffe")
      eq(["trust-domain", "issuer-name", "issuer-kind", "issuer-group"].map((f) => flag(c.args, f)), ["example.org", "corp-ca", "Issuer", "example.io"], "signer flags")
      eq(flag(approverC(r, "spiffe").args, "signer-service-account"), "security:spiffe-signer", "approver flag")
      eq(find(r, "ServiceAccount", "spiffe-signer").metadata.namespace, "security", "ServiceAccount namespace")
    }
  }
]

export const renderCases: ReadonlyArray<RenderCase> = [
  ...defaults,
  ...matrix,
  ...imageCases,
  ...notesCases,
  ...approverFlagCases,
  ...podCertificateCases
]

export const rejectCases: ReadonlyArray<RejectCase> = [
  { name: "schema: an unknown top-level key is refused", values: { imageRegistri: "typo.io" }, error: /additional properties|imageRegistri/i },
  { name: "schema: an unknown nested key is refused", values: { app: { driver: { csiDataDirectory: "/x" } } }, error: /additional properties|csiDataDirectory/i },
  { name: "schema: a string port is refused", values: { app: { approver: { metrics: { port: "9402" } } } }, error: /port/ },
  { name: "schema: a logFormat other than text or json is refused", values: { app: { logFormat: "logfmt" } }, error: /logFormat/ },
  { name: "schema: a relative kubeletRootDir is refused", values: { kubeletRootDir: "var/lib/kubelet" }, error: /kubeletRootDir/ },
  { name: "schema: openshift enabled must be a bool or \"detect\"", values: { openshift: { securityContextConstraint: { enabled: "yes" } } }, error: /enabled/ },
  { name: "schema: a sidecar switch must be a bool", values: { app: { driver: { sidecars: { nodeDriverRegistrar: { enabled: "yes" } } } } }, error: /enabled/ },
  { name: "schema: an unknown sidecar is refused", values: { app: { driver: { sidecars: { csiProvisioner: { enabled: true } } } } }, error: /additional properties|csiProvisioner/i },
  { name: "schema: an unknown podCertificates key is refused", values: { app: { podCertificates: { keyType: "RSA3072" } } }, error: /additional properties|keyType/i },
  { name: "schema: a signer name without a domain and path is refused", values: { app: { podCertificates: { signerName: "svid" } } }, error: /signerName/ },
  { name: "schema: podCertificates.enabled must be a bool", values: { app: { podCertificates: { enabled: "yes" } } }, error: /enabled/ }
]

/** Values sets `helm lint --strict` must pass (defaults plus the heavier combinations). */
export const lintValues: ReadonlyArray<unknown> = [
  {},
  { nameOverride: "spiffe", kubeletRootDir: "/var/lib/k0s/kubelet", app: { runtimeIssuanceConfigMap: "rt", driver: { useOwnServiceAccount: true, sourceCABundle: "/ca/ca.pem" } } },
  { image: { registry: "quay.io", repository: { driver: "a/b", approver: "a/c" }, tag: "v1" }, app: { approver: { podDisruptionBudget: { enabled: true }, metrics: { service: { servicemonitor: { enabled: true } } } } } },
  { kubeletRootDir: "/var/lib/k0s/kubelet", app: { driver: { ...SIDECARS_ON.app.driver, metrics: { enabled: false } } } },
  { app: { podCertificates: { enabled: true, beginRefreshAfter: "20m", resources: { limits: { memory: "128Mi" } } } } }
]

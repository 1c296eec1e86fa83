/**
 * The chart's rendered objects are accepted by the real kube-apiserver.
 *
 * helm (scripts/upstream/build.sh) renders helm/csi-driver-spiffe for two values sets; every rendered
 * object is created in a fresh namespace, first with a server-side dry run (`?dryRun=All`: admission,
 * validation and defaulting, nothing stored), then for real. Cluster-scoped names would collide with
 * the plane's own RBAC and CSIDriver (the chart's default names), so each set uses `nameOverride` and
 * its own `app.name`; nothing else differs from the defaults in set 1.
 *
 * ServiceMonitors are rendered by set 2 but not created: the plane has no monitoring.coreos.com CRDs
 * (asserted through discovery). No controller-manager or kubelet runs, so the DaemonSet and the
 * Deployment are stored but start no pods; this file needs no driver/approver stack.
 *
 * With set 2's RBAC created, SubjectAccessReviews ask the real authorizer what the chart's two
 * ServiceAccounts may do: least privilege checked against real authorization.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { connect } from "../harness/globalSetup.ts"
import { findHelm, type K8sObject, makeRenderer, type Rendered } from "../chart/render.ts"

const plane = inject("controlPlane")
const admin = connect(plane)
const helm = findHelm()
const renderer = makeRenderer(helm)

interface ApiResource {
  readonly name: string
  readonly kind: string
  readonly namespaced: boolean
}

const groupVersionPath = (apiVersion: string) => (apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`)

/** Discovery: the resource (plural, scope) serving `kind` in `apiVersion`, or undefined when not served. */
const discovered = new Map<string, ReadonlyArray<ApiResource> | undefined>()
const resourceFor = async (apiVersion: string, kind: string): Promise<ApiResource | undefined> => {
  if (!discovered.has(apiVersion)) {
    const res = await admin.raw("GET", groupVersionPath(apiVersion))
    discovered.set(apiVersion, res.status === 200 ? (JSON.parse(res.body) as { resources: ReadonlyArray<ApiResource> }).resources : undefined)
  }
  return discovered.get(apiVersion)?.find((r) => r.kind === kind && !r.name.includes("/"))
}

const collectionPath = async (o: K8sObject, namespace: string): Promise<string | undefined> => {
  const r = await resourceFor(o.apiVersion, o.kind)
  if (r === undefined) return undefined
  return r.namespaced
    ? `${groupVersionPath(o.apiVersion)}/namespaces/${o.metadata.namespace ?? namespace}/${r.name}`
    : `${groupVersionPath(o.apiVersion)}/${r.name}`
}

const id = (o: K8sObject) => `${o.kind}/${o.metadata.name}`

interface ValuesSet {
  readonly n: number
  readonly what: string
  readonly values: Record<string, unknown>
}

const names = (n: number) => ({ nameOverride: `chart-e2e-${n}`, driverName: `chart-e2e-${n}.csi.example.com` })

const sets: ReadonlyArray<ValuesSet> = [
  {
    n: 1,
    what: "defaults (only the names changed)",
    values: { nameOverride: names(1).nameOverride, app: { name: names(1).driverName } }
  },
  {
    n: 2,
    what: "runtime issuance ConfigMap, source CA bundle, extra volumes, PDB, ServiceMonitors, signer name, the original's sidecars",
    values: {
      nameOverride: names(2).nameOverride,
      imagePullSecrets: [{ name: "pull-secret" }],
      kubeletRootDir: "/var/lib/k0s/kubelet",
      app: {
        name: names(2).driverName,
        logLevel: 4,
        trustDomain: "foo.bar",
        certificateRequestDuration: "2h",
        runtimeIssuanceConfigMap: "runtime-config-map",
        issuer: { name: "csi-driver-spiffe-ca" },
        driver: {
          sourceCABundle: "/var/run/secrets/spiffe.io/ca.crt",
          volumes: [{ name: "root-cas", secret: { secretName: "csi-driver-spiffe-ca" } }],
          volumeMounts: [{ name: "root-cas", mountPath: "/var/run/secrets/spiffe.io", readOnly: true }],
          metrics: { service: { servicemonitor: { enabled: true } } },
          sidecars: { nodeDriverRegistrar: { enabled: true }, livenessProbe: { enabled: true } }
        },
        approver: {
          signerName: "clusterissuers.cert-manager.io/csi-driver-spiffe-ca",
          podDisruptionBudget: { enabled: true },
          metrics: { service: { servicemonitor: { enabled: true } } }
        }
      }
    }
  }
]

afterAll(() => renderer.dispose())

for (const set of sets) {
  describe(`chart values set ${set.n}: ${set.what}`, () => {
    const ns = `chart-e2e-${set.n}`
    const release = `chart-e2e-${set.n}`
    let rendered: Rendered
    const created: Array<{ path: string; object: K8sObject }> = []

    beforeAll(async () => {
      rendered = renderer.render(set.values, { release, namespace: ns })
      await admin.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } })
    })
    afterAll(async () => {
      // Cluster-wide grants and the CSIDriver must not outlive the file; namespaced objects go too.
      for (const c of created.reverse()) {
        const res = await admin.raw("DELETE", `${c.path}/${c.object.metadata.name}`)
        if (res.status !== 200 && res.status !== 202 && res.status !== 404) throw new Error(`DELETE ${id(c.object)}: ${res.status} ${res.body}`)
      }
    })

    it("renders every object kind the chart owns, and only ServiceMonitors lack an API here", async () => {
      const kinds = new Set(rendered.objects.map((o) => o.kind))
      for (const k of ["CSIDriver", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "DaemonSet", "Deployment", "Service"]) {
        expect(kinds.has(k), `no ${k} rendered`).toBe(true)
      }
      for (const o of rendered.objects) {
        const path = await collectionPath(o, ns)
        if (o.kind === "ServiceMonitor") expect(path, "monitoring.coreos.com is served: create the ServiceMonitors too").toBeUndefined()
        else expect(path, `${o.apiVersion} ${o.kind} is not served by the API server`).toBeDefined()
      }
      if (set.n === 2) expect(rendered.objects.filter((o) => o.kind === "ServiceMonitor")).toHaveLength(2)
      expect(rendered.objects.find((o) => o.kind === "CSIDriver")?.metadata.name).toBe(names(set.n).driverName)
    })

    it("a server-side dry run accepts every rendered object and stores nothing", async () => {
      for (const o of rendered.objects) {
        const path = await collectionPath(o, ns)
        if (path === undefined) continue // ServiceMonitor: no CRD on this plane
        const res = await admin.raw("POST", path, JSON.stringify(o), { query: { dryRun: "All" } })
        expect([200, 201], `dry-run create ${id(o)}: ${res.status} ${res.body}`).toContain(res.status)
        expect((await admin.raw("GET", `${path}/${o.metadata.name}`)).status, `${id(o)} stored by a dry run`).toBe(404)
      }
    })

    it("creates every rendered object (201), and the API server keeps what matters", async () => {
      for (const o of rendered.objects) {
        const path = await collectionPath(o, ns)
        if (path === undefined) continue
        const res = await admin.raw("POST", path, JSON.stringify(o))
        expect(res.status, `create ${id(o)}: ${res.body}`).toBe(201)
        created.push({ path, object: o })
      }
      expect(created).toHaveLength(rendered.objects.filter((o) => o.kind !== "ServiceMonitor").length)

      const csiDriver = await admin.get<{ spec: Record<string, unknown> }>(`/apis/storage.k8s.io/v1/csidrivers/${names(set.n).driverName}`)
      expect(csiDriver.spec).toMatchObject({
        podInfoOnMount: true,
        requiresRepublish: true,
        volumeLifecycleModes: ["Ephemeral"],
        tokenRequests: [{ audience: "", expirationSeconds: 3600 }],
        // kept by the API server (Kubernetes 1.35+), so its kubelets pass the token in secrets
        serviceAccountTokenInSecrets: true,
        fsGroupPolicy: "File"
      })
      const base = names(set.n).nameOverride
      const ds = await admin.get<{ spec: { template: { spec: { containers: ReadonlyArray<{ name: string; volumeMounts?: ReadonlyArray<{ mountPropagation?: string }> }> } } } }>(
        `/apis/apps/v1/namespaces/${ns}/daemonsets/${base}-driver`
      )
      const propagations = ds.spec.template.spec.containers.flatMap((c) => (c.volumeMounts ?? []).map((m) => m.mountPropagation)).filter((p) => p !== undefined)
      expect(propagations).toContain("Bidirectional")
      const deploy = await admin.get<{ spec: { template: { spec: { serviceAccountName: string } } } }>(`/apis/apps/v1/namespaces/${ns}/deployments/${base}-approver`)
      expect(deploy.spec.template.spec.serviceAccountName).toBe(`${base}-approver`)
    })

    if (set.n === 2) {
      /** The real authorizer's answer for a ServiceAccount of this release. */
      const may = async (
        sa: string,
        attrs: { verb: string; group: string; resource: string; subresource?: string; name?: string; namespace?: string }
      ): Promise<boolean> => {
        const review = await admin.create<{ status: { allowed: boolean } }>("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: {
            user: `system:serviceaccount:${ns}:${sa}`,
            groups: ["system:serviceaccounts", `system:serviceaccounts:${ns}`, "system:authenticated"],
            resourceAttributes: attrs
          }
        })
        return review.status.allowed
      }

      it("the created RBAC gives each ServiceAccount what it needs and nothing more", async () => {
        const driver = names(2).nameOverride
        const approver = `${driver}-approver`
        const cr = { group: "cert-manager.io", resource: "certificaterequests" }
        const cm = { group: "", resource: "configmaps", namespace: ns }
        const lease = { group: "coordination.k8s.io", resource: "leases", namespace: ns }
        const cases: ReadonlyArray<[string, Parameters<typeof may>[1], boolean]> = [
          // driver
          [driver, { ...cr, verb: "create", namespace: "sandbox" }, true],
          [driver, { ...cr, verb: "list" }, true],
          [driver, { ...cr, verb: "delete", namespace: "sandbox" }, true],
          [driver, { ...cr, verb: "update", subresource: "status", namespace: "sandbox" }, false],
          [driver, { group: "", resource: "events", verb: "create", namespace: "sandbox" }, true],
          [driver, { ...cm, verb: "watch", name: "runtime-config-map" }, true],
          [driver, { ...cm, verb: "get", name: "other" }, false],
          [driver, { group: "", resource: "secrets", verb: "get", namespace: ns }, false],
          [driver, { group: "cert-manager.io", resource: "signers", verb: "approve", name: "clusterissuers.cert-manager.io/csi-driver-spiffe-ca" }, false],
          // approver
          [approver, { ...cr, verb: "watch" }, true],
          [approver, { ...cr, verb: "get", namespace: "sandbox" }, true],
          [approver, { ...cr, verb: "update", subresource: "status", namespace: "sandbox" }, true],
          [approver, { ...cr, verb: "create", namespace: "sandbox" }, false],
          [approver, { ...cr, verb: "update", namespace: "sandbox" }, false],
          [approver, { group: "cert-manager.io", resource: "signers", verb: "approve", name: "clusterissuers.cert-manager.io/csi-driver-spiffe-ca" }, true],
          [approver, { group: "cert-manager.io", resource: "signers", verb: "approve", name: "clusterissuers.cert-manager.io/another-ca" }, false],
          [approver, { ...lease, verb: "update", name: names(2).driverName }, true],
          [approver, { ...lease, verb: "create" }, true],
          [approver, { ...lease, namespace: "kube-system", verb: "update" }, false],
          [approver, { ...cm, verb: "list", name: "runtime-config-map" }, true],
          [approver, { ...cm, verb: "get", name: "other" }, false],
          [approver, { group: "", resource: "secrets", verb: "list" }, false]
        ]
        const answers = await Promise.all(cases.map(([sa, attrs]) => may(sa, attrs)))
        const wrong = cases.filter((c, i) => answers[i] !== c[2]).map(([sa, attrs, want]) => `${sa} ${JSON.stringify(attrs)}: want ${want}`)
        expect(wrong).toEqual([])
      })
    }
  })
}

// `helm uninstall` on a real node leaves no objects of ours: nothing labelled with the release, no
// CSIDriver, no driver or approver pod, the kubelet's CSINode no longer lists the driver and its
// registration socket is gone. The chart is installed again afterwards for the other spec files.
import { existsSync, readdirSync } from "node:fs"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { poll } from "../e2e/issuers.ts"
import { installChart, RELEASE, RELEASE_NAMESPACE } from "../harness/node.ts"
import { nodeSuiteValues } from "../harness/nodeGlobalSetup.ts"
import { DRIVER, helm, k, kubectl, node } from "./support.ts"

const KINDS = [
  "daemonsets.apps", "deployments.apps", "replicasets.apps", "pods", "services", "serviceaccounts", "configmaps", "secrets",
  "roles.rbac.authorization.k8s.io", "rolebindings.rbac.authorization.k8s.io",
  "clusterroles.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io",
  "csidrivers.storage.k8s.io", "poddisruptionbudgets.policy"
].join(",")

describe("helm uninstall on a real node", () => {
  afterAll(async () => {
    // the other spec files of the run expect the chart
    await installChart({ ...node, helm: (args) => helm(args) }, { caBundle: true, extra: nodeSuiteValues })
  })

  it("leaves no objects of ours, and the kubelet forgets the driver", async () => {
    const before = await k(["get", KINDS, "-A", "-l", `app.kubernetes.io/instance=${RELEASE}`, "-o", "name"])
    expect(before).toContain("daemonset.apps/cert-manager-csi-driver-spiffe-driver")
    const r = await helm(["uninstall", "-n", RELEASE_NAMESPACE, RELEASE, "--wait", "--timeout=3m"])
    expect(r.code, r.stderr).toBe(0)
    await kubectl(["wait", "-n", RELEASE_NAMESPACE, "--for=delete", "pod", "-l", "app.kubernetes.io/instance=" + RELEASE, "--timeout=120s"])
    expect((await k(["get", KINDS, "-A", "-l", `app.kubernetes.io/instance=${RELEASE}`, "-o", "name"])).trim()).toBe("")
    expect((await kubectl(["get", "csidriver", DRIVER])).code).not.toBe(0)
    expect((await k(["get", "pods", "-n", RELEASE_NAMESPACE, "-o", "name"])).split("\n").filter((l) => l.includes("csi-driver-spiffe"))).toEqual([])
    // the kubelet's registration watcher drops the plugin once its socket is gone
    await poll(
      "the CSINode to list no driver",
      async () => ((await k(["get", "csinode", node.nodeName, "-o", "jsonpath={.spec.drivers[*].name}"])).trim() === "" ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 1_000 }
    )
    const registry = join(node.kubeletRootDir, "plugins_registry")
    expect(existsSync(registry) ? readdirSync(registry) : []).toEqual([])
  })
})

import { defineConfig } from "vitest/config"

// Three projects: `unit` (no Go, no control plane; mount tests skip themselves when not root),
// `e2e` (the real control plane built from upstream sources, a kubelet stand-in; see test/harness)
// and `node` (a real kubelet and containerd with our chart installed by helm; test/harness/node.ts).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts", "test/integration/**/*.test.ts"],
          testTimeout: 60_000
        }
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          // One real control plane (etcd, kube-apiserver, cert-manager) for the whole e2e run.
          globalSetup: ["test/harness/globalSetup.ts"],
          testTimeout: 600_000,
          hookTimeout: 3_600_000,
          fileParallelism: false
        }
      },
      {
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          // One real node (kubelet, containerd, our chart installed by helm) for the whole run.
          globalSetup: ["test/harness/nodeGlobalSetup.ts"],
          testTimeout: 600_000,
          hookTimeout: 3_600_000,
          fileParallelism: false
        }
      }
    ]
  }
})

/**
 * The benchmark's handling of the Go original (scripts/bench/stack.ts), which cannot run here (the
 * original is never built or downloaded): its binaries come from two environment variables, its
 * driver runs in `/` with `--data-root` relative to `/` (csi-lib's filesystem storage opens it
 * through a file system rooted there), and its Identity.Probe answers with `ready` unset, which
 * the CSI spec defines as ready. Probe is answered by a real grpc-js server on a Unix socket, so
 * the test decodes the reply exactly as the benchmark does.
 */
import * as grpc from "@grpc/grpc-js"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, vi } from "vitest"
import { csiConnect, driverArgs, goImpl, ours, probeReady } from "../../../scripts/bench/stack.ts"
import { loadCsiServices } from "../../../src/csi/CsiProto.ts"
import type { ControlPlaneInfo } from "../../../test/harness/globalSetup.ts"

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "bench-stack-"))

afterEach(() => {
  vi.unstubAllEnvs()
})

describe("goImpl", () => {
  it("names what is missing when the binaries are not both given", () => {
    vi.stubEnv("CSI_SPIFFE_GO_DRIVER_BIN", undefined)
    vi.stubEnv("CSI_SPIFFE_GO_APPROVER_BIN", undefined)
    assert.strictEqual(goImpl(), "CSI_SPIFFE_GO_DRIVER_BIN and CSI_SPIFFE_GO_APPROVER_BIN are not set")
    vi.stubEnv("CSI_SPIFFE_GO_DRIVER_BIN", "/bin/true")
    assert.strictEqual(goImpl(), "only one of CSI_SPIFFE_GO_DRIVER_BIN and CSI_SPIFFE_GO_APPROVER_BIN is set")
  })

  it("refuses a file that is not executable", () => {
    const dir = tmp()
    const plain = path.join(dir, "not-executable")
    fs.writeFileSync(plain, "", { mode: 0o644 })
    vi.stubEnv("CSI_SPIFFE_GO_DRIVER_BIN", plain)
    vi.stubEnv("CSI_SPIFFE_GO_APPROVER_BIN", plain)
    assert.strictEqual(goImpl(), `${plain} is not an executable file`)
    fs.rmSync(dir, { recursive: true })
  })

  it("runs both given binaries, with no leading arguments, in /", () => {
    const dir = tmp()
    const [d, a] = [path.join(dir, "driver"), path.join(dir, "approver")]
    for (const f of [d, a]) fs.writeFileSync(f, "", { mode: 0o755 })
    vi.stubEnv("CSI_SPIFFE_GO_DRIVER_BIN", d)
    vi.stubEnv("CSI_SPIFFE_GO_APPROVER_BIN", a)
    assert.deepStrictEqual(goImpl(), { name: "go", driver: { command: d, args: [] }, approver: { command: a, args: [] }, cwd: "/" })
    fs.rmSync(dir, { recursive: true })
  })
})

describe("driverArgs", () => {
  const plane = {
    users: { driver: { username: "driver", token: "t", kubeconfigPath: "/plane/driver.kubeconfig" } },
    issuer: { name: "ca", kind: "ClusterIssuer", group: "cert-manager.io" }
  } as unknown as ControlPlaneInfo
  const flags = { plane, nodeId: "n1", socket: "/run/bench/csi.sock", dataRoot: "/var/tmp/bench/data", duration: "1h", kubeletRoot: "/var/tmp/bench/kubelet" }
  const go = { name: "go", driver: { command: "/go/driver", args: [] }, approver: { command: "/go/approver", args: [] }, cwd: "/" } as const
  const flag = (args: ReadonlyArray<string>, name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)

  it("gives the Go driver its data root relative to its working directory /", () => {
    const args = driverArgs(go, flags)
    assert.strictEqual(flag(args, "data-root"), "var/tmp/bench/data")
    assert.strictEqual(path.resolve(go.cwd, flag(args, "data-root")!), flags.dataRoot)
    // The original has no --kubelet-root-dir, and an unknown flag would stop it.
    assert.isUndefined(flag(args, "kubelet-root-dir"))
    assert.strictEqual(flag(args, "kubeconfig"), "/plane/driver.kubeconfig")
    assert.strictEqual(flag(args, "endpoint"), "unix:///run/bench/csi.sock")
  })

  it("gives ours the absolute data root and the kubelet root", () => {
    const args = driverArgs(ours, flags)
    assert.strictEqual(flag(args, "data-root"), flags.dataRoot)
    assert.strictEqual(flag(args, "kubelet-root-dir"), flags.kubeletRoot)
    assert.include(args, "--plugin-registration=false")
  })
})

describe("probeReady", () => {
  /** A real Identity server whose Probe answers `reply`; the benchmark's client asks it. */
  const probeAgainst = async (reply: object): Promise<boolean> => {
    const services = Effect.runSync(loadCsiServices)
    const dir = tmp()
    const socket = path.join(dir, "csi.sock")
    const server = new grpc.Server()
    server.addService(services.Identity.service, {
      Probe: (_call: unknown, callback: grpc.sendUnaryData<object>) => callback(null, reply)
    })
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e === null ? resolve() : reject(e)))
    )
    const conn = csiConnect(socket)
    try {
      return await probeReady(conn, 10_000)
    } finally {
      conn.close()
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()))
      fs.rmSync(dir, { recursive: true })
    }
  }

  it("takes a Probe reply without ready as ready (the Go original's answer)", async () => {
    assert.isTrue(await probeAgainst({}))
  })

  it("takes ready=false as not ready and ready=true as ready (ours)", async () => {
    assert.isFalse(await probeAgainst({ ready: { value: false } }))
    assert.isTrue(await probeAgainst({ ready: { value: true } }))
  })
})

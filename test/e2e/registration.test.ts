/**
 * Plugin registration by the driver process (no node-driver-registrar), driven the way the kubelet's
 * plugin watcher drives it: find `<kubelet-root-dir>/plugins_registry/<driver>-reg.sock`, call
 * GetInfo, dial the CSI endpoint it names and ask NodeGetInfo (what the kubelet's CSI handler does to
 * register a driver), then report with NotifyRegistrationStatus. The real kubelet doing the same is
 * the real-node suite's job; this file pins the contract on the driver binary with its real flags.
 */
import * as grpc from "@grpc/grpc-js"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { loadCsiServices, loadRegistrationService } from "../../src/csi/CsiProto.ts"
import { freePort } from "../harness/plane.ts"
import { waitFor } from "../harness/process.ts"
import { NODE, type Stack, startStack } from "./stack.ts"

const plane = inject("controlPlane")
const DRIVER = "spiffe.csi.cert-manager.io"
const KUBELET_ERROR = "RegisterPlugin error -- plugin registration failed with err: error updating CSINode object"

const unary = (client: grpc.Client, method: string, request: object): Promise<unknown> =>
  new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (r: object, o: object, cb: (e: grpc.ServiceError | null, v?: unknown) => void) => void>)[method]!
    fn.call(client, request, { deadline: Date.now() + 10_000 }, (e, v) => (e === null ? resolve(v) : reject(e)))
  })

/** One kubelet-watcher conversation on the registration socket; the channel is closed afterwards. */
const withRegistration = async <A>(socket: string, f: (client: grpc.Client) => Promise<A>): Promise<A> => {
  const Registration = Effect.runSync(loadRegistrationService)
  const client = new Registration(`unix://${socket}`, grpc.credentials.createInsecure())
  try {
    return await f(client)
  } finally {
    client.close()
  }
}

const isSocket = (p: string) => fs.existsSync(p) && fs.statSync(p).isSocket()

/** The driver's first log line containing `text`, once its stdout has reached the log file. */
const logLine = (stack: Stack, text: string) =>
  waitFor(`the driver to log ${JSON.stringify(text)}`, async () => fs.readFileSync(stack.driver.logFile, "utf8").split("\n").find((l) => l.includes(text)), { timeoutMs: 10_000, intervalMs: 50 })

describe("the driver registers itself with the kubelet", () => {
  let stack: Stack
  let healthPort: number
  let socket: string
  let kubeletRoot: string
  const readyz = async () => {
    const r = await fetch(`http://127.0.0.1:${healthPort}/readyz`)
    return { status: r.status, body: await r.text() }
  }

  beforeAll(async () => {
    healthPort = await freePort()
    // The stack's own kubelet root is too deep for a unix socket path (107 bytes); this file
    // publishes nothing, so a short one of its own does.
    kubeletRoot = fs.mkdtempSync("/tmp/reg-")
    stack = await startStack(plane, {
      name: "registration",
      approver: false,
      driverArgs: [`--metrics-bind-address=127.0.0.1:${healthPort}`, "--plugin-registration=true", `--kubelet-root-dir=${kubeletRoot}`]
    })
    socket = path.join(kubeletRoot, "plugins_registry", `${DRIVER}-reg.sock`)
    // The CSI socket is up when startStack returns; the registration socket follows it.
    await waitFor("the registration socket", async () => (isSocket(socket) ? true : undefined), { timeoutMs: 10_000, intervalMs: 50, proc: stack.driver })
  })
  afterAll(async () => {
    await stack?.stop()
    fs.rmSync(kubeletRoot, { recursive: true, force: true })
  })

  it("GetInfo names the CSI socket, which answers NodeGetInfo as the kubelet's CSI handler asks it", async () => {
    const info = await withRegistration(socket, (c) => unary(c, "GetInfo", {}))
    // No --kubelet-registration-path: the --endpoint socket's own path (the driver runs on the host here).
    expect(info).toEqual({ type: "CSIPlugin", name: DRIVER, endpoint: stack.socket, supported_versions: ["1.0.0"] })
    const { Node } = Effect.runSync(loadCsiServices)
    const node = new Node(`unix://${(info as { endpoint: string }).endpoint}`, grpc.credentials.createInsecure())
    try {
      expect(await unary(node, "NodeGetInfo", {})).toMatchObject({ node_id: NODE })
    } finally {
      node.close()
    }
    expect(fs.statSync(socket).mode & 0o777).toBe(0o600)
  })

  it("/readyz waits for the kubelet's report, is ready on success and names the kubelet's error on failure", async () => {
    const waiting = await waitFor("the driver's /readyz to wait for registration only", async () => {
      const r = await readyz()
      return r.body.includes("waiting for the kubelet") ? r : undefined
    }, { timeoutMs: 30_000, proc: stack.driver })
    expect(waiting.status).toBe(503)

    expect(await withRegistration(socket, (c) => unary(c, "NotifyRegistrationStatus", { plugin_registered: true, error: "" }))).toEqual({})
    expect(await readyz()).toEqual({ status: 200, body: "ok\n" })
    await logLine(stack, "registered with the kubelet")

    await withRegistration(socket, (c) => unary(c, "NotifyRegistrationStatus", { plugin_registered: false, error: KUBELET_ERROR }))
    expect(await readyz()).toEqual({ status: 503, body: `not ready: the kubelet could not register the plugin: ${KUBELET_ERROR}\n` })
    expect(await logLine(stack, "the kubelet could not register the plugin")).toContain(KUBELET_ERROR)
    // Withdrawn, so that the next offer (after the 10 s back-off) is registered afresh.
    await waitFor("the failed registration socket to be withdrawn", async () => (isSocket(socket) ? undefined : true), { timeoutMs: 10_000, intervalMs: 50, proc: stack.driver })
  })

  it("a SIGKILLed driver's stale socket is replaced by the next driver; SIGTERM removes it", async () => {
    const exited = () => waitFor("the driver to exit", async () => (stack.driver.exited() === undefined ? undefined : true), { timeoutMs: 10_000, intervalMs: 50 })
    await waitFor("the registration socket", async () => (isSocket(socket) ? true : undefined), { timeoutMs: 20_000, intervalMs: 50, proc: stack.driver })
    process.kill(stack.driver.pid, "SIGKILL")
    await exited()
    expect(isSocket(socket)).toBe(true)

    await stack.restartDriver("SIGTERM")
    await waitFor("the registration socket", async () => (isSocket(socket) ? true : undefined), { timeoutMs: 10_000, intervalMs: 50, proc: stack.driver })
    await logLine(stack, "removed a stale plugin registration socket")
    expect(await withRegistration(socket, (c) => unary(c, "GetInfo", {}))).toMatchObject({ name: DRIVER })

    process.kill(stack.driver.pid, "SIGTERM")
    await exited()
    expect(fs.existsSync(socket)).toBe(false)
    expect(fs.existsSync(stack.socket)).toBe(false)
  })
})

// The SPIFFE Workload API on a real node (1-minute certificates): in containers of the app image,
// go-spiffe's checker (scripts/upstream/spiffe-checker) dials
// unix:///var/run/secrets/spiffe.io/spiffe.sock, the socket the driver serves inside each volume.
// workloadapi.NewX509Source gets the pod's SVID and, after a renewal, the new serial, while one raw
// FetchX509SVID stream carries both (no reconnect); two pods do spiffetls mTLS authorizing each
// other's IDs and a third pod, of another ServiceAccount, is refused; a call without the
// workload.spiffe.io header gets InvalidArgument; after the driver pod is deleted, the DaemonSet's
// new pod serves the socket again and a source started before the restart keeps getting renewals.
// Waits are on the checkers' output lines.
import { spawn, type ChildProcess } from "node:child_process"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { deleteNamespace, env, exec, k, leaf, readInPod, startPod, TRUST_DOMAIN, workloadNamespace } from "./support.ts"

const NS = "node-workload-api"
const SOCKET = "unix:///var/run/secrets/spiffe.io/spiffe.sock"
const PODS = [
  { name: "wl-server", sa: "wl-server" },
  { name: "wl-client", sa: "wl-client" },
  { name: "wl-stranger", sa: "wl-stranger" }
] as const
const idOf = (sa: string) => `spiffe://${TRUST_DOMAIN}/ns/${NS}/sa/${sa}`
// A 1-minute certificate renews at ~2/3 of its life (±5 %): one renewal fits well inside 2 minutes.
const RENEWAL_MS = 150_000

interface Checker {
  readonly child: ChildProcess
  readonly lines: Array<string>
  /** Resolves once a line matches (checked on every new line); rejects if the checker exits first. */
  readonly line: (match: RegExp | ((line: string) => boolean), what: string) => Promise<string>
  readonly exit: Promise<number | null>
}

/** `spiffe-checker <args>` inside the pod's container, its stdout read line by line. */
const checker = (pod: string, args: ReadonlyArray<string>): Checker => {
  const child = spawn("kubectl", ["exec", "-n", NS, pod, "--", "spiffe-checker", ...args], { env, stdio: ["ignore", "pipe", "pipe"] })
  const lines: Array<string> = []
  const waiters: Array<() => void> = []
  let partial = ""
  child.stdout!.on("data", (c: Buffer) => {
    const parts = (partial + c.toString("utf8")).split("\n")
    partial = parts.pop() ?? ""
    lines.push(...parts)
    for (const w of [...waiters]) w()
  })
  child.stderr!.on("data", (c: Buffer) => lines.push(`STDERR ${c.toString("utf8").trim()}`))
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const line = (match: RegExp | ((line: string) => boolean), what: string) =>
    new Promise<string>((resolve, reject) => {
      const re = { test: typeof match === "function" ? match : (l: string) => match.test(l) }
      const timer = setTimeout(() => reject(new Error(`${pod}: timed out waiting for ${what}; lines:\n${lines.join("\n")}`)), RENEWAL_MS)
      const check = () => {
        const found = lines.find((l) => re.test(l))
        if (found === undefined) return
        clearTimeout(timer)
        waiters.splice(waiters.indexOf(check), 1)
        resolve(found)
      }
      waiters.push(check)
      void exit.then(() => {
        clearTimeout(timer)
        if (lines.some((l) => re.test(l))) check()
        else reject(new Error(`${pod}: checker exited before ${what}; lines:\n${lines.join("\n")}`))
      })
      check()
    })
  return { child, lines, line, exit }
}

const serialIn = (line: string) => /serial=([0-9a-f]+)/.exec(line)?.[1]
const podSerial = async (pod: string) => leaf(await readInPod(NS, pod, "tls.crt")).serialNumber.replace(/^0+/, "").toLowerCase()

describe("the SPIFFE Workload API on a real node", () => {
  const running: Array<Checker> = []
  beforeAll(async () => {
    for (const p of PODS) await workloadNamespace(NS, p.sa)
    await Promise.all(PODS.map((p) => startPod({ ns: NS, name: p.name, sa: p.sa })))
  })
  afterAll(async () => {
    for (const c of running) c.child.kill("SIGKILL")
    await deleteNamespace(NS)
  })

  it("the socket is in the volume next to the files", async () => {
    const r = await exec(NS, "wl-server", ["sh", "-c", "ls -l /var/run/secrets/spiffe.io/ && test -S /var/run/secrets/spiffe.io/spiffe.sock"])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^s.*spiffe\.sock$/m)
  })

  it("NewX509Source gets the SVID and, after a renewal, the new serial; one FetchX509SVID stream carries both", async () => {
    const source = checker("wl-server", ["x509source", "--socket", SOCKET, "--updates", "1", "--timeout", "150s"])
    const stream = checker("wl-server", ["x509stream", "--socket", SOCKET, "--updates", "1", "--timeout", "150s"])
    running.push(source, stream)
    const first = await source.line(/^SVID /, "the first SVID")
    expect(first).toContain(`id=${idOf("wl-server")} `)
    const firstSerial = serialIn(first)
    await stream.line(/^MESSAGE 0 /, "the stream's first message")
    const update = await source.line(/^UPDATE 1 /, "the renewal")
    expect(update).toContain("kind=svid")
    expect(update).toContain(`id=${idOf("wl-server")} `)
    expect(serialIn(update)).not.toBe(firstSerial)
    // Pushed as the renewal wrote the files (the next renewal is ~40 s away).
    expect(await podSerial("wl-server")).toBe(serialIn(update))
    const message = await stream.line(/^MESSAGE 1 /, "the stream's renewal message")
    expect(serialIn(message)).toBe(serialIn(update))
    expect(await source.exit, source.lines.join("\n")).toBe(0)
    expect(await stream.exit, stream.lines.join("\n")).toBe(0)
    expect(stream.lines).toContain("OK x509stream: every message on one stream")
  }, RENEWAL_MS + 60_000)

  it("a call without the workload.spiffe.io header gets InvalidArgument", async () => {
    const r = await exec(NS, "wl-client", ["spiffe-checker", "noheader", "--socket", SOCKET])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toContain("OK noheader: InvalidArgument")
  })

  it("spiffetls: server and client authorize each other's IDs; a pod of another ServiceAccount is refused", async () => {
    const ip = (await k(["get", "pod", "-n", NS, "wl-server", "-o", "jsonpath={.status.podIP}"])).trim()
    expect(ip).not.toBe("")
    const server = checker("wl-server", ["mtls-server", "--socket", SOCKET, "--listen", ":8443", "--authorize-id", idOf("wl-client"), "--timeout", "120s"])
    running.push(server)
    await server.line(/^LISTENING /, "the server listening")

    const good = await exec(NS, "wl-client", ["spiffe-checker", "mtls-client", "--socket", SOCKET, "--connect", `${ip}:8443`, "--authorize-id", idOf("wl-server")])
    expect(good.code, good.stdout + good.stderr).toBe(0)
    expect(good.stdout).toContain(`OK mtls-client: server ${idOf("wl-server")}`)
    await server.line(new RegExp(`^SERVED ${idOf("wl-client")}$`), "the client served")

    const refused = await exec(NS, "wl-stranger", ["spiffe-checker", "mtls-client", "--socket", SOCKET, "--connect", `${ip}:8443`, "--authorize-id", idOf("wl-server")])
    expect(refused.code, refused.stdout + refused.stderr).toBe(1)
    await server.line(/^REFUSED /, "the stranger refused")
    expect(server.lines.filter((l) => l.startsWith("SERVED "))).toEqual([`SERVED ${idOf("wl-client")}`])
  })

  it("a restarted driver serves the socket again: a NewX509Source started before keeps getting renewals", async () => {
    const source = checker("wl-client", ["x509source", "--socket", SOCKET, "--updates", "20", "--timeout", "280s"])
    running.push(source)
    await source.line(/^SVID /, "the first SVID")
    const driver = (await k(["get", "pods", "-n", "cert-manager", "-l", "app=cert-manager-csi-driver-spiffe", "-o", "jsonpath={.items[0].metadata.name}"])).trim()
    await k(["delete", "pod", "-n", "cert-manager", driver, "--wait=true", "--timeout=120s"])
    await k(["rollout", "status", "-n", "cert-manager", "daemonset/cert-manager-csi-driver-spiffe-driver", "--timeout=180s"])
    // A new client on the new driver's socket gets the SVID at once.
    const fresh = await exec(NS, "wl-client", ["spiffe-checker", "x509stream", "--socket", SOCKET, "--updates", "0", "--timeout", "60s"])
    expect(fresh.code, fresh.stdout + fresh.stderr).toBe(0)
    // The source started before the restart reconnects by itself and sees a renewal made after it.
    const before = new Set(source.lines.map(serialIn).filter((x) => x !== undefined))
    const renewed = await source.line((l) => l.startsWith("UPDATE ") && !before.has(serialIn(l) ?? ""), "a renewal after the restart")
    expect(renewed).toContain(`id=${idOf("wl-client")} `)
  }, 300_000)
})

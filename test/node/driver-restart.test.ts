// `kubectl delete pod` of our driver's DaemonSet pod while volumes are published (1-minute
// certificates): the DaemonSet's new pod takes the volumes over and keeps renewing them, and a
// reader inside each container, reading tls.crt and tls.key every 100 ms from before the delete
// until two renewals after it, never sees a missing or partial file.
import { spawn, type ChildProcess } from "node:child_process"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { deleteNamespace, env, k, keyMatches, leaf, readInPod, startPod, workloadNamespace } from "./support.ts"

const NS = "node-driver-restart"
const SA = "restart-app"
const PODS = ["renew-a", "renew-b"]
const RENEWALS_AFTER_RESTART = 2
// 1-minute certificates renew at ~2/3 of their life: two renewals fit well inside 4 minutes
const TIMEOUT_MS = 240_000

// Runs in the container (busybox sh): prints MISSING/PARTIAL on a bad read and CHANGED <md5> when
// the certificate changes. The files are read whole (cat), as an application would.
const READER = `d=/var/run/secrets/spiffe.io; last=""
while true; do
  c=$(cat $d/tls.crt 2>/dev/null) || { echo "MISSING tls.crt $(date +%T)"; c=""; }
  k=$(cat $d/tls.key 2>/dev/null) || { echo "MISSING tls.key $(date +%T)"; k=""; }
  case "$c" in *"-----END CERTIFICATE-----"*) ;; *) echo "PARTIAL tls.crt $(date +%T)";; esac
  case "$k" in *"-----END PRIVATE KEY-----"*) ;; *) echo "PARTIAL tls.key $(date +%T)";; esac
  h=$(echo "$c" | md5sum | cut -c1-32)
  [ "$h" != "$last" ] && { echo "CHANGED $h $(date +%T)"; last=$h; }
  usleep 100000
done`

interface Reader {
  readonly child: ChildProcess
  readonly lines: Array<string>
  /** resolves when `pred` holds for the lines seen so far (checked on every new line) */
  readonly until: (pred: (lines: ReadonlyArray<string>) => boolean, what: string) => Promise<void>
}

const startReader = (pod: string): Reader => {
  const child = spawn("kubectl", ["exec", "-n", NS, pod, "--", "sh", "-c", READER], { env, stdio: ["ignore", "pipe", "pipe"] })
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
  const until = (pred: (l: ReadonlyArray<string>) => boolean, what: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${pod}: timed out waiting for ${what}; lines:\n${lines.join("\n")}`)), TIMEOUT_MS)
      const check = () => {
        if (pred(lines)) {
          clearTimeout(timer)
          waiters.splice(waiters.indexOf(check), 1)
          resolve()
        }
      }
      waiters.push(check)
      child.once("exit", () => {
        clearTimeout(timer)
        reject(new Error(`${pod}: reader exited; lines:\n${lines.join("\n")}`))
      })
      check()
    })
  return { child, lines, until }
}

const changes = (lines: ReadonlyArray<string>) => lines.filter((l) => l.startsWith("CHANGED")).length

describe("driver pod restart on a real node", () => {
  const readers: Array<Reader> = []
  beforeAll(async () => {
    await workloadNamespace(NS, SA)
    await Promise.all(PODS.map((name) => startPod({ ns: NS, name, sa: SA })))
  })
  afterAll(async () => {
    for (const r of readers) r.child.kill("SIGKILL")
    await deleteNamespace(NS)
  })

  it("the DaemonSet's new pod keeps renewing the published volumes; no reader sees a missing or partial file", async () => {
    for (const p of PODS) readers.push(startReader(p))
    await Promise.all(readers.map((r) => r.until((l) => changes(l) >= 1, "the first read")))
    const oldDriver = (await k(["get", "pods", "-n", "cert-manager", "-l", "app=cert-manager-csi-driver-spiffe", "-o", "jsonpath={.items[0].metadata.name}"])).trim()
    const restartedAt = Date.now()
    await k(["delete", "pod", "-n", "cert-manager", oldDriver, "--wait=true", "--timeout=120s"])
    await k(["rollout", "status", "-n", "cert-manager", "daemonset/cert-manager-csi-driver-spiffe-driver", "--timeout=180s"])
    const newDriver = (await k(["get", "pods", "-n", "cert-manager", "-l", "app=cert-manager-csi-driver-spiffe", "-o", "jsonpath={.items[0].metadata.name}"])).trim()
    expect(newDriver).not.toBe(oldDriver)
    const base = readers.map((r) => changes(r.lines))
    await Promise.all(readers.map((r, i) => r.until((l) => changes(l) >= base[i]! + RENEWALS_AFTER_RESTART, `${RENEWALS_AFTER_RESTART} renewals after the restart`)))
    for (const r of readers) {
      const bad = r.lines.filter((l) => !l.startsWith("CHANGED"))
      expect(bad, bad.join("\n")).toEqual([])
    }
    for (const p of PODS) {
      const crt = await readInPod(NS, p, "tls.crt")
      const key = await readInPod(NS, p, "tls.key")
      // renewed by the new driver pod: issued after the restart, and still a matching pair
      expect(new Date(leaf(crt).validFrom).getTime()).toBeGreaterThan(restartedAt - 60_000)
      expect(keyMatches(crt, key) || keyMatches(await readInPod(NS, p, "tls.crt"), await readInPod(NS, p, "tls.key"))).toBe(true)
    }
  })
})

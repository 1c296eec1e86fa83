/**
 * Faults on a real plane of its own (etcd, kube-apiserver, cert-manager), with our driver and
 * approver as host processes and the kubelet stand-in: 20 volumes on 1-minute certificates while
 *   (a) the API server is stopped for 2 minutes,
 *   (b) cert-manager (controller and webhook) is stopped for 2 minutes,
 *   (c) the driver is SIGKILLed and restarted,
 *   (d) the driver's tmpfs is full for a minute.
 * A reader checks every volume's file pair every 250 ms throughout (the chain parses, the key is the
 * leaf's); the kubelet stand-in republishes every volume with a fresh token every 30 s, as a kubelet
 * does for a CSIDriver with requiresRepublish. After each recovery every volume must hold a
 * certificate that is not expired within 60 s; the time until every volume holds one issued after
 * the recovery is printed per fault. The driver's and the approver's connection pools are refreshed
 * every 30 s (`--kube-client-pool-refresh`), so the run crosses many refreshes with watches open.
 *
 * The plane is private to this file because its processes are stopped and started.
 */
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { toInfo } from "../harness/globalSetup.ts"
import type { Workload } from "../harness/kubelet.ts"
import { type ControlPlane, startControlPlane } from "../harness/plane.ts"
import { poll } from "./issuers.ts"
import { type Stack, startStack } from "./stack.ts"

const VOLUMES = 20
const FAULT_MS = 120_000
const TMPFS_FULL_MS = 60_000
/** Every volume must hold a certificate that is not expired this long after a recovery. */
const VALID_WITHIN_MS = 60_000
/** How long the suite waits, after a recovery, for every volume to hold a certificate issued since. */
const RENEWED_WITHIN_MS = 180_000
const REPUBLISH_EVERY_MS = 30_000
const POOL_REFRESH = "30s"

let plane: ControlPlane
let stack: Stack
const pods: Array<Workload> = []
const targets: Array<string> = []
const figures: Array<string> = []

/** Problems the reader saw: any is a failure of the suite. */
const problems: Array<string> = []
let reads = 0
let reading: Promise<void> | undefined
let republishing: Promise<void> | undefined
let running = true

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

interface Pair {
  readonly serial: string
  readonly notBefore: number
  readonly notAfter: number
}

/**
 * One consistent read of a volume: both files through the same `..data` directory (what a reader
 * that opens `..data/<name>` sees; the two user-visible links may straddle a swap), the chain
 * parsed, the key the leaf's.
 */
const readPair = (target: string): Pair => {
  const data = fs.realpathSync(path.join(target, "..data"))
  const crt = fs.readFileSync(path.join(data, "tls.crt"), "utf8")
  const key = fs.readFileSync(path.join(data, "tls.key"), "utf8")
  const leaf = new X509Certificate(crt)
  const spki = (k: ReturnType<typeof createPublicKey>) => k.export({ type: "spki", format: "der" }).toString("hex")
  if (spki(leaf.publicKey) !== spki(createPublicKey(createPrivateKey(key)))) throw new Error("the key is not the leaf's")
  // The user-visible names exist and point into the live directory.
  for (const name of ["tls.crt", "tls.key"]) {
    if (!fs.existsSync(path.join(target, name))) throw new Error(`${name} is missing`)
  }
  return { serial: leaf.serialNumber, notBefore: Date.parse(leaf.validFrom), notAfter: Date.parse(leaf.validTo) }
}

const latest: Array<Pair | undefined> = []

const reader = async () => {
  while (running) {
    for (const [i, target] of targets.entries()) {
      try {
        latest[i] = readPair(target)
        reads += 1
      } catch (e) {
        problems.push(`${new Date().toISOString()} volume ${i}: ${e instanceof Error ? e.message : String(e)}`)
      }
    }
    await sleep(250)
  }
}

/** The kubelet's periodic republish with fresh tokens; failures (API down, driver down) are the kubelet's to retry. */
const republisher = async () => {
  while (running) {
    await sleep(REPUBLISH_EVERY_MS)
    if (!running) return
    await Promise.all(pods.map((p) => stack.publish(p).catch(() => undefined)))
  }
}

/** Waits after a recovery at `at`: every volume valid within 60 s, then every volume renewed since `at`. */
const afterRecovery = async (fault: string, at: number) => {
  await poll(`every volume holding a certificate that is not expired after ${fault}`, async () => {
    const now = Date.now()
    return latest.every((p) => p !== undefined && p.notAfter > now) ? true : undefined
  }, { timeoutMs: VALID_WITHIN_MS, intervalMs: 250 })
  const valid = Date.now() - at
  await poll(`every volume renewed after ${fault}`, async () => {
    const now = Date.now()
    return latest.every((p) => p !== undefined && p.notBefore >= Math.floor(at / 1000) * 1000 - 1_000 && p.notAfter > now) ? true : undefined
  }, { timeoutMs: RENEWED_WITHIN_MS, intervalMs: 250 })
  const renewed = Date.now() - at
  const line = `${fault}: every volume valid ${(valid / 1000).toFixed(1)} s and every volume renewed ${(renewed / 1000).toFixed(1)} s after recovery`
  figures.push(line)
  console.log(`[faults] ${line}`)
}

beforeAll(async () => {
  plane = await startControlPlane({ log: (m) => process.stderr.write(`[faults plane] ${m}\n`) })
  stack = await startStack(toInfo(plane), {
    name: "faults",
    duration: "1m",
    driverArgs: [`--kube-client-pool-refresh=${POOL_REFRESH}`],
    approverArgs: [`--kube-client-pool-refresh=${POOL_REFRESH}`]
  })
  for (let i = 0; i < VOLUMES; i++) pods.push(await stack.pod({ serviceAccount: "fault-app", podName: `fault-app-${i}` }))
  for (const p of pods) targets.push(await stack.publish(p))
  reading = reader()
  republishing = republisher()
})

afterAll(async () => {
  running = false
  await reading
  await republishing
  console.log(`[faults] reader: ${reads} consistent reads, ${problems.length} problems`)
  for (const f of figures) console.log(`[faults] ${f}`)
  await stack?.stop()
  await plane?.stop()
})

describe("faults on the real plane: 20 volumes, 1-minute certificates", () => {
  it("all 20 volumes are published and read consistently", async () => {
    await poll("a first read of every volume", async () => (latest.filter((p) => p !== undefined).length === VOLUMES ? true : undefined), { timeoutMs: 10_000 })
    expect(problems).toEqual([])
  })

  it("(a) the API server stopped for 2 minutes", async () => {
    await plane.stopComponent("kube-apiserver")
    await sleep(FAULT_MS)
    await plane.startComponent("kube-apiserver")
    await afterRecovery("(a) API server down 2 min", Date.now())
    expect(problems).toEqual([])
  })

  it("(b) cert-manager stopped for 2 minutes", async () => {
    await plane.stopComponent("cm-controller")
    await plane.stopComponent("cm-webhook")
    await sleep(FAULT_MS)
    await plane.startComponent("cm-webhook")
    await plane.startComponent("cm-controller")
    await afterRecovery("(b) cert-manager down 2 min", Date.now())
    expect(problems).toEqual([])
  })

  it("(c) the driver SIGKILLed and restarted", async () => {
    await stack.restartDriver("SIGKILL")
    await afterRecovery("(c) driver SIGKILL + restart", Date.now())
    expect(problems).toEqual([])
  })

  it("(d) the driver's tmpfs full for a minute", async () => {
    const filler = path.join(stack.dir, "data", "inmemfs", "..filler")
    const fd = fs.openSync(filler, "w")
    const chunk = Buffer.alloc(1 << 20)
    try {
      for (let size = chunk.length; size >= 1; size = Math.floor(size / 2)) {
        try {
          for (;;) fs.writeSync(fd, chunk, 0, size)
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e
        }
      }
    } finally {
      fs.closeSync(fd)
    }
    await sleep(TMPFS_FULL_MS)
    fs.rmSync(filler)
    await afterRecovery("(d) tmpfs full 1 min", Date.now())
    expect(problems).toEqual([])
  })

  it("crossed connection-pool refreshes in the driver and the approver while their watches were open", () => {
    const refreshes = (log: string) => fs.readFileSync(path.join(stack.dir, log), "utf8").split("\n").filter((l) => l.includes("connection pool refreshed")).length
    const driver = refreshes("driver.log")
    const approver = refreshes("approver.log")
    figures.push(`connection pool refreshes: driver ${driver}, approver ${approver}`)
    // A 30 s period over more than 6 minutes of faults: many refreshes, and renewals went on across them.
    expect(driver).toBeGreaterThanOrEqual(5)
    expect(approver).toBeGreaterThanOrEqual(5)
    expect(problems).toEqual([])
  })
})

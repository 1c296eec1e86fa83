/**
 * csi-sanity v5.6.0 (kubernetes-csi/csi-test) against our driver: the real csi-sanity binary, built
 * by scripts/upstream, talks to our driver process on its unix socket (the only endpoint: we serve no
 * Controller service). The driver runs through startStack, so it has a real API server, a real issuer
 * and our approver behind it.
 *
 * Which specs apply to a Node-only, Ephemeral-only driver (csi-test v5.6.0, pkg/sanity/*.go):
 *
 *   Run and must pass (10):
 *     Identity Service: GetPluginCapabilities, Probe, GetPluginInfo.
 *     Node Service: NodeGetCapabilities, NodeGetInfo;
 *       NodePublishVolume should fail when no volume id / no target path / no volume capability is
 *       provided (InvalidArgument);
 *       NodeUnpublishVolume should fail when no volume id / no target path is provided (InvalidArgument).
 *
 *   Skipped with --ginkgo.skip, and why (SKIP below, one regex per reason):
 *     [Controller Server] (Controller Service, ListSnapshots, DeleteSnapshot, CreateSnapshot,
 *       ExpandVolume, ModifyVolume): we serve no Controller service and do not advertise
 *       CONTROLLER_SERVICE; several of these specs (e.g. ValidateVolumeCapabilities without a volume
 *       id) have no capability guard and would fail with Unimplemented. Snapshots, clones and
 *       expansion are controller features of provisioned volumes, which an inline ephemeral driver
 *       does not have.
 *     [GroupController …] (group snapshots): GROUP_CONTROLLER_SERVICE not advertised.
 *     NodeStageVolume / NodeUnstageVolume: STAGE_UNSTAGE_VOLUME not advertised (kubelet never
 *       stages inline ephemeral volumes).
 *     NodeGetVolumeStats / NodeExpandVolume: GET_VOLUME_STATS / EXPAND_VOLUME not advertised.
 *     NodeUnpublishVolume should remove target path, Node Service should work, Node Service should
 *       be idempotent: the only specs with a successful NodePublishVolume. They get the volume and its
 *       volume_context from CreateVolume (a Controller RPC; v5.6.0 skips the last two by itself
 *       without CONTROLLER_SERVICE, but not the first) and publish with `readonly: false` at a target
 *       under csi-sanity's own mount directory. csi-sanity has no flag to supply a NodePublish
 *       volume_context, and our driver, like the Go original, accepts only the kubelet's inline
 *       ephemeral publish (readonly: true, csi.storage.k8s.io/ephemeral, pod info, a pod-bound token
 *       and the kubelet's own target path). The positive publish path is covered with real kubelet
 *       requests in issuance.test.ts and, here, by a real volume published before csi-sanity runs,
 *       which must come through csi-sanity intact.
 *   The skipped Node specs would also skip themselves (capability guards); the test checks that
 *   the driver indeed advertises none of the capabilities the skip list relies on. The specs of
 *   NodeGetVolumeHealth, NodeGetStorageHealth and the single-node-multi-writer publish skip
 *   themselves on capabilities we do not advertise.
 *
 * csi-sanity v5.4.0 called ControllerGetCapabilities in the Node suite's BeforeEach whether or not
 * the driver offers a Controller service (kubernetes-csi/csi-test#595, fixed by #597 in v5.6.0), so
 * a Node-only driver failed every Node spec; with v5.6.0 csi-sanity needs nothing but our socket.
 */
import * as grpc from "@grpc/grpc-js"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { loadCsiServices } from "../../src/csi/CsiProto.ts"
import { ensureUpstream } from "../harness/upstream.ts"
import { isMountPoint, readVolume, type Stack, startStack } from "./stack.ts"
import { urisOf } from "./tools.ts"

const plane = inject("controlPlane")
let stack: Stack
let sanityBin: string

/** The inapplicable specs, one alternative per reason (see the file comment). */
const SKIP: ReadonlyArray<string> = [
  String.raw`\[Controller Server\]`,
  String.raw`\[GroupController`,
  String.raw`NodeStageVolume|NodeUnstageVolume`,
  String.raw`NodeGetVolumeStats|NodeExpandVolume`,
  String.raw`NodeUnpublishVolume should remove target path`,
  String.raw`Node Service should work|Node Service should be idempotent`
]

/** Specs that must have run and passed (ginkgo's full spec text, as in the JUnit report). */
const APPLICABLE: ReadonlyArray<string> = [
  "Identity Service GetPluginCapabilities should return appropriate capabilities",
  "Identity Service Probe should return appropriate information",
  "Identity Service GetPluginInfo should return appropriate information",
  "Node Service NodeGetCapabilities should return appropriate capabilities",
  "Node Service NodeGetInfo should return appropriate values",
  "Node Service NodePublishVolume should fail when no volume id is provided",
  "Node Service NodePublishVolume should fail when no target path is provided",
  "Node Service NodePublishVolume should fail when no volume capability is provided",
  "Node Service NodeUnpublishVolume should fail when no volume id is provided",
  "Node Service NodeUnpublishVolume should fail when no target path is provided"
]

interface SanityRun {
  readonly code: number | null
  readonly output: string
  readonly junit: string
}

const runSanity = (args: ReadonlyArray<string>, timeoutMs: number): Promise<{ code: number | null; output: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(sanityBin, [...args], { stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (c: Buffer) => (output += c.toString("utf8")))
    child.stderr.on("data", (c: Buffer) => (output += c.toString("utf8")))
    const timer = setTimeout(() => {
      output += `\n[test] csi-sanity did not finish within ${timeoutMs} ms; killed\n`
      child.kill("SIGKILL")
    }, timeoutMs)
    child.on("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })

/** `Ran N of M Specs in …` and `SUCCESS! -- X Passed | Y Failed | P Pending | S Skipped` (or FAIL!). */
const parseGinkgoSummary = (output: string) => {
  const ran = /Ran (\d+) of (\d+) Specs/.exec(output)
  const counts = /(SUCCESS!|FAIL!)[^\n]*?(\d+) Passed \| (\d+) Failed(?: \| (\d+) Pending)?(?: \| (\d+) Skipped)?/.exec(output)
  if (ran === null || counts === null) return undefined
  return {
    ran: Number(ran[1]),
    total: Number(ran[2]),
    verdict: counts[1] as "SUCCESS!" | "FAIL!",
    passed: Number(counts[2]),
    failed: Number(counts[3]),
    pending: Number(counts[4] ?? 0),
    skipped: Number(counts[5] ?? 0)
  }
}

/** JUnit testcases: full spec name (without ginkgo's `[It] ` prefix) → status. */
const junitCases = (xml: string): Map<string, string> => {
  const out = new Map<string, string>()
  const unescape = (s: string) =>
    s.replace(/&quot;/g, "\"").replace(/&apos;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&")
  for (const m of xml.matchAll(/<testcase\b([^>]*)>/g)) {
    const attrs = m[1] ?? ""
    const name = /\bname="([^"]*)"/.exec(attrs)?.[1]
    const status = /\bstatus="([^"]*)"/.exec(attrs)?.[1]
    if (name !== undefined && status !== undefined) out.set(unescape(name).replace(/^\[It\]\s+/, ""), status)
  }
  return out
}

let run: SanityRun
let before: { target: string; crt: string }

beforeAll(async () => {
  const up = await ensureUpstream(["csi-sanity"], { onProgress: (l) => process.stderr.write(`${l}\n`) })
  sanityBin = up.bin("csi-sanity")
  stack = await startStack(plane, { name: "sanity" })

  // A live volume first: csi-sanity's requests (empty volume ids, unknown targets) must not touch it.
  const pod = await stack.pod({ serviceAccount: "sanity-bystander", podName: "sanity-bystander-0" })
  const target = await stack.publish(pod)
  before = { target, crt: readVolume(target).crt }

  const sanityDir = path.join(stack.dir, "sanity")
  fs.mkdirSync(sanityDir, { recursive: true })
  const junitFile = path.join(sanityDir, "junit.xml")
  const { code, output } = await runSanity([
    `--csi.endpoint=unix://${stack.socket}`,
    `--csi.mountdir=${path.join(sanityDir, "target")}`,
    `--csi.stagingdir=${path.join(sanityDir, "staging")}`,
    `--ginkgo.skip=${SKIP.join("|")}`,
    `--ginkgo.junit-report=${junitFile}`,
    "--ginkgo.v",
    "--ginkgo.no-color",
    "--ginkgo.timeout=5m"
  ], 360_000)
  fs.writeFileSync(path.join(sanityDir, "output.txt"), output)
  run = { code, output, junit: fs.existsSync(junitFile) ? fs.readFileSync(junitFile, "utf8") : "" }
})

afterAll(async () => {
  await stack?.stop()
})

describe("csi-sanity v5.6.0 against our driver", () => {
  it("runs every applicable spec and none fails", () => {
    const summary = parseGinkgoSummary(run.output)
    expect(summary, `no ginkgo summary in the csi-sanity output:\n${run.output}`).toBeDefined()
    expect({ ...summary!, exit: run.code }, run.output).toMatchObject({ verdict: "SUCCESS!", failed: 0, exit: 0 })
    expect(summary!.ran, run.output).toBeGreaterThan(0)
    expect(summary!.passed, run.output).toBe(summary!.ran)
    process.stderr.write(
      `[csi-sanity] Ran ${summary!.ran} of ${summary!.total} Specs: ${summary!.passed} Passed | ${summary!.failed} Failed | ${summary!.skipped} Skipped\n`
    )
  })

  it("the applicable specs are among those that passed: identity, node info and request validation", () => {
    const cases = junitCases(run.junit)
    expect(cases.size, `no JUnit report; output:\n${run.output}`).toBeGreaterThan(0)
    const passed = [...cases].filter(([, s]) => s === "passed").map(([n]) => n).sort()
    for (const spec of APPLICABLE) expect(passed, run.output).toContain(spec)
    // Nothing but the applicable specs ran (ginkgo marks one Controller spec "pending" upstream).
    const ran = [...cases].filter(([, s]) => s !== "skipped" && s !== "pending").map(([n]) => n)
    expect(ran.filter((n) => !APPLICABLE.includes(n)), run.output).toEqual([])
  })

  it("the driver advertises none of the capabilities the skip list relies on", async () => {
    const services = Effect.runSync(loadCsiServices)
    const unary = (ctor: grpc.ServiceClientConstructor, method: string) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const client = new ctor(`unix://${stack.socket}`, grpc.credentials.createInsecure())
        const fn = (client as unknown as Record<string, (r: object, cb: (e: grpc.ServiceError | null, v?: Record<string, unknown>) => void) => void>)[method]!
        fn.call(client, {}, (e, v) => {
          client.close()
          if (e === null) resolve(v ?? {})
          else reject(e)
        })
      })
    const plugin = (await unary(services.Identity, "GetPluginCapabilities"))["capabilities"] as Array<{ service?: { type: string } }>
    expect(plugin.map((c) => c.service?.type)).not.toContain("CONTROLLER_SERVICE")
    expect(plugin.map((c) => c.service?.type)).not.toContain("GROUP_CONTROLLER_SERVICE")
    const node = (await unary(services.Node, "NodeGetCapabilities"))["capabilities"] as Array<{ rpc?: { type: string } }>
    const rpcs = node.map((c) => c.rpc?.type)
    for (const cap of ["STAGE_UNSTAGE_VOLUME", "GET_VOLUME_STATS", "EXPAND_VOLUME"]) expect(rpcs).not.toContain(cap)
  })

  it("a volume published before csi-sanity is still mounted and intact, and nothing of csi-sanity's is left", async () => {
    expect(isMountPoint(before.target)).toBe(true)
    const after = readVolume(before.target)
    expect(after.crt).toBe(before.crt)
    expect(urisOf(after.crt)).toEqual(["spiffe://foo.bar/ns/sandbox/sa/sanity-bystander"])
    // csi-sanity's requests were all refused before any state was created: the only volume is ours.
    expect(fs.readdirSync(path.join(stack.dir, "data", "inmemfs")).filter((n) => n.startsWith("fake-vol-id"))).toEqual([])
    const sanityMounts = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(path.join(stack.dir, "sanity")))
    expect(sanityMounts).toEqual([])
  })
})

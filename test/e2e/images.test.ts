// The locally built images run in a real containerd: scripts/images/build.sh builds them (or finds
// them cached), a containerd 2.x of this test's own (scripts/upstream/build.sh's, with its runc shim;
// own root, state, sockets and shim socket directory; CRI off) imports the
// archives under the refs the pods use, and `ctr run --rm` starts containers of them through runc.
//
// The containers get their own runc root, FIFO directory and cgroup leaf, so that nothing here
// meets the containerd a node harness may run at the same time. `ctr run` sets no oom_score_adj in
// the spec, so the machine's missing CAP_SYS_RESOURCE does not matter here (the CRI plugin needs
// restrict_oom_score_adj for the same reason).
import { execFile, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { performance } from "node:perf_hooks"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { criNamespace, ensureImages, importImages, listImages, type LocalImages } from "../harness/images.ts"
import { acceptsConnections, type ManagedProcess, startProcess, waitFor } from "../harness/process.ts"
import { ensureUpstream, type UpstreamPaths } from "../harness/upstream.ts"

const run = promisify(execFile)

interface Scratch {
  readonly dir: string
  readonly address: string
  readonly proc: ManagedProcess
  /** the ctr built with this containerd */
  readonly ctr: string
}

const startContainerd = async (dir: string, upstream: UpstreamPaths): Promise<Scratch> => {
  const address = join(dir, "containerd.sock")
  mkdirSync(join(dir, "logs"), { recursive: true })
  // CRI off: this containerd serves `ctr` only, so it needs no CNI, no sandbox image and no kubelet.
  // NRI off (else it listens on /var/run/nri/nri.sock); the shims' sockets in our directory (else
  // /run/containerd/s; containerd allows at most 38 characters here).
  const config = [
    "version = 4",
    `root = "${join(dir, "root")}"`,
    `state = "${join(dir, "state")}"`,
    `disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.nri.v1.nri"]`,
    "[plugins]",
    `  [plugins."io.containerd.server.v1.grpc"]`,
    `    address = "${address}"`,
    `  [plugins."io.containerd.server.v1.ttrpc"]`,
    `    address = "${address}.ttrpc"`,
    `  [plugins."io.containerd.internal.v1.opt"]`,
    `    path = "${join(dir, "opt")}"`,
    `  [plugins."io.containerd.shim.v1.manager"]`,
    `    socket_dir = "${join(dir, "s")}"`,
    ""
  ].join("\n")
  writeFileSync(join(dir, "config.toml"), config)
  const proc = startProcess({
    name: "containerd",
    command: upstream.bin("containerd"),
    args: ["--config", join(dir, "config.toml")],
    logFile: join(dir, "logs", "containerd.log"),
    // containerd finds its shim (containerd-shim-runc-v2) on PATH: ours first, the host's runc after
    env: { ...process.env, PATH: `${dirname(upstream.bin("containerd"))}:${process.env["PATH"] ?? ""}` }
  })
  await waitFor("containerd socket", async () => ((await acceptsConnections(address)) ? true : undefined), {
    timeoutMs: 30_000,
    proc
  })
  return { dir, address, proc, ctr: upstream.bin("ctr") }
}

// Every container's id, also its cgroup leaf (checked at the end).
const ids: Array<string> = []
const runArgs = (s: Scratch, ref: string, extra: ReadonlyArray<string>, args: ReadonlyArray<string>) => {
  const id = `images-test-${randomBytes(4).toString("hex")}-${ids.length}`
  ids.push(id)
  const argv = [
    "--address", s.address, "--namespace", criNamespace,
    "run", "--rm",
    "--runc-root", join(s.dir, "runc"),
    "--fifo-dir", join(s.dir, "fifo"),
    "--cgroup", `/${id}`,
    ...extra,
    ref, id, ...args
  ]
  return { id, argv }
}

const ctrRun = async (
  s: Scratch,
  ref: string,
  args: ReadonlyArray<string>,
  extra: ReadonlyArray<string> = []
): Promise<{ readonly stdout: string; readonly stderr: string; readonly ms: number }> => {
  const { argv } = runArgs(s, ref, extra, args)
  const t0 = performance.now()
  const { stdout, stderr } = await run(s.ctr, argv, { maxBuffer: 4 * 1024 * 1024 })
  return { stdout, stderr, ms: Math.round(performance.now() - t0) }
}

/** `ctr run --rm` kept attached in the background: its exit code is the container's. */
const startDetached = (s: Scratch, ref: string) => {
  const { id, argv } = runArgs(s, ref, [], [])
  const child = spawn(s.ctr, argv, { stdio: ["ignore", "ignore", "pipe"] })
  let stderr = ""
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")))
  const exitCode = new Promise<number | null>((resolve, reject) => {
    child.once("error", reject)
    child.once("exit", (code) => resolve(code))
  })
  const ctr = (...a: ReadonlyArray<string>) => run(s.ctr, ["--address", s.address, "--namespace", criNamespace, ...a])
  // No event says "the task runs" to a plain `ctr run`: ask containerd until the task is RUNNING.
  const pid = waitFor(
    `task ${id} running`,
    async () => {
      const { stdout } = await ctr("tasks", "ls")
      const row = stdout.split("\n").map((l) => l.trim().split(/\s+/)).find((c) => c[0] === id)
      return row?.[2] === "RUNNING" ? Number(row[1]) : undefined
    },
    { timeoutMs: 30_000, intervalMs: 50 }
  )
  return {
    pid,
    exitCode: exitCode.then((c) => {
      if (c === null) throw new Error(`ctr run ${id} was killed: ${stderr}`)
      return c
    }),
    kill: async (signal: "SIGTERM" | "SIGINT") => {
      await ctr("tasks", "kill", "--signal", signal, id)
    },
    /** SIGKILL when still running (a failed test), then wait for `ctr run --rm` to end */
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        await ctr("tasks", "kill", "--signal", "SIGKILL", id).catch(() => undefined)
        await exitCode.catch(() => undefined)
      }
    }
  }
}

describe("local images in a real containerd", () => {
  let images: LocalImages
  let scratch: Scratch | undefined
  const timings: Record<string, number> = {}

  // Where containerd puts shim sockets and the NRI socket unless configured otherwise: absent
  // before, they must stay absent (checked at the end).
  const hostDirs = ["/run/containerd", "/run/nri"].filter((d) => !existsSync(d))

  beforeAll(async () => {
    const t0 = performance.now()
    images = await ensureImages({ onProgress: (l) => process.stderr.write(`${l}\n`) })
    timings["ensureImages"] = Math.round(performance.now() - t0)
    // Short path: unix socket paths are limited to 108 bytes.
    const upstream = await ensureUpstream(["containerd"], { onProgress: (l) => process.stderr.write(`${l}\n`) })
    scratch = await startContainerd(mkdtempSync(join(tmpdir(), "csi-img-")), upstream)
    const t1 = performance.now()
    await importImages({ ctr: scratch.ctr, address: scratch.address, images })
    timings["importImages"] = Math.round(performance.now() - t1)
  })

  afterAll(async () => {
    if (scratch === undefined) return
    // A test that failed half-way may leave a task running (a pause waiting for its signal): kill
    // and delete every task and container first, so that no shim, process or cgroup outlives this
    // containerd.
    const ctr = (...a: ReadonlyArray<string>) => run(scratch!.ctr, ["--address", scratch!.address, "--namespace", criNamespace, ...a])
    const tasks = (await ctr("tasks", "ls", "--quiet").catch(() => ({ stdout: "" }))).stdout.split("\n").filter((l) => l !== "")
    for (const t of tasks) {
      await ctr("tasks", "kill", "--signal", "SIGKILL", t).catch(() => undefined)
      await ctr("tasks", "delete", "--force", t).catch(() => undefined)
    }
    const containers = (await ctr("containers", "ls", "--quiet").catch(() => ({ stdout: "" }))).stdout.split("\n").filter((l) => l !== "")
    for (const c of containers) await ctr("containers", "delete", c).catch(() => undefined)
    await scratch.proc.stop()
    // containerd unmounts its snapshots when it stops; whatever is still mounted below the dir
    // (a crash) is unmounted before the dir goes.
    const mounts = readFileSync("/proc/self/mounts", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[1] ?? "")
      .filter((m) => m.startsWith(scratch!.dir))
      .sort((a, b) => b.length - a.length)
    for (const m of mounts) await run("umount", [m]).catch(() => undefined)
    rmSync(scratch.dir, { recursive: true, force: true })
    process.stderr.write(`[images.test] timings (ms): ${JSON.stringify(timings)}\n`)
  })

  it("imports each image under the ref the pods name", async () => {
    const refs = await listImages(scratch!.ctr, scratch!.address)
    expect(refs).toEqual(expect.arrayContaining([images.driver.ref, images.pause.ref, images.app.ref]))
    expect(images.pause.ref).toBe("localhost/pause:3.10-local")
    expect(images.driver.ref).toMatch(/^localhost\/csi-driver-spiffe:\d+\.\d+\.\d+/)
    expect(images.app.ref).toMatch(/^localhost\/spiffe-app:[0-9a-f]{12}$/)
  })

  it("runs csi-driver-spiffe --help in our image", async () => {
    const r = await ctrRun(scratch!, images.driver.ref, ["csi-driver-spiffe", "--help"])
    timings["driver --help (ctr run)"] = r.ms
    expect(r.stdout).toContain("Usage:")
    expect(r.stdout).toContain("csi-driver-spiffe [flags]")
  })

  it("runs csi-driver-spiffe-approver --help in our image", async () => {
    const r = await ctrRun(scratch!, images.driver.ref, ["csi-driver-spiffe-approver", "--help"])
    timings["approver --help (ctr run)"] = r.ms
    expect(r.stdout).toContain("Usage:")
    expect(r.stdout).toContain("csi-driver-spiffe-approver")
  })

  // V8 keys its code cache by the flags a process runs with: the image's warm-up (Dockerfile,
  // `dist/warm-up.mjs`) must compile each entry with the flags a start has then, or every start
  // silently compiles the whole bundle again (test/integration/compiler-tiers.test.ts follows a
  // start past the entry). Node reports what it did with each cache entry when
  // NODE_DEBUG_NATIVE=COMPILE_CACHE is set.
  it("starts each binary's entry from the compile cache built into the image", async () => {
    for (const [bin, entry] of [["csi-driver-spiffe", "csi.mjs"], ["csi-driver-spiffe-approver", "approver.mjs"], ["csi-driver-spiffe-signer", "signer.mjs"]] as const) {
      const r = await ctrRun(scratch!, images.driver.ref, ["env", "NODE_DEBUG_NATIVE=COMPILE_CACHE", bin, "--help"])
      const lines = `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => l.includes(`/app/dist/${entry}`))
      expect(lines.join("\n")).toContain(`V8 code cache for ESM file:///app/dist/${entry} was accepted`)
    }
  })

  it("has util-linux mount(8) and umount(8) and runs as the non-root user by default", async () => {
    const m = await ctrRun(scratch!, images.driver.ref, ["mount", "--version"])
    expect(m.stdout).toMatch(/^mount from util-linux \d/)
    const u = await ctrRun(scratch!, images.driver.ref, ["umount", "--version"])
    expect(u.stdout).toMatch(/^umount from util-linux \d/)
    const id = await ctrRun(scratch!, images.driver.ref, ["id", "-u"])
    expect(id.stdout.trim()).toBe("65532")
    const t = await ctrRun(scratch!, images.driver.ref, ["true"])
    timings["true (ctr run overhead)"] = t.ms
  })

  it("runs the app image's busybox userland", async () => {
    const r = await ctrRun(scratch!, images.app.ref, ["ls", "/"])
    expect(r.stdout.split("\n")).toEqual(expect.arrayContaining(["bin", "etc", "tmp"]))
    const sum = await ctrRun(scratch!, images.app.ref, ["sh", "-c", "echo -n x | sha256sum"])
    expect(sum.stdout).toContain("2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881")
  })

  it("runs the pause program, which answers its version", async () => {
    const r = await ctrRun(scratch!, images.pause.ref, ["/pause", "-v"])
    expect(r.stdout.trim()).toBe("pause 3.10-local")
  })

  it("pause reaps the orphans of a container sharing its PID namespace and exits 0 on SIGTERM", async () => {
    const pause = startDetached(scratch!, images.pause.ref)
    try {
      const pid = await pause.pid
      // In the app container `sleep` is orphaned at once (its subshell exits), so the kernel hands it
      // to the PID namespace's init: pause. When the container ends, runc kills what is left in it
      // (the namespace is not its own), and only pause can reap the dead sleep.
      const r = await ctrRun(scratch!, images.app.ref, [
        "sh", "-c", "(sleep 60 & echo $! >/tmp/orphan); sleep 0.2; grep PPid /proc/$(cat /tmp/orphan)/status"
      ], ["--with-ns", `pid:/proc/${pid}/ns/pid`])
      expect(r.stdout).toMatch(/^PPid:\s+1$/m)
      // a zombie leaves no event to wait on: look, briefly, for children of pause
      await waitFor("pause to reap the killed orphan", async () => (childrenOf(pid).length === 0 ? true : undefined), {
        timeoutMs: 10_000,
        intervalMs: 50
      })
      await pause.kill("SIGTERM")
      expect(await pause.exitCode).toBe(0)
    } finally {
      await pause.stop()
    }
  })

  it("pause exits 0 on SIGINT", async () => {
    const pause = startDetached(scratch!, images.pause.ref)
    try {
      await pause.pid
      await pause.kill("SIGINT")
      expect(await pause.exitCode).toBe(0)
    } finally {
      await pause.stop()
    }
  })

  it("leaves no cgroup of its containers behind, and no shim or NRI socket directory on the host", () => {
    const left = ids.flatMap((id) =>
      readdirSync("/sys/fs/cgroup").filter((ctl) => existsSync(join("/sys/fs/cgroup", ctl, id))).map((ctl) => `${ctl}/${id}`)
    )
    expect(ids.length).toBeGreaterThan(0)
    expect(left).toEqual([])
    expect(hostDirs.filter((d) => existsSync(d))).toEqual([])
  })
})

/** Host pids whose parent is `pid` (zombies included). */
const childrenOf = (pid: number): ReadonlyArray<number> =>
  readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .flatMap((d) => {
      try {
        // the command name may hold spaces and parentheses: the fields after the last ")" are fixed
        const stat = readFileSync(`/proc/${d}/stat`, "utf8")
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
        return ppid === pid ? [Number(d)] : []
      } catch {
        return []
      }
    })

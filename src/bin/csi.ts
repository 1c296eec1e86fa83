#!/usr/bin/env -S node --max-opt=0
/**
 * Entry point of the CSI node driver (`csi-driver-spiffe`). The composition root is imported only
 * when the driver runs: `--help`, `--version` and a bad flag never load gRPC, the Kubernetes
 * client or the X.509 code (in the bundle, a chunk of its own).
 *
 * `--max-opt=0` (V8, on this line, which the image runs; V8 reads it only at start, so it cannot
 * be set later like the flag below): the driver runs its JavaScript in V8's interpreter only, with
 * no Sparkplug, Maglev or Turbofan code. The driver waits on the API server, cert-manager and
 * the disk, not on its own JavaScript; what the compilers would buy is not seen in its latencies,
 * while their code, their working memory and the pages of the Node binary that hold them stayed
 * resident after a burst: idle with 110 volumes the driver holds 82 MiB RSS instead of 113, and
 * every latency of `npm run bench` stayed where it was or fell (bench/results/footprint.md,
 * round 4).
 *
 * V8's `--optimize-for-size` (the driver only) is set by `CsiLive.ts` once the CSI socket
 * listens, not on this line: after a burst of 110 publishes the driver idles at 113–119 MiB RSS
 * instead of 124–171 MiB, with the burst's p99 unchanged (scripts/bench-idle-rss.ts,
 * bench/results/footprint.md), and set from the start it cost 50–80 ms of start-up CPU. The
 * approver and the signer do without it: it cost the approver about half its decisions per
 * second (scripts/bench-approver-memory.ts).
 */
import { Effect, Layer } from "effect"
import type { DriverArgs } from "../config/DriverFlags.ts"
import { driverFlags, parseDriverArgs } from "../config/DriverFlags.ts"
import { version } from "../version.ts"
import { main } from "./main.ts"
import { driverStartup } from "./startup.ts"

main({
  program: "csi-driver-spiffe",
  summary: "CSI node driver that mounts a SPIFFE X.509 SVID issued by cert-manager into every pod.",
  version,
  flags: driverFlags,
  parse: (argv) => parseDriverArgs(argv, version),
  startup: (args: Extract<DriverArgs, { _tag: "Config" }>) => driverStartup(args.config),
  layer: (args: Extract<DriverArgs, { _tag: "Config" }>) =>
    Layer.unwrap(Effect.promise(() => import("./CsiLive.ts")).pipe(Effect.map((m) => m.CsiLive(args.config))))
})

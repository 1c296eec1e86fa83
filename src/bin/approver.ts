#!/usr/bin/env -S node --max-opt=2
/**
 * Entry point of the approver (`csi-driver-spiffe-approver`). The composition root is imported only
 * when the approver runs: `--help`, `--version` and a bad flag never load the Kubernetes client
 * or the X.509 code (in the bundle, a chunk of its own).
 *
 * `--max-opt=2` (V8, on this line, which the image runs; V8 reads it only at start): the approver's
 * JavaScript is compiled up to Maglev, never by Turbofan. Turbofan's code and working memory, and
 * the pages of the Node binary that hold Turbofan, stayed resident after a burst: 60 s after
 * deciding the requests of 110 publishes the approver holds 78.5 MiB RSS instead of 83.9. It costs
 * some speed the approver has to spare: on the real plane (500 requests at once) 40.6 decisions/s,
 * p99 9.8 s, against 44.8/s and 8.8 s with Turbofan; in-process about 85 % of the decisions per
 * second. Interpreter and Sparkplug only (`--max-opt=1`) held 74 MiB but fell to 35 decisions/s
 * on the plane (bench/results/footprint.md, round 4).
 */
import { Effect, Layer } from "effect"
import type { ApproverArgs } from "../config/ApproverFlags.ts"
import { approverFlags, parseApproverArgs } from "../config/ApproverFlags.ts"
import { version } from "../version.ts"
import { main } from "./main.ts"
import { approverStartup } from "./startup.ts"

main({
  program: "csi-driver-spiffe-approver",
  summary: "Approves or denies the CertificateRequests of csi-driver-spiffe, one SPIFFE identity per ServiceAccount.",
  version,
  flags: approverFlags,
  parse: parseApproverArgs,
  startup: (args: Extract<ApproverArgs, { _tag: "Settings" }>) => approverStartup(args.settings),
  layer: (args: Extract<ApproverArgs, { _tag: "Settings" }>) =>
    Layer.unwrap(Effect.promise(() => import("./ApproverLive.ts")).pipe(Effect.map((m) => m.ApproverLive(args.settings))))
})

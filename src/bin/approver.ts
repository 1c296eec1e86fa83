#!/usr/bin/env node
/**
 * Entry point of the approver (`csi-driver-spiffe-approver`). The composition root is imported only
 * when the approver runs: `--help`, `--version` and a bad flag never load the Kubernetes client
 * or the X.509 code (in the bundle, a chunk of its own). Before it is imported, the Node built-ins
 * it needs are loaded and V8's optimizing compilers (Maglev, Turbofan) are turned off
 * (`CompilerTiers.ts` says why there and not on this line).
 */
import { Effect, Layer } from "effect"
import type { ApproverArgs } from "../config/ApproverFlags.ts"
import { approverFlags, parseApproverArgs } from "../config/ApproverFlags.ts"
import { version } from "../version.ts"
import { main } from "./main.ts"
import { approverStartup } from "./startup.ts"
import * as CompilerTiers from "./CompilerTiers.ts"

main({
  program: "csi-driver-spiffe-approver",
  summary: "Approves or denies the CertificateRequests of csi-driver-spiffe, one SPIFFE identity per ServiceAccount.",
  version,
  flags: approverFlags,
  parse: parseApproverArgs,
  startup: (args: Extract<ApproverArgs, { _tag: "Settings" }>) => approverStartup(args.settings),
  layer: (args: Extract<ApproverArgs, { _tag: "Settings" }>) =>
    Layer.unwrap(Effect.promise(() => CompilerTiers.importWith(CompilerTiers.APPROVER, () => import("./ApproverLive.ts"))).pipe(Effect.map((m) => m.ApproverLive(args.settings))))
})

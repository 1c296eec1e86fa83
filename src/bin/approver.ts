#!/usr/bin/env node
/** Entry point of the approver (`csi-driver-spiffe-approver`). */
import type { ApproverArgs } from "../config/ApproverFlags.ts"
import { approverFlags, parseApproverArgs } from "../config/ApproverFlags.ts"
import { ApproverLive } from "./ApproverLive.ts"
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
  layer: (args: Extract<ApproverArgs, { _tag: "Settings" }>) => ApproverLive(args.settings)
})

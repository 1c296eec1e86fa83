#!/usr/bin/env node
/** Entry point of the approver (`csi-driver-spiffe-approver`). */
import type { ApproverArgs } from "../approver/ApproverFlags.ts"
import { approverFlags, parseApproverArgs } from "../approver/ApproverFlags.ts"
import { ApproverLive } from "../layers/ApproverLive.ts"
import { main } from "./main.ts"

main({
  program: "csi-driver-spiffe-approver",
  summary: "Approves or denies the CertificateRequests of csi-driver-spiffe, one SPIFFE identity per ServiceAccount.",
  flags: approverFlags,
  parse: parseApproverArgs,
  layer: (args: Extract<ApproverArgs, { _tag: "Settings" }>) => ApproverLive(args.settings)
})

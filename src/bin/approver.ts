#!/usr/bin/env node
/**
 * Entry point of the approver (`csi-driver-spiffe-approver`). Flags are decoded before anything
 * starts: a bad one prints one line and exits 2. Start-up failures print one line and exit 1.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Layer, Result } from "effect"
import { approverFlags, parseApproverArgs } from "../approver/ApproverFlags.ts"
import { helpText, USAGE_EXIT_CODE } from "../config/Flags.ts"
import { ApproverLive } from "../layers/ApproverLive.ts"

const args = parseApproverArgs(process.argv.slice(2))
if (Result.isFailure(args)) {
  console.error(`Error: ${args.failure}`)
  process.exit(USAGE_EXIT_CODE)
} else if (args.success._tag === "Help") {
  console.log(helpText("csi-driver-spiffe-approver", "Approves or denies the CertificateRequests of csi-driver-spiffe, one SPIFFE identity per ServiceAccount.", approverFlags))
} else {
  NodeRuntime.runMain(
    Layer.launch(ApproverLive(args.success.settings)).pipe(
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause)
          ? Effect.void
          : Effect.sync(() => {
            const e = Cause.squash(cause)
            console.error(`Error: ${e instanceof Error ? e.message : String(e)}`)
            process.exitCode = 1
          })
      )
    ),
    { disableErrorReporting: true }
  )
}

#!/usr/bin/env node
/**
 * Entry point of the CSI node driver (`csi-driver-spiffe`). Flags are decoded before anything
 * starts: a bad one prints one line and exits 2. Start-up failures print one line and exit 1.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Layer, Result } from "effect"
import { helpText, USAGE_EXIT_CODE } from "../config/Flags.ts"
import { CsiLive } from "../layers/CsiLive.ts"
import { driverFlags, parseDriverArgs } from "../services/DriverConfig.ts"
import { version } from "../version.ts"

const args = parseDriverArgs(process.argv.slice(2), version)
if (Result.isFailure(args)) {
  console.error(`Error: ${args.failure}`)
  process.exit(USAGE_EXIT_CODE)
} else if (args.success._tag === "Help") {
  console.log(helpText("csi-driver-spiffe", "CSI node driver that mounts a SPIFFE X.509 SVID issued by cert-manager into every pod.", driverFlags))
} else {
  NodeRuntime.runMain(
    Layer.launch(CsiLive(args.success.config)).pipe(
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause)
          ? Effect.void
          : Effect.sync(() => {
            console.error(`Error: ${Cause.squash(cause) instanceof Error ? (Cause.squash(cause) as Error).message : String(Cause.squash(cause))}`)
            process.exitCode = 1
          })
      )
    ),
    { disableErrorReporting: true }
  )
}

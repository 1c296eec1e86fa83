/**
 * What both entry points do: decode the command line first (a bad flag is one line on stderr and
 * exit code 2, `--help` prints the flags), then run the binary's layer until a signal, turning a
 * start-up failure into one line and exit code 1 instead of a stack trace.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Layer, Result } from "effect"
import type { FlagSpec } from "../config/Flags.ts"
import { helpText, USAGE_EXIT_CODE } from "../config/Flags.ts"

export const main = <S>(options: {
  readonly program: string
  readonly summary: string
  readonly flags: ReadonlyArray<FlagSpec>
  readonly parse: (argv: ReadonlyArray<string>) => Result.Result<{ readonly _tag: "Help" } | S, string>
  readonly layer: (settings: S) => Layer.Layer<never, unknown>
}): void => {
  const args = options.parse(process.argv.slice(2))
  if (Result.isFailure(args)) {
    console.error(`Error: ${args.failure}`)
    process.exit(USAGE_EXIT_CODE)
  }
  const parsed = args.success
  if (typeof parsed === "object" && parsed !== null && "_tag" in parsed && parsed._tag === "Help") {
    console.log(helpText(options.program, options.summary, options.flags))
    return
  }
  NodeRuntime.runMain(
    Layer.launch(options.layer(parsed as S)).pipe(
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

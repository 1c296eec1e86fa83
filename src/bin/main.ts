/**
 * What both entry points do: decode the command line first (a bad flag is one line on stderr and
 * exit code 2, `--help` prints the flags, `--version` the version), then log one start-up line
 * (version, what the binary runs against, every effective flag with secrets redacted) and run the
 * binary's layer until a signal, turning a start-up failure into one line and exit code 1 instead
 * of a stack trace.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Layer, Result } from "effect"
import type { LogFormat } from "../services/DriverConfig.ts"
import type { FlagSpec } from "../config/Flags.ts"
import { effectiveFlags, helpText, parseFlags, USAGE_EXIT_CODE } from "../config/Flags.ts"
import * as Logging from "../layers/Logging.ts"

/** What the start-up line says, besides the version and the flags. */
export interface Startup {
  readonly verbosity: number
  readonly format: LogFormat
  /** What the binary runs against: trust domain, issuer, directories… */
  readonly fields: Readonly<Record<string, unknown>>
  /** Configuration problems that do not stop the binary, each logged as an error line. */
  readonly errors?: ReadonlyArray<readonly [message: string, fields: Readonly<Record<string, unknown>>]>
}

/** The start-up log lines (the first one with every effective flag); logged before anything starts. */
export const startupLog = Effect.fn("main.startupLog")(function*(
  program: string,
  version: string,
  flags: Readonly<Record<string, unknown>>,
  startup: Startup
) {
  yield* Effect.logInfo(`starting ${program}`, { version, ...startup.fields, flags })
  for (const [message, fields] of startup.errors ?? []) yield* Effect.logError(message, fields)
})

export const main = <S>(options: {
  readonly program: string
  readonly summary: string
  readonly version: string
  readonly flags: ReadonlyArray<FlagSpec>
  readonly parse: (argv: ReadonlyArray<string>) => Result.Result<{ readonly _tag: "Help" } | S, string>
  readonly startup: (settings: S) => Startup
  readonly layer: (settings: S) => Layer.Layer<never, unknown>
}): void => {
  const argv = process.argv.slice(2)
  const raw = parseFlags(options.flags, argv)
  if (Result.isSuccess(raw) && raw.success._tag === "Values" && raw.success.values["version"] === "true") {
    console.log(`${options.program} version ${options.version}`)
    return
  }
  const args = options.parse(argv)
  if (Result.isFailure(args)) {
    console.error(`Error: ${args.failure}`)
    process.exit(USAGE_EXIT_CODE)
  }
  const parsed = args.success
  if (typeof parsed === "object" && parsed !== null && "_tag" in parsed && parsed._tag === "Help") {
    console.log(helpText(options.program, options.summary, options.flags))
    return
  }
  const settings = parsed as S
  const startup = options.startup(settings)
  const flags = Result.isSuccess(raw) && raw.success._tag === "Values" ? effectiveFlags(options.flags, raw.success) : {}
  NodeRuntime.runMain(
    startupLog(options.program, options.version, flags, startup).pipe(
      Effect.provide(Logging.layer(startup.verbosity, startup.format)),
      Effect.andThen(Layer.launch(options.layer(settings))),
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

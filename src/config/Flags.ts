/**
 * Command-line flags in the style of the Go original (spf13/pflag): `--name=value`, `--name value`,
 * `-v 2`, booleans as `--name` or `--name=true|false`. The parser only turns argv into strings by
 * flag name; each binary decodes those strings into its typed config, so every value is checked in
 * one place and a bad one becomes a one-line error and exit code 2.
 */
import { Result } from "effect"

/** `stringArray` flags may be repeated, each occurrence adding one value (pflag's `StringArray`). */
export type FlagKind = "string" | "bool" | "stringArray"

export interface FlagSpec {
  readonly name: string
  readonly short?: string
  /** Other long names for the same flag (klog's `--v` for `--log-level`). */
  readonly aliases?: ReadonlyArray<string>
  /** A credential: its value never appears in help defaults, logs or errors. */
  readonly secret?: boolean
  readonly kind: FlagKind
  readonly default: string
  readonly usage: string
  /** Help section, as the original groups them ("App", "Driver", "cert-manager", …). */
  readonly section: string
}

export type ParsedFlags =
  | { readonly _tag: "Help" }
  | {
    readonly _tag: "Values"
    /** The last value of every `string`/`bool` flag, its default when not given. */
    readonly values: Readonly<Record<string, string>>
    /** Every value of every `stringArray` flag, in order (empty when not given). */
    readonly lists: Readonly<Record<string, ReadonlyArray<string>>>
  }

/** What a binary's command line means: `--help`, or the settings its decoder made of the flags. */
export type SettingsArgs<S> = { readonly _tag: "Help" } | { readonly _tag: "Settings"; readonly settings: S }

/** A binary's argv parser: these flags, then its decoder over their values (the approver's and the signer's). */
export const settingsParser = <S>(
  specs: ReadonlyArray<FlagSpec>,
  decode: (values: Readonly<Record<string, string>>, lists: Readonly<Record<string, ReadonlyArray<string>>>) => Result.Result<S, string>
) =>
(argv: ReadonlyArray<string>): Result.Result<SettingsArgs<S>, string> =>
  Result.flatMap(parseFlags(specs, argv), (p): Result.Result<SettingsArgs<S>, string> =>
    p._tag === "Help"
      ? Result.succeed({ _tag: "Help" })
      : Result.map(decode(p.values, p.lists), (settings): SettingsArgs<S> => ({ _tag: "Settings", settings })))

/** Exit code for bad usage, as pflag-based Go programs use. */
export const USAGE_EXIT_CODE = 2

export const parseFlags = (specs: ReadonlyArray<FlagSpec>, argv: ReadonlyArray<string>): Result.Result<ParsedFlags, string> => {
  const byName = new Map(specs.flatMap((s) => [[s.name, s] as const, ...(s.aliases ?? []).map((a) => [a, s] as const)]))
  const byShort = new Map(specs.flatMap((s) => (s.short === undefined ? [] : [[s.short, s] as const])))
  const values: Record<string, string> = Object.fromEntries(specs.filter((s) => s.kind !== "stringArray").map((s) => [s.name, s.default]))
  const lists: Record<string, Array<string>> = Object.fromEntries(specs.filter((s) => s.kind === "stringArray").map((s) => [s.name, []]))
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--help" || arg === "-h") return Result.succeed({ _tag: "Help" })
    let spec: FlagSpec | undefined
    let inline: string | undefined
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=")
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2)
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined
      spec = byName.get(name)
      if (spec === undefined) return Result.fail(`unknown flag: ${JSON.stringify(`--${name}`)}`)
    } else if (arg.startsWith("-") && arg.length > 1) {
      const eq = arg.indexOf("=")
      const name = eq >= 0 ? arg.slice(1, eq) : arg.slice(1)
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined
      spec = byShort.get(name)
      if (spec === undefined) return Result.fail(`unknown shorthand flag: ${JSON.stringify(`-${name}`)}`)
    } else {
      return Result.fail(`unexpected argument: ${JSON.stringify(arg)}`)
    }
    if (spec.kind === "bool") {
      const v = inline ?? "true"
      if (v !== "true" && v !== "false") return Result.fail(`invalid argument ${JSON.stringify(v)} for --${spec.name}: must be true or false`)
      values[spec.name] = v
    } else {
      let value = inline
      if (value === undefined) {
        value = argv[i + 1]
        if (value === undefined) return Result.fail(`flag needs an argument: --${spec.name}`)
        i++
      }
      if (spec.kind === "stringArray") lists[spec.name]!.push(value)
      else values[spec.name] = value
    }
  }
  return Result.succeed({ _tag: "Values", values, lists })
}

export const helpText = (program: string, summary: string, specs: ReadonlyArray<FlagSpec>): string => {
  const sections = [...new Set(specs.map((s) => s.section))]
  const lines = [summary, "", "Usage:", `  ${program} [flags]`]
  for (const section of sections) {
    lines.push("", `${section} flags:`, "")
    for (const s of specs.filter((x) => x.section === section)) {
      const names = s.short === undefined ? `      --${s.name}` : `  -${s.short}, --${s.name}`
      const type = s.kind === "bool" ? "" : s.kind === "stringArray" ? " stringArray" : " string"
      const def = s.default === "" || (s.kind === "bool" && s.default === "false") ? "" : ` (default ${JSON.stringify(s.default)})`
      lines.push(`${(names + type).padEnd(52)} ${s.usage}${def}`)
    }
  }
  return lines.join("\n")
}

/**
 * The value of every flag as the process runs with it (defaults included), for the start-up log:
 * secrets replaced by `<redacted>`, repeated flags as arrays.
 */
export const effectiveFlags = (specs: ReadonlyArray<FlagSpec>, parsed: Extract<ParsedFlags, { _tag: "Values" }>): Record<string, string | ReadonlyArray<string>> =>
  Object.fromEntries(specs.map((s) => {
    const value = s.kind === "stringArray" ? (parsed.lists[s.name] ?? []) : (parsed.values[s.name] ?? "")
    return [s.name, s.secret === true && value.length > 0 ? "<redacted>" : value]
  }))

/**
 * Reads decoded flag values and collects every problem, so a binary reports all of them in one
 * line: `take` keeps a value or records its error and returns the fallback.
 */
export const collector = (
  values: Readonly<Record<string, string>>,
  lists: Readonly<Record<string, ReadonlyArray<string>>> = {}
) => {
  const errors: Array<string> = []
  return {
    errors,
    value: (name: string): string => values[name] ?? "",
    list: (name: string): ReadonlyArray<string> => lists[name] ?? [],
    take: <A>(r: Result.Result<A, string>, fallback: A): A => {
      if (Result.isFailure(r)) {
        errors.push(r.failure)
        return fallback
      }
      return r.success
    }
  }
}

/** What `collector` returns: the flag values, the list of problems, and `take`. */
export type Collector = ReturnType<typeof collector>

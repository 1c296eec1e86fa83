/**
 * Renders the Helm chart with a real `helm` binary and gives typed access to the objects.
 *
 * Owns: finding helm (built by scripts/upstream/build.sh, built on demand), `helm lint`,
 * `helm template` with a values object, NOTES.txt rendering, and small lookups on the result.
 * Does not own: what the chart must render (test/chart/cases.ts).
 */
import { execFileSync, spawnSync } from "node:child_process"
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { loadAll } from "js-yaml"

export const repoRoot = resolve(import.meta.dirname, "../..")
export const chartDir = join(repoRoot, "helm/csi-driver-spiffe")
const buildScript = join(repoRoot, "scripts/upstream/build.sh")

/** A Kubernetes object as rendered; fields are read through the helpers below. */
export interface K8sObject {
  readonly apiVersion: string
  readonly kind: string
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Record<string, string> }
  readonly [field: string]: unknown
}

export interface Rendered {
  readonly objects: ReadonlyArray<K8sObject>
  readonly notes: string
}

export interface RenderOptions {
  readonly release?: string
  readonly namespace?: string
  readonly apiVersions?: ReadonlyArray<string>
}

const helmFromEnvLines = (out: string): string | undefined => {
  const line = out.split("\n").find((l) => l.startsWith("CSI_SPIFFE_BIN_HELM="))
  return line === undefined ? undefined : join(line.slice("CSI_SPIFFE_BIN_HELM=".length).trim(), "helm")
}

/** The helm binary of scripts/upstream/build.sh; builds it (Go module proxy) when it is missing. */
export const findHelm = (): string => {
  const printed = helmFromEnvLines(execFileSync("bash", [buildScript, "--print-env"], { encoding: "utf8" }))
  if (printed !== undefined) return printed
  console.error("helm is not built yet: running scripts/upstream/build.sh helm")
  const built = helmFromEnvLines(execFileSync("bash", [buildScript, "helm"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }))
  if (built === undefined) throw new Error("scripts/upstream/build.sh helm printed no CSI_SPIFFE_BIN_HELM line")
  return built
}

export interface HelmRun {
  readonly status: number
  readonly stdout: string
  readonly stderr: string
}

/**
 * A renderer over a private copy of the chart that also holds NOTES.txt as a YAML template
 * (`helm template` skips NOTES.txt; this makes the very same text render as a `notes:` block).
 */
export const makeRenderer = (helm: string) => {
  const work = mkdtempSync(join(tmpdir(), "chart-check-"))
  const copy = join(work, "chart")
  cpSync(chartDir, copy, { recursive: true })
  const notesSource = readFileSync(join(copy, "templates/NOTES.txt"), "utf8")
  writeFileSync(join(copy, "templates/zz-notes-for-check.yaml"), `notes: |\n${notesSource.split("\n").map((l) => `  ${l}`).join("\n")}\n`)

  let counter = 0
  const template = (values: unknown, options: RenderOptions = {}): HelmRun => {
    const file = join(work, `values-${counter++}.json`)
    writeFileSync(file, JSON.stringify(values))
    const args = ["template", options.release ?? "csi-spiffe", copy, "--namespace", options.namespace ?? "cert-manager", "--values", file]
    for (const v of options.apiVersions ?? []) args.push("--api-versions", v)
    const run = spawnSync(helm, args, { encoding: "utf8" })
    return { status: run.status ?? 1, stdout: run.stdout, stderr: run.stderr }
  }

  const render = (values: unknown, options: RenderOptions = {}): Rendered => {
    const run = template(values, options)
    if (run.status !== 0) throw new Error(`helm template failed: ${run.stderr.trim()}`)
    const docs = loadAll(run.stdout).filter((d): d is Record<string, unknown> => typeof d === "object" && d !== null)
    const notesDoc = docs.find((d) => typeof d["notes"] === "string")
    return {
      objects: docs.filter((d) => d !== notesDoc) as unknown as ReadonlyArray<K8sObject>,
      notes: notesDoc === undefined ? "" : String(notesDoc["notes"])
    }
  }

  return { template, render, dispose: () => rmSync(work, { recursive: true, force: true }) }
}

export const lint = (helm: string, values: unknown): HelmRun => {
  const work = mkdtempSync(join(tmpdir(), "chart-lint-"))
  try {
    const file = join(work, "values.json")
    writeFileSync(file, JSON.stringify(values))
    const run = spawnSync(helm, ["lint", "--strict", chartDir, "--namespace", "cert-manager", "--values", file], { encoding: "utf8" })
    return { status: run.status ?? 1, stdout: run.stdout, stderr: run.stderr }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

// ------------------------------------------------------------------ lookups on rendered objects

/** A value at a dotted path (`spec.template.spec`), numbers index arrays. */
export const at = (value: unknown, path: string): unknown =>
  path.split(".").reduce<unknown>((v, key) => (v !== null && typeof v === "object" ? (v as Record<string, unknown>)[key] : undefined), value)

export const find = (r: Rendered, kind: string, name: string): K8sObject => {
  const found = r.objects.filter((o) => o.kind === kind && o.metadata.name === name)
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name}, found ${found.length} (have: ${names(r).join(", ")})`)
  return found[0]!
}

export const names = (r: Rendered): Array<string> => r.objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()

export interface Container {
  readonly name: string
  readonly image: string
  readonly imagePullPolicy?: string
  readonly command?: ReadonlyArray<string>
  readonly args?: ReadonlyArray<string>
  readonly env?: ReadonlyArray<Record<string, unknown>>
  readonly volumeMounts?: ReadonlyArray<{ readonly name: string; readonly mountPath: string; readonly mountPropagation?: string }>
  readonly ports?: ReadonlyArray<{ readonly name?: string; readonly containerPort: number }>
  readonly [field: string]: unknown
}

export const podSpec = (o: K8sObject): Record<string, unknown> => at(o, "spec.template.spec") as Record<string, unknown>

export const container = (o: K8sObject, name: string): Container => {
  const c = (podSpec(o)["containers"] as ReadonlyArray<Container>).find((x) => x.name === name)
  if (c === undefined) throw new Error(`${o.kind} ${o.metadata.name} has no container ${name}`)
  return c
}

export const containers = (o: K8sObject): ReadonlyArray<Container> => podSpec(o)["containers"] as ReadonlyArray<Container>

/** Values of `--name=value` flags in an argument list (the last one wins, as in pflag). */
export const flag = (args: ReadonlyArray<string> | undefined, name: string): string | undefined => {
  const prefix = `--${name}=`
  const hits = (args ?? []).filter((a) => a.startsWith(prefix) || a === `--${name}`)
  const last = hits.at(-1)
  return last === undefined ? undefined : last === `--${name}` ? "true" : last.slice(prefix.length)
}

export const envValue = (c: Container, name: string): unknown => (c.env ?? []).find((e) => e["name"] === name)

/** Replaces Kubernetes `$(VAR)` references by the given values, as the kubelet does. */
export const expandEnv = (args: ReadonlyArray<string>, vars: Readonly<Record<string, string>>): Array<string> =>
  args.map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => vars[v] ?? m))

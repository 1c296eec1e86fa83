/**
 * The Grafana dashboard (deploy/grafana) and the chart's PrometheusRule query only metrics the
 * binaries define: every metric name in their expressions (histogram suffixes stripped) appears in
 * src/ as a metric name.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"

const repo = path.resolve(import.meta.dirname, "../../..")

const sources = (dir: string): string =>
  fs.readdirSync(dir, { withFileTypes: true })
    .map((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith(".ts") ? fs.readFileSync(path.join(dir, e.name), "utf8") : ""))
    .join("\n")

const src = sources(path.join(repo, "src"))

const defined = (name: string): boolean => src.includes(`"${name}"`) || src.includes(`"${name}{`) || src.includes(`${name}{`) || src.includes(`${name} `)

const PROMQL_WORDS = new Set(["sum", "by", "rate", "increase", "min", "max", "histogram_quantile", "time", "vector", "or", "le", "label_values"])

/** Metric names in a PromQL expression: identifiers followed by `{`, `[`, `)` or a space, minus functions and labels. */
const metricNames = (expr: string): Array<string> => {
  const noLabels = expr.replace(/\{[^}]*\}/g, "{}").replace(/\([a-z_, ]*\)\s*\(/g, "(")
  return [...noLabels.matchAll(/\b([a-z_][a-z0-9_]*_[a-z0-9_]+)\b/g)]
    .map((m) => m[1]!)
    .filter((n) => !PROMQL_WORDS.has(n))
    // A histogram's series carry a suffix the definition does not (but `..._count` may be a gauge's own name).
    .map((n) => (defined(n) ? n : n.replace(/_(bucket|count|sum)$/, "")))
}


describe("dashboards and alerts", () => {
  it("every metric the Grafana dashboard queries is one the binaries define", () => {
    const dash = JSON.parse(fs.readFileSync(path.join(repo, "deploy/grafana/csi-driver-spiffe.json"), "utf8")) as {
      panels: ReadonlyArray<{ targets?: ReadonlyArray<{ expr: string }> }>
    }
    const names = new Set(dash.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricNames(t.expr))))
    assert.isAbove(names.size, 10)
    assert.deepStrictEqual([...names].filter((n) => !defined(n)), [])
  })

  it("every metric the PrometheusRule alerts on is one the binaries define", () => {
    const rule = fs.readFileSync(path.join(repo, "helm/csi-driver-spiffe/templates/prometheusrule.yaml"), "utf8")
    const exprs = [...rule.matchAll(/expr: \|\n\s+(.+)/g)].map((m) => m[1]!.replace(/\{\{[^}]*\}\}/g, "x"))
    assert.strictEqual(exprs.length, 3)
    const names = new Set(exprs.flatMap(metricNames))
    assert.deepStrictEqual([...names].sort(), ["csi_spiffe_issuance_total", "csi_spiffe_volume_expiration_timestamp_seconds", "leader_election_master_status"])
    assert.deepStrictEqual([...names].filter((n) => !defined(n)), [])
  })
})

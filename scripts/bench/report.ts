/**
 * Statistics and the three result files: latest.json (machine, metrics ours/go/unit), latest.md
 * (table, method, the missing-Go reason) and latest.svg (hand-drawn CDFs of the latency samples).
 */
import * as fs from "node:fs"
import * as path from "node:path"

export const percentile = (xs: ReadonlyArray<number>, p: number): number => {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}

export const median = (xs: ReadonlyArray<number>): number => {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

export const round = (x: number, digits = 1): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x)

export type Unit = "ms" | "MiB" | "per_s" | "s"

export interface MetricDef {
  readonly name: string
  readonly unit: Unit
  /** lower is better (false for throughput) */
  readonly lowerIsBetter: boolean
  readonly what: string
}

export const METRICS: ReadonlyArray<MetricDef> = [
  { name: "mount_burst110_p50_ms", unit: "ms", lowerIsBetter: true, what: "NodePublishVolume latency, 110 calls at once, p50" },
  { name: "mount_burst110_p99_ms", unit: "ms", lowerIsBetter: true, what: "NodePublishVolume latency, 110 calls at once, p99" },
  { name: "mount_sequential_p50_ms", unit: "ms", lowerIsBetter: true, what: "NodePublishVolume latency, 50 calls one after another, p50" },
  { name: "ready_to_files_p99_ms", unit: "ms", lowerIsBetter: true, what: "CertificateRequest Ready (watch event) to tls.crt visible in the target, p99" },
  { name: "approver_decision_p99_ms", unit: "ms", lowerIsBetter: true, what: "create response to Approved seen on a watch, 500 requests in a burst, p99" },
  { name: "approver_throughput_per_s", unit: "per_s", lowerIsBetter: false, what: "requests approved per second over the 500-request burst" },
  { name: "idle_rss_110_mib", unit: "MiB", lowerIsBetter: true, what: "driver VmRSS with 110 volumes published, idle" },
  { name: "idle_cpu_s_per_min", unit: "s", lowerIsBetter: true, what: "driver utime+stime per minute with 110 volumes published, idle" },
  { name: "renewal_storm_s", unit: "s", lowerIsBetter: true, what: "first renewal due to every volume holding a new serial" },
  { name: "cold_start_ms", unit: "ms", lowerIsBetter: true, what: "driver process spawn to Identity.Probe ready=true" },
  { name: "help_ms", unit: "ms", lowerIsBetter: true, what: "driver `--help`, process spawn to exit" },
  { name: "approver_idle_rss_mib", unit: "MiB", lowerIsBetter: true, what: "approver VmRSS, idle after the sequential and burst phases" },
  { name: "storm_rss_before_mib", unit: "MiB", lowerIsBetter: true, what: "renewal-storm driver VmRSS before its publish burst" },
  { name: "storm_rss_after_mib", unit: "MiB", lowerIsBetter: true, what: "renewal-storm driver VmRSS once every volume is renewed" },
  { name: "storm_driver_cpu_s", unit: "s", lowerIsBetter: true, what: "renewal-storm driver utime+stime from its publish burst to every volume renewed" },
  { name: "storm_rss_unpublished_mib", unit: "MiB", lowerIsBetter: true, what: "renewal-storm driver VmRSS after every storm volume is unpublished" }
]

export interface ImplResult {
  /** metric -> value per run */
  readonly runs: Record<string, Array<number>>
  /** latency samples for the chart, all runs pooled */
  readonly samples: Record<string, Array<number>>
  readonly notes: Array<string>
}

export const newImplResult = (): ImplResult => ({ runs: {}, samples: {}, notes: [] })

export const addRun = (r: ImplResult, metric: string, value: number) => {
  ;(r.runs[metric] ??= []).push(value)
}

export const addSamples = (r: ImplResult, series: string, xs: ReadonlyArray<number>) => {
  ;(r.samples[series] ??= []).push(...xs)
}

export interface Report {
  readonly machine: { cpus: number; cpu_model: string; memory_mib: number; node: string; kernel: string }
  readonly mode: string
  readonly runs: number
  readonly started: string
  readonly duration_s: number
  readonly ours: ImplResult
  readonly go: ImplResult | undefined
  readonly goUnavailable: string | undefined
  readonly parameters: Record<string, number | string>
  readonly extra: Record<string, unknown>
}

const digitsFor = (unit: Unit) => (unit === "MiB" || unit === "per_s" ? 1 : unit === "s" ? 2 : 1)

const value = (r: ImplResult | undefined, m: MetricDef): number | null => {
  const runs = r?.runs[m.name]
  return runs === undefined || runs.length === 0 ? null : round(median(runs), digitsFor(m.unit))
}

export const toJson = (rep: Report) => ({
  machine: rep.machine,
  mode: rep.mode,
  runs: rep.runs,
  started: rep.started,
  duration_s: rep.duration_s,
  parameters: rep.parameters,
  metrics: Object.fromEntries(
    METRICS.map((m) => [
      m.name,
      {
        ours: value(rep.ours, m),
        go: value(rep.go, m),
        unit: m.unit,
        ours_runs: (rep.ours.runs[m.name] ?? []).map((x) => round(x, digitsFor(m.unit))),
        ...(rep.go === undefined ? {} : { go_runs: (rep.go.runs[m.name] ?? []).map((x) => round(x, digitsFor(m.unit))) })
      }
    ])
  ),
  ...(rep.goUnavailable === undefined ? {} : { go_unavailable: rep.goUnavailable }),
  extra: rep.extra
})

const fmt = (x: number | null) => (x === null ? "—" : String(x))

export const toMarkdown = (rep: Report, method: string): string => {
  const rows = METRICS.map((m) => {
    const o = value(rep.ours, m)
    const g = value(rep.go, m)
    const ratio = o !== null && g !== null && g !== 0 ? round(o / g, 2) : null
    const runs = (rep.ours.runs[m.name] ?? []).map((x) => round(x, digitsFor(m.unit))).join(", ")
    return `| \`${m.name}\` | ${fmt(o)} | ${fmt(g)} | ${m.unit} | ${fmt(ratio)} | ${runs} | ${m.what} |`
  })
  const mc = rep.machine
  return [
    "# Benchmark: csi-driver-spiffe (TypeScript) on a real control plane",
    "",
    `Generated by \`node scripts/bench.ts${rep.mode === "quick" ? " --quick" : ""}\` on ${rep.started} (${rep.duration_s} s).`,
    `Machine: ${mc.cpus} × ${mc.cpu_model}, ${mc.memory_mib} MiB RAM, Node ${mc.node}, Linux ${mc.kernel}. Mode: ${rep.mode}, ${rep.runs} run(s) per metric; each value is the median of the runs' values.`,
    "",
    "| metric | ours | go | unit | ours/go | ours per run | what |",
    "|---|---|---|---|---|---|---|",
    ...rows,
    "",
    ...(rep.goUnavailable === undefined ? [] : ["## Go original: not measured", "", rep.goUnavailable, ""]),
    "## Method",
    "",
    method,
    "",
    ...(rep.ours.notes.length === 0 ? [] : ["## Notes from this run", "", ...rep.ours.notes.map((n) => `- ${n}`), ""]),
    "![latency distributions](latest.svg)",
    ""
  ].join("\n")
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]

/** Empirical CDFs on a log-scale x axis (ms), one line per series; Go's series dashed. */
export const toSvg = (series: ReadonlyArray<{ label: string; xs: ReadonlyArray<number>; dashed?: boolean }>, title: string): string => {
  const W = 860
  const H = 480
  const L = 60
  const R = 250
  const T = 40
  const B = 50
  const pw = W - L - R
  const ph = H - T - B
  const all = series.flatMap((s) => s.xs).filter((x) => x > 0)
  const lo = Math.pow(10, Math.floor(Math.log10(Math.max(0.1, Math.min(...all)))))
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all))))
  const X = (v: number) => L + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * pw
  const Y = (p: number) => T + (1 - p) * ph
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;")
  const out: Array<string> = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`
  ]
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    for (const k of [1, 2, 5]) {
      const v = d * k
      if (v > hi * 1.0001) continue
      const x = X(v).toFixed(1)
      out.push(`<line x1="${x}" y1="${T}" x2="${x}" y2="${T + ph}" stroke="${k === 1 ? "#ccc" : "#eee"}"/>`)
      if (k === 1 || k === 5) out.push(`<text x="${x}" y="${T + ph + 16}" text-anchor="middle">${v >= 1 ? v : v.toFixed(1)}</text>`)
    }
  }
  for (const p of [0, 0.25, 0.5, 0.75, 0.9, 0.99, 1]) {
    const y = Y(p).toFixed(1)
    out.push(`<line x1="${L}" y1="${y}" x2="${L + pw}" y2="${y}" stroke="${p === 0.5 || p === 0.99 ? "#bbb" : "#eee"}"/>`)
    out.push(`<text x="${L - 6}" y="${(Y(p) + 4).toFixed(1)}" text-anchor="end">${p}</text>`)
  }
  out.push(`<rect x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`)
  out.push(`<text x="${L + pw / 2}" y="${H - 12}" text-anchor="middle">latency (ms, log scale)</text>`)
  out.push(`<text x="16" y="${T + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${T + ph / 2})">fraction of samples ≤ x</text>`)
  series.forEach((s, i) => {
    const xs = [...s.xs].sort((a, b) => a - b)
    if (xs.length === 0) return
    const color = COLORS[i % COLORS.length]!
    const pts: Array<string> = [`${X(xs[0]!).toFixed(1)},${Y(0).toFixed(1)}`]
    xs.forEach((x, j) => {
      pts.push(`${X(x).toFixed(1)},${Y(j / xs.length).toFixed(1)}`, `${X(x).toFixed(1)},${Y((j + 1) / xs.length).toFixed(1)}`)
    })
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="6 4"' : ""} points="${pts.join(" ")}"/>`)
    const ly = T + 10 + i * 34
    out.push(`<line x1="${L + pw + 14}" y1="${ly}" x2="${L + pw + 40}" y2="${ly}" stroke="${color}" stroke-width="3"${s.dashed === true ? ' stroke-dasharray="6 4"' : ""}/>`)
    out.push(`<text x="${L + pw + 46}" y="${ly + 4}">${esc(s.label)}</text>`)
    out.push(
      `<text x="${L + pw + 46}" y="${ly + 18}" fill="#555" font-size="11">n=${xs.length} p50=${round(percentile(xs, 50))} p99=${round(percentile(xs, 99))} ms</text>`
    )
  })
  out.push("</svg>")
  return out.join("\n") + "\n"
}

export const writeResults = (dir: string, rep: Report, method: string, chart: string) => {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, "latest.json"), JSON.stringify(toJson(rep), null, 2) + "\n")
  fs.writeFileSync(path.join(dir, "latest.md"), toMarkdown(rep, method))
  fs.writeFileSync(path.join(dir, "latest.svg"), chart)
}

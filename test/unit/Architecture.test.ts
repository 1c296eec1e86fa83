/**
 * The house rules that a machine can check, over the files as they are on disk:
 * - every import in `src/` points down the layers (or stays in its own folder), never up or
 *   sideways, so a newcomer can read the code bottom-up;
 * - the import graph of `src/` has no cycle;
 * - every unit test `test/unit/<path>/X.test.ts` (or `X.<aspect>.test.ts`) tests `src/<path>/X.ts`
 *   (or, for the benchmarks' own code, `scripts/<path>/X.ts`), apart from the short list below.
 * ARCHITECTURE.md draws the same layers.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"

const repo = path.resolve(import.meta.dirname, "../..")
const src = path.join(repo, "src")

/**
 * The rank of each top-level folder of `src/`: a file may import from its own folder or from a
 * folder of lower rank. Folders of equal rank do not import each other: `layers/` and `config/`
 * are both read only by `bin/`, and each edge (`csi/`, `approver/`, `signer/`) is its own program.
 * The top-level files (`x509.ts`, the library loader; `version.ts`) import nothing of `src/` and
 * serve the implementations, not the contracts.
 */
const RANK: Readonly<Record<string, number>> = {
  domain: 0,
  services: 1,
  "x509.ts": 1.5,
  "version.ts": 1.5,
  layers: 2,
  config: 2,
  csi: 3,
  approver: 3,
  signer: 3,
  bin: 4
}

/**
 * Unit tests with no module of their own, each checking something that is not one TypeScript
 * module. Anything else without a counterpart is a misplaced test.
 */
const NO_COUNTERPART: ReadonlyArray<string> = [
  // This file: the whole of src/ and test/unit/.
  "Architecture.test.ts",
  // The chart's README against its values.yaml and values.schema.json.
  "chart/ChartReadme.test.ts",
  // The Grafana dashboard's and the PrometheusRule's queries against every metric name in src/.
  "chart/Dashboards.test.ts",
  // The argument lists the Go original's chart renders, against both binaries' flag decoders.
  "config/OriginalChartArgs.test.ts"
]

const filesUnder = (dir: string, suffix: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? filesUnder(p, suffix) : e.name.endsWith(suffix) ? [p] : []
  })

/** Static imports and re-exports (type-only ones too: they tie the modules as much), and `import("…")`. */
const IMPORTS = [
  /^\s*import\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?["']([^"']+)["']/gm,
  /^\s*export\s+(?:type\s+)?(?:\*|\{[^}]*\})(?:\s+as\s+\w+)?\s+from\s+["']([^"']+)["']/gm,
  /\bimport\(\s*["']([^"']+)["']\s*\)/g
]

/** The `src/` files each file of `src/` imports. */
const graph: ReadonlyMap<string, ReadonlyArray<string>> = new Map(
  filesUnder(src, ".ts").map((file) => {
    const text = fs.readFileSync(file, "utf8")
    const specs = IMPORTS.flatMap((re) => [...text.matchAll(re)].map((m) => m[1]!))
    return [file, specs.filter((s) => s.startsWith(".")).map((s) => path.resolve(path.dirname(file), s))] as const
  })
)

const rel = (file: string) => path.relative(src, file)
const folderOf = (file: string) => rel(file).split(path.sep)[0]!

describe("architecture", () => {
  it("src/ has the folders the rank table names, and nothing else", () => {
    const folders = new Set([...graph.keys()].map(folderOf))
    assert.deepStrictEqual([...folders].sort(), Object.keys(RANK).sort())
  })

  it("every relative import in src/ names a file that exists", () => {
    const missing = [...graph].flatMap(([from, to]) => to.filter((t) => !graph.has(t)).map((t) => `${rel(from)} -> ${rel(t)}`))
    assert.deepStrictEqual(missing, [])
  })

  it("every import in src/ points down the layers or stays in its folder", () => {
    const upward = [...graph].flatMap(([from, to]) =>
      to.filter((t) => {
        const a = folderOf(from)
        const b = folderOf(t)
        return a !== b && !(RANK[b]! < RANK[a]!)
      }).map((t) => `${rel(from)} -> ${rel(t)}`)
    )
    assert.deepStrictEqual(upward, [])
  })

  it("the import graph of src/ has no cycle", () => {
    // Tarjan's strongly connected components: any component of more than one file is a cycle.
    let counter = 0
    const index = new Map<string, number>()
    const low = new Map<string, number>()
    const stack: Array<string> = []
    const onStack = new Set<string>()
    const cycles: Array<Array<string>> = []
    const visit = (v: string): void => {
      index.set(v, counter)
      low.set(v, counter)
      counter++
      stack.push(v)
      onStack.add(v)
      for (const w of graph.get(v) ?? []) {
        if (!graph.has(w)) continue
        if (!index.has(w)) {
          visit(w)
          low.set(v, Math.min(low.get(v)!, low.get(w)!))
        } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!))
      }
      if (low.get(v) === index.get(v)) {
        const component: Array<string> = []
        let w: string
        do {
          w = stack.pop()!
          onStack.delete(w)
          component.push(rel(w))
        } while (w !== v)
        if (component.length > 1 || graph.get(v)!.includes(v)) cycles.push(component.sort())
      }
    }
    for (const v of graph.keys()) if (!index.has(v)) visit(v)
    assert.deepStrictEqual(cycles, [])
  })

  it("every unit test sits at the path of the module it tests", () => {
    const unit = path.join(repo, "test/unit")
    const misplaced = filesUnder(unit, ".test.ts").map((t) => path.relative(unit, t)).filter((t) => {
      if (NO_COUNTERPART.includes(t)) return false
      const module = path.join(path.dirname(t), `${path.basename(t).split(".")[0]}.ts`)
      return !fs.existsSync(path.join(src, module)) && !fs.existsSync(path.join(repo, "scripts", module))
    })
    assert.deepStrictEqual(misplaced, [])
  })

  it("the list of tests without a module holds only files that exist and still have none", () => {
    for (const t of NO_COUNTERPART) {
      assert.isTrue(fs.existsSync(path.join(repo, "test/unit", t)), t)
      const module = path.join(path.dirname(t), `${path.basename(t).split(".")[0]}.ts`)
      assert.isFalse(fs.existsSync(path.join(src, module)), t)
    }
  })
})

// Lints and renders helm/csi-driver-spiffe with a real helm (scripts/upstream/build.sh) and checks
// the rendered objects against the tables in test/chart/cases.ts. Prints `N passed, N failed`;
// exits 1 on any failure.
//
//   node scripts/chart-check.ts            # all cases
//   node scripts/chart-check.ts image      # only cases whose name contains "image"
import { findHelm, lint, makeRenderer } from "../test/chart/render.ts"
import { lintValues, rejectCases, renderCases } from "../test/chart/cases.ts"

const filter = process.argv[2] ?? ""
const helm = findHelm()
const renderer = makeRenderer(helm)
let passed = 0
let failed = 0
const report = (name: string, error: string | undefined): void => {
  if (error === undefined) {
    passed++
    console.log(`  ok    ${name}`)
  } else {
    failed++
    console.log(`  FAIL  ${name}\n        ${error.split("\n").join("\n        ")}`)
  }
}
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

try {
  console.log(`helm: ${helm}`)
  lintValues.forEach((values, i) => {
    const name = `helm lint --strict (values set ${i + 1} of ${lintValues.length})`
    if (!name.includes(filter)) return
    const run = lint(helm, values)
    report(name, run.status === 0 ? undefined : `${run.stdout}${run.stderr}`.trim())
  })
  for (const c of renderCases) {
    if (!c.name.includes(filter)) continue
    try {
      c.expect(renderer.render(c.values ?? {}, c.options))
      report(c.name, undefined)
    } catch (e) {
      report(c.name, message(e))
    }
  }
  for (const c of rejectCases) {
    if (!c.name.includes(filter)) continue
    const run = renderer.template(c.values)
    report(c.name, run.status === 0 ? "helm accepted the values" : c.error.test(run.stderr) ? undefined : `unexpected error: ${run.stderr.trim()}`)
  }
} finally {
  renderer.dispose()
}
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed === 0 && passed > 0 ? 0 : 1)

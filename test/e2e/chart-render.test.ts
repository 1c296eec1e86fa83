/**
 * The chart checks of `npm run chart:check` (test/chart/cases.ts) inside the suite: a real helm
 * (scripts/upstream/build.sh) lints and renders helm/csi-driver-spiffe for a matrix of values, and
 * each rendered object is checked (flags, mounts, propagation, RBAC, CSIDriver, images, notes).
 */
import { afterAll, describe, it } from "vitest"
import { lintValues, rejectCases, renderCases } from "../chart/cases.ts"
import { findHelm, lint, makeRenderer } from "../chart/render.ts"

const helm = findHelm()
const renderer = makeRenderer(helm)
afterAll(() => renderer.dispose())

describe("helm chart", () => {
  lintValues.forEach((values, i) => {
    it(`helm lint --strict (values set ${i + 1} of ${lintValues.length})`, () => {
      const run = lint(helm, values)
      if (run.status !== 0) throw new Error(`${run.stdout}${run.stderr}`.trim())
    })
  })
  for (const c of renderCases) {
    it(c.name, () => c.expect(renderer.render(c.values ?? {}, c.options)))
  }
  for (const c of rejectCases) {
    it(c.name, () => {
      const run = renderer.template(c.values)
      if (run.status === 0) throw new Error("helm accepted the values")
      if (!c.error.test(run.stderr)) throw new Error(`unexpected error: ${run.stderr.trim()}`)
    })
  }
})

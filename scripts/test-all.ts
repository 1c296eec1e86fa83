// Runs every vitest project and prints the plain `N passed, N failed` line that CI reads.
// The exit code is vitest's, so a failing suite fails `npm test` even though the line is printed.
import { spawnSync } from "node:child_process"
import { mkdirSync, readFileSync, existsSync, rmSync } from "node:fs"

const out = "out/vitest.json"
mkdirSync("out", { recursive: true })
if (existsSync(out)) rmSync(out)
const args = ["run", "--reporter=default", "--reporter=json", `--outputFile.json=${out}`, ...process.argv.slice(2)]
const run = spawnSync("vitest", args, { stdio: "inherit" })
let passed = 0
let failed = 0
let skipped = 0
if (existsSync(out)) {
  const report = JSON.parse(readFileSync(out, "utf8")) as {
    numPassedTests: number
    numFailedTests: number
    numPendingTests: number
    numTodoTests: number
    numFailedTestSuites: number
  }
  passed = report.numPassedTests
  // A suite that fails to load has no failed tests of its own; count it so the line never hides it.
  failed = report.numFailedTests + report.numFailedTestSuites
  skipped = report.numPendingTests + report.numTodoTests
} else {
  failed = 1
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
process.exit(run.status ?? 1)

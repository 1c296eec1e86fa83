// Runs before `npm run demo` and `npm test` (CommonJS, so the machine's Node 20 can run it): on a
// fresh clone it installs the pinned dependencies, which bring Node 24 into node_modules/.bin,
// so the README's two commands work with nothing else typed first.
const { existsSync } = require("node:fs")
const { spawnSync } = require("node:child_process")

if (!existsSync("node_modules/.bin/node")) {
  console.error("first run: installing the pinned dependencies (npm ci), including Node 24")
  const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { stdio: "inherit" })
  if (r.status !== 0) process.exit(r.status ?? 1)
}

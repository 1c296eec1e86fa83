/**
 * The production bundle of both binaries, for the image and the benchmark (tests keep running the
 * sources): `dist/csi.mjs`, `dist/approver.mjs` and `dist/signer.mjs`, ESM for Node 24, every dependency inlined and
 * tree-shaken by rolldown, plus `dist/proto/` (the reflection JSON of each .proto, see `PROTO_SOURCE`)
 * and `dist/package.json` (`"type": "module"` and the version). `dist/` is self-contained: copy it
 * anywhere next to a `node` binary.
 *
 *   node scripts/bundle.ts            # or: npm run build:bundle
 *   node scripts/bundle.ts --readable # not minified (names, comments and layout as in the sources)
 *   node scripts/bundle.ts --out=DIR  # into DIR instead of dist/ (tests)
 *
 * Why: from the sources Node resolves, reads and compiles hundreds of modules of node_modules at
 * each start (`@kubernetes/client-node`'s index loads every generated API model, `effect` ships
 * its whole module graph); the bundle holds only what the binaries reach, in one file per binary.
 *
 * Module-relative paths of the sources are rebased for the bundle's layout (and one import of
 * client-node is narrowed, see `KUBE_CONFIG_MODELS`): modules under `src/` find the .proto files
 * at `../../proto/`, which from `dist/` is `./proto/` (every such URL, checked after the build);
 * `src/version.ts` reads `../package.json`, which is inlined as the version string;
 * `src/csi/ProtoSource.ts` is replaced (`PROTO_SOURCE`).
 */
import { build } from "rolldown"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { protoJson, protoNames } from "../src/csi/ProtoSource.ts"
import * as CompilerTiers from "../src/bin/CompilerTiers.ts"

const repo = fileURLToPath(new URL("..", import.meta.url))
const outFlag = process.argv.find((a) => a.startsWith("--out="))
const out = outFlag === undefined ? path.join(repo, "dist") : path.resolve(outFlag.slice("--out=".length))
const pkg = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")) as { name: string; version: string }
/**
 * The output is minified (whitespace removed, local names shortened, dead code dropped) with every
 * function and class name kept (`keepNames`: stack traces, logged error and class names read as in
 * the sources), no comment kept, and pure ASCII (`charset: "ascii"`: every other character of a
 * string, template or regular expression escaped as `\uXXXX`). Why: V8 keeps each module's source
 * text in the heap for as long as the process runs (lazy compilation reads it again), and a source
 * holding a single character outside Latin-1 (the "→", "—", "…" of comments and messages) is stored
 * as UTF-16, two bytes per character. Measured on the driver at start-up, image settings, 3 runs:
 * VmRSS 96.8 → 86.9 MiB, the approver 83.0 → 73.7 MiB (bench/results/footprint.md, 2026-12-02
 * round 3). `--readable` builds the unminified output instead, to read the bundle.
 */
const readable = process.argv.includes("--readable")
const KEEP_NAMES = { function: true, class: true } as const
const minify = readable ? false : { compress: { keepNames: KEEP_NAMES }, mangle: { keepNames: KEEP_NAMES }, codegen: { removeWhitespace: true } }
// `--sourcemap` writes dist/*.mjs.map, to attribute a CPU or heap profile to source modules.
const sourcemap = process.argv.includes("--sourcemap")

/**
 * client-node's `KubeConfig` (config.js) takes two names from `./gen/index.js`, the index of the
 * generated client, which re-exports every API model and typed API (about 700 classes, half of
 * the driver's bundle, all built at load); the two names come from the two small modules that
 * define them instead. Nothing else of the generated client is reached (`src/layers/kube/` imports
 * client-node's sub-paths, never its index).
 */
const KUBE_CONFIG_MODELS = "import { createConfiguration, ServerConfiguration, } from './gen/index.js';"
const KUBE_CONFIG_OWN = "import { createConfiguration } from './gen/configuration.js';\nimport { ServerConfiguration } from './gen/servers.js';"

/**
 * long.js (protobufjs's 64-bit integers, gRPC's proto loader: the driver) compiles a 286-byte
 * WebAssembly module when it loads, for 64-bit multiply and divide, and falls back to its own
 * JavaScript when WebAssembly is missing. That one module starts V8's WebAssembly engine and
 * compiler, whose pages of the Node binary then stay resident: 1.0 MiB of RSS measured on a bare
 * `node` that loads long.js with and without it (bench/results/footprint.md, round 6), for
 * arithmetic the driver does a few times per volume (int64 fields of CSI messages). The bundle's
 * copy shadows the global in long.js's own scope, so its `try` takes the fallback.
 */
const LONG_MODULE = path.join("node_modules", "long", "umd", "index.js")
const LONG_WASM = "var wasm = null;"
const LONG_NO_WASM = "var wasm = null, WebAssembly = undefined;"

/**
 * What the bundle has in place of `src/csi/ProtoSource.ts`: the same exports, reading
 * `dist/proto/<name>.json`, which the build writes with that module's own `protoJson` (below).
 * The binaries then neither parse a .proto at start nor carry protobufjs's parser; from the JSON
 * on, the sources and the bundle run the same code (`csi/ProtoServices.ts`).
 */
const PROTO_SOURCE_MODULE = path.join(repo, "src/csi/ProtoSource.ts")
const PROTO_SOURCE = `import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
export const protoPath = (name) => fileURLToPath(new URL(\`./proto/\${name}.json\`, import.meta.url))
export const protoJson = (name) => JSON.parse(readFileSync(protoPath(name), "utf8"))
`

/** A module-relative URL of a file in proto/: `new URL("../../proto/csi.proto", import.meta.url)`. */
const PROTO_URL = /new URL\("((?:\.\.\/)+)proto\//g

const rebase = {
  name: "csi-driver-spiffe:rebase",
  transform(code: string, id: string) {
    if (id === path.join(repo, "src/version.ts")) return `export const version = ${JSON.stringify(pkg.version)}\n`
    if (id === PROTO_SOURCE_MODULE) return PROTO_SOURCE
    if (id.startsWith(path.join(repo, "src") + path.sep)) {
      // Every `new URL("<../…>/proto/<file>", import.meta.url)` of a source module that reaches the
      // repository's proto/ becomes `./proto/<file>`, next to the bundle.
      const rebased = code.replace(PROTO_URL, (whole: string, up: string) =>
        path.resolve(path.dirname(id), up) === path.resolve(repo) ? `new URL("./proto/` : whole)
      return rebased === code ? undefined : rebased
    }
    if (id.endsWith(LONG_MODULE)) {
      if (code.split(LONG_WASM).length !== 2) throw new Error(`${id}: "${LONG_WASM}" not found once; scripts/bundle.ts must follow long.js`)
      return code.replace(LONG_WASM, LONG_NO_WASM)
    }
    if (id.endsWith(path.join("@kubernetes", "client-node", "dist", "config.js"))) {
      const cut = code.replace(KUBE_CONFIG_MODELS, KUBE_CONFIG_OWN)
      if (cut === code) throw new Error(`${id}: its import of "./gen/index.js" changed; scripts/bundle.ts must follow client-node`)
      return cut
    }
    return undefined
  }
}

/**
 * `import … from "node:http"` (or `"http"`) in an ES module becomes a `require` of it. Node builds
 * an ES module's view of a built-in by reading every export, and `node:http`'s `WebSocket`,
 * `CloseEvent` and `MessageEvent` are getters that load Node's internal undici (its fetch, about
 * 600 KiB of JavaScript) to answer: about 45 ms of CPU at each start for names nothing here uses
 * (`node --input-type=module -e 'import "node:http"'` against a `require`). The module below
 * exports the same names except those getters (an import of one, named or through the namespace,
 * fails the build); `require` reads no export.
 */
const HTTP_NAME = "csi-driver-spiffe:node-http"
const HTTP_ID = `\0${HTTP_NAME}`
const httpViaRequire = {
  name: HTTP_NAME,
  resolveId(source: string, _importer: string | undefined, extra: { kind: string }) {
    return (source === "node:http" || source === "http") && extra.kind === "import-statement" ? HTTP_ID : undefined
  },
  load(id: string) {
    if (id !== HTTP_ID) return undefined
    const http = createRequire(import.meta.url)("node:http") as Record<string, unknown>
    const names = Object.keys(http).filter((k) => Object.getOwnPropertyDescriptor(http, k)?.get === undefined && /^[A-Za-z_$][\w$]*$/.test(k))
    return `import { createRequire } from "node:module"
const http = createRequire(import.meta.url)("node:http")
export default http
export const { ${names.join(", ")} } = http
`
  },
  // A name read through `import * as http` that the module lacks is only a warning otherwise.
  onLog(_level: string, log: { code?: string; message: string }) {
    if (log.code === "IMPORT_IS_UNDEFINED" && log.message.includes(HTTP_NAME)) throw new Error(log.message)
  }
}

/**
 * `dist/warm-up.mjs <csi|approver|signer>` fills V8's compile cache (`NODE_COMPILE_CACHE`: the
 * Dockerfile, the benchmarks) as a real start of that binary compiles its files: in the same order,
 * with the same V8 flags set between them (`src/bin/CompilerTiers.ts`), since V8 keys each cache
 * entry by the flags as they are when the file is compiled. The entry is imported with `--help` as
 * the only argument, so it runs nothing; the driver's X.509 chunk, loaded on its first publish,
 * comes after the flag set once its socket listens.
 */
const warmUpScript = (files: ReadonlyArray<string>): string => {
  const chunks = (name: string) => files.filter((f) => f.startsWith(`${name}-`) && f.endsWith(".mjs")).sort()
  const x509 = chunks("csi").filter((f) => f.startsWith("csi-x509-"))
  if (x509.length !== 1) throw new Error(`expected one dist/csi-x509-*.mjs, found ${x509.length}`)
  const steps = {
    csi: ["csi.mjs", CompilerTiers.DRIVER.flags, ...chunks("csi").filter((f) => !x509.includes(f)), CompilerTiers.DRIVER_LISTENING, ...x509],
    approver: ["approver.mjs", CompilerTiers.APPROVER.flags, ...chunks("approver")],
    signer: ["signer.mjs", ...chunks("signer")]
  }
  return `// Written by scripts/bundle.ts: fills the compile cache as a start of the binary named compiles its files.
import * as v8 from "node:v8"
const steps = ${JSON.stringify(steps)}
const bin = process.argv[2]
if (!Object.hasOwn(steps, bin ?? "")) {
  console.error("usage: node warm-up.mjs " + Object.keys(steps).join("|"))
  process.exit(2)
}
process.argv = [process.argv[0], bin, "--help"]
for (const step of steps[bin]) {
  if (step.startsWith("--")) v8.setFlagsFromString(step)
  else await import(new URL(step, import.meta.url).href)
}
`
}

fs.rmSync(out, { recursive: true, force: true })
const t0 = performance.now()
// One build per binary, so that its files hold only what that binary reaches (no chunk shared
// between the two).
for (const name of ["csi", "approver", "signer"]) {
  await build({
    input: path.join(repo, `src/bin/${name}.ts`),
    platform: "node",
    plugins: [rebase, httpViaRequire],
    logLevel: "warn",
    // The composition root is a dynamic import (src/bin/*.ts): its own chunk, loaded only to run.
    output: {
      dir: out,
      entryFileNames: `${name}.mjs`,
      chunkFileNames: `${name}-[name]-[hash].mjs`,
      format: "esm",
      minify,
      comments: readable,
      charset: readable ? "utf8" : "ascii",
      sourcemap
    }
  })
}
// A proto URL left pointing outside dist/ would fail only when that code runs (a volume's Workload
// API server, say), so the build fails instead.
for (const f of fs.readdirSync(out).filter((f) => f.endsWith(".mjs"))) {
  const left = /new URL\("(?:\.\.\/)+proto\/[^"]*"/.exec(fs.readFileSync(path.join(out, f), "utf8"))
  if (left !== null) throw new Error(`dist/${f}: ${left[0]} points outside dist/; the rebase in scripts/bundle.ts missed it`)
}
// dist/proto/<name>.json: each proto's reflection, made by the sources' own ProtoSource (see
// PROTO_SOURCE); a proto the sources name but proto/ lacks fails here.
fs.mkdirSync(path.join(out, "proto"))
for (const name of protoNames) fs.writeFileSync(path.join(out, "proto", `${name}.json`), JSON.stringify(protoJson(name)))
fs.writeFileSync(path.join(out, "warm-up.mjs"), warmUpScript(fs.readdirSync(out)))
fs.writeFileSync(path.join(out, "package.json"), JSON.stringify({ name: pkg.name, version: pkg.version, type: "module", private: true }, null, 2) + "\n")
for (const f of ["csi.mjs", "approver.mjs", "signer.mjs"]) fs.chmodSync(path.join(out, f), 0o755)
const sizes = fs.readdirSync(out).filter((f) => f.endsWith(".mjs")).map((f) => `${f} ${(fs.statSync(path.join(out, f)).size / 1024).toFixed(0)} KiB`)
console.log(`dist/ in ${(performance.now() - t0).toFixed(0)} ms${readable ? " (readable)" : " (minified)"}: ${sizes.join(", ")}`)

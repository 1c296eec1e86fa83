/** The go-spiffe checker and small certificate helpers for the e2e suites. */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { x509 } from "../../src/x509.ts"
import { ensureUpstream } from "../harness/upstream.ts"

let checkerBin: string | undefined

/** The go-spiffe v2 checker of scripts/upstream (built on first use). */
export const spiffeChecker = async (): Promise<(args: ReadonlyArray<string>) => { ok: boolean; out: string }> => {
  if (checkerBin === undefined) {
    const up = await ensureUpstream(["spiffe-checker"], { build: true, onProgress: () => {} })
    checkerBin = up.bin("spiffe-checker")
  }
  const bin = checkerBin
  return (args) => {
    const r = spawnSync(bin, [...args], { encoding: "utf8" })
    return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() }
  }
}

export const leafOf = (pem: string) => new x509.X509Certificate(pem)
export const urisOf = (pem: string) =>
  (leafOf(pem).getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? []).filter((n) => n.type === "url").map((n) => n.value)

/** Copies a pod's view into a plain directory (the checker reads `tls.crt`/`tls.key`). */
export const snapshot = (target: string, into: string): string => {
  fs.mkdirSync(into, { recursive: true })
  for (const f of ["tls.crt", "tls.key", "ca.crt"]) {
    const src = path.join(target, f)
    if (fs.existsSync(src)) fs.writeFileSync(path.join(into, f), fs.readFileSync(src))
  }
  return into
}

/** What the benchmarks read of how the image starts a binary. */
import * as fs from "node:fs"

/**
 * The Node flags a script's first line adds when it runs as a program (`#!/usr/bin/env -S node
 * <flags>`; the binaries' first lines carry none today, `src/bin/CompilerTiers.ts` says why, but an
 * earlier build of dist/ may): the image runs the binaries that way, and NODE_OPTIONS may not carry
 * V8 flags, so a benchmark that starts `node <script>` adds them.
 */
export const firstLineNodeFlags = (file: string): ReadonlyArray<string> => {
  const first = /^#!\/usr\/bin\/env -S node(.*)$/.exec(fs.readFileSync(file, "utf8").split("\n", 1)[0] ?? "")
  return first === null ? [] : first[1]!.trim().split(/\s+/).filter((a) => a !== "")
}

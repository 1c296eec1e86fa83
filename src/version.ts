/** The version reported by GetPluginInfo and the binaries: package.json's, read once at start. */
import { readFileSync } from "node:fs"

export const version: string = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version

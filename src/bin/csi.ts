#!/usr/bin/env node
/**
 * Entry point of the CSI node driver (`csi-driver-spiffe`). The composition root is imported only
 * when the driver runs: `--help`, `--version` and a bad flag never load gRPC, the Kubernetes
 * client or the X.509 code (in the bundle, a chunk of its own). Before it is imported, the Node
 * built-ins it needs are loaded and V8's compilers are turned off (`CompilerTiers.ts` says why
 * there and not on this line).
 */
import { Effect, Layer } from "effect"
import type { DriverArgs } from "../config/DriverFlags.ts"
import { driverFlags, parseDriverArgs } from "../config/DriverFlags.ts"
import { version } from "../version.ts"
import { main } from "./main.ts"
import { driverStartup } from "./startup.ts"
import * as CompilerTiers from "./CompilerTiers.ts"

main({
  program: "csi-driver-spiffe",
  summary: "CSI node driver that mounts a SPIFFE X.509 SVID issued by cert-manager into every pod.",
  version,
  flags: driverFlags,
  parse: (argv) => parseDriverArgs(argv, version),
  startup: (args: Extract<DriverArgs, { _tag: "Config" }>) => driverStartup(args.config),
  layer: (args: Extract<DriverArgs, { _tag: "Config" }>) =>
    Layer.unwrap(Effect.promise(() => CompilerTiers.importWith(CompilerTiers.DRIVER, () => import("./CsiLive.ts"))).pipe(Effect.map((m) => m.CsiLive(args.config))))
})

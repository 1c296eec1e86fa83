#!/usr/bin/env node
/**
 * Entry point of the PodCertificateRequest signer (`csi-driver-spiffe-signer`). The composition root
 * is imported only when the signer runs: `--help`, `--version` and a bad flag never load the
 * Kubernetes client or the X.509 code.
 */
import { Effect, Layer } from "effect"
import type { SignerArgs } from "../config/SignerFlags.ts"
import { parseSignerArgs, signerFlags } from "../config/SignerFlags.ts"
import { version } from "../version.ts"
import { main } from "./main.ts"
import { signerStartup } from "./startup.ts"

main({
  program: "csi-driver-spiffe-signer",
  summary: "Signs Kubernetes PodCertificateRequests with SPIFFE X.509 SVIDs from an intermediate CA issued by cert-manager.",
  version,
  flags: signerFlags,
  parse: parseSignerArgs,
  startup: (args: Extract<SignerArgs, { _tag: "Settings" }>) => signerStartup(args.settings),
  layer: (args: Extract<SignerArgs, { _tag: "Settings" }>) =>
    Layer.unwrap(Effect.promise(() => import("./SignerLive.ts")).pipe(Effect.map((m) => m.SignerLive(args.settings))))
})

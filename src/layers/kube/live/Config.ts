/**
 * Loading the live KubeClient's configuration (`../Live.ts`): a kubeconfig file when given, else
 * the in-cluster configuration, else the default kubeconfig search, then the standard client flags
 * (`../Overrides.ts`) applied on top.
 *
 * Owns: `LiveOptions`, which source is tried, and the error that names it (never credentials).
 * Does not own: connections or requests (`Connections.ts`).
 */
import { KubeConfig } from "@kubernetes/client-node/dist/config.js"
import { Config, Effect, Option, Result } from "effect"
import type { Duration } from "effect"
import type { KubeClientFlags } from "../../../services/KubeClient.ts"
import { noKubeClientFlags } from "../../../services/KubeClient.ts"
import { kubeError } from "../Errors.ts"
import { applyKubeClientFlags } from "../Overrides.ts"
import { transportError } from "./Wire.ts"

export interface LiveOptions {
  /** Path of a kubeconfig file; when absent, in-cluster config, then the default kubeconfig search. */
  readonly kubeconfig?: string | undefined
  /** How long one connection pool is reused; `DEFAULT_POOL_REFRESH` when absent. */
  readonly poolRefresh?: Duration.Duration | undefined
  /** The standard client flags (`--context`, `--server`, `--token`, …), applied by `Overrides.ts`. */
  readonly kubeClientFlags?: KubeClientFlags | undefined
}

/** What client-node's `loadFromDefault` falls back to when it finds nothing at all. */
const isNothingFound = (kc: KubeConfig): boolean =>
  kc.getCurrentCluster()?.name === "cluster" &&
  kc.getCurrentCluster()?.server === "http://localhost:8080" &&
  kc.getCurrentUser()?.name === "user" &&
  kc.getCurrentUser()?.token === undefined

/** Loads the process's configuration; the error names what was tried, never credentials. */
export const loadConfig = Effect.fn("KubeClient.loadConfig")(function*(options: LiveOptions) {
  const inCluster = yield* Config.option(Config.String("KUBERNETES_SERVICE_HOST")).pipe(
    Effect.orElseSucceed(() => Option.none<string>())
  )
  const kc = new KubeConfig()
  const source = options.kubeconfig !== undefined
    ? `kubeconfig ${options.kubeconfig}`
    : Option.isSome(inCluster)
    ? "in-cluster configuration"
    : "default kubeconfig (KUBECONFIG, ~/.kube/config)"
  yield* Effect.try({
    try: () => {
      if (options.kubeconfig !== undefined) kc.loadFromFile(options.kubeconfig)
      else if (Option.isSome(inCluster)) kc.loadFromCluster()
      else kc.loadFromDefault()
    },
    catch: (e) => transportError("layer", "Invalid", `cannot load ${source}`, e)
  })
  const flags = options.kubeClientFlags ?? noKubeClientFlags
  if (options.kubeconfig === undefined && Option.isNone(inCluster) && isNothingFound(kc) && flags.server === undefined) {
    return yield* kubeError(
      "layer",
      "Invalid",
      "no Kubernetes configuration found: pass a kubeconfig path, set KUBECONFIG, provide ~/.kube/config, or run in a pod"
    )
  }
  const applied = applyKubeClientFlags(kc, flags, options.kubeconfig === undefined && Option.isSome(inCluster) ? "in-cluster" : "kubeconfig")
  if (Result.isFailure(applied)) return yield* kubeError("layer", "Invalid", `${source}: ${applied.failure}`)
  const cluster = applied.success.getCurrentCluster()
  if (cluster === null || cluster.server === "") {
    return yield* kubeError("layer", "Invalid", `${source} has no current cluster`)
  }
  return applied.success
})

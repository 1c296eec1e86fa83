/**
 * The approver's whole layer graph over the memory KubeClient: what closing it (SIGTERM: the runtime
 * interrupts the main fiber, which closes the layer scope) leaves behind in the cluster.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Result, Scope } from "effect"
import { approverWith } from "../../../src/bin/ApproverLive.ts"
import { parseApproverArgs } from "../../../src/config/ApproverFlags.ts"
import { Leases } from "../../../src/domain/KubeObjects.ts"
import { KubeClientMemory, layerMemory } from "../../../src/layers/KubeClient.ts"
import { KubeClient } from "../../../src/services/KubeClient.ts"

const NAMESPACE = "cert-manager"
const DRIVER = "spiffe.csi.cert-manager.io"

const settingsFor = (endpoints: boolean) => {
  const parsed = parseApproverArgs([
    "--issuer-name=ca",
    "--trust-domain=cluster.local",
    `--leader-election-namespace=${NAMESPACE}`,
    `--readiness-probe-bind-address=${endpoints ? "127.0.0.1:0" : "0"}`,
    `--metrics-bind-address=${endpoints ? "127.0.0.1:0" : "0"}`
  ])
  if (Result.isFailure(parsed) || parsed.success._tag !== "Settings") throw new Error(`flags: ${String(parsed)}`)
  return parsed.success.settings
}

const holder = Effect.gen(function*() {
  const memory = yield* KubeClientMemory
  return (yield* memory.client.get(Leases, NAMESPACE, DRIVER))?.spec?.holderIdentity
})

describe("approver layer graph", () => {
  for (const endpoints of [false, true]) {
    it.effect(`closing its scope releases the Lease it holds (probe and metrics endpoints ${endpoints ? "on" : "off"})`, () =>
      Effect.gen(function*() {
        const memory = yield* KubeClientMemory
        const scope = yield* Scope.make()
        yield* Layer.buildWithScope(approverWith(settingsFor(endpoints), Layer.succeed(KubeClient, memory.client)), scope)
        yield* memory.until(Effect.map(holder, (h) => h !== undefined && h !== ""))
        assert.match((yield* holder) ?? "", /_/, "held under this process's identity (host_uuid)")

        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(yield* holder, "", "holderIdentity cleared on scope close")
        const lease = yield* memory.client.get(Leases, NAMESPACE, DRIVER)
        assert.strictEqual(lease?.spec?.leaseDurationSeconds, 1, "a released lease expires at once")
      }).pipe(Effect.provide(layerMemory)))
  }
})

// The control plane through its Effect layer: `node test/harness/smoke-effect.ts`.
// Builds ControlPlane.layer, reads the ClusterIssuer as admin and as the driver's identity, and lets
// the layer's scope stop the plane.
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect } from "effect"
import { ControlPlane } from "./ControlPlane.ts"

const program = Effect.gen(function* () {
  const plane = yield* ControlPlane
  const issuer = yield* Effect.promise(() => plane.client.get(`/apis/cert-manager.io/v1/clusterissuers/${plane.issuer.name}`))
  yield* Console.log(`ClusterIssuer ${issuer.metadata?.name}: ${JSON.stringify(issuer["status"])}`)
  const asDriver = plane.client.withToken(plane.users.driver.token)
  const res = yield* Effect.promise(() => asDriver.raw("GET", "/apis/cert-manager.io/v1/certificaterequests"))
  yield* Console.log(`driver (${plane.users.driver.username}) lists certificaterequests: HTTP ${res.status}`)
  const denied = yield* Effect.promise(() => asDriver.raw("GET", "/api/v1/secrets"))
  yield* Console.log(`driver lists secrets: HTTP ${denied.status} (expected 403)`)
  if (res.status !== 200 || denied.status !== 403) return yield* Effect.die(new Error("unexpected driver RBAC"))
  yield* Console.log("EFFECT SMOKE OK")
})

NodeRuntime.runMain(program.pipe(Effect.provide(ControlPlane.layer({ log: (m) => process.stderr.write(`${m}\n`) }))))

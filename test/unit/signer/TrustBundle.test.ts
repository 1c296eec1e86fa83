/**
 * The ClusterTrustBundle publisher: created with the signer name and trust-domain label, roots only
 * ever added (a restart with the same root changes nothing; a new root joins the old one), and a
 * second spelling of one certificate is not a second root.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { ClusterTrustBundles } from "../../../src/domain/KubeObjects.ts"
import * as PC from "../../../src/domain/PodCertificate.ts"
import { KubeClientMemory, layerMemory } from "../../../src/layers/KubeClient.ts"
import * as TrustBundle from "../../../src/signer/TrustBundle.ts"
import { makeTestCa } from "../../support/TestSigner.ts"

const count = (pem: string) => (pem.match(/BEGIN CERTIFICATE/g) ?? []).length

describe("TrustBundle", () => {
  it.effect("creates, keeps old roots through a rotation, and changes nothing for a root it already has", () =>
    Effect.gen(function*() {
      const kube = yield* KubeClientMemory
      const a = yield* makeTestCa("root-a")
      const b = yield* makeTestCa("root-b")
      assert.strictEqual(yield* TrustBundle.publish(kube.client, PC.DEFAULT_SIGNER_NAME, "example.org", [a.certPem]), "created")
      assert.strictEqual(yield* TrustBundle.publish(kube.client, PC.DEFAULT_SIGNER_NAME, "example.org", [a.certPem]), "unchanged")
      assert.strictEqual(yield* TrustBundle.publish(kube.client, PC.DEFAULT_SIGNER_NAME, "example.org", [b.certPem]), "updated")
      const [bundle] = yield* kube.all(ClusterTrustBundles)
      assert.strictEqual(bundle!.metadata.name, PC.trustBundleName(PC.DEFAULT_SIGNER_NAME))
      assert.isUndefined((bundle!.metadata as { namespace?: string }).namespace)
      assert.strictEqual(count(bundle!.spec.trustBundle), 2)
      assert.include(bundle!.spec.trustBundle, a.certPem.trim().split("\n")[1]!)
    }).pipe(Effect.provide(layerMemory)))

  it("mergeRoots keeps order, drops repeats whatever their line breaks", () => {
    const body = "MIIB" + "A".repeat(120)
    const one = `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----`
    const wrapped = `-----BEGIN CERTIFICATE-----\n${body.slice(0, 64)}\n${body.slice(64)}\n-----END CERTIFICATE-----`
    const two = `-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----`
    assert.strictEqual(TrustBundle.mergeRoots(one, [wrapped, two]), `${one}\n${two}\n`)
  })
})

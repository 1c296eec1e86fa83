/**
 * The signer's ClusterTrustBundle: the trust domain's root CA certificates, for pods to project
 * with `clusterTrustBundle: {signerName: <signer>}`.
 *
 * Owns: the bundle's name (`PodCertificate.trustBundleName`), its signer name and trust-domain
 * label, and merging: every root the bundle already lists stays, and the roots of the intermediate
 * now in force are added. A restart or an intermediate rotation therefore never removes an anchor
 * that older leaves chain to; removing a retired root is an administrator's edit.
 * Does not own: obtaining the roots (`Intermediate`), retries (the caller's schedule).
 */
import { Effect } from "effect"
import { ClusterTrustBundles } from "../domain/KubeObjects.ts"
import { TRUST_DOMAIN_LABEL, trustBundleName } from "../domain/PodCertificate.ts"
import type { KubeClientShape, KubeError } from "../services/KubeClient.ts"

const blocks = (pem: string): ReadonlyArray<string> => pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []

/** The body of one PEM block without line breaks, so that two spellings of one certificate compare equal. */
const canonical = (block: string): string => block.replace(/-----(BEGIN|END) CERTIFICATE-----/g, "").replace(/\s+/g, "")

/** `existing` followed by the roots it lacks, one PEM block per certificate. */
export const mergeRoots = (existing: string, roots: ReadonlyArray<string>): string => {
  const out: Array<string> = []
  const seen = new Set<string>()
  for (const b of [...blocks(existing), ...roots.flatMap(blocks)]) {
    const key = canonical(b)
    if (seen.has(key)) continue
    seen.add(key)
    out.push(b.trim())
  }
  return out.join("\n") + "\n"
}

/** Creates or updates the bundle so that it lists `roots`; "unchanged" when it already did. */
export const publish = (
  kube: KubeClientShape,
  signerName: string,
  trustDomain: string,
  roots: ReadonlyArray<string>
): Effect.Effect<"created" | "updated" | "unchanged", KubeError> =>
  Effect.gen(function*() {
    const name = trustBundleName(signerName)
    const current = yield* kube.get(ClusterTrustBundles, "", name)
    const labels = { [TRUST_DOMAIN_LABEL]: trustDomain }
    if (current === undefined) {
      yield* kube.create(ClusterTrustBundles, "", {
        apiVersion: "certificates.k8s.io/v1",
        kind: "ClusterTrustBundle",
        metadata: { name, labels },
        spec: { signerName, trustBundle: mergeRoots("", roots) }
      })
      return "created"
    }
    const merged = mergeRoots(current.spec.trustBundle, roots)
    const sameLabels = current.metadata.labels?.[TRUST_DOMAIN_LABEL] === trustDomain
    if (merged === mergeRoots(current.spec.trustBundle, []) && sameLabels) return "unchanged"
    yield* kube.replace(ClusterTrustBundles, "", name, {
      ...current,
      metadata: { ...current.metadata, labels: { ...current.metadata.labels, ...labels } },
      spec: { ...current.spec, signerName, trustBundle: merged }
    })
    return "updated"
  })

/**
 * The live KubeClient (`src/layers/kube/Live.ts`, through `layers/KubeClient.ts`'s `layer`) against
 * the shared KubeClient contract (`test/unit/layers/KubeClient.contract.ts`) on the real control
 * plane: the same assertions the memory twin passes, here answered by kube-apiserver over etcd.
 *
 * It needs only etcd and kube-apiserver (the suite's kinds are kube-apiserver's own) and uses the
 * e2e run's shared plane (`inject("controlPlane")`), so it starts no process of its own. The client
 * authenticates as the plane's admin; each case gets two fresh namespaces. The per-call bearer
 * token is another static-token user's (`certManager`), and who created a CertificateSigningRequest
 * is read from its `spec.username`, which kube-apiserver sets from the authenticated user.
 */
import { Context, Effect, Layer, Redacted } from "effect"
import { randomUUID } from "node:crypto"
import { inject } from "vitest"
import { layer } from "../../src/layers/KubeClient.ts"
import { KubeClient } from "../../src/services/KubeClient.ts"
import { connect } from "../harness/globalSetup.ts"
import { contractSuite } from "../unit/layers/KubeClient.contract.ts"

const plane = inject("controlPlane")
const admin = connect(plane)
const asToken = plane.users["certManager"]!
const asOwn = plane.users["admin"]!

const namespace = (name: string) =>
  Effect.promise(() => admin.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name } }))

contractSuite(
  "layer (kube-apiserver)",
  Effect.gen(function*() {
    const id = randomUUID().slice(0, 8)
    const [ns, other] = [`kc-${id}`, `kc-${id}-other`]
    yield* Effect.all([namespace(ns), namespace(other)])
    const context = yield* Layer.build(layer({ kubeconfig: plane.kubeconfigPath }))
    return {
      kube: Context.get(context, KubeClient),
      namespace: ns,
      otherNamespace: other,
      token: Redacted.make(asToken.token),
      createdWith: (name: string) =>
        Effect.promise(() => admin.get<{ spec: { username?: string } }>(`/apis/certificates.k8s.io/v1/certificatesigningrequests/${name}`)).pipe(
          Effect.map((csr) =>
            csr.spec.username === asToken.username
              ? "token"
              : csr.spec.username === asOwn.username
              ? "own"
              : `someone else: ${csr.spec.username ?? "(no spec.username)"}`
          )
        )
    }
  })
)

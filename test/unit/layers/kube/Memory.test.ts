/**
 * The memory KubeClient against the shared KubeClient contract (`../KubeClient.contract.ts`), the
 * same assertions the live client passes on a real kube-apiserver (`test/e2e/kube-client.test.ts`).
 * Its test hooks and documented limits are tested in `../KubeClient.test.ts`.
 */
import { Effect, Redacted } from "effect"
import { make } from "../../../../src/layers/kube/Memory.ts"
import { CertificateSigningRequests, contractSuite } from "../KubeClient.contract.ts"

const TOKEN = "contract-pod-token"

contractSuite(
  "layerMemory",
  Effect.gen(function*() {
    const memory = yield* make
    return {
      kube: memory.client,
      namespace: "contract",
      otherNamespace: "contract-other",
      token: Redacted.make(TOKEN),
      createdWith: (name: string) =>
        Effect.map(memory.createdWith(CertificateSigningRequests, "", name), (creation) =>
          creation === undefined
            ? "never created"
            : creation.bearerToken === undefined
            ? "own"
            : Redacted.value(creation.bearerToken) === TOKEN
            ? "token"
            : "another token")
    }
  })
)

/**
 * Helpers for the approval and events e2e files: CertificateRequests built with full control
 * (test/support/csr.ts), created with a workload's own ServiceAccount token (so cert-manager's
 * webhook fills spec.username from real authentication), and bounded polls on their conditions.
 */
import { IDENTITY_ANNOTATION, REQUIRED_USAGES } from "../../src/domain/CertificateRequest.ts"
import type { KubeClient } from "../harness/kube.ts"
import { requestPodToken, type Workload } from "../harness/kubelet.ts"
import { type ManagedProcess, waitFor } from "../harness/process.ts"

export const CR_API = "/apis/cert-manager.io/v1"
export const crPath = (namespace: string, name?: string): string =>
  `${CR_API}/namespaces/${namespace}/certificaterequests${name === undefined ? "" : `/${name}`}`

export interface Condition {
  readonly type: string
  readonly status: string
  readonly reason?: string
  readonly message?: string
}

export interface Cr {
  readonly metadata: { readonly name: string; readonly namespace: string; readonly uid?: string; readonly annotations?: Record<string, string> }
  readonly spec: { readonly username?: string; readonly request: string; readonly duration?: string; readonly usages?: ReadonlyArray<string> }
  readonly status?: { readonly conditions?: ReadonlyArray<Condition> }
}

export interface CrSpec {
  readonly name: string
  readonly namespace: string
  /** base64 of the PEM CSR (csrRequest) */
  readonly request: string
  readonly issuer: { readonly name: string; readonly kind: string; readonly group: string }
  /** the identity annotation's value; null leaves the annotation out */
  readonly annotation: string | null
  readonly duration?: string
  readonly usages?: ReadonlyArray<string>
}

/** A CertificateRequest as the CSI driver creates it (everything overridable). */
export const crObject = (s: CrSpec) => ({
  apiVersion: "cert-manager.io/v1",
  kind: "CertificateRequest",
  metadata: {
    name: s.name,
    namespace: s.namespace,
    ...(s.annotation === null ? {} : { annotations: { [IDENTITY_ANNOTATION]: s.annotation } })
  },
  spec: {
    request: s.request,
    issuerRef: s.issuer,
    duration: s.duration ?? "1h",
    usages: [...(s.usages ?? REQUIRED_USAGES)],
    isCA: false
  }
})

/** A client authenticated as the workload's ServiceAccount (a TokenRequest bound to its Pod). */
export const clientAs = async (admin: KubeClient, workload: Workload): Promise<{ client: KubeClient; token: string }> => {
  const { token } = await requestPodToken(admin, workload)
  return { client: admin.withToken(token), token }
}

export const decisionOf = (cr: Cr): Condition | undefined =>
  cr.status?.conditions?.find((c) => (c.type === "Approved" || c.type === "Denied") && c.status === "True")

/** Polls (100 ms, 30 s max) until the request carries Approved=True or Denied=True. */
export const waitForDecision = (admin: KubeClient, namespace: string, name: string, proc?: ManagedProcess): Promise<Condition> =>
  waitFor(
    `a decision on CertificateRequest ${namespace}/${name}`,
    async () => decisionOf(await admin.get<Cr>(crPath(namespace, name))),
    { timeoutMs: 30_000, intervalMs: 100, ...(proc === undefined ? {} : { proc }) }
  )

export interface EventList {
  readonly items: ReadonlyArray<{
    readonly type?: string
    readonly reason?: string
    readonly message?: string
    readonly involvedObject: { readonly kind?: string; readonly name?: string; readonly uid?: string }
    readonly source?: { readonly component?: string }
  }>
}

/** Events in `namespace` about the object called `name` (field selector, as `kubectl describe`). */
export const eventsFor = (admin: KubeClient, namespace: string, name: string): Promise<EventList> =>
  admin.json<EventList>("GET", `/api/v1/namespaces/${namespace}/events`, undefined, {
    query: { fieldSelector: `involvedObject.name=${name}` }
  })

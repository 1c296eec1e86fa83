/**
 * Schemas of the core Kubernetes objects this product touches besides CertificateRequests, each
 * the subset we read or write, plus resource descriptors that tell the KubeClient where they live.
 */
import { Schema } from "effect"
import * as CR from "./CertificateRequest.ts"
import { ObjectMeta, TypeMeta } from "./KubeMeta.ts"
import * as PC from "./PodCertificate.ts"

export { rfc3339 } from "./UtcTime.ts"

/** Where a kind lives in the API and how to decode it. `schema` decodes a full API object. */
export interface Resource<A> {
  readonly group: string
  readonly version: string
  readonly kind: string
  readonly plural: string
  readonly schema: Schema.Decoder<A>
  /** Cluster-scoped kinds (ClusterTrustBundle): the namespace argument of every call is ignored. */
  readonly clusterScoped?: boolean
}

export const ConfigMap = Schema.Struct({
  ...TypeMeta,
  metadata: ObjectMeta,
  data: Schema.optional(Schema.Record(Schema.String, Schema.String))
})
export type ConfigMap = typeof ConfigMap.Type

export const LeaseSpec = Schema.Struct({
  holderIdentity: Schema.optional(Schema.NullOr(Schema.String)),
  leaseDurationSeconds: Schema.optional(Schema.NullOr(Schema.Int)),
  acquireTime: Schema.optional(Schema.NullOr(Schema.String)),
  renewTime: Schema.optional(Schema.NullOr(Schema.String)),
  leaseTransitions: Schema.optional(Schema.NullOr(Schema.Int))
})

export const Lease = Schema.Struct({
  ...TypeMeta,
  metadata: ObjectMeta,
  spec: Schema.optional(LeaseSpec)
})
export type Lease = typeof Lease.Type

export const ObjectReference = Schema.Struct({
  apiVersion: Schema.optional(Schema.String),
  kind: Schema.String,
  name: Schema.String,
  namespace: Schema.optional(Schema.String),
  uid: Schema.optional(Schema.String),
  resourceVersion: Schema.optional(Schema.String)
})
export type ObjectReference = typeof ObjectReference.Type

/** core/v1 Event, as `kubectl describe` shows it. */
export const Event = Schema.Struct({
  ...TypeMeta,
  metadata: ObjectMeta,
  involvedObject: ObjectReference,
  reason: Schema.String,
  message: Schema.String,
  type: Schema.Literals(["Normal", "Warning"]),
  source: Schema.optional(Schema.Struct({ component: Schema.optional(Schema.String), host: Schema.optional(Schema.String) })),
  firstTimestamp: Schema.optional(Schema.NullOr(Schema.String)),
  lastTimestamp: Schema.optional(Schema.NullOr(Schema.String)),
  count: Schema.optional(Schema.Int)
})
export type Event = typeof Event.Type

export const CertificateRequests: Resource<CR.CertificateRequest> = {
  group: CR.GROUP,
  version: CR.VERSION,
  kind: "CertificateRequest",
  plural: CR.PLURAL,
  schema: CR.CertificateRequest
}
export const ConfigMaps: Resource<ConfigMap> = { group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", schema: ConfigMap }
export const Leases: Resource<Lease> = { group: "coordination.k8s.io", version: "v1", kind: "Lease", plural: "leases", schema: Lease }
export const Events: Resource<Event> = { group: "", version: "v1", kind: "Event", plural: "events", schema: Event }

export const PodCertificateRequests: Resource<PC.PodCertificateRequest> = {
  group: PC.GROUP,
  version: PC.VERSION,
  kind: "PodCertificateRequest",
  plural: "podcertificaterequests",
  schema: PC.PodCertificateRequest
}
export const ClusterTrustBundles: Resource<PC.ClusterTrustBundle> = {
  group: PC.GROUP,
  version: PC.VERSION,
  kind: "ClusterTrustBundle",
  plural: "clustertrustbundles",
  schema: PC.ClusterTrustBundle,
  clusterScoped: true
}

export const apiVersionOf = (r: Resource<unknown>): string => (r.group === "" ? r.version : `${r.group}/${r.version}`)

/**
 * The metadata every Kubernetes object we decode shares (apimachinery's metav1): the type fields,
 * object metadata (namespaced, or cluster-scoped without a namespace), owner references and
 * conditions, each the subset we read or write. Every object schema in `domain/` is built from
 * these, so one field is decoded one way whichever kind it sits on.
 */
import { Schema } from "effect"

/** metav1.TypeMeta: optional on decode, since list items and watch events may omit it. */
export const TypeMeta = {
  apiVersion: Schema.optional(Schema.String),
  kind: Schema.optional(Schema.String)
}

export const OwnerReference = Schema.Struct({
  apiVersion: Schema.String,
  kind: Schema.String,
  name: Schema.String,
  uid: Schema.String
})

/** The metav1.ObjectMeta fields of every object, namespaced or not, besides its name. */
const metaFields = {
  uid: Schema.optional(Schema.String),
  resourceVersion: Schema.optional(Schema.String),
  creationTimestamp: Schema.optional(Schema.String),
  annotations: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  labels: Schema.optional(Schema.Record(Schema.String, Schema.String))
}

/** A namespaced object's metadata. */
export const ObjectMeta = Schema.Struct({
  name: Schema.String,
  namespace: Schema.String,
  ...metaFields,
  ownerReferences: Schema.optional(Schema.Array(OwnerReference))
})

/** A cluster-scoped object's metadata (ClusterTrustBundle): no namespace. */
export const ClusterObjectMeta = Schema.Struct({ name: Schema.String, ...metaFields })

/** The fields every condition has; cert-manager's CertificateRequestCondition has exactly these. */
export const conditionFields = {
  type: Schema.String,
  status: Schema.String,
  reason: Schema.optional(Schema.String),
  message: Schema.optional(Schema.String),
  lastTransitionTime: Schema.optional(Schema.String)
}

/** metav1.Condition (Pod Certificates' conditions): the common fields plus observedGeneration. */
export const Condition = Schema.Struct({ ...conditionFields, observedGeneration: Schema.optional(Schema.Number) })

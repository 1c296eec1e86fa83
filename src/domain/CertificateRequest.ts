/**
 * The subset of cert-manager's `CertificateRequest` (cert-manager.io/v1) this product reads and
 * writes, decoded with Schema wherever it enters from the API server. Byte fields (`spec.request`,
 * `status.certificate`, `status.ca`) stay base64 as on the wire; helpers decode them.
 */
import { Result, Schema } from "effect"
import * as GoDuration from "./GoDuration.ts"
import { IssuerRef } from "./IssuerRef.ts"
import { conditionFields, ObjectMeta, TypeMeta } from "./KubeMeta.ts"

export const GROUP = "cert-manager.io"
export const VERSION = "v1"
export const PLURAL = "certificaterequests"
export const API_VERSION = `${GROUP}/${VERSION}`

/**
 * The prefix of every annotation, attribute and label key this project sets or reads, also the reason
 * on its approval conditions (cert-manager/csi-driver-spiffe's `annotations.Prefix`,
 * https://github.com/cert-manager/csi-driver-spiffe).
 */
export const ANNOTATION_PREFIX = "spiffe.csi.cert-manager.io"
/** Annotation carrying the SPIFFE ID the driver asked for; the approver only considers these. */
export const IDENTITY_ANNOTATION = `${ANNOTATION_PREFIX}/identity`
/**
 * Annotation the Pod Certificate signer puts on the CertificateRequest for its own intermediate CA,
 * valued with the trust domain; the approver judges these by `IntermediateRules.ts`.
 */
export const INTERMEDIATE_ANNOTATION = `${ANNOTATION_PREFIX}/intermediate`
/** The usages of the signer's intermediate CA request, spelled as cert-manager spells them. */
export const INTERMEDIATE_USAGES = ["digital signature", "cert sign", "crl sign"] as const
/** Label with the hash of the node that created the request (csi-lib's key and hash). */
export const NODE_ID_HASH_LABEL = "csi.cert-manager.io/node-id-hash"
/** Label with the hash of the volume the request is for (csi-lib's key and hash). */
export const VOLUME_ID_HASH_LABEL = "csi.cert-manager.io/volume-id-hash"
/** Reason the approver puts on its Approved / Denied conditions (the prefix itself, as upstream's). */
export const APPROVER_REASON = ANNOTATION_PREFIX

/** The four usages every SVID request carries, spelled as cert-manager spells them. */
export const REQUIRED_USAGES = ["digital signature", "key encipherment", "server auth", "client auth"] as const

/** cert-manager's CertificateRequestCondition. */
export const Condition = Schema.Struct(conditionFields)
export type Condition = typeof Condition.Type

export const CertificateRequestSpec = Schema.Struct({
  request: Schema.String,
  issuerRef: IssuerRef,
  duration: Schema.optional(Schema.String),
  isCA: Schema.optional(Schema.Boolean),
  usages: Schema.optional(Schema.Array(Schema.String)),
  username: Schema.optional(Schema.String),
  uid: Schema.optional(Schema.String),
  groups: Schema.optional(Schema.Array(Schema.String))
})

export const CertificateRequestStatus = Schema.Struct({
  conditions: Schema.optional(Schema.Array(Condition)),
  certificate: Schema.optional(Schema.String),
  ca: Schema.optional(Schema.String),
  failureTime: Schema.optional(Schema.String)
})

export const CertificateRequest = Schema.Struct({
  ...TypeMeta,
  metadata: ObjectMeta,
  spec: CertificateRequestSpec,
  status: Schema.optional(CertificateRequestStatus)
})
export type CertificateRequest = typeof CertificateRequest.Type

export const decode = Schema.decodeUnknownEffect(CertificateRequest)

export const condition = (cr: CertificateRequest, type: string): Condition | undefined =>
  cr.status?.conditions?.find((c) => c.type === type)

const isTrue = (cr: CertificateRequest, type: string): boolean => condition(cr, type)?.status === "True"

/** The request's state as the driver and the approver read it. */
export type Phase =
  | { readonly _tag: "Denied"; readonly message: string }
  | { readonly _tag: "Failed"; readonly message: string }
  | { readonly _tag: "Issued"; readonly certificate: string; readonly ca: string | undefined }
  | { readonly _tag: "Pending"; readonly reason: string }

const b64 = (s: string): string => Buffer.from(s, "base64").toString("utf8")

/**
 * Denied beats everything (terminal); a Ready condition with reason Failed is terminal too; Ready=True
 * with a certificate is success; anything else is still pending, with a reason for timeout messages.
 */
export const phase = (cr: CertificateRequest): Phase => {
  const denied = condition(cr, "Denied")
  if (denied?.status === "True") return { _tag: "Denied", message: denied.message ?? "" }
  const ready = condition(cr, "Ready")
  if (ready?.reason === "Failed") return { _tag: "Failed", message: ready.message ?? "" }
  if (ready?.status === "True" && cr.status?.certificate !== undefined && cr.status.certificate !== "") {
    return {
      _tag: "Issued",
      certificate: b64(cr.status.certificate),
      ca: cr.status.ca === undefined || cr.status.ca === "" ? undefined : b64(cr.status.ca)
    }
  }
  if (!isTrue(cr, "Approved")) return { _tag: "Pending", reason: `request "${cr.metadata.name}" has not yet been approved by approval plugin` }
  if (ready === undefined) return { _tag: "Pending", reason: `request "${cr.metadata.name}" has no ready condition` }
  return { _tag: "Pending", reason: `request "${cr.metadata.name}" is ${ready.reason ?? "pending"}: ${ready.message ?? ""}` }
}

export const isDecided = (cr: CertificateRequest): boolean => isTrue(cr, "Approved") || isTrue(cr, "Denied")

/**
 * Formats milliseconds as Go's `time.Duration.String` does (cert-manager stores `spec.duration` in
 * that form): `1h0m0s`, `1m30.5s`, `500ms`; fractions of a second keep their digits without
 * trailing zeros.
 */
export const formatGoDuration = (millis: number): string => {
  if (millis === 0) return "0s"
  if (millis < 1000) return `${millis}ms`
  const h = Math.floor(millis / 3_600_000)
  const m = Math.floor((millis % 3_600_000) / 60_000)
  const ms = millis % 60_000
  const whole = Math.floor(ms / 1000)
  const frac = ms % 1000
  const sec = frac === 0 ? `${whole}` : `${whole}.${String(frac).padStart(3, "0").replace(/0+$/, "")}`
  if (h > 0) return `${h}h${m}m${sec}s`
  if (m > 0) return `${m}m${sec}s`
  return `${sec}s`
}

/**
 * A non-negative Go duration (`1h`, `90m`, `1h30m0s`, `1.5h`, `300ms`, Go's `time.ParseDuration`
 * grammar) in milliseconds, rounded to the nearest; undefined when it is not one or is negative.
 */
export const parseGoDuration = (input: string): number | undefined => {
  const ns = GoDuration.parse(input)
  return Result.isSuccess(ns) && ns.success >= 0n ? GoDuration.nanosToMillis(ns.success) : undefined
}

/**
 * Pure helpers of the memory API server (`../Memory.ts`): how a stored object is keyed, read,
 * selected and decoded, and which watch event a change becomes for a filtered watch.
 *
 * Owns: the wire form objects are stored in (plain JSON, never shared with callers), the envelope
 * read from every body, and the ADDED/MODIFIED/DELETED translation of the watch cache.
 * Does not own: state (`Store.ts`) or the verbs (`Handlers.ts`).
 */
import { Effect, Predicate, Schema } from "effect"
import type { Resource } from "../../../domain/KubeObjects.ts"
import type { KubeError, ListOptions } from "../../../services/KubeClient.ts"
import { decodeSummary, kubeError } from "../Errors.ts"
import type { Verb } from "../Errors.ts"
import { fieldSelector, labelSelector } from "../Selectors.ts"
import type { Meta, Selector } from "../Selectors.ts"

export type Json = { readonly [key: string]: unknown }

export type ChangeType = "ADDED" | "MODIFIED" | "DELETED"

export interface Change {
  readonly rv: number
  readonly kind: string
  readonly type: ChangeType
  readonly object: Json
  /** The object before a MODIFIED, so filtered watches can turn it into ADDED / DELETED. */
  readonly previous: Json | undefined
}

export type Message = { readonly _tag: "Change"; readonly change: Change } | { readonly _tag: "Drop" }

/** What the store reads from any body: enough to place it, nothing else. */
const Envelope = Schema.Struct({
  metadata: Schema.Struct({
    name: Schema.optional(Schema.String),
    generateName: Schema.optional(Schema.String),
    namespace: Schema.optional(Schema.String),
    resourceVersion: Schema.optional(Schema.String),
    labels: Schema.optional(Schema.Record(Schema.String, Schema.String))
  })
})
export const decodeEnvelope = Schema.decodeUnknownOption(Envelope)

export const kindKey = (r: Resource<unknown>): string => (r.group === "" ? r.plural : `${r.plural}.${r.group}`)

/**
 * Kinds (by `kindKey`) whose replace kube-apiserver accepts without `metadata.resourceVersion` (its
 * registry strategy allows an unconditional update), as kube-apiserver 1.37 answers; every other kind
 * this product uses (Leases, ClusterTrustBundles, custom resources) refuses one with Invalid (422).
 */
export const unconditionalUpdate: ReadonlySet<string> = new Set(["configmaps", "events", "certificatesigningrequests.certificates.k8s.io"])

/** Kinds whose replace of a missing object creates it on kube-apiserver 1.37 (every other kind: NotFound). */
export const createOnUpdate: ReadonlySet<string> = new Set(["leases.coordination.k8s.io"])
export const objectKey = (namespace: string, name: string): string => `${namespace}/${name}`
/** The namespace a kind's objects are stored under: "" for cluster-scoped kinds. */
export const scope = (r: Resource<unknown>, namespace: string): string => (r.clusterScoped === true ? "" : namespace)

export const metaOf = (o: Json): Json => (o["metadata"] ?? {}) as Json

export const selectable = (o: Json): Meta => {
  const m = decodeEnvelope(o)
  const md = m._tag === "Some" ? m.value.metadata : {}
  return { name: md.name ?? "", namespace: md.namespace ?? "", labels: md.labels ?? {} }
}

export const parseRv = (rv: string): number | undefined => (/^\d+$/.test(rv) ? Number(rv) : undefined)

/** A server-assigned uid: unique per store, derived from the resourceVersion the object gets. */
export const uidFor = (rv: number): string => `00000000-0000-4000-8000-${rv.toString(16).padStart(12, "0")}`

/** Bodies go through JSON as on the wire, so callers never share objects with the store. */
export const toJson = (body: unknown): Json | undefined => {
  try {
    const out: unknown = JSON.parse(JSON.stringify(body))
    return Predicate.isObject(out) ? out : undefined
  } catch {
    return undefined
  }
}

export const withoutStatus = (o: Json): Json => Object.fromEntries(Object.entries(o).filter(([k]) => k !== "status"))

export const decodeAs = <A>(verb: Verb, resource: Resource<A>, object: Json): Effect.Effect<A, KubeError> =>
  Schema.decodeEffect(resource.schema)(object).pipe(
    Effect.mapError((e) => kubeError(verb, "Decode", decodeSummary(`${resource.kind} ${String(metaOf(object)["name"])}`, e)))
  )

export const readBody = (verb: Verb, body: unknown) =>
  Effect.gen(function*() {
    const json = toJson(body)
    const envelope = json === undefined ? undefined : decodeEnvelope(json)
    if (json === undefined || envelope === undefined || envelope._tag === "None") {
      return yield* kubeError(verb, "Invalid", "body is not a JSON object with metadata", 400)
    }
    return { json, metadata: envelope.value.metadata }
  })

export const notFound = (verb: Verb, resource: Resource<unknown>, name: string): KubeError =>
  kubeError(verb, "NotFound", `${kindKey(resource)} "${name}" not found`)

/** The selection of a list or watch; the namespace option is ignored for cluster-scoped kinds, as by the live client. */
export const selectorsOf = (verb: Verb, resource: Resource<unknown>, options: ListOptions): Effect.Effect<Selector, KubeError> => {
  const labels = labelSelector(options.labelSelector)
  const fields = fieldSelector(options.fieldSelector)
  if (typeof labels === "string") return Effect.fail(kubeError(verb, "Invalid", labels, 400))
  if (typeof fields === "string") return Effect.fail(kubeError(verb, "Invalid", fields, 400))
  const ns = resource.clusterScoped === true ? undefined : options.namespace
  return Effect.succeed((m: Meta) => (ns === undefined || m.namespace === ns) && labels(m) && fields(m))
}

/** The events one change is for a watch of `kind` filtered by `selector`, as the watch cache sends them. */
export const eventsFor = (
  kind: string,
  selector: Selector,
  change: Change
): ReadonlyArray<{ readonly type: ChangeType; readonly object: Json }> => {
  if (change.kind !== kind) return []
  const now = selector(selectable(change.object))
  if (change.type !== "MODIFIED" || change.previous === undefined) return now ? [{ type: change.type, object: change.object }] : []
  const before = selector(selectable(change.previous))
  if (now && before) return [{ type: "MODIFIED", object: change.object }]
  if (now) return [{ type: "ADDED", object: change.object }]
  if (before) return [{ type: "DELETED", object: change.object }]
  return []
}

/**
 * cert-manager's issuerRef, and the defaults cert-manager applies to it (kind `Issuer`, group
 * `cert-manager.io` when empty), so that two spellings of one issuer compare equal.
 */
import { Schema } from "effect"

export const IssuerRef = Schema.Struct({
  name: Schema.String,
  kind: Schema.optional(Schema.String),
  group: Schema.optional(Schema.String)
})
export type IssuerRef = typeof IssuerRef.Type

export interface DefaultedIssuerRef {
  readonly name: string
  readonly kind: string
  readonly group: string
}

/** cert-manager treats an empty kind as `Issuer` and an empty group as `cert-manager.io`. */
export const withDefaults = (ref: IssuerRef): DefaultedIssuerRef => ({
  name: ref.name,
  kind: ref.kind === undefined || ref.kind === "" ? "Issuer" : ref.kind,
  group: ref.group === undefined || ref.group === "" ? "cert-manager.io" : ref.group
})

export const equals = (a: IssuerRef, b: IssuerRef): boolean => {
  const x = withDefaults(a)
  const y = withDefaults(b)
  return x.name === y.name && x.kind === y.kind && x.group === y.group
}

export const format = (ref: IssuerRef): string => {
  const d = withDefaults(ref)
  return `${d.kind}.${d.group}/${d.name}`
}

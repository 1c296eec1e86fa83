/**
 * Label and field selectors as the memory KubeClient evaluates them.
 *
 * Owns: parsing the equality-based subset of Kubernetes selectors — labels `a=b`, `a==b`, `a!=b`,
 * `a` (exists), `!a` (does not exist), comma-joined (all must hold); fields `metadata.name` and
 * `metadata.namespace` with `=`, `==`, `!=`.
 * Does not own: set-based label selectors (`in`, `notin`) or other field paths; those are rejected
 * with a parse error instead of being silently ignored.
 */

export interface Meta {
  readonly name: string
  readonly namespace: string
  readonly labels: Readonly<Record<string, string>>
}

export type Selector = (meta: Meta) => boolean

type Requirement =
  | { readonly op: "eq" | "neq"; readonly key: string; readonly value: string }
  | { readonly op: "exists" | "absent"; readonly key: string }

const KEY = /^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$/
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/

const parseRequirements = (input: string, what: string): ReadonlyArray<Requirement> | string => {
  const out: Array<Requirement> = []
  for (const raw of input.split(",")) {
    const term = raw.trim()
    if (term === "") continue
    const m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term)
    if (m !== null) {
      const [, key = "", op = "", value = ""] = m
      if (!KEY.test(key) || !VALUE.test(value)) return `invalid ${what} selector term "${term}"`
      out.push({ op: op === "!=" ? "neq" : "eq", key, value })
      continue
    }
    const absent = term.startsWith("!")
    const key = absent ? term.slice(1).trim() : term
    if (!KEY.test(key)) return `unsupported ${what} selector term "${term}" (only =, ==, !=, exists, !exists)`
    out.push(absent ? { op: "absent", key } : { op: "exists", key })
  }
  return out
}

const holds = (req: Requirement, value: string | undefined): boolean => {
  switch (req.op) {
    case "eq":
      return value === req.value
    case "neq":
      return value !== req.value
    case "exists":
      return value !== undefined
    case "absent":
      return value === undefined
  }
}

/** A matcher for a label selector, or an error message. Empty or undefined matches everything. */
export const labelSelector = (input: string | undefined): Selector | string => {
  if (input === undefined) return () => true
  const reqs = parseRequirements(input, "label")
  if (typeof reqs === "string") return reqs
  return (meta) => reqs.every((r) => holds(r, Object.hasOwn(meta.labels, r.key) ? meta.labels[r.key] : undefined))
}

/** A matcher for a field selector over `metadata.name` / `metadata.namespace`, or an error message. */
export const fieldSelector = (input: string | undefined): Selector | string => {
  if (input === undefined) return () => true
  const reqs = parseRequirements(input, "field")
  if (typeof reqs === "string") return reqs
  for (const r of reqs) {
    if (r.key !== "metadata.name" && r.key !== "metadata.namespace") {
      return `field selector "${r.key}" is not supported by the memory KubeClient (only metadata.name, metadata.namespace)`
    }
    if (r.op === "exists" || r.op === "absent") return `field selector term "${r.key}" needs an operator`
  }
  return (meta) => reqs.every((r) => holds(r, r.key === "metadata.name" ? meta.name : meta.namespace))
}

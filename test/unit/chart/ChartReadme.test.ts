/**
 * The chart README lists every value: each key that values.yaml sets or values.schema.json allows
 * (the schema also knows the keys values.yaml only shows in comments, such as image tags), with the
 * default values.yaml gives it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Predicate } from "effect"
import { load } from "js-yaml"
import { readFileSync } from "node:fs"
import { join } from "node:path"

const chart = join(import.meta.dirname, "../../../helm/csi-driver-spiffe")
const readme = readFileSync(join(chart, "README.md"), "utf8")
const rows = new Map(
  readme.split("\n").flatMap((line) => {
    const m = /^\| `([^`]+)` \| (.*?) \|/.exec(line)
    return m === null ? [] : [[m[1]!, m[2]!] as const]
  })
)

const propertiesOf = (schema: unknown): object | undefined =>
  Predicate.hasProperty(schema, "properties") && Predicate.isObject(schema.properties) ? schema.properties : undefined

/** Dotted paths of the leaves of a values tree: where the schema lists properties it is a section, else a leaf (free-form maps included). */
const leaves = (value: unknown, schema: unknown, prefix = ""): Array<readonly [string, unknown]> => {
  const props = propertiesOf(schema)
  if (props === undefined || !Predicate.isObject(value)) return [[prefix, value]]
  return Object.entries(value).flatMap(([k, v]) =>
    leaves(v, Predicate.hasProperty(props, k) ? props[k] : undefined, prefix === "" ? k : `${prefix}.${k}`))
}

/** Dotted paths of the schema's leaf properties (an object without `properties` is a leaf, e.g. `image`). */
const schemaLeaves = (schema: unknown, prefix = ""): Array<string> => {
  const props = propertiesOf(schema)
  if (props === undefined) return [prefix]
  return Object.entries(props).flatMap(([k, v]) => schemaLeaves(v, prefix === "" ? k : `${prefix}.${k}`))
}

const schema: unknown = JSON.parse(readFileSync(join(chart, "values.schema.json"), "utf8"))

describe("chart README", () => {
  it("lists every key values.yaml sets, with its default", () => {
    const values = load(readFileSync(join(chart, "values.yaml"), "utf8"))
    for (const [path, value] of leaves(values, schema)) {
      const row = rows.get(path)
      assert.isDefined(row, `README has no row for ${path}`)
      if (value === null) continue
      const shown = Predicate.isString(value) ? (value === "" ? '""' : value) : JSON.stringify(value).replaceAll(",", ", ")
      const inline = Predicate.isObject(value) && !Array.isArray(value) && Object.keys(value).length > 0
        ? `{${Object.entries(value).map(([k, v]) => `${k}: ${String(v)}`).join(", ")}}`
        : shown
      assert.isTrue(row!.includes(`\`${shown}\``) || row!.includes(`\`${inline}\``), `README default of ${path} is ${row}, values.yaml has ${shown}`)
    }
  })

  it("lists every key values.schema.json allows", () => {
    const missing = schemaLeaves(schema).filter((path) => !rows.has(path) && path !== "global")
    assert.deepStrictEqual(missing, [], "keys without a README row")
  })
})

/**
 * The memory KubeClient's selectors: the equality-based subset of Kubernetes label and field
 * selectors matched as the API server does, and everything outside it refused with a message
 * instead of silently matching.
 */
import { assert, describe, it } from "@effect/vitest"
import { fieldSelector, labelSelector } from "../../../../src/layers/kube/Selectors.ts"
import type { Meta, Selector } from "../../../../src/layers/kube/Selectors.ts"

const meta = (labels: Record<string, string>, name = "cr-1", namespace = "team-a"): Meta => ({ name, namespace, labels })

const matcher = (s: Selector | string): Selector => {
  if (typeof s === "string") throw new Error(`expected a selector, got the error: ${s}`)
  return s
}

describe("labelSelector", () => {
  const labels = { app: "web", "example.com/tier": "front", empty: "" }

  it("undefined and empty match everything", () => {
    assert.isTrue(matcher(labelSelector(undefined))(meta({})))
    assert.isTrue(matcher(labelSelector(""))(meta({})))
  })

  // [selector, whether it matches `labels`]
  const cases: ReadonlyArray<readonly [string, boolean]> = [
    // =, == and != compare values; a missing label is not equal to anything.
    ["app=web", true],
    ["app==web", true],
    ["app=api", false],
    ["app!=api", true],
    ["app!=web", false],
    ["missing=x", false],
    ["missing!=x", true],
    ["empty=", true],
    // A bare key means exists, !key means absent; terms are joined with AND.
    ["example.com/tier", true],
    ["!example.com/tier", false],
    ["!missing", true],
    ["app=web, example.com/tier=front,!missing", true],
    ["app=web,example.com/tier=back", false]
  ]
  it("=, ==, !=, exists and !exists, joined with AND", () => {
    for (const [selector, matches] of cases) assert.strictEqual(matcher(labelSelector(selector))(meta(labels)), matches, selector)
  })

  it("a label named like an Object.prototype member is only matched when set", () => {
    assert.isFalse(matcher(labelSelector("constructor"))(meta({})))
    assert.isTrue(matcher(labelSelector("!toString"))(meta({})))
  })

  it("set-based terms and malformed ones are refused with the term quoted", () => {
    for (const bad of ["app in (web,api)", "app notin (web)", "a b=c", "=web", "app=we b", "-app=web"]) {
      const r = labelSelector(bad)
      assert.isString(r, bad)
      assert.include(r as string, "label selector term", bad)
    }
  })
})

describe("fieldSelector", () => {
  it("matches metadata.name and metadata.namespace with =, == and !=", () => {
    assert.isTrue(matcher(fieldSelector("metadata.name=cr-1"))(meta({})))
    assert.isTrue(matcher(fieldSelector("metadata.name==cr-1,metadata.namespace=team-a"))(meta({})))
    assert.isFalse(matcher(fieldSelector("metadata.namespace=team-b"))(meta({})))
    assert.isTrue(matcher(fieldSelector("metadata.namespace!=team-b"))(meta({})))
    assert.isTrue(matcher(fieldSelector(undefined))(meta({})))
  })

  it("refuses other field paths and terms without an operator", () => {
    const other = fieldSelector("spec.nodeName=n1")
    assert.isString(other)
    assert.include(other as string, "not supported by the memory KubeClient")
    const bare = fieldSelector("metadata.name")
    assert.isString(bare)
    assert.include(bare as string, "needs an operator")
  })
})

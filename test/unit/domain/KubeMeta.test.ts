import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import * as CR from "../../../src/domain/CertificateRequest.ts"
import { ClusterObjectMeta, Condition, ObjectMeta } from "../../../src/domain/KubeMeta.ts"

describe("KubeMeta", () => {
  it("a namespaced object's metadata needs its namespace; a cluster-scoped one has none", () => {
    const meta = { name: "x", uid: "u", labels: { a: "b" }, ownerReferences: [{ apiVersion: "v1", kind: "Pod", name: "p", uid: "pu" }] }
    assert.throws(() => Schema.decodeUnknownSync(ObjectMeta)(meta))
    assert.deepStrictEqual(Schema.decodeUnknownSync(ObjectMeta)({ ...meta, namespace: "ns" }), { ...meta, namespace: "ns" })
    // ownerReferences is not read on a cluster-scoped object.
    assert.deepStrictEqual(Schema.decodeUnknownSync(ClusterObjectMeta)({ ...meta, namespace: "ignored" }), { name: "x", uid: "u", labels: { a: "b" } })
  })

  it("metav1.Condition keeps observedGeneration; cert-manager's condition has the common fields only", () => {
    const c = { type: "Issued", status: "True", reason: "R", message: "m", lastTransitionTime: "2026-01-01T00:00:00Z", observedGeneration: 2 }
    assert.deepStrictEqual(Schema.decodeUnknownSync(Condition)(c), c)
    const { observedGeneration: _, ...common } = c
    assert.deepStrictEqual(Schema.decodeUnknownSync(CR.Condition)(c), common)
    assert.throws(() => Schema.decodeUnknownSync(Condition)({ type: "Issued" }))
  })
})

/**
 * SPIFFE IDs (the SPIFFE-ID standard) and the ServiceAccount shapes this product issues
 * (cert-manager/csi-driver-spiffe: `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`, and the approver's
 * username check in internal/approver/evaluator).
 */
import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import {
  forServiceAccount,
  MAX_ID_BYTES,
  MAX_TRUST_DOMAIN_BYTES,
  parseSpiffeId,
  serviceAccountFromUsername,
  TrustDomain,
  trustDomainViolations
} from "../../../src/domain/SpiffeId.ts"

const violationsOf = (uri: string): ReadonlyArray<string> => {
  const p = parseSpiffeId(uri)
  if (p._tag === "Valid") assert.fail(`${uri} should be invalid`)
  return p.violations
}

describe("parseSpiffeId", () => {
  describe("accepts", () => {
    const valid: ReadonlyArray<readonly [string, string, string]> = [
      ["spiffe://cluster.local/ns/sandbox/sa/app", "cluster.local", "/ns/sandbox/sa/app"],
      ["spiffe://cluster.local", "cluster.local", ""],
      ["spiffe://example.org/a/b.c/d-e/f_g/H1", "example.org", "/a/b.c/d-e/f_g/H1"],
      ["spiffe://td_with-dash.1/...", "td_with-dash.1", "/..."],
      ["spiffe://x/.hidden", "x", "/.hidden"]
    ]
    for (const [uri, trustDomain, path] of valid) {
      it(uri, () => assert.deepStrictEqual(parseSpiffeId(uri), { _tag: "Valid", id: { trustDomain, path, uri } }))
    }

    it("an ID of exactly the maximum length", () => {
      const prefix = "spiffe://td/"
      const uri = prefix + "a".repeat(MAX_ID_BYTES - prefix.length)
      assert.strictEqual(parseSpiffeId(uri)._tag, "Valid")
    })
  })

  describe("refuses, naming the violation", () => {
    const invalid: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
      ["https://cluster.local/ns/a/sa/b", ["scheme is not spiffe"]],
      ["", ["scheme is not spiffe"]],
      ["spiffe:/cluster.local/ns/a", ["scheme is not spiffe"]],
      ["SPIFFE://cluster.local/ns/a/sa/b", ["scheme must be lower-case 'spiffe'"]],
      ["Spiffe://cluster.local", ["scheme must be lower-case 'spiffe'"]],
      ["spiffe://cluster.local/ns/a#frag", ["SPIFFE ID must not have a fragment"]],
      ["spiffe://cluster.local/ns/a?x=1", ["SPIFFE ID must not have a query"]],
      ["spiffe://user@cluster.local/ns/a", ["SPIFFE ID must not have user info"]],
      ["spiffe://cluster.local:8443/ns/a", ["SPIFFE ID must not have a port"]],
      ["spiffe:///ns/a/sa/b", ["trust domain is empty"]],
      ["spiffe://", ["trust domain is empty"]],
      ["spiffe://Cluster.Local/ns/a", ["trust domain may only contain lower-case letters, digits, '.', '-' and '_'"]],
      ["spiffe://exa mple.org/ns/a", ["trust domain may only contain lower-case letters, digits, '.', '-' and '_'"]],
      ["spiffe://cluster.local/", ["path must not have empty segments or a trailing slash"]],
      ["spiffe://cluster.local/ns//sa/b", ["path must not have empty segments or a trailing slash"]],
      ["spiffe://cluster.local/ns/a/", ["path must not have empty segments or a trailing slash"]],
      ["spiffe://cluster.local/ns/./sa", ["path must not have dot-segments"]],
      ["spiffe://cluster.local/ns/../sa", ["path must not have dot-segments"]],
      ["spiffe://cluster.local/ns/a%2Fb", ["path must not be percent-encoded"]],
      ["spiffe://cluster.local/ns/a b", ["path segments may only contain letters, digits, '.', '-' and '_'"]],
      ["spiffe://cluster.local/ns/a*b", ["path segments may only contain letters, digits, '.', '-' and '_'"]],
      ["spiffe://cluster.local/ns/é", ["path segments may only contain letters, digits, '.', '-' and '_'"]]
    ]
    for (const [uri, expected] of invalid) {
      it(JSON.stringify(uri), () => assert.deepStrictEqual(violationsOf(uri), expected))
    }

    it("an ID longer than 2048 bytes (counting UTF-8 bytes)", () => {
      const prefix = "spiffe://td/"
      assert.deepStrictEqual(violationsOf(prefix + "a".repeat(MAX_ID_BYTES - prefix.length + 1)), [`SPIFFE ID is longer than ${MAX_ID_BYTES} bytes`])
      // 1024 two-byte characters are 2048 bytes on their own.
      assert.include(violationsOf(prefix + "é".repeat(1024)), `SPIFFE ID is longer than ${MAX_ID_BYTES} bytes`)
    })

    it("every violation at once, in a stable order", () => {
      assert.deepStrictEqual(violationsOf("spiffe://u@Bad:1/a//./%41?q#f"), [
        "SPIFFE ID must not have a fragment",
        "SPIFFE ID must not have a query",
        "SPIFFE ID must not have user info",
        "SPIFFE ID must not have a port",
        "trust domain may only contain lower-case letters, digits, '.', '-' and '_'",
        "path must not be percent-encoded",
        "path must not have empty segments or a trailing slash",
        "path must not have dot-segments"
      ])
    })
  })
})

describe("trustDomainViolations", () => {
  it("accepts DNS-like lower-case names", () => {
    for (const td of ["cluster.local", "example.org", "a", "td_1-2.x", "1.2.3.4"]) assert.deepStrictEqual(trustDomainViolations(td), [], td)
  })

  it("refuses an empty trust domain", () => {
    assert.deepStrictEqual(trustDomainViolations(""), ["trust domain is empty"])
  })

  it("refuses upper case, ports, slashes, and spaces", () => {
    for (const td of ["Cluster.local", "cluster.local:80", "a/b", "a b", "spiffe://a"]) {
      assert.deepStrictEqual(trustDomainViolations(td), ["trust domain may only contain lower-case letters, digits, '.', '-' and '_'"], td)
    }
  })

  it("refuses more than 255 bytes, and reports character problems too", () => {
    assert.deepStrictEqual(trustDomainViolations("a".repeat(MAX_TRUST_DOMAIN_BYTES)), [])
    assert.deepStrictEqual(trustDomainViolations("a".repeat(MAX_TRUST_DOMAIN_BYTES + 1)), [`trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`])
    assert.strictEqual(trustDomainViolations("A".repeat(MAX_TRUST_DOMAIN_BYTES + 1)).length, 2)
  })

  it("backs the TrustDomain schema", () => {
    assert.strictEqual(Schema.decodeUnknownSync(TrustDomain)("cluster.local"), "cluster.local")
    assert.throws(() => Schema.decodeUnknownSync(TrustDomain)("Cluster.Local"))
    assert.throws(() => Schema.decodeUnknownSync(TrustDomain)(""))
  })
})

describe("forServiceAccount", () => {
  it("builds spiffe://<td>/ns/<ns>/sa/<sa>, a valid ID", () => {
    const uri = forServiceAccount("cluster.local", "sandbox", "app")
    assert.strictEqual(uri, "spiffe://cluster.local/ns/sandbox/sa/app")
    assert.deepStrictEqual(parseSpiffeId(uri), { _tag: "Valid", id: { trustDomain: "cluster.local", path: "/ns/sandbox/sa/app", uri } })
  })
})

describe("serviceAccountFromUsername", () => {
  it("splits the API server's ServiceAccount user name", () => {
    assert.deepStrictEqual(serviceAccountFromUsername("system:serviceaccount:sandbox:app"), { namespace: "sandbox", name: "app" })
    assert.deepStrictEqual(serviceAccountFromUsername("system:serviceaccount:cert-manager:cert-manager-csi-driver-spiffe"), {
      namespace: "cert-manager",
      name: "cert-manager-csi-driver-spiffe"
    })
  })

  const bad = [
    "",
    "app",
    "system:serviceaccount:sandbox",
    "system:serviceaccount:sandbox:",
    "system:serviceaccount::app",
    "system:serviceaccount:sandbox:app:extra",
    "system:serviceaccounts:sandbox:app",
    "system:node:kind-worker:x",
    "System:serviceaccount:sandbox:app",
    "user:serviceaccount:sandbox:app"
  ]
  for (const u of bad) {
    it(`refuses ${JSON.stringify(u)}`, () => assert.strictEqual(serviceAccountFromUsername(u), undefined))
  }
})

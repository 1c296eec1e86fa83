/**
 * The rule for the Pod Certificate signer's intermediate CA request: the request the contract fixes
 * is approved, and every way of bending it (another requester, a laxer CA, a wider or different name
 * constraint, a SAN, the wrong annotations, duration, usages, issuer or key) is denied with exactly
 * the reasons expected, all of them at once. Requests go through the real CSR inspection.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { inspectCsr } from "../../../src/approver/InspectCsr.ts"
import { IDENTITY_ANNOTATION, INTERMEDIATE_ANNOTATION } from "../../../src/domain/CertificateRequest.ts"
import type { CertificateRequest } from "../../../src/domain/CertificateRequest.ts"
import { Approved, type Decision, Denied, Unprocessed } from "../../../src/domain/Decision.ts"
import { evaluate, type SpiffePolicy } from "../../../src/domain/SpiffeRules.ts"
import {
  caConstraintsExtension,
  certificateRequest,
  csrRequest,
  type CsrOptions,
  extendedKeyUsageExtension,
  IDENTITY,
  INTERMEDIATE_KEY_USAGE,
  intermediateCertificateRequest,
  type IntermediateCrOptions,
  intermediateExtensions,
  intermediateRequest,
  keyUsageExtension,
  KeyUsageFlags,
  nameConstraintsExtension,
  sanExtension,
  SERVER_AUTH,
  SIGNER_POLICY,
  specRequest,
  type Subtree
} from "../../support/csr.ts"

const r = (message: string) => `spec.request: ${message}`
const USERNAME_WANT = "must be the Pod Certificate signer's ServiceAccount system:serviceaccount:cert-manager:csi-driver-spiffe-signer (--signer-service-account)"
const USAGES_WANT = "spec.usages: must be exactly digital signature, cert sign, crl sign (in any order)"
const NC_WANT = "name constraints must permit exactly one permitted subtree, uniformResourceIdentifier cluster.local"
const TD_URI: Subtree = { name: { type: "url", value: "cluster.local" } }

interface Case {
  readonly name: string
  /** `spec.request`; defaults to the contract's intermediate CSR. */
  readonly request?: () => Promise<string>
  readonly cr?: IntermediateCrOptions
  readonly policy?: Partial<SpiffePolicy>
  readonly expect: Decision
}

/** The contract's CSR with these options (e.g. other extensions or key). */
const csr = (options: CsrOptions) => () => intermediateRequest(options)

/** The contract's extensions with the one of `oid` replaced (or removed when `by` is undefined). */
const replacing = (oid: string, by: ReturnType<typeof caConstraintsExtension> | undefined) =>
  csr({ extensions: [...intermediateExtensions().flatMap((e) => (e.type === oid ? (by === undefined ? [] : [by]) : [e]))] })

const withNameConstraints = (permitted: ReadonlyArray<Subtree>, excluded: ReadonlyArray<Subtree> = []) =>
  replacing("2.5.29.30", nameConstraintsExtension(permitted, excluded))

const requester: ReadonlyArray<Case> = [
  { name: "the contract's request from the signer's ServiceAccount", expect: Approved() },
  {
    name: "the right request from the approver's ServiceAccount",
    cr: { username: "system:serviceaccount:cert-manager:csi-driver-spiffe-approver" },
    expect: Denied({ reasons: [`spec.username: ${USERNAME_WANT}, got "system:serviceaccount:cert-manager:csi-driver-spiffe-approver"`] })
  },
  {
    name: "the right request from a same-named ServiceAccount in another namespace",
    cr: { username: "system:serviceaccount:sandbox:csi-driver-spiffe-signer" },
    expect: Denied({ reasons: [`spec.username: ${USERNAME_WANT}, got "system:serviceaccount:sandbox:csi-driver-spiffe-signer"`] })
  },
  {
    name: "the right request from a user, not a ServiceAccount",
    cr: { username: "kubernetes-admin" },
    expect: Denied({ reasons: [`spec.username: ${USERNAME_WANT}, got "kubernetes-admin"`] })
  },
  { name: "no username", cr: { username: null }, expect: Denied({ reasons: [`spec.username: ${USERNAME_WANT}, got none`] }) },
  {
    name: "--signer-service-account unset: even the contract's request is denied",
    policy: { signerServiceAccount: undefined },
    expect: Denied({ reasons: ["spec.username: no intermediate CA is approved: the approver runs without --signer-service-account"] })
  }
]

const annotations: ReadonlyArray<Case> = [
  {
    name: "both annotations",
    cr: { annotations: { [INTERMEDIATE_ANNOTATION]: "cluster.local", [IDENTITY_ANNOTATION]: IDENTITY } },
    expect: Denied({ reasons: [`metadata.annotations[${IDENTITY_ANNOTATION}]: must not be set on an intermediate CA request`] })
  },
  {
    name: "intermediate annotation for another trust domain",
    cr: { annotations: { [INTERMEDIATE_ANNOTATION]: "example.org" } },
    expect: Denied({ reasons: [`metadata.annotations[${INTERMEDIATE_ANNOTATION}]: must be the trust domain cluster.local, got "example.org"`] })
  },
  {
    name: "intermediate annotation empty",
    cr: { annotations: { [INTERMEDIATE_ANNOTATION]: "" } },
    expect: Denied({ reasons: [`metadata.annotations[${INTERMEDIATE_ANNOTATION}]: must be the trust domain cluster.local, got ""`] })
  }
]

const spec: ReadonlyArray<Case> = [
  { name: "isCA false", cr: { isCA: false }, expect: Denied({ reasons: ["spec.isCA: must be true"] }) },
  {
    name: "wrong duration",
    cr: { duration: "720h" },
    expect: Denied({ reasons: ["spec.duration: must be exactly 168h0m0s, got 720h"] })
  },
  { name: "duration spelled differently is the same duration", cr: { duration: "10080m" }, expect: Approved() },
  {
    name: "duration follows --signer-intermediate-duration",
    policy: { signerIntermediateDurationMs: 24 * 3_600_000 },
    expect: Denied({ reasons: ["spec.duration: must be exactly 24h0m0s, got 168h0m0s"] })
  },
  { name: "no duration", cr: { duration: null }, expect: Denied({ reasons: ["spec.duration: must be exactly 168h0m0s, got none"] }) },
  {
    name: "an extra usage",
    cr: { usages: ["digital signature", "cert sign", "crl sign", "server auth"] },
    expect: Denied({ reasons: [`${USAGES_WANT}, got digital signature, cert sign, crl sign, server auth`] })
  },
  {
    name: "a usage missing",
    cr: { usages: ["cert sign", "crl sign"] },
    expect: Denied({ reasons: [`${USAGES_WANT}, got cert sign, crl sign`] })
  },
  {
    name: "wrong issuer",
    cr: { issuerRef: { name: "other-ca", kind: "Issuer" } },
    expect: Denied({ reasons: ['spec.issuerRef: must be ClusterIssuer.cert-manager.io/my-spiffe-ca, got "Issuer.cert-manager.io/other-ca"'] })
  }
]

const request: ReadonlyArray<Case> = [
  {
    name: "path length 1",
    request: replacing("2.5.29.19", caConstraintsExtension(true, 1)),
    expect: Denied({ reasons: [r("basic constraints path length must be 0, got 1")] })
  },
  {
    name: "no path length (unlimited)",
    request: replacing("2.5.29.19", caConstraintsExtension(true, undefined)),
    expect: Denied({ reasons: [r("basic constraints path length must be 0, got none (unlimited)")] })
  },
  {
    name: "basic constraints not a CA",
    request: replacing("2.5.29.19", caConstraintsExtension(false, undefined)),
    expect: Denied({ reasons: [r("basic constraints must mark a CA")] })
  },
  {
    name: "no basic constraints",
    request: replacing("2.5.29.19", undefined),
    expect: Denied({ reasons: [r("must contain the basicConstraints (2.5.29.19) extension")] })
  },
  {
    name: "basic constraints not critical",
    request: replacing("2.5.29.19", caConstraintsExtension(true, 0, false)),
    expect: Denied({ reasons: [r("extension basicConstraints (2.5.29.19) must be critical")] })
  },
  {
    name: "no name constraint",
    request: replacing("2.5.29.30", undefined),
    expect: Denied({ reasons: [r("must contain the nameConstraints (2.5.29.30) extension")] })
  },
  {
    name: "name constraints not critical",
    request: replacing("2.5.29.30", nameConstraintsExtension([TD_URI], [], false)),
    expect: Denied({ reasons: [r("extension nameConstraints (2.5.29.30) must be critical")] })
  },
  {
    name: "a second permitted subtree",
    request: withNameConstraints([TD_URI, { name: { type: "url", value: "example.org" } }]),
    expect: Denied({ reasons: [r(`${NC_WANT}, got uri:"cluster.local", uri:"example.org"`)] })
  },
  {
    name: "an excluded subtree",
    request: withNameConstraints([TD_URI], [{ name: { type: "dns", value: "example.org" } }]),
    expect: Denied({ reasons: [r('name constraints must exclude nothing, got dns:"example.org"')] })
  },
  {
    name: "only an excluded subtree",
    request: withNameConstraints([], [TD_URI]),
    expect: Denied({ reasons: [r(`${NC_WANT}, got none`), r('name constraints must exclude nothing, got uri:"cluster.local"')] })
  },
  {
    name: "a DNS constraint instead of URI",
    request: withNameConstraints([{ name: { type: "dns", value: "cluster.local" } }]),
    expect: Denied({ reasons: [r(`${NC_WANT}, got dns:"cluster.local"`)] })
  },
  {
    name: "a URI constraint for another trust domain",
    request: withNameConstraints([{ name: { type: "url", value: "example.org" } }]),
    expect: Denied({ reasons: [r(`${NC_WANT}, got uri:"example.org"`)] })
  },
  {
    name: "a URI constraint for the trust domain's subdomains",
    request: withNameConstraints([{ name: { type: "url", value: ".cluster.local" } }]),
    expect: Denied({ reasons: [r(`${NC_WANT}, got uri:".cluster.local"`)] })
  },
  {
    name: "a URI constraint spelled as a SPIFFE URI",
    request: withNameConstraints([{ name: { type: "url", value: "spiffe://cluster.local" } }]),
    expect: Denied({ reasons: [r(`${NC_WANT}, got uri:"spiffe://cluster.local"`)] })
  },
  {
    name: "a subtree with a maximum distance",
    request: withNameConstraints([{ ...TD_URI, maximum: 2 }]),
    expect: Denied({ reasons: [r('name constraint uri:"cluster.local" must have no minimum or maximum (RFC 5280 §4.2.1.10)')] })
  },
  {
    name: "a subtree with an explicit default minimum is not DER",
    request: withNameConstraints([{ ...TD_URI, minimum: 0 }]),
    expect: Denied({ reasons: [r("extension nameConstraints (2.5.29.30) is malformed")] })
  },
  {
    name: "a URI SAN",
    request: csr({ extensions: [...intermediateExtensions(), sanExtension([{ type: "url", value: IDENTITY }])] }),
    expect: Denied({ reasons: [r("must not contain a subjectAltName extension (an intermediate CA names no workload)")] })
  },
  {
    name: "a DNS SAN",
    request: csr({ extensions: [...intermediateExtensions(), sanExtension([{ type: "dns", value: "evil.example" }])] }),
    expect: Denied({ reasons: [r("must not contain a subjectAltName extension (an intermediate CA names no workload)")] })
  },
  {
    name: "an extended key usage",
    request: csr({ extensions: [...intermediateExtensions(), extendedKeyUsageExtension([SERVER_AUTH])] }),
    expect: Denied({ reasons: [r("extension extendedKeyUsage (2.5.29.37) is not allowed")] })
  },
  {
    name: "key usage with keyEncipherment too",
    request: replacing("2.5.29.15", keyUsageExtension(INTERMEDIATE_KEY_USAGE | KeyUsageFlags.keyEncipherment)),
    expect: Denied({ reasons: [r("key usage must be exactly digitalSignature, keyCertSign, cRLSign, got digitalSignature, keyEncipherment, keyCertSign, cRLSign")] })
  },
  {
    name: "key usage without cRLSign",
    request: replacing("2.5.29.15", keyUsageExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyCertSign)),
    expect: Denied({ reasons: [r("key usage must be exactly digitalSignature, keyCertSign, cRLSign, got digitalSignature, keyCertSign")] })
  },
  {
    name: "no key usage",
    request: replacing("2.5.29.15", undefined),
    expect: Denied({ reasons: [r("must contain the keyUsage (2.5.29.15) extension")] })
  },
  {
    name: "name constraints twice",
    request: csr({ extensions: [...intermediateExtensions(), nameConstraintsExtension([TD_URI])] }),
    expect: Denied({ reasons: [r("extension nameConstraints (2.5.29.30) appears more than once"), r(`${NC_WANT}, got uri:"cluster.local", uri:"cluster.local"`)] })
  },
  {
    name: "an RSA key",
    request: csr({ keyType: "rsa-2048" }),
    expect: Denied({ reasons: [r("public key type rsa-2048 is not allowed (allowed: ecdsa-p256)")] })
  },
  {
    name: "a P-384 key, even when leaves may use it",
    request: csr({ keyType: "ecdsa-p384" }),
    policy: { allowedKeyTypes: ["ecdsa-p256", "ecdsa-p384"] },
    expect: Denied({ reasons: [r("public key type ecdsa-p384 is not allowed (allowed: ecdsa-p256)")] })
  },
  { name: "a broken signature", request: csr({ tamper: true }), expect: Denied({ reasons: [r("signature does not verify")] }) },
  {
    name: "a subject with more than a CN",
    request: csr({ subject: "CN=csi-driver-spiffe signer cluster.local, O=evil" }),
    expect: Denied({ reasons: [r("subject may contain only a CN, got O")] })
  },
  { name: "an empty subject", request: csr({ subject: "" }), expect: Approved() },
  {
    name: "an unreadable CSR",
    request: async () => specRequest("junk"),
    expect: Denied({ reasons: [r("is not a PEM-encoded PKCS#10 certificate request (expected exactly one PEM block, found 0)")] })
  }
]

const elsewhere: ReadonlyArray<Case> = [
  {
    name: "isCA and the signer's CSR with the identity annotation instead: the SVID rule denies it",
    cr: { annotations: { [IDENTITY_ANNOTATION]: IDENTITY }, username: "system:serviceaccount:sandbox:app" },
    expect: Denied({
      reasons: [
        "spec.duration: must be exactly 1h0m0s, got 168h0m0s",
        "spec.isCA: must be false",
        r("subject must be empty, got CN"),
        r("must contain exactly one URI SAN, got 0"),
        r("extension nameConstraints (2.5.29.30) is not allowed"),
        r("key usage may only contain digitalSignature and keyEncipherment, got keyCertSign, cRLSign"),
        r("basic constraints must not mark a CA"),
        "spec.usages: must be exactly digital signature, key encipherment, server auth, client auth (in any order), got digital signature, cert sign, crl sign"
      ]
    })
  },
  {
    name: "isCA on the driver's own request with the identity annotation only",
    request: () => csrRequest(IDENTITY),
    cr: {
      annotations: { [IDENTITY_ANNOTATION]: IDENTITY },
      username: "system:serviceaccount:sandbox:app",
      duration: "1h",
      usages: ["digital signature", "key encipherment", "server auth", "client auth"]
    },
    expect: Denied({ reasons: ["spec.isCA: must be false"] })
  },
  {
    name: "isCA without any of our annotations is not ours (auto-approve off)",
    cr: { annotations: {} },
    expect: Unprocessed({ why: `no ${IDENTITY_ANNOTATION} annotation and auto-approve is off` })
  },
  {
    name: "every violation at once",
    request: csr({ keyType: "rsa-2048", extensions: [caConstraintsExtension(true, 1), sanExtension([{ type: "url", value: IDENTITY }])] }),
    cr: {
      annotations: { [INTERMEDIATE_ANNOTATION]: "example.org", [IDENTITY_ANNOTATION]: IDENTITY },
      username: "system:serviceaccount:sandbox:app",
      isCA: false,
      duration: "1h",
      usages: ["cert sign"],
      issuerRef: { name: "other-ca" }
    },
    expect: Denied({
      reasons: [
        `metadata.annotations[${IDENTITY_ANNOTATION}]: must not be set on an intermediate CA request`,
        `metadata.annotations[${INTERMEDIATE_ANNOTATION}]: must be the trust domain cluster.local, got "example.org"`,
        "spec.duration: must be exactly 168h0m0s, got 1h",
        "spec.isCA: must be true",
        'spec.issuerRef: must be ClusterIssuer.cert-manager.io/my-spiffe-ca, got "Issuer.cert-manager.io/other-ca"',
        r("public key type rsa-2048 is not allowed (allowed: ecdsa-p256)"),
        r("must not contain a subjectAltName extension (an intermediate CA names no workload)"),
        r("must contain the keyUsage (2.5.29.15) extension"),
        r("must contain the nameConstraints (2.5.29.30) extension"),
        r("basic constraints path length must be 0, got 1"),
        `spec.usages: must be exactly digital signature, cert sign, crl sign (in any order), got cert sign`,
        `spec.username: ${USERNAME_WANT}, got "system:serviceaccount:sandbox:app"`
      ]
    })
  }
]

const run = (c: Case) =>
  Effect.gen(function*() {
    const req = yield* Effect.promise(c.request ?? (() => intermediateRequest()))
    const cr: CertificateRequest = intermediateCertificateRequest(req, c.cr)
    const facts = yield* inspectCsr(cr.spec.request)
    assert.deepStrictEqual(evaluate({ ...SIGNER_POLICY, ...c.policy }, cr, facts), c.expect)
  })

describe("IntermediateRules (through SpiffeRules.evaluate)", () => {
  describe("requester", () => {
    for (const c of requester) it.effect(c.name, () => run(c))
  })
  describe("annotations", () => {
    for (const c of annotations) it.effect(c.name, () => run(c))
  })
  describe("spec", () => {
    for (const c of spec) it.effect(c.name, () => run(c))
  })
  describe("the CSR", () => {
    for (const c of request) it.effect(c.name, () => run(c))
  })
  describe("CA requests the intermediate rule does not see", () => {
    for (const c of elsewhere) it.effect(c.name, () => run(c))
  })

  it.effect("the contract's CSR reads as a CA with path length 0 and one URI subtree", () =>
    Effect.gen(function*() {
      const facts = yield* inspectCsr(yield* Effect.promise(() => intermediateRequest()))
      assert.strictEqual(facts._tag, "Parsed")
      if (facts._tag !== "Parsed") return
      assert.strictEqual(facts.basicConstraintsCa, true)
      assert.strictEqual(facts.basicConstraintsPathLen, 0)
      assert.deepStrictEqual(facts.keyUsage, ["digitalSignature", "keyCertSign", "cRLSign"])
      assert.deepStrictEqual(facts.nameConstraints, {
        permitted: [{ kind: "uri", value: "cluster.local", minimum: 0, maximum: undefined }],
        excluded: []
      })
      assert.deepStrictEqual(facts.uris, [])
    }))

  it.effect("an SVID request that carries the intermediate annotation is judged as an intermediate", () =>
    Effect.gen(function*() {
      const req = yield* Effect.promise(() => csrRequest(IDENTITY))
      const base = certificateRequest(req)
      const cr: CertificateRequest = {
        ...base,
        metadata: { ...base.metadata, annotations: { ...base.metadata.annotations, [INTERMEDIATE_ANNOTATION]: "cluster.local" } }
      }
      const decision = evaluate(SIGNER_POLICY, cr, yield* inspectCsr(req))
      assert.strictEqual(decision._tag, "Denied")
      if (decision._tag !== "Denied") return
      assert.include(decision.reasons, `metadata.annotations[${IDENTITY_ANNOTATION}]: must not be set on an intermediate CA request`)
      assert.include(decision.reasons, "spec.isCA: must be true")
      assert.include(decision.reasons, r("must contain the nameConstraints (2.5.29.30) extension"))
    }))
})

/**
 * The approver's rule table: every case of the original's evaluator tests (cert-manager/csi-driver-spiffe,
 * internal/approver/evaluator/*_test.go), the SPIFFE ID tricks, the checks the original leaves out
 * (issuerRef, key type, annotation value), and auto-approve. Each case asserts
 * the exact decision, i.e. the exact reasons in their exact order.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { inspectCsr } from "../../../src/approver/InspectCsr.ts"
import type { CertificateRequest } from "../../../src/domain/CertificateRequest.ts"
import { Approved, type Decision, Denied, Unprocessed } from "../../../src/domain/Decision.ts"
import { evaluate, KNOWN_KEY_TYPES, type SpiffePolicy } from "../../../src/domain/SpiffeRules.ts"
import {
  basicConstraintsExtension,
  certificateRequest,
  challengePassword,
  CLIENT_AUTH,
  CODE_SIGNING,
  type CrOptions,
  csrDer,
  csrRequest,
  type CsrOptions,
  driverExtensions,
  extendedKeyUsageExtension,
  IDENTITY,
  keyUsageExtension,
  KeyUsageFlags,
  rawExtension,
  type RawSan,
  sanExtension,
  SERVER_AUTH,
  specRequest,
  TEST_POLICY,
  toPem
} from "../../support/csr.ts"

const POLICY = TEST_POLICY

const r = (message: string) => `spec.request: ${message}`
const notSpiffe = (violation: string) => r(`URI SAN is not a valid SPIFFE ID: ${violation}`)
const otherSa = "spiffe://cluster.local/ns/sandbox/sa/other"
const USAGES_WANT = "must be exactly digital signature, key encipherment, server auth, client auth (in any order)"
const NO_ANNOTATION = "a request without the spiffe.csi.cert-manager.io/identity annotation"
const DS_KE = KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment

interface Case {
  readonly name: string
  /** `spec.request`; defaults to the driver's own CSR for IDENTITY. */
  readonly request?: () => Promise<string>
  readonly cr?: CrOptions
  readonly policy?: Partial<SpiffePolicy>
  readonly expect: Decision
}

/** A CSR with the URI SAN plus `sans`, then the driver's KU and EKU. */
const withSans = (sans: ReadonlyArray<RawSan>, uri = IDENTITY) => () =>
  csrRequest(uri, { extensions: [sanExtension([{ type: "url", value: uri }, ...sans]), ...driverExtensions(uri).slice(1)] })

/** The driver's CSR for `uri`, with these options. */
const csr = (options: CsrOptions = {}, uri = IDENTITY) => () => csrRequest(uri, options)

/** The driver's CSR carrying `uri` as its only URI. */
const uri = (value: string) => csr({}, value)

/** The driver's extensions with KU/EKU replaced. */
const usagesCsr = (ku: number | undefined, eku: ReadonlyArray<string> | undefined) =>
  csr({
    extensions: [
      sanExtension([{ type: "url", value: IDENTITY }]),
      ...(ku === undefined ? [] : [keyUsageExtension(ku)]),
      ...(eku === undefined ? [] : [extendedKeyUsageExtension(eku)])
    ]
  })

const original: ReadonlyArray<Case> = [
  {
    name: "bad PEM",
    request: async () => specRequest("this is not PEM"),
    expect: Denied({ reasons: [r("is not a PEM-encoded PKCS#10 certificate request (expected exactly one PEM block, found 0)")] })
  },
  { name: "missing duration", cr: { duration: null }, expect: Denied({ reasons: ["spec.duration: must be exactly 1h0m0s, got none"] }) },
  { name: "DNS names", request: withSans([{ type: "dns", value: "example.com" }]), expect: Denied({ reasons: [r("must not contain DNS SANs, got 1")] }) },
  {
    name: "IP addresses",
    request: withSans([{ type: "ip", value: "10.0.0.1" }, { type: "ip", value: "::1" }]),
    expect: Denied({ reasons: [r("must not contain IP SANs, got 2")] })
  },
  { name: "common name", request: csr({ subject: "CN=app" }), expect: Denied({ reasons: [r("subject must be empty, got CN")] }) },
  { name: "emails", request: withSans([{ type: "email", value: "a@example.com" }]), expect: Denied({ reasons: [r("must not contain email SANs, got 1")] }) },
  { name: "spec.isCA", cr: { isCA: true }, expect: Denied({ reasons: ["spec.isCA: must be false"] }) },
  {
    name: "spec.usages only digital signature and key encipherment",
    cr: { usages: ["digital signature", "key encipherment"] },
    expect: Denied({ reasons: [`spec.usages: ${USAGES_WANT}, got digital signature, key encipherment`] })
  },
  {
    name: "CSR key usage with certSign and EKU with codeSigning",
    request: usagesCsr(DS_KE | KeyUsageFlags.keyCertSign, [SERVER_AUTH, CODE_SIGNING]),
    expect: Denied({
      reasons: [
        r("key usage may only contain digitalSignature and keyEncipherment, got keyCertSign"),
        r("extended key usage may only contain serverAuth and clientAuth, got codeSigning (1.3.6.1.5.5.7.3.3)")
      ]
    })
  },
  {
    name: "wrong identity: URI for another ServiceAccount",
    request: uri(otherSa),
    expect: Denied({ reasons: [r(`SPIFFE ID must be ${IDENTITY}, got "${otherSa}"`)] })
  },
  {
    name: "valid P-521 request is denied by the default key policy",
    request: csr({ keyType: "ecdsa-p521" }),
    expect: Denied({ reasons: [r("public key type ecdsa-p521 is not allowed (allowed: ecdsa-p256)")] })
  },
  {
    name: "valid P-521 request is approved when the policy allows it",
    request: csr({ keyType: "ecdsa-p521" }),
    policy: { allowedKeyTypes: KNOWN_KEY_TYPES },
    expect: Approved()
  },
  { name: "valid P-256 request as the driver sends it", expect: Approved() }
]

const KU_BITS = [
  ["nonRepudiation", KeyUsageFlags.nonRepudiation],
  ["dataEncipherment", KeyUsageFlags.dataEncipherment],
  ["keyAgreement", KeyUsageFlags.keyAgreement],
  ["keyCertSign", KeyUsageFlags.keyCertSign],
  ["cRLSign", KeyUsageFlags.cRLSign],
  ["encipherOnly", KeyUsageFlags.encipherOnly],
  ["decipherOnly", KeyUsageFlags.decipherOnly]
] as const

const extensions: ReadonlyArray<Case> = [
  { name: "URI SAN only, no KU or EKU", request: usagesCsr(undefined, undefined), expect: Approved() },
  { name: "KU digitalSignature only", request: usagesCsr(KeyUsageFlags.digitalSignature, undefined), expect: Approved() },
  { name: "KU keyEncipherment only", request: usagesCsr(KeyUsageFlags.keyEncipherment, undefined), expect: Approved() },
  ...KU_BITS.map(([name, flag]): Case => ({
    name: `KU digitalSignature + ${name}`,
    request: usagesCsr(KeyUsageFlags.digitalSignature | flag, [SERVER_AUTH, CLIENT_AUTH]),
    expect: Denied({ reasons: [r(`key usage may only contain digitalSignature and keyEncipherment, got ${name}`)] })
  })),
  {
    name: "KU with every forbidden bit lists them in bit order",
    request: usagesCsr(KU_BITS.reduce((acc, [, f]) => acc | f, 0), undefined),
    expect: Denied({
      reasons: [r(`key usage may only contain digitalSignature and keyEncipherment, got ${KU_BITS.map(([n]) => n).join(", ")}`)]
    })
  },
  { name: "EKU serverAuth only (positive path)", request: usagesCsr(DS_KE, [SERVER_AUTH]), expect: Approved() },
  { name: "EKU clientAuth only (positive path)", request: usagesCsr(DS_KE, [CLIENT_AUTH]), expect: Approved() },
  { name: "EKU clientAuth + serverAuth in reverse order", request: usagesCsr(DS_KE, [CLIENT_AUTH, SERVER_AUTH]), expect: Approved() },
  {
    name: "EKU anyExtendedKeyUsage",
    request: usagesCsr(DS_KE, [SERVER_AUTH, "2.5.29.37.0"]),
    expect: Denied({ reasons: [r("extended key usage may only contain serverAuth and clientAuth, got anyExtendedKeyUsage (2.5.29.37.0)")] })
  },
  {
    name: "DNS, IP and email SANs together",
    request: withSans([{ type: "dns", value: "a" }, { type: "ip", value: "10.0.0.1" }, { type: "email", value: "a@b" }]),
    expect: Denied({ reasons: [r("must not contain DNS SANs, got 1"), r("must not contain IP SANs, got 1"), r("must not contain email SANs, got 1")] })
  },
  {
    name: "otherName, directoryName and registeredID SANs",
    request: withSans([{ type: "otherName", oid: "1.3.6.1.4.1.311.20.2.3", value: "upn" }, { type: "directoryName" }, { type: "id", value: "1.2.3.4" }]),
    expect: Denied({ reasons: [r("must contain only URI SANs, got otherName, directoryName, registeredID")] })
  },
  { name: "basic constraints CA:false is allowed", request: csr({ extensions: [...driverExtensions(IDENTITY), basicConstraintsExtension(false)] }), expect: Approved() },
  {
    name: "basic constraints CA:true in the CSR",
    request: csr({ extensions: [...driverExtensions(IDENTITY), basicConstraintsExtension(true)] }),
    expect: Denied({ reasons: [r("basic constraints must not mark a CA")] })
  },
  {
    name: "unknown extension",
    request: csr({ extensions: [...driverExtensions(IDENTITY), rawExtension("1.2.3.4")] }),
    expect: Denied({ reasons: [r("extension 1.2.3.4 is not allowed")] })
  },
  {
    name: "subjectKeyIdentifier extension",
    request: csr({ extensions: [...driverExtensions(IDENTITY), rawExtension("2.5.29.14", new Uint8Array([0x04, 0x01, 0x00]))] }),
    expect: Denied({ reasons: [r("extension subjectKeyIdentifier (2.5.29.14) is not allowed")] })
  },
  {
    name: "two SAN extensions",
    request: csr({ extensions: [...driverExtensions(IDENTITY), sanExtension([{ type: "url", value: IDENTITY }])] }),
    expect: Denied({ reasons: [r("must contain exactly one URI SAN, got 2"), r("extension subjectAltName (2.5.29.17) appears more than once")] })
  },
  {
    name: "malformed key usage extension",
    request: csr({ extensions: [sanExtension([{ type: "url", value: IDENTITY }]), rawExtension("2.5.29.15", new Uint8Array([0x05, 0x00]), true)] }),
    expect: Denied({ reasons: [r("extension keyUsage (2.5.29.15) is malformed")] })
  },
  {
    name: "challengePassword attribute",
    request: csr({ attributes: [challengePassword("hunter2")] }),
    expect: Denied({ reasons: [r("attribute challengePassword (1.2.840.113549.1.9.7) is not allowed")] })
  }
]

const tricks: ReadonlyArray<Case> = [
  { name: "upper-case scheme", request: uri("SPIFFE://cluster.local/ns/sandbox/sa/app"), expect: Denied({ reasons: [notSpiffe("scheme must be lower-case 'spiffe'")] }) },
  {
    name: "upper-case trust domain",
    request: uri("spiffe://Cluster.Local/ns/sandbox/sa/app"),
    expect: Denied({ reasons: [notSpiffe("trust domain may only contain lower-case letters, digits, '.', '-' and '_'")] })
  },
  { name: "trailing slash", request: uri(`${IDENTITY}/`), expect: Denied({ reasons: [notSpiffe("path must not have empty segments or a trailing slash")] }) },
  { name: "port", request: uri("spiffe://cluster.local:8443/ns/sandbox/sa/app"), expect: Denied({ reasons: [notSpiffe("SPIFFE ID must not have a port")] }) },
  { name: "userinfo", request: uri("spiffe://admin@cluster.local/ns/sandbox/sa/app"), expect: Denied({ reasons: [notSpiffe("SPIFFE ID must not have user info")] }) },
  { name: "query", request: uri(`${IDENTITY}?x=1`), expect: Denied({ reasons: [notSpiffe("SPIFFE ID must not have a query")] }) },
  { name: "fragment", request: uri(`${IDENTITY}#x`), expect: Denied({ reasons: [notSpiffe("SPIFFE ID must not have a fragment")] }) },
  {
    name: "dot-segments resolving to the right ID",
    request: uri("spiffe://cluster.local/ns/sandbox/sa/other/../app"),
    expect: Denied({ reasons: [notSpiffe("path must not have dot-segments")] })
  },
  { name: "percent-encoded path", request: uri("spiffe://cluster.local/ns/sandbox/sa/%61pp"), expect: Denied({ reasons: [notSpiffe("path must not be percent-encoded")] }) },
  {
    name: "percent-encoded trust domain",
    request: uri("spiffe://cluster%2Elocal/ns/sandbox/sa/app"),
    expect: Denied({ reasons: [notSpiffe("trust domain may only contain lower-case letters, digits, '.', '-' and '_'")] })
  },
  {
    name: "suffix trust domain foo.bar.evil for foo.bar",
    request: uri("spiffe://foo.bar.evil/ns/sandbox/sa/app"),
    cr: { annotation: "spiffe://foo.bar/ns/sandbox/sa/app" },
    policy: { trustDomain: "foo.bar" },
    expect: Denied({ reasons: [r(`SPIFFE ID must be in trust domain foo.bar, got "foo.bar.evil"`)] })
  },
  {
    name: "two URIs, the right one first",
    request: withSans([{ type: "url", value: otherSa }]),
    expect: Denied({ reasons: [r("must contain exactly one URI SAN, got 2")] })
  },
  {
    name: "no URI at all",
    request: csr({ extensions: driverExtensions(IDENTITY).slice(1) }),
    expect: Denied({ reasons: [r("must contain exactly one URI SAN, got 0")] })
  },
  {
    name: "URI for a ServiceAccount in another namespace",
    request: uri("spiffe://cluster.local/ns/kube-system/sa/app"),
    expect: Denied({ reasons: [r(`SPIFFE ID must be ${IDENTITY}, got "spiffe://cluster.local/ns/kube-system/sa/app"`)] })
  },
  {
    name: "annotation names another ServiceAccount",
    cr: { annotation: otherSa },
    expect: Denied({ reasons: [`metadata.annotations[spiffe.csi.cert-manager.io/identity]: must be ${IDENTITY}, got "${otherSa}"`] })
  },
  {
    name: "issuerRef without kind and group equals a defaulted Issuer",
    cr: { issuerRef: { name: "my-spiffe-ca" } },
    policy: { issuer: { name: "my-spiffe-ca", kind: "Issuer", group: "cert-manager.io" } },
    expect: Approved()
  },
  {
    name: "issuerRef with empty kind and group equals a defaulted Issuer",
    cr: { issuerRef: { name: "my-spiffe-ca", kind: "", group: "" } },
    policy: { issuer: { name: "my-spiffe-ca" } },
    expect: Approved()
  },
  {
    name: "issuerRef without kind is an Issuer, not the ClusterIssuer",
    cr: { issuerRef: { name: "my-spiffe-ca" } },
    expect: Denied({ reasons: [`spec.issuerRef: must be ClusterIssuer.cert-manager.io/my-spiffe-ca, got "Issuer.cert-manager.io/my-spiffe-ca"`] })
  },
  {
    name: "issuerRef in another group",
    cr: { issuerRef: { name: "my-spiffe-ca", kind: "ClusterIssuer", group: "awspca.cert-manager.io" } },
    expect: Denied({ reasons: [`spec.issuerRef: must be ClusterIssuer.cert-manager.io/my-spiffe-ca, got "ClusterIssuer.awspca.cert-manager.io/my-spiffe-ca"`] })
  },
  {
    name: "RSA-2048 key under the default policy",
    request: csr({ keyType: "rsa-2048" }),
    expect: Denied({ reasons: [r("public key type rsa-2048 is not allowed (allowed: ecdsa-p256)")] })
  },
  { name: "RSA-2048 key when allowed", request: csr({ keyType: "rsa-2048" }), policy: { allowedKeyTypes: ["ecdsa-p256", "rsa-2048"] }, expect: Approved() },
  { name: "Ed25519 key when allowed", request: csr({ keyType: "ed25519" }), policy: { allowedKeyTypes: KNOWN_KEY_TYPES }, expect: Approved() },
  { name: "tampered signature", request: csr({ tamper: true }), expect: Denied({ reasons: [r("signature does not verify")] }) },
  {
    name: "tampered RSA signature",
    request: csr({ keyType: "rsa-2048", tamper: true }),
    policy: { allowedKeyTypes: KNOWN_KEY_TYPES },
    expect: Denied({ reasons: [r("signature does not verify")] })
  },
  {
    name: "tampered Ed25519 signature",
    request: csr({ keyType: "ed25519", tamper: true }),
    policy: { allowedKeyTypes: KNOWN_KEY_TYPES },
    expect: Denied({ reasons: [r("signature does not verify")] })
  },
  {
    name: "ECDSA with SHA-1 is not a supported signature",
    request: csr({ signingAlgorithm: { name: "ECDSA", hash: "SHA-1" } }),
    expect: Denied({ reasons: [r("signature algorithm ecdsa-with-SHA1 (1.2.840.10045.4.1) is not supported")] })
  },
  { name: "P-384 key when allowed", request: csr({ keyType: "ecdsa-p384" }), policy: { allowedKeyTypes: KNOWN_KEY_TYPES }, expect: Approved() },
  { name: "RSA-3072 key when allowed", request: csr({ keyType: "rsa-3072" }), policy: { allowedKeyTypes: KNOWN_KEY_TYPES }, expect: Approved() },
  {
    name: "RSA-3072 key when only RSA-2048 is allowed",
    request: csr({ keyType: "rsa-3072" }),
    policy: { allowedKeyTypes: ["ecdsa-p256", "rsa-2048"] },
    expect: Denied({ reasons: [r("public key type rsa-3072 is not allowed (allowed: ecdsa-p256, rsa-2048)")] })
  },
  { name: "subject O=", request: csr({ subject: "O=system:masters" }), expect: Denied({ reasons: [r("subject must be empty, got O")] }) },
  {
    name: "username that is not a ServiceAccount",
    cr: { username: "alice" },
    expect: Denied({ reasons: [`spec.username: must be a ServiceAccount (system:serviceaccount:<namespace>:<name>), got "alice"`] })
  },
  {
    name: "no username",
    cr: { username: null },
    expect: Denied({ reasons: ["spec.username: must be a ServiceAccount (system:serviceaccount:<namespace>:<name>), got none"] })
  },
  { name: "duration spelled 60m equals 1h", cr: { duration: "60m" }, expect: Approved() },
  { name: "duration 3h0m0s", cr: { duration: "3h0m0s" }, expect: Denied({ reasons: ["spec.duration: must be exactly 1h0m0s, got 3h0m0s"] }) },
  { name: "duration that does not parse", cr: { duration: "1 hour" }, expect: Denied({ reasons: [`spec.duration: must be exactly 1h0m0s, got "1 hour"`] }) },
  { name: "usages in another order", cr: { usages: ["client auth", "server auth", "key encipherment", "digital signature"] }, expect: Approved() },
  {
    name: "usages with a duplicate",
    cr: { usages: ["digital signature", "key encipherment", "server auth", "client auth", "client auth"] },
    expect: Denied({ reasons: [`spec.usages: ${USAGES_WANT}, got digital signature, key encipherment, server auth, client auth, client auth`] })
  },
  {
    name: "a certificate instead of a request",
    request: async () => specRequest(toPem(await csrDer(IDENTITY), "CERTIFICATE")),
    expect: Denied({ reasons: [r("is not a PEM-encoded PKCS#10 certificate request (PEM block is not a CERTIFICATE REQUEST)")] })
  },
  {
    name: "two PEM blocks",
    request: async () => specRequest(toPem(await csrDer(IDENTITY)) + toPem(await csrDer(otherSa))),
    expect: Denied({ reasons: [r("is not a PEM-encoded PKCS#10 certificate request (expected exactly one PEM block, found 2)")] })
  },
  {
    name: "garbage DER inside a PEM block",
    request: async () => specRequest(toPem(new Uint8Array([0x30, 0x05, 0x01]))),
    expect: Denied({ reasons: [r("is not a PEM-encoded PKCS#10 certificate request (malformed DER: truncated content)")] })
  },
  {
    name: "spec.request that is not base64",
    request: async () => "@@@",
    expect: Denied({ reasons: [r("is not a PEM-encoded PKCS#10 certificate request (not canonical base64)")] })
  },
  {
    name: "many violations at once, in a stable order",
    request: async () =>
      csrRequest(otherSa, {
        keyType: "rsa-2048",
        subject: "CN=app, O=x",
        tamper: true,
        extensions: [
          sanExtension([{ type: "url", value: otherSa }, { type: "dns", value: "a" }]),
          keyUsageExtension(DS_KE | KeyUsageFlags.keyCertSign),
          basicConstraintsExtension(true)
        ]
      }),
    cr: { annotation: "spiffe://cluster.local/ns/sandbox/sa/x", duration: "3h", isCA: true, usages: ["cert sign"], issuerRef: { name: "other" } },
    expect: Denied({
      reasons: [
        `metadata.annotations[spiffe.csi.cert-manager.io/identity]: must be ${IDENTITY}, got "spiffe://cluster.local/ns/sandbox/sa/x"`,
        "spec.duration: must be exactly 1h0m0s, got 3h",
        "spec.isCA: must be false",
        `spec.issuerRef: must be ClusterIssuer.cert-manager.io/my-spiffe-ca, got "Issuer.cert-manager.io/other"`,
        r("signature does not verify"),
        r("public key type rsa-2048 is not allowed (allowed: ecdsa-p256)"),
        r("subject must be empty, got CN, O"),
        r("must not contain DNS SANs, got 1"),
        r(`SPIFFE ID must be ${IDENTITY}, got "${otherSa}"`),
        r("key usage may only contain digitalSignature and keyEncipherment, got keyCertSign"),
        r("basic constraints must not mark a CA"),
        `spec.usages: ${USAGES_WANT}, got cert sign`
      ]
    })
  }
]

const OTHER_ISSUER = { name: "letsencrypt", kind: "ClusterIssuer", group: "cert-manager.io" }
const auto: ReadonlyArray<Case> = [
  {
    name: "no annotation, auto-approve off: unprocessed",
    cr: { annotation: null },
    expect: Unprocessed({ why: "no spiffe.csi.cert-manager.io/identity annotation and auto-approve is off" })
  },
  {
    name: "auto-approve: other issuer, DNS-only request",
    request: csr({ subject: "CN=web", extensions: [sanExtension([{ type: "dns", value: "web.example.com" }])], keyType: "rsa-2048" }),
    cr: { annotation: null, issuerRef: OTHER_ISSUER, duration: "2160h", username: "alice" },
    policy: { autoApproveNonSpiffe: true },
    expect: Approved()
  },
  {
    name: "auto-approve: other issuer with an https URI",
    request: uri("https://example.com/x"),
    cr: { annotation: null, issuerRef: OTHER_ISSUER },
    policy: { autoApproveNonSpiffe: true },
    expect: Approved()
  },
  {
    name: "auto-approve: SPIFFE issuer is refused",
    request: csr({ extensions: [sanExtension([{ type: "dns", value: "web" }])] }),
    cr: { annotation: null },
    policy: { autoApproveNonSpiffe: true },
    expect: Denied({ reasons: [`spec.issuerRef: ${NO_ANNOTATION} must not use the SPIFFE issuer ClusterIssuer.cert-manager.io/my-spiffe-ca`] })
  },
  {
    name: "auto-approve: SPIFFE issuer reached through kind/group defaulting is refused",
    request: csr({ extensions: [sanExtension([{ type: "dns", value: "web" }])] }),
    cr: { annotation: null, issuerRef: { name: "spiffe-ca" } },
    policy: { autoApproveNonSpiffe: true, issuer: { name: "spiffe-ca", kind: "Issuer", group: "cert-manager.io" } },
    expect: Denied({ reasons: [`spec.issuerRef: ${NO_ANNOTATION} must not use the SPIFFE issuer Issuer.cert-manager.io/spiffe-ca`] })
  },
  {
    name: "auto-approve: upper-case SPIFFE URI for another issuer is refused",
    request: uri("SPIFFE://cluster.local/ns/sandbox/sa/app"),
    cr: { annotation: null, issuerRef: OTHER_ISSUER },
    policy: { autoApproveNonSpiffe: true },
    expect: Denied({ reasons: [r(`${NO_ANNOTATION} must not contain a SPIFFE URI SAN`)] })
  },
  {
    name: "auto-approve: SPIFFE URI among other URIs is refused",
    request: withSans([{ type: "url", value: "spiffe://cluster.local/ns/x/sa/y" }], "https://example.com"),
    cr: { annotation: null, issuerRef: OTHER_ISSUER },
    policy: { autoApproveNonSpiffe: true },
    expect: Denied({ reasons: [r(`${NO_ANNOTATION} must not contain a SPIFFE URI SAN`)] })
  },
  {
    name: "auto-approve: SPIFFE issuer and SPIFFE URI together",
    request: uri(IDENTITY),
    cr: { annotation: null },
    policy: { autoApproveNonSpiffe: true },
    expect: Denied({
      reasons: [
        `spec.issuerRef: ${NO_ANNOTATION} must not use the SPIFFE issuer ClusterIssuer.cert-manager.io/my-spiffe-ca`,
        r(`${NO_ANNOTATION} must not contain a SPIFFE URI SAN`)
      ]
    })
  },
  {
    name: "auto-approve: unreadable CSR is refused",
    request: async () => specRequest("junk"),
    cr: { annotation: null, issuerRef: OTHER_ISSUER },
    policy: { autoApproveNonSpiffe: true },
    expect: Denied({ reasons: [r("is not a PEM-encoded PKCS#10 certificate request (expected exactly one PEM block, found 0)")] })
  },
  {
    name: "auto-approve on: annotated requests still get the full rules",
    cr: { duration: "2h" },
    policy: { autoApproveNonSpiffe: true },
    expect: Denied({ reasons: ["spec.duration: must be exactly 1h0m0s, got 2h"] })
  }
]

const run = (c: Case) =>
  Effect.gen(function*() {
    const request = yield* Effect.promise(c.request ?? csr())
    const cr: CertificateRequest = certificateRequest(request, c.cr)
    const facts = yield* inspectCsr(cr.spec.request)
    assert.deepStrictEqual(evaluate({ ...POLICY, ...c.policy }, cr, facts), c.expect)
  })

describe("SpiffeRules.evaluate", () => {
  describe("the original's evaluator cases", () => {
    for (const c of original) it.effect(c.name, () => run(c))
  })
  describe("CSR extensions", () => {
    for (const c of extensions) it.effect(c.name, () => run(c))
  })
  describe("tricks and gaps", () => {
    for (const c of tricks) it.effect(c.name, () => run(c))
  })
  describe("auto-approve-non-spiffe", () => {
    for (const c of auto) it.effect(c.name, () => run(c))
  })
  it("has at least 40 cases", () => {
    assert.isAtLeast(original.length + extensions.length + tricks.length + auto.length, 40)
  })
})

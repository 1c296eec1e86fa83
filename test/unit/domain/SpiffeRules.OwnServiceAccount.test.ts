/**
 * The approver's own-ServiceAccount mode (`--use-own-service-account` of cert-manager/csi-driver-spiffe's
 * approver, internal/approver/evaluator/identity.go), stricter than the original: the requester must be exactly `--driver-service-account`, the
 * single URI SAN a workload ID `/ns/<ns>/sa/<sa>` in the trust domain whose `<ns>` is the request's
 * own namespace, the identity annotation that same URI, and every other rule still applies. Also the
 * flags that turn it on, and that the default mode is untouched. Each case asserts the exact decision.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import * as ApproverConfig from "../../../src/services/ApproverConfig.ts"
import { parseApproverArgs } from "../../../src/config/ApproverFlags.ts"
import { inspectCsr } from "../../../src/approver/InspectCsr.ts"
import type { CertificateRequest } from "../../../src/domain/CertificateRequest.ts"
import { Approved, type Decision, Denied } from "../../../src/domain/Decision.ts"
import { evaluate, type SpiffePolicy } from "../../../src/domain/SpiffeRules.ts"
import { policyOf } from "../../../src/approver/Evaluator.ts"
import {
  basicConstraintsExtension,
  certificateRequest,
  type CrOptions,
  csrRequest,
  driverExtensions,
  IDENTITY,
  NAMESPACE,
  SERVICE_ACCOUNT,
  sanExtension,
  specRequest,
  TEST_POLICY
} from "../../support/csr.ts"

const DRIVER = "system:serviceaccount:cert-manager:cert-manager-csi-driver-spiffe"
const POD_SA = `system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}`
const OWN: SpiffePolicy = { ...TEST_POLICY, driverServiceAccount: DRIVER }

const ANNOTATION = "metadata.annotations[spiffe.csi.cert-manager.io/identity]"
const r = (message: string) => `spec.request: ${message}`
const notDriver = (got: string) =>
  `spec.username: must be the CSI driver's ServiceAccount ${DRIVER} (--use-own-service-account), got ${got}`
const badPath = (got: string) => r(`SPIFFE ID path must be /ns/<namespace>/sa/<service-account>, got ${got}`)
const notAnnotated = (uri: string, got: string) => `${ANNOTATION}: must equal the URI SAN "${uri}", got "${got}"`

interface Case {
  readonly name: string
  /** The CSR's single URI SAN (also the annotation unless `cr.annotation` says otherwise); IDENTITY by default. */
  readonly uri?: string
  /** `spec.request`, overriding `uri`. */
  readonly request?: () => Promise<string>
  /** Defaults: requested by DRIVER, annotated with `uri`, in namespace `sandbox`. */
  readonly cr?: CrOptions
  readonly policy?: Partial<SpiffePolicy>
  readonly expect: Decision
}

const id = (path: string, td = "cluster.local") => `spiffe://${td}${path}`

const cases: ReadonlyArray<Case> = [
  { name: "the driver's ServiceAccount asking for a pod's ID in the request's namespace", expect: Approved() },
  {
    name: "another ServiceAccount of the same namespace: the driver asks for any pod there",
    uri: id(`/ns/${NAMESPACE}/sa/other`),
    expect: Approved()
  },
  {
    name: "a ServiceAccount name with dots",
    uri: id(`/ns/${NAMESPACE}/sa/app.v2`),
    expect: Approved()
  },
  {
    name: "the pod's own ServiceAccount as requester (a default-mode request) is denied",
    cr: { username: POD_SA },
    expect: Denied({ reasons: [notDriver(`"${POD_SA}"`)] })
  },
  {
    name: "a ServiceAccount that merely resembles the driver's (other namespace) is denied",
    cr: { username: "system:serviceaccount:kube-system:cert-manager-csi-driver-spiffe" },
    expect: Denied({ reasons: [notDriver(`"system:serviceaccount:kube-system:cert-manager-csi-driver-spiffe"`)] })
  },
  { name: "a user that is not a ServiceAccount is denied", cr: { username: "alice" }, expect: Denied({ reasons: [notDriver(`"alice"`)] }) },
  { name: "no username is denied", cr: { username: null }, expect: Denied({ reasons: [notDriver("none")] }) },
  {
    name: "namespace mismatch: request in kube-system for a sandbox ID",
    cr: { namespace: "kube-system" },
    expect: Denied({ reasons: [r(`SPIFFE ID must be in the request's own namespace kube-system, got "${NAMESPACE}"`)] })
  },
  {
    name: "namespace mismatch: request in sandbox for a kube-system ID",
    uri: id("/ns/kube-system/sa/default"),
    expect: Denied({ reasons: [r(`SPIFFE ID must be in the request's own namespace ${NAMESPACE}, got "kube-system"`)] })
  },
  {
    name: "wrong trust domain",
    uri: id(`/ns/${NAMESPACE}/sa/${SERVICE_ACCOUNT}`, "evil.example"),
    expect: Denied({ reasons: [r(`SPIFFE ID must be in trust domain cluster.local, got "evil.example"`)] })
  },
  {
    name: "suffix trust domain",
    uri: id(`/ns/${NAMESPACE}/sa/${SERVICE_ACCOUNT}`, "cluster.local.evil"),
    expect: Denied({ reasons: [r(`SPIFFE ID must be in trust domain cluster.local, got "cluster.local.evil"`)] })
  },
  { name: "malformed path: the trust domain's own ID", uri: id(""), expect: Denied({ reasons: [badPath("none")] }) },
  {
    name: "malformed path: no sa segment",
    uri: id(`/ns/${NAMESPACE}/${SERVICE_ACCOUNT}`),
    expect: Denied({ reasons: [badPath(`"/ns/${NAMESPACE}/${SERVICE_ACCOUNT}"`)] })
  },
  {
    name: "malformed path: extra segment after the ServiceAccount",
    uri: id(`/ns/${NAMESPACE}/sa/${SERVICE_ACCOUNT}/admin`),
    expect: Denied({ reasons: [badPath(`"/ns/${NAMESPACE}/sa/${SERVICE_ACCOUNT}/admin"`)] })
  },
  {
    name: "malformed path: segments swapped",
    uri: id(`/sa/${SERVICE_ACCOUNT}/ns/${NAMESPACE}`),
    expect: Denied({ reasons: [badPath(`"/sa/${SERVICE_ACCOUNT}/ns/${NAMESPACE}"`)] })
  },
  {
    name: "malformed path: upper-case NS keyword",
    uri: id(`/NS/${NAMESPACE}/sa/${SERVICE_ACCOUNT}`),
    expect: Denied({ reasons: [badPath(`"/NS/${NAMESPACE}/sa/${SERVICE_ACCOUNT}"`)] })
  },
  {
    name: "a ServiceAccount name Kubernetes would not accept",
    uri: id(`/ns/${NAMESPACE}/sa/App_1`),
    expect: Denied({ reasons: [r(`SPIFFE ID names "App_1", which is not a valid ServiceAccount name`)] })
  },
  {
    name: "dot-segments are still refused before the path is read",
    uri: id(`/ns/other/../${NAMESPACE}/sa/${SERVICE_ACCOUNT}`),
    expect: Denied({ reasons: [r("URI SAN is not a valid SPIFFE ID: path must not have dot-segments")] })
  },
  {
    name: "annotation names another ServiceAccount than the URI",
    cr: { annotation: id(`/ns/${NAMESPACE}/sa/other`) },
    expect: Denied({ reasons: [notAnnotated(IDENTITY, id(`/ns/${NAMESPACE}/sa/other`))] })
  },
  {
    name: "annotation in the request's namespace, URI for another namespace",
    uri: id("/ns/kube-system/sa/default"),
    cr: { annotation: IDENTITY },
    expect: Denied({
      reasons: [
        notAnnotated(id("/ns/kube-system/sa/default"), IDENTITY),
        r(`SPIFFE ID must be in the request's own namespace ${NAMESPACE}, got "kube-system"`)
      ]
    })
  },
  {
    name: "two URIs: one reason, the annotation is not compared",
    request: () =>
      csrRequest(IDENTITY, {
        extensions: [sanExtension([{ type: "url", value: IDENTITY }, { type: "url", value: id(`/ns/${NAMESPACE}/sa/other`) }]), ...driverExtensions(IDENTITY).slice(1)]
      }),
    expect: Denied({ reasons: [r("must contain exactly one URI SAN, got 2")] })
  },
  {
    name: "unreadable CSR",
    request: async () => specRequest("junk"),
    expect: Denied({ reasons: [r("is not a PEM-encoded PKCS#10 certificate request (expected exactly one PEM block, found 0)")] })
  },
  {
    name: "every other rule still applies, all reported in a stable order",
    uri: id("/ns/kube-system/sa/default"),
    request: () =>
      csrRequest(id("/ns/kube-system/sa/default"), {
        keyType: "rsa-2048",
        subject: "CN=app",
        extensions: [
          sanExtension([{ type: "url", value: id("/ns/kube-system/sa/default") }, { type: "dns", value: "a" }]),
          ...driverExtensions(IDENTITY).slice(1),
          basicConstraintsExtension(true)
        ]
      }),
    cr: { username: POD_SA, duration: "2h", isCA: true, usages: ["digital signature"], issuerRef: { name: "other" }, annotation: IDENTITY },
    expect: Denied({
      reasons: [
        notAnnotated(id("/ns/kube-system/sa/default"), IDENTITY),
        "spec.duration: must be exactly 1h0m0s, got 2h",
        "spec.isCA: must be false",
        `spec.issuerRef: must be ClusterIssuer.cert-manager.io/my-spiffe-ca, got "Issuer.cert-manager.io/other"`,
        r("public key type rsa-2048 is not allowed (allowed: ecdsa-p256)"),
        r("subject must be empty, got CN"),
        r("must not contain DNS SANs, got 1"),
        r(`SPIFFE ID must be in the request's own namespace ${NAMESPACE}, got "kube-system"`),
        r("basic constraints must not mark a CA"),
        "spec.usages: must be exactly digital signature, key encipherment, server auth, client auth (in any order), got digital signature",
        notDriver(`"${POD_SA}"`)
      ]
    })
  },
  {
    name: "several identity violations at once",
    uri: id("/ns/kube-system/sa/default", "evil.example"),
    cr: { username: "alice", namespace: "sandbox", annotation: IDENTITY },
    expect: Denied({
      reasons: [
        notAnnotated(id("/ns/kube-system/sa/default", "evil.example"), IDENTITY),
        r(`SPIFFE ID must be in trust domain cluster.local, got "evil.example"`),
        notDriver(`"alice"`)
      ]
    })
  },
  {
    name: "default mode is unchanged: the driver's ServiceAccount may only have its own ID",
    policy: { driverServiceAccount: undefined },
    expect: Denied({
      reasons: [
        `${ANNOTATION}: must be spiffe://cluster.local/ns/cert-manager/sa/cert-manager-csi-driver-spiffe, got "${IDENTITY}"`,
        r(`SPIFFE ID must be spiffe://cluster.local/ns/cert-manager/sa/cert-manager-csi-driver-spiffe, got "${IDENTITY}"`)
      ]
    })
  },
  {
    name: "default mode is unchanged: the pod's own request is approved",
    policy: { driverServiceAccount: undefined },
    cr: { username: POD_SA },
    expect: Approved()
  }
]

const run = (c: Case) =>
  Effect.gen(function*() {
    const uri = c.uri ?? IDENTITY
    const request = yield* Effect.promise(c.request ?? (() => csrRequest(uri)))
    const cr: CertificateRequest = certificateRequest(request, { username: DRIVER, annotation: uri, ...c.cr })
    const facts = yield* inspectCsr(cr.spec.request)
    assert.deepStrictEqual(evaluate({ ...OWN, ...c.policy }, cr, facts), c.expect)
  })

// --- Flags ---

const REQUIRED = "--driver-service-account is required with --use-own-service-account"
const illFormed = (got: string) =>
  `--driver-service-account: must be a ServiceAccount username (system:serviceaccount:<namespace>:<name>), got ${JSON.stringify(got)}`

interface FlagCase {
  readonly name: string
  readonly argv: ReadonlyArray<string>
  /** The decoded driver ServiceAccount, or the one-line error. */
  readonly expect: { readonly driverServiceAccount: string | undefined } | { readonly error: string }
}

const flagCases: ReadonlyArray<FlagCase> = [
  { name: "default: own-ServiceAccount mode off", argv: [], expect: { driverServiceAccount: undefined } },
  {
    name: "--use-own-service-account with --driver-service-account",
    argv: ["--use-own-service-account", `--driver-service-account=${DRIVER}`],
    expect: { driverServiceAccount: DRIVER }
  },
  {
    name: "--use-own-service-account=true, value as the next argument",
    argv: ["--use-own-service-account=true", "--driver-service-account", DRIVER],
    expect: { driverServiceAccount: DRIVER }
  },
  {
    name: "--driver-service-account without the mode is ignored, as in the original",
    argv: [`--driver-service-account=${DRIVER}`],
    expect: { driverServiceAccount: undefined }
  },
  {
    name: "--use-own-service-account=false with --driver-service-account",
    argv: ["--use-own-service-account=false", `--driver-service-account=${DRIVER}`],
    expect: { driverServiceAccount: undefined }
  },
  { name: "missing --driver-service-account", argv: ["--use-own-service-account"], expect: { error: REQUIRED } },
  { name: "empty --driver-service-account", argv: ["--use-own-service-account", "--driver-service-account="], expect: { error: REQUIRED } },
  { name: "a bare name", argv: ["--use-own-service-account", "--driver-service-account=cert-manager-csi-driver-spiffe"], expect: { error: illFormed("cert-manager-csi-driver-spiffe") } },
  {
    name: "three parts",
    argv: ["--use-own-service-account", "--driver-service-account=system:serviceaccount:cert-manager"],
    expect: { error: illFormed("system:serviceaccount:cert-manager") }
  },
  {
    name: "five parts",
    argv: ["--use-own-service-account", `--driver-service-account=${DRIVER}:x`],
    expect: { error: illFormed(`${DRIVER}:x`) }
  },
  {
    name: "not a ServiceAccount user",
    argv: ["--use-own-service-account", "--driver-service-account=system:node:cert-manager:x"],
    expect: { error: illFormed("system:node:cert-manager:x") }
  },
  {
    name: "invalid Kubernetes names: both reported",
    argv: ["--use-own-service-account", "--driver-service-account=system:serviceaccount:Cert_Manager:-driver"],
    expect: {
      error: `--driver-service-account: namespace "Cert_Manager" is not a valid Namespace name; --driver-service-account: name "-driver" is not a valid ServiceAccount name`
    }
  },
  {
    name: "reported on one line together with other flag errors",
    argv: ["--trust-domain=", "--use-own-service-account"],
    expect: { error: `--trust-domain: trust domain is empty; ${REQUIRED}` }
  }
]

const decodeFlags = (argv: ReadonlyArray<string>) => {
  const parsed = parseApproverArgs(argv)
  if (Result.isFailure(parsed)) return { error: parsed.failure }
  assert.strictEqual(parsed.success._tag, "Settings")
  return parsed.success._tag === "Settings" ? { driverServiceAccount: parsed.success.settings.config.driverServiceAccount } : {}
}

describe("own-ServiceAccount mode", () => {
  describe("SpiffeRules.evaluate with --driver-service-account", () => {
    for (const c of cases) it.effect(c.name, () => run(c))
  })
  describe("approver flags", () => {
    for (const c of flagCases) {
      it(c.name, () => {
        const got = decodeFlags(c.argv)
        assert.deepStrictEqual(got, c.expect)
        if ("error" in got) assert.notInclude(got.error, "\n")
      })
    }
  })
  it("the policy carries the driver ServiceAccount from the config, and none by default", () => {
    assert.strictEqual(policyOf({ ...ApproverConfig.defaults, driverServiceAccount: DRIVER }, undefined).driverServiceAccount, DRIVER)
    assert.strictEqual(policyOf(ApproverConfig.defaults, undefined).driverServiceAccount, undefined)
  })
  it("has at least 12 rule cases", () => {
    assert.isAtLeast(cases.length, 12)
  })
})

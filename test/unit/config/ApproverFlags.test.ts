/**
 * The approver's Pod Certificate flags: `--signer-service-account` (`<namespace>:<name>`, decoded to
 * the username the signer's requests carry) and `--signer-intermediate-duration`, their defaults, and
 * one-line errors for bad values.
 */
import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import { policyOf } from "../../../src/approver/Evaluator.ts"
import { parseApproverArgs } from "../../../src/config/ApproverFlags.ts"

const settings = (argv: ReadonlyArray<string>) => {
  const parsed = parseApproverArgs(argv)
  if (Result.isFailure(parsed)) return { error: parsed.failure }
  if (parsed.success._tag !== "Settings") return { error: "help" }
  const { signerServiceAccount, signerIntermediateDuration } = parsed.success.settings.config
  return { signerServiceAccount, signerIntermediateDuration }
}

const WEEK = 168 * 3_600_000

interface Case {
  readonly name: string
  readonly argv: ReadonlyArray<string>
  readonly expect: ReturnType<typeof settings>
}

const cases: ReadonlyArray<Case> = [
  { name: "defaults: no signer, a week", argv: [], expect: { signerServiceAccount: undefined, signerIntermediateDuration: WEEK } },
  {
    name: "the chart's values",
    argv: ["--signer-service-account=cert-manager:csi-driver-spiffe-signer", "--signer-intermediate-duration=24h"],
    expect: { signerServiceAccount: "system:serviceaccount:cert-manager:csi-driver-spiffe-signer", signerIntermediateDuration: 24 * 3_600_000 }
  },
  { name: "empty is unset", argv: ["--signer-service-account="], expect: { signerServiceAccount: undefined, signerIntermediateDuration: WEEK } },
  {
    name: "a full username is refused: the flag takes <namespace>:<name>",
    argv: ["--signer-service-account=system:serviceaccount:cert-manager:signer"],
    expect: { error: `--signer-service-account must be <namespace>:<name>, got "system:serviceaccount:cert-manager:signer"` }
  },
  {
    name: "a bare name",
    argv: ["--signer-service-account=signer"],
    expect: { error: `--signer-service-account must be <namespace>:<name>, got "signer"` }
  },
  {
    name: "invalid Kubernetes names",
    argv: ["--signer-service-account=Cert_Manager:-signer"],
    expect: {
      error: `--signer-service-account: namespace "Cert_Manager" is not a valid Namespace name, name "-signer" is not a valid ServiceAccount name`
    }
  },
  {
    name: "an empty namespace",
    argv: ["--signer-service-account=:signer"],
    expect: { error: `--signer-service-account must be <namespace>:<name>, got ":signer"` }
  },
  {
    name: "a duration under cert-manager's minimum",
    argv: ["--signer-intermediate-duration=30s"],
    expect: { error: `--signer-intermediate-duration must be at least 1m (cert-manager's minimum), got "30s"` }
  },
  {
    name: "not a duration",
    argv: ["--signer-intermediate-duration=a week"],
    expect: { error: `invalid argument "a week" for "--signer-intermediate-duration" flag: time: invalid duration "a week"` }
  }
]

describe("approver Pod Certificate flags", () => {
  for (const c of cases) {
    it(c.name, () => {
      const got = settings(c.argv)
      assert.deepStrictEqual(got, c.expect)
      if ("error" in got) assert.notInclude(got.error, "\n")
    })
  }
  it("the policy carries both into the rules", () => {
    const parsed = parseApproverArgs(["--signer-service-account=ns:sa", "--signer-intermediate-duration=48h"])
    assert.isTrue(Result.isSuccess(parsed))
    if (!Result.isSuccess(parsed) || parsed.success._tag !== "Settings") return
    const policy = policyOf(parsed.success.settings.config, undefined)
    assert.strictEqual(policy.signerServiceAccount, "system:serviceaccount:ns:sa")
    assert.strictEqual(policy.signerIntermediateDurationMs, 48 * 3_600_000)
  })
})

/**
 * The signer's command line: the contract's flag names and defaults, and one-line refusals of
 * values the API server or the rotation rule could not work with.
 */
import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import { parseSignerArgs } from "../../../src/config/SignerFlags.ts"

const settings = (argv: ReadonlyArray<string>) => {
  const r = parseSignerArgs(argv)
  if (Result.isFailure(r)) return assert.fail(r.failure)
  if (r.success._tag !== "Settings") return assert.fail("help")
  return r.success.settings
}
const error = (argv: ReadonlyArray<string>): string => {
  const r = parseSignerArgs(argv)
  return Result.isFailure(r) ? r.failure : assert.fail(`accepted ${argv.join(" ")}`)
}

describe("SignerFlags", () => {
  it("defaults: the contract's signer name, 168h intermediate, 24h leaves, two-thirds refresh", () => {
    const s = settings([])
    assert.strictEqual(s.config.signerName, "spiffe.csi.cert-manager.io/svid")
    assert.strictEqual(s.config.intermediateMillis, 168 * 3_600_000)
    assert.strictEqual(s.config.maxLeafMillis, 24 * 3_600_000)
    assert.isUndefined(s.config.beginRefreshAfterMillis)
    assert.strictEqual(s.config.certificateNamespace, "cert-manager")
    assert.strictEqual(s.readinessBindAddress, ":6060")
    assert.strictEqual(s.metricsBindAddress, ":9402")
  })

  it("reads every flag the chart passes", () => {
    const s = settings([
      "--signer-name=example.com/svid", "--trust-domain=td.example", "--issuer-name=ca", "--issuer-kind=Issuer", "--issuer-group=example.io",
      "--certificate-namespace=ns", "--intermediate-duration=72h", "--max-leaf-duration=2h", "--begin-refresh-after=30m",
      "--leader-election-namespace=le", "--metrics-bind-address=0", "--readiness-probe-bind-address=127.0.0.1:0", "--logging-format=json"
    ])
    assert.deepStrictEqual(
      [s.config.signerName, s.config.trustDomain, s.config.issuer, s.config.certificateNamespace, s.config.intermediateMillis, s.config.maxLeafMillis, s.config.beginRefreshAfterMillis, s.config.leaderElectionNamespace, s.metricsBindAddress, s.readinessBindAddress, s.logFormat],
      ["example.com/svid", "td.example", { name: "ca", kind: "Issuer", group: "example.io" }, "ns", 72 * 3_600_000, 2 * 3_600_000, 30 * 60_000, "le", undefined, "127.0.0.1:0", "json"]
    )
  })

  it("refuses leaves under an hour, refresh under 10 minutes, an intermediate without room for a leaf, a bad signer name", () => {
    assert.include(error(["--max-leaf-duration=30m"]), "--max-leaf-duration must be at least 1h")
    assert.include(error(["--begin-refresh-after=5m"]), "--begin-refresh-after must be at least 10m")
    assert.include(error(["--intermediate-duration=25h"]), "--intermediate-duration must be longer than --max-leaf-duration")
    assert.include(error(["--signer-name=nodomain"]), "--signer-name must be <domain>/<name>")
    assert.include(error(["--intermediate-duration=1x"]), "--intermediate-duration")
    assert.include(error(["--issuer-name="]), "--issuer-name must not be empty")
  })
})

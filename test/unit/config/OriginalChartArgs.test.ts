/**
 * The argument lists cert-manager's own chart (cert-manager/csi-driver-spiffe,
 * deploy/charts/csi-driver-spiffe, templates/daemonset.yaml and templates/deployment.yaml) renders
 * for the driver and the approver, fed to our binaries: a drop-in replacement must get past flag
 * decoding with every one of them. The lists are built here the way those templates build them
 * (always `--source-ca-bundle=` and both runtime ConfigMap flags, the namespace one always the
 * release namespace; `$(NODE_ID)`, `$(CSI_ENDPOINT)` and `$(POD_NAMESPACE)` expanded as the kubelet
 * expands them).
 *
 * Every combination is decoded in-process, and every one is also run as a real process with no
 * Kubernetes configuration at all: it must then fail for the missing cluster (exit code 1), never
 * for a flag (exit code 2).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseApproverArgs } from "../../../src/config/ApproverFlags.ts"
import { parseDriverArgs } from "../../../src/config/DriverFlags.ts"

const RELEASE_NAMESPACE = "cert-manager"
const NODE_NAME = "node-1"

/** The subset of the original chart's values.yaml that reaches an argument list. */
interface OriginalValues {
  readonly logLevel: number
  readonly name: string
  readonly certificateRequestDuration: string
  readonly issuer: { readonly name: string; readonly kind: string; readonly group: string }
  readonly trustDomain: string
  readonly runtimeIssuanceConfigMap: string
  readonly extraCertificateRequestAnnotations?: string
  readonly sourceCABundle: string | null
  readonly volumeFileName: { readonly cert: string; readonly key: string; readonly ca: string }
  readonly useOwnServiceAccount: boolean
  readonly autoApproveNonSPIFFE: boolean
  readonly metricsPort: number
  readonly readinessPort: number
}

/** The original chart's values.yaml defaults. */
const DEFAULTS: OriginalValues = {
  logLevel: 1,
  name: "spiffe.csi.cert-manager.io",
  certificateRequestDuration: "1h",
  issuer: { name: "spiffe-ca", kind: "ClusterIssuer", group: "cert-manager.io" },
  trustDomain: "cluster.local",
  runtimeIssuanceConfigMap: "",
  sourceCABundle: null,
  volumeFileName: { cert: "tls.crt", key: "tls.key", ca: "ca.crt" },
  useOwnServiceAccount: false,
  autoApproveNonSPIFFE: false,
  metricsPort: 9402,
  readinessPort: 6060
}

/** The values the original's own end-to-end suite installs with (its make/test-e2e.mk). */
const SEED: OriginalValues = {
  ...DEFAULTS,
  trustDomain: "foo.bar",
  issuer: { ...DEFAULTS.issuer, name: "csi-driver-spiffe-ca" },
  runtimeIssuanceConfigMap: "spiffe-issuer",
  sourceCABundle: "/var/run/secrets/cert-manager-csi-driver-spiffe/ca.crt"
}

/** Helm prints a null value as nothing. */
const str = (v: string | null): string => v ?? ""

/** templates/daemonset.yaml, container cert-manager-csi-driver-spiffe. */
const driverArgs = (v: OriginalValues): ReadonlyArray<string> => [
  `--log-level=${v.logLevel}`,
  `--csi-driver-name=${v.name}`,
  `--certificate-request-duration=${v.certificateRequestDuration}`,
  `--issuer-name=${v.issuer.name}`,
  `--issuer-kind=${v.issuer.kind}`,
  `--issuer-group=${v.issuer.group}`,
  `--trust-domain=${v.trustDomain}`,
  `--file-name-certificate=${v.volumeFileName.cert}`,
  `--file-name-key=${v.volumeFileName.key}`,
  `--file-name-ca=${v.volumeFileName.ca}`,
  `--source-ca-bundle=${str(v.sourceCABundle)}`,
  `--node-id=${NODE_NAME}`,
  "--endpoint=unix://plugin/csi.sock",
  "--data-root=csi-data-dir",
  `--runtime-issuance-config-map-name=${v.runtimeIssuanceConfigMap}`,
  `--runtime-issuance-config-map-namespace=${RELEASE_NAMESPACE}`,
  ...(v.extraCertificateRequestAnnotations ? [`--extra-certificate-request-annotations=${v.extraCertificateRequestAnnotations}`] : []),
  ...(v.useOwnServiceAccount ? ["--use-own-service-account=true"] : [])
]

/** templates/deployment.yaml, container cert-manager-csi-driver-spiffe-approver. */
const approverArgs = (v: OriginalValues): ReadonlyArray<string> => [
  `--log-level=${v.logLevel}`,
  `--csi-driver-name=${v.name}`,
  `--certificate-request-duration=${v.certificateRequestDuration}`,
  `--issuer-name=${v.issuer.name}`,
  `--issuer-kind=${v.issuer.kind}`,
  `--issuer-group=${v.issuer.group}`,
  `--trust-domain=${v.trustDomain}`,
  `--runtime-issuance-config-map-name=${v.runtimeIssuanceConfigMap}`,
  `--runtime-issuance-config-map-namespace=${RELEASE_NAMESPACE}`,
  ...(v.autoApproveNonSPIFFE ? ["--auto-approve-non-spiffe"] : []),
  `--leader-election-namespace=${RELEASE_NAMESPACE}`,
  `--metrics-bind-address=:${v.metricsPort}`,
  `--readiness-probe-bind-address=:${v.readinessPort}`,
  ...(v.useOwnServiceAccount
    ? ["--use-own-service-account=true", `--driver-service-account=system:serviceaccount:${RELEASE_NAMESPACE}:cert-manager-csi-driver-spiffe`]
    : [])
]

/** Every runtime-configuration combination the chart can express, on the defaults and on the seed. */
const CASES: ReadonlyArray<readonly [string, OriginalValues]> = [
  ["defaults", DEFAULTS],
  ["seed values", SEED],
  ["defaults + runtime ConfigMap", { ...DEFAULTS, runtimeIssuanceConfigMap: "spiffe-issuer" }],
  ["runtime ConfigMap only (no static issuer)", { ...DEFAULTS, issuer: { ...DEFAULTS.issuer, name: "" }, runtimeIssuanceConfigMap: "spiffe-issuer" }],
  ["seed values + own ServiceAccount", { ...SEED, useOwnServiceAccount: true }],
  ["defaults + own ServiceAccount", { ...DEFAULTS, useOwnServiceAccount: true }],
  ["defaults + auto-approve non-SPIFFE", { ...DEFAULTS, autoApproveNonSPIFFE: true }],
  ["seed values + extra annotations", { ...SEED, extraCertificateRequestAnnotations: "team=payments,cost-centre=42" }],
  ["defaults + log level 5, 90m", { ...DEFAULTS, logLevel: 5, certificateRequestDuration: "90m" }]
]

/** Neither issuer nor ConfigMap: the original refuses it too, with this message (its runtimeconfig.New). */
const NO_ISSUER: OriginalValues = { ...DEFAULTS, issuer: { ...DEFAULTS.issuer, name: "" } }

describe("the original chart's argument lists, decoded", () => {
  for (const [name, values] of CASES) {
    it(`driver: ${name}`, () => {
      const r = parseDriverArgs(driverArgs(values), "v0.0.0-test")
      if (Result.isFailure(r)) assert.fail(r.failure)
      assert.strictEqual(r.success._tag, "Config")
      if (r.success._tag !== "Config") return
      const c = r.success.config
      assert.strictEqual(c.trustDomain, values.trustDomain)
      assert.deepStrictEqual(
        c.runtimeIssuanceConfigMap,
        values.runtimeIssuanceConfigMap === "" ? undefined : { name: values.runtimeIssuanceConfigMap, namespace: RELEASE_NAMESPACE }
      )
      assert.strictEqual(c.sourceCaBundle, values.sourceCABundle ?? undefined)
      assert.strictEqual(c.useOwnServiceAccount, values.useOwnServiceAccount)
    })

    it(`approver: ${name}`, () => {
      const r = parseApproverArgs(approverArgs(values))
      if (Result.isFailure(r)) assert.fail(r.failure)
      assert.strictEqual(r.success._tag, "Settings")
      if (r.success._tag !== "Settings") return
      const s = r.success.settings
      assert.strictEqual(s.config.trustDomain, values.trustDomain)
      assert.deepStrictEqual(
        s.runtimeIssuanceConfigMap,
        values.runtimeIssuanceConfigMap === "" ? undefined : { name: values.runtimeIssuanceConfigMap, namespace: RELEASE_NAMESPACE }
      )
      assert.strictEqual(s.config.autoApproveNonSpiffe, values.autoApproveNonSPIFFE)
      assert.strictEqual(s.config.driverServiceAccount !== undefined, values.useOwnServiceAccount)
    })
  }

  it("driver: neither issuer nor runtime ConfigMap is refused with the original's message", () => {
    const r = parseDriverArgs(driverArgs(NO_ISSUER), "v0.0.0-test")
    assert.isTrue(Result.isFailure(r))
    if (Result.isFailure(r)) assert.include(r.failure, "runtime issuance configuration is required if no issuer is provided at startup")
  })
})

const repo = path.resolve(import.meta.dirname, "../../..")

interface Exit {
  readonly code: number | null
  readonly stderr: string
}

/** Runs a binary with no Kubernetes configuration reachable: no KUBECONFIG, an empty HOME, not in a pod. */
const run = (bin: string, args: ReadonlyArray<string>, cwd: string): Promise<Exit> =>
  new Promise((resolve) => {
    const env: Record<string, string> = { PATH: process.env["PATH"] ?? "", HOME: cwd }
    execFile(process.execPath, [path.join(repo, "src/bin", bin), ...args], { cwd, env, timeout: 60_000 }, (error, _stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, stderr })
    })
  })

const NO_CLUSTER = /no Kubernetes configuration found/

describe("the original chart's argument lists, run as processes", () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "original-chart-args-"))
  afterAll(() => fs.rmSync(home, { recursive: true, force: true }))
  for (const [name, values] of CASES) {
    it(`both binaries start and stop only for the missing cluster: ${name}`, async () => {
      const [driver, approver] = await Promise.all([
        run("csi.ts", driverArgs(values), home),
        run("approver.ts", approverArgs(values), home)
      ])
      assert.strictEqual(driver.code, 1, `driver: ${driver.stderr}`)
      assert.match(driver.stderr, NO_CLUSTER)
      assert.strictEqual(approver.code, 1, `approver: ${approver.stderr}`)
      assert.match(approver.stderr, NO_CLUSTER)
      // The one start-up line, in klog's text format, says what each runs with.
      const td = `trustDomain="${values.trustDomain}"`
      assert.match(driver.stderr, new RegExp(`^I\\d{4} [\\d:.]+ +\\d+ main\\.ts:\\d+\\] "starting csi-driver-spiffe" version="[^"]+" .*${td}`, "m"))
      assert.match(approver.stderr, new RegExp(`^I\\d{4} [\\d:.]+ +\\d+ main\\.ts:\\d+\\] "starting csi-driver-spiffe-approver" version="[^"]+" .*${td}`, "m"))
      assert.include(driver.stderr, `kubeletRootDir="/var/lib/kubelet"`)
      assert.include(driver.stderr, `dataRoot="${path.join(home, "csi-data-dir")}"`)
    })
  }

  it("--version prints the version on both binaries", async () => {
    const version = (JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")) as { version: string }).version
    const out = await Promise.all(["csi.ts", "approver.ts"].map((bin) =>
      new Promise<string>((resolve, reject) =>
        execFile(process.execPath, [path.join(repo, "src/bin", bin), "--version"], { cwd: home }, (e, stdout) => (e === null ? resolve(stdout) : reject(e)))
      )
    ))
    assert.deepStrictEqual(out, [`csi-driver-spiffe version ${version}\n`, `csi-driver-spiffe-approver version ${version}\n`])
  })

  it("the start-up line redacts a --token", async () => {
    const r = await run("approver.ts", [...approverArgs(DEFAULTS), "--token=s3cr3t-flag-token"], home)
    assert.match(r.stderr, /"token":"<redacted>"/)
    assert.notInclude(r.stderr, "s3cr3t-flag-token")
  })
})

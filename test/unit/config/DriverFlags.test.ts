/**
 * The driver's command line (as cert-manager/csi-driver-spiffe's internal/flags and internal/csi/app/options define it): the original's flag names and defaults,
 * pflag-style syntax, the required flags and cross-flag rules, and one single-line error per bad
 * invocation that names the flag.
 */
import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import { helpText, parseFlags } from "../../../src/config/Flags.ts"
import { noKubeClientFlags } from "../../../src/services/KubeClient.ts"
import { defaultPolicy } from "../../../src/domain/Renewal.ts"
import { parseBindAddress, parseRequestDuration } from "../../../src/config/CommonFlags.ts"
import { driverFlags, parseAnnotations, parseDriverArgs } from "../../../src/config/DriverFlags.ts"
import type { DriverConfigShape } from "../../../src/services/DriverConfig.ts"

const VERSION = "v0.0.0-test"
const REQUIRED = ["--node-id=kind-worker", "--endpoint=unix:///csi/csi.sock", "--data-root=csi-data-dir"]

const config = (...args: ReadonlyArray<string>): DriverConfigShape => {
  const r = parseDriverArgs([...REQUIRED, ...args], VERSION)
  if (Result.isFailure(r)) assert.fail(r.failure)
  if (r.success._tag !== "Config") assert.fail("expected a config, got help")
  return r.success.config
}

/** The error for this argv (without the required flags added). */
const errorOf = (argv: ReadonlyArray<string>): string => {
  const r = parseDriverArgs(argv, VERSION)
  if (Result.isSuccess(r)) assert.fail(`expected an error for ${JSON.stringify(argv)}`)
  return r.failure
}

/** The error for the required flags plus these. */
const error = (...args: ReadonlyArray<string>): string => errorOf([...REQUIRED, ...args])

describe("parseDriverArgs defaults", () => {
  it("equal the original's", () => {
    assert.deepStrictEqual(config(), {
      csiDriverName: "spiffe.csi.cert-manager.io",
      version: VERSION,
      logLevel: 1,
      logFormat: "text",
      kubeconfig: undefined,
      kubeClient: noKubeClientFlags,
      kubeClientPoolRefreshMillis: 300_000,
      nodeId: "kind-worker",
      endpoint: "unix:///csi/csi.sock",
      dataRoot: "csi-data-dir",
      kubeletRootDir: "/var/lib/kubelet",
      pluginRegistration: { kubeletRegistrationPath: "/csi/csi.sock" },
      useOwnServiceAccount: false,
      runtimeIssuanceConfigMap: undefined,
      trustDomain: "cluster.local",
      certificateRequestDurationMillis: 3_600_000,
      extraCertificateRequestAnnotations: {},
      issuer: { name: "my-spiffe-ca", kind: "ClusterIssuer", group: "cert-manager.io" },
      fileNames: { certificate: "tls.crt", key: "tls.key", ca: "ca.crt" },
      // Not in the original: the SPIFFE Workload API socket in every volume.
      workloadApi: { socketName: "spiffe.sock", byDefault: true },
      sourceCaBundle: undefined,
      metricsBindAddress: undefined,
      renewal: defaultPolicy,
      issuanceTimeoutMillis: 60_000
    })
  })

  it("--workload-api=false and --workload-api-socket-name set the Workload API socket", () => {
    assert.deepStrictEqual(config("--workload-api=false", "--workload-api-socket-name=agent.sock").workloadApi, { socketName: "agent.sock", byDefault: false })
  })

  it("--kube-client-pool-refresh takes a duration of at least a second", () => {
    assert.strictEqual(config("--kube-client-pool-refresh=30s").kubeClientPoolRefreshMillis, 30_000)
    assert.strictEqual(config("--kube-client-pool-refresh", "2m").kubeClientPoolRefreshMillis, 120_000)
    for (const bad of ["0s", "500ms", "soon", ""]) assert.include(error(`--kube-client-pool-refresh=${bad}`), "--kube-client-pool-refresh must be a duration of at least 1s")
  })

  it("declare the original's flag names", () => {
    const names = driverFlags.map((f) => f.name)
    for (const n of [
      "csi-driver-name", "log-level", "node-id", "endpoint", "data-root", "use-own-service-account",
      "runtime-issuance-config-map-name", "runtime-issuance-config-map-namespace", "trust-domain",
      "certificate-request-duration", "extra-certificate-request-annotations", "issuer-name", "issuer-kind",
      "issuer-group", "file-name-certificate", "file-name-key", "file-name-ca", "source-ca-bundle"
    ]) assert.include(names, n)
    assert.strictEqual(driverFlags.find((f) => f.name === "log-level")?.short, "v")
  })
})

describe("parseDriverArgs syntax", () => {
  it("reads --flag=value and --flag value alike", () => {
    const a = config("--trust-domain=example.org", "--issuer-name", "ca-2", "--issuer-kind", "Issuer", "--issuer-group=example.com")
    assert.strictEqual(a.trustDomain, "example.org")
    assert.deepStrictEqual(a.issuer, { name: "ca-2", kind: "Issuer", group: "example.com" })
  })

  it("keeps '=' inside a value", () => {
    assert.strictEqual(config("--kubeconfig=/a=b").kubeconfig, "/a=b")
  })

  it("reads -v 3, -v=4 and --log-level 5", () => {
    assert.strictEqual(config("-v", "3").logLevel, 3)
    assert.strictEqual(config("-v=4").logLevel, 4)
    assert.strictEqual(config("--log-level", "5").logLevel, 5)
    assert.strictEqual(config("--log-level=0").logLevel, 0)
  })

  it("lets the last occurrence win", () => {
    assert.strictEqual(config("--trust-domain=a.org", "--trust-domain=b.org").trustDomain, "b.org")
    assert.strictEqual(config("--node-id=other").nodeId, "other")
  })

  it("reads bools as --flag, --flag=true and --flag=false", () => {
    assert.isTrue(config("--use-own-service-account").useOwnServiceAccount)
    assert.isTrue(config("--use-own-service-account=true").useOwnServiceAccount)
    assert.isFalse(config("--use-own-service-account", "--use-own-service-account=false").useOwnServiceAccount)
  })

  it("does not let a bool swallow the next argument", () => {
    assert.include(error("--use-own-service-account", "false"), "false")
  })

  it("answers --help and -h with Help", () => {
    assert.deepStrictEqual(parseDriverArgs(["--help"], VERSION), Result.succeed({ _tag: "Help" as const }))
    assert.deepStrictEqual(parseDriverArgs(["-h"], VERSION), Result.succeed({ _tag: "Help" as const }))
    // even without the required flags, and after other flags
    assert.deepStrictEqual(parseDriverArgs(["--trust-domain=x", "--help"], VERSION), Result.succeed({ _tag: "Help" as const }))
  })

  it("reads every other flag into the config", () => {
    const c = config(
      "--csi-driver-name=spiffe.example.com",
      "--kubeconfig=/etc/kubeconfig",
      "--runtime-issuance-config-map-name=spiffe-issuer",
      "--runtime-issuance-config-map-namespace=cert-manager",
      "--certificate-request-duration=2h",
      "--extra-certificate-request-annotations=team=a,cost-center=b",
      "--file-name-certificate=svid.pem",
      "--file-name-key=svid_key.pem",
      "--file-name-ca=bundle.pem",
      "--source-ca-bundle=/var/run/secrets/ca/ca.crt",
      "--metrics-bind-address=:9402"
    )
    assert.strictEqual(c.csiDriverName, "spiffe.example.com")
    assert.strictEqual(c.kubeconfig, "/etc/kubeconfig")
    assert.deepStrictEqual(c.runtimeIssuanceConfigMap, { name: "spiffe-issuer", namespace: "cert-manager" })
    assert.strictEqual(c.certificateRequestDurationMillis, 7_200_000)
    assert.deepStrictEqual(c.extraCertificateRequestAnnotations, { team: "a", "cost-center": "b" })
    assert.deepStrictEqual(c.fileNames, { certificate: "svid.pem", key: "svid_key.pem", ca: "bundle.pem" })
    assert.strictEqual(c.sourceCaBundle, "/var/run/secrets/ca/ca.crt")
    assert.strictEqual(c.metricsBindAddress, ":9402")
  })

  it("allows an empty --issuer-name when a runtime ConfigMap is configured", () => {
    const c = config("--issuer-name=", "--runtime-issuance-config-map-name=cm", "--runtime-issuance-config-map-namespace=ns")
    assert.strictEqual(c.issuer, undefined)
    assert.deepStrictEqual(c.runtimeIssuanceConfigMap, { name: "cm", namespace: "ns" })
  })
})

describe("parseDriverArgs plugin registration", () => {
  it("is on by default and names the --endpoint socket's own path, made absolute as the endpoint is", () => {
    assert.deepStrictEqual(config().pluginRegistration, { kubeletRegistrationPath: "/csi/csi.sock" })
    assert.deepStrictEqual(config("--endpoint=unix://plugin/csi.sock").pluginRegistration, { kubeletRegistrationPath: "/plugin/csi.sock" })
  })

  it("names the host path given by --kubelet-registration-path", () => {
    const path = "/var/lib/kubelet/plugins/spiffe.csi.cert-manager.io/csi.sock"
    assert.deepStrictEqual(config(`--kubelet-registration-path=${path}`).pluginRegistration, { kubeletRegistrationPath: path })
    const tcp = parseDriverArgs(["--node-id=n", "--endpoint=tcp://127.0.0.1:10000", "--data-root=d", `--kubelet-registration-path=${path}`], VERSION)
    assert.deepStrictEqual(Result.map(tcp, (a) => (a._tag === "Config" ? a.config.pluginRegistration : undefined)), Result.succeed({ kubeletRegistrationPath: path }))
  })

  it("is off with --plugin-registration=false, whatever the endpoint", () => {
    assert.strictEqual(config("--plugin-registration=false").pluginRegistration, undefined)
    const tcp = parseDriverArgs(["--node-id=n", "--endpoint=tcp://127.0.0.1:10000", "--data-root=d", "--plugin-registration=false"], VERSION)
    assert.deepStrictEqual(Result.map(tcp, (a) => (a._tag === "Config" ? a.config.pluginRegistration : "help")), Result.succeed(undefined))
  })
})

describe("parseDriverArgs durations", () => {
  it("coerces 0 to 1h, as the original does", () => {
    assert.strictEqual(config("--certificate-request-duration=0").certificateRequestDurationMillis, 3_600_000)
    assert.strictEqual(config("--certificate-request-duration=0s").certificateRequestDurationMillis, 3_600_000)
  })

  it("-v, --v and --log-level are one flag (klog verbosity); --logging-format is text or json", () => {
    assert.strictEqual(config("--v=4").logLevel, 4)
    assert.strictEqual(config("-v", "5").logLevel, 5)
    assert.strictEqual(config("--log-level=2").logLevel, 2)
    assert.strictEqual(config("--logging-format=json").logFormat, "json")
    assert.include(error("--logging-format=yaml"), "--logging-format must be text or json")
  })

  it("reads Go's whole duration syntax and words a bad value as pflag does", () => {
    assert.strictEqual(config("--certificate-request-duration=.5h").certificateRequestDurationMillis, 1_800_000)
    assert.strictEqual(config("--certificate-request-duration=+1.5h").certificateRequestDurationMillis, 5_400_000)
    assert.strictEqual(
      error("--certificate-request-duration=1hh"),
      "invalid argument \"1hh\" for \"--certificate-request-duration\" flag: time: unknown unit \"hh\" in duration \"1hh\""
    )
    assert.strictEqual(error("--certificate-request-duration=-1h"), "--certificate-request-duration must not be negative, got \"-1h\"")
  })

  it("accepts Go durations of at least 1m", () => {
    assert.strictEqual(config("--certificate-request-duration=90m").certificateRequestDurationMillis, 5_400_000)
    assert.strictEqual(config("--certificate-request-duration=1m").certificateRequestDurationMillis, 60_000)
    assert.strictEqual(config("--certificate-request-duration=1h30m").certificateRequestDurationMillis, 5_400_000)
  })

  it("parseRequestDuration refuses negative, unparsable and too short values", () => {
    for (const raw of ["-1h", "abc", "1d", "", "59s"]) assert.isTrue(Result.isFailure(parseRequestDuration(raw)), raw)
  })
})

describe("parseAnnotations", () => {
  it("reads k=v pairs, trimming spaces and keeping '=' in values", () => {
    assert.deepStrictEqual(parseAnnotations("a=1,b=2"), Result.succeed({ annotations: { a: "1", b: "2" }, reserved: [] }))
    assert.deepStrictEqual(parseAnnotations(" a = 1 , example.com/b=x=y "), Result.succeed({ annotations: { a: "1", "example.com/b": "x=y" }, reserved: [] }))
    assert.deepStrictEqual(parseAnnotations("a="), Result.succeed({ annotations: { a: "" }, reserved: [] }))
  })

  it("treats empty and {} (the original's printed default) as none", () => {
    assert.deepStrictEqual(parseAnnotations(""), Result.succeed({ annotations: {}, reserved: [] }))
    assert.deepStrictEqual(parseAnnotations("{}"), Result.succeed({ annotations: {}, reserved: [] }))
    assert.deepStrictEqual(config("--extra-certificate-request-annotations={}").extraCertificateRequestAnnotations, {})
  })

  it("drops keys in the reserved spiffe.csi.cert-manager.io prefix and reports them, as the original does", () => {
    for (const key of ["spiffe.csi.cert-manager.io/identity", "spiffe.csi.cert-manager.io", "spiffe.csi.cert-manager.io.evil/x"]) {
      assert.deepStrictEqual(parseAnnotations(`ok=1,${key}=x`), Result.succeed({ annotations: { ok: "1" }, reserved: [key] }))
    }
    const c = config("--extra-certificate-request-annotations=ok=1,spiffe.csi.cert-manager.io/identity=spiffe://evil/x")
    assert.deepStrictEqual(c.extraCertificateRequestAnnotations, { ok: "1" })
    assert.deepStrictEqual(c.droppedAnnotationKeys, ["spiffe.csi.cert-manager.io/identity"])
  })

  it("reads quoted items as pflag's StringToString does (CSV), so a value may hold a comma", () => {
    assert.deepStrictEqual(parseAnnotations('"a=x,y",b=2'), Result.succeed({ annotations: { a: "x,y", b: "2" }, reserved: [] }))
    assert.deepStrictEqual(parseAnnotations('"a=say ""hi""",b=2'), Result.succeed({ annotations: { a: "say \"hi\"", b: "2" }, reserved: [] }))
    assert.deepStrictEqual(parseAnnotations('"a=1"'), Result.succeed({ annotations: { a: "1" }, reserved: [] }))
    assert.isTrue(Result.isFailure(parseAnnotations('"a=1,b=2')))
    assert.isTrue(Result.isFailure(parseAnnotations('a=x"y,b=2')))
  })

  it("keeps other cert-manager keys", () => {
    assert.deepStrictEqual(parseAnnotations("csi.cert-manager.io/x=1"), Result.succeed({ annotations: { "csi.cert-manager.io/x": "1" }, reserved: [] }))
  })
})

describe("parseBindAddress", () => {
  it("accepts host:port, :port and [ipv6]:port; 0 or empty disables", () => {
    for (const a of [":9402", "0.0.0.0:9402", "localhost:8080", "[::]:9402", ":65535"]) {
      assert.deepStrictEqual(parseBindAddress("metrics-bind-address", a), Result.succeed(a))
    }
    assert.deepStrictEqual(parseBindAddress("metrics-bind-address", "0"), Result.succeed(undefined))
    assert.deepStrictEqual(parseBindAddress("metrics-bind-address", ""), Result.succeed(undefined))
  })

  it("refuses anything else, naming the flag", () => {
    for (const a of ["9402", "localhost", ":65536", ":port", "host:", ":123456"]) {
      const r = parseBindAddress("metrics-bind-address", a)
      if (Result.isSuccess(r)) assert.fail(`${a} should be refused`)
      assert.include(r.failure, "--metrics-bind-address")
    }
  })
})

describe("parseDriverArgs errors: one line naming the flag", () => {
  const cases: ReadonlyArray<{ readonly name: string; readonly argv: ReadonlyArray<string>; readonly flag: string }> = [
    { name: "unknown flag", argv: [...REQUIRED, "--no-such-flag=1"], flag: "--no-such-flag" },
    { name: "unknown flag without value", argv: [...REQUIRED, "--trust-domains"], flag: "--trust-domains" },
    { name: "unknown shorthand", argv: [...REQUIRED, "-x", "1"], flag: "-x" },
    { name: "positional argument", argv: [...REQUIRED, "extra"], flag: "extra" },
    { name: "missing value at the end", argv: [...REQUIRED, "--trust-domain"], flag: "--trust-domain" },
    { name: "missing value for -v", argv: [...REQUIRED, "-v"], flag: "--log-level" },
    { name: "bad bool", argv: [...REQUIRED, "--use-own-service-account=yes"], flag: "--use-own-service-account" },
    { name: "missing --node-id", argv: REQUIRED.filter((a) => !a.startsWith("--node-id")), flag: "--node-id" },
    { name: "empty --node-id", argv: [...REQUIRED, "--node-id="], flag: "--node-id" },
    { name: "missing --endpoint", argv: REQUIRED.filter((a) => !a.startsWith("--endpoint")), flag: "--endpoint" },
    { name: "missing --data-root", argv: REQUIRED.filter((a) => !a.startsWith("--data-root")), flag: "--data-root" },
    { name: "log level not a number", argv: [...REQUIRED, "-v", "debug"], flag: "--log-level" },
    { name: "log level 10", argv: [...REQUIRED, "--log-level=10"], flag: "--log-level" },
    { name: "log level negative", argv: [...REQUIRED, "--log-level=-1"], flag: "--log-level" },
    { name: "upper-case trust domain", argv: [...REQUIRED, "--trust-domain=Cluster.Local"], flag: "--trust-domain" },
    { name: "empty trust domain", argv: [...REQUIRED, "--trust-domain="], flag: "--trust-domain" },
    { name: "trust domain with a port", argv: [...REQUIRED, "--trust-domain=td:443"], flag: "--trust-domain" },
    { name: "unparsable duration", argv: [...REQUIRED, "--certificate-request-duration=1d"], flag: "--certificate-request-duration" },
    { name: "negative duration", argv: [...REQUIRED, "--certificate-request-duration=-1h"], flag: "--certificate-request-duration" },
    { name: "duration under 1m", argv: [...REQUIRED, "--certificate-request-duration=30s"], flag: "--certificate-request-duration" },
    { name: "annotation without =", argv: [...REQUIRED, "--extra-certificate-request-annotations=a"], flag: "--extra-certificate-request-annotations" },
    { name: "annotation with empty key", argv: [...REQUIRED, "--extra-certificate-request-annotations==v"], flag: "--extra-certificate-request-annotations" },
    { name: "annotation list with a trailing comma", argv: [...REQUIRED, "--extra-certificate-request-annotations=a=1,"], flag: "--extra-certificate-request-annotations" },
    { name: "bad metrics address", argv: [...REQUIRED, "--metrics-bind-address=localhost"], flag: "--metrics-bind-address" },
    { name: "certificate file name with a slash", argv: [...REQUIRED, "--file-name-certificate=../tls.crt"], flag: "--file-name-certificate" },
    { name: "key file name ..", argv: [...REQUIRED, "--file-name-key=.."], flag: "--file-name-key" },
    { name: "CA file name .", argv: [...REQUIRED, "--file-name-ca=."], flag: "--file-name-ca" },
    { name: "empty CA file name", argv: [...REQUIRED, "--file-name-ca="], flag: "--file-name-ca" },
    { name: "file name in a sub-directory", argv: [...REQUIRED, "--file-name-key=keys/tls.key"], flag: "--file-name-key" },
    { name: "file name starting with ..", argv: [...REQUIRED, "--file-name-key=..data"], flag: "--file-name-key" },
    { name: "two files with one name", argv: [...REQUIRED, "--file-name-key=tls.crt"], flag: "--file-name-key" },
    { name: "socket name with a slash", argv: [...REQUIRED, "--workload-api-socket-name=run/spiffe.sock"], flag: "--workload-api-socket-name" },
    { name: "socket name of a file", argv: [...REQUIRED, "--workload-api-socket-name=tls.key"], flag: "--workload-api-socket-name" },
    { name: "bad --workload-api bool", argv: [...REQUIRED, "--workload-api=off"], flag: "--workload-api" },
    {
      name: "ConfigMap name without namespace",
      argv: [...REQUIRED, "--runtime-issuance-config-map-name=cm"],
      flag: "--runtime-issuance-config-map-namespace"
    },
    { name: "no issuer and no runtime ConfigMap", argv: [...REQUIRED, "--issuer-name="], flag: "--issuer-name" },
    { name: "bad --plugin-registration bool", argv: [...REQUIRED, "--plugin-registration=yes"], flag: "--plugin-registration" },
    {
      name: "registration over a tcp endpoint without its host path",
      argv: ["--node-id=n", "--endpoint=tcp://127.0.0.1:10000", "--data-root=d"],
      flag: "--kubelet-registration-path"
    },
    { name: "relative registration path", argv: [...REQUIRED, "--kubelet-registration-path=plugins/csi.sock"], flag: "--kubelet-registration-path" },
    { name: "registration path of a directory", argv: [...REQUIRED, "--kubelet-registration-path=/var/lib/kubelet/plugins/"], flag: "--kubelet-registration-path" }
  ]

  for (const c of cases) {
    it(c.name, () => {
      const message = errorOf(c.argv)
      assert.include(message, c.flag)
      assert.notInclude(message, "\n")
      assert.notInclude(message, "\r")
    })
  }

  it("an empty ConfigMap name with a namespace (what the original chart always renders) means no runtime configuration", () => {
    assert.isUndefined(config("--runtime-issuance-config-map-name=", "--runtime-issuance-config-map-namespace=ns").runtimeIssuanceConfigMap)
  })

  it("the original's wording when no issuer is configured", () => {
    assert.include(error("--issuer-name="), "runtime issuance configuration is required if no issuer is provided at startup")
  })

  it("reports every bad value of an invocation at once, on one line", () => {
    const message = errorOf(["--log-level=x", "--trust-domain=UPPER", "--file-name-ca=a/b"])
    const parts = message.split("; ")
    for (const flag of ["--node-id", "--endpoint", "--data-root", "--log-level", "--trust-domain", "--file-name-ca"]) {
      assert.isTrue(parts.some((p) => p.includes(flag)), `${flag} in ${message}`)
    }
    assert.notInclude(message, "\n")
  })

  it("quotes values so a newline in one cannot break the line", () => {
    for (const argv of [
      [...REQUIRED, "--trust-domain=a\nb"],
      [...REQUIRED, "--file-name-key=a/\nb"],
      [...REQUIRED, "--metrics-bind-address=a\nb"],
      [...REQUIRED, "--log-level=1\n2"],
      [...REQUIRED, "--certificate-request-duration=1h\n"],
      [...REQUIRED, "--extra-certificate-request-annotations=a\nb"]
    ]) {
      assert.notInclude(errorOf(argv), "\n", JSON.stringify(argv))
    }
  })

  // The argv-level errors interpolate the raw argument; a newline in it splits the one-line error
  // (and lets an argument forge a log line).
  it("keeps argv-level errors on one line too (unknown flag, argument, bool value)", () => {
    for (const argv of [
      [...REQUIRED, "--no-such\nflag"],
      [...REQUIRED, "-x\ny"],
      [...REQUIRED, "stray\nargument"],
      [...REQUIRED, "--use-own-service-account=yes\nno"]
    ]) {
      assert.notInclude(errorOf(argv), "\n", JSON.stringify(argv))
    }
  })
})

describe("helpText", () => {
  it("lists every flag with its default, grouped by section", () => {
    const text = helpText("cert-manager-csi-driver-spiffe", "summary", driverFlags)
    for (const f of driverFlags) assert.include(text, `--${f.name}`)
    assert.include(text, "-v, --log-level")
    assert.include(text, "(default \"spiffe.csi.cert-manager.io\")")
    assert.include(text, "(default \"1h\")")
    for (const s of ["App flags:", "Driver flags:", "cert-manager flags:", "Volume flags:"]) assert.include(text, s)
  })

  it("parseFlags starts from every flag's default", () => {
    const r = parseFlags(driverFlags, [])
    assert.deepStrictEqual(
      r,
      Result.succeed({
        _tag: "Values" as const,
        values: Object.fromEntries(driverFlags.filter((f) => f.kind !== "stringArray").map((f) => [f.name, f.default])),
        lists: Object.fromEntries(driverFlags.filter((f) => f.kind === "stringArray").map((f) => [f.name, []]))
      })
    )
  })
})

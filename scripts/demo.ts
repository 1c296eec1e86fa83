// npm run demo [-- --keep] [-- --no-openssl]
//
// The whole project on one machine, with real programs only:
//   1. builds (or finds, cached by version) the upstream programs: etcd, kube-apiserver, cert-manager, helm
//   2. starts the local control plane (test/harness/plane.ts) with the CA ClusterIssuer csi-driver-spiffe-ca
//   3. starts our approver and our CSI driver as processes (test/e2e/stack.ts); the driver copies the
//      issuer's CA into every volume (--source-ca-bundle), so ca.crt is there
//   4. creates the example app of the Go original's deploy/example (namespace sandbox, ServiceAccount
//      example-app, pod my-csi-app; trust domain foo.bar) and publishes its volume as the kubelet would
//      (a Pod-bound TokenRequest token in the volume context)
//   5. prints the mounted certificate as `openssl x509 -noout -text` does (openssl itself when it is
//      installed; --no-openssl or no openssl: our own rendering of the same fields), then the issuer,
//      the SPIFFE ID URI and the file listing of the volume
//   6. unpublishes and tears everything down; --keep leaves it all running until Ctrl-C and prints
//      how to reach it.
// Exits non-zero, with the reason and the run directory (kept, with every process log), on any failure.
import { spawnSync } from "node:child_process"
import { createPublicKey } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { x509 } from "../src/x509.ts"
import { isMountPoint, startStack, type Stack } from "../test/e2e/stack.ts"
import { toInfo } from "../test/harness/globalSetup.ts"
import { type ControlPlane, startControlPlane } from "../test/harness/plane.ts"
import { controlPlaneComponents, ensureUpstream } from "../test/harness/upstream.ts"

const args = import.meta.main ? process.argv.slice(2) : []
const keep = args.includes("--keep")
const forceNoOpenssl = args.includes("--no-openssl")
for (const a of args) {
  if (a === "--help" || a === "-h") {
    process.stdout.write("usage: npm run demo [-- --keep] [-- --no-openssl]\n")
    process.exit(0)
  }
  if (a !== "--keep" && a !== "--no-openssl") {
    process.stderr.write(`demo: unknown argument ${a} (usage: npm run demo [-- --keep] [-- --no-openssl])\n`)
    process.exit(2)
  }
}

const TRUST_DOMAIN = "foo.bar"
const NAMESPACE = "sandbox"
const SERVICE_ACCOUNT = "example-app"
const POD = "my-csi-app"
const EXPECTED_ISSUER = "CN = csi-driver-spiffe-ca"
const EXPECTED_URI = `spiffe://${TRUST_DOMAIN}/ns/${NAMESPACE}/sa/${SERVICE_ACCOUNT}`

const t0 = Date.now()
const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`
const progress = (msg: string) => process.stderr.write(`[demo ${secs(Date.now() - t0).padStart(6)}] ${msg}\n`)
const out = (line = "") => process.stdout.write(`${line}\n`)

class DemoError extends Error {
  override readonly name = "DemoError"
}

// ------------------------------------------------------------------ openssl x509 -noout -text

const onPath = (bin: string): string | undefined => {
  for (const dir of (process.env["PATH"] ?? "").split(path.delimiter)) {
    const p = path.join(dir, bin)
    try {
      fs.accessSync(p, fs.constants.X_OK)
      return p
    } catch {
      // next
    }
  }
  return undefined
}

const hexColons = (bytes: Uint8Array, upper = false): string => {
  const s = Buffer.from(bytes).toString("hex").match(/../g)?.join(":") ?? ""
  return upper ? s.toUpperCase() : s
}

/** Colon-separated hex, as openssl prints keys (15 bytes a line) and signatures (18). */
const hexBlock = (bytes: Uint8Array, indent: string, perLine = 15): string => {
  const lines: Array<string> = []
  for (let i = 0; i < bytes.length; i += perLine) {
    const last = i + perLine >= bytes.length
    lines.push(`${indent}${hexColons(bytes.subarray(i, i + perLine))}${last ? "" : ":"}`)
  }
  return lines.join("\n")
}

/** openssl's default name format: RDNs in certificate order, `CN = value`, comma-separated. */
const formatName = (name: x509.Name): string =>
  name.toJSON().flatMap((rdn) => Object.entries(rdn).flatMap(([k, vs]) => vs.map((v) => `${k} = ${v}`))).join(", ")

const opensslDate = (d: Date): string => {
  const mon = d.toLocaleString("en-US", { month: "short", timeZone: "UTC" })
  const day = String(d.getUTCDate()).padStart(2, " ")
  const hms = d.toISOString().slice(11, 19)
  return `${mon} ${day} ${hms} ${d.getUTCFullYear()} GMT`
}

const signatureName = (alg: { readonly name: string; readonly hash?: string | { readonly name: string } }): string => {
  const hash = alg.hash === undefined ? "" : (typeof alg.hash === "string" ? alg.hash : alg.hash.name).replace("-", "")
  if (alg.name === "ECDSA") return `ecdsa-with-${hash}`
  if (alg.name === "RSASSA-PKCS1-v1_5") return `${hash.toLowerCase()}WithRSAEncryption`
  if (alg.name === "RSA-PSS") return "rsassaPss"
  return alg.name
}

const KEY_USAGES: ReadonlyArray<[number, string]> = [
  [x509.KeyUsageFlags.digitalSignature, "Digital Signature"],
  [x509.KeyUsageFlags.nonRepudiation, "Non Repudiation"],
  [x509.KeyUsageFlags.keyEncipherment, "Key Encipherment"],
  [x509.KeyUsageFlags.dataEncipherment, "Data Encipherment"],
  [x509.KeyUsageFlags.keyAgreement, "Key Agreement"],
  [x509.KeyUsageFlags.keyCertSign, "Certificate Sign"],
  [x509.KeyUsageFlags.cRLSign, "CRL Sign"],
  [x509.KeyUsageFlags.encipherOnly, "Encipher Only"],
  [x509.KeyUsageFlags.decipherOnly, "Decipher Only"]
]
const EKU_NAMES: Readonly<Record<string, string>> = {
  "1.3.6.1.5.5.7.3.1": "TLS Web Server Authentication",
  "1.3.6.1.5.5.7.3.2": "TLS Web Client Authentication",
  "1.3.6.1.5.5.7.3.3": "Code Signing",
  "1.3.6.1.5.5.7.3.4": "E-mail Protection",
  "1.3.6.1.5.5.7.3.8": "Time Stamping",
  "1.3.6.1.5.5.7.3.9": "OCSP Signing"
}
const GENERAL_NAME_PREFIX: Readonly<Record<string, string>> = { url: "URI", dns: "DNS", email: "email", ip: "IP Address" }

const formatExtension = (ext: x509.Extension): [string, string] => {
  if (ext instanceof x509.KeyUsagesExtension) {
    return ["X509v3 Key Usage", KEY_USAGES.filter(([f]) => (ext.usages & f) !== 0).map(([, n]) => n).join(", ")]
  }
  if (ext instanceof x509.ExtendedKeyUsageExtension) {
    return ["X509v3 Extended Key Usage", ext.usages.map((u) => EKU_NAMES[String(u)] ?? String(u)).join(", ")]
  }
  if (ext instanceof x509.BasicConstraintsExtension) {
    return ["X509v3 Basic Constraints", `CA:${ext.ca ? "TRUE" : "FALSE"}${ext.pathLength === undefined ? "" : `, pathlen:${ext.pathLength}`}`]
  }
  if (ext instanceof x509.SubjectKeyIdentifierExtension) {
    return ["X509v3 Subject Key Identifier", hexColons(Buffer.from(ext.keyId, "hex"), true)]
  }
  if (ext instanceof x509.AuthorityKeyIdentifierExtension) {
    return ["X509v3 Authority Key Identifier", ext.keyId === undefined ? "" : hexColons(Buffer.from(ext.keyId, "hex"), true)]
  }
  if (ext instanceof x509.SubjectAlternativeNameExtension) {
    return ["X509v3 Subject Alternative Name", ext.names.items.map((n) => `${GENERAL_NAME_PREFIX[n.type] ?? n.type}:${n.value}`).join(", ")]
  }
  return [ext.type, hexBlock(new Uint8Array(ext.value), "")]
}

/** The fields of `openssl x509 -noout -text`, from @peculiar/x509 and node:crypto. */
export const renderCertificateText = (pem: string): string => {
  const cert = new x509.X509Certificate(pem)
  const serial = Buffer.from(cert.serialNumber, "hex")
  const serialText = serial.length <= 8
    ? `        Serial Number: ${BigInt(`0x${cert.serialNumber}`)} (0x${BigInt(`0x${cert.serialNumber}`).toString(16)})`
    : `        Serial Number:\n            ${hexColons(serial)}`
  const spki = Buffer.from(cert.publicKey.rawData)
  const key = (() => {
    const k = createPublicKey({ key: spki, format: "der", type: "spki" })
    const d = k.asymmetricKeyDetails ?? {}
    if (k.asymmetricKeyType === "ec") {
      const jwk = k.export({ format: "jwk" })
      const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x ?? "", "base64url"), Buffer.from(jwk.y ?? "", "base64url")])
      const nist: Record<string, string> = { prime256v1: "P-256", secp384r1: "P-384", secp521r1: "P-521" }
      const bits = (Buffer.from(jwk.x ?? "", "base64url").length * 8) + (d.namedCurve === "secp521r1" ? 1 : 0)
      return [
        "            Public Key Algorithm: id-ecPublicKey",
        `                Public-Key: (${bits} bit)`,
        "                pub:",
        hexBlock(point, "                    "),
        `                ASN1 OID: ${d.namedCurve ?? "unknown"}`,
        ...(d.namedCurve !== undefined && nist[d.namedCurve] !== undefined ? [`                NIST CURVE: ${nist[d.namedCurve]}`] : [])
      ].join("\n")
    }
    if (k.asymmetricKeyType === "rsa") {
      const jwk = k.export({ format: "jwk" })
      const n = Buffer.concat([Buffer.from([0]), Buffer.from(jwk.n ?? "", "base64url")])
      const e = BigInt(`0x${Buffer.from(jwk.e ?? "", "base64url").toString("hex")}`)
      return [
        "            Public Key Algorithm: rsaEncryption",
        `                Public-Key: (${d.modulusLength ?? "?"} bit)`,
        "                Modulus:",
        hexBlock(n, "                    "),
        `                Exponent: ${e} (0x${e.toString(16)})`
      ].join("\n")
    }
    return [`            Public Key Algorithm: ${k.asymmetricKeyType ?? "unknown"}`, hexBlock(spki, "                ")].join("\n")
  })()
  const extensions = cert.extensions.map((ext) => {
    const [title, body] = formatExtension(ext)
    return `            ${title}:${ext.critical ? " critical" : " "}\n                ${body}`
  })
  const sigAlg = signatureName(cert.signatureAlgorithm as unknown as Parameters<typeof signatureName>[0])
  return [
    "Certificate:",
    "    Data:",
    "        Version: 3 (0x2)",
    serialText,
    `        Signature Algorithm: ${sigAlg}`,
    `        Issuer: ${formatName(cert.issuerName)}`,
    "        Validity",
    `            Not Before: ${opensslDate(cert.notBefore)}`,
    `            Not After : ${opensslDate(cert.notAfter)}`,
    `        Subject: ${formatName(cert.subjectName)}`,
    "        Subject Public Key Info:",
    key,
    ...(extensions.length === 0 ? [] : ["        X509v3 extensions:", ...extensions]),
    `    Signature Algorithm: ${sigAlg}`,
    "    Signature Value:",
    hexBlock(new Uint8Array(cert.signature), "        ", 18)
  ].join("\n")
}

const certificateText = (file: string): { text: string; by: string } => {
  const openssl = forceNoOpenssl ? undefined : onPath("openssl")
  if (openssl !== undefined) {
    const r = spawnSync(openssl, ["x509", "-noout", "-text", "-in", file], { encoding: "utf8" })
    if (r.status !== 0) throw new DemoError(`openssl x509 -noout -text -in ${file} failed (exit ${r.status}): ${r.stderr}`)
    return { text: r.stdout.replace(/\n$/, ""), by: `${openssl} x509 -noout -text -in ${file}` }
  }
  const why = forceNoOpenssl ? "--no-openssl" : "no openssl on PATH"
  return { text: renderCertificateText(fs.readFileSync(file, "utf8")), by: `openssl x509 -noout -text -in ${file}   # rendered by the demo (${why})` }
}

// ------------------------------------------------------------------ the demo

const mountsUnder = (dir: string): Array<string> =>
  fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4] ?? "").filter((m) => m.startsWith(dir))

let plane: ControlPlane | undefined
let stack: Stack | undefined
let published: { unpublish: () => Promise<void>; deletePod: () => Promise<void>; target: string } | undefined
let tearingDown: Promise<boolean> | undefined
/** Set once everything is up under --keep: Ctrl-C is then the normal way out. */
let kept = false

/**
 * Unpublish, stop our processes, stop the plane; true when nothing is left mounted. The run
 * directory is removed only when the demo succeeded and nothing is left mounted.
 */
const teardown = (keepRunDir: boolean): Promise<boolean> => {
  tearingDown ??= (async () => {
    const t = Date.now()
    progress("tearing down")
    let clean = true
    const attempt = async (what: string, f: () => Promise<void>) => {
      try {
        await f()
      } catch (err) {
        clean = false
        process.stderr.write(`demo: teardown: ${what} failed: ${err instanceof Error ? err.message : String(err)}\n`)
      }
    }
    if (published !== undefined && stack !== undefined && stack.driver.exited() === undefined) {
      const p = published
      await attempt("NodeUnpublishVolume", p.unpublish)
      await attempt("deleting the pod", p.deletePod)
      if (isMountPoint(p.target)) {
        clean = false
        process.stderr.write(`demo: teardown: ${p.target} is still mounted after NodeUnpublishVolume\n`)
      } else progress(`unpublished: ${p.target} is no longer mounted`)
    }
    if (stack !== undefined) await attempt("stopping the driver and approver", stack.stop)
    if (plane !== undefined) {
      const p = plane
      await attempt("stopping the control plane", p.stop)
      const left = mountsUnder(p.tmpDir)
      if (left.length > 0) {
        clean = false
        process.stderr.write(`demo: still mounted under ${p.tmpDir}: ${left.join(", ")}\n`)
      }
      if (clean && !keepRunDir) {
        fs.rmSync(p.tmpDir, { recursive: true, force: true })
        progress(`removed ${p.tmpDir}`)
      } else process.stderr.write(`demo: run directory kept for inspection (every process log is in it): ${p.tmpDir}\n`)
    }
    progress(`torn down in ${secs(Date.now() - t)}`)
    return clean
  })()
  return tearingDown
}

const onSignal = (signal: NodeJS.Signals) => {
  process.stderr.write(`\ndemo: ${signal}; tearing down\n`)
  void teardown(!kept).then(
    (clean) => {
      if (kept) out(`demo ${clean ? "OK" : "finished, but teardown left something behind (see above)"}: total ${secs(Date.now() - t0)}`)
      process.exit(kept && clean ? 0 : kept ? 1 : 130)
    },
    () => process.exit(1)
  )
}

const main = async (): Promise<void> => {
  progress(`node ${process.version}; ${keep ? "--keep: everything stays up until Ctrl-C" : "tears down at the end"}`)
  if (process.getuid?.() !== 0) throw new DemoError("run as root: the driver mounts a tmpfs and bind mounts")

  progress("upstream programs: etcd, kube-apiserver, cert-manager, helm (built once, then cached)")
  const upstream = await ensureUpstream(controlPlaneComponents, { onProgress: (l) => progress(`  ${l}`) })

  progress("control plane: etcd, kube-apiserver, cert-manager webhook and controller, ClusterIssuer csi-driver-spiffe-ca")
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "csi-spiffe-demo-"))
  // Kept by the plane; removed by teardown() only when nothing is left mounted, so a failure leaves the logs.
  // (its own "kept <dir>" line is left out: teardown() says whether the directory stays)
  plane = await startControlPlane({ tmpDir, keepTmpDir: true, upstream, log: (m) => (m.startsWith("[control-plane] kept ") ? undefined : progress(`  ${m}`)) })
  progress(`control plane ready (${secs(plane.timings["total"] ?? 0)}), API server ${plane.server}`)

  progress("our approver and CSI driver (node e2e-node, trust domain foo.bar, --source-ca-bundle = the issuer's CA)")
  stack = await startStack(toInfo(plane), { name: "demo", trustDomain: TRUST_DOMAIN, sourceCaBundle: plane.issuer.caFile })
  progress(`driver serving ${stack.socket}`)

  progress(`example app: namespace ${NAMESPACE}, ServiceAccount ${SERVICE_ACCOUNT}, pod ${POD} with an inline spiffe.csi.cert-manager.io volume`)
  const s = stack
  const pod = await s.pod({ namespace: NAMESPACE, serviceAccount: SERVICE_ACCOUNT, podName: POD })
  progress(`NodePublishVolume as the kubelet (Pod-bound TokenRequest token, pod uid ${pod.podUid}); the approver decides, cert-manager signs`)
  const tPublish = Date.now()
  const request = await s.publishRequest(pod)
  published = { target: request.target_path, unpublish: () => s.unpublish(pod), deletePod: () => s.deletePod(pod) }
  await s.call("NodePublishVolume", request)
  const target = request.target_path
  progress(`published in ${secs(Date.now() - tPublish)}: ${target}`)
  if (!isMountPoint(target)) throw new DemoError(`NodePublishVolume succeeded but ${target} is not a mount point`)

  const crtFile = path.join(target, "tls.crt")
  const { text, by } = certificateText(crtFile)
  out()
  out(`$ ${by}`)
  out(text)
  out()

  const leaf = new x509.X509Certificate(fs.readFileSync(crtFile, "utf8"))
  const issuerLine = `Issuer: ${formatName(leaf.issuerName)}`
  const uris = (leaf.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? []).filter((n) => n.type === "url").map((n) => `URI:${n.value}`)
  const listing = fs.readdirSync(target).filter((n) => !n.startsWith(".")).sort().join(" ")
  out(issuerLine)
  for (const u of uris) out(u)
  out(listing)
  out()

  const problems: Array<string> = []
  if (issuerLine !== `Issuer: ${EXPECTED_ISSUER}`) problems.push(`issuer is "${issuerLine}", expected "Issuer: ${EXPECTED_ISSUER}"`)
  if (uris.length !== 1 || uris[0] !== `URI:${EXPECTED_URI}`) problems.push(`URI SANs are [${uris.join(", ")}], expected [URI:${EXPECTED_URI}]`)
  if (!text.includes(`        ${issuerLine}`) || !text.includes(`                URI:${EXPECTED_URI}`)) {
    problems.push("the certificate text lacks the Issuer or the URI line")
  }
  if (listing !== "ca.crt tls.crt tls.key") problems.push(`the volume holds "${listing}", expected "ca.crt tls.crt tls.key"`)
  else if (fs.readFileSync(path.join(target, "ca.crt"), "utf8") !== fs.readFileSync(plane.issuer.caFile, "utf8")) {
    problems.push("ca.crt differs from the --source-ca-bundle file")
  }
  const ca = new x509.X509Certificate(fs.readFileSync(plane.issuer.caFile, "utf8"))
  if (!(await leaf.verify({ publicKey: ca.publicKey, signatureOnly: true }))) problems.push("tls.crt is not signed by the issuer's CA")
  if (problems.length > 0) throw new DemoError(`the mounted SVID is not what the demo expects:\n  - ${problems.join("\n  - ")}`)

  if (keep) {
    const kubeletRoot = stack.kubeletRoot
    out("Everything is running (--keep). To reach it:")
    out(`  export KUBECONFIG=${plane.kubeconfigPath}    # admin, API server ${plane.server}`)
    out(`  CSI socket (our driver):   ${stack.socket}`)
    out(`  target path (my-csi-app):  ${target}`)
    out(`  kubelet root / data root:  ${kubeletRoot} / ${path.join(stack.dir, "data")}`)
    out(`  driver, approver logs:     ${stack.driver.logFile} ${stack.approver?.logFile ?? ""}`)
    out(`  control plane logs:        ${path.join(plane.tmpDir, "logs")}`)
    out(`  e.g. curl --cacert ${plane.caFile} -H "Authorization: Bearer $(grep token: ${plane.kubeconfigPath} | awk '{print $2}')" ${plane.server}/apis/cert-manager.io/v1/namespaces/${NAMESPACE}/certificaterequests`)
    out(`Up in ${secs(Date.now() - t0)}. Ctrl-C unpublishes and tears everything down.`)
    kept = true
    await new Promise<never>(() => {
      // the SIGINT/SIGTERM handler tears down and exits
    })
  }
}

// Run when executed (`node scripts/demo.ts`); importing the module (renderCertificateText) runs nothing.
if (import.meta.main) {
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
  try {
    await main()
    const clean = await teardown(false)
    out(`demo ${clean ? "OK" : "finished, but teardown left something behind (see above)"}: total ${secs(Date.now() - t0)}`)
    process.exit(clean ? 0 : 1)
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err)
    process.stderr.write(`\ndemo FAILED after ${secs(Date.now() - t0)}: ${msg}\n`)
    if (stack !== undefined) {
      process.stderr.write(`--- last lines of ${stack.driver.logFile} ---\n${stack.driver.tail(25)}\n`)
      if (stack.approver !== undefined) process.stderr.write(`--- last lines of ${stack.approver.logFile} ---\n${stack.approver.tail(15)}\n`)
    }
    await teardown(true)
    process.exit(1)
  }
}

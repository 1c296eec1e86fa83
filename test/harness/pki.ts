// PKI for one control-plane run, generated in-process (WebCrypto + @peculiar/x509), ECDSA P-256.
//   ca.crt/ca.key                harness CA: signs the apiserver's and the webhook's serving certs
//   apiserver.crt/apiserver.key  serving cert, SAN IP:127.0.0.1, DNS:localhost
//   webhook.crt/webhook.key      cert-manager webhook serving cert, SAN IP:127.0.0.1
//   sa.key/sa.pub                ServiceAccount token signing key pair (TokenRequest)
//   spiffe-ca.crt/spiffe-ca.key  self-signed CA behind the ClusterIssuer (CN = csi-driver-spiffe-ca)
// Keys are written as PKCS#8 "PRIVATE KEY" PEM, which Go's keyutil, cert-manager and go-spiffe accept.
import "reflect-metadata"
import * as x509 from "@peculiar/x509"
import { webcrypto } from "node:crypto"
import { writeFileSync } from "node:fs"
import { join } from "node:path"

type CryptoKey = webcrypto.CryptoKey
type CryptoKeyPair = webcrypto.CryptoKeyPair
const crypto = webcrypto
x509.cryptoProvider.set(crypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const
const signingAlgorithm = { name: "ECDSA", hash: "SHA-256" } as const

export interface KeyPairPem {
  readonly certPem: string
  readonly keyPem: string
}

interface CertAndKeys {
  readonly cert: x509.X509Certificate
  readonly keys: CryptoKeyPair
}

const genKeys = async (): Promise<CryptoKeyPair> =>
  (await crypto.subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair

const pemBlock = (label: string, der: ArrayBuffer): string => {
  const b64 = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n")
  return `-----BEGIN ${label}-----\n${b64.endsWith("\n") ? b64 : `${b64}\n`}-----END ${label}-----\n`
}

const keyPem = async (key: CryptoKey): Promise<string> => pemBlock("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", key))

const serial = (): string => Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex").replace(/^[89a-f]/, "1")

const validity = (days: number) => {
  const notBefore = new Date(Date.now() - 60 * 60 * 1000)
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * 24 * 60 * 60 * 1000) }
}

export const createCa = async (commonName: string, days = 3650): Promise<CertAndKeys> => {
  const keys = await genKeys()
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    ...validity(days),
    keys,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)
    ]
  })
  return { cert, keys }
}

export interface LeafOptions {
  readonly commonName: string
  readonly ips?: ReadonlyArray<string>
  readonly dnsNames?: ReadonlyArray<string>
  readonly server?: boolean
  readonly client?: boolean
  readonly days?: number
  /** subject O= (e.g. `system:nodes` for a kubelet's client certificate) */
  readonly organization?: string
}

export const createLeaf = async (ca: CertAndKeys, opts: LeafOptions): Promise<CertAndKeys> => {
  const keys = await genKeys()
  const names = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(opts.ips ?? []).map((value) => ({ type: "ip" as const, value }))
  ]
  const ekus: Array<string> = []
  if (opts.server ?? true) ekus.push(x509.ExtendedKeyUsage.serverAuth)
  if (opts.client ?? false) ekus.push(x509.ExtendedKeyUsage.clientAuth)
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: opts.organization === undefined ? `CN=${opts.commonName}` : `CN=${opts.commonName}, O=${opts.organization}`,
    issuer: ca.cert.subject,
    ...validity(opts.days ?? 365),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(ekus),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey)
    ]
  })
  return { cert, keys }
}

const toPem = async (ck: CertAndKeys): Promise<KeyPairPem> => ({
  certPem: ck.cert.toString("pem") + "\n",
  keyPem: await keyPem(ck.keys.privateKey)
})

export interface Pki {
  readonly dir: string
  readonly ca: KeyPairPem & { readonly certFile: string; readonly keyFile: string }
  readonly apiserver: { readonly certFile: string; readonly keyFile: string }
  readonly webhook: { readonly certFile: string; readonly keyFile: string }
  readonly serviceAccount: { readonly keyFile: string; readonly pubFile: string }
  readonly spiffeCa: KeyPairPem & { readonly certFile: string; readonly keyFile: string }
}

const writePair = (dir: string, name: string, pem: KeyPairPem) => {
  const certFile = join(dir, `${name}.crt`)
  const keyFile = join(dir, `${name}.key`)
  writeFileSync(certFile, pem.certPem)
  writeFileSync(keyFile, pem.keyPem, { mode: 0o600 })
  return { certFile, keyFile }
}

export interface PkiOptions {
  /** CN of the CA behind the ClusterIssuer; the demo expects `csi-driver-spiffe-ca` */
  readonly spiffeCaCommonName?: string
  /** more IP SANs of the apiserver's serving certificate (the node IP, the `kubernetes` Service IP) */
  readonly apiserverIps?: ReadonlyArray<string>
}

export const generatePki = async (dir: string, opts: PkiOptions = {}): Promise<Pki> => {
  const ca = await createCa("csi-driver-spiffe-e2e-harness-ca")
  const caPem = await toPem(ca)
  const apiserver = await toPem(
    await createLeaf(ca, {
      commonName: "kube-apiserver",
      ips: ["127.0.0.1", ...(opts.apiserverIps ?? [])],
      dnsNames: ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    })
  )
  const webhook = await toPem(await createLeaf(ca, { commonName: "cert-manager-webhook", ips: ["127.0.0.1"], dnsNames: ["localhost"] }))
  const spiffeCa = await toPem(await createCa(opts.spiffeCaCommonName ?? "csi-driver-spiffe-ca"))

  const saKeys = await genKeys()
  const saKeyFile = join(dir, "sa.key")
  const saPubFile = join(dir, "sa.pub")
  writeFileSync(saKeyFile, await keyPem(saKeys.privateKey), { mode: 0o600 })
  writeFileSync(saPubFile, pemBlock("PUBLIC KEY", await crypto.subtle.exportKey("spki", saKeys.publicKey)))

  return {
    dir,
    ca: { ...caPem, ...writePair(dir, "ca", caPem) },
    apiserver: writePair(dir, "apiserver", apiserver),
    webhook: writePair(dir, "webhook", webhook),
    serviceAccount: { keyFile: saKeyFile, pubFile: saPubFile },
    spiffeCa: { ...spiffeCa, ...writePair(dir, "spiffe-ca", spiffeCa) }
  }
}

/**
 * A leaf certificate signed by the harness CA of an existing PKI, written as <dir>/<name>.crt/.key
 * (e.g. a kubelet's client and serving certificates, the apiserver's kubelet-client certificate).
 */
export const issueLeaf = async (
  pki: Pki,
  opts: LeafOptions,
  name: string,
  dir: string = pki.dir
): Promise<KeyPairPem & { readonly certFile: string; readonly keyFile: string }> => {
  const cert = new x509.X509Certificate(pki.ca.certPem)
  const der = Buffer.from(pki.ca.keyPem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64")
  const privateKey = await crypto.subtle.importKey("pkcs8", der, alg, true, ["sign"])
  const publicKey = await cert.publicKey.export(alg, ["verify"], crypto as unknown as Parameters<typeof cert.publicKey.export>[2])
  const leaf = await toPem(await createLeaf({ cert, keys: { privateKey, publicKey } as CryptoKeyPair }, opts))
  return { ...leaf, ...writePair(dir, name, leaf) }
}

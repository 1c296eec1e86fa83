/**
 * `Crypto` over Node's WebCrypto and @peculiar/x509 (through `src/x509.ts`).
 *
 * @peculiar/x509 and the ASN.1 stack under it (asn1js, the @peculiar/asn1-* schemas,
 * reflect-metadata, tsyringe) are imported on the first key, CSR or certificate, not with this
 * module: a driver answers the kubelet's Probe before it issues anything, and evaluating that stack
 * was about a tenth of its start-up CPU (bench/results/footprint.md). The bundle puts it in a chunk
 * of its own.
 */
import { Effect, Layer, Redacted } from "effect"
import type { webcrypto } from "node:crypto"
import type { ChainFacts, KeyPair } from "../services/Crypto.ts"
import { Crypto, CryptoError } from "../services/Crypto.ts"

const EC_P256 = { name: "ECDSA", namedCurve: "P-256" } as const
const SIGN_ALG = { name: "ECDSA", hash: "SHA-256" } as const

const toHex = (b: ArrayBuffer): string => Buffer.from(b).toString("hex")

const pemBlocks = (pem: string, label: string): ReadonlyArray<string> =>
  pem.match(new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----`, "g")) ?? []

const fail = (operation: string) => (cause: unknown) =>
  new CryptoError({ operation, detail: cause instanceof Error ? cause.message : String(cause), cause })

/** `@peculiar/x509`, imported on first use (the module loader keeps it for every later call). */
const loadX509 = Effect.tryPromise({
  try: () => import("../x509.ts").then((m) => m.x509),
  catch: fail("load @peculiar/x509")
})

const generateKey = Effect.flatMap(loadX509, (x509) =>
  Effect.tryPromise({
    try: async (): Promise<KeyPair> => {
      const keys = (await globalThis.crypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair
      const pkcs8 = await globalThis.crypto.subtle.exportKey("pkcs8", keys.privateKey)
      const spki = await globalThis.crypto.subtle.exportKey("spki", keys.publicKey)
      return {
        pem: Redacted.make(x509.PemConverter.encode(pkcs8, "PRIVATE KEY"), { label: "PrivateKey" }),
        publicKeySpkiHex: toHex(spki),
        handle: Redacted.make<unknown>(keys, { label: "KeyHandle" })
      }
    },
    catch: fail("generate key")
  }))

const createCsr = (key: KeyPair, spiffeId: string) =>
  Effect.flatMap(loadX509, (x509) => Effect.tryPromise({
    try: async () => {
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        keys: Redacted.value(key.handle) as webcrypto.CryptoKeyPair,
        signingAlgorithm: SIGN_ALG,
        extensions: [new x509.SubjectAlternativeNameExtension([{ type: "url", value: spiffeId }], true)]
      })
      return csr.toString("pem")
    },
    catch: fail("create CSR")
  }))

const inspectChain = (pem: string) =>
  Effect.flatMap(loadX509, (x509) => Effect.try({
    try: (): ChainFacts => {
      const blocks = pemBlocks(pem, "CERTIFICATE")
      if (blocks.length === 0) throw new Error("no PEM CERTIFICATE block")
      const certs = blocks.map((b) => new x509.X509Certificate(b))
      const leaf = certs[0]!
      const san = leaf.getExtension(x509.SubjectAlternativeNameExtension)
      const names = san?.names.items ?? []
      const ku = leaf.getExtension(x509.KeyUsagesExtension)
      const bc = leaf.getExtension(x509.BasicConstraintsExtension)
      return {
        length: certs.length,
        leaf: {
          notBefore: leaf.notBefore.getTime(),
          notAfter: leaf.notAfter.getTime(),
          serialNumber: leaf.serialNumber,
          publicKeySpkiHex: toHex(leaf.publicKey.rawData),
          uris: names.filter((n) => n.type === "url").map((n) => n.value),
          otherSans: names.filter((n) => n.type !== "url").length,
          isCA: bc?.ca === true,
          digitalSignature: ku !== null && (ku.usages & x509.KeyUsageFlags.digitalSignature) !== 0
        }
      }
    },
    catch: fail("inspect certificate chain")
  }))

const validateBundle = (pem: string) =>
  Effect.flatMap(loadX509, (x509) => Effect.try({
    try: () => {
      const blocks = pemBlocks(pem, "CERTIFICATE")
      if (blocks.length === 0) throw new Error("no PEM CERTIFICATE block")
      for (const b of blocks) new x509.X509Certificate(b)
      return blocks.length
    },
    catch: fail("validate CA bundle")
  }))

export const layer = Layer.succeed(Crypto, Crypto.of({ generateKey, createCsr, inspectChain, validateBundle }))

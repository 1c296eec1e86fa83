import { assert, describe, it } from "@effect/vitest"
import { credentialBundle, CREDENTIAL_BUNDLE_FILE, trustBundle, trustBundleFile } from "../../../src/domain/FilesystemDelivery.ts"
import { pemBlocks } from "../../../src/domain/Pem.ts"

const block = (label: string, bytes: string, header = "") =>
  `-----BEGIN ${label}-----\n${header}${Buffer.from(bytes).toString("base64")}\n-----END ${label}-----\n`
const texts = (pem: string, label: string) => pemBlocks(pem, label).map((b) => Buffer.from(b).toString())

describe("FilesystemDelivery", () => {
  it("names the files as the draft's newest revision does", () => {
    assert.strictEqual(CREDENTIAL_BUNDLE_FILE, "credential-bundle.private-key.x509.pem")
    assert.strictEqual(trustBundleFile("foo.bar"), "foo.bar.spiffe-trust-bundle.x509.pem")
  })

  it("the credential bundle is the key, then the chain leaf first without the trust anchors, and nothing else", () => {
    const chain = `comment\n${block("CERTIFICATE", "leaf")}${block("CERTIFICATE", "intermediate")}${block("CERTIFICATE", "root")}`
    const out = credentialBundle(block("PRIVATE KEY", "key"), chain, block("CERTIFICATE", "root"))
    assert.deepStrictEqual(texts(out, "PRIVATE KEY"), ["key"])
    assert.deepStrictEqual(texts(out, "CERTIFICATE"), ["leaf", "intermediate"])
    assert.isTrue(out.startsWith("-----BEGIN PRIVATE KEY-----\n"), "key first")
    assert.notInclude(out, "comment")
    assert.match(out, /^(-----BEGIN [A-Z ]+-----\n([A-Za-z0-9+/=]{1,64}\n)+-----END [A-Z ]+-----\n)+$/, "only canonical blocks")
  })

  it("the trust bundle is the CA certificates, or empty (redacted) without a bundle", () => {
    assert.deepStrictEqual(texts(trustBundle(block("CERTIFICATE", "a") + block("CERTIFICATE", "b")), "CERTIFICATE"), ["a", "b"])
    assert.strictEqual(trustBundle(undefined), "")
  })
})

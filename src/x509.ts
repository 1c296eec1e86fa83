/**
 * The only module that loads `@peculiar/x509`. The library needs the `reflect-metadata` polyfill to be
 * evaluated before it, and ESM evaluates imports in order, so every other module imports `x509` from
 * here. WebCrypto is Node's own.
 */
import "reflect-metadata"
import * as x509 from "@peculiar/x509"

x509.cryptoProvider.set(globalThis.crypto)

export { x509 }

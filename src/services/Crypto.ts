/**
 * Keys, CSRs and certificates.
 *
 * Owns: generating the per-issuance key (ECDSA P-256; it never leaves the node), encoding it as the
 * PKCS#8 `PRIVATE KEY` PEM go-spiffe reads, building the CSR (empty subject, exactly one URI SAN,
 * critical because the subject is empty, RFC 5280 §4.2.1.6), and reading an issued chain into the
 * facts the driver checks before mounting it.
 * Does not own: deciding whether a chain is acceptable (the driver), storage (VolumeStore).
 */
import { Context, Schema } from "effect"
import type { Effect, Redacted } from "effect"

export class CryptoError extends Schema.TaggedError<CryptoError>()("CryptoError", {
  operation: Schema.String,
  detail: Schema.String,
  /** The failure behind it (e.g. the file-system error reading a bundle), when there is one. */
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `${this.operation}: ${this.detail}`
  }
}

/** A private key held for one issuance. `handle` signs; `pem` is what lands in the volume. */
export interface KeyPair {
  readonly pem: Redacted.Redacted<string>
  /** SubjectPublicKeyInfo DER as hex, to match against the issued leaf. */
  readonly publicKeySpkiHex: string
  readonly handle: Redacted.Redacted<unknown>
}

/** What the driver needs to know of an issued chain. Times are epoch milliseconds. */
export interface ChainFacts {
  /** Number of certificates in the PEM. */
  readonly length: number
  readonly leaf: {
    readonly notBefore: number
    readonly notAfter: number
    readonly serialNumber: string
    readonly publicKeySpkiHex: string
    readonly uris: ReadonlyArray<string>
    readonly otherSans: number
    readonly isCA: boolean
    readonly digitalSignature: boolean
  }
}

export interface CryptoShape {
  readonly generateKey: Effect.Effect<KeyPair, CryptoError>
  /** PEM `CERTIFICATE REQUEST` for exactly this SPIFFE ID. */
  readonly createCsr: (key: KeyPair, spiffeId: string) => Effect.Effect<string, CryptoError>
  /** Parses a PEM chain; fails when it holds no certificate or a block does not parse. */
  readonly inspectChain: (pem: string) => Effect.Effect<ChainFacts, CryptoError>
  /** Parses a PEM bundle of CA certificates; fails when empty or a block does not parse. */
  readonly validateBundle: (pem: string) => Effect.Effect<number, CryptoError>
}

export class Crypto extends Context.Service<Crypto, CryptoShape>()("csi-driver-spiffe/services/Crypto") {}

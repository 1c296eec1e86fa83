/**
 * The PodCertificateRequest signer's settings as typed values (decoded from the command line by
 * `config/SignerFlags.ts`, provided by `bin/SignerLive.ts`).
 *
 * Owns: the shape the signer's pieces read and the defaults the contract with the chart fixes
 * (signer name `spiffe.csi.cert-manager.io/svid`, intermediate 168 h, leaves at most 24 h).
 */
import { Context, Layer } from "effect"
import { DEFAULT_INTERMEDIATE_DURATION_MS } from "../domain/IntermediateRules.ts"
import type { DefaultedIssuerRef } from "../domain/IssuerRef.ts"
import { DEFAULT_SIGNER_NAME } from "../domain/PodCertificate.ts"
import type { SignerPolicy } from "../domain/PodCertificate.ts"

export interface SignerConfigShape extends SignerPolicy {
  /** `--issuer-name/kind/group`: the cert-manager issuer that signs the intermediate. */
  readonly issuer: DefaultedIssuerRef
  /** `--certificate-namespace`: where the intermediate's CertificateRequests are created. */
  readonly certificateNamespace: string
  /** `--intermediate-duration` in milliseconds (the request's spec.duration). */
  readonly intermediateMillis: number
  /** `--leader-election-namespace`: where the Lease `csi-driver-spiffe-signer` lives. */
  readonly leaderElectionNamespace: string
}

export class SignerConfig extends Context.Service<SignerConfig, SignerConfigShape>()("csi-driver-spiffe/services/SignerConfig") {}

/** The name of the signer's leader-election Lease. */
export const LEASE_NAME = "csi-driver-spiffe-signer"

export const defaults: SignerConfigShape = {
  signerName: DEFAULT_SIGNER_NAME,
  trustDomain: "cluster.local",
  maxLeafMillis: 24 * 3_600_000,
  beginRefreshAfterMillis: undefined,
  issuer: { name: "my-spiffe-ca", kind: "ClusterIssuer", group: "cert-manager.io" },
  certificateNamespace: "cert-manager",
  intermediateMillis: DEFAULT_INTERMEDIATE_DURATION_MS,
  leaderElectionNamespace: "cert-manager"
}

export const layer = (overrides: Partial<SignerConfigShape> = {}): Layer.Layer<SignerConfig> =>
  Layer.succeed(SignerConfig, SignerConfig.of({ ...defaults, ...overrides }))

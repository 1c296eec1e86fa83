/**
 * The approver's start-up settings as typed values.
 *
 * Owns: the shape the approver's pieces read (rules policy, leader election, concurrency) and the
 * defaults of the flags of the Go original's approver (cert-manager/csi-driver-spiffe,
 * https://github.com/cert-manager/csi-driver-spiffe, `cmd/approver`).
 * Does not own: flag parsing (`config/ApproverFlags.ts` builds this value, `bin/ApproverLive.ts`
 * provides it), the runtime issuer (`IssuerConfig`), or metrics/readiness servers.
 */
import { Context, Layer } from "effect"
import type { DefaultedIssuerRef } from "../domain/IssuerRef.ts"
import { DEFAULT_INTERMEDIATE_DURATION_MS } from "../domain/IntermediateRules.ts"
import { DEFAULT_ALLOWED_KEY_TYPES } from "../domain/SpiffeRules.ts"

export interface ApproverConfigShape {
  /** `--csi-driver-name`; also the name of the leader-election Lease. */
  readonly csiDriverName: string
  /** `--trust-domain`: the only trust domain a request's SPIFFE ID may name. */
  readonly trustDomain: string
  /** `--certificate-request-duration` in milliseconds; `spec.duration` must equal it. */
  readonly certificateRequestDuration: number
  /** `--issuer-name/kind/group`: the SPIFFE issuer when the runtime ConfigMap names none. */
  readonly issuer: DefaultedIssuerRef
  /** `--auto-approve-non-spiffe`: approve requests without the identity annotation (see SpiffeRules). */
  readonly autoApproveNonSpiffe: boolean
  /** `--leader-election-namespace`: where the Lease lives. */
  readonly leaderElectionNamespace: string
  /** Key types a request may use (`ecdsa-p256`, `rsa-2048`, …; see `SpiffeRules.KNOWN_KEY_TYPES`). */
  readonly allowedKeyTypes: ReadonlyArray<string>
  /**
   * `--driver-service-account` when `--use-own-service-account` is on: the CSI driver's ServiceAccount
   * username, the only requester allowed (see SpiffeRules). Undefined in the default mode.
   */
  readonly driverServiceAccount: string | undefined
  /**
   * `--signer-service-account` as a username (`system:serviceaccount:<ns>:<name>`): the Pod
   * Certificate signer, the only requester whose intermediate CA may be approved (see
   * IntermediateRules). Undefined: every intermediate request is denied.
   */
  readonly signerServiceAccount: string | undefined
  /** `--signer-intermediate-duration` in milliseconds; the intermediate's `spec.duration` must equal it. */
  readonly signerIntermediateDuration: number
}

export class ApproverConfig extends Context.Service<ApproverConfig, ApproverConfigShape>()(
  "csi-driver-spiffe/services/ApproverConfig"
) {}

/** The Go original's flag defaults plus ECDSA P-256 as the only key type. */
export const defaults: ApproverConfigShape = {
  csiDriverName: "spiffe.csi.cert-manager.io",
  trustDomain: "cluster.local",
  certificateRequestDuration: 60 * 60 * 1000,
  issuer: { name: "my-spiffe-ca", kind: "ClusterIssuer", group: "cert-manager.io" },
  autoApproveNonSpiffe: false,
  leaderElectionNamespace: "cert-manager",
  allowedKeyTypes: DEFAULT_ALLOWED_KEY_TYPES,
  driverServiceAccount: undefined,
  signerServiceAccount: undefined,
  signerIntermediateDuration: DEFAULT_INTERMEDIATE_DURATION_MS
}

/** A fixed configuration: the defaults with `overrides` applied. */
export const layer = (overrides: Partial<ApproverConfigShape> = {}): Layer.Layer<ApproverConfig> =>
  Layer.succeed(ApproverConfig, ApproverConfig.of({ ...defaults, ...overrides }))

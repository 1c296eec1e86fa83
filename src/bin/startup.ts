/**
 * What each binary's start-up line says it runs with (version and flags are added by `main.ts`),
 * and the configuration problems it logs as errors without stopping.
 */
import * as path from "node:path"
import type { ApproverSettings } from "../config/ApproverFlags.ts"
import type { SignerSettings } from "../config/SignerFlags.ts"
import { formatGoDuration } from "../domain/CertificateRequest.ts"
import { LEASE_NAME } from "../services/SignerConfig.ts"
import type { DriverConfigShape } from "../services/DriverConfig.ts"
import { RESERVED_ANNOTATION_PREFIX } from "../config/DriverFlags.ts"
import type { Startup } from "./main.ts"

/** What the driver's start-up line says it runs with. */
export const driverStartup = (config: DriverConfigShape): Startup => ({
  verbosity: config.logLevel,
  format: config.logFormat ?? "text",
  fields: {
    driver: config.csiDriverName,
    node: config.nodeId,
    trustDomain: config.trustDomain,
    issuer: config.issuer === undefined ? "none (runtime ConfigMap only)" : `${config.issuer.kind}.${config.issuer.group}/${config.issuer.name}`,
    runtimeIssuanceConfigMap: config.runtimeIssuanceConfigMap === undefined
      ? "none"
      : `${config.runtimeIssuanceConfigMap.namespace}/${config.runtimeIssuanceConfigMap.name}`,
    dataRoot: path.resolve(config.dataRoot),
    kubeletRootDir: config.kubeletRootDir,
    endpoint: config.endpoint
  },
  errors: (config.droppedAnnotationKeys ?? []).map((key) => [
    "some custom annotations were removed",
    { annotation: key, reason: `must not begin with ${RESERVED_ANNOTATION_PREFIX}` }
  ])
})

/** What the approver's start-up line says it runs with. */
export const approverStartup = (s: ApproverSettings): Startup => ({
  verbosity: s.logLevel,
  format: s.logFormat,
  fields: {
    driver: s.config.csiDriverName,
    trustDomain: s.config.trustDomain,
    issuer: s.staticIssuer ? `${s.config.issuer.kind}.${s.config.issuer.group}/${s.config.issuer.name}` : "none (runtime ConfigMap only)",
    runtimeIssuanceConfigMap: s.runtimeIssuanceConfigMap === undefined ? "none" : `${s.runtimeIssuanceConfigMap.namespace}/${s.runtimeIssuanceConfigMap.name}`,
    leaderElection: `${s.config.leaderElectionNamespace}/${s.config.csiDriverName}`
  }
})

/** What the signer's start-up line says it runs with. */
export const signerStartup = (s: SignerSettings): Startup => ({
  verbosity: s.logLevel,
  format: s.logFormat,
  fields: {
    signerName: s.config.signerName,
    trustDomain: s.config.trustDomain,
    issuer: `${s.config.issuer.kind}.${s.config.issuer.group}/${s.config.issuer.name}`,
    certificateNamespace: s.config.certificateNamespace,
    intermediateDuration: formatGoDuration(s.config.intermediateMillis),
    maxLeafDuration: formatGoDuration(s.config.maxLeafMillis),
    beginRefreshAfter: s.config.beginRefreshAfterMillis === undefined ? "2/3 of the lifetime" : formatGoDuration(s.config.beginRefreshAfterMillis),
    leaderElection: `${s.config.leaderElectionNamespace}/${LEASE_NAME}`
  }
})

/**
 * What a volume holds: the files written into its data directory and the SVID its Workload API
 * socket serves, both made from the same PEM texts, and bringing every volume's CA file up to date.
 *
 * Owns: the file names and modes of a volume (certificate, key, CA bundle, and the
 * filesystem-delivery bundles when the volume asks for them), the SVID value derived from them, the
 * rule that an identical SVID is not pushed again, and the CA refresh of every issued volume (each
 * under its lock, all concurrently).
 * Does not own: issuing (`Issue.ts`), writing files atomically (VolumeStore), serving the socket
 * (`Socket.ts`, WorkloadApi), when the CA changes (CaBundle).
 */
import { Effect, Predicate, Redacted, Ref, SubscriptionRef } from "effect"
import * as FilesystemDelivery from "../../domain/FilesystemDelivery.ts"
import { pemToConcatenatedDer } from "../../domain/Pem.ts"
import type { VolumeMetadata } from "../../domain/VolumeMetadata.ts"
import { CaBundle } from "../../services/CaBundle.ts"
import { DriverConfig } from "../../services/DriverConfig.ts"
import type { VolumeFile } from "../../services/VolumeStore.ts"
import { VolumeStore } from "../../services/VolumeStore.ts"
import type { VolumeSvid } from "../../services/WorkloadApi.ts"
import type { Volumes, VolumeState } from "./State.ts"

/** File modes: readable by the owner (root) and the fs-group only; the pod sees them through a read-only bind. */
const FILE_MODE = 0o440

const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)

export const make = Effect.gen(function*() {
  const config = yield* DriverConfig
  const store = yield* VolumeStore
  const caBundle = yield* CaBundle

  /** The SVID state the volume's socket serves, from the PEM texts the volume holds. */
  const svidOf = (m: VolumeMetadata, chainPem: string, keyPem: string, caPem: string | undefined): VolumeSvid => ({
    spiffeId: m.spiffeId,
    trustDomainId: `spiffe://${config.trustDomain}`,
    chainDer: pemToConcatenatedDer(chainPem, "CERTIFICATE"),
    keyDer: Redacted.make(pemToConcatenatedDer(keyPem, "PRIVATE KEY"), { label: "PrivateKey" }),
    bundleDer: pemToConcatenatedDer(caPem ?? "", "CERTIFICATE")
  })

  /** Publishes the volume's new SVID state to its socket; an identical state is not pushed again. */
  const setSvid = (state: VolumeState, next: VolumeSvid) =>
    Effect.flatMap(SubscriptionRef.get(state.svid), (old) =>
      old !== undefined && old.spiffeId === next.spiffeId && sameBytes(old.chainDer, next.chainDer) &&
        sameBytes(Redacted.value(old.keyDer), Redacted.value(next.keyDer)) && sameBytes(old.bundleDer, next.bundleDer)
        ? Effect.void
        : SubscriptionRef.set(state.svid, next))

  /** The volume's files for this chain and key, with the current CA bundle. */
  const filesFor = Effect.fnUntraced(function*(m: VolumeMetadata, chainPem: string, keyPem: VolumeFile["content"]) {
    const ca = yield* caBundle.current
    const files: Array<VolumeFile> = [
      { name: config.fileNames.certificate, content: chainPem, mode: FILE_MODE },
      { name: config.fileNames.key, content: keyPem, mode: FILE_MODE }
    ]
    if (ca !== undefined) files.push({ name: config.fileNames.ca, content: ca, mode: FILE_MODE })
    if (m.filesystemDelivery === true) {
      const key = Predicate.isString(keyPem) ? keyPem : Redacted.value(keyPem)
      files.push(
        { name: FilesystemDelivery.CREDENTIAL_BUNDLE_FILE, content: Redacted.make(FilesystemDelivery.credentialBundle(key, chainPem, ca)), mode: FILE_MODE },
        { name: FilesystemDelivery.trustBundleFile(config.trustDomain), content: FilesystemDelivery.trustBundle(ca), mode: FILE_MODE }
      )
    }
    return files
  })

  /** The CA bundle among a volume's files, if one is written. */
  const caOf = (files: ReadonlyArray<VolumeFile>): string | undefined => {
    const ca = files.find((f) => f.name === config.fileNames.ca)?.content
    return ca === undefined || !Predicate.isString(ca) ? undefined : ca
  }

  /** The certificate and key the volume's files hold now; undefined when either is missing. */
  const readIssued = Effect.fnUntraced(function*(volumeId: string) {
    const cert = yield* store.readFile(volumeId, config.fileNames.certificate)
    const key = yield* store.readFile(volumeId, config.fileNames.key)
    return cert === undefined || key === undefined ? undefined : { cert, key }
  })

  /**
   * Rewrites the CA file (and what is made from it) of every issued volume. Volumes are refreshed
   * concurrently: one whose lock is held by a slow renewal must not delay the CA change of all the
   * others.
   */
  const refreshCaFiles = (volumes: Volumes) =>
    Effect.flatMap(volumes.all, (all) =>
      Effect.forEach(
        all,
        (state) =>
          state.lock.withPermit(
            Effect.gen(function*() {
              const meta = yield* Ref.get(state.meta)
              if (meta.nextIssuanceAt === undefined) return
              const issued = yield* readIssued(meta.volumeId)
              if (issued === undefined) return
              const files = yield* filesFor(meta, issued.cert, issued.key)
              yield* store.writeFiles(meta.volumeId, files, meta.fsGroup)
              yield* setSvid(state, svidOf(meta, issued.cert, issued.key, caOf(files)))
            })
          ).pipe(Effect.catch((e) => Effect.logWarning("could not refresh the CA file", { volume: state.volumeId, error: e.message }))),
        { concurrency: "unbounded", discard: true }
      ))

  return { svidOf, setSvid, filesFor, caOf, readIssued, refreshCaFiles }
})

export type Files = Effect.Success<typeof make>

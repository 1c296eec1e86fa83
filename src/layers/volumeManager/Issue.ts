/**
 * One issuance for a volume: ask Issuance for a certificate, publish the files and the socket's
 * SVID, then advance the stored metadata to the next renewal instant.
 *
 * Owns: the order "files first, then metadata" (a failed write never advances the renewal time),
 * drawing the renewal instant, the issuance metric, and the Warning event on the Pod that tells its
 * owner why the SVID did not arrive. The caller holds the volume's lock.
 * Does not own: when to issue or retry (`Publish.ts`, `Renewal.ts`), the file set (`Files.ts`),
 * talking to cert-manager (Issuance).
 */
import { Effect, Random, Redacted, Ref } from "effect"
import { renewalInstant } from "../../domain/Renewal.ts"
import { iso } from "../../domain/UtcTime.ts"
import { VolumeMetadata } from "../../domain/VolumeMetadata.ts"
import { DriverConfig } from "../../services/DriverConfig.ts"
import { EventRecorder } from "../../services/EventRecorder.ts"
import { Issuance } from "../../services/Issuance.ts"
import type { IssuanceError } from "../../services/Issuance.ts"
import { VolumeStore } from "../../services/VolumeStore.ts"
import * as DriverMetrics from "../DriverMetrics.ts"
import type { Files } from "./Files.ts"
import type { VolumeState } from "./State.ts"

/** Event reasons on the Pod, by issuance failure; NotReady is a wait state and records nothing. */
const eventReasons: Record<IssuanceError["reason"], string | undefined> = {
  NotReady: undefined,
  Denied: "SpiffeIssuanceDenied",
  Failed: "SpiffeIssuanceFailed",
  Timeout: "SpiffeIssuanceTimedOut",
  Api: "SpiffeIssuanceError",
  Unauthenticated: "SpiffeTokenRejected",
  Forbidden: "SpiffeIssuanceForbidden",
  BadChain: "SpiffeCertificateRejected",
  Crypto: "SpiffeIssuanceError"
}

export const make = (files: Files) =>
  Effect.gen(function*() {
    const policy = (yield* DriverConfig).renewal
    const issuance = yield* Issuance
    const store = yield* VolumeStore
    const events = yield* EventRecorder

    /** Tells the pod's owner why its SVID did not arrive (`kubectl describe pod`). */
    const recordFailure = (m: VolumeMetadata, e: IssuanceError) => {
      const reason = eventReasons[e.reason]
      return reason === undefined
        ? Effect.void
        : events.record({
          involvedObject: { apiVersion: "v1", kind: "Pod", name: m.podName, namespace: m.podNamespace, uid: m.podUid },
          type: "Warning",
          reason,
          message: `SPIFFE SVID for volume ${m.volumeId}: ${e.message}`
        })
    }

    /** One issuance for the volume, its files published, its metadata advanced. Caller holds the lock. */
    const issueAndWriteOnce = Effect.fn("VolumeManager.issueAndWrite")(function*(state: VolumeState) {
      const m = yield* Ref.get(state.meta)
      const token = yield* Ref.get(state.token)
      const issued = yield* issuance.issue({
        volumeId: m.volumeId,
        podName: m.podName,
        podUid: m.podUid,
        namespace: m.podNamespace,
        spiffeId: m.spiffeId,
        token: token?.token
      })
      const written = yield* files.filesFor(m, issued.chainPem, issued.keyPem)
      yield* store.writeFiles(m.volumeId, written, m.fsGroup)
      yield* files.setSvid(state, files.svidOf(m, issued.chainPem, Redacted.value(issued.keyPem), files.caOf(written)))
      const sample = yield* Random.next
      const next = new VolumeMetadata({
        ...m,
        nextIssuanceAt: renewalInstant(policy, issued.notBefore, issued.notAfter, sample),
        notAfter: issued.notAfter
      })
      // Files first, then metadata: a failed write never advances the renewal time.
      yield* store.write(next)
      yield* Ref.set(state.meta, next)
      yield* Effect.logInfo("certificate written", {
        volume: m.volumeId,
        pod: `${m.podNamespace}/${m.podName}`,
        request: issued.requestName,
        serial: issued.serialNumber,
        nextIssuanceAt: iso(next.nextIssuanceAt!)
      })
    })

    /** One issuance, timed as `kind`; an issuance failure is also recorded on the Pod. */
    const issueAndWrite = (state: VolumeState, kind: DriverMetrics.IssuanceKind) =>
      issueAndWriteOnce(state).pipe(
        DriverMetrics.timeIssuance(kind),
        Effect.tapError((e) => (e._tag === "IssuanceError" ? Effect.flatMap(Ref.get(state.meta), (m) => recordFailure(m, e)) : Effect.void))
      )

    return { issueAndWrite }
  })

export type Issue = Effect.Success<ReturnType<typeof make>>

/**
 * `VolumeManager` over Issuance, VolumeStore, Mounter, CaBundle and WorkloadApi, with one renewal
 * fiber per volume in a FiberMap owned by the layer's scope, and for each volume that serves the
 * SPIFFE Workload API its own SVID state (a SubscriptionRef only that volume's socket is given) and
 * the scope its socket lives in.
 */
import { Clock, Deferred, Duration, Effect, Exit, Fiber, FiberMap, FiberSet, Layer, Predicate, PubSub, Random, Redacted, Schedule, Scope, Semaphore, Stream, SubscriptionRef } from "effect"
import * as FilesystemDelivery from "../domain/FilesystemDelivery.ts"
import { pemToConcatenatedDer } from "../domain/Pem.ts"
import type { PublishRequest, UnpublishRequest } from "../domain/PublishRequest.ts"
import { renewalInstant } from "../domain/Renewal.ts"
import { renewalRetry } from "../domain/Schedules.ts"
import { forServiceAccount } from "../domain/SpiffeId.ts"
import { VolumeMetadata } from "../domain/VolumeMetadata.ts"
import type { PodToken } from "../domain/Token.ts"
import { CaBundle } from "../services/CaBundle.ts"
import { DriverConfig } from "../services/DriverConfig.ts"
import { Issuance } from "../services/Issuance.ts"
import type { IssuanceError } from "../services/Issuance.ts"
import { Mounter } from "../services/Mounter.ts"
import type { VolumeFile } from "../services/VolumeStore.ts"
import { VolumeStore } from "../services/VolumeStore.ts"
import { PublishAbortedError, TargetPathError, VolumeConflictError, VolumeManager } from "../services/VolumeManager.ts"
import type { VolumeStatus } from "../services/VolumeManager.ts"
import { EventRecorder } from "../services/EventRecorder.ts"
import { WorkloadApi } from "../services/WorkloadApi.ts"
import type { VolumeSvid } from "../services/WorkloadApi.ts"
import * as DriverMetrics from "./DriverMetrics.ts"

/** File modes: readable by the owner (root) and the fs-group only; the pod sees them through a read-only bind. */
const FILE_MODE = 0o440
/** The driver's tmpfs is private to root. */
const TMPFS_MODE = 0o700
/**
 * How long an unpublish waits for the volume's CertificateRequests to be deleted. A healthy API
 * server answers in milliseconds; past this the deletion goes on in the background (and the Pod's
 * garbage collection removes them through their ownerReference anyway), so a slow API server never
 * holds an unpublish near the kubelet's 2-minute deadline.
 */
const FORGET_WAIT = "5 seconds"

interface VolumeState {
  meta: VolumeMetadata
  token: PodToken | undefined
  /** When the renewal loop retries after a failed or not-ready attempt; undefined otherwise. */
  retryAt: number | undefined
  /**
   * Completed to end a renewal's backoff at once (fresh token, API connection back), then replaced.
   * The loop takes it before each attempt, so a wake during the attempt is not lost.
   */
  wake: Deferred.Deferred<void>
  readonly lock: Semaphore.Semaphore
  /** Completed by unpublish: every publish of this volume still waiting or running gives up at once. */
  readonly unpublished: Deferred.Deferred<void>
  /** Publishes of this volume holding or waiting for the lock. */
  publishes: number
  /** The volume's SVID as its Workload API socket serves it; undefined until one is known. */
  readonly svid: SubscriptionRef.SubscriptionRef<VolumeSvid | undefined>
  /** The scope of the volume's Workload API socket while it is served; closing it removes the socket. */
  socket: Scope.Closeable | undefined
}

/** Ends the volume's current backoff wait, if any; the next wait takes a fresh signal. */
const wakeUp = (s: VolumeState) =>
  Effect.suspend(() => {
    const woken = s.wake
    s.wake = Deferred.makeUnsafe<void>()
    return Deferred.succeed(woken, undefined)
  })

const statusOf = (s: VolumeState): VolumeStatus => ({
  volumeId: s.meta.volumeId,
  podNamespace: s.meta.podNamespace,
  podName: s.meta.podName,
  issued: s.meta.nextIssuanceAt !== undefined,
  hasToken: s.token !== undefined,
  nextIssuanceAt: s.meta.nextIssuanceAt,
  notAfter: s.meta.notAfter,
  retryAt: s.retryAt
})

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

export const layer = Layer.effect(
  VolumeManager,
  Effect.gen(function*() {
    const config = yield* DriverConfig
    const issuance = yield* Issuance
    const store = yield* VolumeStore
    const mounter = yield* Mounter
    const caBundle = yield* CaBundle
    const events = yield* EventRecorder
    const workloadApi = yield* WorkloadApi
    // Every volume's socket scope is a child of the layer's: a stopping driver closes them all.
    const layerScope = yield* Effect.scope
    const policy = config.renewal
    const volumes = new Map<string, VolumeState>()
    const renewals = yield* FiberMap.make<string>()
    const background = yield* FiberSet.make()
    // Per volume id: the deletion of its requests an unpublish started and did not see finish. A new
    // publish of the same id waits for it (bounded), so it neither resumes a request about to be
    // deleted nor has its own request deleted by it.
    const forgetting = new Map<string, Fiber.Fiber<void>>()
    // One element each time a volume's renewal state changes (retry scheduled, renewal done), for awaitStatus.
    const statusChanged = yield* PubSub.unbounded<string>()
    let resumed = false

    const stateFor = (volumeId: string, meta: VolumeMetadata) =>
      Effect.flatMap(SubscriptionRef.make<VolumeSvid | undefined>(undefined), (svid) =>
        Effect.sync((): VolumeState => {
          let s = volumes.get(volumeId)
          if (s === undefined) {
            s = {
              meta,
              token: undefined,
              retryAt: undefined,
              wake: Deferred.makeUnsafe<void>(),
              lock: Semaphore.makeUnsafe(1),
              unpublished: Deferred.makeUnsafe<void>(),
              publishes: 0,
              svid,
              socket: undefined
            }
            volumes.set(volumeId, s)
          }
          return s
        }))

    /** The SVID state the volume's socket serves, from the PEM texts the volume holds. */
    const svidOf = (m: VolumeMetadata, chainPem: string, keyPem: string, caPem: string | undefined): VolumeSvid => ({
      spiffeId: m.spiffeId,
      trustDomainId: `spiffe://${config.trustDomain}`,
      chainDer: pemToConcatenatedDer(chainPem, "CERTIFICATE"),
      keyDer: Redacted.make(pemToConcatenatedDer(keyPem, "PRIVATE KEY"), { label: "PrivateKey" }),
      bundleDer: pemToConcatenatedDer(caPem ?? "", "CERTIFICATE")
    })

    const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)

    /** Publishes the volume's new SVID state to its socket; an identical state is not pushed again. */
    const setSvid = (state: VolumeState, next: VolumeSvid) =>
      Effect.flatMap(SubscriptionRef.get(state.svid), (old) =>
        old !== undefined && old.spiffeId === next.spiffeId && sameBytes(old.chainDer, next.chainDer) &&
          sameBytes(Redacted.value(old.keyDer), Redacted.value(next.keyDer)) && sameBytes(old.bundleDer, next.bundleDer)
          ? Effect.void
          : SubscriptionRef.set(state.svid, next))

    /**
     * Opens the volume's Workload API socket in its data directory, when the volume has one and it is
     * not open yet. Its scope is the volume's: closed by unpublish (or the driver stopping).
     */
    const openSocket = Effect.fnUntraced(function*(state: VolumeState) {
      const name = state.meta.workloadApiSocket
      if (name === undefined || state.socket !== undefined) return
      const scope = yield* Scope.fork(layerScope, "sequential")
      const svid = SubscriptionRef.changes(state.svid).pipe(Stream.filter(Predicate.isNotUndefined))
      const endpoint = { volumeId: state.meta.volumeId, socketPath: `${store.dataDir(state.meta.volumeId)}/${name}`, gid: state.meta.fsGroup }
      yield* workloadApi.serve(endpoint, svid).pipe(
        Scope.provide(scope),
        Effect.onError(() => Scope.close(scope, Exit.void))
      )
      state.socket = scope
    })

    /** Stops the volume's Workload API and removes its socket, if it has one open. */
    const closeSocket = (state: VolumeState) =>
      Effect.suspend(() => {
        const scope = state.socket
        state.socket = undefined
        return scope === undefined ? Effect.void : Scope.close(scope, Exit.void)
      })

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

    const issueAndWrite = (state: VolumeState, kind: DriverMetrics.IssuanceKind) =>
      issueAndWriteOnce(state).pipe(
        DriverMetrics.timeIssuance(kind),
        Effect.tapError((e) => (e._tag === "IssuanceError" ? recordFailure(state.meta, e) : Effect.void))
      )

    /** One issuance for the volume, its files published, its metadata advanced. Caller holds the lock. */
    const issueAndWriteOnce = Effect.fn("VolumeManager.issueAndWrite")(function*(state: VolumeState) {
      const m = state.meta
      const issued = yield* issuance.issue({
        volumeId: m.volumeId,
        podName: m.podName,
        podUid: m.podUid,
        namespace: m.podNamespace,
        spiffeId: m.spiffeId,
        token: state.token?.token
      })
      const files = yield* filesFor(m, issued.chainPem, issued.keyPem)
      yield* store.writeFiles(m.volumeId, files, m.fsGroup)
      yield* setSvid(state, svidOf(m, issued.chainPem, Redacted.value(issued.keyPem), caOf(files)))
      const sample = yield* Random.next
      const next = new VolumeMetadata({
        ...m,
        nextIssuanceAt: renewalInstant(policy, issued.notBefore, issued.notAfter, sample),
        notAfter: issued.notAfter
      })
      // Files first, then metadata: a failed write never advances the renewal time.
      yield* store.write(next)
      state.meta = next
      yield* Effect.logInfo("certificate written", {
        volume: m.volumeId,
        pod: `${m.podNamespace}/${m.podName}`,
        request: issued.requestName,
        serial: issued.serialNumber,
        nextIssuanceAt: new Date(next.nextIssuanceAt!).toISOString()
      })
    })

    /** Every volume waiting on a renewal backoff tries again now. */
    const wakeAll = Effect.suspend(() => Effect.forEach([...volumes.values()], wakeUp, { discard: true }))

    /**
     * Attempts until one issuance succeeds, on `Schedules.renewalRetry`: "not ready" (no token since
     * a restart, no issuer, request still pending) on the short schedule, real failures backing off
     * as the original does but never past the certificate's expiry. A wake-up (fresh token, API
     * connection back, another volume renewed after failures) ends the wait at once and starts the
     * backoff over.
     */
    const renewUntilIssued = (state: VolumeState) =>
      Effect.gen(function*() {
        let step = yield* Schedule.toStep(renewalRetry(policy))
        let failed = false
        /** One attempt and, when it fails, its backoff wait; true once the volume is renewed. */
        const attempt = Effect.gen(function*() {
          const woken = state.wake
          const result = yield* state.lock.withPermit(issueAndWrite(state, "renewal")).pipe(Effect.result)
          if (result._tag === "Success") {
            state.retryAt = undefined
            yield* PubSub.publish(statusChanged, state.meta.volumeId)
            // The issuer answers again: the others need not sit out their backoff.
            if (failed) yield* wakeAll
            return true
          }
          failed = true
          const e = result.failure
          const notReady = e._tag === "IssuanceError" && (e.reason === "NotReady" || e.reason === "Timeout")
          const now = yield* Clock.currentTimeMillis
          const sample = yield* Random.next
          const [, delay] = yield* Effect.orDie(step(now, { kind: notReady ? "NotReady" : "Failed", notAfter: state.meta.notAfter, sample }))
          const millis = Duration.toMillis(delay)
          yield* (notReady ? Effect.logDebug : Effect.logWarning)("renewal attempt did not complete", {
            volume: state.meta.volumeId,
            reason: e._tag === "IssuanceError" ? e.reason : e._tag,
            error: e.message,
            retryInMillis: millis
          })
          state.retryAt = now + millis
          // The change is announced by the second racer, which runs after the first has started its
          // sleep: whoever waits for it (awaitStatus) and then moves the clock cannot race the sleep.
          const wokenUp = yield* Effect.raceFirst(
            Effect.as(Effect.sleep(delay), false),
            PubSub.publish(statusChanged, state.meta.volumeId).pipe(Effect.andThen(Deferred.await(woken)), Effect.as(true))
          )
          if (wokenUp) {
            yield* Effect.logInfo("renewal woken before its backoff ended", { volume: state.meta.volumeId })
            step = yield* Schedule.toStep(renewalRetry(policy))
          }
          return false
        })
        yield* Effect.repeat(attempt, { until: (renewed) => renewed })
      })

    /** Renews the volume when due, forever. */
    const renewalLoop = (state: VolumeState) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const due = state.meta.nextIssuanceAt ?? now
        if (due > now) yield* Effect.sleep(due - now)
        yield* renewUntilIssued(state)
      }).pipe(Effect.forever, Effect.annotateLogs({ component: "renewal" }))

    const startRenewal = (state: VolumeState) =>
      FiberMap.run(renewals, state.meta.volumeId, renewalLoop(state), { onlyIfMissing: true }).pipe(Effect.asVoid)

    const ensureMounted = Effect.fnUntraced(function*(volumeId: string, targetPath: string) {
      if (!(yield* mounter.isMountPoint(targetPath))) yield* mounter.bindReadOnly(store.dataDir(volumeId), targetPath)
    })

    /**
     * Deletes the volume's requests in a fiber of the layer, registered in `forgetting` until it is
     * done so that the next publish of the id waits for it.
     */
    const forgetInBackground = (volumeId: string, namespace: string) =>
      Effect.gen(function*() {
        const forget = yield* FiberSet.run(background, issuance.forget(volumeId, namespace))
        forgetting.set(volumeId, forget)
        forget.addObserver(() => {
          if (forgetting.get(volumeId) === forget) forgetting.delete(volumeId)
        })
        return forget
      })

    /** Waits for the volume's background request deletion, if one runs, at most FORGET_WAIT. */
    const awaitForget = (volumeId: string) =>
      Effect.suspend(() => {
        const forget = forgetting.get(volumeId)
        return forget === undefined ? Effect.void : Effect.asVoid(Fiber.await(forget).pipe(Effect.timeoutOption(FORGET_WAIT)))
      })

    /**
     * A volume's state leaves the map when nothing was issued for it and no publish of it is left.
     * An unpublished one stays until its unpublish is done: a publish arriving meanwhile must find
     * it (and give up), not start a volume of its own under the unpublish's feet.
     */
    const dropIfUnissued = (state: VolumeState) =>
      Effect.sync(() => {
        if (
          state.meta.nextIssuanceAt === undefined && state.publishes === 0 && volumes.get(state.meta.volumeId) === state &&
          !Deferred.isDoneUnsafe(state.unpublished)
        ) {
          volumes.delete(state.meta.volumeId)
        }
      })

    /**
     * Takes back a first publish whose issuance succeeded but whose mount did not: the files, the
     * record, the volume's requests and its in-memory state go, so nothing is resumed after a restart
     * and no metric series stays for a volume that was never mounted.
     */
    const undoFirstPublish = (state: VolumeState, unissued: VolumeMetadata) =>
      Effect.gen(function*() {
        yield* FiberMap.remove(renewals, unissued.volumeId)
        yield* closeSocket(state)
        yield* store.remove(unissued.volumeId).pipe(Effect.ignore)
        // In the background: this runs uninterruptibly (an unpublish may be waiting to cancel it).
        yield* forgetInBackground(unissued.volumeId, unissued.podNamespace)
        state.meta = unissued
        yield* Effect.logInfo("first publish failed after issuance; its files and requests were removed", { volume: unissued.volumeId })
      })

    const publish = Effect.fn("VolumeManager.publish")(function*(req: PublishRequest) {
      const spiffeId = forServiceAccount(config.trustDomain, req.token.namespace, req.token.serviceAccount)
      const fresh = new VolumeMetadata({
        volumeId: req.volumeId,
        targetPath: req.targetPath,
        podName: req.podName,
        podNamespace: req.podNamespace,
        podUid: req.podUid,
        serviceAccount: req.serviceAccount,
        spiffeId,
        fsGroup: req.fsGroup,
        workloadApiSocket: config.workloadApi !== undefined && (req.workloadApi ?? config.workloadApi.byDefault) ? config.workloadApi.socketName : undefined,
        ...(req.filesystemDelivery === true ? { filesystemDelivery: true } : {})
      })
      const refuse = (detail: string) => new TargetPathError({ volumeId: req.volumeId, targetPath: req.targetPath, detail })
      // Everything that can refuse the request is checked before anything is created.
      const existing = volumes.get(req.volumeId)
      if (existing !== undefined && existing.meta.targetPath !== req.targetPath) {
        return yield* refuse(`the volume is already published at ${JSON.stringify(existing.meta.targetPath)}`)
      }
      const target = yield* mounter.inspectTarget(config.kubeletRootDir, req.targetPath)
      if (target._tag === "Refused") return yield* refuse(`not mounted onto: ${target.reason}`)
      if (target._tag === "MountPoint" && existing === undefined) return yield* refuse("something the driver did not mount is mounted there")

      // Read again after every wait: the volume may have been unpublished meanwhile.
      while (!volumes.has(req.volumeId)) {
        const forget = forgetting.get(req.volumeId)
        if (forget === undefined) break
        if ((yield* Fiber.await(forget).pipe(Effect.timeoutOption(FORGET_WAIT)))._tag === "None") break
      }
      const state = yield* stateFor(req.volumeId, fresh)
      state.publishes += 1
      const work = state.lock.withPermit(
        Effect.gen(function*() {
          // The permit can be handed over in the instant between an unpublish and this publish's
          // cancellation taking effect: nothing may start then.
          if (yield* Deferred.isDone(state.unpublished)) return yield* new PublishAbortedError({ volumeId: req.volumeId })
          const known = state.meta.nextIssuanceAt !== undefined
          if (known && (state.meta.podUid !== req.podUid || state.meta.spiffeId !== spiffeId)) {
            return yield* new VolumeConflictError({ volumeId: req.volumeId, detail: "already published for another pod or identity" })
          }
          if (state.meta.targetPath !== req.targetPath) return yield* refuse(`the volume is already published at ${JSON.stringify(state.meta.targetPath)}`)
          if (known && state.meta.fsGroup !== req.fsGroup) {
            return yield* new VolumeConflictError({ volumeId: req.volumeId, detail: "already published with another fs-group" })
          }
          // A republish refreshes the token; the files and mount of a working volume are left alone.
          const freshToken = state.token === undefined || Redacted.value(state.token.token) !== Redacted.value(req.token.token)
          state.token = req.token
          if (known) {
            // A socket that could not be opened when a restarted driver resumed the volume gets another chance.
            yield* openSocket(state).pipe(Effect.catch((e) => Effect.logWarning("Workload API socket not opened", { volume: req.volumeId, error: e.message })))
            yield* ensureMounted(req.volumeId, req.targetPath)
            yield* startRenewal(state)
            // A renewal waiting on a backoff (perhaps for want of a token) tries with this one now.
            if (freshToken) yield* wakeUp(state)
            return
          }
          state.meta = fresh
          yield* store.write(fresh)
          yield* issueAndWrite(state, "first").pipe(
            // A first issuance that fails leaves nothing on disk; its pending request (if any) is
            // remembered by Issuance and resumed by the kubelet's next attempt.
            Effect.tapError(() => store.remove(req.volumeId).pipe(Effect.ignore))
          )
          // The issuance can take a while: look at the target again right before the mount, so what
          // appeared there meanwhile (a file, a symlink) is refused like it would have been at first.
          // The socket is open before the mount, so it is there when the pod's containers start.
          yield* Effect.gen(function*() {
            yield* openSocket(state)
            const now = yield* mounter.inspectTarget(config.kubeletRootDir, req.targetPath)
            if (now._tag === "Refused") return yield* refuse(`not mounted onto: ${now.reason}`)
            if (now._tag === "MountPoint") return yield* refuse("something the driver did not mount is mounted there")
            yield* mounter.bindReadOnly(store.dataDir(req.volumeId), req.targetPath)
          }).pipe(
            Effect.onError(() => undoFirstPublish(state, fresh)),
            // Outside the (uninterruptible) undo: the failure is answered once the requests are gone,
            // or after the same bound an unpublish waits.
            Effect.tapError(() => awaitForget(req.volumeId))
          )
          yield* startRenewal(state)
        })
      )
      // An unpublish of this volume ends the publish wherever it is (waiting for the lock, waiting for
      // its issuance): the unpublish must never queue behind it.
      yield* work.pipe(
        Effect.raceFirst(Deferred.await(state.unpublished).pipe(Effect.andThen(Effect.fail(new PublishAbortedError({ volumeId: req.volumeId }))))),
        Effect.ensuring(Effect.suspend(() => {
          state.publishes -= 1
          return dropIfUnissued(state)
        }))
      )
    }, Effect.annotateLogs({ component: "publish" }))

    /**
     * Idempotent, and only ever undoes what this driver did: a volume id it has no record of, or a
     * target path that is not the volume's, is answered with success and nothing is touched (the
     * CSI spec wants an unpublish of what is not there to succeed). Renewal and any publish of the
     * volume are cancelled first, so the lock is free at once; the requests are deleted with a bound.
     */
    const unpublish = Effect.fn("VolumeManager.unpublish")(function*(req: UnpublishRequest) {
      const state = volumes.get(req.volumeId)
      const meta = state?.meta ?? (yield* store.read(req.volumeId))
      if (meta === undefined) {
        yield* Effect.logDebug("unpublish of a volume this driver does not know; nothing to do", { volume: req.volumeId })
        return
      }
      if (meta.targetPath !== req.targetPath) {
        yield* Effect.logWarning("unpublish at a target path the volume was not published at; left alone", { volume: req.volumeId, targetPath: req.targetPath })
        return
      }
      if (state !== undefined) yield* Deferred.succeed(state.unpublished, undefined)
      yield* FiberMap.remove(renewals, req.volumeId)
      const run = Effect.gen(function*() {
        if (state !== undefined) yield* closeSocket(state)
        yield* mounter.unmount(meta.targetPath)
        yield* store.remove(req.volumeId)
        // Registered before the volume leaves the map, so a publish that comes next sees it.
        const forget = yield* forgetInBackground(req.volumeId, meta.podNamespace)
        if (state === undefined || volumes.get(req.volumeId) === state) volumes.delete(req.volumeId)
        return forget
      })
      const forget = yield* state === undefined ? run : state.lock.withPermit(run)
      const done = yield* Fiber.await(forget).pipe(Effect.timeoutOption(FORGET_WAIT))
      if (done._tag === "None") {
        yield* Effect.logWarning("deleting the volume's CertificateRequests is slow; it goes on in the background", { volume: req.volumeId })
      }
      yield* Effect.logInfo("volume unpublished", { volume: req.volumeId })
    }, Effect.annotateLogs({ component: "unpublish" }))

    // Volumes are refreshed concurrently: one whose lock is held by a slow renewal must not delay
    // the CA change of all the others.
    const refreshCaFiles = Effect.suspend(() => Effect.forEach(
      [...volumes.values()],
      (state) =>
        state.lock.withPermit(
          Effect.gen(function*() {
            if (state.meta.nextIssuanceAt === undefined) return
            const cert = yield* store.readFile(state.meta.volumeId, config.fileNames.certificate)
            const key = yield* store.readFile(state.meta.volumeId, config.fileNames.key)
            if (cert === undefined || key === undefined) return
            const files = yield* filesFor(state.meta, cert, key)
            yield* store.writeFiles(state.meta.volumeId, files, state.meta.fsGroup)
            yield* setSvid(state, svidOf(state.meta, cert, key, caOf(files)))
          })
        ).pipe(Effect.catch((e) => Effect.logWarning("could not refresh the CA file", { volume: state.meta.volumeId, error: e.message }))),
      { concurrency: "unbounded", discard: true }
    ))

    // Start-up: make sure the tmpfs is there (reusing the one a previous driver mounted), then resume
    // every volume that has a certificate. A volume whose first issuance never finished is dropped:
    // the kubelet retries its publish.
    if (!(yield* mounter.isMountPoint(store.root))) yield* mounter.mountTmpfs(store.root, { mode: TMPFS_MODE })
    for (const meta of yield* store.list) {
      if (meta.nextIssuanceAt === undefined) {
        yield* store.remove(meta.volumeId)
        continue
      }
      const state = yield* stateFor(meta.volumeId, meta)
      // The socket serves the volume's files as they are (refreshCaFiles below brings the CA up to
      // date); a socket that cannot be opened is logged and retried by the volume's next republish.
      if (meta.workloadApiSocket !== undefined) {
        yield* Effect.gen(function*() {
          const cert = yield* store.readFile(meta.volumeId, config.fileNames.certificate)
          const key = yield* store.readFile(meta.volumeId, config.fileNames.key)
          if (cert !== undefined && key !== undefined) {
            yield* setSvid(state, svidOf(meta, cert, key, yield* store.readFile(meta.volumeId, config.fileNames.ca)))
          }
          yield* openSocket(state)
        }).pipe(Effect.catch((e) => Effect.logWarning("Workload API socket not resumed", { volume: meta.volumeId, error: e.message })))
      }
      yield* startRenewal(state)
    }
    // The API server answers again after an outage: renewals waiting on a backoff try at once.
    yield* issuance.reconnected.pipe(
      Stream.runForEach(() => Effect.logInfo("API connection recovered; waking renewals").pipe(Effect.andThen(wakeAll))),
      Effect.forkScoped({ startImmediately: true })
    )
    // The bundle may have changed while the driver was down: bring every volume up to date once,
    // then follow changes. Writes are skipped where the content is already current.
    // Subscribe first (started at once), so a change during or right after this pass is not lost.
    yield* caBundle.changes.pipe(
      Stream.runForEach(() => Effect.logInfo("CA bundle changed; updating every volume").pipe(Effect.andThen(refreshCaFiles))),
      Effect.forkScoped({ startImmediately: true })
    )
    yield* refreshCaFiles
    resumed = true
    yield* Effect.logInfo("volumes resumed", { count: volumes.size })

    return VolumeManager.of({
      publish,
      unpublish,
      refreshCaFiles,
      ready: Effect.sync(() => resumed),
      status: (volumeId) =>
        Effect.sync(() => {
          const s = volumes.get(volumeId)
          return s === undefined ? undefined : statusOf(s)
        }),
      // Subscribed before the first look, so a change between the look and the wait is not missed.
      awaitStatus: (volumeId, holds) =>
        Effect.scoped(Effect.gen(function*() {
          const changes = yield* PubSub.subscribe(statusChanged)
          const look = Effect.sync(() => {
            const s = volumes.get(volumeId)
            return s === undefined ? undefined : statusOf(s)
          })
          let status = yield* look
          while (!holds(status)) {
            yield* PubSub.take(changes)
            status = yield* look
          }
          return status
        })),
      statuses: Effect.sync(() => [...volumes.values()].map(statusOf)),
      managed: FiberMap.size(renewals)
    })
  })
)

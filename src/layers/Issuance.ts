/**
 * `Issuance` over the KubeClient. One list+watch of this node's CertificateRequests (label
 * `csi.cert-manager.io/node-id-hash`) feeds an in-memory cache and a wake-up per request
 * (`KeyedSignal`); each waiting publish or renewal is woken by the events of its own request only,
 * so a signed request reaches the volume without polling (the original polled every 200 ms). When
 * the API server answers again after an outage, `reconnected` says so, and renewals waiting on a
 * backoff try at once.
 */
import { Deferred, Effect, Layer, Option, PubSub, Redacted, Stream } from "effect"
import { randomUUID } from "node:crypto"
import type { CertificateRequest } from "../domain/CertificateRequest.ts"
import * as CR from "../domain/CertificateRequest.ts"
import { labelHash } from "../domain/Hash.ts"
import * as Issuer from "../domain/IssuerRef.ts"
import { CertificateRequests } from "../domain/KubeObjects.ts"
import { Crypto } from "../services/Crypto.ts"
import type { KeyPair } from "../services/Crypto.ts"
import { DriverConfig } from "../services/DriverConfig.ts"
import type { IssueInput, Issued } from "../services/Issuance.ts"
import { Issuance, IssuanceError } from "../services/Issuance.ts"
import { IssuerConfig } from "../services/IssuerConfig.ts"
import { KubeClient } from "../services/KubeClient.ts"
import * as KeyedSignal from "./KeyedSignal.ts"
import * as ListWatch from "./ListWatch.ts"
import type { KubeError } from "../services/KubeClient.ts"

const keyOf = (namespace: string, name: string) => `${namespace}/${name}`

interface Pending {
  readonly namespace: string
  readonly name: string
  readonly key: KeyPair
  readonly spiffeId: string
}

/** A refused credential is said as such: it is permanent for that token, unlike an API server fault. */
const apiError = (what: string) => (e: KubeError) =>
  e.reason === "Unauthorized"
    ? new IssuanceError({
      reason: "Unauthenticated",
      detail: `${what}: the API server did not accept the token (expired, not signed by the cluster, for another audience, or bound to a pod that no longer exists); the kubelet's next publish brings a fresh one: ${e.message}`,
      cause: e
    })
    : e.reason === "Forbidden"
    ? new IssuanceError({ reason: "Forbidden", detail: `${what}: the token's identity is not allowed to do this: ${e.message}`, cause: e })
    : new IssuanceError({ reason: "Api", detail: `${what}: ${e.message}`, cause: e })

export const layer = Layer.effect(
  Issuance,
  Effect.gen(function*() {
    const config = yield* DriverConfig
    const kube = yield* KubeClient
    const crypto = yield* Crypto
    const issuers = yield* IssuerConfig
    const nodeHash = labelHash(config.nodeId)
    const selector = `${CR.NODE_ID_HASH_LABEL}=${nodeHash}`

    // The node's requests as last seen; a change of one wakes only the fibers waiting on it.
    const cache = new Map<string, CertificateRequest>()
    const changed = yield* KeyedSignal.make
    const synced = yield* Deferred.make<void>()
    const reconnected = yield* PubSub.sliding<void>(1)
    // Per volume: the request an earlier attempt left pending, with its key (memory only).
    const pending = new Map<string, Pending>()

    const refill = (items: ReadonlyArray<CertificateRequest>) =>
      Effect.gen(function*() {
        const seen = new Set<string>()
        for (const cr of items) {
          const k = keyOf(cr.metadata.namespace, cr.metadata.name)
          seen.add(k)
          cache.set(k, cr)
          yield* changed.notify(k)
        }
        for (const k of [...cache.keys()]) {
          if (!seen.has(k)) {
            cache.delete(k)
            yield* changed.notify(k)
          }
        }
        yield* Deferred.succeed(synced, undefined)
      })
    yield* ListWatch.run(kube, CertificateRequests, { name: "certificaterequest watch", labelSelector: selector }, {
      onList: refill,
      onEvent: (ev) => {
        const k = keyOf(ev.object.metadata.namespace, ev.object.metadata.name)
        if (ev.type === "DELETED") cache.delete(k)
        else cache.set(k, ev.object)
        return changed.notify(k)
      },
      onRecovered: Effect.asVoid(PubSub.publish(reconnected, undefined))
    }).pipe(Effect.forkScoped)

    /** Waits for the request's outcome; fails with Timeout (keeping it pending) when time runs out. */
    const awaitOutcome = (namespace: string, name: string) =>
      Effect.suspend(() => {
        const k = keyOf(namespace, name)
        // Whether the request has been in the cache: gone after that means deleted, not "not yet listed".
        let seen = false
        const look = Effect.suspend(() => {
          const cr = cache.get(k)
          if (cr === undefined) {
            return seen
              ? Effect.fail(new IssuanceError({ reason: "Api", detail: `request "${name}" was deleted while waiting for it` }))
              : Effect.succeed(Option.none())
          }
          seen = true
          const p = CR.phase(cr)
          if (p._tag === "Issued") return Effect.succeed(Option.some(p))
          if (p._tag === "Denied") {
            return Effect.fail(new IssuanceError({ reason: "Denied", detail: `request "${name}" has been denied by the approval plugin: ${p.message}` }))
          }
          if (p._tag === "Failed") return Effect.fail(new IssuanceError({ reason: "Failed", detail: `request "${name}" has failed: ${p.message}` }))
          return Effect.succeed(Option.none())
        })
        return changed.waitFor(k, look)
      }).pipe(
        Effect.timeoutOrElse({
          duration: config.issuanceTimeoutMillis,
          orElse: () => Effect.fail(new IssuanceError({ reason: "Timeout", detail: `waiting for request "${name}": timed out; it stays pending and is resumed by the next attempt` }))
        })
      )

    /** Deletes the volume's requests in `namespace`, except `keep`. */
    const deleteRequestsOfVolume = (volumeId: string, namespace: string, keep: string | undefined) =>
      Effect.gen(function*() {
        const volumeHash = labelHash(volumeId)
        const stale = [...cache.values()].filter(
          (cr) => cr.metadata.namespace === namespace && cr.metadata.labels?.[CR.VOLUME_ID_HASH_LABEL] === volumeHash && cr.metadata.name !== keep
        )
        yield* Effect.forEach(stale, (cr) => kube.delete(CertificateRequests, namespace, cr.metadata.name), { concurrency: 4, discard: true })
      })

    const create = Effect.fn("Issuance.create")(function*(input: IssueInput, token: Redacted.Redacted<string> | undefined) {
      const issuer = yield* issuers.current
      if (issuer === undefined) {
        return yield* new IssuanceError({
          reason: "NotReady",
          detail: "no issuerRef is currently active for csi-driver-spiffe; configure one with --issuer-name or the runtime issuance ConfigMap"
        })
      }
      const key = yield* crypto.generateKey.pipe(Effect.mapError((e) => new IssuanceError({ reason: "Crypto", detail: e.message, cause: e })))
      const csr = yield* crypto.createCsr(key, input.spiffeId).pipe(Effect.mapError((e) => new IssuanceError({ reason: "Crypto", detail: e.message, cause: e })))
      const name = randomUUID()
      const body = {
        apiVersion: CR.API_VERSION,
        kind: "CertificateRequest",
        metadata: {
          name,
          namespace: input.namespace,
          annotations: { ...config.extraCertificateRequestAnnotations, [CR.IDENTITY_ANNOTATION]: input.spiffeId },
          labels: { [CR.NODE_ID_HASH_LABEL]: nodeHash, [CR.VOLUME_ID_HASH_LABEL]: labelHash(input.volumeId) },
          ownerReferences: [{ apiVersion: "v1", kind: "Pod", name: input.podName, uid: input.podUid }]
        },
        spec: {
          request: Buffer.from(csr).toString("base64"),
          issuerRef: Issuer.withDefaults(issuer),
          duration: CR.formatGoDuration(config.certificateRequestDurationMillis),
          isCA: false,
          usages: [...CR.REQUIRED_USAGES]
        }
      }
      yield* deleteRequestsOfVolume(input.volumeId, input.namespace, undefined).pipe(Effect.mapError(apiError("deleting older requests")))
      const created = yield* kube
        .create(CertificateRequests, input.namespace, body, token === undefined ? {} : { bearerToken: token })
        .pipe(Effect.mapError(apiError("creating CertificateRequest")))
      const k = keyOf(input.namespace, name)
      if (!cache.has(k)) cache.set(k, created)
      const p: Pending = { namespace: input.namespace, name, key, spiffeId: input.spiffeId }
      pending.set(input.volumeId, p)
      yield* Effect.logDebug("created CertificateRequest", { request: name, namespace: input.namespace, issuer: Issuer.format(issuer) })
      return p
    })

    const checkChain = Effect.fn("Issuance.checkChain")(function*(p: Pending, chainPem: string) {
      const facts = yield* crypto.inspectChain(chainPem).pipe(
        Effect.mapError((e) => new IssuanceError({ reason: "BadChain", detail: `request "${p.name}": ${e.message}`, cause: e }))
      )
      const problems: Array<string> = []
      if (facts.leaf.publicKeySpkiHex !== p.key.publicKeySpkiHex) problems.push("the leaf's public key is not the requested key")
      if (facts.leaf.uris.length !== 1 || facts.leaf.uris[0] !== p.spiffeId) problems.push(`the leaf's URI SANs are not exactly ${p.spiffeId}`)
      if (facts.leaf.otherSans > 0) problems.push("the leaf has SANs other than the SPIFFE ID")
      if (facts.leaf.isCA) problems.push("the leaf is a CA")
      if (!facts.leaf.digitalSignature) problems.push("the leaf lacks the digitalSignature key usage")
      if (problems.length > 0) {
        return yield* new IssuanceError({ reason: "BadChain", detail: `request "${p.name}" returned a certificate that is not mounted: ${problems.join("; ")}` })
      }
      return facts
    })

    const issue = Effect.fn("Issuance.issue")(function*(input: IssueInput) {
      const token = config.useOwnServiceAccount ? undefined : input.token
      if (!config.useOwnServiceAccount && token === undefined) {
        return yield* new IssuanceError({ reason: "NotReady", detail: "no token for the pod since the driver started; waiting for the kubelet's next republish" })
      }
      // Bounded like the wait for the outcome: while the API server does not answer the first list,
      // an attempt fails as an API fault instead of hanging until the caller gives up.
      yield* Deferred.await(synced).pipe(
        Effect.timeoutOrElse({
          duration: config.issuanceTimeoutMillis,
          orElse: () => Effect.fail(new IssuanceError({ reason: "Api", detail: "this node's CertificateRequests have not been listed yet: the API server has not answered the list" }))
        })
      )
      let p = pending.get(input.volumeId)
      if (p !== undefined) {
        const current = cache.get(keyOf(p.namespace, p.name))
        const ph = current === undefined ? undefined : CR.phase(current)
        if (p.spiffeId !== input.spiffeId || ph === undefined || ph._tag === "Denied" || ph._tag === "Failed") {
          pending.delete(input.volumeId)
          p = undefined
        }
      }
      if (p === undefined) p = yield* create(input, token)
      const resumed = p
      const outcome = yield* awaitOutcome(resumed.namespace, resumed.name).pipe(
        Effect.tapError((e) => (e.reason === "Timeout" ? Effect.void : Effect.sync(() => pending.delete(input.volumeId))))
      )
      pending.delete(input.volumeId)
      const facts = yield* checkChain(resumed, outcome.certificate)
      return {
        chainPem: outcome.certificate,
        keyPem: resumed.key.pem,
        notBefore: facts.leaf.notBefore,
        notAfter: facts.leaf.notAfter,
        serialNumber: facts.leaf.serialNumber,
        requestName: resumed.name
      } satisfies Issued
    }, Effect.annotateLogs({ component: "issuance" }))

    const forget = Effect.fn("Issuance.forget")(function*(volumeId: string, namespace: string) {
      pending.delete(volumeId)
      yield* deleteRequestsOfVolume(volumeId, namespace, undefined).pipe(
        Effect.catch((e) => Effect.logWarning("could not delete the volume's CertificateRequests; the Pod's garbage collection will", { error: e.message }))
      )
    })

    return Issuance.of({ issue, forget, synced: Deferred.isDone(synced), awaitSynced: Deferred.await(synced), reconnected: Stream.fromPubSub(reconnected) })
  })
)

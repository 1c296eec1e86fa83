/**
 * The driver's behaviour end to end over memory layers: CSI plugin → volume manager → issuance →
 * memory API server with the test signer. Time is TestClock's; WebCrypto's async work is awaited
 * by yielding to the event loop, never by sleeping.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Redacted, Ref } from "effect"
import { TestClock } from "effect/testing"
import { x509 } from "../../../src/x509.ts"
import * as CR from "../../../src/domain/CertificateRequest.ts"
import { labelHash } from "../../../src/domain/Hash.ts"
import { CertificateRequests } from "../../../src/domain/KubeObjects.ts"
import { EventRecorderMemory } from "../../../src/layers/EventRecorder.ts"
import { KubeClientMemory } from "../../../src/layers/KubeClient.ts"
import { MounterMemory } from "../../../src/layers/Mounter.ts"
import { VolumeStoreMemory } from "../../../src/layers/VolumeStore.ts"
import { CsiPlugin } from "../../../src/services/CsiPlugin.ts"
import type { CsiError } from "../../../src/services/CsiPlugin.ts"
import type { IssuanceError } from "../../../src/services/Issuance.ts"
import { VolumeManager } from "../../../src/services/VolumeManager.ts"
import { VolumeStore } from "../../../src/services/VolumeStore.ts"
import { driverLayer, nodeLayer, startDriver, testConfig } from "../../support/DriverStack.ts"
import { publishRequest, unpublishRequest } from "../../support/publish.ts"
import type { PodSpec } from "../../support/publish.ts"
import { TestSigner } from "../../support/TestSigner.ts"

const HOUR = 3_600_000
const stack = (caPem?: string) => driverLayer(testConfig(), caPem).pipe(Layer.provideMerge(nodeLayer))

const request = (spec: PodSpec = {}) => {
  const { token: _token, ...req } = publishRequest(spec)
  return req
}

/** The CsiError a failed RPC ended with. */
const csiFailure = <A>(exit: Exit.Exit<A, CsiError>): CsiError => {
  assert.isTrue(Exit.isFailure(exit), "expected the RPC to fail")
  const e = Cause.squash((exit as Exit.Failure<A, CsiError>).cause) as CsiError
  assert.strictEqual(e._tag, "CsiError")
  return e
}

const requests = Effect.gen(function*() {
  const kube = yield* KubeClientMemory
  return yield* kube.all(CertificateRequests)
})

const publish = (spec: PodSpec = {}) => Effect.flatMap(Effect.service(CsiPlugin), (p) => p.nodePublishVolume(request(spec)))

/** Waits on the memory store's write signal until the volume's stored renewal time satisfies `holds`. */
const metadataUntil = (volumeId: string, holds: (nextIssuanceAt: number | undefined) => boolean) =>
  Effect.flatMap(Effect.service(VolumeStoreMemory), (mem) => mem.until((volumes) => holds(volumes.get(volumeId)?.metadata?.nextIssuanceAt)))

/** Runs a publish in the background and lets the async crypto finish while TestClock stands still. */
const publishSettled = (spec: PodSpec = {}) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(Effect.exit(publish(spec)))
    const manager = yield* VolumeManager
    const volumeId = request(spec).volume_id
    // Issued once the store holds the metadata with its renewal time (the store's write signal).
    yield* metadataUntil(volumeId, (next) => next !== undefined)
    assert.isTrue((yield* manager.status(volumeId))?.issued, "volume issued")
    return fiber
  })

const readFiles = (volumeId: string) =>
  Effect.gen(function*() {
    const store = yield* VolumeStore
    return {
      crt: yield* store.readFile(volumeId, "tls.crt"),
      key: yield* store.readFile(volumeId, "tls.key"),
      ca: yield* store.readFile(volumeId, "ca.crt")
    }
  })

describe("NodePublishVolume", () => {
  it.effect("issues an SVID with the pod's token, writes the files and mounts them read-only", () =>
    Effect.gen(function*() {
      const plugin = yield* CsiPlugin
      yield* plugin.nodePublishVolume(request())
      const crs = yield* requests
      assert.strictEqual(crs.length, 1)
      const cr = crs[0]!
      assert.strictEqual(cr.metadata.namespace, "sandbox")
      assert.strictEqual(cr.metadata.annotations?.[CR.IDENTITY_ANNOTATION], "spiffe://foo.bar/ns/sandbox/sa/example-app")
      assert.strictEqual(cr.metadata.labels?.[CR.NODE_ID_HASH_LABEL], "f56fd9f8b")
      assert.strictEqual(cr.metadata.labels?.[CR.VOLUME_ID_HASH_LABEL], labelHash("csi-4d3c2b1a"))
      assert.deepStrictEqual(cr.metadata.ownerReferences, [{ apiVersion: "v1", kind: "Pod", name: "my-csi-app", uid: "0b8c8a1e-3c1f-4a52-9d39-5f1d2e6b7a10" }])
      assert.strictEqual(cr.spec.duration, "1h0m0s")
      assert.strictEqual(cr.spec.isCA, false)
      assert.deepStrictEqual([...(cr.spec.usages ?? [])].sort(), [...CR.REQUIRED_USAGES].sort())
      assert.deepStrictEqual(cr.spec.issuerRef, { name: "csi-driver-spiffe-ca", kind: "ClusterIssuer", group: "cert-manager.io" })

      const kube = yield* KubeClientMemory
      const created = yield* kube.createdWith(CertificateRequests, "sandbox", cr.metadata.name)
      assert.strictEqual(Redacted.value(created!.bearerToken!), publishRequest().token)

      const csr = new x509.Pkcs10CertificateRequest(Buffer.from(cr.spec.request, "base64").toString("utf8"))
      assert.strictEqual(csr.subject, "")
      const san = csr.getExtension("2.5.29.17")!
      assert.isTrue(san.critical)

      const files = yield* readFiles("csi-4d3c2b1a")
      assert.match(files.key!, /^-----BEGIN PRIVATE KEY-----/)
      assert.strictEqual(files.ca, undefined)
      const leaf = new x509.X509Certificate(files.crt!)
      const names = leaf.getExtension(x509.SubjectAlternativeNameExtension)!.names.items
      assert.deepStrictEqual(names.map((n) => n.value), ["spiffe://foo.bar/ns/sandbox/sa/example-app"])
      const key = yield* Effect.promise(() =>
        globalThis.crypto.subtle.importKey("pkcs8", x509.PemConverter.decodeFirst(files.key!), { name: "ECDSA", namedCurve: "P-256" }, true, ["sign"])
      )
      const jwk = yield* Effect.promise(() => globalThis.crypto.subtle.exportKey("jwk", key))
      const pub = yield* Effect.promise(() => leaf.publicKey.export())
      const pubJwk = yield* Effect.promise(() => globalThis.crypto.subtle.exportKey("jwk", pub))
      assert.strictEqual(jwk.x, pubJwk.x)
      assert.strictEqual(jwk.y, pubJwk.y)

      const mounts = yield* MounterMemory
      const table = yield* Ref.get(mounts.table)
      const target = request().target_path
      assert.deepStrictEqual(table.get(target), { _tag: "Bind", source: (yield* VolumeStore).dataDir("csi-4d3c2b1a"), readOnly: true })
    }).pipe(Effect.provide(stack())))

  it.effect("writes the CA bundle under --file-name-ca when one is configured", () =>
    Effect.gen(function*() {
      yield* publish()
      const files = yield* readFiles("csi-4d3c2b1a")
      assert.strictEqual(files.ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    }).pipe(Effect.provide(stack("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))))

  it.effect("gives files the fs-group gid from the attribute", () =>
    Effect.gen(function*() {
      yield* publish({ attributes: { "spiffe.csi.cert-manager.io/fs-group": "1541" } })
      const mem = yield* VolumeStoreMemory
      const vols = yield* Ref.get(mem.volumes)
      assert.strictEqual(vols.get("csi-4d3c2b1a")?.gid, 1541)
    }).pipe(Effect.provide(stack())))

  it.effect("a denied request fails the publish with FailedPrecondition and leaves nothing on disk", () =>
    Effect.gen(function*() {
      const signer = yield* TestSigner
      yield* signer.setMode({ _tag: "Deny", message: "wrong identity" })
      const e = csiFailure(yield* Effect.exit(publish()))
      assert.include(e.detail, "denied by the approval plugin: wrong identity")
      assert.strictEqual(e.code, "FailedPrecondition")
      const mem = yield* VolumeStoreMemory
      assert.strictEqual((yield* Ref.get(mem.volumes)).size, 0)
      assert.strictEqual((yield* Ref.get((yield* MounterMemory).table)).size, 1) // only the driver's tmpfs
      const events = yield* Ref.get(yield* EventRecorderMemory)
      assert.deepStrictEqual(events.map((ev) => [ev.type, ev.reason, ev.involvedObject.kind, ev.involvedObject.name]), [["Warning", "SpiffeIssuanceDenied", "Pod", "my-csi-app"]])
      assert.include(events[0]!.message, "wrong identity")
      assert.notInclude(events[0]!.message, publishRequest().token)
    }).pipe(Effect.provide(stack())))

  it.effect("a chain for another key is never mounted", () =>
    Effect.gen(function*() {
      const signer = yield* TestSigner
      yield* signer.setMode({ _tag: "Sign", overrides: { otherKey: true } })
      const e = csiFailure(yield* Effect.exit(publish()))
      assert.strictEqual(e.code, "Internal")
      assert.include(e.detail, "the leaf's public key is not the requested key")
      // The driver failure is kept as the cause, not only flattened into the message.
      const issuance = e.cause as IssuanceError
      assert.strictEqual(issuance._tag, "IssuanceError")
      assert.strictEqual(issuance.reason, "BadChain")
      assert.strictEqual((yield* Ref.get((yield* VolumeStoreMemory).volumes)).size, 0)
    }).pipe(Effect.provide(stack())))

  it.effect("a chain with the wrong URI SAN is never mounted", () =>
    Effect.gen(function*() {
      const signer = yield* TestSigner
      yield* signer.setMode({ _tag: "Sign", overrides: { uris: ["spiffe://foo.bar/ns/sandbox/sa/other"] } })
      const e = csiFailure(yield* Effect.exit(publish()))
      assert.include(e.detail, "URI SANs are not exactly spiffe://foo.bar/ns/sandbox/sa/example-app")
    }).pipe(Effect.provide(stack())))

  it.effect("two concurrent publishes of one volume are single-flight and both end with the files present", () =>
    Effect.gen(function*() {
      const signer = yield* TestSigner
      yield* signer.setMode({ _tag: "Hold" })
      const a = yield* Effect.forkChild(publish())
      const b = yield* Effect.forkChild(publish({ serial: 1 }))
      yield* (yield* KubeClientMemory).awaitCreations(1)
      assert.strictEqual((yield* requests).length, 1, "one request created")
      yield* signer.release
      const exits = yield* Effect.all([Effect.exit(Fiber.join(a)), Effect.exit(Fiber.join(b))])
      assert.isTrue(exits.every(Exit.isSuccess))
      assert.strictEqual((yield* requests).length, 1)
      assert.isDefined((yield* readFiles("csi-4d3c2b1a")).crt)
    }).pipe(Effect.provide(stack())))

  it.effect("a publish that times out leaves its request pending; the next publish resumes it instead of creating another", () =>
    Effect.gen(function*() {
      const signer = yield* TestSigner
      yield* signer.setMode({ _tag: "Hold" })
      const first = yield* Effect.forkChild(Effect.exit(publish()))
      yield* (yield* KubeClientMemory).awaitCreations(1)
      assert.strictEqual((yield* requests).length, 1, "request created")
      yield* TestClock.adjust(60_000)
      const e = csiFailure(yield* Fiber.join(first))
      assert.strictEqual(e.code, "DeadlineExceeded")
      const name = (yield* requests)[0]!.metadata.name
      yield* signer.release
      yield* publish()
      const after = yield* requests
      assert.deepStrictEqual(after.map((r) => r.metadata.name), [name])
      assert.isDefined((yield* readFiles("csi-4d3c2b1a")).crt)
    }).pipe(Effect.provide(stack())))

  it.effect("a republish that cannot issue never tears down a working mount", () =>
    Effect.gen(function*() {
      yield* publish()
      const before = yield* readFiles("csi-4d3c2b1a")
      const signer = yield* TestSigner
      yield* signer.setMode({ _tag: "Deny", message: "no" })
      yield* publish({ serial: 7 })
      assert.deepStrictEqual(yield* readFiles("csi-4d3c2b1a"), before)
      assert.isTrue((yield* Ref.get((yield* MounterMemory).table)).has(request().target_path))
      const status = yield* (yield* VolumeManager).status("csi-4d3c2b1a")
      assert.isTrue(status?.hasToken)
    }).pipe(Effect.provide(stack())))

  it.effect("the same volume id from another pod is refused: its own target is another target (FailedPrecondition), the first pod's is not its path (InvalidArgument)", () =>
    Effect.gen(function*() {
      yield* publish()
      const other = "11111111-2222-3333-4444-555555555555"
      assert.strictEqual(csiFailure(yield* Effect.exit(publish({ podUid: other }))).code, "FailedPrecondition")
      assert.strictEqual(csiFailure(yield* Effect.exit(publish({ podUid: other, targetPath: request().target_path }))).code, "InvalidArgument")
    }).pipe(Effect.provide(stack())))
})

describe("renewal", () => {
  it.effect("renews at exactly 2/3 of the certificate's lifetime, then again 2/3 into the new one", () =>
    Effect.gen(function*() {
      const fiber = yield* publishSettled()
      assert.isTrue(Exit.isSuccess(yield* Fiber.join(fiber)))
      const manager = yield* VolumeManager
      const s0 = yield* manager.status("csi-4d3c2b1a")
      assert.strictEqual(s0!.nextIssuanceAt! - (s0!.notAfter! - HOUR), (2 * HOUR) / 3)
      const serial0 = new x509.X509Certificate((yield* readFiles("csi-4d3c2b1a")).crt!).serialNumber

      yield* TestClock.adjust((2 * HOUR) / 3 - 1)
      assert.strictEqual((yield* (yield* TestSigner).signed), 1)
      yield* TestClock.adjust(1)
      yield* (yield* TestSigner).awaitSigned(2)
      assert.strictEqual(yield* (yield* TestSigner).signed, 2, "second issuance")
      yield* metadataUntil("csi-4d3c2b1a", (next) => next! > s0!.nextIssuanceAt!)
      assert.isTrue((yield* manager.status("csi-4d3c2b1a"))!.nextIssuanceAt! > s0!.nextIssuanceAt!, "metadata advanced")
      const serial1 = new x509.X509Certificate((yield* readFiles("csi-4d3c2b1a")).crt!).serialNumber
      assert.notStrictEqual(serial1, serial0)
      assert.strictEqual((yield* requests).length, 1, "the older request of the volume was deleted")
      const s1 = yield* manager.status("csi-4d3c2b1a")
      assert.strictEqual(s1!.nextIssuanceAt, s0!.nextIssuanceAt! + (2 * HOUR) / 3)
    }).pipe(Effect.provide(stack())))

  it.effect("backs off 30 s, 60 s, 120 s … after failed renewals, and recovers", () =>
    Effect.gen(function*() {
      yield* Fiber.join(yield* publishSettled())
      const signer = yield* TestSigner
      yield* signer.setMode({ _tag: "Fail", message: "issuer down" })
      const created = () => Effect.map(requests, (r) => r.length)
      const kube = yield* KubeClientMemory
      const creations = Effect.map(kube.creations, (c) => c.length)
      const manager = yield* VolumeManager
      /** The loop has failed and is asleep until exactly `at` (the manager announces it once the sleep has begun). */
      const retryingAt = (at: number) => manager.awaitStatus("csi-4d3c2b1a", (s) => s?.retryAt === at)
      yield* TestClock.adjust((2 * HOUR) / 3)
      yield* kube.awaitCreations(2)
      assert.strictEqual(yield* creations, 2, "first renewal attempt")
      let now = (2 * HOUR) / 3
      for (const [delay, expected] of [[30_000, 3], [60_000, 4], [120_000, 5]] as const) {
        yield* retryingAt(now + delay)
        yield* TestClock.adjust(delay - 1)
        assert.strictEqual(yield* creations, expected - 1, `no attempt before ${delay} ms`)
        yield* TestClock.adjust(1)
        now += delay
        yield* kube.awaitCreations(expected)
        assert.strictEqual(yield* creations, expected, `attempt after ${delay} ms`)
      }
      assert.strictEqual(yield* created(), 1, "failed requests are replaced, not accumulated")
      yield* retryingAt(now + 240_000)
      yield* signer.setMode({ _tag: "Sign" })
      yield* TestClock.adjust(240_000)
      yield* signer.awaitSigned(2)
      assert.strictEqual(yield* signer.signed, 2, "recovered")
    }).pipe(Effect.provide(stack())))
})

describe("restart", () => {
  it.effect("a restarted driver resumes renewal, waits for a fresh token, and keeps the mount", () =>
    Effect.gen(function*() {
      const node = yield* Layer.build(nodeLayer)
      const first = yield* startDriver(node, testConfig())
      const plugin1 = yield* Effect.provide(Effect.service(CsiPlugin), first.ctx)
      yield* plugin1.nodePublishVolume(request())
      yield* first.stop

      const second = yield* startDriver(node, testConfig())
      const manager = yield* Effect.provide(Effect.service(VolumeManager), second.ctx)
      const status = yield* manager.status("csi-4d3c2b1a")
      assert.deepStrictEqual({ issued: status?.issued, hasToken: status?.hasToken }, { issued: true, hasToken: false })
      assert.strictEqual(yield* manager.managed, 1)

      const kube = yield* Effect.provide(Effect.service(KubeClientMemory), node)
      yield* TestClock.adjust((2 * HOUR) / 3 + 5_000)
      assert.strictEqual((yield* kube.creations).length, 1, "no request without a token")

      yield* manager.awaitStatus("csi-4d3c2b1a", (s) => s?.retryAt !== undefined)
      const plugin2 = yield* Effect.provide(Effect.service(CsiPlugin), second.ctx)
      yield* plugin2.nodePublishVolume(request({ serial: 2 }))
      yield* TestClock.adjust(10_000)
      assert.strictEqual((yield* kube.awaitCreations(2)).length, 2, "renewed with the fresh token")
      const signer = yield* Effect.provide(Effect.service(TestSigner), node)
      yield* signer.awaitSigned(2)
      assert.strictEqual(yield* signer.signed, 2, "signed")
      const mounts = yield* Effect.provide(Effect.service(MounterMemory), node)
      assert.isTrue((yield* Ref.get(mounts.table)).has(request().target_path))
      yield* second.stop
    }))
})

describe("NodeUnpublishVolume", () => {
  it.effect("unmounts, deletes the volume's files and requests, and is idempotent", () =>
    Effect.gen(function*() {
      const plugin = yield* CsiPlugin
      yield* plugin.nodePublishVolume(request())
      yield* plugin.nodeUnpublishVolume(unpublishRequest())
      assert.strictEqual((yield* requests).length, 0)
      assert.strictEqual((yield* Ref.get((yield* VolumeStoreMemory).volumes)).size, 0)
      assert.isFalse((yield* Ref.get((yield* MounterMemory).table)).has(request().target_path))
      assert.strictEqual(yield* (yield* VolumeManager).managed, 0)
      yield* plugin.nodeUnpublishVolume(unpublishRequest())
      yield* plugin.nodeUnpublishVolume(unpublishRequest({ volumeId: "csi-unknown" }))
    }).pipe(Effect.provide(stack())))
})

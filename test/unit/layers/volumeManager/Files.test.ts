/**
 * A volume's files (`layers/volumeManager/Files.ts`) through the whole driver. The CA bundle at
 * volume level: written as `--file-name-ca` at issuance, renewal and rotation; a bundle change
 * rewrites every issued volume's CA file and nothing else; a restarted driver reconciles once at
 * start; a CA change racing a renewal never resurrects older files. The filesystem-delivery bundles
 * where a volume asks for them, kept current. The bundle is a controllable CaBundle (a
 * SubscriptionRef, as `layerFile` publishes it); time is TestClock's.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Ref, Stream, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import { x509 } from "../../../../src/x509.ts"
import { credentialBundle, CREDENTIAL_BUNDLE_FILE, trustBundle } from "../../../../src/domain/FilesystemDelivery.ts"
import { CertificateRequests } from "../../../../src/domain/KubeObjects.ts"
import { FILESYSTEM_DELIVERY_KEY } from "../../../../src/domain/PublishRequest.ts"
import { KubeClientMemory } from "../../../../src/layers/KubeClient.ts"
import { VolumeStoreMemory } from "../../../../src/layers/VolumeStore.ts"
import type { MemoryVolume } from "../../../../src/layers/VolumeStore.ts"
import { CaBundle } from "../../../../src/services/CaBundle.ts"
import { CsiPlugin } from "../../../../src/services/CsiPlugin.ts"
import type { DriverConfigShape } from "../../../../src/services/DriverConfig.ts"
import { VolumeManager } from "../../../../src/services/VolumeManager.ts"
import { nodeLayer, startDriver, testConfig } from "../../../support/DriverStack.ts"
import { publishRequest } from "../../../support/publish.ts"
import type { PodSpec } from "../../../support/publish.ts"
import { TestSigner } from "../../../support/TestSigner.ts"

const HOUR = 3_600_000
const RENEW_AT = (2 * HOUR) / 3
const pem = (tag: string) => `-----BEGIN CERTIFICATE-----\n${tag}\n-----END CERTIFICATE-----\n`
const CA_A = pem("CA-A")
const CA_B = pem("CA-B")
const CA_C = pem("CA-C")

const POD_1: PodSpec = {}
const POD_2: PodSpec = { volumeId: "csi-second", podName: "second", podUid: "11111111-2222-4333-8444-555555555555" }
const VOL_1 = "csi-4d3c2b1a"
const VOL_2 = "csi-second"

const request = (spec: PodSpec = {}) => {
  const { token: _token, ...req } = publishRequest(spec)
  return req
}

/** A CA bundle the test changes at will, shaped as `layerFile` publishes it. */
const controllableBundle = (initial: string) =>
  Effect.map(SubscriptionRef.make(initial), (ref) => ({
    set: (next: string) => SubscriptionRef.set(ref, next),
    layer: Layer.succeed(
      CaBundle,
      CaBundle.of({ current: SubscriptionRef.get(ref), changes: SubscriptionRef.changes(ref).pipe(Stream.drop(1), Stream.changes) })
    )
  }))

/** A node and one driver on it, with the controllable bundle; `run` provides both. */
const setup = (config: DriverConfigShape = testConfig(), initial = CA_A) =>
  Effect.gen(function*() {
    const node = yield* Layer.build(nodeLayer)
    const bundle = yield* controllableBundle(initial)
    const start = () => startDriver(node, config, undefined, { caBundle: bundle.layer })
    const driver = yield* start()
    const run = <A, E>(effect: Effect.Effect<A, E, any>, ctx: Context.Context<any> = driver.ctx) =>
      Effect.provide(effect, Context.merge(node, ctx)) as Effect.Effect<A, E>
    return { node, bundle, driver, start, run }
  })

const volume = (volumeId: string) =>
  Effect.gen(function*() {
    const mem = yield* VolumeStoreMemory
    return (yield* Ref.get(mem.volumes)).get(volumeId)
  })

const contents = (v: MemoryVolume | undefined): Record<string, string> =>
  Object.fromEntries([...(v?.files ?? new Map()).entries()].map(([name, f]) => [name, f.content]))

const publish = (spec: PodSpec) => Effect.flatMap(Effect.service(CsiPlugin), (p) => p.nodePublishVolume(request(spec)))

const serialOf = (crt: string | undefined) => new x509.X509Certificate(crt!).serialNumber

/** Waits on the memory store's write signal until a volume satisfies `holds`. */
const volumeUntil = (volumeId: string, holds: (v: MemoryVolume | undefined) => boolean) =>
  Effect.flatMap(Effect.service(VolumeStoreMemory), (mem) => mem.until((volumes) => holds(volumes.get(volumeId))))

/** Waits (on store writes, never a poll) until the volume's `name` file holds `expected`; `what` names the step. */
const caIs = (volumeId: string, name: string, expected: string, what: string) =>
  volumeUntil(volumeId, (v) => v?.files.get(name)?.content === expected).pipe(Effect.withSpan(what))

describe("CA file at issuance, renewal and rotation", () => {
  it.effect("publish writes the bundle as ca.crt next to the certificate and key", () =>
    Effect.gen(function*() {
      const { run } = yield* setup()
      yield* run(publish(POD_1))
      const v = yield* run(volume(VOL_1))
      assert.deepStrictEqual(Object.keys(contents(v)).sort(), ["ca.crt", "tls.crt", "tls.key"])
      assert.strictEqual(contents(v)["ca.crt"], CA_A)
    }))

  it.effect("a custom --file-name-ca is honoured at issuance, at renewal and on rotation (never ca.crt)", () =>
    Effect.gen(function*() {
      const config = testConfig({ fileNames: { certificate: "svid.pem", key: "svid-key.pem", ca: "bundle.pem" } })
      const { run, bundle } = yield* setup(config)
      yield* run(publish(POD_1))
      const names = ["bundle.pem", "svid-key.pem", "svid.pem"]
      const issued = contents(yield* run(volume(VOL_1)))
      assert.deepStrictEqual(Object.keys(issued).sort(), names, "at issuance")
      assert.strictEqual(issued["bundle.pem"], CA_A)

      yield* TestClock.adjust(RENEW_AT)
      yield* run(volumeUntil(VOL_1, (v) => contents(v)["svid.pem"] !== issued["svid.pem"]))
      const renewed = contents(yield* run(volume(VOL_1)))
      assert.deepStrictEqual(Object.keys(renewed).sort(), names, "at renewal")
      assert.strictEqual(renewed["bundle.pem"], CA_A)

      yield* bundle.set(CA_B)
      yield* run(caIs(VOL_1, "bundle.pem", CA_B, "rotated"))
      const rotated = contents(yield* run(volume(VOL_1)))
      assert.deepStrictEqual(Object.keys(rotated).sort(), names, "on rotation")
      assert.strictEqual(rotated["svid.pem"], renewed["svid.pem"])
      assert.strictEqual(rotated["svid-key.pem"], renewed["svid-key.pem"])
    }))
})

describe("CA bundle changes", () => {
  it.effect("a change rewrites every issued volume's CA file once; certificates and keys stay byte-identical", () =>
    Effect.gen(function*() {
      const { run, bundle } = yield* setup()
      yield* run(publish(POD_1))
      yield* run(publish(POD_2))
      const before1 = yield* run(volume(VOL_1))
      const before2 = yield* run(volume(VOL_2))
      yield* bundle.set(CA_B)
      yield* run(caIs(VOL_1, "ca.crt", CA_B, "volume 1 rotated"))
      yield* run(caIs(VOL_2, "ca.crt", CA_B, "volume 2 rotated"))
      for (const [before, id] of [[before1, VOL_1], [before2, VOL_2]] as const) {
        const after = yield* run(volume(id))
        assert.deepStrictEqual(contents(after), { ...contents(before), "ca.crt": CA_B })
        assert.strictEqual(after!.swaps, before!.swaps + 1, `one atomic swap for ${id}`)
      }
      // No new CertificateRequest: a CA change never re-issues.
      const kube = yield* run(Effect.service(KubeClientMemory))
      assert.strictEqual((yield* kube.creations).length, 2)
    }))

  it.effect("a volume whose renewal is stuck does not hold up the CA change of the others", () =>
    Effect.gen(function*() {
      const { run, bundle } = yield* setup()
      yield* run(publish(POD_1))
      // The second volume is issued an hour later, so only the first one's renewal is due below.
      yield* TestClock.adjust(HOUR / 2)
      yield* run(publish(POD_2))
      const signer = yield* run(Effect.service(TestSigner))
      const kube = yield* run(Effect.service(KubeClientMemory))
      yield* signer.setMode({ _tag: "Hold" })
      yield* TestClock.adjust(RENEW_AT - HOUR / 2)
      // Volume 1's renewal is in flight once its request is created.
      assert.strictEqual((yield* kube.awaitCreations(3)).length, 3)
      yield* bundle.set(CA_B)
      yield* run(caIs(VOL_2, "ca.crt", CA_B, "volume 2 rotated while volume 1 waits for its signer"))
      yield* signer.release
      yield* run(caIs(VOL_1, "ca.crt", CA_B, "volume 1 rotated after its renewal"))
    }))

  it.effect("a CA change racing a renewal: the final files are the new certificate and key with the new CA", () =>
    Effect.gen(function*() {
      const { run, bundle } = yield* setup()
      yield* run(publish(POD_1))
      const old = contents(yield* run(volume(VOL_1)))
      const signer = yield* run(Effect.service(TestSigner))
      const kube = yield* run(Effect.service(KubeClientMemory))
      yield* signer.setMode({ _tag: "Hold" })
      yield* TestClock.adjust(RENEW_AT)
      // The renewal is in flight once its request is created.
      assert.strictEqual((yield* kube.awaitCreations(2)).length, 2)
      // The CA changes twice while the renewal is in flight.
      yield* bundle.set(CA_B)
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
      yield* bundle.set(CA_C)
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
      // Whatever was written meanwhile, it is still the old certificate and key.
      const during = contents(yield* run(volume(VOL_1)))
      assert.strictEqual(during["tls.crt"], old["tls.crt"])
      assert.strictEqual(during["tls.key"], old["tls.key"])
      yield* signer.release
      yield* signer.awaitSigned(2)
      assert.strictEqual(yield* signer.signed, 2, "renewal signed")
      const manager = yield* run(Effect.service(VolumeManager))
      // The renewal is written when the stored metadata carries the next renewal time.
      yield* run(volumeUntil(VOL_1, (v) => (v?.metadata?.nextIssuanceAt ?? 0) > RENEW_AT))
      assert.isTrue((yield* manager.status(VOL_1))!.nextIssuanceAt! > RENEW_AT, "renewal written")
      yield* run(caIs(VOL_1, "ca.crt", CA_C, "latest CA"))
      for (let i = 0; i < 100; i++) yield* Effect.yieldNow
      const after = contents(yield* run(volume(VOL_1)))
      assert.notStrictEqual(serialOf(after["tls.crt"]), serialOf(old["tls.crt"]), "the renewed certificate")
      assert.notStrictEqual(after["tls.key"], old["tls.key"], "the renewed key")
      assert.strictEqual(after["ca.crt"], CA_C)
      // The renewed certificate is the one the API server holds for the volume's current request.
      const [cr] = yield* kube.all(CertificateRequests)
      assert.strictEqual(Buffer.from(cr!.status!.certificate!, "base64").toString("utf8"), after["tls.crt"])
    }))
})

describe("start-up reconciliation", () => {
  it.effect("a driver started after the bundle changed updates every CA file once, before serving", () =>
    Effect.gen(function*() {
      const { run, bundle, driver, start } = yield* setup()
      yield* run(publish(POD_1))
      yield* run(publish(POD_2))
      yield* driver.stop
      const before1 = yield* run(volume(VOL_1))
      const before2 = yield* run(volume(VOL_2))
      yield* bundle.set(CA_B)
      // Nothing runs while the driver is down.
      assert.strictEqual(contents(yield* run(volume(VOL_1)))["ca.crt"], CA_A)

      const second = yield* start()
      // Reconciled during start-up: no waiting needed.
      for (const [before, id] of [[before1, VOL_1], [before2, VOL_2]] as const) {
        const after = yield* run(volume(id))
        assert.deepStrictEqual(contents(after), { ...contents(before), "ca.crt": CA_B })
        assert.strictEqual(after!.swaps, before!.swaps + 1, `updated once: ${id}`)
      }
      yield* second.stop

      // An unchanged bundle at the next start writes nothing.
      const third = yield* start()
      assert.strictEqual((yield* run(volume(VOL_1)))!.swaps, before1!.swaps + 1)
      yield* third.stop
    }))

  it.effect("a bundle change right after start-up is not lost", () =>
    Effect.gen(function*() {
      const { run, bundle, driver, start } = yield* setup()
      yield* run(publish(POD_1))
      yield* driver.stop
      const second = yield* start()
      // The driver has just reconciled with A; B arrives before anything else ran.
      yield* bundle.set(CA_B)
      yield* run(caIs(VOL_1, "ca.crt", CA_B, "the change after start-up is applied"), second.ctx)
      yield* second.stop
    }))
})

describe("the filesystem-delivery layout (attribute spiffe.csi.cert-manager.io/filesystem-delivery)", () => {
  /** These volumes also serve a Workload API socket, so their CA bundle is a readable PEM. */
  const config = testConfig({ workloadApi: { socketName: "spiffe.sock", byDefault: true } })
  const b64pem = (body: string) => `-----BEGIN CERTIFICATE-----\n${Buffer.from(body).toString("base64")}\n-----END CERTIFICATE-----\n`
  const caA = b64pem("ca A")
  const caB = b64pem("ca B")
  const contents = (volumeId: string) =>
    Effect.gen(function*() {
      const mem = yield* VolumeStoreMemory
      const files = (yield* Ref.get(mem.volumes)).get(volumeId)!.files
      return Object.fromEntries([...files].map(([name, f]) => [name, f.content]))
    })

  it.effect("writes the credential bundle and the trust bundle next to the usual files, and keeps them current", () =>
    Effect.gen(function*() {
      const { run, bundle } = yield* setup(config, caA)
      yield* run(publish({ ...POD_1, attributes: { [FILESYSTEM_DELIVERY_KEY]: "true" } }))
      yield* run(publish(POD_2))
      const files = yield* run(contents(VOL_1))
      assert.deepStrictEqual(Object.keys(files).sort(), ["ca.crt", CREDENTIAL_BUNDLE_FILE, "foo.bar.spiffe-trust-bundle.x509.pem", "tls.crt", "tls.key"])
      assert.strictEqual(files[CREDENTIAL_BUNDLE_FILE], credentialBundle(files["tls.key"]!, files["tls.crt"]!, caA))
      assert.strictEqual(files["foo.bar.spiffe-trust-bundle.x509.pem"], trustBundle(caA))
      assert.deepStrictEqual(Object.keys(yield* run(contents(VOL_2))).sort(), ["ca.crt", "tls.crt", "tls.key"], "only where asked for")

      yield* TestClock.adjust(RENEW_AT)
      yield* run(Effect.flatMap(Effect.service(VolumeStoreMemory), (mem) => mem.until((v) => v.get(VOL_1)?.files.get("tls.crt")?.content !== files["tls.crt"])))
      const renewed = yield* run(contents(VOL_1))
      assert.strictEqual(renewed[CREDENTIAL_BUNDLE_FILE], credentialBundle(renewed["tls.key"]!, renewed["tls.crt"]!, caA), "at renewal")
      yield* bundle.set(caB)
      yield* run(Effect.flatMap(Effect.service(VolumeStoreMemory), (mem) => mem.until((v) => v.get(VOL_1)?.files.get("ca.crt")?.content === caB)))
      assert.strictEqual((yield* run(contents(VOL_1)))["foo.bar.spiffe-trust-bundle.x509.pem"], trustBundle(caB), "after the CA change")
    }).pipe(Effect.scoped))
})

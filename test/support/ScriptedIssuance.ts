/**
 * The volume manager over a scripted Issuance, for timing and bookkeeping tests: each attempt is
 * announced on a queue (the test waits on it, never polls), its outcome is what the test set, and
 * the certificate's lifetime is exact. Time is TestClock's and every policy jitter is 0, so each
 * retry instant can be asserted to the millisecond.
 */
import { assert } from "@effect/vitest"
import { Clock, Context, Deferred, Effect, Layer, PubSub, Queue, Redacted, Ref, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { PublishRequest } from "../../src/domain/PublishRequest.ts"
import * as CaBundleLayers from "../../src/layers/CaBundle.ts"
import * as EventRecorderLayers from "../../src/layers/EventRecorder.ts"
import * as MounterLayers from "../../src/layers/Mounter.ts"
import * as VolumeManagerLayers from "../../src/layers/VolumeManager.ts"
import * as VolumeStoreLayers from "../../src/layers/VolumeStore.ts"
import * as WorkloadApiLayers from "../../src/layers/WorkloadApi.ts"
import { DriverConfig } from "../../src/services/DriverConfig.ts"
import { Issuance, IssuanceError } from "../../src/services/Issuance.ts"
import type { IssuanceFailure } from "../../src/services/Issuance.ts"
import { VolumeManager } from "../../src/services/VolumeManager.ts"
import { testConfig } from "./DriverStack.ts"

export const HOUR = 3_600_000
/** The scripted certificates live one hour from their issuance; renewal is due at 2/3 of that. */
export const RENEW_AT = (2 * HOUR) / 3

interface Attempt {
  readonly at: number
  readonly volumeId: string
  readonly token: string | undefined
}

/** The Issuance the test scripts: `outcome` decides every attempt; `attempts` announces each one. */
export class Script extends Context.Service<Script, {
  readonly attempts: Queue.Queue<Attempt>
  readonly outcome: Ref.Ref<"Sign" | IssuanceFailure>
  /** While set, every attempt waits for it after it was announced: a publish held in its issuance. */
  readonly hold: Ref.Ref<Deferred.Deferred<void> | undefined>
  readonly reconnect: Effect.Effect<void>
}>()("test/support/ScriptedIssuance/Script") {}

const scripted = Layer.effectContext(Effect.gen(function*() {
  const attempts = yield* Queue.unbounded<Attempt>()
  const outcome = yield* Ref.make<"Sign" | IssuanceFailure>("Sign")
  const hold = yield* Ref.make<Deferred.Deferred<void> | undefined>(undefined)
  const reconnected = yield* PubSub.unbounded<void>()
  let serial = 0
  const issuance = Issuance.of({
    issue: (input) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        yield* Queue.offer(attempts, { at: now, volumeId: input.volumeId, token: input.token === undefined ? undefined : Redacted.value(input.token) })
        const held = yield* Ref.get(hold)
        if (held !== undefined) yield* Deferred.await(held)
        const o = yield* Ref.get(outcome)
        if (o !== "Sign") return yield* new IssuanceError({ reason: o, detail: `scripted ${o}` })
        serial += 1
        return { chainPem: `chain ${serial}`, keyPem: Redacted.make(`key ${serial}`), notBefore: now, notAfter: now + HOUR, serialNumber: String(serial), requestName: `r${serial}` }
      }),
    forget: () => Effect.void,
    synced: Effect.succeed(true),
    awaitSynced: Effect.void,
    reconnected: Stream.fromPubSub(reconnected)
  })
  return Context.make(Issuance, issuance).pipe(
    Context.add(Script, Script.of({ attempts, outcome, hold, reconnect: Effect.asVoid(PubSub.publish(reconnected, undefined)) }))
  )
}))

export const stack = VolumeManagerLayers.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(
    DriverConfig.layer(testConfig()),
    VolumeStoreLayers.layerMemory("data/inmemfs"),
    MounterLayers.layerMemory,
    CaBundleLayers.layerNone,
    EventRecorderLayers.layerMemory,
    WorkloadApiLayers.layerNone,
    scripted
  ))
)

const POD_UID = "0b8c8a1e-3c1f-4a52-9d39-5f1d2e6b7a10"

const request = (volumeId: string, token: string): PublishRequest => ({
  volumeId,
  targetPath: `/var/lib/kubelet/pods/${POD_UID}/volumes/kubernetes.io~csi/${volumeId}/mount`,
  podName: "my-csi-app",
  podNamespace: "sandbox",
  podUid: POD_UID,
  serviceAccount: "example-app",
  token: { token: Redacted.make(token), namespace: "sandbox", serviceAccount: "example-app", podName: "my-csi-app", podUid: POD_UID, expiresAt: undefined },
  fsGroup: undefined
})

export const publish = (volumeId: string, token = "token-1") => Effect.flatMap(Effect.service(VolumeManager), (m) => m.publish(request(volumeId, token)))

export const unpublish = (volumeId: string) =>
  Effect.flatMap(Effect.service(VolumeManager), (m) => m.unpublish({ volumeId, targetPath: request(volumeId, "").targetPath }))

export const nextAttempt = Effect.flatMap(Effect.service(Script), (s) => Queue.take(s.attempts))

export const setOutcome = (o: "Sign" | IssuanceFailure) => Effect.flatMap(Effect.service(Script), (s) => Ref.set(s.outcome, o))

/** Holds every attempt from now on until the returned effect releases them. */
export const holdAttempts = Effect.gen(function*() {
  const script = yield* Script
  const gate = yield* Deferred.make<void>()
  yield* Ref.set(script.hold, gate)
  return Effect.andThen(Ref.set(script.hold, undefined), Deferred.succeed(gate, undefined))
})

/** Moves the clock to `at` exactly (absolute, from TestClock's 0). */
export const advanceTo = (at: number) => Effect.flatMap(Clock.currentTimeMillis, (now) => TestClock.adjust(at - now))

/** Moves the clock to `at` and takes the attempt that must come exactly then. */
export const expectAttemptAt = (at: number, what: string) =>
  Effect.gen(function*() {
    yield* advanceTo(at)
    const a = yield* nextAttempt
    assert.strictEqual(a.at, at, what)
    return a
  })

/**
 * Asserts that the volume's loop has scheduled its retry at exactly `at` and is asleep. Waits on the
 * manager's status signal for the retry the loop schedules after the attempt the clock stands at
 * (one later than now); the loop announces it once its sleep is registered, so moving the clock
 * afterwards cannot shift its wake-up.
 */
export const expectRetryAt = (volumeId: string, at: number, what: string) =>
  Effect.gen(function*() {
    const manager = yield* VolumeManager
    const now = yield* Clock.currentTimeMillis
    const status = yield* manager.awaitStatus(volumeId, (s) => s?.retryAt !== undefined && s.retryAt > now)
    assert.strictEqual(status?.retryAt, at, what)
  })

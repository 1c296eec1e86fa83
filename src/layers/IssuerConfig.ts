/**
 * IssuerConfig implementations. `layerStatic` serves the `--issuer-*` flags (or none) and is also
 * what tests use to switch issuers.
 */
import { Deferred, Effect, Layer, Ref, Result, Schema, Stream, SubscriptionRef } from "effect"
import type { IssuerRef } from "../domain/IssuerRef.ts"
import * as Issuer from "../domain/IssuerRef.ts"
import type { ConfigMap } from "../domain/KubeObjects.ts"
import { ConfigMaps } from "../domain/KubeObjects.ts"
import { EventRecorder } from "../services/EventRecorder.ts"
import { IssuerConfig } from "../services/IssuerConfig.ts"
import { KubeClient } from "../services/KubeClient.ts"
import * as ListWatch from "./ListWatch.ts"

export const makeStatic = (issuer: IssuerRef | undefined) =>
  Effect.gen(function*() {
    const ref = yield* SubscriptionRef.make<IssuerRef | undefined>(issuer)
    return {
      service: IssuerConfig.of({
        current: SubscriptionRef.get(ref),
        changes: SubscriptionRef.changes(ref).pipe(Stream.drop(1)),
        loaded: Effect.succeed(true),
        awaitLoaded: Effect.void
      }),
      set: (next: IssuerRef | undefined) => SubscriptionRef.set(ref, next)
    }
  })

export const layerStatic = (issuer: IssuerRef | undefined) =>
  Layer.effect(IssuerConfig, Effect.map(makeStatic(issuer), (s) => s.service))

/** The runtime issuance ConfigMap's keys, all three required and non-empty. */
const IssuerData = Schema.Struct({
  "issuer-name": Schema.NonEmptyString,
  "issuer-kind": Schema.NonEmptyString,
  "issuer-group": Schema.NonEmptyString
})
const decodeIssuerData = Schema.decodeUnknownResult(IssuerData)

/** The issuer a ConfigMap names, or the reason it names none. */
export const issuerFromConfigMap = (cm: ConfigMap): Result.Result<IssuerRef, string> =>
  Result.mapBoth(decodeIssuerData(cm.data ?? {}), {
    onFailure: () => "the ConfigMap must set issuer-name, issuer-kind and issuer-group, all non-empty",
    onSuccess: (d) => ({ name: d["issuer-name"], kind: d["issuer-kind"], group: d["issuer-group"] })
  })

/**
 * Follows the runtime issuance ConfigMap: a valid one wins; a deleted or invalid one falls back to
 * the static issuer (which may be none). An invalid edit is logged as an error and recorded as a
 * Warning Event on the ConfigMap. `loaded` turns true (and `awaitLoaded` returns) after the first
 * successful read.
 */
export const layerConfigMap = (
  source: { readonly name: string; readonly namespace: string },
  fallback: IssuerRef | undefined
) =>
  Layer.effect(
    IssuerConfig,
    Effect.gen(function*() {
      const kube = yield* KubeClient
      const events = yield* EventRecorder
      const ref = yield* SubscriptionRef.make<IssuerRef | undefined>(fallback)
      const firstRead = yield* Deferred.make<void>()
      const selector = { namespace: source.namespace, fieldSelector: `metadata.name=${source.name}` }

      // The resourceVersion of the invalid ConfigMap last reported, so that a relist (every watch
      // reconnect) neither republishes an unchanged issuer nor repeats the error and its Event.
      const reportedInvalid = yield* Ref.make<string | undefined>(undefined)

      /** Publishes `next` only when it differs from the current issuer; true when it did. */
      const setIssuer = (next: IssuerRef | undefined) =>
        Effect.flatMap(SubscriptionRef.get(ref), (now) => {
          const same = now === undefined || next === undefined ? now === next : Issuer.equals(now, next)
          return same ? Effect.succeed(false) : Effect.as(SubscriptionRef.set(ref, next), true)
        })

      const apply = Effect.fnUntraced(function*(cm: ConfigMap | undefined) {
        if (cm === undefined) {
          yield* Ref.set(reportedInvalid, undefined)
          if ((yield* setIssuer(fallback)) || !(yield* Deferred.isDone(firstRead))) {
            yield* Effect.logInfo("runtime issuance ConfigMap absent; using the static issuer", { issuer: fallback === undefined ? "none" : Issuer.format(fallback) })
          }
          return
        }
        const issuer = issuerFromConfigMap(cm)
        if (Result.isSuccess(issuer)) {
          yield* Ref.set(reportedInvalid, undefined)
          if ((yield* setIssuer(issuer.success)) || !(yield* Deferred.isDone(firstRead))) yield* Effect.logInfo("runtime issuer configured", { issuer: Issuer.format(issuer.success) })
          return
        }
        yield* setIssuer(fallback)
        if ((yield* Ref.getAndSet(reportedInvalid, cm.metadata.resourceVersion)) === cm.metadata.resourceVersion) return
        yield* Effect.logError("invalid runtime issuance ConfigMap; using the static issuer", { configMap: `${source.namespace}/${source.name}`, error: issuer.failure })
        yield* recordInvalid(cm, issuer.failure)
      })

      const recordInvalid = (cm: ConfigMap, reason: string) =>
        events.record({
          involvedObject: { apiVersion: "v1", kind: "ConfigMap", name: source.name, namespace: source.namespace, uid: cm.metadata.uid },
          type: "Warning",
          reason: "InvalidIssuerConfig",
          message: reason
        })

      yield* ListWatch.run(kube, ConfigMaps, { name: "runtime issuance ConfigMap watch", ...selector }, {
        onList: (items) =>
          Effect.gen(function*() {
            yield* apply(items[0])
            yield* Deferred.succeed(firstRead, undefined)
          }),
        onEvent: (ev) => apply(ev.type === "DELETED" ? undefined : ev.object)
      }).pipe(Effect.forkScoped)

      return IssuerConfig.of({
        current: SubscriptionRef.get(ref),
        changes: SubscriptionRef.changes(ref).pipe(Stream.drop(1)),
        loaded: Deferred.isDone(firstRead),
        awaitLoaded: Deferred.await(firstRead)
      })
    })
  )

/** The static issuer, or the runtime ConfigMap over it. */
export const layerFor = (config: {
  readonly issuer: IssuerRef | undefined
  readonly runtimeIssuanceConfigMap: { readonly name: string; readonly namespace: string } | undefined
}): Layer.Layer<IssuerConfig, never, KubeClient | EventRecorder> =>
  config.runtimeIssuanceConfigMap === undefined
    ? layerStatic(config.issuer)
    : layerConfigMap(config.runtimeIssuanceConfigMap, config.issuer)

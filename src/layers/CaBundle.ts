/**
 * CaBundle implementations: none (no CA file), a fixed bundle, a watched file, or a memory twin
 * whose content tests set (`CaBundleMemory`).
 *
 * Owns: reading and validating `--source-ca-bundle`, noticing when it changes, publishing a change
 * only when the valid content differs. Does not own: writing `ca.crt` into volumes (VolumeManager).
 * `layerFile` and `layerMemory` both pass `test/unit/layers/CaBundle.contract.ts`.
 */
import { Context, Deferred, Effect, FileSystem, Layer, PlatformError, Queue, Stream, SubscriptionRef } from "effect"
import * as path from "node:path"
import * as Schedules from "../domain/Schedules.ts"
import { CaBundle } from "../services/CaBundle.ts"
import { Crypto, CryptoError } from "../services/Crypto.ts"
import { platformText } from "./PlatformText.ts"

export const layerNone = Layer.succeed(CaBundle, CaBundle.of({ current: Effect.succeed(undefined), changes: Stream.empty }))

export const layerStatic = (pem: string) =>
  Layer.succeed(CaBundle, CaBundle.of({ current: Effect.succeed(pem), changes: Stream.empty }))

/**
 * The `--source-ca-bundle` file. It must exist and hold valid PEM certificates at start-up (an
 * invalid bundle is an error, never an empty CA file). Its *directory* is watched (Effect's
 * `FileSystem.watch`: inotify through node:fs on Linux), so the atomic `..data` symlink swap of a
 * Secret or ConfigMap volume is seen (a rename in the directory, which no watch on the file or its
 * old target would report), as are a rename over the file and a rewrite in place; bursts of events
 * are coalesced (debounced by COALESCE) and a change is published only when the validated content
 * differs. Any event in the directory triggers a reload: only the content decides.
 */
export const layerFile = (file: string): Layer.Layer<CaBundle, CryptoError, Crypto | FileSystem.FileSystem> =>
  Layer.effect(
    CaBundle,
    Effect.gen(function*() {
      const crypto = yield* Crypto
      const fs = yield* FileSystem.FileSystem
      const dir = path.dirname(file)
      const read = fs.readFileString(file).pipe(
        Effect.mapError((e) => new CryptoError({ operation: `read CA bundle ${file}`, detail: platformText(e), cause: e }))
      )
      const load = read.pipe(
        Effect.tap((pem) =>
          crypto.validateBundle(pem).pipe(Effect.mapError((e) => new CryptoError({ operation: `validate CA bundle ${file}`, detail: e.detail })))
        )
      )
      // Watch before the first read (`onReady`: the watcher is installed and buffers events), so a
      // change made while the driver starts is never missed. One pending event is enough: the
      // reload reads the file as it is then.
      const events = yield* Queue.sliding<void>(1)
      const watching = yield* Deferred.make<void, CryptoError>()
      const watchError = (cause: unknown) =>
        new CryptoError({
          operation: `watch CA bundle directory ${dir}`,
          detail: PlatformError.isPlatformError(cause) ? platformText(cause) : cause instanceof Error ? cause.message : String(cause),
          cause
        })
      const follow = fs.watch(dir, {
        onReady: () => {
          // The first time, the layer goes on to read the file. Watching again after a failure:
          // one reload, so a change made while nothing watched is not lost.
          if (!Deferred.doneUnsafe(watching, Effect.void)) Queue.offerUnsafe(events, undefined)
        }
      }).pipe(
        Stream.runForEach(() => Queue.offer(events, undefined)),
        Effect.mapError(watchError),
        // NodeFileSystem calls node:fs `watch` in `Effect.sync`: its throw (EACCES, the inotify
        // watch limit) is a defect there, and must fail the layer like a PlatformError.
        Effect.catchDefect((defect) => Effect.fail(watchError(defect)))
      )
      // Failing before the first `onReady` fails the layer; later (the watcher's `error` event) the
      // directory is watched again on Schedules.watchReconnect.
      yield* follow.pipe(
        Effect.tapError((e) =>
          Deferred.isDoneUnsafe(watching)
            ? Effect.logError("CA bundle directory watch failed; watching it again", { file, error: e.message })
            : Deferred.fail(watching, e)
        ),
        Effect.retry({ schedule: Schedules.watchReconnect, while: () => Deferred.isDoneUnsafe(watching) }),
        Effect.ignore,
        Effect.forkScoped
      )
      yield* Deferred.await(watching)
      const published = yield* publisher(yield* load)
      yield* Stream.fromQueue(events).pipe(
        Stream.debounce(COALESCE),
        Stream.runForEach(() =>
          load.pipe(
            Effect.flatMap(published.offer),
            Effect.catch((e) => Effect.logError("CA bundle not updated: the new content is invalid", { file, error: e.message }))
          )
        ),
        Effect.forkScoped
      )
      return published.bundle
    })
  )

/**
 * The validated bundle both `layerFile` and `layerMemory` serve: `offer` makes a bundle current
 * and publishes it on `changes` only when it differs from the current one.
 */
const publisher = (initial: string) =>
  Effect.map(SubscriptionRef.make(initial), (ref) => ({
    offer: (pem: string) => SubscriptionRef.update(ref, (old) => (old === pem ? old : pem)),
    bundle: CaBundle.of({
      current: SubscriptionRef.get(ref),
      // `update` publishes even an unchanged value: drop repeats first (the current value included),
      // then the current value itself, so a rewrite of the current bundle is never a change.
      changes: SubscriptionRef.changes(ref).pipe(Stream.changes, Stream.drop(1))
    })
  }))

/** Test hooks of `layerMemory`. */
export interface CaBundleMemoryShape {
  /**
   * Validates `pem` as `layerFile` does a new file content: valid and different, it becomes current
   * and is published; invalid, it fails with the validation error and the current bundle stays.
   */
  readonly set: (pem: string) => Effect.Effect<void, CryptoError>
}

export class CaBundleMemory extends Context.Service<CaBundleMemory, CaBundleMemoryShape>()(
  "csi-driver-spiffe/layers/CaBundle/CaBundleMemory"
) {}

/** The memory twin of `layerFile`: starts from `initial` (validated, as the file is at start-up); `CaBundleMemory.set` changes it. */
export const layerMemory = (initial: string): Layer.Layer<CaBundle | CaBundleMemory, CryptoError, Crypto> =>
  Layer.effectContext(
    Effect.gen(function*() {
      const crypto = yield* Crypto
      const validate = (pem: string) =>
        crypto.validateBundle(pem).pipe(Effect.mapError((e) => new CryptoError({ operation: "validate CA bundle", detail: e.detail })))
      yield* validate(initial)
      const published = yield* publisher(initial)
      return Context.make(CaBundle, published.bundle).pipe(
        Context.add(CaBundleMemory, CaBundleMemory.of({ set: (pem) => validate(pem).pipe(Effect.andThen(published.offer(pem))) }))
      )
    })
  )

/** Bundle files change in bursts (a symlink swap is several events); 100 ms joins one burst. */
export const COALESCE = "100 millis"

export const layerFor = (
  config: { readonly sourceCaBundle: string | undefined }
): Layer.Layer<CaBundle, CryptoError, Crypto | FileSystem.FileSystem> =>
  config.sourceCaBundle === undefined ? layerNone : layerFile(config.sourceCaBundle)

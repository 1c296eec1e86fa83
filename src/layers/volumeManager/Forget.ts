/**
 * Deleting a volume's CertificateRequests in the background, and the bounded wait for it.
 *
 * Owns: the fiber of the layer that deletes a volume's requests, one registration per volume id of
 * the deletion still running (so that a new publish of the id waits for it, and neither resumes a
 * request about to be deleted nor has its own request deleted by it), and how long anyone waits.
 * Does not own: the deletion itself (Issuance.forget), when a volume is forgotten (`Unpublish.ts`,
 * the undo of a first publish in `Publish.ts`).
 */
import { Effect, Fiber, FiberSet, Ref } from "effect"
import type { Option } from "effect"
import { Issuance } from "../../services/Issuance.ts"

/**
 * How long an unpublish waits for the volume's CertificateRequests to be deleted. A healthy API
 * server answers in milliseconds; past this the deletion goes on in the background (and the Pod's
 * garbage collection removes them through their ownerReference anyway), so a slow API server never
 * holds an unpublish near the kubelet's 2-minute deadline.
 */
export const FORGET_WAIT = "5 seconds"

type Deletion = Fiber.Fiber<unknown, unknown>

export const make = Effect.gen(function*() {
  const issuance = yield* Issuance
  const background = yield* FiberSet.make()
  const running = yield* Ref.make<ReadonlyMap<string, Deletion>>(new Map())

  const unregister = (volumeId: string, self: Deletion) =>
    Ref.update(running, (m) => {
      if (m.get(volumeId) !== self) return m
      const next = new Map(m)
      next.delete(volumeId)
      return next
    })

  /**
   * Deletes the volume's requests in a fiber of the layer. The fiber registers itself as its first
   * step (FiberSet starts it at once) and leaves the registry as it ends, so while it is registered
   * it has not finished.
   */
  const inBackground = (volumeId: string, namespace: string) =>
    FiberSet.run(
      background,
      Effect.withFiber((self) =>
        Ref.update(running, (m) => new Map(m).set(volumeId, self)).pipe(
          Effect.andThen(issuance.forget(volumeId, namespace)),
          Effect.ensuring(unregister(volumeId, self))
        )
      )
    )

  /** Waits for one deletion, at most FORGET_WAIT; None when it is still running then. */
  const awaitBounded = (deletion: Fiber.Fiber<unknown, unknown>): Effect.Effect<Option.Option<unknown>> =>
    Fiber.await(deletion).pipe(Effect.timeoutOption(FORGET_WAIT))

  /**
   * Waits for the volume's running deletion, if one runs, at most FORGET_WAIT. True when one ran and
   * finished (another may have started since: look again); false when none ran or it is slow.
   */
  const awaitRunning = (volumeId: string) =>
    Effect.flatMap(Ref.get(running), (m) => {
      const deletion = m.get(volumeId)
      return deletion === undefined ? Effect.succeed(false) : Effect.map(awaitBounded(deletion), (done) => done._tag === "Some")
    })

  return { inBackground, awaitBounded, awaitRunning }
})

export type Forgets = Effect.Success<typeof make>

/**
 * The state of one memory API server (`../Memory.ts`): objects per kind, the global
 * resourceVersion, the watch history, the record of `create` calls and the injected failures,
 * all in one `Ref`, and the `PubSub` every committed change is fanned out through.
 *
 * Owns: committing a write (a fresh resourceVersion, the object stored or removed, the change
 * appended to the history and published) as one step, so watchers see changes in resourceVersion
 * order and a `create` is recorded before anyone woken by its change looks.
 * Does not own: what a verb checks before writing (`Handlers.ts`).
 */
import { Chunk, Effect, PubSub, Ref, Semaphore } from "effect"
import type { Redacted } from "effect"
import type { KubeError, KubeErrorReason } from "../../../services/KubeClient.ts"
import { kubeError } from "../Errors.ts"
import type { Verb } from "../Errors.ts"
import type { Selector } from "../Selectors.ts"
import { metaOf, objectKey, selectable } from "./Objects.ts"
import type { Change, ChangeType, Json, Message } from "./Objects.ts"

/** One `create` call as the store saw it. */
export interface Creation {
  /** `<plural>.<group>`, e.g. `certificaterequests.cert-manager.io`. */
  readonly resource: string
  readonly namespace: string
  readonly name: string
  /** The token passed in `CallOptions`; undefined when the client's own identity was used. */
  readonly bearerToken: Redacted.Redacted<string> | undefined
}

export interface State {
  /** kind key → `<namespace>/<name>` → stored object; replaced, never mutated. */
  readonly objects: ReadonlyMap<string, ReadonlyMap<string, Json>>
  readonly history: Chunk.Chunk<Change>
  readonly creations: Chunk.Chunk<Creation>
  readonly failures: ReadonlyMap<Verb, ReadonlyArray<KubeErrorReason>>
  /** The global resourceVersion: the number of commits so far. */
  readonly counter: number
  /** A watch from before this resourceVersion fails with Gone (`expireHistory`). */
  readonly compactedThrough: number
}

const initial: State = {
  objects: new Map(),
  history: Chunk.empty(),
  creations: Chunk.empty(),
  failures: new Map(),
  counter: 0,
  compactedThrough: 0
}

const noObjects: ReadonlyMap<string, Json> = new Map()

export const objectsOf = (s: State, kind: string): ReadonlyMap<string, Json> => s.objects.get(kind) ?? noObjects

export interface Store {
  readonly pubsub: PubSub.PubSub<Message>
  readonly state: Effect.Effect<State>
  /** The stored object, or undefined. */
  readonly lookup: (kind: string, namespace: string, name: string) => Effect.Effect<Json | undefined>
  /** The kind's objects matching `selector`, ordered by namespace then name. */
  readonly sorted: (kind: string, selector: Selector) => Effect.Effect<ReadonlyArray<Json>>
  /** Stores (or removes) an object under a fresh resourceVersion and publishes the change, atomically. */
  readonly commit: (
    kind: string,
    type: ChangeType,
    object: Json,
    previous: Json | undefined,
    creation?: Creation
  ) => Effect.Effect<Json>
  /** Fails with the next injected reason for `verb`, if any. */
  readonly injected: (verb: Verb) => Effect.Effect<void, KubeError>
  readonly failNext: (verb: Verb, reason: KubeErrorReason, times: number) => Effect.Effect<void>
  readonly expireHistory: Effect.Effect<void>
}

export const makeStore: Effect.Effect<Store> = Effect.gen(function*() {
  const pubsub = yield* PubSub.unbounded<Message>()
  const ref = yield* Ref.make(initial)
  const state = Ref.get(ref)

  // One commit at a time, each one's write and publish not interruptible apart: the PubSub carries
  // changes in resourceVersion order (watches drop anything not newer than what they last saw), and
  // a subscriber woken by a change already reads the state that includes it.
  const serial = yield* Semaphore.make(1)
  const commit: Store["commit"] = (kind, type, object, previous, creation) =>
    Ref.modify(ref, (s): readonly [Change, State] => {
      const rv = s.counter + 1
      const stored: Json = { ...object, metadata: { ...metaOf(object), resourceVersion: String(rv) } }
      const meta = selectable(stored)
      const key = objectKey(meta.namespace, meta.name)
      const kindObjects = new Map(objectsOf(s, kind))
      if (type === "DELETED") kindObjects.delete(key)
      else kindObjects.set(key, stored)
      const change: Change = { rv, kind, type, object: stored, previous }
      return [change, {
        ...s,
        objects: new Map(s.objects).set(kind, kindObjects),
        history: Chunk.append(s.history, change),
        creations: creation === undefined ? s.creations : Chunk.append(s.creations, creation),
        counter: rv
      }]
    }).pipe(
      Effect.tap((change) => PubSub.publish(pubsub, { _tag: "Change", change })),
      Effect.map((change) => change.object),
      Effect.uninterruptible,
      serial.withPermits(1)
    )

  const injected = (verb: Verb): Effect.Effect<void, KubeError> =>
    Ref.modify(ref, (s): readonly [KubeErrorReason | undefined, State] => {
      const [reason, ...rest] = s.failures.get(verb) ?? []
      return reason === undefined ? [undefined, s] : [reason, { ...s, failures: new Map(s.failures).set(verb, rest) }]
    }).pipe(Effect.flatMap((reason) => reason === undefined ? Effect.void : Effect.fail(kubeError(verb, reason, "injected failure"))))

  return {
    pubsub,
    state,
    lookup: (kind, namespace, name) => Effect.map(state, (s) => objectsOf(s, kind).get(objectKey(namespace, name))),
    sorted: (kind, selector) =>
      Effect.map(state, (s) =>
        [...objectsOf(s, kind).entries()]
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([, o]) => o)
          .filter((o) => selector(selectable(o)))
      ),
    commit,
    injected,
    failNext: (verb, reason, times) =>
      Ref.update(ref, (s) => ({
        ...s,
        failures: new Map(s.failures).set(verb, [...(s.failures.get(verb) ?? []), ...Array.from({ length: times }, () => reason)])
      })),
    expireHistory: Ref.update(ref, (s) => ({ ...s, history: Chunk.empty(), compactedThrough: s.counter }))
  }
})

/**
 * The Mounter memory twin: a recorded mount table keyed by normalised mount point, exposed as
 * `MounterMemory` for assertions. It has no files, so a target is a mount point or missing; mounting
 * onto a mount point fails loudly here (Linux would stack silently), which catches driver bugs.
 */
import { Context, Effect, Layer, Ref } from "effect"
import * as nodePath from "node:path"
import { Mounter, MountError, type MounterShape } from "../../services/Mounter.ts"
import { validateMode } from "./Modes.ts"

/** A mount in the memory table. */
export type MountRecord =
  | { readonly _tag: "Tmpfs"; readonly mode: number }
  | { readonly _tag: "Bind"; readonly source: string; readonly readOnly: true }

/** The memory mounter's table, keyed by normalised mount point, exposed for assertions. */
export class MounterMemory extends Context.Service<MounterMemory, {
  readonly table: Ref.Ref<ReadonlyMap<string, MountRecord>>
}>()("csi-driver-spiffe/layers/Mounter/MounterMemory") {}

const normalise = (path: string): string => nodePath.posix.resolve("/", path)

const layerMemoryState: Layer.Layer<MounterMemory> = Layer.effect(
  MounterMemory,
  Effect.map(Ref.make<ReadonlyMap<string, MountRecord>>(new Map()), (table) => MounterMemory.of({ table }))
)

const layerMemoryMounter: Layer.Layer<Mounter, never, MounterMemory> = Layer.effect(
  Mounter,
  Effect.gen(function*() {
    const { table } = yield* MounterMemory

    /** Adds a mount; mounting onto a mount point is a driver bug here (Linux would stack silently). */
    const add = (operation: string, path: string, record: MountRecord) =>
      Effect.flatMap(
        Ref.modify(table, (map) => {
          const key = normalise(path)
          if (map.has(key)) return [false, map] as const
          return [true, new Map(map).set(key, record) as ReadonlyMap<string, MountRecord>] as const
        }),
        (added) =>
          added ? Effect.void : Effect.fail(new MountError({ operation, path, detail: "already a mount point" }))
      )

    return Mounter.of({
      // The memory table has no files: a target is a mount point or missing.
      inspectTarget: Effect.fn("Mounter.inspectTarget")(function*(_root: string, target: string) {
        return (yield* Ref.get(table)).has(normalise(target)) ? { _tag: "MountPoint" } as const : { _tag: "Missing" } as const
      }),
      isMountPoint: Effect.fn("Mounter.isMountPoint")(function*(path: string) {
        return (yield* Ref.get(table)).has(normalise(path))
      }),
      mountTmpfs: Effect.fn("Mounter.mountTmpfs")(function*(path: string, options: { readonly mode: number }) {
        yield* validateMode(path, options.mode)
        yield* add("mountTmpfs", path, { _tag: "Tmpfs", mode: options.mode })
      }),
      bindReadOnly: Effect.fn("Mounter.bindReadOnly")(function*(source: string, target: string) {
        if (source.length === 0 || normalise(source) === normalise(target)) {
          return yield* new MountError({ operation: "bindReadOnly", path: target, detail: "source must be another directory" })
        }
        yield* add("bindReadOnly", target, { _tag: "Bind", source, readOnly: true })
      }),
      unmount: Effect.fn("Mounter.unmount")(function*(path: string) {
        yield* Ref.update(table, (map) => {
          const next = new Map(map)
          next.delete(normalise(path))
          return next
        })
      })
    } satisfies MounterShape)
  })
)

/** A recorded mount table; `MounterMemory` is exposed alongside for assertions. */
export const layerMemory: Layer.Layer<Mounter | MounterMemory> = layerMemoryMounter.pipe(
  Layer.provideMerge(layerMemoryState)
)

/**
 * What a starting driver does before it answers: the driver's tmpfs, then every stored volume.
 *
 * Owns: mounting the tmpfs (reusing the one a previous driver mounted), dropping a stored volume
 * whose first issuance never finished (the kubelet retries its publish), and resuming every volume
 * that has a certificate: its state, its socket serving the files as they are, its renewal fiber.
 * The pod's token is not stored, so a resumed volume renews without one until its next republish.
 * Does not own: bringing the CA files up to date (`Files.ts`, run by the layer right after), the
 * renewal loop (`Renewal.ts`), the socket (`Socket.ts`).
 */
import { Effect } from "effect"
import { DriverConfig } from "../../services/DriverConfig.ts"
import { Mounter } from "../../services/Mounter.ts"
import { VolumeStore } from "../../services/VolumeStore.ts"
import type { Parts } from "./Parts.ts"

/** The driver's tmpfs is private to root. */
const TMPFS_MODE = 0o700

export const resumeStored = ({ files, renewals, sockets, volumes }: Pick<Parts, "volumes" | "files" | "sockets" | "renewals">) =>
  Effect.gen(function*() {
    const config = yield* DriverConfig
    const store = yield* VolumeStore
    const mounter = yield* Mounter
    if (!(yield* mounter.isMountPoint(store.root))) yield* mounter.mountTmpfs(store.root, { mode: TMPFS_MODE })
    for (const meta of yield* store.list) {
      if (meta.nextIssuanceAt === undefined) {
        yield* store.remove(meta.volumeId)
        continue
      }
      const state = yield* volumes.resume(meta)
      // The socket serves the volume's files as they are (the CA refresh that follows brings the CA
      // up to date); a socket that cannot be opened is logged and retried by the volume's next republish.
      if (meta.workloadApiSocket !== undefined) {
        yield* Effect.gen(function*() {
          const issued = yield* files.readIssued(meta.volumeId)
          if (issued !== undefined) {
            yield* files.setSvid(state, files.svidOf(meta, issued.cert, issued.key, yield* store.readFile(meta.volumeId, config.fileNames.ca)))
          }
          yield* sockets.open(state)
        }).pipe(Effect.catch((e) => Effect.logWarning("Workload API socket not resumed", { volume: meta.volumeId, error: e.message })))
      }
      yield* renewals.start(state)
    }
  })

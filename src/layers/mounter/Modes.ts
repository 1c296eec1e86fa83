/**
 * The tmpfs root mode check both Mounter layers make before mounting, so they refuse the same modes.
 */
import { Effect } from "effect"
import { MountError } from "../../services/Mounter.ts"

/** tmpfs root mode range: permission bits plus set-gid/sticky; nothing else is a mode. */
const MAX_MODE = 0o7777

export const validateMode = (path: string, mode: number): Effect.Effect<void, MountError> =>
  Number.isInteger(mode) && mode >= 0 && mode <= MAX_MODE
    ? Effect.void
    : Effect.fail(new MountError({ operation: "mountTmpfs", path, detail: "mode must be an integer in 0..0o7777" }))

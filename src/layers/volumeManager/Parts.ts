/**
 * The pieces the volume manager's operations (`Publish.ts`, `Unpublish.ts`, `Recovery.ts`) are
 * built from, as the layer makes them once. A type only: owns no state and no behaviour.
 */
import type { Files } from "./Files.ts"
import type { Forgets } from "./Forget.ts"
import type { Issue } from "./Issue.ts"
import type { Renewals } from "./Renewal.ts"
import type { Sockets } from "./Socket.ts"
import type { Volumes } from "./State.ts"

export interface Parts {
  readonly volumes: Volumes
  readonly files: Files
  readonly sockets: Sockets
  readonly forgets: Forgets
  readonly issue: Issue
  readonly renewals: Renewals
}

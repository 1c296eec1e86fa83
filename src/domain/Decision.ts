/**
 * The approver's verdict on one CertificateRequest, as a value.
 *
 * Owns: the three outcomes. `Approved` and `Denied` are final and written to the request's status;
 * `Unprocessed` means "not ours to decide" (e.g. no identity annotation and auto-approve off) and
 * leaves the request untouched. "Could not decide right now" is not a decision: it is an error in the
 * caller's error channel, retried later.
 * Does not own: how a decision is reached (`domain/SpiffeRules.ts`) or written (`approver/Reconcile.ts`).
 */
import { Data } from "effect"

export type Decision = Data.TaggedEnum<{
  Approved: {}
  /** `reasons` are caller-actionable sentences with a field path, in a stable order; never empty. */
  Denied: { readonly reasons: ReadonlyArray<string> }
  Unprocessed: { readonly why: string }
}>

export const Decision = Data.taggedEnum<Decision>()

export const { Approved, Denied, Unprocessed } = Decision

/** Approved when there is nothing to object to, Denied with every reason otherwise. */
export const fromReasons = (reasons: ReadonlyArray<string>): Decision =>
  reasons.length === 0 ? Approved() : Denied({ reasons })

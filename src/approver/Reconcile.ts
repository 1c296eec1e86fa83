/**
 * One level-based reconcile of one CertificateRequest key.
 *
 * Owns: re-reading the object, skipping what is gone or already decided, asking the Evaluator, the
 * single status write (the conditions cert-manager expects, through the `status` subresource with
 * the resourceVersion we read), retrying the whole read-decide-write on a write Conflict, telling an
 * admission webhook's refusal of that write apart from API faults (`StatusRefusedError`), and the
 * Warning Events on a denial and on such a refusal.
 * Does not own: the decision rules (Evaluator), which keys to reconcile and when (Controller).
 *
 * Events carry only the denial reasons, never the CSR or internal errors, and are best effort: a
 * failed Event write is logged and does not undo or repeat the decision.
 */
import { Clock, Effect, Schema } from "effect"
import * as CR from "../domain/CertificateRequest.ts"
import type { Decision } from "../domain/Decision.ts"
import { CertificateRequests, rfc3339 } from "../domain/KubeObjects.ts"
import * as Schedules from "../domain/Schedules.ts"
import { Evaluator } from "../services/Evaluator.ts"
import { EventRecorder } from "../services/EventRecorder.ts"
import { KubeClient } from "../services/KubeClient.ts"
import type { KubeError } from "../services/KubeClient.ts"

/**
 * The status write was refused by an admission webhook (the API server's "admission webhook … denied
 * the request"): retrying soon cannot help, the configuration must change first.
 */
export class StatusRefusedError extends Schema.TaggedError<StatusRefusedError>()("StatusRefusedError", {
  namespace: Schema.String,
  name: Schema.String,
  uid: Schema.optional(Schema.String),
  detail: Schema.String
}) {
  override get message(): string {
    return `status write refused by admission: ${this.detail}`
  }
}

/** The API server's wording for a webhook's refusal (k8s.io/apiserver admission webhook errors). */
export const isAdmissionRefusal = (e: KubeError): boolean => e.reason !== "Conflict" && /admission webhook .*denied the request/.test(e.detail)

/** A CertificateRequest's identity in the work queue: `<namespace>/<name>`. */
export interface Key {
  readonly namespace: string
  readonly name: string
}

export const keyString = (key: Key): string => `${key.namespace}/${key.name}`

export const parseKey = (key: string): Key => {
  const slash = key.indexOf("/")
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) }
}

export type ReconcileResult =
  | { readonly _tag: "Approved" }
  | { readonly _tag: "Denied"; readonly reasons: ReadonlyArray<string> }
  /** Nothing written: gone, already decided or finished, or not ours (`Unprocessed`). */
  | { readonly _tag: "Skipped"; readonly why: string }

/** Why a request needs no decision from us, or undefined when it does. */
export const alreadySettled = (cr: CR.CertificateRequest): string | undefined => {
  if (CR.condition(cr, "Approved")?.status === "True") return "already approved"
  if (CR.condition(cr, "Denied")?.status === "True") return "already denied"
  const ready = CR.condition(cr, "Ready")
  if (ready?.status === "True") return "already issued"
  if (ready?.reason === "Failed") return "already failed"
  return undefined
}

const condition = (decision: "Approved" | "Denied", message: string, now: number): CR.Condition => ({
  type: decision,
  status: "True",
  reason: CR.APPROVER_REASON,
  message,
  lastTransitionTime: rfc3339(now)
})

export const deniedMessage = (reasons: ReadonlyArray<string>): string => `Denied request: ${reasons.join("; ")}`

const emitDenied = Effect.fn("Reconcile.emitDenied")(function*(cr: CR.CertificateRequest, reasons: ReadonlyArray<string>) {
  const events = yield* EventRecorder
  const { namespace, name } = cr.metadata
  yield* events.record({
    involvedObject: {
      apiVersion: CR.API_VERSION,
      kind: "CertificateRequest",
      name,
      namespace,
      ...(cr.metadata.uid === undefined ? {} : { uid: cr.metadata.uid }),
      ...(cr.metadata.resourceVersion === undefined ? {} : { resourceVersion: cr.metadata.resourceVersion })
    },
    type: "Warning",
    reason: "Denied",
    message: reasons.join("; ")
  })
})

/**
 * The Warning Event for a refused status write, recorded once per request by the controller: the
 * request's owner sees why it is neither approved nor denied.
 */
export const emitRefused = Effect.fn("Reconcile.emitRefused")(function*(e: StatusRefusedError, retryIn: string) {
  const events = yield* EventRecorder
  yield* events.record({
    involvedObject: {
      apiVersion: CR.API_VERSION,
      kind: "CertificateRequest",
      name: e.name,
      namespace: e.namespace,
      ...(e.uid === undefined ? {} : { uid: e.uid })
    },
    type: "Warning",
    reason: "ApprovalRefused",
    message: `the API server refused to record the approver's decision (check the issuerRef and the approver's permission to approve that signer); retrying every ${retryIn}: ${e.detail}`
  })
})

/** One read-decide-write pass; fails with the write's KubeError (Conflict included) or its refusal. */
const attempt = Effect.fn("Reconcile.attempt")(function*(key: Key): Effect.fn.Return<
  { readonly result: ReconcileResult; readonly cr: CR.CertificateRequest | undefined },
  KubeError | StatusRefusedError,
  KubeClient | Evaluator | EventRecorder
> {
  const kube = yield* KubeClient
  const evaluator = yield* Evaluator
  const cr = yield* kube.get(CertificateRequests, key.namespace, key.name)
  if (cr === undefined) return { result: { _tag: "Skipped", why: "not found" }, cr }
  const settled = alreadySettled(cr)
  if (settled !== undefined) return { result: { _tag: "Skipped", why: settled }, cr }
  const decision: Decision = yield* evaluator.evaluate(cr)
  if (decision._tag === "Unprocessed") return { result: { _tag: "Skipped", why: decision.why }, cr }
  const now = yield* Clock.currentTimeMillis
  const added = decision._tag === "Approved"
    ? condition("Approved", "Approved request", now)
    : condition("Denied", deniedMessage(decision.reasons), now)
  yield* kube.replaceStatus(CertificateRequests, key.namespace, key.name, {
    apiVersion: CR.API_VERSION,
    kind: "CertificateRequest",
    metadata: cr.metadata,
    spec: cr.spec,
    status: { ...cr.status, conditions: [...(cr.status?.conditions ?? []), added] }
  }).pipe(
    Effect.mapError((e) =>
      isAdmissionRefusal(e)
        ? new StatusRefusedError({ namespace: key.namespace, name: key.name, uid: cr.metadata.uid, detail: e.detail })
        : e
    )
  )
  return {
    result: decision._tag === "Approved" ? { _tag: "Approved" } : { _tag: "Denied", reasons: decision.reasons },
    cr
  }
})

/**
 * Reconciles `key`. Fails with a KubeError the caller should retry later (the read failed, or the
 * write failed with something other than a Conflict that outlived the retries), or with a
 * StatusRefusedError the caller should retry much later.
 */
export const reconcile = Effect.fn("Reconcile.reconcile")(function*(key: Key): Effect.fn.Return<
  ReconcileResult,
  KubeError | StatusRefusedError,
  KubeClient | Evaluator | EventRecorder
> {
  const done = yield* attempt(key).pipe(
    Effect.retry({ schedule: Schedules.conflictRetry, while: (e: KubeError | StatusRefusedError) => e._tag === "KubeError" && e.reason === "Conflict" })
  )
  if (done.result._tag === "Denied" && done.cr !== undefined) yield* emitDenied(done.cr, done.result.reasons)
  return done.result
})

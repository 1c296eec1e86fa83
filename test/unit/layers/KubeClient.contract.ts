/**
 * The KubeClient contract: what callers rely on from the Kubernetes API, run by
 * `kube/Memory.test.ts` against the memory twin and by `test/e2e/kube-client.test.ts` against the
 * live client on a real etcd + kube-apiserver (the real server is the truth; the twin follows it).
 * Not a test file itself (no `.test.`), so it runs only through them.
 *
 * Kinds, all served by kube-apiserver itself (no controller, webhook or CRD involved, so nothing
 * but the test writes them): ConfigMaps and Leases (namespaced, no status), CertificateSigningRequests
 * (cluster-scoped, with a status subresource, and `spec.username` set by the server from the caller's
 * credentials) and ClusterTrustBundles (cluster-scoped).
 * Every wait ends on a signal (the watch stream, a Deferred), bounded by WAIT, never a sleep.
 * Watch assertions drop BOOKMARK events: a real server may send them at any time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Schema, Stream } from "effect"
import type { Redacted, Scope } from "effect"
import { randomUUID } from "node:crypto"
import { ClusterTrustBundles, ConfigMaps, Leases } from "../../../src/domain/KubeObjects.ts"
import type { ConfigMap, Resource } from "../../../src/domain/KubeObjects.ts"
import type { KubeClientShape, KubeError, WatchEvent } from "../../../src/services/KubeClient.ts"
import { csrRequest } from "../../support/csr.ts"
import { makeTestCa } from "../../support/TestSigner.ts"

/** Bound of every wait on a watch: far above a loopback API server's latency, far below the test timeout. */
export const WAIT = "30 seconds"

/** One KubeClient under test, with a fresh pair of namespaces for one case. */
export interface KubeSubject {
  readonly kube: KubeClientShape
  /** Two namespaces that exist and hold nothing yet. */
  readonly namespace: string
  readonly otherNamespace: string
  /** Another identity's bearer token, allowed to create CertificateSigningRequests. */
  readonly token: Redacted.Redacted<string>
  /** Whose credentials created this CertificateSigningRequest: `token` above, or the client's `own`. */
  readonly createdWith: (name: string) => Effect.Effect<"token" | "own" | string>
}

const Condition = Schema.Struct({
  type: Schema.String,
  status: Schema.String,
  reason: Schema.optional(Schema.String),
  message: Schema.optional(Schema.String)
})

/** certificates.k8s.io/v1 CertificateSigningRequest, the fields this suite reads (the server adds condition timestamps). */
export const CertificateSigningRequest = Schema.Struct({
  metadata: Schema.Struct({
    name: Schema.String,
    uid: Schema.optional(Schema.String),
    resourceVersion: Schema.optional(Schema.String),
    labels: Schema.optional(Schema.Record(Schema.String, Schema.String))
  }),
  spec: Schema.Struct({
    request: Schema.String,
    signerName: Schema.String,
    usages: Schema.optional(Schema.Array(Schema.String)),
    username: Schema.optional(Schema.String)
  }),
  status: Schema.optional(Schema.Struct({ conditions: Schema.optional(Schema.Array(Condition)) }))
})

export const CertificateSigningRequests: Resource<typeof CertificateSigningRequest.Type> = {
  group: "certificates.k8s.io",
  version: "v1",
  kind: "CertificateSigningRequest",
  plural: "certificatesigningrequests",
  schema: CertificateSigningRequest,
  clusterScoped: true
}

const configMap = (name: string, namespace: string, labels: Record<string, string> = {}, data: Record<string, string> = {}) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name, namespace, labels },
  data
})

/** A request for a signer no controller serves, so only the test writes it. */
const signingRequest = (name: string, request: string) => ({
  apiVersion: "certificates.k8s.io/v1",
  kind: "CertificateSigningRequest",
  metadata: { name },
  spec: { request, signerName: "contract.example.com/contract", usages: ["digital signature", "client auth"] }
})

const clusterTrustBundle = (name: string, labels: Record<string, string>, trustBundle: string) => ({
  apiVersion: "certificates.k8s.io/v1",
  kind: "ClusterTrustBundle",
  metadata: { name, labels },
  spec: { trustBundle }
})

const RFC3339_SECONDS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/

const rvOf = (o: { readonly metadata: { readonly resourceVersion?: string | undefined } }): string => {
  const rv = o.metadata.resourceVersion
  assert.isString(rv)
  assert.notStrictEqual(rv, "")
  return rv!
}

/** `<TYPE> <name>` of each event, the shape most assertions compare. */
const summary = <A extends { readonly metadata: { readonly name: string } }>(events: ReadonlyArray<WatchEvent<A>>) =>
  events.map((e) => (e.type === "BOOKMARK" ? "BOOKMARK" : `${e.type} ${e.object.metadata.name}`))

type ObjectEvent<A> = Exclude<WatchEvent<A>, { readonly type: "BOOKMARK" }>

/** The first `n` object events of `stream` (bookmarks dropped), failing after WAIT. */
const firstEvents = <A>(stream: Stream.Stream<WatchEvent<A>, KubeError>, n: number) =>
  stream.pipe(
    Stream.filter((e): e is ObjectEvent<A> => e.type !== "BOOKMARK"),
    Stream.take(n),
    Stream.runCollect,
    Effect.timeoutOrElse({ duration: WAIT, orElse: () => Effect.die(new Error(`timed out waiting for ${n} watch events`)) })
  )

const failure = <A>(effect: Effect.Effect<A, KubeError>) => Effect.flip(effect)

/** What each case gets: the subject, a unique id (for names and labels of this case only) and a signed PKCS#10 request. */
const fixtures = (subject: KubeSubject) =>
  Effect.gen(function*() {
    const id = randomUUID().slice(0, 8)
    const request = yield* Effect.promise(() => csrRequest("spiffe://contract.test/ns/contract/sa/app"))
    return { ...subject, id, request }
  })

export const contractSuite = (name: string, subject: Effect.Effect<KubeSubject, unknown, Scope.Scope>) =>
  describe(`KubeClient contract: ${name}`, () => {
    const test = (title: string, body: (s: Effect.Success<ReturnType<typeof fixtures>>) => Effect.Effect<void, unknown, Scope.Scope>) =>
      it.live(title, () => Effect.scoped(Effect.flatMap(Effect.flatMap(subject, fixtures), body)))

    test("create sets uid, creationTimestamp and resourceVersion; get reads the same object; a missing one is undefined", (s) =>
      Effect.gen(function*() {
        const created = yield* s.kube.create(ConfigMaps, s.namespace, configMap("a", s.namespace, { app: "x" }, { key: "value" }))
        assert.strictEqual(created.metadata.name, "a")
        assert.strictEqual(created.metadata.namespace, s.namespace)
        assert.deepStrictEqual(created.metadata.labels, { app: "x" })
        assert.deepStrictEqual(created.data, { key: "value" })
        assert.isString(created.metadata.uid)
        assert.notStrictEqual(created.metadata.uid, "")
        assert.match(created.metadata.creationTimestamp ?? "", RFC3339_SECONDS)
        rvOf(created)
        assert.deepStrictEqual(yield* s.kube.get(ConfigMaps, s.namespace, "a"), created)
        assert.isUndefined(yield* s.kube.get(ConfigMaps, s.namespace, "missing"))
        assert.isUndefined(yield* s.kube.get(ConfigMaps, s.otherNamespace, "a"))
        const second = yield* s.kube.create(ConfigMaps, s.namespace, configMap("b", s.namespace))
        assert.notStrictEqual(second.metadata.uid, created.metadata.uid)
        assert.notStrictEqual(rvOf(second), rvOf(created))
      }))

    test("a second create of a name fails with AlreadyExists (409) and leaves the first object; another namespace is another object", (s) =>
      Effect.gen(function*() {
        const first = yield* s.kube.create(ConfigMaps, s.namespace, configMap("dup", s.namespace, {}, { n: "1" }))
        const dup = yield* failure(s.kube.create(ConfigMaps, s.namespace, configMap("dup", s.namespace, {}, { n: "2" })))
        assert.strictEqual(dup.reason, "AlreadyExists")
        assert.strictEqual(dup.status, 409)
        assert.strictEqual(dup.operation, "KubeClient.create")
        assert.deepStrictEqual(yield* s.kube.get(ConfigMaps, s.namespace, "dup"), first)
        const elsewhere = yield* s.kube.create(ConfigMaps, s.otherNamespace, configMap("dup", s.otherNamespace, {}, { n: "3" }))
        assert.strictEqual(elsewhere.metadata.namespace, s.otherNamespace)
      }))

    test("generateName: the server completes a unique name; neither name nor generateName is Invalid (422)", (s) =>
      Effect.gen(function*() {
        const body = { apiVersion: "v1", kind: "ConfigMap", metadata: { generateName: "gen-", namespace: s.namespace } }
        const one = yield* s.kube.create(ConfigMaps, s.namespace, body)
        const two = yield* s.kube.create(ConfigMaps, s.namespace, body)
        assert.isTrue(one.metadata.name.startsWith("gen-") && one.metadata.name.length > "gen-".length, one.metadata.name)
        assert.isTrue(two.metadata.name.startsWith("gen-"), two.metadata.name)
        assert.notStrictEqual(one.metadata.name, two.metadata.name)
        assert.deepStrictEqual(yield* s.kube.get(ConfigMaps, s.namespace, one.metadata.name), one)
        const nameless = yield* failure(s.kube.create(ConfigMaps, s.namespace, { apiVersion: "v1", kind: "ConfigMap", metadata: {} }))
        assert.strictEqual(nameless.reason, "Invalid")
        assert.strictEqual(nameless.status, 422)
      }))

    test("create into a namespace other than the body's is Invalid (400)", (s) =>
      Effect.gen(function*() {
        const error = yield* failure(s.kube.create(ConfigMaps, s.namespace, configMap("moved", s.otherNamespace)))
        assert.strictEqual(error.reason, "Invalid")
        assert.strictEqual(error.status, 400)
        assert.isUndefined(yield* s.kube.get(ConfigMaps, s.namespace, "moved"))
        assert.isUndefined(yield* s.kube.get(ConfigMaps, s.otherNamespace, "moved"))
      }))

    test("list: by namespace and label selector (=, !=, exists, !exists), ordered by namespace then name, with a resourceVersion", (s) =>
      Effect.gen(function*() {
        const run = { run: s.id }
        yield* s.kube.create(ConfigMaps, s.namespace, configMap("c", s.namespace, { ...run, tier: "web" }))
        yield* s.kube.create(ConfigMaps, s.namespace, configMap("a", s.namespace, { ...run, tier: "db" }))
        yield* s.kube.create(ConfigMaps, s.namespace, configMap("b", s.namespace, run))
        yield* s.kube.create(ConfigMaps, s.otherNamespace, configMap("a", s.otherNamespace, { ...run, tier: "web" }))
        yield* s.kube.create(ConfigMaps, s.namespace, configMap("unlabelled", s.namespace))
        const names = (items: ReadonlyArray<ConfigMap>) => items.map((c) => `${c.metadata.namespace}/${c.metadata.name}`)
        const inNs = yield* s.kube.list(ConfigMaps, { namespace: s.namespace, labelSelector: `run=${s.id}` })
        assert.deepStrictEqual(names(inNs.items), [`${s.namespace}/a`, `${s.namespace}/b`, `${s.namespace}/c`])
        assert.isString(inNs.resourceVersion)
        assert.notStrictEqual(inNs.resourceVersion, "")
        const everywhere = yield* s.kube.list(ConfigMaps, { labelSelector: `run=${s.id},tier=web` })
        assert.deepStrictEqual(names(everywhere.items), [`${s.namespace}/c`, `${s.otherNamespace}/a`].sort())
        const notWeb = yield* s.kube.list(ConfigMaps, { namespace: s.namespace, labelSelector: `run=${s.id},tier!=web` })
        assert.deepStrictEqual(names(notWeb.items), [`${s.namespace}/a`, `${s.namespace}/b`])
        const tiered = yield* s.kube.list(ConfigMaps, { namespace: s.namespace, labelSelector: `run=${s.id},tier` })
        assert.deepStrictEqual(names(tiered.items), [`${s.namespace}/a`, `${s.namespace}/c`])
        const untiered = yield* s.kube.list(ConfigMaps, { namespace: s.namespace, labelSelector: `run=${s.id},!tier` })
        assert.deepStrictEqual(names(untiered.items), [`${s.namespace}/b`])
        const all = yield* s.kube.list(ConfigMaps, { namespace: s.namespace })
        assert.deepStrictEqual(names(all.items), [`${s.namespace}/a`, `${s.namespace}/b`, `${s.namespace}/c`, `${s.namespace}/unlabelled`])
        const bad = yield* failure(s.kube.list(ConfigMaps, { namespace: s.namespace, labelSelector: "=x" }))
        assert.strictEqual(bad.reason, "Invalid")
        assert.strictEqual(bad.status, 400)
      }))

    test("replace with the current resourceVersion writes a new one; a stale one is Conflict (409); a missing object NotFound (404)", (s) =>
      Effect.gen(function*() {
        const created = yield* s.kube.create(ConfigMaps, s.namespace, configMap("r", s.namespace, {}, { n: "1" }))
        const replaced = yield* s.kube.replace(ConfigMaps, s.namespace, "r", { ...created, data: { n: "2" } })
        assert.deepStrictEqual(replaced.data, { n: "2" })
        assert.strictEqual(replaced.metadata.uid, created.metadata.uid)
        assert.strictEqual(replaced.metadata.creationTimestamp, created.metadata.creationTimestamp)
        assert.notStrictEqual(rvOf(replaced), rvOf(created))
        assert.deepStrictEqual(yield* s.kube.get(ConfigMaps, s.namespace, "r"), replaced)

        const stale = yield* failure(s.kube.replace(ConfigMaps, s.namespace, "r", { ...created, data: { n: "3" } }))
        assert.strictEqual(stale.reason, "Conflict")
        assert.strictEqual(stale.status, 409)
        assert.strictEqual(stale.operation, "KubeClient.replace")
        assert.deepStrictEqual(yield* s.kube.get(ConfigMaps, s.namespace, "r"), replaced)

        const missing = yield* failure(
          s.kube.replace(ConfigMaps, s.namespace, "gone", { ...configMap("gone", s.namespace), metadata: { name: "gone", namespace: s.namespace, resourceVersion: rvOf(replaced) } })
        )
        assert.strictEqual(missing.reason, "NotFound")
        assert.strictEqual(missing.status, 404)

        const renamed = yield* failure(s.kube.replace(ConfigMaps, s.namespace, "r", { ...replaced, metadata: { ...replaced.metadata, name: "other" } }))
        assert.strictEqual(renamed.reason, "Invalid")
        assert.strictEqual(renamed.status, 400)
      }))

    test("a create with a resourceVersion is refused (500); a replace without one updates a ConfigMap unconditionally, is Invalid (422) for a Lease; a missing Lease is created", (s) =>
      Effect.gen(function*() {
        const withRv = yield* failure(
          s.kube.create(ConfigMaps, s.namespace, { ...configMap("rv", s.namespace), metadata: { name: "rv", namespace: s.namespace, resourceVersion: "1" } })
        )
        // kube-apiserver's storage refuses it with a 500, which the live client reads as Unavailable.
        assert.strictEqual(`${withRv.reason} ${withRv.status}`, "Unavailable 500")
        assert.isUndefined(yield* s.kube.get(ConfigMaps, s.namespace, "rv"))

        const cm = yield* s.kube.create(ConfigMaps, s.namespace, configMap("no-rv", s.namespace, {}, { n: "1" }))
        const { resourceVersion: _cm, ...cmMeta } = cm.metadata
        const updated = yield* s.kube.replace(ConfigMaps, s.namespace, "no-rv", { ...cm, metadata: cmMeta, data: { n: "2" } })
        assert.deepStrictEqual(updated.data, { n: "2" })
        assert.notStrictEqual(rvOf(updated), rvOf(cm))

        const lease = yield* s.kube.create(Leases, s.namespace, {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: "no-rv", namespace: s.namespace },
          spec: { holderIdentity: "a" }
        })
        const { resourceVersion: _lease, ...leaseMeta } = lease.metadata
        const refused = yield* failure(s.kube.replace(Leases, s.namespace, "no-rv", { ...lease, metadata: leaseMeta, spec: { holderIdentity: "b" } }))
        assert.strictEqual(`${refused.reason} ${refused.status}`, "Invalid 422")
        assert.deepStrictEqual(yield* s.kube.get(Leases, s.namespace, "no-rv"), lease)

        // A Lease replaced while missing is created (whatever resourceVersion the body carries).
        const recreated = yield* s.kube.replace(Leases, s.namespace, "absent", {
          ...lease,
          metadata: { name: "absent", namespace: s.namespace, resourceVersion: rvOf(lease) }
        })
        assert.strictEqual(recreated.metadata.name, "absent")
        assert.notStrictEqual(recreated.metadata.uid, lease.metadata.uid)
        assert.deepStrictEqual(yield* s.kube.get(Leases, s.namespace, "absent"), recreated)
      }))

    test("delete removes the object; deleting a missing object succeeds", (s) =>
      Effect.gen(function*() {
        yield* s.kube.create(ConfigMaps, s.namespace, configMap("d", s.namespace))
        yield* s.kube.delete(ConfigMaps, s.namespace, "d")
        assert.isUndefined(yield* s.kube.get(ConfigMaps, s.namespace, "d"))
        yield* s.kube.delete(ConfigMaps, s.namespace, "d")
        yield* s.kube.delete(ConfigMaps, s.namespace, "never-was")
      }))

    test("the status subresource: create and replace keep the stored status, replaceStatus writes only status; both check the resourceVersion", (s) =>
      Effect.gen(function*() {
        const name = `contract-${s.id}-status`
        const failed = { type: "Failed", status: "True", reason: "Contract", message: "set on create" }
        const created = yield* s.kube.create(CertificateSigningRequests, s.namespace, {
          ...signingRequest(name, s.request),
          status: { conditions: [failed] }
        })
        assert.isUndefined(created.status?.conditions, "create does not store a status")
        const written = { type: "Failed", status: "True", reason: "Contract", message: "set by replaceStatus" }
        const withStatus = yield* s.kube.replaceStatus(CertificateSigningRequests, "", name, {
          ...created,
          spec: { ...created.spec, usages: ["server auth"] },
          status: { conditions: [written] }
        })
        assert.deepStrictEqual(withStatus.status?.conditions, [written])
        assert.deepStrictEqual(withStatus.spec, created.spec, "the status subresource ignores the spec")
        assert.notStrictEqual(rvOf(withStatus), rvOf(created))

        const relabelled = yield* s.kube.replace(CertificateSigningRequests, "", name, {
          ...withStatus,
          metadata: { ...withStatus.metadata, labels: { changed: "by-replace" } },
          status: { conditions: [] }
        })
        assert.strictEqual(relabelled.metadata.labels?.["changed"], "by-replace")
        assert.deepStrictEqual(relabelled.status?.conditions, [written], "replace keeps the stored status")
        assert.deepStrictEqual(yield* s.kube.get(CertificateSigningRequests, "", name), relabelled)

        const stale = yield* failure(s.kube.replaceStatus(CertificateSigningRequests, "", name, { ...withStatus, status: { conditions: [] } }))
        assert.strictEqual(stale.reason, "Conflict")
        assert.strictEqual(stale.status, 409)
        assert.strictEqual(stale.operation, "KubeClient.replaceStatus")
        const staleReplace = yield* failure(s.kube.replace(CertificateSigningRequests, "", name, withStatus))
        assert.strictEqual(staleReplace.reason, "Conflict")

        const missing = yield* failure(
          s.kube.replaceStatus(CertificateSigningRequests, "", `${name}-absent`, {
            ...signingRequest(`${name}-absent`, s.request),
            metadata: { name: `${name}-absent`, resourceVersion: rvOf(relabelled) }
          })
        )
        assert.strictEqual(missing.reason, "NotFound")
        assert.strictEqual(missing.status, 404)
        yield* s.kube.delete(CertificateSigningRequests, "", name)
      }))

    test("a cluster-scoped kind ignores the namespace argument of every verb", (s) =>
      Effect.gen(function*() {
        const [caA, caB] = yield* Effect.all([makeTestCa("contract-a"), makeTestCa("contract-b")])
        const name = `contract-${s.id}`
        const labels = { run: s.id }
        const created = yield* s.kube.create(ClusterTrustBundles, s.namespace, clusterTrustBundle(name, labels, caA.certPem))
        assert.strictEqual(created.metadata.name, name)
        assert.strictEqual(created.spec.trustBundle.trim(), caA.certPem.trim())
        assert.deepStrictEqual(yield* s.kube.get(ClusterTrustBundles, "", name), created)
        assert.deepStrictEqual(yield* s.kube.get(ClusterTrustBundles, s.otherNamespace, name), created)

        const dup = yield* failure(s.kube.create(ClusterTrustBundles, s.otherNamespace, clusterTrustBundle(name, labels, caB.certPem)))
        assert.strictEqual(dup.reason, "AlreadyExists")
        assert.strictEqual(dup.status, 409)

        const listed = yield* s.kube.list(ClusterTrustBundles, { labelSelector: `run=${s.id}` })
        assert.deepStrictEqual(listed.items.map((b) => b.metadata.name), [name])
        const listedInNs = yield* s.kube.list(ClusterTrustBundles, { namespace: s.namespace, labelSelector: `run=${s.id}` })
        assert.deepStrictEqual(listedInNs.items.map((b) => b.metadata.name), [name])

        const replaced = yield* s.kube.replace(ClusterTrustBundles, s.namespace, name, { ...created, spec: { trustBundle: caB.certPem } })
        assert.strictEqual(replaced.spec.trustBundle.trim(), caB.certPem.trim())
        const stale = yield* failure(s.kube.replace(ClusterTrustBundles, "", name, created))
        assert.strictEqual(stale.reason, "Conflict")

        yield* s.kube.delete(ClusterTrustBundles, s.otherNamespace, name)
        assert.isUndefined(yield* s.kube.get(ClusterTrustBundles, "", name))
        const events = yield* firstEvents(
          s.kube.watch(ClusterTrustBundles, { namespace: s.namespace, resourceVersion: rvOf(created), labelSelector: `run=${s.id}` }),
          2
        )
        assert.deepStrictEqual(summary(events), [`MODIFIED ${name}`, `DELETED ${name}`])
      }))

    test("watch from a list's resourceVersion delivers ADDED, MODIFIED, DELETED in order, each object at its resourceVersion", (s) =>
      Effect.gen(function*() {
        const { resourceVersion } = yield* s.kube.list(ConfigMaps, { namespace: s.namespace })
        const events = yield* Effect.forkScoped(firstEvents(s.kube.watch(ConfigMaps, { namespace: s.namespace, resourceVersion }), 3))
        const created = yield* s.kube.create(ConfigMaps, s.namespace, configMap("w", s.namespace, {}, { n: "1" }))
        const replaced = yield* s.kube.replace(ConfigMaps, s.namespace, "w", { ...created, data: { n: "2" } })
        yield* s.kube.delete(ConfigMaps, s.namespace, "w")
        const got = yield* Fiber.join(events)
        assert.deepStrictEqual(summary(got), ["ADDED w", "MODIFIED w", "DELETED w"])
        const [added, modified, deleted] = got
        assert.deepStrictEqual(added!.object, created)
        assert.deepStrictEqual(modified!.object, replaced)
        assert.deepStrictEqual(deleted!.object.data, { n: "2" })
        assert.notStrictEqual(rvOf(deleted!.object), rvOf(replaced))
      }))

    test("watch from an object's resourceVersion starts after it; other namespaces are not seen", (s) =>
      Effect.gen(function*() {
        const a = yield* s.kube.create(ConfigMaps, s.namespace, configMap("a", s.namespace))
        yield* s.kube.create(ConfigMaps, s.otherNamespace, configMap("elsewhere", s.otherNamespace))
        yield* s.kube.create(ConfigMaps, s.namespace, configMap("b", s.namespace))
        yield* s.kube.replace(ConfigMaps, s.namespace, "a", { ...a, data: { n: "2" } })
        const got = yield* firstEvents(s.kube.watch(ConfigMaps, { namespace: s.namespace, resourceVersion: rvOf(a) }), 2)
        assert.deepStrictEqual(summary(got), ["ADDED b", "MODIFIED a"])
      }))

    test("a watch with a label selector sees an object enter the selection as ADDED and leave it as DELETED", (s) =>
      Effect.gen(function*() {
        const { resourceVersion } = yield* s.kube.list(ConfigMaps, { namespace: s.namespace })
        const x = yield* s.kube.create(ConfigMaps, s.namespace, configMap("x", s.namespace, { run: s.id }))
        const selected = yield* s.kube.replace(ConfigMaps, s.namespace, "x", { ...x, metadata: { ...x.metadata, labels: { run: s.id, picked: "yes" } } })
        const changed = yield* s.kube.replace(ConfigMaps, s.namespace, "x", { ...selected, data: { n: "2" } })
        yield* s.kube.replace(ConfigMaps, s.namespace, "x", { ...changed, metadata: { ...changed.metadata, labels: { run: s.id } } })
        yield* s.kube.create(ConfigMaps, s.namespace, configMap("y", s.namespace, { run: s.id, picked: "yes" }))
        const got = yield* firstEvents(
          s.kube.watch(ConfigMaps, { namespace: s.namespace, resourceVersion, labelSelector: `run=${s.id},picked=yes` }),
          4
        )
        assert.deepStrictEqual(summary(got), ["ADDED x", "MODIFIED x", "DELETED x", "ADDED y"])
        assert.deepStrictEqual(got[0]!.object, selected)
        assert.deepStrictEqual(got[1]!.object, changed)
      }))

    test("a watch the consumer ends (take, or interruption while it waits) is over; the client keeps serving", (s) =>
      Effect.gen(function*() {
        const { resourceVersion } = yield* s.kube.list(ConfigMaps, { namespace: s.namespace })
        const first = yield* Deferred.make<void>()
        const waiting = yield* s.kube.watch(ConfigMaps, { namespace: s.namespace, resourceVersion }).pipe(
          Stream.filter((e) => e.type !== "BOOKMARK"),
          Stream.tap(() => Deferred.succeed(first, undefined)),
          Stream.runDrain,
          Effect.forkScoped
        )
        const a = yield* s.kube.create(ConfigMaps, s.namespace, configMap("a", s.namespace))
        yield* Deferred.await(first).pipe(
          Effect.timeoutOrElse({ duration: WAIT, orElse: () => Effect.die(new Error("the watch saw no event")) })
        )
        yield* Fiber.interrupt(waiting)
        assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(waiting)))

        const taken = yield* firstEvents(s.kube.watch(ConfigMaps, { namespace: s.namespace, resourceVersion }), 1)
        assert.deepStrictEqual(summary(taken), ["ADDED a"])
        yield* s.kube.create(ConfigMaps, s.namespace, configMap("b", s.namespace))
        const resumed = yield* firstEvents(s.kube.watch(ConfigMaps, { namespace: s.namespace, resourceVersion: rvOf(a) }), 1)
        assert.deepStrictEqual(summary(resumed), ["ADDED b"])
      }))

    test("create with a bearer token authenticates as that token, for that call only", (s) =>
      Effect.gen(function*() {
        const [asToken, asOwn] = [`contract-${s.id}-token`, `contract-${s.id}-own`]
        yield* s.kube.create(CertificateSigningRequests, "", signingRequest(asToken, s.request), { bearerToken: s.token })
        const own = yield* s.kube.create(CertificateSigningRequests, "", signingRequest(asOwn, s.request))
        assert.strictEqual(own.metadata.name, asOwn)
        assert.strictEqual(yield* s.createdWith(asToken), "token")
        assert.strictEqual(yield* s.createdWith(asOwn), "own")
        yield* s.kube.delete(CertificateSigningRequests, "", asToken)
        yield* s.kube.delete(CertificateSigningRequests, "", asOwn)
      }))
  })

/**
 * NodePublishVolume / NodeUnpublishVolume request rules (cert-manager/csi-lib, driver/nodeserver.go): every invalid
 * request is refused before anything happens, each violation names its field, all violations are
 * reported at once in field order, and the ServiceAccount token never appears in a message.
 */
import { assert, describe, it } from "@effect/vitest"
import { Redacted, Result } from "effect"
import {
  decodePublish,
  decodeUnpublish,
  EPHEMERAL_KEY,
  FS_GROUP_KEY,
  MAX_GID,
  MAX_VOLUME_ID_LENGTH,
  POD_NAME_KEY,
  POD_NAMESPACE_KEY,
  POD_UID_KEY,
  type PublishRequest,
  SERVICE_ACCOUNT_KEY
} from "../../../src/domain/PublishRequest.ts"
import { TOKENS_KEY } from "../../../src/domain/Token.ts"
import {
  EXPIRES_AT,
  FAKE_SIGNATURE,
  jwt,
  kubernetesClaims,
  podToken,
  publishRequest,
  TARGET_PATH,
  tokensJson,
  VOLUME_ID,
  volumeContext,
  WORKLOAD
} from "../../support/tokens.ts"

const TOKEN = podToken()
const RULES = { kubeletRootDir: "/var/lib/kubelet" }

/** The valid request with top-level fields replaced. */
const req = (patch: Record<string, unknown>): Record<string, unknown> => ({ ...publishRequest(), ...patch })

/** The valid request without one top-level field. */
const without = (field: string): Record<string, unknown> => {
  const r: Record<string, unknown> = { ...publishRequest() }
  delete r[field]
  return r
}

/** The valid request with volume_context entries replaced (undefined removes the key). */
const ctx = (patch: Record<string, string | undefined>): Record<string, unknown> => {
  const c: Record<string, string> = volumeContext()
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete c[k]
    else c[k] = v
  }
  return req({ volume_context: c })
}

/** The valid request whose "" audience token is `token`. */
const withToken = (token: string): Record<string, unknown> => ctx({ [TOKENS_KEY]: tokensJson({ "": token }) })

/**
 * The valid request as a kubelet sends it for a CSIDriver with serviceAccountTokenInSecrets: the
 * tokens JSON `tokens` in secrets, and in the volume context only when `inContext` is given.
 */
const inSecrets = (tokens: string, inContext?: string): Record<string, unknown> => ({
  ...ctx({ [TOKENS_KEY]: inContext }),
  secrets: { [TOKENS_KEY]: tokens }
})

const capability = (patch: Record<string, unknown>): Record<string, unknown> =>
  req({ volume_capability: { ...publishRequest().volume_capability, ...patch } })

/** Every token string a request carries, so a test can assert none of them leaks. */
const tokensIn = (request: unknown): ReadonlyArray<string> => {
  const r = request as { volume_context?: Record<string, string> | null; secrets?: Record<string, string> | null }
  return [r.volume_context?.[TOKENS_KEY], r.secrets?.[TOKENS_KEY]].flatMap((raw) => {
    if (raw === undefined) return []
    try {
      const parsed = JSON.parse(raw) as Record<string, { token?: unknown }>
      return Object.values(parsed).flatMap((e) => (typeof e?.token === "string" && e.token.length > 0 ? [e.token] : []))
    } catch {
      return []
    }
  })
}

const failure = (request: unknown): string => {
  const r = decodePublish(request, RULES)
  if (Result.isSuccess(r)) assert.fail(`expected a failure, got ${JSON.stringify(r.success)}`)
  return r.failure
}

const success = (request: unknown): PublishRequest => {
  const r = decodePublish(request, RULES)
  if (Result.isFailure(r)) assert.fail(`expected success, got: ${r.failure}`)
  return r.success
}

const assertNoTokenLeak = (message: string, request: unknown) => {
  assert.notInclude(message, FAKE_SIGNATURE)
  for (const t of tokensIn(request)) {
    assert.notInclude(message, t)
    for (const segment of t.split(".")) if (segment.length > 8) assert.notInclude(message, segment)
  }
}

interface Invalid {
  readonly name: string
  readonly request: unknown
  /** A text the message must contain: the field's name, or the volume_context key. */
  readonly field: string
  /** A second text the message must contain, to pin which rule fired. */
  readonly says?: string
}

const invalid: ReadonlyArray<Invalid> = [
  // volume_id
  { name: "volume_id missing", request: without("volume_id"), field: "volume_id", says: "is required" },
  { name: "volume_id empty", request: req({ volume_id: "" }), field: "volume_id", says: "is required" },
  { name: "volume_id null", request: req({ volume_id: null }), field: "volume_id", says: "is required" },
  { name: "volume_id ../x", request: req({ volume_id: "../x" }), field: "volume_id", says: "may only contain" },
  { name: "volume_id a/b", request: req({ volume_id: "a/b" }), field: "volume_id", says: "may only contain" },
  { name: "volume_id ..", request: req({ volume_id: ".." }), field: "volume_id", says: "must not be '.' or '..'" },
  { name: "volume_id .", request: req({ volume_id: "." }), field: "volume_id", says: "must not be '.' or '..'" },
  { name: "volume_id with a space", request: req({ volume_id: "csi abc" }), field: "volume_id", says: "may only contain" },
  { name: "volume_id with a NUL", request: req({ volume_id: "csi\0abc" }), field: "volume_id", says: "may only contain" },
  {
    name: "volume_id too long",
    request: req({ volume_id: "a".repeat(MAX_VOLUME_ID_LENGTH + 1) }),
    field: "volume_id",
    says: `longer than ${MAX_VOLUME_ID_LENGTH}`
  },
  // target_path
  { name: "target_path missing", request: without("target_path"), field: "target_path", says: "is required" },
  { name: "target_path empty", request: req({ target_path: "" }), field: "target_path", says: "is required" },
  { name: "target_path relative", request: req({ target_path: "var/lib/kubelet/x" }), field: "target_path", says: "absolute" },
  { name: "target_path with ..", request: req({ target_path: "/var/lib/kubelet/../../etc" }), field: "target_path", says: "the kubelet's directory" },
  { name: "target_path with a NUL byte", request: req({ target_path: `${TARGET_PATH}\0x` }), field: "target_path", says: "NUL" },
  { name: "target_path outside the kubelet root", request: req({ target_path: "/tmp/pods/x/volumes/kubernetes.io~csi/spiffe/mount" }), field: "target_path", says: "/var/lib/kubelet/pods/<pod uid>" },
  { name: "target_path with the root as prefix only", request: req({ target_path: `/var/lib/kubelet2/pods/${WORKLOAD.podUid}/volumes/kubernetes.io~csi/spiffe/mount` }), field: "target_path", says: "the kubelet's directory" },
  { name: "target_path of another pod uid", request: req({ target_path: TARGET_PATH.replace(WORKLOAD.podUid, "ffffffff-0000-0000-0000-000000000000") }), field: "target_path", says: "ffffffff-0000-0000-0000-000000000000" },
  { name: "target_path of another plugin", request: req({ target_path: TARGET_PATH.replace("kubernetes.io~csi", "kubernetes.io~empty-dir") }), field: "target_path", says: "kubernetes.io~csi" },
  { name: "target_path without /mount", request: req({ target_path: TARGET_PATH.replace(/\/mount$/, "") }), field: "target_path", says: "/mount" },
  { name: "target_path with a trailing slash", request: req({ target_path: `${TARGET_PATH}/` }), field: "target_path", says: "/mount" },
  { name: "target_path below the mount", request: req({ target_path: `${TARGET_PATH}/deeper` }), field: "target_path", says: "/mount" },
  { name: "target_path with a double slash", request: req({ target_path: TARGET_PATH.replace("/volumes/", "//volumes/") }), field: "target_path", says: "/mount" },
  { name: "target_path with a volume name that is not a DNS label", request: req({ target_path: TARGET_PATH.replace("/spiffe/", "/Spiffe_1/") }), field: "target_path", says: "<volume name>" },
  { name: "target_path with . as the volume name", request: req({ target_path: TARGET_PATH.replace("/spiffe/", "/./") }), field: "target_path", says: "<volume name>" },
  // volume_capability
  { name: "volume_capability missing", request: without("volume_capability"), field: "volume_capability", says: "is required" },
  { name: "volume_capability null", request: req({ volume_capability: null }), field: "volume_capability", says: "is required" },
  {
    name: "block capability (access_type block)",
    request: capability({ mount: null, block: {}, access_type: "block" }),
    field: "volume_capability.block",
    says: "not supported"
  },
  {
    name: "block capability (block set, no access_type)",
    request: req({ volume_capability: { block: {}, access_mode: { mode: "SINGLE_NODE_WRITER" } } }),
    field: "volume_capability.block"
  },
  {
    name: "capability with neither mount nor block",
    request: req({ volume_capability: { access_mode: { mode: "SINGLE_NODE_WRITER" } } }),
    field: "volume_capability.mount",
    says: "is required"
  },
  { name: "access_mode missing", request: capability({ access_mode: null }), field: "volume_capability.access_mode", says: "is required" },
  // readonly
  { name: "readonly false", request: req({ readonly: false }), field: "readonly", says: "must be true" },
  { name: "readonly missing", request: without("readonly"), field: "readonly", says: "must be true" },
  // volume_context: ephemeral and pod info
  { name: "ephemeral missing", request: ctx({ [EPHEMERAL_KEY]: undefined }), field: EPHEMERAL_KEY, says: "ephemeral" },
  { name: "ephemeral false", request: ctx({ [EPHEMERAL_KEY]: "false" }), field: EPHEMERAL_KEY, says: "must be \"true\"" },
  { name: "ephemeral True (case matters)", request: ctx({ [EPHEMERAL_KEY]: "True" }), field: EPHEMERAL_KEY },
  { name: "pod.name missing", request: ctx({ [POD_NAME_KEY]: undefined }), field: POD_NAME_KEY, says: "podInfoOnMount" },
  { name: "pod.namespace missing", request: ctx({ [POD_NAMESPACE_KEY]: undefined }), field: POD_NAMESPACE_KEY, says: "podInfoOnMount" },
  { name: "pod.uid missing", request: ctx({ [POD_UID_KEY]: undefined }), field: POD_UID_KEY, says: "podInfoOnMount" },
  { name: "serviceAccount.name missing", request: ctx({ [SERVICE_ACCOUNT_KEY]: undefined }), field: SERVICE_ACCOUNT_KEY, says: "podInfoOnMount" },
  { name: "pod.name empty", request: ctx({ [POD_NAME_KEY]: "" }), field: POD_NAME_KEY, says: "is required" },
  { name: "volume_context missing entirely", request: without("volume_context"), field: EPHEMERAL_KEY },
  // the token
  { name: "tokens missing", request: ctx({ [TOKENS_KEY]: undefined }), field: TOKENS_KEY, says: "tokenRequests" },
  { name: "tokens not JSON", request: ctx({ [TOKENS_KEY]: `{"": {"token": "${TOKEN}"` }), field: TOKENS_KEY, says: "JSON" },
  { name: "tokens JSON of the wrong shape", request: ctx({ [TOKENS_KEY]: JSON.stringify({ "": TOKEN }) }), field: TOKENS_KEY, says: "JSON" },
  { name: "tokens without the \"\" audience", request: ctx({ [TOKENS_KEY]: tokensJson({ vault: TOKEN }) }), field: TOKENS_KEY, says: "\"\" audience" },
  { name: "token not a JWT", request: withToken("opaque-bearer-TOKEN-SECRET-value"), field: TOKENS_KEY, says: "JWT" },
  { name: "token with four segments", request: withToken(`${TOKEN}.extra`), field: TOKENS_KEY, says: "JWT" },
  { name: "token with alg none", request: withToken(podToken({}, { alg: "none" })), field: TOKENS_KEY, says: "JWS header" },
  { name: "token with alg HS256", request: withToken(podToken({}, { alg: "HS256", kid: "x" })), field: TOKENS_KEY, says: "JWS header" },
  { name: "token header not base64url", request: withToken(`!!!.${TOKEN.split(".")[1]}.${FAKE_SIGNATURE}`), field: TOKENS_KEY, says: "JWS header" },
  {
    name: "token without kubernetes.io claims",
    request: withToken(jwt({ aud: ["x"], exp: EXPIRES_AT, sub: "system:serviceaccount:sandbox:app" })),
    field: TOKENS_KEY,
    says: "kubernetes.io"
  },
  // the token in secrets (CSIDriver serviceAccountTokenInSecrets): the same rules, named by that field
  { name: "tokens in secrets not JSON", request: inSecrets(`{"": {"token": "${TOKEN}"`), field: `secrets["${TOKENS_KEY}"]`, says: "JSON" },
  { name: "token in secrets not a JWT", request: inSecrets(tokensJson({ "": "opaque-bearer-TOKEN-SECRET-value" })), field: `secrets["${TOKENS_KEY}"]`, says: "JWT" },
  { name: "token in secrets with alg none", request: inSecrets(tokensJson({ "": podToken({}, { alg: "none" }) })), field: `secrets["${TOKENS_KEY}"]`, says: "JWS header" },
  {
    name: "token in secrets bound to another pod",
    request: inSecrets(tokensJson({ "": podToken({ podUid: "other-uid" }) })),
    field: POD_UID_KEY,
    says: "token is bound to pod uid \"other-uid\""
  },
  {
    name: "different tokens in secrets and volume_context",
    request: inSecrets(tokensJson({ "": TOKEN }), tokensJson({ "": podToken({ serviceAccount: "admin" }) })),
    field: `secrets["${TOKENS_KEY}"] and volume_context["${TOKENS_KEY}"]`,
    says: "different tokens"
  },
  { name: "token payload not JSON", request: withToken(`${TOKEN.split(".")[0]}.${Buffer.from("nope").toString("base64url")}.${FAKE_SIGNATURE}`), field: TOKENS_KEY },
  { name: "token with empty namespace claim", request: withToken(podToken({ namespace: "" })), field: TOKENS_KEY, says: "empty namespace" },
  {
    name: "token namespace differs from pod namespace",
    request: withToken(podToken({ namespace: "other-ns" })),
    field: POD_NAMESPACE_KEY,
    says: "token namespace \"other-ns\""
  },
  {
    name: "token ServiceAccount differs from serviceAccount.name",
    request: withToken(podToken({ serviceAccount: "admin" })),
    field: SERVICE_ACCOUNT_KEY,
    says: "token serviceaccount \"admin\""
  },
  {
    name: "token bound to another pod name",
    request: withToken(podToken({ podName: "other-pod" })),
    field: POD_NAME_KEY,
    says: "token is bound to pod \"other-pod\""
  },
  {
    name: "token not bound to a pod",
    request: withToken(podToken({ noPod: true })),
    field: TOKENS_KEY,
    says: "not bound to a pod"
  },
  {
    name: "pod.uid that is not a path segment",
    request: ctx({ [POD_UID_KEY]: ".." }),
    field: POD_UID_KEY,
    says: "is not a pod uid"
  },
  {
    name: "token bound to another pod uid",
    request: withToken(podToken({ podUid: "ffffffff-0000-0000-0000-000000000000" })),
    field: POD_UID_KEY,
    says: "ffffffff-0000-0000-0000-000000000000"
  },
  // fs-group and volume_mount_group
  { name: "fs-group abc", request: ctx({ [FS_GROUP_KEY]: "abc" }), field: FS_GROUP_KEY, says: "integer" },
  { name: "fs-group 0", request: ctx({ [FS_GROUP_KEY]: "0" }), field: FS_GROUP_KEY, says: `between 1 and ${MAX_GID}` },
  { name: "fs-group -1", request: ctx({ [FS_GROUP_KEY]: "-1" }), field: FS_GROUP_KEY, says: "integer" },
  { name: "fs-group 4294967296", request: ctx({ [FS_GROUP_KEY]: "4294967296" }), field: FS_GROUP_KEY, says: `between 1 and ${MAX_GID}` },
  { name: "fs-group 1.5", request: ctx({ [FS_GROUP_KEY]: "1.5" }), field: FS_GROUP_KEY, says: "integer" },
  { name: "fs-group empty", request: ctx({ [FS_GROUP_KEY]: "" }), field: FS_GROUP_KEY, says: "integer" },
  { name: "fs-group with spaces", request: ctx({ [FS_GROUP_KEY]: " 1541" }), field: FS_GROUP_KEY, says: "integer" },
  { name: "volume_mount_group abc", request: publishRequest({ volumeMountGroup: "abc" }), field: "volume_capability.mount.volume_mount_group", says: "integer" },
  { name: "volume_mount_group 0", request: publishRequest({ volumeMountGroup: "0" }), field: "volume_capability.mount.volume_mount_group", says: "between 1" },
  // not a request at all
  { name: "a string instead of a request", request: "volume", field: "NodePublishVolumeRequest" },
  { name: "volume_id of the wrong type", request: req({ volume_id: 42 }), field: "NodePublishVolumeRequest" },
  { name: "a volume_context value of the wrong type", request: req({ volume_context: { ...volumeContext(), [FS_GROUP_KEY]: 1541 } }), field: "NodePublishVolumeRequest" }
]

describe("decodePublish", () => {
  it("has a table of at least 20 invalid requests", () => {
    assert.isAtLeast(invalid.length, 20)
  })

  describe("refuses each invalid request, naming the field, never the token", () => {
    for (const c of invalid) {
      it(c.name, () => {
        const message = failure(c.request)
        assert.include(message, c.field)
        if (c.says !== undefined) assert.include(message, c.says)
        assert.notInclude(message, "\n")
        assertNoTokenLeak(message, c.request)
      })
    }
  })

  it("reports a single violation for a request with one thing wrong", () => {
    assert.strictEqual(failure(ctx({ [FS_GROUP_KEY]: "0" })), `volume_context["${FS_GROUP_KEY}"] must be between 1 and ${MAX_GID}, got 0`)
    assert.strictEqual(failure(req({ readonly: false })), "readonly must be true: set pod.spec.volumes[].csi.readOnly to 'true'")
  })

  it("never echoes a token that is not a JWT", () => {
    const secret = "opaque-bearer-TOKEN-SECRET-value"
    const message = failure(withToken(secret))
    assert.notInclude(message, secret)
    assert.notInclude(message, "SECRET")
  })

  it("reports every violation at once, in field order", () => {
    const c: Record<string, string> = volumeContext({ serviceAccount: "other", fsGroup: "0" })
    c[EPHEMERAL_KEY] = "false"
    delete c[POD_NAME_KEY]
    delete c[POD_UID_KEY]
    const request = { ...publishRequest(), volume_id: "../x", target_path: "relative", volume_capability: null, readonly: false, volume_context: c }
    const message = failure(request)
    const parts = message.split("; ")
    const fields = ["volume_id", "target_path", "volume_capability", "readonly", EPHEMERAL_KEY, POD_NAME_KEY, POD_UID_KEY, SERVICE_ACCOUNT_KEY, FS_GROUP_KEY]
    assert.strictEqual(parts.length, fields.length, message)
    fields.forEach((field, i) => assert.include(parts[i], field, `violation ${i}: ${parts[i]}`))
    assert.include(parts[7], "token serviceaccount \"app\"")
    assertNoTokenLeak(message, request)
  })

  // volume_capability (proto field 5) comes before readonly (6) and volume_context (8), so a bad
  // volume_mount_group is reported before them, as decodePublish's doc promises.
  it("reports a bad volume_mount_group in volume_capability's place", () => {
    const c: Record<string, string> = volumeContext()
    c[EPHEMERAL_KEY] = "false"
    const parts = failure({ ...publishRequest({ volumeMountGroup: "abc" }), readonly: false, volume_context: c }).split("; ")
    assert.strictEqual(parts.length, 3)
    assert.include(parts[0], "volume_capability.mount.volume_mount_group")
    assert.include(parts[1], "readonly")
    assert.include(parts[2], EPHEMERAL_KEY)
  })

  it("reports a token failure alongside the request's other violations", () => {
    const request = { ...withToken("garbage"), readonly: false, volume_id: "" }
    const parts = failure(request).split("; ")
    assert.strictEqual(parts.length, 3)
    assert.include(parts[0], "volume_id")
    assert.include(parts[1], "readonly")
    assert.include(parts[2], TOKENS_KEY)
  })

  it("reports namespace, ServiceAccount and pod uid mismatches together", () => {
    const parts = failure(withToken(podToken({ namespace: "x", serviceAccount: "y", podUid: "z" }))).split("; ")
    assert.strictEqual(parts.length, 3)
    assert.include(parts[0], POD_NAMESPACE_KEY)
    assert.include(parts[1], SERVICE_ACCOUNT_KEY)
    assert.include(parts[2], POD_UID_KEY)
  })

  describe("accepts valid requests", () => {
    const expected = (fsGroup: number | undefined) => ({
      volumeId: VOLUME_ID,
      targetPath: TARGET_PATH,
      podName: WORKLOAD.podName,
      podNamespace: WORKLOAD.namespace,
      podUid: WORKLOAD.podUid,
      serviceAccount: WORKLOAD.serviceAccount,
      fsGroup,
      token: {
        namespace: WORKLOAD.namespace,
        serviceAccount: WORKLOAD.serviceAccount,
        podName: WORKLOAD.podName,
        podUid: WORKLOAD.podUid,
        expiresAt: EXPIRES_AT * 1000
      }
    })
    const plain = (p: PublishRequest, token = TOKEN) => {
      const { token: t, ...rest } = p
      assert.strictEqual(Redacted.value(t.token), token)
      const { token: _secret, ...claims } = t
      return { ...rest, token: claims }
    }

    it("minimal valid request as kubelet sends it", () => {
      assert.deepStrictEqual(plain(success(publishRequest())), expected(undefined))
    })

    it("fs-group attribute wins over volume_mount_group", () => {
      const p = success(publishRequest({ volumeMountGroup: "2000", context: { fsGroup: "1541" } }))
      assert.deepStrictEqual(plain(p), expected(1541))
    })

    it("fs-group attribute wins even over an invalid volume_mount_group", () => {
      assert.strictEqual(success(publishRequest({ volumeMountGroup: "abc", context: { fsGroup: "1541" } })).fsGroup, 1541)
    })

    it("volume_mount_group is used when there is no fs-group attribute", () => {
      assert.deepStrictEqual(plain(success(publishRequest({ volumeMountGroup: "2000" }))), expected(2000))
    })

    it("accepts the largest gid", () => {
      assert.strictEqual(success(publishRequest({ context: { fsGroup: String(MAX_GID) } })).fsGroup, MAX_GID)
      assert.strictEqual(success(publishRequest({ context: { fsGroup: "1" } })).fsGroup, 1)
    })

    it("uses the \"\" audience token when kubelet also sends other audiences", () => {
      const vault = podToken({ aud: ["vault"], serviceAccount: "someone-else" })
      const p = success(publishRequest({ context: { otherAudiences: { vault, "https://sts.example": "opaque" } } }))
      assert.deepStrictEqual(plain(p), expected(undefined))
    })

    it("accepts a token without exp (the claims it relies on are the pod's)", () => {
      const token = podToken({ exp: null })
      const p = success(publishRequest({ context: { token } }))
      assert.strictEqual(Redacted.value(p.token.token), token)
      assert.strictEqual(p.token.podUid, WORKLOAD.podUid)
      assert.strictEqual(p.token.podName, WORKLOAD.podName)
      assert.strictEqual(p.token.expiresAt, undefined)
    })

    it("checks the target against the configured kubelet root, whatever it is", () => {
      const root = "/var/lib/k0s/kubelet"
      const target = `${root}/pods/${WORKLOAD.podUid}/volumes/kubernetes.io~csi/spiffe/mount`
      assert.isTrue(Result.isSuccess(decodePublish(req({ target_path: target }), { kubeletRootDir: root })))
      assert.isTrue(Result.isFailure(decodePublish(req({ target_path: target }), RULES)))
      assert.isTrue(Result.isFailure(decodePublish(publishRequest(), { kubeletRootDir: root })))
    })

    it("reports a pod that disagrees with the token in every field at once", () => {
      const parts = failure(withToken(podToken({ namespace: "x", serviceAccount: "y", podName: "p", podUid: "z" }))).split("; ")
      assert.strictEqual(parts.length, 4)
    })

    it("accepts a volume_id of exactly the maximum length with dots, dashes and underscores", () => {
      const id = `a.b-c_${"d".repeat(MAX_VOLUME_ID_LENGTH - 6)}`
      assert.strictEqual(id.length, MAX_VOLUME_ID_LENGTH)
      assert.strictEqual(success(req({ volume_id: id })).volumeId, id)
    })

    it("ignores other volume attributes and unknown request fields", () => {
      const p = success(req({ volume_context: { ...volumeContext(), "example.com/other": "x" }, publish_context: { a: "b" }, secrets: { s: "t" } }))
      assert.strictEqual(p.volumeId, VOLUME_ID)
    })

    it("reads the token from secrets when the kubelet sends it there (CSIDriver serviceAccountTokenInSecrets)", () => {
      const r = inSecrets(tokensJson({ "": TOKEN }))
      assert.notProperty((r as { volume_context: Record<string, string> }).volume_context, TOKENS_KEY)
      assert.deepStrictEqual(plain(success(r)), expected(undefined))
    })

    it("accepts the same tokens in secrets and in the volume context", () => {
      const tokens = tokensJson({ "": TOKEN })
      assert.deepStrictEqual(plain(success(inSecrets(tokens, tokens))), expected(undefined))
    })

    it("reads the volume context when secrets hold no tokens (an empty value, or none)", () => {
      assert.deepStrictEqual(plain(success(req({ secrets: { [TOKENS_KEY]: "" } }))), expected(undefined))
      assert.deepStrictEqual(plain(success(req({ secrets: null }))), expected(undefined))
    })

    it("keeps the token out of the decoded value's printed forms", () => {
      const p = success(publishRequest())
      assert.notInclude(JSON.stringify(p), TOKEN)
      assert.notInclude(String(p.token.token), TOKEN)
      assert.notInclude(JSON.stringify(p), FAKE_SIGNATURE)
    })

    it("accepts a token whose claims carry extra fields (warnafter, node)", () => {
      const claims = kubernetesClaims()
      const k8s = claims["kubernetes.io"] as Record<string, unknown>
      const token = jwt({ ...claims, nbf: 1, jti: "abc", "kubernetes.io": { ...k8s, node: { name: "n1", uid: "u" }, warnafter: 1 } }, { alg: "ES256", kid: "k", typ: "JWT" })
      assert.strictEqual(Redacted.value(success(publishRequest({ context: { token } })).token.token), token)
    })
  })
})

describe("decodeUnpublish", () => {
  const cases: ReadonlyArray<{ readonly name: string; readonly request: unknown; readonly fields: ReadonlyArray<string> }> = [
    { name: "missing volume_id", request: { target_path: TARGET_PATH }, fields: ["volume_id is required"] },
    { name: "empty volume_id", request: { volume_id: "", target_path: TARGET_PATH }, fields: ["volume_id is required"] },
    { name: "missing target_path", request: { volume_id: VOLUME_ID }, fields: ["target_path is required"] },
    { name: "relative target_path", request: { volume_id: VOLUME_ID, target_path: "mnt" }, fields: ["target_path must be absolute"] },
    { name: "unsafe volume_id ../x", request: { volume_id: "../x", target_path: TARGET_PATH }, fields: ["volume_id may only contain"] },
    { name: "unsafe volume_id ..", request: { volume_id: "..", target_path: TARGET_PATH }, fields: ["volume_id may only contain"] },
    { name: "both missing, in field order", request: {}, fields: ["volume_id is required", "target_path is required"] },
    { name: "target_path outside the kubelet's pods", request: { volume_id: VOLUME_ID, target_path: "/run/secrets/mount" }, fields: ["the kubelet's directory"] },
    { name: "target_path with a NUL byte", request: { volume_id: VOLUME_ID, target_path: `${TARGET_PATH}\0` }, fields: ["NUL"] },
    { name: "not a request", request: 7, fields: ["not a NodeUnpublishVolumeRequest"] }
  ]
  for (const c of cases) {
    it(`refuses: ${c.name}`, () => {
      const r = decodeUnpublish(c.request, RULES)
      if (Result.isSuccess(r)) assert.fail("expected a failure")
      const parts = r.failure.split("; ")
      assert.strictEqual(parts.length, c.fields.length, r.failure)
      c.fields.forEach((f, i) => assert.include(parts[i], f))
    })
  }

  it("accepts a valid request, ignoring other fields", () => {
    const r = decodeUnpublish({ volume_id: VOLUME_ID, target_path: TARGET_PATH, extra: 1 }, RULES)
    assert.deepStrictEqual(r, Result.succeed({ volumeId: VOLUME_ID, targetPath: TARGET_PATH }))
  })
})

/**
 * The Kubernetes client flags applied to a client-node KubeConfig with client-go's precedence
 * (`layers/kube/Overrides.ts`): the resulting context, cluster and user fields, from a kubeconfig and
 * in a pod. Parsing the flags is tested in `test/unit/config/KubeFlags.test.ts`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as k8s from "@kubernetes/client-node"
import { Redacted, Result } from "effect"
import { applyKubeClientFlags } from "../../../../src/layers/kube/Overrides.ts"
import type { KubeClientFlags } from "../../../../src/services/KubeClient.ts"
import { noKubeClientFlags } from "../../../../src/services/KubeClient.ts"

/** Two of everything, current context "one". */
const base = (): k8s.KubeConfig => {
  const kc = new k8s.KubeConfig()
  kc.loadFromOptions({
    clusters: [
      { name: "c1", server: "https://one.example:6443", caData: "Q0Ex", tlsServerName: "kubernetes", skipTLSVerify: false },
      { name: "c2", server: "https://two.example:6443", caFile: "/etc/two-ca.crt", skipTLSVerify: false }
    ],
    users: [
      { name: "u1", token: "kubeconfig-token" },
      { name: "u2", certData: "Q0VSVA==", keyData: "S0VZ" }
    ],
    contexts: [
      { name: "one", cluster: "c1", user: "u1" },
      { name: "two", cluster: "c2", user: "u2", namespace: "two-ns" }
    ],
    currentContext: "one"
  })
  return kc
}

const apply = (flags: KubeClientFlags, source: "kubeconfig" | "in-cluster" = "kubeconfig"): k8s.KubeConfig => {
  const r = applyKubeClientFlags(base(), flags, source)
  if (Result.isFailure(r)) assert.fail(r.failure)
  return r.success
}

const current = (kc: k8s.KubeConfig) => ({
  context: kc.getContextObject(kc.getCurrentContext()),
  cluster: kc.getCurrentCluster(),
  user: kc.getCurrentUser()
})

describe("client flags: applied to a kubeconfig", () => {
  it("no flags leave the current context, cluster and user as they are", () => {
    const { cluster, context, user } = current(apply(noKubeClientFlags))
    assert.strictEqual(context?.name, "one")
    assert.deepStrictEqual(cluster, base().getCurrentCluster())
    assert.deepStrictEqual(user, base().getCurrentUser())
  })

  it("--context picks another context; an unknown one is an error", () => {
    const { cluster, context, user } = current(apply({ ...noKubeClientFlags, context: "two" }))
    assert.strictEqual(context?.name, "two")
    assert.strictEqual(cluster?.server, "https://two.example:6443")
    assert.strictEqual(user?.name, "u2")
    assert.deepStrictEqual(applyKubeClientFlags(base(), { ...noKubeClientFlags, context: "nope" }, "kubeconfig"), Result.fail("--context: context \"nope\" does not exist"))
  })

  it("--cluster and --user replace the context's; unknown names are errors", () => {
    const { cluster, user } = current(apply({ ...noKubeClientFlags, cluster: "c2", user: "u2" }))
    assert.strictEqual(cluster?.name, "c2")
    assert.strictEqual(user?.name, "u2")
    assert.isTrue(Result.isFailure(applyKubeClientFlags(base(), { ...noKubeClientFlags, cluster: "nope" }, "kubeconfig")))
    assert.isTrue(Result.isFailure(applyKubeClientFlags(base(), { ...noKubeClientFlags, user: "nope" }, "kubeconfig")))
  })

  it("--server replaces the server and clears the kubeconfig's tls-server-name; --tls-server-name sets it", () => {
    const { cluster } = current(apply({ ...noKubeClientFlags, server: "https://api.example:6443" }))
    assert.strictEqual(cluster?.server, "https://api.example:6443")
    assert.isUndefined(cluster?.tlsServerName)
    assert.strictEqual(current(apply({ ...noKubeClientFlags, tlsServerName: "api.internal" })).cluster?.tlsServerName, "api.internal")
    const both = current(apply({ ...noKubeClientFlags, server: "https://x:1", tlsServerName: "api.internal" })).cluster
    assert.strictEqual(both?.tlsServerName, "api.internal")
  })

  it("--certificate-authority replaces inline CA data; --insecure-skip-tls-verify clears the CA", () => {
    const ca = current(apply({ ...noKubeClientFlags, certificateAuthority: "/ca.crt" })).cluster
    assert.strictEqual(ca?.caFile, "/ca.crt")
    assert.isUndefined(ca?.caData)
    assert.isFalse(ca?.skipTLSVerify)
    const insecure = current(apply({ ...noKubeClientFlags, insecureSkipTlsVerify: true })).cluster
    assert.isTrue(insecure?.skipTLSVerify)
    assert.isUndefined(insecure?.caData)
    assert.isUndefined(insecure?.caFile)
  })

  it("--token, --client-certificate and --client-key replace the user's credentials", () => {
    const { user } = current(apply({ ...noKubeClientFlags, user: "u2", token: Redacted.make("t"), clientCertificate: "/tls.crt", clientKey: "/tls.key" }))
    assert.strictEqual(user?.token, "t")
    assert.strictEqual(user?.certFile, "/tls.crt")
    assert.strictEqual(user?.keyFile, "/tls.key")
    assert.isUndefined(user?.certData)
    assert.isUndefined(user?.keyData)
  })

  it("--as is client-node's impersonateUser; --namespace the context's namespace", () => {
    const { context, user } = current(apply({ ...noKubeClientFlags, as: "jane", namespace: "team" }))
    assert.strictEqual(user?.impersonateUser, "jane")
    assert.strictEqual(context?.namespace, "team")
  })

  it("in a pod only --server, --token and --certificate-authority apply, as client-go's in-cluster config", () => {
    const { cluster, context, user } = current(apply({
      ...noKubeClientFlags,
      context: "two",
      server: "https://api.example:6443",
      token: Redacted.make("t"),
      certificateAuthority: "/ca.crt",
      insecureSkipTlsVerify: true,
      tlsServerName: "ignored",
      as: "ignored",
      clientCertificate: "/ignored"
    }, "in-cluster"))
    assert.strictEqual(context?.name, "one")
    assert.strictEqual(cluster?.server, "https://api.example:6443")
    assert.strictEqual(cluster?.caFile, "/ca.crt")
    assert.isFalse(cluster?.skipTLSVerify)
    assert.strictEqual(cluster?.tlsServerName, "kubernetes")
    assert.strictEqual(user?.token, "t")
    assert.isUndefined(user?.impersonateUser)
    assert.isUndefined(user?.certFile)
  })
})

/**
 * Shared helpers for the e2e files that need more than the plane's one CA ClusterIssuer: extra CA
 * ClusterIssuers (a self-signed CA Secret in the cluster resource namespace + a ClusterIssuer of
 * kind CA, made Ready by cert-manager's controller), the runtime issuance ConfigMap, signature
 * checks against a CA, bounded polls, and the CertificateRequests of one volume.
 */
import { webcrypto } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { labelHash } from "../../src/domain/Hash.ts"
import { x509 } from "../../src/x509.ts"
import type { ControlPlaneInfo } from "../harness/globalSetup.ts"
import { KubeApiError, type KubeClient } from "../harness/kube.ts"
import { volumeHandle, type Workload } from "../harness/kubelet.ts"
import { createCa } from "../harness/pki.ts"
import { RUNTIME_CONFIG_MAP } from "../harness/plane.ts"

export { RUNTIME_CONFIG_MAP }

export interface CaIssuer {
  readonly name: string
  readonly kind: "ClusterIssuer"
  readonly group: "cert-manager.io"
  readonly caPem: string
}

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")

const pem = (label: string, der: ArrayBuffer): string => {
  const body = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n")
  return `-----BEGIN ${label}-----\n${body.endsWith("\n") ? body : `${body}\n`}-----END ${label}-----\n`
}

/** Bounded poll: `probe` returns a value when done, undefined (or throws) to try again. */
export const poll = async <A>(what: string, probe: () => Promise<A | undefined>, opts: { timeoutMs: number; intervalMs?: number }): Promise<A> => {
  const deadline = Date.now() + opts.timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await probe()
      if (v !== undefined) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}${last === undefined ? "" : `: ${last instanceof Error ? last.message : String(last)}`}`)
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 250))
  }
}

const conditionTrue = (obj: unknown, type: string): boolean =>
  ((obj as { status?: { conditions?: Array<{ type: string; status: string }> } }).status?.conditions ?? []).some((c) => c.type === type && c.status === "True")

/**
 * A new self-signed CA (CN = name) behind a new CA ClusterIssuer of that name, waited for Ready.
 * Idempotent per name within one plane (re-applies the same objects with a new CA if called again).
 */
export const createCaClusterIssuer = async (plane: ControlPlaneInfo, admin: KubeClient, name: string): Promise<CaIssuer> => {
  const ca = await createCa(name)
  const caPem = ca.cert.toString("pem").trim() + "\n"
  const keyPem = pem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", ca.keys.privateKey))
  const ns = plane.clusterResourceNamespace
  await admin.apply(`/api/v1/namespaces/${ns}/secrets/${name}`, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: ns },
    type: "kubernetes.io/tls",
    data: { "tls.crt": b64(caPem), "tls.key": b64(keyPem), "ca.crt": b64(caPem) }
  })
  await admin.apply(`/apis/cert-manager.io/v1/clusterissuers/${name}`, {
    apiVersion: "cert-manager.io/v1",
    kind: "ClusterIssuer",
    metadata: { name },
    spec: { ca: { secretName: name } }
  })
  await poll(`ClusterIssuer ${name} Ready`, async () => (conditionTrue(await admin.get(`/apis/cert-manager.io/v1/clusterissuers/${name}`), "Ready") ? true : undefined), {
    timeoutMs: 60_000
  })
  return { name, kind: "ClusterIssuer", group: "cert-manager.io", caPem }
}

export const deleteCaClusterIssuer = async (plane: ControlPlaneInfo, admin: KubeClient, name: string): Promise<void> => {
  await deleteIgnoringMissing(admin, `/apis/cert-manager.io/v1/clusterissuers/${name}`)
  await deleteIgnoringMissing(admin, `/api/v1/namespaces/${plane.clusterResourceNamespace}/secrets/${name}`)
}

export const deleteIgnoringMissing = async (admin: KubeClient, p: string): Promise<void> => {
  try {
    await admin.delete(p)
  } catch (e) {
    if (!(e instanceof KubeApiError && e.status === 404)) throw e
  }
}

const configMapPath = (plane: ControlPlaneInfo) => `/api/v1/namespaces/${plane.clusterResourceNamespace}/configmaps/${RUNTIME_CONFIG_MAP}`

/** Create or update the runtime issuance ConfigMap to name `issuer`. */
export const setRuntimeIssuer = async (plane: ControlPlaneInfo, admin: KubeClient, issuer: Pick<CaIssuer, "name" | "kind" | "group">): Promise<void> => {
  await admin.apply(configMapPath(plane), {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: RUNTIME_CONFIG_MAP, namespace: plane.clusterResourceNamespace },
    data: { "issuer-name": issuer.name, "issuer-kind": issuer.kind, "issuer-group": issuer.group }
  })
}

export const deleteRuntimeConfig = (plane: ControlPlaneInfo, admin: KubeClient): Promise<void> => deleteIgnoringMissing(admin, configMapPath(plane))

/** The PEM certificates of a bundle, one string each. */
export const pemCertificates = (bundle: string): Array<string> => bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []

/** Whether the leaf (first certificate of `chainPem`) carries a valid signature by `caPem`'s key. */
export const signedBy = async (chainPem: string, caPem: string): Promise<boolean> => {
  const leaf = new x509.X509Certificate(pemCertificates(chainPem)[0]!)
  const ca = new x509.X509Certificate(caPem)
  return leaf.issuer === ca.subject && (await leaf.verify({ publicKey: ca, signatureOnly: true }))
}

export interface CrItem {
  metadata: { name: string; namespace: string; creationTimestamp?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
  spec: { issuerRef?: { name: string; kind?: string; group?: string }; username?: string; duration?: string }
  status?: { certificate?: string; conditions?: Array<{ type: string; status: string; reason?: string; message?: string }> }
}

/** The CertificateRequests the driver made for one volume of a workload (by the volume-id-hash label). */
export const volumeCrs = async (admin: KubeClient, w: Workload, volumeName = "spiffe"): Promise<Array<CrItem>> => {
  const selector = encodeURIComponent(`csi.cert-manager.io/volume-id-hash=${labelHash(volumeHandle(w.podUid, volumeName))}`)
  const list = await admin.get<{ items: Array<CrItem> }>(`/apis/cert-manager.io/v1/namespaces/${w.namespace}/certificaterequests?labelSelector=${selector}`)
  return list.items
}

/** A Secret-volume-style directory: `<dir>/..data -> ..<stamp>/`, `<dir>/<name> -> ..data/<name>`. */
export const secretVolumeDir = (dir: string) => {
  let n = 0
  const write = (files: Readonly<Record<string, string>>): void => {
    fs.mkdirSync(dir, { recursive: true })
    const stamp = `..2026_01_01_00_00_0${n++}.${process.pid}`
    fs.mkdirSync(path.join(dir, stamp))
    for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, stamp, name), content)
    const old = fs.existsSync(path.join(dir, "..data")) ? fs.readlinkSync(path.join(dir, "..data")) : undefined
    fs.symlinkSync(stamp, path.join(dir, "..data_tmp"))
    fs.renameSync(path.join(dir, "..data_tmp"), path.join(dir, "..data"))
    for (const name of Object.keys(files)) {
      if (!fs.existsSync(path.join(dir, name))) fs.symlinkSync(path.join("..data", name), path.join(dir, name))
    }
    if (old !== undefined) fs.rmSync(path.join(dir, old), { recursive: true, force: true })
  }
  return { write }
}

// Wait for an object to reach a state through a Kubernetes watch rather than by polling: read the
// object once (its current state and resourceVersion), then watch it by name from that version and
// test every event. A watch the server ends (its own timeout) is resumed from the last version seen;
// a 410 Gone (version too old) starts over with a fresh read.
import { request } from "node:https"
import { HarnessError } from "./process.ts"
import { KubeApiError, type KubeClient, type KubeObject } from "./kube.ts"

type WatchEvent = { readonly type: string; readonly object: KubeObject & { metadata?: { resourceVersion?: string } } }

/** The `status.conditions` entry of `type` is "True". */
export const conditionTrue = (o: KubeObject | undefined, type: string): boolean =>
  ((o?.["status"] as { conditions?: ReadonlyArray<{ type?: string; status?: string }> } | undefined)?.conditions ?? []).some(
    (c) => c.type === type && c.status === "True"
  )

/**
 * Resolves with the object once `done(object)` holds; rejects after `timeoutMs` with the last state
 * seen. `collection` is the collection path (e.g. /apis/cert-manager.io/v1/clusterissuers).
 */
export const watchUntil = async (
  client: KubeClient,
  collection: string,
  name: string,
  done: (o: KubeObject) => boolean,
  opts: { readonly timeoutMs: number; readonly what?: string }
): Promise<KubeObject> => {
  const what = opts.what ?? `${collection}/${name}`
  const controller = new AbortController()
  let last: KubeObject | undefined
  const timer = setTimeout(() => controller.abort(), opts.timeoutMs)
  try {
    for (;;) {
      let version: string | undefined
      try {
        const current = await client.get(`${collection}/${name}`)
        last = current
        if (done(current)) return current
        version = (current.metadata as { resourceVersion?: string } | undefined)?.resourceVersion
      } catch (err) {
        if (!(err instanceof KubeApiError && err.status === 404)) throw err
      }
      for (;;) {
        const outcome = await watchOnce(client, collection, name, version, controller.signal, (ev) => {
          if (ev.type === "ADDED" || ev.type === "MODIFIED") {
            last = ev.object
            version = ev.object.metadata?.resourceVersion ?? version
            return done(ev.object)
          }
          if (ev.type === "DELETED") last = undefined
          return false
        })
        if (outcome === "done") return last!
        if (outcome === "gone") break // resourceVersion expired: read again
        // "closed": the server ended the watch; resume from the last version
      }
    }
  } catch (err) {
    if (controller.signal.aborted) {
      throw new HarnessError(`timed out after ${opts.timeoutMs} ms waiting for ${what}; last state: ${JSON.stringify(last?.["status"] ?? last ?? null)}`)
    }
    throw err
  } finally {
    clearTimeout(timer)
    controller.abort()
  }
}

const watchOnce = (
  client: KubeClient,
  collection: string,
  name: string,
  version: string | undefined,
  signal: AbortSignal,
  onEvent: (ev: WatchEvent) => boolean
): Promise<"done" | "closed" | "gone"> =>
  new Promise((resolve, reject) => {
    const url = new URL(collection, client.server)
    url.searchParams.set("watch", "1")
    url.searchParams.set("fieldSelector", `metadata.name=${name}`)
    if (version !== undefined) url.searchParams.set("resourceVersion", version)
    const headers: Record<string, string> = { Accept: "application/json" }
    if (client.token !== undefined) headers["Authorization"] = `Bearer ${client.token}`
    const req = request(url, { method: "GET", headers, ca: client.caPem, signal }, (res) => {
      if (res.statusCode === 410) {
        res.resume()
        resolve("gone")
        return
      }
      if (res.statusCode !== 200) {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () => reject(new KubeApiError("GET", url.pathname + url.search, res.statusCode ?? 0, Buffer.concat(chunks).toString("utf8"))))
        return
      }
      let buf = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        buf += chunk
        let nl: number
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim()
          buf = buf.slice(nl + 1)
          if (line === "") continue
          const ev = JSON.parse(line) as WatchEvent
          if (ev.type === "ERROR") {
            // a Status object; 410 means the version is too old
            const code = (ev.object as { code?: number }).code
            req.destroy()
            if (code === 410) resolve("gone")
            else reject(new HarnessError(`watch ${url.pathname}: ${JSON.stringify(ev.object)}`))
            return
          }
          if (onEvent(ev)) {
            req.destroy()
            resolve("done")
            return
          }
        }
      })
      res.on("end", () => resolve("closed"))
      res.on("error", (err) => reject(err))
    })
    req.on("error", reject)
    req.end()
  })

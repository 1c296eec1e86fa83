/**
 * The watch of the live KubeClient (`../Live.ts`): one long GET on a connection of its own, read
 * as a line-delimited JSON stream of events and aborted when the consumer stops.
 *
 * Owns: the watch request (bookmarks asked for, a server-side timeout drawn per watch), decoding
 * each line into a `WatchEvent` (ERROR events as `KubeError`s, BOOKMARKs as resume points, an
 * object that does not decode skipped as a bookmark), and closing the watch's connection with the
 * stream's scope however it ends.
 * Does not own: resuming or relisting (callers), request/reply calls (`Rest.ts`).
 *
 * client-node's `Watch` is not used: it drops unparsable lines silently and aborts after 30 s
 * without data.
 */
import { HttpMethod } from "@kubernetes/client-node/dist/gen/http/http.js"
import { Effect, Option, Random, Schema, Stream } from "effect"
import type { Resource } from "../../../domain/KubeObjects.ts"
import type { KubeError, WatchEvent, WatchOptions } from "../../../services/KubeClient.ts"
import { decodeSummary, kubeError, reasonOf } from "../Errors.ts"
import type { RestClient } from "./Connections.ts"
import { send } from "./Connections.ts"
import { collectionPath, decodeJson, failure, Status, transportError } from "./Wire.ts"

/**
 * Server-side watch timeout, drawn per watch as client-go's reflector does so that the watches of
 * many processes do not all reconnect at once. Kept under 300 s, undici's default body timeout, so
 * a quiet watch ends cleanly (the caller resumes) instead of failing.
 */
const WATCH_TIMEOUT_SECONDS = { min: 240, max: 290 } as const

const decodeStatus = Schema.decodeUnknownOption(Status)

const WatchLine = Schema.Struct({
  type: Schema.Literals(["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]),
  object: Schema.Unknown
})

const Bookmark = Schema.Struct({ metadata: Schema.Struct({ resourceVersion: Schema.String }) })

const parseEvent = <A>(resource: Resource<A>, line: string): Effect.Effect<WatchEvent<A>, KubeError> =>
  Effect.gen(function*() {
    const event = yield* decodeJson("watch", WatchLine, "watch event", line)
    switch (event.type) {
      case "ERROR": {
        const status = decodeStatus(event.object)
        const code = Option.isSome(status) ? status.value.code : undefined
        const message = Option.isSome(status) ? status.value.message : undefined
        return yield* kubeError("watch", reasonOf("watch", code ?? 500), message ?? "watch error event", code)
      }
      case "BOOKMARK": {
        const bookmark = yield* Schema.decodeUnknownEffect(Bookmark)(event.object).pipe(
          Effect.mapError((e) => kubeError("watch", "Decode", decodeSummary("watch bookmark", e)))
        )
        return { type: "BOOKMARK", resourceVersion: bookmark.metadata.resourceVersion }
      }
      default: {
        const decoded = yield* Effect.result(Schema.decodeUnknownEffect(resource.schema)(event.object))
        if (decoded._tag === "Success") return { type: event.type, object: decoded.success }
        // A malformed object is skipped like in `list`; its resourceVersion still moves the watch on.
        yield* Effect.logWarning("skipping a watch event whose object does not decode", {
          summary: decodeSummary(`${resource.kind} in ${event.type} event`, decoded.failure)
        })
        const bookmark = yield* Schema.decodeUnknownEffect(Bookmark)(event.object).pipe(
          Effect.mapError((e) => kubeError("watch", "Decode", decodeSummary(`${resource.kind} in ${event.type} event`, e)))
        )
        return { type: "BOOKMARK", resourceVersion: bookmark.metadata.resourceVersion }
      }
    }
  })

/** `KubeClient.watch` over the process's own identity. */
export const makeWatch = (own: RestClient) =>
<A>(resource: Resource<A>, options: WatchOptions): Stream.Stream<WatchEvent<A>, KubeError> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const timeoutSeconds = yield* Random.nextIntBetween(WATCH_TIMEOUT_SECONDS.min, WATCH_TIMEOUT_SECONDS.max)
      const ctx = yield* own.prepare({
        verb: "watch",
        method: HttpMethod.GET,
        path: collectionPath(resource, options.namespace),
        query: {
          watch: "true",
          resourceVersion: options.resourceVersion,
          allowWatchBookmarks: "true",
          timeoutSeconds: String(timeoutSeconds),
          labelSelector: options.labelSelector,
          fieldSelector: options.fieldSelector
        }
      }, "dedicated")
      // The watch's own connection goes when the stream's scope closes, however it ends.
      const dispatcher = ctx.getDispatcher()
      if (dispatcher !== undefined) yield* Effect.addFinalizer(() => Effect.promise(() => dispatcher.destroy().catch(() => undefined)))
      // Not the signal of tryPromise: the body is read after the response promise settles, and
      // the connection must close exactly when the stream's scope does.
      ctx.setSignal(yield* Effect.abortSignal)
      const response = yield* Effect.tryPromise({
        try: () => send(ctx),
        catch: (e) => transportError("watch", "Unavailable", "request failed", e)
      })
      if (response.httpStatusCode !== 200) {
        const text = yield* Effect.tryPromise({
          try: () => response.body.text(),
          catch: (e) => transportError("watch", "Unavailable", "reading error response", e)
        })
        return yield* failure("watch", { status: response.httpStatusCode, text })
      }
      const body = response.body.stream()
      if (body === null) return Stream.empty
      return Stream.fromReadableStream({
        evaluate: () => body,
        onError: (e) => transportError("watch", "Unavailable", "watch connection", e)
      }).pipe(
        Stream.decodeText(),
        Stream.splitLines,
        Stream.filter((line) => line.trim() !== ""),
        Stream.mapEffect((line) => parseEvent(resource, line))
      )
    }).pipe(Effect.withSpan("KubeClient.watch"))
  )

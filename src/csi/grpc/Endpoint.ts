/**
 * The `--endpoint` value and the server's errors: `unix:///abs`, `unix://rel` (made absolute, as
 * csi-lib does) or `tcp://host:port`, and the grpc-js address for it. Pure; no socket is touched here.
 */
import { Result, Schema } from "effect"

// InvalidEndpoint: unparseable --endpoint; SocketPath: cannot create the socket directory or remove a
// stale socket; Bind: grpc-js could not listen.
export const GrpcServerErrorReason = Schema.Literals(["InvalidEndpoint", "SocketPath", "Bind"])
export type GrpcServerErrorReason = typeof GrpcServerErrorReason.Type

/** The server could not start. Raised while the layer is built, never while serving. */
export class GrpcServerError extends Schema.TaggedError<GrpcServerError>()("GrpcServerError", {
  reason: GrpcServerErrorReason,
  endpoint: Schema.String,
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `${this.reason} (${this.endpoint}): ${this.detail}`
  }
}

/**
 * The longest path a unix socket address holds on Linux, in bytes: `sun_path` is 108 bytes
 * including the terminating NUL (unix(7)).
 */
export const UNIX_SOCKET_PATH_MAX_BYTES = 107

/** Where the server listens: a unix socket path (always absolute) or a TCP host and port. */
export type Endpoint =
  | { readonly _tag: "Unix"; readonly path: string }
  | { readonly _tag: "Tcp"; readonly host: string; readonly port: number }

const invalidEndpoint = (endpoint: string, detail: string) =>
  Result.fail(new GrpcServerError({ reason: "InvalidEndpoint", endpoint, detail }))

// `[v6addr]` or a name/v4 address, then a port of up to 5 digits (range checked below).
const TCP_ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[^:/[\]]*):(\d{1,5})$/

/**
 * Parses `unix:///abs/path`, `unix://rel/path` and `tcp://host:port`.
 *
 * As in the Go driver (csi-lib), the part after `unix://` is made absolute by prefixing `/`, so
 * `unix://plugin/csi.sock` and `unix:///plugin/csi.sock` both mean `/plugin/csi.sock`. An empty TCP
 * host (`tcp://:10000`) listens on every IPv4 interface; port 0 asks the kernel for a free port.
 */
export const parseEndpoint = (endpoint: string): Result.Result<Endpoint, GrpcServerError> => {
  if (endpoint.startsWith("unix://")) {
    const rest = endpoint.slice("unix://".length).replace(/^\/+/, "")
    if (rest === "" || rest.endsWith("/")) return invalidEndpoint(endpoint, "a unix endpoint needs a socket file path")
    return Result.succeed({ _tag: "Unix", path: normalizeAbsolute(`/${rest}`) })
  }
  if (endpoint.startsWith("tcp://")) {
    const match = TCP_ADDRESS.exec(endpoint.slice("tcp://".length))
    const port = Number(match?.[2] ?? Number.NaN)
    if (match === null || !(port <= 65535)) {
      return invalidEndpoint(endpoint, "a tcp endpoint must be tcp://host:port with a port in 0..65535")
    }
    return Result.succeed({ _tag: "Tcp", host: match[1] || "0.0.0.0", port })
  }
  return invalidEndpoint(endpoint, "the endpoint must start with unix:// or tcp://")
}

/** Collapses `.`, `..` and repeated slashes of an absolute POSIX path without touching the disk. */
const normalizeAbsolute = (path: string): string => {
  const parts: Array<string> = []
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue
    if (part === "..") parts.pop()
    else parts.push(part)
  }
  return `/${parts.join("/")}`
}

/** The address string grpc-js binds to. */
export const grpcAddress = (endpoint: Endpoint): string =>
  endpoint._tag === "Unix" ? `unix://${endpoint.path}` : `${endpoint.host}:${endpoint.port}`

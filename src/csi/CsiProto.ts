/**
 * The CSI v1 service definitions, loaded once per process from `proto/csi.proto`.
 *
 * Owns: locating the proto file relative to this module, the proto-loader options (see
 * `proto/README.md` for why each is set), and the cache that makes every later load free.
 * Does not own: serving or calling the services (`csi/GrpcServer.ts`, `test/support/grpcClient.ts`).
 */
import * as grpc from "@grpc/grpc-js"
import * as protoLoader from "@grpc/proto-loader"
import { Effect, Predicate, Schema } from "effect"
import { fileURLToPath } from "node:url"

export class CsiProtoError extends Schema.TaggedError<CsiProtoError>()("CsiProtoError", {
  path: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `cannot load the CSI proto definition from ${this.path}`
  }
}

/** The three CSI services, as grpc-js client constructors (each carries its `.service` definition). */
export interface CsiServices {
  readonly Identity: grpc.ServiceClientConstructor
  readonly Controller: grpc.ServiceClientConstructor
  readonly Node: grpc.ServiceClientConstructor
}

/** `src/csi/` → `proto/`; the proto ships next to the sources, so this holds from a checkout and a package. */
export const csiProtoPath: string = fileURLToPath(new URL("../../proto/csi.proto", import.meta.url))

/** proto-loader options; `proto/README.md` gives the reason for each one. */
export const loaderOptions: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true
}

const isServiceConstructor = (u: unknown): u is grpc.ServiceClientConstructor =>
  Predicate.isFunction(u) && Predicate.hasProperty(u, "service") && Predicate.isObject(u.service)

const loadUncached = (): CsiServices => {
  const root = grpc.loadPackageDefinition(protoLoader.loadSync(csiProtoPath, loaderOptions))
  const csi = root["csi"]
  const v1 = Predicate.isObject(csi) ? csi["v1"] : undefined
  const pick = (name: keyof CsiServices): grpc.ServiceClientConstructor => {
    const ctor = Predicate.isObject(v1) ? v1[name] : undefined
    if (!isServiceConstructor(ctor)) throw new Error(`service csi.v1.${name} missing from ${csiProtoPath}`)
    return ctor
  }
  return { Identity: pick("Identity"), Controller: pick("Controller"), Node: pick("Node") }
}

// Parsing the proto takes tens of milliseconds; the server and every test client share one copy.
// Only a successful load is cached, so a failed load is retried (and reported) by the next caller.
let cached: CsiServices | undefined

/** The CSI services, parsed on first use and cached for the life of the process. */
export const loadCsiServices: Effect.Effect<CsiServices, CsiProtoError> = Effect.try({
  try: () => (cached ??= loadUncached()),
  catch: (cause) => new CsiProtoError({ path: csiProtoPath, cause })
})

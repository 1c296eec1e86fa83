/**
 * The gRPC service definitions the driver serves, loaded once per process: CSI v1 from
 * `proto/csi.proto` and the kubelet's plugin registration from `proto/pluginregistration.proto`.
 *
 * Owns: locating the proto files relative to this module, the proto-loader options (see
 * `proto/README.md` for why each is set), and the caches that make every later load free.
 * Does not own: serving or calling the services (`csi/GrpcServer.ts`, `csi/Registration.ts`,
 * `test/support/grpcClient.ts`).
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
    return `cannot load the gRPC proto definition from ${this.path}`
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

/** The service constructor `pkg.name` (e.g. `["csi", "v1"]`, `"Node"`) of the proto at `protoPath`. */
const pickService = (protoPath: string, root: grpc.GrpcObject, pkg: ReadonlyArray<string>, name: string): grpc.ServiceClientConstructor => {
  let node: unknown = root
  for (const part of pkg) node = Predicate.hasProperty(node, part) ? node[part] : undefined
  const ctor = Predicate.hasProperty(node, name) ? node[name] : undefined
  if (!isServiceConstructor(ctor)) throw new Error(`service ${[...pkg, name].join(".")} missing from ${protoPath}`)
  return ctor
}

const loadRoot = (protoPath: string): grpc.GrpcObject => grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, loaderOptions))

const loadUncached = (): CsiServices => {
  const root = loadRoot(csiProtoPath)
  const pick = (name: keyof CsiServices) => pickService(csiProtoPath, root, ["csi", "v1"], name)
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

/** `src/csi/` → `proto/`: the kubelet's plugin-registration API (package `pluginregistration`). */
export const registrationProtoPath: string = fileURLToPath(new URL("../../proto/pluginregistration.proto", import.meta.url))

let cachedRegistration: grpc.ServiceClientConstructor | undefined

/** The `pluginregistration.Registration` service, parsed on first use and cached like the CSI services. */
export const loadRegistrationService: Effect.Effect<grpc.ServiceClientConstructor, CsiProtoError> = Effect.try({
  try: () => (cachedRegistration ??= pickService(registrationProtoPath, loadRoot(registrationProtoPath), ["pluginregistration"], "Registration")),
  catch: (cause) => new CsiProtoError({ path: registrationProtoPath, cause })
})

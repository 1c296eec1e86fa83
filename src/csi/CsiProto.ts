/**
 * The gRPC service definitions the driver serves, loaded once per process: CSI v1 from
 * `proto/csi.proto` and the kubelet's plugin registration from `proto/pluginregistration.proto`.
 *
 * Owns: which services of which proto, and the caches that make every later load free.
 * Does not own: the reflection of the protos (`csi/ProtoSource.ts`), building the definitions
 * (`csi/ProtoServices.ts`), serving or calling the services (`csi/GrpcServer.ts`,
 * `csi/Registration.ts`, `test/support/grpcClient.ts`).
 */
import type * as grpc from "@grpc/grpc-js"
import { Effect, Schema } from "effect"
import { protoJson, protoPath } from "./ProtoSource.ts"
import { rootOf, serviceConstructor } from "./ProtoServices.ts"

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

/** The CSI proto, for errors and tests. */
export const csiProtoPath: string = protoPath("csi")

const loadUncached = (): CsiServices => {
  const root = rootOf(protoJson("csi"))
  return {
    Identity: serviceConstructor(root, "csi.v1.Identity"),
    Controller: serviceConstructor(root, "csi.v1.Controller"),
    Node: serviceConstructor(root, "csi.v1.Node")
  }
}

// The server and every test client share one copy. Only a successful load is cached, so a failed
// load is retried (and reported) by the next caller.
let cached: CsiServices | undefined

/** The CSI services, loaded on first use and cached for the life of the process. */
export const loadCsiServices: Effect.Effect<CsiServices, CsiProtoError> = Effect.try({
  try: () => (cached ??= loadUncached()),
  catch: (cause) => new CsiProtoError({ path: csiProtoPath, cause })
})

/** The kubelet's plugin-registration API (package `pluginregistration`). */
export const registrationProtoPath: string = protoPath("pluginregistration")

let cachedRegistration: grpc.ServiceClientConstructor | undefined

/** The `pluginregistration.Registration` service, loaded on first use and cached like the CSI services. */
export const loadRegistrationService: Effect.Effect<grpc.ServiceClientConstructor, CsiProtoError> = Effect.try({
  try: () => (cachedRegistration ??= serviceConstructor(rootOf(protoJson("pluginregistration")), "pluginregistration.Registration")),
  catch: (cause) => new CsiProtoError({ path: registrationProtoPath, cause })
})

/**
 * grpc-js service definitions built from protobufjs reflection (the JSON of `csi/ProtoSource.ts`):
 * per method its path, stream flags and (de)serializers, which is all grpc-js's servers and clients
 * use.
 *
 * Owns: the conversion options between messages and the plain objects the handlers see (see
 * `proto/README.md` for why each is set), and building one service's client constructor.
 * Does not own: where the JSON comes from (`csi/ProtoSource.ts`), which services a binary loads
 * (`csi/CsiProto.ts`, `csi/WorkloadApiServer.ts`).
 *
 * Why not @grpc/proto-loader: besides the (de)serializers it builds every message's descriptor
 * (google/protobuf/descriptor.proto, encoded and decoded once per message type of the file) for
 * gRPC reflection, which this project does not serve; that pass was most of the proto cost at
 * start-up (bench/results/footprint.md). The (de)serializers here are the ones proto-loader
 * builds: `fromObject` then `encode`, and `toObject(decode(bytes))` with the options below
 * (`test/unit/csi/ProtoServices.test.ts` checks the wire bytes and objects against it). Types
 * are resolved and their coders generated on the first message of each type, not at load.
 */
import * as grpc from "@grpc/grpc-js"
import protobuf from "protobufjs/light.js"

/**
 * Message → plain object: int64 as decimal strings, enums by name, absent fields filled with their
 * defaults, and a virtual field naming each oneof's chosen member (`proto/README.md`).
 */
export const objectOptions: protobuf.IConversionOptions = {
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true
}

/** The reflection root of one proto's JSON, to look its services up in. */
export const rootOf = (json: protobuf.INamespace): protobuf.Root => protobuf.Root.fromJSON(json)

const serializer = (type: protobuf.Type) => (value: unknown): Buffer => {
  // As proto-loader: an array is no message (fromObject would take it as one with index keys).
  if (Array.isArray(value)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`)
  const bytes = type.encode(type.fromObject(value as Record<string, unknown>)).finish()
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

const deserializer = (type: protobuf.Type) => (bytes: Buffer): unknown => type.toObject(type.decode(bytes), objectOptions)

/**
 * The grpc-js client constructor of the service `fullName` (`"csi.v1.Node"`, `"SpiffeWorkloadAPI"`);
 * its `.service` is what a server adds. Throws when the root has no such service.
 */
export const serviceConstructor = (root: protobuf.Root, fullName: string): grpc.ServiceClientConstructor => {
  const service = root.lookupService(fullName)
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {}
  for (const method of service.methodsArray) {
    // Resolves the request and response type names relative to the service's package.
    method.resolve()
    const request = method.resolvedRequestType
    const response = method.resolvedResponseType
    if (request === null || response === null) throw new Error(`${fullName}.${method.name}: request or response type not found`)
    definition[method.name] = {
      path: `/${fullName}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: serializer(request),
      requestDeserialize: deserializer(request),
      responseSerialize: serializer(response),
      responseDeserialize: deserializer(response)
    }
  }
  return grpc.makeGenericClientConstructor(definition, service.name)
}

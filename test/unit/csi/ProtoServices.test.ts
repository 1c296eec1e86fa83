/**
 * The service definitions of `csi/ProtoServices.ts` against the ones @grpc/proto-loader builds from
 * the same .proto with the options the driver used before (proto/README.md): the same services and
 * methods, paths and stream flags, and for every request and response type of every method the same
 * wire bytes and the same decoded objects, for a message with every field set and for an empty one.
 * Each check runs twice: on the JSON as the sources make it at run time and on that JSON after a
 * trip through its text, which is what the bundle reads from `dist/proto/<name>.json`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as grpc from "@grpc/grpc-js"
import * as protoLoader from "@grpc/proto-loader"
import protobuf from "protobufjs/light.js"
import { protoJson, type ProtoName, protoNames, protoPath } from "../../../src/csi/ProtoSource.ts"
import { rootOf, serviceConstructor } from "../../../src/csi/ProtoServices.ts"

const services: Record<ProtoName, ReadonlyArray<string>> = {
  csi: ["csi.v1.Identity", "csi.v1.Controller", "csi.v1.Node"],
  pluginregistration: ["pluginregistration.Registration"],
  workload: ["SpiffeWorkloadAPI"]
}

/** What the driver loaded until now: proto-loader on the .proto, with its options of then. */
const reference = (name: ProtoName, fullName: string): grpc.ServiceDefinition => {
  const definition = protoLoader.loadSync(protoPath(name), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true })
  const service = definition[fullName]
  assert.isDefined(service, `${fullName} in ${name}.proto`)
  return service as grpc.ServiceDefinition
}

const LONG = "9007199254740993" // 2^53 + 1: survives only as a string

/** One value of `field`'s type; the `i`th of a repeated field or map. */
const valueOf = (field: protobuf.Field, i: number, depth: number): unknown => {
  const type = field.resolve().resolvedType
  if (type instanceof protobuf.Enum) {
    const names = Object.keys(type.values)
    return names[i % names.length]
  }
  if (type instanceof protobuf.Type) return depth > 4 ? {} : sample(type, depth + 1)
  switch (field.type) {
    case "string":
      return `${field.name}-${i}`
    case "bytes":
      return Buffer.from([i, 0, 255, 128])
    case "bool":
      return true
    case "double":
    case "float":
      return 1.5 + i
    case "int64":
    case "uint64":
    case "sint64":
    case "fixed64":
    case "sfixed64":
      return LONG
    default:
      return 7 * i
  }
}

/** A message of `type` with every field set (only the first member of each oneof). */
const sample = (type: protobuf.Type, depth = 0): Record<string, unknown> => {
  const others = new Set(type.oneofsArray.flatMap((oneof) => oneof.fieldsArray.slice(1).map((f) => f.name)))
  const message: Record<string, unknown> = {}
  for (const field of type.fieldsArray) {
    if (others.has(field.name)) continue
    if (field.map) message[field.name] = { [`key-1`]: valueOf(field, 1, depth), [`key-2`]: valueOf(field, 2, depth) }
    else if (field.repeated) message[field.name] = [valueOf(field, 1, depth), valueOf(field, 2, depth)]
    else message[field.name] = valueOf(field, 1, depth)
  }
  return message
}

const ways: ReadonlyArray<readonly [string, (name: ProtoName) => protobuf.Root]> = [
  ["the JSON made at run time (the sources)", (name) => rootOf(protoJson(name))],
  ["the JSON read back from its text (the bundle)", (name) => rootOf(JSON.parse(JSON.stringify(protoJson(name))))]
]

describe.each(ways)("service definitions from %s", (_, load) => {
  describe.each(protoNames.flatMap((name) => services[name].map((fullName) => [name, fullName] as const)))("%s.proto %s", (name, fullName) => {
    const root = load(name)
    const ours = serviceConstructor(root, fullName).service
    const theirs = reference(name, fullName)

    it("has the same methods, paths and stream flags", () => {
      assert.deepStrictEqual(Object.keys(ours).sort(), Object.keys(theirs).sort())
      for (const [method, def] of Object.entries(theirs)) {
        const mine = ours[method]!
        assert.strictEqual(mine.path, def.path, method)
        assert.strictEqual(mine.requestStream, def.requestStream, method)
        assert.strictEqual(mine.responseStream, def.responseStream, method)
      }
    })

    it("encodes and decodes every request and response as proto-loader does", () => {
      const service = root.lookupService(fullName)
      for (const method of service.methodsArray) {
        method.resolve()
        const mine = ours[method.name]!
        const def = theirs[method.name]!
        const sides = [
          ["request", method.resolvedRequestType!, mine.requestSerialize, mine.requestDeserialize, def.requestSerialize, def.requestDeserialize],
          ["response", method.resolvedResponseType!, mine.responseSerialize, mine.responseDeserialize, def.responseSerialize, def.responseDeserialize]
        ] as const
        for (const [side, type, serialize, deserialize, serializeRef, deserializeRef] of sides) {
          for (const message of [sample(type), {}]) {
            const what = `${method.name} ${side} ${type.name} ${Object.keys(message).length === 0 ? "empty" : "full"}`
            const bytes = serialize(message)
            assert.deepStrictEqual(Buffer.from(bytes), Buffer.from(serializeRef(message)), what)
            assert.deepStrictEqual(deserialize(bytes), deserializeRef(bytes), what)
            if (Object.keys(message).length > 0) assert.isAbove(bytes.length, 0, what)
          }
        }
      }
    })

    it("rejects an array as a message, as proto-loader does", () => {
      const [method] = Object.keys(theirs)
      assert.throws(() => ours[method!]!.requestSerialize([]), /expected object/)
      assert.throws(() => theirs[method!]!.requestSerialize([]), /expected object/)
    })
  })
})

describe("the full sample", () => {
  it("reaches int64, enums, maps, oneofs, wrappers and bytes (so the byte comparison above covers them)", () => {
    const root = rootOf(protoJson("csi"))
    const info = sample(root.lookupType("csi.v1.NodeGetInfoResponse"))
    assert.strictEqual(info["max_volumes_per_node"], LONG)
    const publish = sample(root.lookupType("csi.v1.NodePublishVolumeRequest"))
    assert.deepStrictEqual(Object.keys(publish["secrets"] as object), ["key-1", "key-2"])
    const capability = publish["volume_capability"] as Record<string, unknown>
    assert.isDefined(capability["block"] ?? capability["mount"])
    const probe = sample(root.lookupType("csi.v1.ProbeResponse"))
    assert.deepStrictEqual(probe["ready"], { value: true })
    const svid = sample(rootOf(protoJson("workload")).lookupType("X509SVIDResponse"))
    assert.instanceOf((svid["crl"] as Array<unknown>)[0], Buffer)
  })
})

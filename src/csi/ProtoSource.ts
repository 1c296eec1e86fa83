/**
 * Where the reflection of a proto file of `proto/` comes from: protobufjs's JSON form of it (every
 * type and service the file defines, with the google/protobuf types it imports), which
 * `csi/ProtoServices.ts` turns into grpc-js service definitions.
 *
 * Owns: parsing `proto/<name>.proto` with protobufjs (field names kept snake_case, every type
 * resolved, so a broken proto fails here) into that JSON.
 * Does not own: the service definitions (`csi/ProtoServices.ts`).
 *
 * The sources parse the file at run time. The bundle (`scripts/bundle.ts`) calls this same
 * `protoJson` at build time, writes its result to `dist/proto/<name>.json`, and replaces this
 * module with `scripts/bundle/ProtoSource.ts`, which reads that file: the bundled binaries never
 * parse a .proto nor load protobufjs's parser, and from the JSON on both run the same code.
 */
import protobuf from "protobufjs"
import { fileURLToPath } from "node:url"

/** The proto files of `proto/` that the binaries serve or call. */
export const protoNames = ["csi", "pluginregistration", "workload"] as const

export type ProtoName = typeof protoNames[number]

/** The file a proto's reflection comes from (`src/csi/` → `proto/`), for errors. */
export const protoPath = (name: ProtoName): string => fileURLToPath(new URL(`../../proto/${name}.proto`, import.meta.url))

/**
 * protobufjs's JSON of `proto/<name>.proto`. `keepCase`: field names stay snake_case
 * (`volume_context`, `node_id`), as in the spec and in `CsiPlugin` (`proto/README.md`).
 */
export const protoJson = (name: ProtoName): protobuf.INamespace => {
  const root = new protobuf.Root().loadSync(protoPath(name), { keepCase: true })
  root.resolveAll()
  return root.toJSON()
}

// Our container images without a registry: ensureImages runs scripts/images/build.sh (which builds
// what is missing or out of date and is instant when everything is cached) and reads the
// CSI_SPIFFE_IMAGE_* lines it prints; importImages loads the archives into a containerd's `k8s.io`
// namespace, the one its CRI plugin (and so the kubelet) sees. Pods name the refs with
// `imagePullPolicy: Never`; containerd's sandbox image is `pause.ref`.
// Variables already set in the environment win, so a caller can point at images built elsewhere.
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { envLines, HarnessError, runCollecting } from "./process.ts"

export const imagesScript = fileURLToPath(new URL("../../scripts/images/build.sh", import.meta.url))

export interface LocalImage {
  readonly ref: string
  readonly archive: string
}
export interface LocalImages {
  readonly driver: LocalImage
  readonly pause: LocalImage
  readonly app: LocalImage
}

/** The containerd namespace of the CRI plugin. */
export const criNamespace = "k8s.io"

const image = (env: Readonly<Record<string, string>>, name: string): LocalImage => {
  const ref = process.env[`CSI_SPIFFE_IMAGE_${name}`] ?? env[`CSI_SPIFFE_IMAGE_${name}`]
  const archive = process.env[`CSI_SPIFFE_IMAGE_${name}_ARCHIVE`] ?? env[`CSI_SPIFFE_IMAGE_${name}_ARCHIVE`]
  if (ref === undefined || archive === undefined) {
    throw new HarnessError(`${imagesScript} printed no CSI_SPIFFE_IMAGE_${name}{,_ARCHIVE} line`)
  }
  return { ref, archive }
}

export const ensureImages = async (
  opts: { readonly onProgress?: (line: string) => void } = {}
): Promise<LocalImages> => {
  const onProgress = opts.onProgress ?? ((line: string) => process.stderr.write(`${line}\n`))
  const env = envLines(await runCollecting("bash", [imagesScript], onProgress), "CSI_SPIFFE_IMAGE_")
  return { driver: image(env, "DRIVER"), pause: image(env, "PAUSE"), app: image(env, "APP") }
}

const run = promisify(execFile)

/** The refs a containerd holds in the CRI namespace. */
export const listImages = async (ctr: string, address: string): Promise<ReadonlyArray<string>> => {
  const { stdout } = await run(ctr, ["--address", address, "--namespace", criNamespace, "images", "ls", "--quiet"])
  return stdout.split("\n").filter((l) => l !== "")
}

export const importImages = async (opts: {
  readonly ctr: string
  readonly address: string
  readonly images: LocalImages
}): Promise<void> => {
  const all = [opts.images.driver, opts.images.pause, opts.images.app]
  for (const img of all) {
    try {
      await run(opts.ctr, ["--address", opts.address, "--namespace", criNamespace, "images", "import", img.archive], {
        maxBuffer: 16 * 1024 * 1024
      })
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? String(err)
      throw new HarnessError(`ctr images import ${img.archive} (${img.ref}) into ${opts.address} failed: ${stderr}`)
    }
  }
  // The archive names the image; make sure containerd took that very name (a ref that does not
  // match what the pods ask for would only show as ErrImageNeverPull much later).
  const present = new Set(await listImages(opts.ctr, opts.address))
  const missing = all.filter((img) => !present.has(img.ref)).map((img) => img.ref)
  if (missing.length > 0) {
    throw new HarnessError(`after import, containerd at ${opts.address} lacks ${missing.join(", ")} (has: ${[...present].join(", ")})`)
  }
}

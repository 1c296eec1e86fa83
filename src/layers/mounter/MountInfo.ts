/**
 * Parsing /proc/<pid>/mountinfo (proc(5)): the one place that knows its line format and escapes.
 * Pure; the Linux mounter reads the file, tests parse fixtures.
 */

/** One line of /proc/<pid>/mountinfo (proc(5)), with octal escapes decoded. */
export interface MountInfoEntry {
  readonly mountId: number
  readonly parentId: number
  /** Root of the mount within its file system (for a bind mount: the source directory). */
  readonly root: string
  readonly mountPoint: string
  /** Per-mount options, e.g. `ro`, `nosuid`. */
  readonly mountOptions: ReadonlyArray<string>
  readonly fsType: string
  readonly source: string
  /** Per-superblock options, e.g. `size=65536k`, `mode=700`. */
  readonly superOptions: ReadonlyArray<string>
}

/** The kernel escapes space, tab, newline and backslash as `\ooo` in paths (`\040` is a space). */
const decodeOctal = (field: string): string =>
  field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)))

const parseLine = (line: string): MountInfoEntry | undefined => {
  const fields = line.split(" ")
  const separator = fields.indexOf("-", 6)
  if (separator === -1 || fields.length < separator + 4) return undefined
  const [mountId, parentId, , root, mountPoint, mountOptions] = fields
  const [fsType, source, superOptions] = fields.slice(separator + 1)
  if (
    mountId === undefined || parentId === undefined || root === undefined || mountPoint === undefined ||
    mountOptions === undefined || fsType === undefined || source === undefined || superOptions === undefined
  ) return undefined
  const id = Number(mountId)
  const parent = Number(parentId)
  if (!Number.isInteger(id) || !Number.isInteger(parent)) return undefined
  return {
    mountId: id,
    parentId: parent,
    root: decodeOctal(root),
    mountPoint: decodeOctal(mountPoint),
    mountOptions: mountOptions.split(","),
    fsType: decodeOctal(fsType),
    source: decodeOctal(source),
    superOptions: superOptions.split(",")
  }
}

/**
 * Parses /proc/<pid>/mountinfo text: `id parent major:minor root mount-point options [optional
 * fields…] - fstype source super-options`. Lines that do not have that shape are skipped.
 */
export const parseMountInfo = (text: string): ReadonlyArray<MountInfoEntry> =>
  text.split("\n").flatMap((line) => {
    const entry = line.length === 0 ? undefined : parseLine(line)
    return entry === undefined ? [] : [entry]
  })

/**
 * The text to show for a failure of Effect's FileSystem or ChildProcess services. PlatformError's
 * own message names the method and path (`NotFound: FileSystem.readFile (/x)`); the system's message
 * it wraps is what an operator searches for (`ENOENT: no such file or directory, open '/x'`), so that
 * one is preferred. The PlatformError itself travels on as the error's `cause`.
 */
import type { PlatformError } from "effect"

export const platformText = (error: PlatformError.PlatformError): string => {
  const cause = error.reason.cause
  return cause instanceof Error ? cause.message : error.message
}

/** The errno code (`ENOENT`, `ENOTDIR`, …) behind a PlatformError, when a system call failed. */
export const errnoCode = (error: PlatformError.PlatformError): string | undefined => {
  const cause: unknown = error.reason.cause
  return typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
    ? cause.code
    : undefined
}

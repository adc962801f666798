/** Small path questions shared by the output guard and the Hugging Face cache resolver. */
import fs from 'node:fs'
import path from 'node:path'

/** A path's real path (links resolved), or undefined when it cannot be resolved. */
export function realpathOrUndefined(p: string): string | undefined {
  try {
    return fs.realpathSync(p)
  } catch {
    return undefined
  }
}

/** `child` is `parent` or lies inside it (both absolute, as they are: no links resolved here). */
export function within(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep)
}

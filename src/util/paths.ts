/** Small path questions shared by the output guard, the Hugging Face cache resolver, the tokenizer and verify. */
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

/** Whether `p` is (or links to) a regular file; false when it cannot be looked at. */
export function isFile(p: string): boolean {
  return statOrUndefined(p)?.isFile() ?? false
}

/** Whether `p` is (or links to) a folder; false when it cannot be looked at. */
export function isDirectory(p: string): boolean {
  return statOrUndefined(p)?.isDirectory() ?? false
}

function statOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p)
  } catch {
    return undefined
  }
}

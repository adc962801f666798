/**
 * The mark albertkit leaves on what it writes, so that `--force` can tell its own outputs from
 * anything else (util/output-guard.ts reads it; report/provenance.ts and pipeline/convert.ts
 * write it).
 */

/** The prefix of albertkit's keys in an ONNX file's metadata_props: a file that has one is albertkit's output. */
export const METADATA_PREFIX = 'albertkit.'

/**
 * The mark of a folder albertkit wrote, in its report.json: `albertkit` (the version that wrote
 * it) and `written`, every file albertkit put in the folder (report.json included) as relative
 * paths with `/`. `--force` replaces such a folder only while it holds nothing else.
 */
export interface FolderMark {
  albertkit: string
  written: string[]
}

/** The mark in a parsed report.json, or undefined when it has none. */
export function folderMarkOf(report: unknown): FolderMark | undefined {
  if (typeof report !== 'object' || report === null || Array.isArray(report)) return undefined
  const r = report as Record<string, unknown>
  if (typeof r.albertkit !== 'string' || !Array.isArray(r.written)) return undefined
  if (!r.written.every((f) => typeof f === 'string')) return undefined
  return { albertkit: r.albertkit, written: r.written as string[] }
}

/**
 * What convert and optimize write: `--out` and `--force`; the folder as typed, a line per model
 * and per alias; and the files besides the input that the output must keep clear of.
 */
import { Flags } from '@oclif/core'
import type { Artifact } from '../pipeline/convert.js'
import type { Alias } from '../pipeline/layout.js'
import { dtypeOfFile } from '../targets/precision.js'
import { formatVerdict } from '../verify/verdict.js'
import { formatBytes } from '../util/format.js'
import type { FlagGroup } from './help.js'

/** `--out` and `--force` for a command that writes a `what` (a folder, a file); `out` is --out's description. */
export function outputFlags(what: 'folder' | 'file', out: string) {
  return {
    out: Flags.string({ char: 'o', description: out, required: true, helpValue: `<${what}>`, helpGroup: 'OUTPUT' satisfies FlagGroup }),
    force: Flags.boolean({ char: 'f', description: `replace the output ${what} if it exists`, default: false, helpGroup: 'OUTPUT' satisfies FlagGroup }),
  }
}

/** The output folder as the user typed it, without trailing slashes (`build/x/` → `build/x`). */
export function outputShown(out: string): string {
  return out.replace(/(.)\/+$/, '$1')
}

/**
 * A line per model written (file, precision, size, nodes, parity verdict), a model out of
 * tolerance followed by its figures and what it missed; then a line per alias.
 */
export function folderLines(out: string, report: { artifacts: readonly Artifact[]; aliases: readonly Alias[] }): string[] {
  const lines: string[] = []
  for (const a of report.artifacts) {
    const verdict = a.verdict ? (a.verdict.pass ? ', parity PASS' : ', parity FAIL') : ''
    lines.push(`${out}/${a.path}: ${a.precision}, ${formatBytes(a.bytes)}, ${a.nodes} nodes${verdict}`)
    if (a.verdict && !a.verdict.pass) lines.push(...formatVerdict(a.verdict).slice(1))
  }
  for (const a of report.aliases) lines.push(`${out}/${a.file}: ${a.how === 'link' ? 'hard link to' : 'copy of'} ${a.of} (transformers.js dtype ${dtypeOfFile(a.file)})`)
  return lines
}

/** The files besides the input that a run reads, which the output must keep clear of (util/output-guard.ts). */
export function readFiles(flags: { 'text-file'?: string | undefined; calibration?: string | undefined; recipe?: string | undefined; eval?: string | undefined }) {
  return [
    ...(flags.eval ? [{ path: flags.eval, what: 'the --eval file' }] : []),
    ...(flags['text-file'] ? [{ path: flags['text-file'], what: 'the --text-file' }] : []),
    ...(flags.calibration ? [{ path: flags.calibration, what: 'the --calibration file' }] : []),
    ...(flags.recipe ? [{ path: flags.recipe, what: 'the recipe' }] : []),
  ]
}

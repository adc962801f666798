/**
 * Exit codes, the same for every command (docs/exit-codes.md), and the sorting of a thrown error
 * into one of them.
 */
import { UsageError, UserError, describe } from '../util/errors.js'
import { DecodeError } from '../onnx/decode.js'
import { fsCause, isSystemError } from '../util/output-guard.js'
import type { ExitCodeRows } from './help.js'
import { prose } from './prose.js'

export const EXIT = {
  /** everything done; every model verified within tolerance */
  ok: 0,
  /** the parity verdict: at least one model out of tolerance */
  parity: 1,
  /** how the command was called: unknown flag, missing argument, bad flag value, invalid recipe */
  usage: 2,
  /** the files: unreadable or malformed checkpoint or ONNX file, unsupported model, output exists, a failed write */
  input: 3,
  /** a bug in albertkit */
  internal: 4,
} as const

const CAUSES = { ok: 'success', parity: 'parity check failed', usage: 'usage', input: 'input/output' } as const

/**
 * A command's EXIT CODES rows for --help, from its causes for each code it can end with, written
 * as prose: a paragraph a code, opening with the code's name (`ok:`, `parity:`, `usage:`,
 * `input:`), in code order; the internal-error row is the same for every command and added here.
 */
export function exitCodeRows(causes: string): ExitCodeRows {
  const rows: [number, string][] = prose(causes)
    .split('\n\n')
    .map((p) => {
      const [, name, text] = /^(\w+): (.*)$/s.exec(p) ?? []
      if (!name || !(name in CAUSES)) throw new Error(`exit code causes: '${p.slice(0, 40)}' names no exit code`)
      const kind = name as keyof typeof CAUSES
      return [EXIT[kind], `${CAUSES[kind]}: ${text}`]
    })
  rows.push([EXIT.internal, 'internal error: a bug in albertkit (ALBERTKIT_DEBUG=1 prints the stack)'])
  return rows
}

export type ErrorKind = 'usage' | 'input' | 'internal'

export interface ClassifiedError {
  kind: ErrorKind
  exitCode: number
  /** one line, without the `Error: ` prefix */
  message: string
}

/** The one-line message, its kind and its exit code for anything a command threw. */
export function classify(err: unknown, command?: string): ClassifiedError {
  if (err instanceof UsageError) return { kind: 'usage', exitCode: EXIT.usage, message: oneLine(err.message) }
  if (err instanceof UserError || err instanceof DecodeError) return { kind: 'input', exitCode: EXIT.input, message: oneLine(err.message) }
  if (isParseError(err)) {
    const help = command ? ` (see ${command} --help)` : ''
    return { kind: 'usage', exitCode: EXIT.usage, message: parseMessage(err) + help }
  }
  if (isSystemError(err)) {
    const file = err.path ?? /'([^']+)'/.exec(err.message)?.[1]
    return { kind: 'input', exitCode: EXIT.input, message: oneLine(file ? `${file}: ${fsCause(err)}` : fsCause(err)) }
  }
  return { kind: 'internal', exitCode: EXIT.internal, message: `${describe(err)} (internal error; set ALBERTKIT_DEBUG=1 for details)` }
}

/** oclif's own exit (this.exit), which carries its code through untouched. */
export function isOclifExit(err: unknown): boolean {
  return (err as { code?: unknown })?.code === 'EEXIT' && (err as { oclif?: { exit?: unknown } }).oclif?.exit !== undefined
}

/** An error of oclif's argument parser (unknown flag, missing argument, a value that does not parse): oclif's CLIErrors carry an exit code. */
function isParseError(err: unknown): err is Error & { args?: { name?: string }[] } {
  return err instanceof Error && (err as { oclif?: { exit?: unknown } }).oclif?.exit !== undefined && !isOclifExit(err)
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g

function oneLine(text: string): string {
  return text.replace(ANSI, '').split('\n').map((l) => l.trim()).filter(Boolean).join('; ')
}

/** oclif's several-line parse messages as one line. */
function parseMessage(err: Error & { args?: { name?: string }[] }): string {
  const lines = err.message
    .replace(ANSI, '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && l !== 'See more help with --help')
  if (/^Missing \d+ required arg/.test(lines[0] ?? '') && err.args?.length) {
    const names = err.args.map((a) => (a.name ?? '?').toUpperCase())
    return `missing argument${names.length === 1 ? '' : 's'} ${names.join(', ')}`
  }
  if (/^The following errors? occurred:$/.test(lines[0] ?? '')) lines.shift()
  for (const [i, l] of lines.entries()) lines[i] = l.replace(/^Missing required flag (\S+)$/, 'missing required flag --$1')
  const [first = 'bad arguments', ...rest] = lines
  return rest.length ? `${first.replace(/:$/, '')}: ${rest.join('; ')}` : first
}

/** Help text every command shares. */
import { EXIT } from './exit-codes.js'

function table(parity: boolean): string {
  const rows: [number, string][] = [
    [EXIT.ok, parity ? 'success, every model within tolerance' : 'success'],
    ...(parity ? ([[EXIT.parity, 'parity check failed: at least one model out of tolerance']] as [number, string][]) : []),
    [EXIT.usage, 'usage: unknown flag, missing argument, bad flag value, bad recipe file'],
    [EXIT.input, 'input/output: bad checkpoint or ONNX file, output exists (no --force)'],
    [EXIT.internal, 'internal error: a bug (ALBERTKIT_DEBUG=1 prints the stack)'],
  ]
  // oclif re-wraps each line and drops leading spaces: rows are kept short enough to stay one line.
  return `Exit codes (docs/exit-codes.md):\n${rows.map(([code, text]) => `${code}  ${text}`).join('\n')}\nWith --json, stdout holds one JSON document: the result, or {"error": {"message", "kind", "exitCode"}}.`
}

/** For commands that give a parity verdict (convert, verify). */
export const EXIT_CODES_HELP = table(true)
/** For commands without one (inspect, optimize). */
export const EXIT_CODES_HELP_NO_PARITY = table(false)

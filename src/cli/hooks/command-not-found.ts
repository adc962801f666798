/**
 * oclif's command_not_found hook: an unknown command is a usage error like any other — one line on
 * stderr naming the nearest command when the word looks like a typo of one and the commands there
 * are, exit code 2, and with --json the error document on stdout. It never asks anything (oclif's
 * plugin-not-found would ask y/n on a terminal, which a script cannot answer).
 */
import type { Hook } from '@oclif/core'
import { EXIT } from '../exit-codes.js'
import { closest, didYouMean } from '../../util/suggest.js'

const hook: Hook.CommandNotFound = async function (opts) {
  const visible = opts.config.commands.filter((c) => !c.hidden)
  // The list names albertkit's own commands; a suggestion may also be help, version or autocomplete.
  const own = visible.filter((c) => c.pluginName === opts.config.name).map((c) => c.id).sort()
  const word = opts.id.split(':')[0]!
  const flag = word.startsWith('-')
  // Before a command, only --help and --version mean anything (a one-letter flag gets no guess).
  const near = !flag ? closest(word, visible.map((c) => c.id).sort()) : word.startsWith('--') ? closest(word.slice(2), ['help', 'version']).map((n) => `--${n}`) : []
  const hint = didYouMean(near)
  const message = `unknown ${flag ? 'flag' : 'command'} '${word}'${hint ? `; ${hint}` : ''} (commands: ${own.join(', ')}; see ${opts.config.bin} --help)`
  if (opts.argv?.includes('--json')) {
    process.stdout.write(JSON.stringify({ error: { message, kind: 'usage', exitCode: EXIT.usage } }, null, 2) + '\n')
  }
  process.stderr.write(`Error: ${message}\n`)
  process.exit(EXIT.usage)
}

export default hook

/**
 * oclif's command_not_found hook: an unknown command is a usage error like any other — one line on
 * stderr naming the commands there are, exit code 2, and with --json the error document on stdout.
 */
import type { Hook } from '@oclif/core'
import { EXIT } from '../exit-codes.js'

const hook: Hook.CommandNotFound = async function (opts) {
  const commands = opts.config.commands.filter((c) => !c.hidden).map((c) => c.id).sort()
  const message = `unknown command '${opts.id.split(':')[0]}' (commands: ${commands.join(', ')}; see albertkit --help)`
  if (opts.argv?.includes('--json')) {
    process.stdout.write(JSON.stringify({ error: { message, kind: 'usage', exitCode: EXIT.usage } }, null, 2) + '\n')
  }
  process.stderr.write(`Error: ${message}\n`)
  process.exit(EXIT.usage)
}

export default hook

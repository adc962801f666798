import { Command } from '@oclif/core'
import { UserError, describe } from '../util/errors.js'
import { DecodeError } from '../onnx/decode.js'

/**
 * Every albertkit command: a problem with the user's input is one line on stderr and exit code 1,
 * never a stack trace (set ALBERTKIT_DEBUG=1 to see one).
 */
export abstract class AlbertkitCommand extends Command {
  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<unknown> {
    if (err instanceof UserError || err instanceof DecodeError) {
      process.stderr.write(`Error: ${err.message}\n`)
      if (process.env.ALBERTKIT_DEBUG) process.stderr.write(`${err.stack}\n`)
      this.exit(1)
    }
    if (err.oclif?.exit !== undefined || process.env.ALBERTKIT_DEBUG) return super.catch(err)
    process.stderr.write(`Error: ${describe(err)} (internal error; set ALBERTKIT_DEBUG=1 for details)\n`)
    this.exit(1)
  }
}

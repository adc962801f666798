import { Command, Flags } from '@oclif/core'
import { UsageError, UserError } from '../util/errors.js'
import { EXIT, classify, isOclifExit } from './exit-codes.js'
import { createProgress, type Progress } from '../util/progress.js'

/**
 * Every albertkit command. A problem is one line on stderr (set ALBERTKIT_DEBUG=1 for the stack)
 * and an exit code that says whose it is (see exit-codes.ts): 2 how the command was called, 3 the
 * files, 4 a bug; 1 stays the parity verdict. With --json, stdout holds one JSON document: the
 * result, or `{"error": {"message", "kind", "exitCode"}}`.
 */
export abstract class AlbertkitCommand extends Command {
  static override baseFlags = {
    quiet: Flags.boolean({ char: 'q', description: 'print nothing on stderr but errors (no progress, no warnings); results still go to stdout', default: false }),
  }

  private reporter: Progress | undefined

  /** The progress reporter for this run, on stderr: live on a terminal, plain lines elsewhere, nothing with --quiet. */
  protected progress(flags: { quiet?: boolean }): Progress {
    this.reporter?.close()
    this.reporter = createProgress({ stream: process.stderr, json: this.jsonEnabled(), quiet: !!flags.quiet })
    onInterrupt(() => this.reporter?.close())
    return this.reporter
  }

  /** Run `fn`, reporting any UserError it throws as a usage error (exit code 2): for checking flag values. */
  protected usage<T>(fn: () => T): T {
    try {
      return fn()
    } catch (e) {
      if (e instanceof UserError && !(e instanceof UsageError)) throw new UsageError(e.message)
      throw e
    }
  }

  /** The exit code when at least one model is out of tolerance. */
  protected parityFailed(): void {
    process.exitCode = EXIT.parity
  }

  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<unknown> {
    this.reporter?.close()
    if (isOclifExit(err)) throw err
    const c = classify(err, `${this.config.bin} ${this.id ?? ''}`.trim())
    process.stderr.write(`Error: ${c.message}\n`)
    if (process.env.ALBERTKIT_DEBUG) process.stderr.write(`${err.stack}\n`)
    if (this.jsonEnabled()) process.stdout.write(JSON.stringify({ error: { message: c.message, kind: c.kind, exitCode: c.exitCode } }, null, 2) + '\n')
    this.exit(c.exitCode)
  }

  protected override async finally(err: Error | undefined): Promise<unknown> {
    this.reporter?.close()
    return super.finally(err)
  }
}

let interruptHandled = false
let onInterruptClose: (() => void) | undefined

/**
 * Ctrl-C (SIGTERM, SIGHUP) while a live progress line is drawn: clear it, so the shell's prompt
 * does not land on half a bar, then let the signal end the process as it would have (staged output
 * folders clean themselves up on the same signal, util/atomic.ts). This runs only when the event
 * loop is free; a command busy in synchronous work is killed by its supervisor (cli/supervisor.ts),
 * which then removes what was staged and prints the one line about the interruption.
 */
function onInterrupt(close: () => void): void {
  onInterruptClose = close
  if (interruptHandled) return
  interruptHandled = true
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      onInterruptClose?.()
      process.kill(process.pid, sig)
    })
  }
}

import { Command, Flags, type Interfaces } from '@oclif/core'
import { UsageError, UserError } from '../util/errors.js'
import { EXIT, classify, isOclifExit } from './exit-codes.js'
import { createProgress, type Progress } from '../util/progress.js'
import { closest, didYouMean } from '../util/suggest.js'
import type { FlagGroup } from './help.js'
import { type ParsedFlags, readRecipe, withRecipe } from './recipe.js'

/**
 * Every albertkit command. A problem is one line on stderr (set ALBERTKIT_DEBUG=1 for the stack)
 * and an exit code that says whose it is (see exit-codes.ts): 2 how the command was called, 3 the
 * files, 4 a bug; 1 stays the parity verdict. With --json, stdout holds one JSON document: the
 * result, or `{"error": {"message", "kind", "exitCode"}}`.
 */
export abstract class AlbertkitCommand extends Command {
  static override baseFlags = {
    // oclif's own --json ("Format output as json") said nothing of errors or of stderr.
    json: Flags.boolean({
      description: 'print exactly one JSON document on stdout and nothing else: the result, or {"error": {"message", "kind", "exitCode"}} for exit codes 2 to 4; progress and warnings stay on stderr',
      helpGroup: 'OUTPUT' satisfies FlagGroup,
    }),
    quiet: Flags.boolean({ char: 'q', description: 'print nothing on stderr but errors (no progress, no warnings); results still go to stdout', default: false, helpGroup: 'OUTPUT' satisfies FlagGroup }),
  }

  static override enableJsonFlag = true

  private reporter: Progress | undefined

  /** The progress reporter for this run, on stderr: live on a terminal, plain lines elsewhere, nothing with --quiet; detail with --verbose. */
  protected progress(flags: { quiet?: boolean; verbose?: boolean }): Progress {
    this.reporter?.close()
    this.reporter = createProgress({ stream: process.stderr, json: this.jsonEnabled(), quiet: !!flags.quiet, verbose: !!flags.verbose })
    onInterrupt(() => this.reporter?.close())
    return this.reporter
  }

  /**
   * Parse the command line, then fill in what the --recipe file pins wherever the command line
   * gives nothing (flags typed win: cli/recipe.ts). `typed` is the parse itself, for asking which
   * flags were typed (`given`).
   */
  protected async parseWithRecipe<F extends object, B extends object, A extends object>(command: Interfaces.Input<F, B, A>) {
    const parsed = await this.parse(command)
    const file = (parsed.flags as { recipe?: string | undefined }).recipe
    const recipe = file ? readRecipe(file) : undefined
    return { args: parsed.args, flags: withRecipe(parsed, recipe, command.flags ?? {}), recipe, typed: parsed as unknown as ParsedFlags<Record<string, unknown>> }
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
    suggestFlags(err, { ...this.ctor.baseFlags, ...this.ctor.flags })
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

/**
 * oclif's "Nonexistent flag: --forse" with the command's nearest flags: "Nonexistent flag: --forse;
 * did you mean --force?" (the message is changed in place; other errors are left alone).
 */
export function suggestFlags(err: Error & { flags?: unknown }, flags: Record<string, { char?: string; allowNo?: boolean; type?: string } | undefined>): void {
  if (!Array.isArray(err.flags) || !/^Nonexistent flags?: /.test(err.message)) return
  const names = ['help', ...Object.entries(flags).flatMap(([name, f]) => [name, ...(f?.type === 'boolean' && f.allowNo ? [`no-${name}`] : [])])]
  const hints: string[] = []
  for (const typed of err.flags as unknown[]) {
    // Long flags only: a mistyped one-letter flag has no near names worth naming.
    if (typeof typed !== 'string' || !typed.startsWith('--')) continue
    const near = closest(typed.slice(2).split('=')[0]!, names).map((n) => `--${n}`)
    if (near.length > 0) hints.push(err.flags.length === 1 ? near.join(' or ') : `${near.join(' or ')} for ${typed}`)
  }
  if (hints.length === 0) return
  const [first = '', ...rest] = err.message.split('\n')
  err.message = [`${first}; ${didYouMean(hints)}`, ...rest].join('\n')
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

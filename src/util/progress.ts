/**
 * Progress for long steps (reading a checkpoint, building the graph, each model's passes, each
 * verdict, writing). Pipelines take an optional `Progress`; the CLI picks how it shows:
 *
 * - live: on an interactive terminal, one line redrawn in place (carriage return, clear line) with
 *   a counter, a bar when the step's size is known, and the step's elapsed time, at most ten
 *   redraws a second. The line is cleared when a step finishes, so the run leaves nothing behind
 *   but its warnings and the results the command prints after it.
 * - plain: elsewhere (pipes, files, CI, TERM=dumb, --json), one summary line per finished step
 *   (`label: summary (elapsed)`), no carriage returns and no escape sequences.
 * - silent: --quiet, and library callers that pass nothing.
 *
 * Detail lines (`info`: a pass's figures, a verdict, a file written) and, on a terminal, the
 * finished steps' summary lines are shown only when verbose (--verbose). Warnings always show.
 */

export interface Progress {
  /** Begin a long step; `total` is how many units (passes, models, files) it has, when known. A step still open is finished first. */
  start(label: string, total?: number): ProgressStep
  /** A line of detail about what was done (a pass's figures, a verdict, a file written): shown only when verbose. */
  info(line: string): void
  /** Something the user should look at; printed as `warning: ...`. */
  warn(message: string): void
  /** Stop drawing and leave the terminal on a fresh line (a step cut short by an error). */
  close(): void
}

export interface ProgressStep {
  /** Name the unit that runs now (a pass, a model). */
  running(detail: string): void
  /** One unit done. */
  tick(): void
  /** Finish the step: one line `label: summary (elapsed)`. */
  done(summary?: string): void
}

/** The writable end progress draws on (process.stderr, or a fake one in tests). */
export interface ProgressStream {
  write(text: string): unknown
  isTTY?: boolean
  columns?: number
}

const noStep: ProgressStep = { running() {}, tick() {}, done() {} }

/** Progress that shows nothing. */
export const silentProgress: Progress = { start: () => noStep, info() {}, warn() {}, close() {} }

/** Progress for callers that only take lines (the older `log`/`warn` callbacks): every line, detail included. */
export function lineProgress(log?: (line: string) => void, warn?: (message: string) => void): Progress {
  if (!log && !warn) return silentProgress
  return new Reporter((text) => log?.(text.replace(/\n$/, '')), { live: false, verbose: true, now: () => performance.now(), warn })
}

export interface ProgressChoice {
  stream: ProgressStream
  json?: boolean
  quiet?: boolean
  /** --verbose: detail lines, and on a terminal each finished step's summary line */
  verbose?: boolean
  env?: NodeJS.ProcessEnv
}

/** Whether progress may redraw a line in place: an interactive terminal, not --json, --quiet, CI or TERM=dumb. */
export function isLive(choice: ProgressChoice): boolean {
  const env = choice.env ?? process.env
  return !!choice.stream.isTTY && !choice.json && !choice.quiet && !env.CI && env.TERM !== 'dumb'
}

/** The progress a command shows on `stream` (stderr): live, plain or silent. */
export function createProgress(choice: ProgressChoice): Progress {
  if (choice.quiet) return silentProgress
  return new StreamProgress(choice.stream, { live: isLive(choice), verbose: !!choice.verbose })
}

export interface ReporterOptions {
  /** redraw one line in place (else plain lines) */
  live: boolean
  /** show detail lines, and keep each finished step's summary on a terminal (default false) */
  verbose?: boolean
  /** milliseconds, for tests */
  now?: () => number
  /** redraw on a timer while a step runs (default: when live); tests turn it off */
  timer?: boolean
  /** smallest gap between two redraws, ms (default 100: ten a second) */
  interval?: number
}

/** Progress written to a stream. */
export class StreamProgress implements Progress {
  private readonly reporter: Reporter
  constructor(stream: ProgressStream, opts: ReporterOptions) {
    this.reporter = new Reporter((text) => stream.write(text), { ...opts, columns: () => stream.columns })
  }
  start(label: string, total?: number): ProgressStep {
    return this.reporter.start(label, total)
  }
  info(line: string): void {
    this.reporter.info(line)
  }
  warn(message: string): void {
    this.reporter.warn(message)
  }
  close(): void {
    this.reporter.close()
  }
}

const CLEAR = '\r\x1b[2K'
const SPINNER = ['|', '/', '-', '\\']
const BAR = 20

interface Open {
  label: string
  total: number | undefined
  count: number
  detail: string
  started: number
}

class Reporter implements Progress {
  private open: Open | undefined
  private drawn = false
  private lastDraw = -Infinity
  private frame = 0
  private timer: ReturnType<typeof setInterval> | undefined
  private readonly live: boolean
  private readonly verbose: boolean
  private readonly now: () => number
  private readonly useTimer: boolean
  private readonly gap: number

  constructor(
    private readonly write: (text: string) => void,
    private readonly opts: ReporterOptions & { columns?: () => number | undefined; warn?: ((message: string) => void) | undefined },
  ) {
    this.live = opts.live
    this.verbose = opts.verbose ?? false
    this.now = opts.now ?? (() => performance.now())
    this.useTimer = opts.timer ?? opts.live
    this.gap = opts.interval ?? 100
  }

  start(label: string, total?: number): ProgressStep {
    if (this.open) this.finish(this.open, undefined)
    const step: Open = { label, total, count: 0, detail: '', started: this.now() }
    this.open = step
    if (this.live) {
      this.draw(true)
      if (this.useTimer && !this.timer) {
        this.timer = setInterval(() => this.draw(false), this.gap)
        this.timer.unref?.()
      }
    }
    return {
      running: (detail: string) => {
        if (this.open !== step) return
        step.detail = detail
        if (this.live) this.draw(false)
      },
      tick: () => {
        if (this.open !== step) return
        step.count++
        if (this.live) this.draw(false)
      },
      done: (summary?: string) => {
        if (this.open === step) this.finish(step, summary)
      },
    }
  }

  info(line: string): void {
    if (this.verbose) this.above(`${line}\n`)
  }

  warn(message: string): void {
    if (this.opts.warn) this.opts.warn(message)
    else this.above(`warning: ${message}\n`)
  }

  close(): void {
    this.stopTimer()
    this.clear()
    this.open = undefined
  }

  /** Text printed above the live line, which is then drawn again. */
  private above(text: string): void {
    this.clear()
    this.write(text)
    if (this.open && this.live) this.draw(false)
  }

  private finish(step: Open, summary: string | undefined): void {
    this.open = undefined
    this.stopTimer()
    this.clear()
    // On a terminal the one line simply moves on to the next step; elsewhere each step leaves its line.
    if (this.live && !this.verbose) return
    const elapsed = formatElapsed(this.now() - step.started)
    this.write(`${step.label}${summary ? `: ${summary}` : ''} (${elapsed})\n`)
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  private clear(): void {
    if (!this.drawn) return
    this.write(CLEAR)
    this.drawn = false
  }

  /** Redraw the live line: now if forced, else only when the last redraw is `gap` ms old. */
  private draw(force: boolean): void {
    const step = this.open
    if (!this.live || !step) return
    const t = this.now()
    if (!force && t - this.lastDraw < this.gap) return
    this.lastDraw = t
    this.frame = (this.frame + 1) % SPINNER.length
    let line = liveLine(step, t - step.started, SPINNER[this.frame]!)
    const width = this.opts.columns?.()
    if (width && line.length > width - 1) line = line.slice(0, Math.max(0, width - 2)) + '…'
    this.write(`${CLEAR}${line}`)
    this.drawn = true
  }
}

/** `| label [#####-----] 3/6 detail 1.2s` */
function liveLine(step: Open, ms: number, spin: string): string {
  const parts = [spin, step.label]
  if (step.total !== undefined && step.total > 0) {
    const filled = Math.min(BAR, Math.round((BAR * step.count) / step.total))
    parts.push(`[${'#'.repeat(filled)}${'-'.repeat(BAR - filled)}]`, `${step.count}/${step.total}`)
  } else if (step.count > 0) parts.push(String(step.count))
  if (step.detail) parts.push(step.detail)
  parts.push(formatElapsed(ms))
  return parts.join(' ')
}

/** 0.4s, 12.3s, 2m05s */
export function formatElapsed(ms: number): string {
  const s = Math.max(0, ms) / 1000
  if (s < 60) return `${s.toFixed(1)}s`
  const m = Math.floor(s / 60)
  return `${m}m${String(Math.floor(s - 60 * m)).padStart(2, '0')}s`
}

/**
 * The progress reporter: the live line on a (fake) terminal — redrawn in place, throttled, with a
 * bar, a counter and the elapsed time, leaving nothing behind but warnings (a summary line per
 * step and the detail lines only with --verbose) — and the plain lines written everywhere else,
 * one per step, with no carriage return or escape sequence. Then what a whole convert draws on
 * a terminal, and the columns of the per-pass lines.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { StreamProgress, createProgress, formatElapsed, isLive, lineProgress, silentProgress } from '../src/util/progress.js'
import { convert } from '../src/pipeline/convert.js'
import { targetPlans } from '../src/targets/targets.js'
import { formatPassReport, sizeChange, type PassReport } from '../src/passes/pass.js'
import { fixtureDir, tempDir } from './support/helpers.js'

/** A stream that records what is written to it. */
function fakeStream(isTTY: boolean, columns?: number) {
  const writes: string[] = []
  return { isTTY, columns, writes, write: (t: string) => writes.push(t), text: () => writes.join('') }
}

/** A clock the test moves by hand. */
function clock() {
  let t = 1000
  return { now: () => t, advance: (ms: number) => (t += ms) }
}

const CR = '\r'
const ESC = '\x1b'

/**
 * What a terminal shows after these writes: the lines that ended (scrolled up, permanent) and the
 * line the cursor is on. `\r` returns to the line's start, ESC[2K clears it.
 */
function screen(writes: string[]): { lines: string[]; current: string } {
  const lines: string[] = []
  let current = ''
  for (const part of writes.join('').split(/(\r|\x1b\[2K|\n)/)) {
    if (part === '\n') {
      lines.push(current)
      current = ''
    } else if (part === '\x1b[2K') current = ''
    else if (part !== '\r') current += part
  }
  return { lines, current }
}

describe('progress on a terminal', () => {
  it('draws one line in place with a bar, a counter, the unit running and the elapsed time', () => {
    const s = fakeStream(true)
    const c = clock()
    const p = new StreamProgress(s, { live: true, now: c.now, timer: false })
    const step = p.start('making onnx/model_int8.onnx', 4)
    assert.equal(s.writes.length, 1, 'the step is drawn when it starts')
    assert.match(s.writes[0]!, /^\r\x1b\[2K. making onnx\/model_int8\.onnx \[-{20}\] 0\/4 0\.0s$/)
    c.advance(250)
    step.running('quantize-int8')
    assert.match(s.writes.at(-1)!, /^\r\x1b\[2K. making onnx\/model_int8\.onnx \[-{20}\] 0\/4 quantize-int8 0\.3s$/)
    c.advance(150)
    step.tick()
    assert.match(s.writes.at(-1)!, /\[#{5}-{15}\] 1\/4 quantize-int8 0\.4s$/)
    assert.ok(!s.text().includes('\n'), 'no line ends while the step runs')
  })

  it('redraws at most once per 100 ms however often it is told', () => {
    const s = fakeStream(true)
    const c = clock()
    const p = new StreamProgress(s, { live: true, now: c.now, timer: false })
    const step = p.start('verifying', 1000)
    for (let i = 0; i < 1000; i++) {
      c.advance(1) // a thousand units in one second
      step.tick()
    }
    const draws = s.writes.filter((w) => w.startsWith(`${CR}${ESC}[2K`) && w.length > 5).length
    assert.ok(draws >= 9 && draws <= 11, `about ten redraws in a second, got ${draws}`)
    assert.match(s.writes.at(-1)!, /\] \d*00\/1000 /, 'each redraw shows the count of its moment')
  })

  it('without --verbose, a finished step leaves nothing: the one line moves on to the next', () => {
    const s = fakeStream(true)
    const c = clock()
    const p = new StreamProgress(s, { live: true, now: c.now, timer: false })
    const step = p.start('reading checkpoint')
    c.advance(1234)
    step.done('safetensors, 28 tensors')
    assert.equal(s.writes.at(-1), `${CR}${ESC}[2K`, 'the line is cleared')
    assert.ok(!s.text().includes('\n'), 'no line is left')
    p.start('building graph')
    assert.match(s.writes.at(-1)!, /^\r\x1b\[2K. building graph 0\.0s$/)
    const shown = screen(s.writes)
    assert.deepEqual(shown.lines, [])
    assert.match(shown.current, /^. building graph 0\.0s$/)
  })

  it('with --verbose, finishes a step with a plain summary line carrying the elapsed time', () => {
    const s = fakeStream(true)
    const c = clock()
    const p = new StreamProgress(s, { live: true, verbose: true, now: c.now, timer: false })
    const step = p.start('reading checkpoint')
    c.advance(1234)
    step.done('safetensors, 28 tensors')
    const text = s.text()
    assert.ok(text.endsWith(`${CR}${ESC}[2Kreading checkpoint: safetensors, 28 tensors (1.2s)\n`), JSON.stringify(text))
    step.tick()
    step.done('again')
    assert.equal(s.text(), text, 'a finished step is inert')
  })

  it('without --verbose, drops detail lines and prints warnings above the live line', () => {
    const s = fakeStream(true)
    const c = clock()
    const p = new StreamProgress(s, { live: true, now: c.now, timer: false })
    p.start('verifying', 2)
    s.writes.length = 0
    p.info('PASS onnx/model.onnx (fp32)')
    assert.deepEqual(s.writes, [], 'detail is for --verbose')
    c.advance(200)
    p.warn('Gather kept in float32')
    assert.deepEqual(s.writes.slice(0, 2), [`${CR}${ESC}[2K`, 'warning: Gather kept in float32\n'])
    assert.match(s.writes.at(-1)!, /^\r\x1b\[2K. verifying /, 'the live line comes back')
  })

  it('with --verbose, prints detail and warnings above the live line, clearing it first', () => {
    const s = fakeStream(true)
    const c = clock()
    const p = new StreamProgress(s, { live: true, verbose: true, now: c.now, timer: false })
    p.start('verifying', 2)
    s.writes.length = 0
    p.info('PASS onnx/model.onnx (fp32)')
    assert.deepEqual(s.writes.slice(0, 2), [`${CR}${ESC}[2K`, 'PASS onnx/model.onnx (fp32)\n'])
    c.advance(200)
    p.warn('Gather kept in float32')
    assert.ok(s.writes.includes('warning: Gather kept in float32\n'))
    assert.match(s.writes.at(-1)!, /^\r\x1b\[2K. verifying /, 'the live line comes back')
  })

  it('fits the line to the terminal width', () => {
    const s = fakeStream(true, 30)
    const p = new StreamProgress(s, { live: true, now: clock().now, timer: false })
    p.start('making onnx/model_quantized.onnx with a long label', 5)
    const line = s.writes[0]!.slice(`${CR}${ESC}[2K`.length)
    assert.ok(line.length <= 29, `${line.length} characters: ${line}`)
    assert.ok(line.endsWith('…'))
  })

  it('close() leaves the terminal on a clean line', () => {
    const s = fakeStream(true)
    const p = new StreamProgress(s, { live: true, now: clock().now, timer: false })
    p.start('building graph')
    p.close()
    assert.equal(s.writes.at(-1), `${CR}${ESC}[2K`)
    p.close()
    assert.equal(s.writes.filter((w) => w === `${CR}${ESC}[2K`).length, 1, 'nothing more to clear')
  })

  it('keeps the elapsed time moving on a timer while the event loop is free', async () => {
    const s = fakeStream(true)
    const p = new StreamProgress(s, { live: true, interval: 20 })
    const step = p.start('verifying', 1)
    const draws = () => s.writes.filter((w) => /verifying \[/.test(w)).length
    // Three redraws with nothing but the timer to make them (a loaded machine may take longer than 60 ms).
    for (let waited = 0; draws() < 3 && waited < 3000; waited += 20) await new Promise((r) => setTimeout(r, 20))
    step.done()
    assert.ok(draws() >= 3, `redrawn by the timer (${draws()} draws)`)
    const after = s.writes.length
    await new Promise((r) => setTimeout(r, 60))
    assert.equal(s.writes.length, after, 'the timer stops with the step')
  })
})

describe('progress elsewhere', () => {
  /** Three passes of one step, an info line, a warning, on a stream that is no terminal. */
  function plainRun(verbose: boolean): string {
    const s = fakeStream(false)
    const c = clock()
    const p = new StreamProgress(s, { live: false, verbose, now: c.now })
    const step = p.start('making onnx/model.onnx', 3)
    for (const name of ['dedup', 'fold-constants', 'sort-and-name']) {
      step.running(name)
      c.advance(100)
      step.tick()
    }
    p.info('  onnx/model.onnx: dedup changed')
    step.done('90 nodes')
    p.warn('careful')
    assert.ok(!s.text().includes(CR) && !s.text().includes(ESC))
    return s.text()
  }

  it('writes one plain line per step: no carriage return, no escape sequence, no per-unit noise, no detail', () => {
    assert.equal(plainRun(false), 'making onnx/model.onnx: 90 nodes (0.3s)\nwarning: careful\n')
  })

  it('with --verbose, adds the detail lines', () => {
    assert.equal(plainRun(true), '  onnx/model.onnx: dedup changed\nmaking onnx/model.onnx: 90 nodes (0.3s)\nwarning: careful\n')
  })

  it('starting a step finishes the one still open', () => {
    const s = fakeStream(false)
    const p = new StreamProgress(s, { live: false, now: clock().now })
    p.start('reading checkpoint')
    p.start('building graph').done('ok')
    assert.equal(s.text(), 'reading checkpoint (0.0s)\nbuilding graph: ok (0.0s)\n')
  })

  it('is live only on a terminal, without --json, --quiet, CI or TERM=dumb', () => {
    const tty = fakeStream(true)
    const env = { TERM: 'xterm-256color' }
    assert.equal(isLive({ stream: tty, env }), true)
    assert.equal(isLive({ stream: fakeStream(false), env }), false)
    assert.equal(isLive({ stream: tty, env: { ...env, CI: 'true' } }), false)
    assert.equal(isLive({ stream: tty, env: { TERM: 'dumb' } }), false)
    assert.equal(isLive({ stream: tty, env, json: true }), false)
    assert.equal(isLive({ stream: tty, env, quiet: true }), false)
  })

  it('--json on a terminal writes plain lines; --quiet writes nothing', () => {
    const json = fakeStream(true)
    createProgress({ stream: json, json: true, env: {} }).start('reading checkpoint').done('ok')
    assert.match(json.text(), /^reading checkpoint: ok \(\d+\.\ds\)\n$/)
    const verbose = fakeStream(false)
    const v = createProgress({ stream: verbose, verbose: true, env: {} })
    v.info('detail')
    const plain = fakeStream(false)
    createProgress({ stream: plain, env: {} }).info('detail')
    assert.deepEqual([verbose.text(), plain.text()], ['detail\n', ''], '--verbose decides the detail lines')
    const quiet = fakeStream(true)
    const p = createProgress({ stream: quiet, quiet: true, env: {} })
    assert.equal(p, silentProgress)
    p.start('x', 2).tick()
    p.info('y')
    p.warn('z')
    assert.deepEqual(quiet.writes, [])
  })

  it('lineProgress hands each line to a log callback (library callers)', () => {
    const lines: string[] = []
    const p = lineProgress((l) => lines.push(l))
    p.info('wrote onnx/model.onnx (100 bytes)')
    p.start('writing', 1).done('1 model')
    assert.equal(lines[0], 'wrote onnx/model.onnx (100 bytes)')
    assert.match(lines[1]!, /^writing: 1 model \(\d+\.\ds\)$/)
    assert.equal(lineProgress(), silentProgress)
  })

  it('formats elapsed time', () => {
    assert.equal(formatElapsed(40), '0.0s')
    assert.equal(formatElapsed(12_340), '12.3s')
    assert.equal(formatElapsed(125_000), '2m05s')
  })
})

describe('a whole convert on a terminal', () => {
  const work = tempDir()
  /** Convert albert-seqcls for --target cpu with progress on a fake terminal; what it drew. */
  async function convertOnTerminal(name: string, verbose: boolean) {
    const s = fakeStream(true, 200)
    const progress = new StreamProgress(s, { live: true, verbose, timer: false, interval: 0 })
    const report = await convert({ checkpoint: fixtureDir('albert-seqcls'), out: path.join(work, name), plans: targetPlans('cpu'), progress })
    progress.close()
    return { s, report, shown: screen(s.writes) }
  }

  it('draws one line, redrawn through every step, and leaves the terminal clean for the results', async () => {
    const { s, report, shown } = await convertOnTerminal('quiet-terminal', false)
    assert.equal(report.verification?.pass, true)
    assert.deepEqual(shown, { lines: [], current: '' }, 'nothing stays on screen')
    // Every step was drawn on the one line as it ran.
    const drawn = s.writes.filter((w) => w.startsWith(`${CR}${ESC}[2K`) && w.length > 4).map((w) => w.slice(5))
    for (const label of ['reading checkpoint', 'building text-classification graph', 'making onnx/model.onnx', 'making onnx/model_int8.onnx', 'verifying', 'writing']) {
      assert.ok(drawn.some((line) => line.includes(` ${label} `)), `${label} was drawn: ${drawn.join(' | ')}`)
    }
    assert.ok(drawn.some((line) => /making onnx\/model_int8\.onnx \[#*-*\] \d\/8 quantize-int8/.test(line)), 'a pass shows as the unit running')
  })

  it('with --verbose, keeps each step, every pass in columns, each verdict and file', async () => {
    const { shown } = await convertOnTerminal('verbose-terminal', true)
    assert.equal(shown.current, '')
    const passLines = shown.lines.filter((l) => /^ {2}onnx\//.test(l))
    assert.equal(passLines.length, 7 + 8, 'seven passes make model.onnx, eight model_int8.onnx')
    for (const column of [' (changed|no change) ', ' nodes ', ' tensors ', ' size ', ' ms;']) {
      const at = new Set(passLines.map((l) => l.search(new RegExp(column))))
      assert.equal(at.size, 1, `the ${column} column is at one place in every line: ${[...at]}`)
    }
    assert.match(shown.lines.join('\n'), /^ {2}onnx\/model_int8\.onnx: quantize-int8 +changed +nodes 42→56 +tensors 32→45 +size 19\.85→6\.89 kB +\d+ ms; weightsQuantized 10, readers 14/m)
    for (const line of [/^reading checkpoint: safetensors, 27 tensors/, /^inputs: random, seed 1234, batch 3, sequence 32$/, /^PASS onnx\/model_int8\.onnx \(int8\)$/, /^verifying: 2 of 2 within tolerance; inputs: random, seed 1234, batch 3, sequence 32 /, /^wrote onnx\/model\.onnx \(\d+ bytes\)$/]) {
      assert.ok(shown.lines.some((l) => line.test(l)), `${line}:\n${shown.lines.join('\n')}`)
    }
  })
})

describe('per-pass lines', () => {
  const report = (before: [number, number, number], after: [number, number, number], changed = true): PassReport => ({
    pass: 'quantize-int8',
    changed,
    ms: 12.4,
    before: { nodes: before[0], initializers: before[1], initializerBytes: before[2] },
    after: { nodes: after[0], initializers: after[1], initializerBytes: after[2] },
    stats: { weightsQuantized: 10, ratio: 0.123456 },
    warnings: [],
  })

  it('show every figure the same way: one number when equal, before→after when not, in fixed columns', () => {
    const changed = formatPassReport(report([42, 32, 18_604], [56, 45, 6_980]))
    const same = formatPassReport(report([42, 32, 18_604], [42, 32, 18_604], false))
    const tiny = formatPassReport(report([83, 41, 18_620], [56, 37, 18_618]))
    assert.equal(changed, 'quantize-int8          changed    nodes 42→56       tensors 32→45     size 18.60→6.98 kB        12 ms')
    assert.equal(same, 'quantize-int8          no change  nodes 42          tensors 32        size 18.60 kB             12 ms')
    assert.equal(tiny, 'quantize-int8          changed    nodes 83→56       tensors 41→37     size 18.620→18.618 kB     12 ms', 'a change always shows')
    for (const column of ['nodes', 'tensors', 'size']) assert.equal(new Set([changed, same, tiny].map((l) => l.indexOf(` ${column} `))).size, 1, column)
    assert.equal(new Set([changed, same, tiny].map((l) => l.length)).size, 1, 'the time ends every line at one place')
  })

  it('add the pass\'s own figures with --verbose', () => {
    assert.match(formatPassReport(report([1, 1, 1], [1, 1, 1]), { figures: true }), / 12 ms; weightsQuantized 10, ratio 0\.1235$/)
  })

  it('size a change with the decimals it takes, down to the byte', () => {
    assert.equal(sizeChange(46_740_000, 11_840_000), '46.74→11.84 MB')
    assert.equal(sizeChange(18_604, 18_604), '18.60 kB')
    assert.equal(sizeChange(18_604, 18_603), '18.604→18.603 kB')
    assert.equal(sizeChange(1_000_001, 1_000_000), '1.000001→1.000000 MB')
    assert.equal(sizeChange(512, 480), '512→480 B')
    assert.equal(sizeChange(2_500, 900), '2.50→0.90 kB')
  })
})

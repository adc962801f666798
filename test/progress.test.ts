/**
 * The progress reporter: the live line on a (fake) terminal — redrawn in place, throttled, with a
 * bar, a counter and the elapsed time, leaving a summary line per step — and the plain lines
 * written everywhere else, with no carriage return or escape sequence.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { StreamProgress, createProgress, formatElapsed, isLive, lineProgress, silentProgress } from '../src/util/progress.js'

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

  it('finishes a step with a plain summary line carrying the elapsed time', () => {
    const s = fakeStream(true)
    const c = clock()
    const p = new StreamProgress(s, { live: true, now: c.now, timer: false })
    const step = p.start('reading checkpoint')
    c.advance(1234)
    step.done('safetensors, 28 tensors')
    const text = s.text()
    assert.ok(text.endsWith(`${CR}${ESC}[2Kreading checkpoint: safetensors, 28 tensors (1.2s)\n`), JSON.stringify(text))
    step.tick()
    step.done('again')
    assert.equal(s.text(), text, 'a finished step is inert')
  })

  it('prints info and warnings above the live line, clearing it first', () => {
    const s = fakeStream(true)
    const c = clock()
    const p = new StreamProgress(s, { live: true, now: c.now, timer: false })
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
    await new Promise((r) => setTimeout(r, 130))
    step.done()
    const draws = s.writes.filter((w) => /verifying \[/.test(w)).length
    assert.ok(draws >= 3, `redrawn by the timer (${draws} draws)`)
    const after = s.writes.length
    await new Promise((r) => setTimeout(r, 60))
    assert.equal(s.writes.length, after, 'the timer stops with the step')
  })
})

describe('progress elsewhere', () => {
  it('writes plain lines only: no carriage return, no escape sequence, no per-unit noise', () => {
    const s = fakeStream(false)
    const c = clock()
    const p = new StreamProgress(s, { live: false, now: c.now })
    const step = p.start('making onnx/model.onnx', 3)
    for (const name of ['dedup', 'fold-constants', 'sort-and-name']) {
      step.running(name)
      c.advance(100)
      step.tick()
    }
    p.info('  onnx/model.onnx: dedup changed')
    step.done('90 nodes')
    p.warn('careful')
    assert.equal(s.text(), '  onnx/model.onnx: dedup changed\nmaking onnx/model.onnx: 90 nodes (0.3s)\nwarning: careful\n')
    assert.ok(!s.text().includes(CR) && !s.text().includes(ESC))
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

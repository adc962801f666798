/**
 * Every run can be stopped: bin/run.js supervises the command in a child process (src/cli/
 * supervisor.ts). SIGINT or SIGTERM ends the run within a second even while the command is busy
 * in synchronous work, removes the staged output, prints one line and exits 130 or 143; a command
 * process that dies of a signal nobody sent is one internal-error line, exit 4. The command line
 * reaches the child over IPC, so a long --text no longer crashes onnxruntime.
 */
import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { BIN, fixtureDir, tempDir } from './support/helpers.js'
import { ALBERT_BASE, writeSyntheticCheckpoint } from './support/synthetic.js'
import { writeChainModel } from './support/big-graph.js'
import { runBounded } from './support/bounded.js'

interface Interrupted {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** from sending the signal to the supervisor's exit, ms */
  afterSignal: number
}

/**
 * Start `albertkit ...args` in the work folder; once `ready` says so (given stderr so far) or after `delayMs`, send
 * `sig` — to the supervisor, or with `toChild` to the command process it started.
 */
function interrupt(args: string[], sig: NodeJS.Signals, when: { ready?: (stderr: string) => boolean; delayMs?: number }, toChild = false): Promise<Interrupted> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: work })
    let stdout = ''
    let stderr = ''
    let sentAt: number | undefined
    let exitedAt: number | undefined
    const send = () => {
      if (sentAt !== undefined) return
      sentAt = performance.now()
      if (!toChild) return void child.kill(sig)
      const kids = fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)
      assert.equal(kids.length, 1, 'the supervisor runs one command process')
      process.kill(Number(kids[0]), sig)
    }
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
      if (when.ready?.(stderr)) send()
    })
    const timer = when.delayMs !== undefined ? setTimeout(send, when.delayMs) : undefined
    const limit = setTimeout(() => child.kill('SIGKILL'), 120_000)
    child.on('error', reject)
    child.on('exit', () => (exitedAt = performance.now()))
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      clearTimeout(limit)
      if (sentAt === undefined) return reject(new Error(`the run ended before the signal (exit ${code}):\n${stderr}`))
      resolve({ code, signal, stdout, stderr, afterSignal: exitedAt! - sentAt })
    })
  })
}

/** Entries beside `out` that belong to it (the output or a staged temporary). */
function leftovers(out: string): string[] {
  return fs.readdirSync(path.dirname(out)).filter((n) => n === path.basename(out) || n.startsWith(`.${path.basename(out)}.tmp-`))
}

const work = tempDir()
let checkpoint = ''
/** A conversion with a few seconds of synchronous work after its output folder is staged. */
const convertArgs = (out: string) => ['convert', checkpoint, '-o', out, '--no-verify', '--precision', 'fp32,int8,int4,fp16']
const making = (stderr: string) => stderr.includes('making onnx/model.onnx')

before(() => {
  checkpoint = writeSyntheticCheckpoint(path.join(work, 'ckpt'), { ...ALBERT_BASE, num_hidden_layers: 24 })
})

describe('interrupting a run', () => {
  it('SIGINT while a conversion is busy: ends within 1 s, removes the staged output, one line, exit 130', async () => {
    const out = path.join(work, 'sigint')
    const r = await interrupt(convertArgs(out), 'SIGINT', { ready: making })
    assert.equal(r.code, 130, r.stderr)
    assert.ok(r.afterSignal < 1000, `ended ${r.afterSignal.toFixed(0)} ms after the signal`)
    assert.equal(r.stderr.trim().split('\n').at(-1), 'interrupted: removed sigint (staged)', 'the output named from the working folder')
    assert.equal(r.stderr.match(/interrupted/g)?.length, 1, 'one line')
    assert.deepEqual(leftovers(out), [], 'nothing at the output, no temporaries')
    assert.equal(r.stdout, '')
  })

  it('SIGTERM: exit 143; with --json, stdout still holds one JSON document', async () => {
    const out = path.join(work, 'sigterm')
    const r = await interrupt([...convertArgs(out), '--json'], 'SIGTERM', { ready: making })
    assert.equal(r.code, 143, r.stderr)
    assert.ok(r.afterSignal < 1000, `ended ${r.afterSignal.toFixed(0)} ms after the signal`)
    assert.equal(r.stderr.trim().split('\n').at(-1), 'interrupted: removed sigterm (staged)')
    assert.deepEqual(JSON.parse(r.stdout).error.exitCode, 143)
    assert.deepEqual(leftovers(out), [])
  })

  it('SIGINT while decoding a large graph (synchronous work, no JavaScript handler can run): exit 130 within 1 s', async () => {
    const model = path.join(work, 'chain.onnx')
    writeChainModel(model, { nodes: 300_000 })
    const out = path.join(work, 'chain-out.onnx')
    const started = performance.now()
    const r = await interrupt(['optimize', model, '-o', out], 'SIGINT', { delayMs: 1500 })
    assert.equal(r.code, 130, r.stderr)
    assert.ok(r.afterSignal < 1000, `ended ${r.afterSignal.toFixed(0)} ms after the signal`)
    assert.ok(performance.now() - started < 4000, 'the run did not go on to the end')
    assert.equal(r.stderr, 'interrupted\n')
    assert.deepEqual(leftovers(out), [])
  })

  it('a command process killed by a signal nobody sent (a crash in a native library): one internal-error line, exit 4, nothing left', async () => {
    const out = path.join(work, 'crash')
    const r = await interrupt(convertArgs(out), 'SIGSEGV', { ready: making }, true)
    assert.equal(r.code, 4, r.stderr)
    assert.equal(r.stderr.trim().split('\n').at(-1), 'Error: albertkit crashed (SIGSEGV) (internal error; set ALBERTKIT_DEBUG=1 for details)')
    assert.equal(r.stderr.match(/^Error/gm)?.length, 1)
    assert.deepEqual(leftovers(out), [])
  })
})

describe('when the supervisor itself is killed (SIGKILL cannot be passed on)', () => {
  it('the command process notices within a second, removes its staged output and ends', async () => {
    const out = path.join(work, 'orphan')
    const child = spawn(process.execPath, [BIN, ...convertArgs(out)], { stdio: ['ignore', 'ignore', 'pipe'], cwd: work })
    let stderr = ''
    await new Promise<void>((resolve) =>
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d
        if (making(stderr)) resolve()
      }),
    )
    const command = Number(fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim())
    assert.ok(command > 0)
    child.kill('SIGKILL')
    const killed = performance.now()
    const alive = () => fs.existsSync(`/proc/${command}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${command}/status`, 'utf8'))
    while (alive() && performance.now() - killed < 5000) await new Promise((r) => setTimeout(r, 10))
    assert.ok(!alive(), 'the command process is gone')
    assert.ok(performance.now() - killed < 1000, `it ended ${(performance.now() - killed).toFixed(0)} ms after its supervisor`)
    assert.deepEqual(leftovers(out), [], 'nothing at the output, no temporaries')
  })
})

describe('the command line reaches the command process over IPC', () => {
  it('three 12 KB --text values verify (onnxruntime-node crashed with SIGSEGV when the argv of its process passed ~28 KB in all)', async () => {
    const text = Array.from({ length: 1000 }, () => 'hello world').join(' ')
    assert.ok(text.length > 11_000 && text.length < 32_768)
    const out = path.join(work, 'long-text')
    const r = await runBounded(['convert', fixtureDir('albert-seqcls-text'), '-o', out, '--text', text, '--text', text, '--text', text, '--quiet'], { cpu: 60, mb: 800 })
    assert.equal(r.signal, null)
    assert.equal(r.status, 0, r.stderr)
    assert.ok(fs.existsSync(path.join(out, 'onnx', 'model.onnx')))
  })

  it('exit codes and output pass through: a usage error is exit 2 with one line', async () => {
    const r = await runBounded(['convert', fixtureDir('albert-model'), '-o', path.join(work, 'x'), '--precision', 'fp64'], { cpu: 30, mb: 400 })
    assert.equal(r.status, 2)
    assert.equal(r.stdout, '')
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
  })
})

/**
 * `node dist/bench/packed.js [--rounds N] [--no-chain] [--cases abc]` (npm run bench runs it all): issue 13's
 * batched section. The albert-base-shaped checkpoint (fixtures/.generated/albert-base-hfinit, else
 * albert-base, else a synthetic one) as `convert --target cpu` makes it (fp32, int8: packed) and
 * as it made it before pack-tokens (today), the default folder's model_int8.onnx both ways, and
 * the Python chain's optimized fp32 and int8 models, on one intra-op thread, interleaved in one
 * process:
 *   (a) 32 real sentences (bench/texts/fortunes-work.txt through a fixture tokenizer) padded to the longest,
 *   (b) the same batch padded to 128,
 *   (c) batch 1 × 128 with no padding.
 * Prints the real-token share, ms per batch (median wall time and median CPU time of this
 * process: on a shared machine CPU time is what the run itself cost), the ratios, the packed
 * models' agreement with today's on real positions, and the peak RSS of a fresh process running
 * batch (a). Writes nothing it leaves behind (models for the RSS probes go to a temporary folder
 * that is removed).
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { buildAlbert } from '../src/builder/albert.js'
import { resolveTask } from '../src/checkpoint/task.js'
import { DataType } from '../src/ir/dtype.js'
import { cloneModel, type Model } from '../src/ir/graph.js'
import { Tensor, bytesOf } from '../src/ir/tensor.js'
import { writeModelFile } from '../src/onnx/file.js'
import { runPasses } from '../src/passes/pass.js'
import { passesOf, precisionPlans } from '../src/targets/precision.js'
import { targetPlans } from '../src/targets/targets.js'
import { encodeTexts, openTokenizer } from '../src/tokenizer/index.js'
import { compareTokens } from '../src/verify/compare.js'
import { createSession, runSession } from '../src/runtime/session.js'
import { ALBERT_BASE, writeSyntheticCheckpoint } from '../test/support/synthetic.js'
import { findPython } from './chain.js'
import { ROOT, median } from './measure.js'

const HERE = fileURLToPath(import.meta.url)
const TEXT_FILE = path.join(ROOT, 'bench', 'texts', 'fortunes-work.txt')
const TOKENIZER = path.join(ROOT, 'fixtures', 'albert-seqcls-trained')
const BATCH = 32
/** The models measured packed and today: --target cpu fp32 and int8, the default folder's int8. */
const KINDS = ['albertkit fp32', 'albertkit int8', 'default int8']
const PADDED = 128

/** The first `n` sentences of the text file (one a line; '#' lines are its header). */
export function sentences(n: number): string[] {
  const lines = fs
    .readFileSync(TEXT_FILE, 'utf8')
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'))
  if (lines.length < n) throw new Error(`${TEXT_FILE} has ${lines.length} sentences, the bench needs ${n}`)
  return lines.slice(0, n)
}

/** The batch of case (a), and the same rows padded to `width`. */
export function textBatch(width?: number): Map<string, Tensor> {
  const { feeds, longest } = encodeTexts(openTokenizer(TOKENIZER), sentences(BATCH).map((text) => ({ text })), { maxLength: 512 })
  if (!width || width === longest) return feeds
  if (width < longest) throw new Error(`the batch's longest row (${longest}) is longer than ${width}`)
  const out = new Map<string, Tensor>()
  for (const [name, t] of feeds) {
    const src = new BigInt64Array(t.data.buffer, t.data.byteOffset, t.size)
    const dst = new BigInt64Array(BATCH * width)
    for (let r = 0; r < BATCH; r++) dst.set(src.subarray(r * longest, (r + 1) * longest), r * width)
    out.set(name, new Tensor(DataType.INT64, [BATCH, width], bytesOf(dst)))
  }
  return out
}

/** Batch 1 × 128, every position a token (ids as bench/chain.ts makes them). */
function fullRow(vocab: number): Map<string, Tensor> {
  const ids = new BigInt64Array(PADDED)
  let s = 12345
  for (let i = 0; i < ids.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0
    ids[i] = BigInt(5 + (s % (vocab - 5)))
  }
  const t = (a: BigInt64Array) => new Tensor(DataType.INT64, [1, PADDED], bytesOf(a))
  return new Map([
    ['input_ids', t(ids)],
    ['attention_mask', t(new BigInt64Array(PADDED).fill(1n))],
    ['token_type_ids', t(new BigInt64Array(PADDED))],
  ])
}

function realShare(feeds: Map<string, Tensor>): number {
  const m = feeds.get('attention_mask')!.toNumbers()
  return m.reduce((a, b) => a + b, 0) / m.length
}

function baseCheckpoint(work: string): { dir: string; origin: string } {
  for (const name of ['albert-base-hfinit', 'albert-base']) {
    const dir = path.join(ROOT, 'fixtures', '.generated', name)
    if (fs.existsSync(path.join(dir, 'model.safetensors'))) return { dir, origin: `fixtures/.generated/${name}` }
  }
  const dir = path.join(work, 'synthetic-albert-base')
  writeSyntheticCheckpoint(dir, ALBERT_BASE)
  return { dir, origin: 'synthetic (test/support/synthetic.ts)' }
}

/**
 * `convert --target cpu`'s models as it makes them (packed) and without pack-tokens (today, as
 * before issue 13); the default folder's model_int8.onnx (transformers.js's q8) both ways too.
 */
async function buildModels(dir: string): Promise<{ label: string; model: Model }[]> {
  const ckpt = openCheckpoint(dir)
  const task = resolveTask(ckpt.config, undefined, ckpt.configFile)
  const { model } = buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile })
  const out: { label: string; model: Model }[] = []
  const plans = [...targetPlans('cpu').map((p) => ({ plan: p, label: `albertkit ${p.precision}` })), { plan: precisionPlans(['int8'])[0]!, label: 'default int8' }]
  for (const { plan, label } of plans) {
    if (!plan.passes.includes('pack-tokens')) throw new Error(`${plan.target} ${plan.precision} does not run pack-tokens`)
    const today = cloneModel(model)
    await runPasses(today, passesOf({ ...plan, passes: plan.passes.filter((p) => p !== 'pack-tokens') }))
    const packed = cloneModel(model)
    const reports = await runPasses(packed, passesOf(plan))
    const r = reports.find((x) => x.pass === 'pack-tokens')!
    if (!r.changed) throw new Error(`pack-tokens did not apply to ${plan.file}: ${r.stats.skipped}`)
    out.push({ label: `${label} today`, model: today }, { label: `${label} packed`, model: packed })
  }
  return out
}

interface Timing {
  wall: number[]
  cpu: number[]
}

/** Peak RSS (MB) of a fresh process that loads `file` and runs batch (a) three times. */
function peakRss(file: string): number {
  const r = spawnSync(process.execPath, [HERE, '--rss-child', file], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`RSS probe of ${file} failed:\n${r.stderr.slice(-2000)}`)
  return Number(r.stdout.trim().split('\n').pop()) / 1024
}

async function rssChild(file: string): Promise<void> {
  const feeds = textBatch()
  const session = await createSession(file, { intraOpThreads: 1 })
  for (let i = 0; i < 3; i++) await runSession(session, feeds)
  await session.release()
  // VmHWM: the peak of this process's own memory (maxRSS may keep the forking parent's peak across exec)
  const hwm = /VmHWM:\s*(\d+) kB/.exec(fs.existsSync('/proc/self/status') ? fs.readFileSync('/proc/self/status', 'utf8') : '')
  console.log(hwm ? hwm[1] : String(process.resourceUsage().maxRSS))
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  if (args[0] === '--rss-child') return rssChild(args[1]!)
  const roundsAt = args.indexOf('--rounds')
  const rounds = roundsAt >= 0 ? Number(args[roundsAt + 1]) : 7
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'albertkit-packed-'))
  // an interrupted run leaves nothing behind either
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      fs.rmSync(work, { recursive: true, force: true })
      process.exit(128 + os.constants.signals[signal])
    })
  }
  try {
    const { dir, origin } = baseCheckpoint(work)
    const vocab = (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size
    const models: { label: string; file: string }[] = []
    for (const { label, model } of await buildModels(dir)) {
      const file = path.join(work, `${label.replace(/\W+/g, '-')}.onnx`)
      writeModelFile(file, model)
      models.push({ label, file })
    }
    const python = args.includes('--no-chain') ? undefined : findPython()
    if (python) {
      const r = spawnSync(python, [path.join(ROOT, 'bench', 'python', 'chain.py'), dir, path.join(work, 'chain')], { encoding: 'utf8' })
      if (r.status !== 0) throw new Error(`the Python chain failed:\n${r.stderr.slice(-2000)}`)
      const report = JSON.parse(r.stdout.trim().split('\n').pop()!) as { files: Record<string, string> }
      models.push({ label: 'chain fp32 (optimized)', file: report.files.optimized! }, { label: 'chain int8', file: report.files.int8! })
    }
    const casesAt = args.indexOf('--cases')
    const only = casesAt >= 0 ? args[casesAt + 1]! : 'abc'
    const cases = [
      { id: 'a', name: `(a) ${BATCH} sentences, padded to the longest`, feeds: textBatch() },
      { id: 'b', name: `(b) the same, padded to ${PADDED}`, feeds: textBatch(PADDED) },
      { id: 'c', name: `(c) 1 × ${PADDED}, no padding`, feeds: fullRow(vocab) },
    ].filter((c) => only.includes(c.id))
    const sessions = await Promise.all(models.map((m) => createSession(m.file, { intraOpThreads: 1 })))
    // Agreement of the packed models with today's on real positions (batch a), and warm-up.
    const agreement: string[] = []
    for (const c of cases) {
      const outs = []
      for (const s of sessions) outs.push(await runSession(s, c.feeds))
      if (c.id !== 'a') continue
      const mask = c.feeds.get('attention_mask')!
      const keep = Uint8Array.from(mask.toNumbers())
      for (const kind of KINDS) {
        const a = outs[models.findIndex((m) => m.label === `${kind} today`)]!
        const b = outs[models.findIndex((m) => m.label === `${kind} packed`)]!
        for (const [k, ref] of a) {
          const p = compareTokens(ref.data, b.get(k)!.data, ref.dims, { dims: mask.dims, keep }, false)
          agreement.push(`${kind} ${k}: max abs ${p.maxAbs.toExponential(2)}, cosine ${p.cosine.toFixed(6)}`)
        }
      }
    }
    const times: Timing[][] = cases.map(() => models.map(() => ({ wall: [], cpu: [] })))
    for (let r = 0; r < rounds; r++) {
      for (let ci = 0; ci < cases.length; ci++) {
        for (let k = 0; k < sessions.length; k++) {
          const i = (k + r) % sessions.length // rotate who goes first
          const cpu0 = process.cpuUsage()
          const t0 = performance.now()
          await runSession(sessions[i]!, cases[ci]!.feeds)
          const wall = performance.now() - t0
          const cpu = process.cpuUsage(cpu0)
          times[ci]![i]!.wall.push(wall)
          times[ci]![i]!.cpu.push((cpu.user + cpu.system) / 1000)
        }
      }
    }
    for (const s of sessions) await s.release()
    const rss = models.filter((m) => only.includes('a') && !m.label.startsWith('chain')).map((m) => ({ label: m.label, mb: peakRss(m.file) }))

    console.log(`### Batched runs (issue 13): ${origin}, 1 intra-op thread, ${rounds} interleaved rounds, medians`)
    console.log(`texts: ${path.relative(ROOT, TEXT_FILE)}, first ${BATCH} sentences, tokenizer fixtures/albert-seqcls-trained; machine load ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} CPUs\n`)
    const at = (label: string) => models.findIndex((m) => m.label === label)
    for (const [ci, c] of cases.entries()) {
      const dims = c.feeds.get('input_ids')!.dims
      console.log(`${c.name}: [${dims.join(', ')}], real tokens ${(realShare(c.feeds) * 100).toFixed(1)}%`)
      console.log('| model | wall ms | CPU ms |')
      console.log('|---|---|---|')
      for (const [i, m] of models.entries()) console.log(`| ${m.label} | ${median(times[ci]![i]!.wall).toFixed(1)} | ${median(times[ci]![i]!.cpu).toFixed(1)} |`)
      for (const kind of KINDS) {
        const packed = times[ci]![at(`${kind} packed`)]!
        const ratio = (label: string, pick: (t: Timing) => number[]) => {
          const other = at(label)
          return other < 0 ? '—' : `${(median(pick(times[ci]![other]!)) / median(pick(packed))).toFixed(2)}×`
        }
        const chain = kind.endsWith('fp32') ? 'chain fp32 (optimized)' : 'chain int8'
        console.log(
          `${kind}: packed vs today ${ratio(`${kind} today`, (t) => t.wall)} wall, ${ratio(`${kind} today`, (t) => t.cpu)} CPU; ` +
            `vs the chain ${ratio(chain, (t) => t.wall)} wall, ${ratio(chain, (t) => t.cpu)} CPU (throughput: other's time / packed time)`,
        )
      }
      console.log('')
    }
    console.log('packed vs today on real positions, batch (a): ' + agreement.join('; '))
    console.log('peak RSS of a fresh process running batch (a) 3 times: ' + rss.map((r) => `${r.label} ${r.mb.toFixed(0)} MB`).join(', '))
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

await main()

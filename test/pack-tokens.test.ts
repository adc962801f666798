/**
 * pack-tokens on the graphs it is part of: the cpu target's (fp32: Attention; int8: QAttention +
 * DynamicQuantizeMatMul; attention per row in a Loop) and the default folder's (model.onnx,
 * model_int8.onnx: attention unfused, its Q, K, V scattered to [B, S]). Parity with transformers
 * on real positions for every fixture, on its own inputs and on heavily padded ones
 * (fixtures/make_padded_fixtures.py: three lengths, one-token rows, left padding); the
 * padded-positions rule; the structure (loops, scatters, the If on padding, packed row counts);
 * what it refuses; and transformers.js pipelines on padded batches, packed against the same
 * models without the pass.
 */
import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { AutoModel, AutoTokenizer, TokenClassificationPipeline, env, pipeline, Tensor as HfTensor } from '@huggingface/transformers'
import { DataType } from '../src/ir/dtype.js'
import { attrInt, cloneModel, type Graph, type Model, type Node } from '../src/ir/graph.js'
import { Tensor, bytesOf } from '../src/ir/tensor.js'
import { modelBytes, readModelFile } from '../src/onnx/file.js'
import { DEFAULT_PAD_LOGIT, packTokens, packTokensPass } from '../src/passes/pack-tokens.js'
import { passContext, runPasses } from '../src/passes/pass.js'
import { passesOf, precisionPlans, type ArtifactPlan } from '../src/targets/precision.js'
import { targetPlans } from '../src/targets/targets.js'
import { convert } from '../src/pipeline/convert.js'
import { compareTokens, type TokenMask } from '../src/verify/compare.js'
import { createSession, runSession } from '../src/runtime/session.js'
import { buildFixture, fixtureDir, goldenFixtures, loadTensors, tempDir } from './support/helpers.js'

type Outputs = Map<string, { data: Float32Array; dims: number[] }>
const PRECISIONS = ['fp32', 'int8'] as const
type Precision = (typeof PRECISIONS)[number]

type Folder = 'cpu' | 'default'
const FOLDERS: Folder[] = ['cpu', 'default']

/** The plan that makes `precision` in a folder: `convert --target cpu`'s, or convert's default one. */
function planOf(folder: Folder, precision: Precision): ArtifactPlan {
  const plans = folder === 'cpu' ? targetPlans('cpu') : precisionPlans([precision])
  return plans.find((p) => p.precision === precision)!
}

/** The same plan without pack-tokens: the model as albertkit emitted it before issue 13. */
function withoutPacking(plan: ArtifactPlan): ArtifactPlan {
  assert.ok(plan.passes.includes('pack-tokens'), `${plan.target} ${plan.precision} packs`)
  return { ...plan, passes: plan.passes.filter((p) => p !== 'pack-tokens') }
}

/** A fixture's graph as convert makes it in `folder` at `precision`, before pack-tokens (which the caller runs). */
async function unpackedModel(name: string, precision: Precision, folder: Folder = 'cpu'): Promise<Model> {
  const m = buildFixture(name)
  await runPasses(m, passesOf(withoutPacking(planOf(folder, precision))))
  return m
}

/** A fixture's graph exactly as convert makes it in `folder` at `precision` (packed). */
async function emittedModel(name: string, precision: Precision, folder: Folder = 'cpu'): Promise<Model> {
  const m = buildFixture(name)
  await runPasses(m, passesOf(planOf(folder, precision)))
  return m
}

async function run(m: Model, feeds: Map<string, Tensor>): Promise<Outputs> {
  const session = await createSession(modelBytes(m), { optimization: 'all' })
  try {
    return await runSession(session, feeds)
  } finally {
    await session.release()
  }
}

function maskOf(feeds: Map<string, Tensor>): TokenMask {
  const m = feeds.get('attention_mask')!
  return { dims: m.dims, keep: Uint8Array.from(m.toNumbers(), (x) => (x !== 0 ? 1 : 0)) }
}

const LOGITS = (name: string) => /logits/.test(name)

function int64(dims: number[], values: number[]): Tensor {
  return new Tensor(DataType.INT64, dims, bytesOf(BigInt64Array.from(values, BigInt)))
}

/** Every node of a graph and of its subgraphs. */
function allNodes(g: Graph): Node[] {
  return g.nodes.flatMap((n) => [n, ...[...n.subgraphs()].flatMap(allNodes)])
}

const count = (nodes: readonly Node[], op: string) => nodes.filter((n) => n.opType === op).length
const branch = (m: Model, which: 'then_branch' | 'else_branch') => m.graph.nodes.find((n) => n.opType === 'If')!.attr(which)!.g!

const padded = goldenFixtures().filter((n) => fs.existsSync(path.join(fixtureDir(n), 'golden-padded.safetensors')))

describe('pack-tokens: parity with transformers on real positions', () => {
  it('has padded goldens for every head', () => {
    for (const n of ['albert-model', 'albert-mlm', 'albert-pretraining', 'albert-seqcls', 'albert-tokcls', 'albert-qa', 'albert-mc', 'albert-seqcls-text']) {
      assert.ok(padded.includes(n), n)
    }
    const mask = loadTensors(path.join(fixtureDir('albert-model'), 'inputs-padded.safetensors')).get('attention_mask')!
    assert.deepEqual(mask.dims, [5, 16])
    const rows = [0, 1, 2, 3, 4].map((r) => mask.toNumbers().slice(r * 16, r * 16 + 16).join(''))
    assert.deepEqual(rows, ['1111111111111000', '1111110000000000', '1000000000000000', '0000000001111111', '1111111111111111'])
  })

  for (const name of padded) {
    for (const folder of FOLDERS) {
      for (const precision of PRECISIONS) {
        it(`${name} ${folder} ${precision}: own and padded inputs`, async () => {
          const today = await unpackedModel(name, precision, folder)
          const m = await emittedModel(name, precision, folder)
          assert.deepEqual(m.graph.nodes.map((n) => n.opType), ['ReduceMin', 'Greater', 'If'], 'packed, with the If on padding')
          for (const which of ['', '-padded']) {
            const feeds = loadTensors(path.join(fixtureDir(name), `inputs${which}.safetensors`))
            const golden = loadTensors(path.join(fixtureDir(name), `golden${which}.safetensors`))
            const got = await run(m, feeds)
            const before = await run(today, feeds)
            const mask = maskOf(feeds)
            for (const [k, ref] of golden) {
              const out = got.get(k)!
              assert.deepEqual(out.dims, [...ref.dims], `${k} shape`)
              const p = compareTokens(ref.toFloat32(), out.data, out.dims, mask, LOGITS(k))
              const where = `${which ? 'padded inputs' : 'own inputs'} ${k}`
              // int8: cosine 0.99 (the transformers.js tests' tolerance) and no more than 0.005 below
              // the unpacked int8 model on the same inputs
              const t = compareTokens(ref.toFloat32(), before.get(k)!.data, out.dims, mask, LOGITS(k))
              // fp32: 1e-5 (the fusion tests' tolerance), or, where today's unpacked model is already
              // further off on these inputs (albert-pretraining's 30k-wide MLM logits on the padded
              // batch: 2.1e-5), no further off than it (and within the verdict's 1e-4)
              if (precision === 'fp32') assert.ok(p.maxAbs <= Math.max(1e-5, Math.min(t.maxAbs * 1.05, 1e-4)) && p.cosine > 0.999999, `${where}: max abs ${p.maxAbs} (today ${t.maxAbs}), cosine ${p.cosine}`)
              else assert.ok(p.cosine > 0.99 && p.cosine > t.cosine - 0.005, `${where}: cosine ${p.cosine} (today ${t.cosine})`)
            }
          }
        })
      }
    }
  }
})

describe('pack-tokens: what padded positions hold', () => {
  const feeds = (name: string) => loadTensors(path.join(fixtureDir(name), 'inputs-padded.safetensors'))

  /** Values of a [..mask dims, X] or [..mask dims] output at padded positions. */
  function atPadding(out: { data: Float32Array; dims: number[] }, mask: TokenMask): number[] {
    const width = out.dims.length > mask.dims.length ? out.dims[out.dims.length - 1]! : 1
    const values: number[] = []
    mask.keep.forEach((k, i) => {
      if (!k) values.push(...out.data.subarray(i * width, (i + 1) * width))
    })
    return values
  }

  it('hidden states are 0 there, per-token logits -10000 (MLM, token classification, QA start/end)', async () => {
    const cases: [string, string, number][] = [
      ['albert-model', 'last_hidden_state', 0],
      ['albert-mlm', 'logits', DEFAULT_PAD_LOGIT],
      ['albert-pretraining', 'prediction_logits', DEFAULT_PAD_LOGIT],
      ['albert-tokcls', 'logits', DEFAULT_PAD_LOGIT],
      ['albert-qa', 'start_logits', DEFAULT_PAD_LOGIT],
      ['albert-qa', 'end_logits', DEFAULT_PAD_LOGIT],
    ]
    for (const folder of FOLDERS) {
      for (const [name, output, fill] of cases) {
        const m = await emittedModel(name, 'int8', folder)
        const f = feeds(name)
        const mask = maskOf(f)
        const values = atPadding((await run(m, f)).get(output)!, mask)
        const padding = mask.keep.length - mask.keep.reduce((a, b) => a + b, 0)
        assert.equal(padding, 37, 'the padded inputs have 37 padded positions')
        assert.ok(values.length >= padding && values.every((v) => v === fill), `${folder} ${name} ${output}: all ${fill}`)
      }
    }
  })

  it('padLogit sets the logits value; a row of no real token gives padding values and leaves the other rows as they were', async () => {
    const m = await unpackedModel('albert-tokcls', 'fp32')
    packTokens(m, { padLogit: -77 })
    const f = feeds('albert-tokcls')
    const alone = await run(m, f)
    // The same batch with a sixth row whose mask is all 0.
    const grow = (t: Tensor, fill: number) => int64([6, 16], [...t.toNumbers(), ...new Array<number>(16).fill(fill)])
    const six = new Map([
      ['input_ids', grow(f.get('input_ids')!, 0)],
      ['attention_mask', grow(f.get('attention_mask')!, 0)],
      ['token_type_ids', grow(f.get('token_type_ids')!, 0)],
    ])
    const got = (await run(m, six)).get('logits')!
    const before = alone.get('logits')!
    assert.deepEqual(got.dims, [6, 16, 5])
    assert.deepEqual([...got.data.subarray(5 * 16 * 5)], new Array<number>(80).fill(-77), 'the empty row: padding values only')
    // fp32: the other rows' numbers do not depend on the batch they are in (attention runs per row)
    assert.deepEqual(got.data.subarray(0, before.data.length), before.data)
    const s = await emittedModel('albert-seqcls', 'fp32')
    const pooled = (await run(s, six)).get('logits')!
    assert.ok(pooled.data.every(Number.isFinite), 'pooled outputs of the empty row are finite')
  })
})

describe('pack-tokens: structure', () => {
  it('albert-pretraining int8: If(no padding) between today\'s graph and the packed one; one loop per layer call, attention only inside', async () => {
    const today = await unpackedModel('albert-pretraining', 'int8')
    const m = cloneModel(today)
    const s = packTokens(m)
    // 4 layer calls × 2 inner layers; one gather after the embeddings; MLM logits scattered; SOP pooled
    assert.deepEqual({ ...s, tokenwiseNodes: 0 }, { packed: true, attentionLoops: 8, tokenwiseNodes: 0, gathers: 1, scatters: 1, pooled: 1, unpaddedBranch: true })
    assert.deepEqual(m.graph.nodes.map((n) => n.opType), ['ReduceMin', 'Greater', 'If'])
    const then = branch(m, 'then_branch')
    assert.deepEqual(Object.fromEntries(then.opCounts()), Object.fromEntries(today.graph.opCounts()), 'the unpadded branch is today\'s graph')
    const packed = branch(m, 'else_branch')
    assert.equal(count(packed.nodes, 'Loop'), 8)
    assert.equal(count(packed.nodes, 'QAttention'), 0, 'no attention outside the loops')
    assert.equal(count(allNodes(packed), 'QAttention'), 8)
    assert.equal(count(packed.nodes, 'DynamicQuantizeMatMul'), count(today.graph.nodes, 'DynamicQuantizeMatMul'), 'every projection still there, on packed rows')
    assert.equal(count(packed.nodes, 'NonZero'), 1)
    const body = packed.nodes.find((n) => n.opType === 'Loop')!.attr('body')!.g!
    assert.deepEqual(
      body.nodes.map((n) => n.opType),
      ['Unsqueeze', 'Gather', 'Gather', 'Slice', 'Unsqueeze', 'Slice', 'Unsqueeze', 'QAttention', 'Squeeze', 'SequenceInsert', 'Identity'],
    )
    assert.deepEqual(m.graph.outputs.map((v) => v.name), today.graph.outputs.map((v) => v.name))
  })

  it('the default folder\'s int8 model: attention unfused on [B, S]; per layer Q, K, V scattered in and the context gathered out', async () => {
    const today = await unpackedModel('albert-model', 'int8', 'default')
    const m = cloneModel(today)
    const s = packTokens(m)
    // 3 layer calls: 3 scatters each (Q, K, V) and the last hidden state; 1 + 3 gathers (after the embeddings, each context)
    assert.deepEqual({ ...s, tokenwiseNodes: 0 }, { packed: true, attentionLoops: 0, tokenwiseNodes: 0, gathers: 4, scatters: 10, pooled: 1, unpaddedBranch: true })
    const packed = branch(m, 'else_branch')
    assert.equal(count(allNodes(packed), 'Loop'), 0)
    assert.equal(count(packed.nodes, 'DynamicQuantizeMatMul'), count(today.graph.nodes, 'DynamicQuantizeMatMul'))
    assert.equal(count(packed.nodes, 'Softmax'), 3, 'the attention core as it was')
    const gathers = packed.nodes.filter((n) => n.opType === 'Gather' && n.attrInt('axis', 0) === 0 && /_packed$|_positions$/.test(n.outputs[0]!.name))
    assert.equal(gathers.length, 4 + 10 + 1, 'gathers, scatters and the [CLS] rows of the pooler')
  })

  for (const folder of FOLDERS) {
    it(`padded positions are skipped (${folder}): the projections run on T rows (real tokens, plus position 0 of a left-padded row)`, async () => {
      const m = await unpackedModel('albert-model', 'fp32', folder)
      assert.equal(packTokens(m, { unpaddedBranch: false }).packed, true)
      // Expose the row count of every FFN up-projection (a Gemm reading the attention LayerNorm).
      const g = m.graph
      const ffn = g.nodes.filter((n) => n.opType === 'Gemm' && n.name.endsWith('/ffn/ffn'))
      assert.equal(ffn.length, 3)
      for (const n of ffn) {
        const shape = g.addNode('Shape', [n.outputs[0]!], [`${n.name}_shape`], { name: `${n.name}_shape` }).outputs[0]!
        const rows = g.addNode('Cast', [shape], [`${n.name}_rows`], { name: `${n.name}_rows`, attrs: [attrInt('to', DataType.FLOAT)] }).outputs[0]!
        rows.setTensorType(DataType.FLOAT, [2])
        g.outputs = [...g.outputs, rows]
      }
      const feeds = loadTensors(path.join(fixtureDir('albert-model'), 'inputs-padded.safetensors'))
      const out = await run(m, feeds)
      // rows of 13, 6, 1, 7 (left-padded: +1 for position 0) and 16 tokens of 5 × 16 positions
      for (const n of ffn) assert.deepEqual([...out.get(`${n.name}_rows`)!.data], [44, 32], n.name)
    })
  }

  it('a batch without padding takes today\'s graph: the same numbers bit for bit', async () => {
    for (const [folder, precision] of FOLDERS.flatMap((f) => PRECISIONS.map((p) => [f, p] as const))) {
      const today = await unpackedModel('albert-qa', precision, folder)
      const m = cloneModel(today)
      packTokens(m)
      const ones = (n: number) => new Array<number>(n).fill(1)
      const feeds = new Map([
        ['input_ids', int64([2, 9], [2, 7, 8, 9, 10, 11, 12, 13, 3, 2, 20, 21, 22, 3, 23, 24, 25, 3])],
        ['attention_mask', int64([2, 9], ones(18))],
        ['token_type_ids', int64([2, 9], [...new Array<number>(9).fill(0), 0, 0, 0, 0, 0, 1, 1, 1, 1])],
      ])
      const [a, b] = [await run(today, feeds), await run(m, feeds)]
      for (const [k, v] of a) assert.deepEqual(b.get(k)!.data, v.data, `${folder} ${precision} ${k}`)
    }
  })

  it('is a pass with figures, and says why it does not apply', async () => {
    const m = await unpackedModel('albert-seqcls', 'fp32')
    const r = await packTokensPass.run(m, passContext())
    assert.equal(r.changed, true)
    assert.deepEqual(r.stats, { attentionLoops: 2, tokenwiseNodes: 17, scatters: 0, pooled: 1 })
    const again = await packTokensPass.run(m, passContext())
    assert.equal(again.model, m)
    assert.deepEqual({ changed: again.changed, stats: again.stats }, { changed: false, stats: { attentionLoops: 0, tokenwiseNodes: 0, scatters: 0, pooled: 0, skipped: 'the graph already has subgraphs (control flow)' } })
    // Unfused attention (the plain fp32 graph): Q, K, V scattered, no loops.
    const plain = buildFixture('albert-seqcls')
    assert.deepEqual((await packTokensPass.run(plain, passContext())).stats, { attentionLoops: 0, tokenwiseNodes: 31, scatters: 6, pooled: 1 })
    // A node that mixes rows (here a ReduceMean over the rows of a hidden state) makes it unsafe.
    const mixed = await unpackedModel('albert-model', 'fp32')
    const g = mixed.graph
    const ln = g.nodes.find((n) => n.opType === 'LayerNormalization' && n.name.includes('/layer.0/ffn/'))!
    const mean = g.addNode('ReduceMean', [ln.outputs[0]!], ['row_mean'], { name: 'row_mean' }).outputs[0]!
    g.outputs = [...g.outputs, mean]
    const before = g.nodes.length
    assert.equal(packTokens(mixed).reason, "ReduceMean node 'row_mean' reads token rows but is not token-wise")
    assert.equal(g.nodes.length, before, 'nothing changed')
  })
})

describe('pack-tokens: transformers.js pipelines on padded batches give today\'s results', () => {
  const ROOT = tempDir('albertkit-pack-tjs-')
  env.allowRemoteModels = false
  env.allowLocalModels = true
  env.localModelPath = ROOT
  const LOCAL = { local_files_only: true } as const

  /**
   * A pipeline's answers from today's folder and from the packed one (`<name>-today`,
   * `<name>-packed`): `call` runs it once; each pipeline is disposed after use.
   */
  async function todayAndPacked<T>(
    task: 'text-classification' | 'question-answering' | 'fill-mask' | 'feature-extraction',
    name: string,
    dtype: (typeof DTYPES)[number],
    call: (run: (...args: unknown[]) => Promise<unknown>) => Promise<unknown>,
  ): Promise<[T, T]> {
    const out: T[] = []
    for (const which of ['today', 'packed']) {
      const p = await pipeline(task, `${name}-${which}`, { ...LOCAL, dtype })
      out.push((await call(p as unknown as (...args: unknown[]) => Promise<unknown>)) as T)
      await p.dispose()
    }
    return [out[0]!, out[1]!]
  }
  const DTYPES = ['fp32', 'q8'] as const
  const HEADS: [string, string, string?][] = [
    ['seqcls', 'albert-seqcls-text'],
    ['tokcls', 'albert-tokcls-text'],
    ['qa', 'albert-qa-text'],
    ['mlm', 'albert-mlm'],
    ['base', 'albert-seqcls-text', 'feature-extraction'],
  ]

  // convert's default folder and --target cpu's, each as emitted (packed) and without pack-tokens (today)
  before(async () => {
    for (const [label, fixture, task] of HEADS) {
      for (const folder of FOLDERS) {
        const plans = folder === 'cpu' ? targetPlans('cpu') : precisionPlans(['fp32', 'int8'])
        const common = { checkpoint: fixtureDir(fixture), noVerify: true, ...(task ? { task } : {}) }
        await convert({ ...common, out: path.join(ROOT, `${label}-${folder}-today`), plans: plans.map(withoutPacking) })
        await convert({ ...common, out: path.join(ROOT, `${label}-${folder}-packed`), plans })
        const m = readModelFile(path.join(ROOT, `${label}-${folder}-packed`, 'onnx', 'model_quantized.onnx'))
        assert.deepEqual(m.graph.nodes.map((n) => n.opType), ['ReduceMin', 'Greater', 'If'], `${label} ${folder}: q8 packed`)
      }
    }
  })

  const TEXTS = ['the library opens at nine.', 'rain.', 'children walk to school along the narrow road, talking about games and books.']
  const close = (a: number, b: number, dtype: string) => Math.abs(a - b) <= (dtype === 'fp32' ? 1e-5 : 2e-2)

  for (const folder of FOLDERS) {
    for (const dtype of DTYPES) {
      it(`text-classification, ${folder} ${dtype}`, async () => {
        const [a, b] = await todayAndPacked<{ label: string; score: number }[][]>('text-classification', `seqcls-${folder}`, dtype, (run) => run(TEXTS, { top_k: 2 }))
        assert.equal(a.length, 3)
        a.forEach((row, i) => row.forEach((r, j) => assert.ok(r.label === b[i]![j]!.label && close(r.score, b[i]![j]!.score, dtype), `row ${i}: ${JSON.stringify(row)} vs ${JSON.stringify(b[i])}`)))
      })

      it(`token-classification, ${folder} ${dtype}`, async () => {
        const results = []
        for (const which of ['today', 'packed']) {
          const model = await AutoModel.from_pretrained(`tokcls-${folder}-${which}`, { ...LOCAL, dtype })
          const tokenizer = await AutoTokenizer.from_pretrained(`tokcls-${folder}-${which}`, LOCAL)
          const ner = new TokenClassificationPipeline({ task: 'token-classification', model, tokenizer })
          results.push((await ner(TEXTS, { ignore_labels: [] })) as { entity: string; index: number; score: number }[][])
          await model.dispose()
        }
        const [a, b] = results as [{ entity: string; index: number; score: number }[][], { entity: string; index: number; score: number }[][]]
        assert.ok(a.flat().length > 10)
        a.forEach((row, i) => {
          assert.deepEqual(row.map((e) => [e.entity, e.index]), b[i]!.map((e) => [e.entity, e.index]), `row ${i}`)
          row.forEach((e, j) => assert.ok(close(e.score, b[i]![j]!.score, dtype), `row ${i} token ${j}: ${e.score} vs ${b[i]![j]!.score}`))
        })
      })

      it(`question-answering, ${folder} ${dtype}`, async () => {
        const questions = ['where is the library?', 'who walks?', 'when?']
        const contexts = ['the library is near the gate.', 'children walk to school.', 'the library opens at nine.']
        const [a, b] = await todayAndPacked<{ answer: string; score: number }[]>('question-answering', `qa-${folder}`, dtype, (run) => run(questions, contexts))
        assert.equal(a.length, 3)
        a.forEach((r, i) => assert.ok(r.answer === b[i]!.answer && close(r.score, b[i]!.score, dtype), `${i}: ${JSON.stringify(r)} vs ${JSON.stringify(b[i])}`))
      })

      it(`fill-mask, ${folder} ${dtype}`, async () => {
        const texts = ['the library opens at [MASK] in the morning.', 'a [MASK] runs.', 'children walk to [MASK] along the narrow road, talking about games.']
        const [a, b] = await todayAndPacked<{ token: number; score: number }[][]>('fill-mask', `mlm-${folder}`, dtype, (run) => run(texts, { top_k: 3 }))
        assert.equal(a.length, 3)
        a.forEach((row, i) => {
          assert.equal(row[0]!.token, b[i]![0]!.token, `row ${i}: top token`)
          if (dtype === 'fp32') row.forEach((r, j) => assert.ok(r.token === b[i]![j]!.token && close(r.score, b[i]![j]!.score, dtype), `row ${i} #${j}`))
        })
      })

      it(`feature-extraction (mean pooling over the mask), ${folder} ${dtype}`, async () => {
        const [a, b] = await todayAndPacked<HfTensor>('feature-extraction', `base-${folder}`, dtype, (run) => run(TEXTS, { pooling: 'mean', normalize: true }))
        assert.deepEqual(a.dims, [3, 16])
        const x = a.data as Float32Array
        const y = b.data as Float32Array
        for (let i = 0; i < x.length; i++) assert.ok(close(x[i]!, y[i]!, dtype), `element ${i}: ${x[i]} vs ${y[i]}`)
      })
    }
  }
})

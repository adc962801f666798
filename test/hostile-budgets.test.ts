/**
 * Hostile input costs bounded time and memory (issue 11, the checkpoint side). Each case is a
 * file of under 5 MB, crafted here, that once cost gigabytes, minutes or a crash: the CLI, run
 * under a bound on the CPU time and on the peak memory of its process tree, must stop with exit 3
 * and the one-line message that names the budget, the limit or the escaped text.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { parseConfig, CONFIG_JSON_LIMITS, CONFIG_LIMITS, MAX_LAYER_CALLS } from '../src/checkpoint/config.js'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { readSafetensors } from '../src/checkpoint/safetensors.js'
import { readTorchBin, MAX_PICKLE_BYTES, TENSOR_BYTES_PER_STORAGE_BYTE, TENSOR_SLACK_BYTES } from '../src/checkpoint/torch-bin.js'
import { MAX_MEMO, MAX_VALUES } from '../src/checkpoint/pickle.js'
import { MAX_KEY_BYTES } from '../src/checkpoint/tf-table.js'
import { INFLATE_RATIO, INFLATE_SLACK_BYTES } from '../src/checkpoint/zip.js'
import { UserError } from '../src/util/errors.js'
import { figures, runBounded, type BoundedRun } from './support/bounded.js'
import { copyFixture, tempDir } from './support/helpers.js'
import { encodeHeader, rewriteIndex } from './support/tf-bundle.js'
import { deflatedZeros, dictPickle, tensorOps, torchZip } from './support/torch-files.js'
import {
  appendsCheckpoint,
  bigConfigCheckpoint,
  configCheckpoint,
  deepSafetensorsCheckpoint,
  deflatedPickleCheckpoint,
  manyDictsCheckpoint,
  memoCheckpoint,
  nestedRebuildCheckpoint,
  safetensorsEntryCheckpoint,
  stride0Checkpoint,
  tfKeyBombCheckpoint,
  tfOverlapCheckpoint,
  torchCheckpoint,
  viewsCheckpoint,
  zipBombCheckpoint,
} from './support/hostile-inputs.js'

const work = tempDir()
const at = (name: string) => path.join(work, name)

/**
 * Any input under 5 MB: at most 5 s of CPU time and 300 MB of peak memory (the CLI's own start,
 * about 0.6 s and 70 MB, included), counted over the process tree (support/bounded.ts); a run is
 * still killed after 30 s of wall time, so a hang fails too.
 */
const BOUNDS = { cpu: 5, mb: 300, wall: 30 }
const MAX_INPUT = 5_000_000

function folderBytes(dir: string): number {
  return fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0)
}

/** `albertkit ...args` on a crafted folder: exit 3 with exactly `message`, within BOUNDS. */
async function refusedWithin(dir: string, args: string[], message: string): Promise<BoundedRun> {
  assert.ok(folderBytes(dir) < MAX_INPUT, `the input is under ${MAX_INPUT} bytes (${folderBytes(dir)})`)
  const r = await runBounded(args, BOUNDS)
  const shown = figures(r)
  assert.equal(r.killed, undefined, `stopped at the ${r.killed} bound (${shown})`)
  assert.equal(r.stderr, `Error: ${message}\n`, shown)
  assert.equal(r.status, 3, shown)
  assert.ok(!/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(r.stderr), 'no control characters reach the terminal')
  assert.ok(r.cpuMs <= BOUNDS.cpu * 1000 && r.peakMB <= BOUNDS.mb, shown)
  if (process.env.ALBERTKIT_MEASURE) console.log(`${shown}: ${folderBytes(dir)} bytes in, ${args[0]}`)
  return r
}

/** `fn` throws a one-line UserError that is exactly `message`. */
function throwsExactly(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `a UserError, not ${String(e)}`)
    assert.equal(e.message, message)
    return true
  })
}

describe('pytorch_model.bin: budgets before the work', { concurrency: 2 }, () => {
  it('100 stride-0 tensors over one 4-byte storage (6.6 GB once) are refused at the tensor budget', async () => {
    const dir = stride0Checkpoint(at('stride0'))
    const bin = path.join(dir, 'pytorch_model.bin')
    const budget = 4 * 4 + TENSOR_SLACK_BYTES
    await refusedWithin(dir, ['inspect', dir], `${bin}: tensor 't0': FLOAT[16777216], expanded by strides (0), would take 67108864 bytes, over the file's tensor budget of ${budget} bytes: 4 × its 4 bytes of storages + ${TENSOR_SLACK_BYTES}`)
  })

  it('small expanded tensors share one budget: four 4 MiB expansions of a 4-byte storage read, the fifth is refused', async () => {
    const four = stride0Checkpoint(at('stride0-four'), 4, 2 ** 20)
    const read = readTorchBin(path.join(four, 'pytorch_model.bin'))
    assert.deepEqual([...read.values()].map((t) => t.dims[0]), [2 ** 20, 2 ** 20, 2 ** 20, 2 ** 20])
    const dir = stride0Checkpoint(at('stride0-small'), 100, 2 ** 20)
    const bin = path.join(dir, 'pytorch_model.bin')
    await refusedWithin(dir, ['inspect', dir], `${bin}: tensor 't4': FLOAT[1048576], expanded by strides (0), would take 4194304 bytes, over the file's tensor budget of ${16 + TENSOR_SLACK_BYTES} bytes (16 of them left): 4 × its 4 bytes of storages + ${TENSOR_SLACK_BYTES}`)
  })

  it('3000 views of one 4 MiB storage (12 GB for every later step to read) stop at the tensor budget', async () => {
    const dir = viewsCheckpoint(at('views'))
    const bin = path.join(dir, 'pytorch_model.bin')
    const storage = 4 << 20
    const fit = (TENSOR_BYTES_PER_STORAGE_BYTE * storage + TENSOR_SLACK_BYTES) / storage // 8
    await refusedWithin(dir, ['inspect', dir], `${bin}: tensor 'v${fit}': FLOAT[1048576], a view of storage '0', would take ${storage} bytes, over the file's tensor budget of ${fit * storage} bytes (0 of them left): 4 × its ${storage} bytes of storages + ${TENSOR_SLACK_BYTES}`)
  })

  it('a 1 MB zip of deflated zeros declaring 1 GiB of storages (2.2 GB once) is refused before inflating', async () => {
    const dir = zipBombCheckpoint(at('zipbomb'))
    const bin = path.join(dir, 'pytorch_model.bin')
    const deflated = 4 * deflatedZeros(256 << 20).body.byteLength
    const budget = INFLATE_SLACK_BYTES + INFLATE_RATIO * deflated
    await refusedWithin(dir, ['inspect', dir], `${bin}: its deflated entries would inflate to ${2 ** 30} bytes in all, over this archive's inflation budget of ${budget} bytes (${INFLATE_SLACK_BYTES} + ${INFLATE_RATIO} × its ${deflated} deflated bytes)`)
  })

  it('a deflated data.pkl of 1 GiB is refused before inflating', async () => {
    const dir = deflatedPickleCheckpoint(at('pklbomb'))
    await refusedWithin(dir, ['inspect', dir], `${path.join(dir, 'pytorch_model.bin')}: 'archive/data.pkl' is ${2 ** 30} bytes, over the ${MAX_PICKLE_BYTES}-byte limit for a state dict's pickle`)
  })

  it('a deflated storage entry must inflate to exactly its storage (checked before inflating)', () => {
    const pkl = dictPickle([['w', tensorOps({ key: '0', numel: 4, size: [4], stride: [1] })]])
    const dir = torchCheckpoint(at('deflated-size'), torchZip(pkl, { 0: deflatedZeros(1 << 20) }))
    throwsExactly(() => readTorchBin(path.join(dir, 'pytorch_model.bin')), `${path.join(dir, 'pytorch_model.bin')}: storage '0': FloatStorage of 4 elements needs 16 bytes but 'archive/data/0' holds 1048576`)
  })

  it('APPENDS of 300,000 items (a stack overflow once) is read, and the state dict refused', async () => {
    const dir = appendsCheckpoint(at('appends'))
    await refusedWithin(dir, ['inspect', dir], `${path.join(dir, 'pytorch_model.bin')}: 'x' holds a list, not a tensor`)
  })

  it('_rebuild_from_type_v2 nested 50,000 deep (a stack overflow once) is refused at the first nesting', async () => {
    const dir = nestedRebuildCheckpoint(at('nested'))
    const fn = 'torch._tensor._rebuild_from_type_v2'
    await refusedWithin(dir, ['inspect', dir], `${path.join(dir, 'pytorch_model.bin')}: ${fn}: func is ${fn} itself; torch.save never nests it`)
  })

  it('2.4 million empty dicts in 4.8 MB (740 MB once) stop at the value budget', async () => {
    const dir = manyDictsCheckpoint(at('dicts'), 2_400_000)
    // proto, EMPTY_DICT, MARK, 'x', EMPTY_LIST: 11 bytes and 3 values; then a dict every 2 bytes.
    const byte = 11 + 2 * (MAX_VALUES - 3)
    await refusedWithin(dir, ['inspect', dir], `${path.join(dir, 'pytorch_model.bin')}: pickle archive/data.pkl, byte ${byte}: builds more than ${MAX_VALUES} values, more than a state dict's pickle needs (refusing to go on)`)
  })

  it('1.6 million memoized lists stop at the memo budget', async () => {
    const dir = memoCheckpoint(at('memo'))
    // proto, EMPTY_DICT, MARK, 'x': 10 bytes; then EMPTY_LIST, MEMOIZE, POP every 3 bytes.
    const byte = 11 + 3 * MAX_MEMO
    await refusedWithin(dir, ['inspect', dir], `${path.join(dir, 'pytorch_model.bin')}: pickle archive/data.pkl, byte ${byte}: memo holds more than ${MAX_MEMO} items`)
  })
})

describe('config.json: sizes checked before anything is built', { concurrency: 2 }, () => {
  it('num_hidden_layers 1000 (over 60 s once) is refused by convert', async () => {
    const dir = configCheckpoint(at('layers-1000'), { num_hidden_layers: 1000 })
    await refusedWithin(dir, ['convert', dir, '--out', at('out-1000'), '--no-verify'], `${path.join(dir, 'config.json')}: 'num_hidden_layers' is 1000, over albertkit's limit of 256 (far above any ALBERT model)`)
    assert.ok(!fs.existsSync(at('out-1000')), 'nothing at the output')
  })

  it('num_hidden_layers 1e9 (a hang once) is refused by inspect', async () => {
    const dir = configCheckpoint(at('layers-1e9'), { num_hidden_layers: 1e9 })
    await refusedWithin(dir, ['inspect', dir], `${path.join(dir, 'config.json')}: 'num_hidden_layers' is 1000000000, over albertkit's limit of 256 (far above any ALBERT model)`)
  })

  it('every size has a limit far above any ALBERT, and layer calls (layers × inner groups) too', () => {
    const parse = (cfg: Record<string, unknown>) => () => parseConfig({ model_type: 'albert', ...cfg }, 'config.json')
    throwsExactly(parse({ num_hidden_layers: 10_000 }), "config.json: 'num_hidden_layers' is 10000, over albertkit's limit of 256 (far above any ALBERT model)")
    for (const [key, max] of Object.entries(CONFIG_LIMITS)) {
      // hidden_size must stay a multiple of the heads; groups at most the layers.
      const base = key === 'num_attention_heads' ? { hidden_size: 2048 } : key === 'num_hidden_groups' ? { num_hidden_layers: 256 } : {}
      throwsExactly(parse({ ...base, [key]: max + 1 }), `config.json: '${key}' is ${max + 1}, over albertkit's limit of ${max} (far above any ALBERT model)`)
      throwsExactly(parse({ ...base, [key]: 1e18 }), `config.json: '${key}' must be an integer ≥ 1, got 1000000000000000000`)
    }
    throwsExactly(parse({ num_hidden_layers: 64, inner_group_num: 8 }), `config.json: num_hidden_layers 64 × inner_group_num 8 is 512 layer calls, over albertkit's limit of ${MAX_LAYER_CALLS}`)
    throwsExactly(parse({ num_labels: 2 ** 21 }), "config.json: 'num_labels' is 2097152, over albertkit's limit of 1048576")
    // The largest published shapes pass: xxlarge, and 24 layers of large.
    parse({ hidden_size: 4096, num_attention_heads: 64, intermediate_size: 16384, num_hidden_layers: 12 })()
    parse({ hidden_size: 1024, num_attention_heads: 16, intermediate_size: 4096, num_hidden_layers: 24 })()
  })

  it('a 4.9 MB config.json of 1.6 million empty objects (5 s of parsing once) is refused before parsing', async () => {
    const dir = bigConfigCheckpoint(at('big-config'), 4_900_000)
    const file = path.join(dir, 'config.json')
    // The root, the architectures list and the padding list come first; the 9998th padding {} is the 10001st.
    const padding = fs.readFileSync(file, 'latin1').indexOf('[{}') + 1
    const max = CONFIG_JSON_LIMITS.maxContainers
    await refusedWithin(dir, ['inspect', dir], `${file}: not valid JSON for a config.json: more than ${max} objects and lists (at character ${padding + 3 * (max - 3)})`)
  })

  it('JSON nested deeper than a config needs, or over 8 MiB, is refused before parsing', () => {
    const dir = configCheckpoint(at('deep-config'), {})
    const head = '{"model_type": "albert", "x": '
    fs.writeFileSync(path.join(dir, 'config.json'), `${head}${'['.repeat(100_000)}${']'.repeat(100_000)}}`)
    // The opening brace is level 1, so level 33 is the 32nd bracket.
    throwsExactly(() => openCheckpoint(dir), `${path.join(dir, 'config.json')}: not valid JSON for a config.json: nested deeper than 32 levels at character ${head.length + 31}`)
    // A real config with 20,000 labels named both ways (1 MB of strings) is well within the limits.
    const labels = Array.from({ length: 20_000 }, (_, i) => [String(i), `n${String(i).padStart(8, '0')} label number ${i}`])
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'albert', id2label: Object.fromEntries(labels), label2id: Object.fromEntries(labels.map(([i, l]) => [l, Number(i)])) }, null, 2))
    assert.equal(openCheckpoint(dir).config.numLabels, 20_000)
    fs.truncateSync(path.join(dir, 'config.json'), 9 << 20) // sparse: nothing is written, nothing read
    throwsExactly(() => openCheckpoint(dir), `${path.join(dir, 'config.json')}: ${9 << 20} bytes, over the ${8 << 20}-byte limit for a config.json`)
  })

  it('hidden_act and architectures from the file are escaped (and must be names)', async () => {
    const dir = configCheckpoint(at('ctl-act'), { hidden_act: '\u001b]0;owned\u0007gelu' })
    await refusedWithin(dir, ['convert', dir, '--out', at('out-ctl'), '--no-verify'], `${path.join(dir, 'config.json')}: 'hidden_act' must be an activation name, got "\\u001b]0;owned\\u0007gelu"`)
    throwsExactly(
      () => parseConfig({ model_type: 'albert', architectures: ['Albert\u009b2J'] }, 'config.json'),
      `config.json: 'architectures' is not a list of class names (got ["Albert\\x9b2J"])`,
    )
    throwsExactly(() => parseConfig({ model_type: 'evil\u001b[2J' }, 'config.json'), 'config.json: model_type is "evil\\u001b[2J", not "albert": albertkit converts ALBERT models only')
  })
})

describe('safetensors: nesting, rank and names', () => {
  it('a header nested 2 million deep (4 s and 300 MB of JSON.parse once) is refused before parsing', async () => {
    const dir = deepSafetensorsCheckpoint(at('deep-st'))
    await refusedWithin(dir, ['inspect', dir], `${path.join(dir, 'model.safetensors')}: header nests deeper than {name: {dtype, shape: [...], data_offsets: [...]}} at character 7`)
  })

  it('a dtype, a tensor name with terminal escapes; a shape of 65 dimensions', () => {
    const dtype = safetensorsEntryCheckpoint(at('st-dtype'), 'w', { dtype: '\u001b[31mF32', shape: [1], data_offsets: [0, 4] }, 4)
    throwsExactly(() => readSafetensors(path.join(dtype, 'model.safetensors')), `${path.join(dtype, 'model.safetensors')}: tensor 'w': unknown dtype '\\x1b[31mF32'`)
    const name = safetensorsEntryCheckpoint(at('st-name'), 'w\u001b[2J', { dtype: 'F32', shape: [2], data_offsets: [0, 4] }, 4)
    throwsExactly(() => readSafetensors(path.join(name, 'model.safetensors')), `${path.join(name, 'model.safetensors')}: tensor 'w\\x1b[2J': F32[2] needs 8 bytes but data_offsets span 4`)
    const rank = safetensorsEntryCheckpoint(at('st-rank'), 'w', { dtype: 'F32', shape: new Array(65).fill(1), data_offsets: [0, 4] }, 4)
    throwsExactly(() => readSafetensors(path.join(rank, 'model.safetensors')), `${path.join(rank, 'model.safetensors')}: tensor 'w': shape has 65 dimensions, more than 64`)
  })
})

describe('TF checkpoints: keys and tensors that multiply', { concurrency: 2 }, () => {
  it('a 280 KB index whose prefix-compressed keys expand to 2.4 GB is refused at the key budget', async () => {
    const dir = tfKeyBombCheckpoint(at('tf-keys'))
    const index = path.join(dir, 'model.ckpt-1.index')
    // The block: the header entry (3 bytes + header), the long key's entry (5 + 60,000 bytes),
    // 7 bytes for each later entry ('ab'..'\xff\xff' as the last two key bytes), one restart point.
    const first = 3 + encodeHeader(1).byteLength + 5 + 60_000
    const end = first + 7 * (0x10000 - 0x6162) + 8
    const fits = Math.floor((MAX_KEY_BYTES - 60_000) / 60_000) // later entries within the key budget
    await refusedWithin(dir, ['inspect', dir], `${index}: data block 0 (bytes 0..${end}): entry at byte ${first + 7 * fits} expands the table's keys past ${MAX_KEY_BYTES} bytes in all (prefix-compressed keys repeating a 59998-byte prefix)`)
  })

  it('1536 kernels sharing one MiB of a shard (1.2 GB and over 60 s once) are refused before reading', async () => {
    const dir = tfOverlapCheckpoint(at('tf-overlap'))
    const shard = path.join(dir, 'model.ckpt-1.data-00000-of-00001')
    const name = (scope: string) => `bert/encoder/transformer/group_0/inner_group_0/${scope}/kernel`
    await refusedWithin(dir, ['inspect', dir], `${shard}: tensor '${name('attention_1/self/key')}' at bytes 0..1048576 overlaps tensor '${name('attention_1/output/dense')}' at bytes 0..1048576; a bundle stores each tensor once`)
  })

  it('variable names with terminal escapes are printed escaped', () => {
    const dir = copyFixture('albert-pretraining-tf')
    const index = path.join(dir, 'model.ckpt-1000.index')
    rewriteIndex(index, (es) => [...es, { ...es.find((e) => e.name === 'global_step')!, name: 'evil\u001b[2J' }])
    throwsExactly(() => openCheckpoint(dir), `${index}: variable 'evil\\x1b[2J' not part of an ALBERT pre-training checkpoint (embeddings, encoder, pooler, cls/predictions, cls/seq_relationship; optimizer slots and global_step are skipped)`)
  })
})

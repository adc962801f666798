/**
 * Small checkpoints that would cost a careless reader gigabytes or minutes, written in-test: stride-0
 * tensors over a 4-byte storage, deflate bombs, pickles with huge APPENDS or deep nesting, absurd
 * config numbers, TF indexes whose keys or tensors multiply, JSON nested millions deep. Each builder
 * writes a checkpoint folder and returns its path; none allocates what the file claims.
 */
import fs from 'node:fs'
import path from 'node:path'
import { crc32c, maskCrc } from '../../src/util/crc32c.js'
import { deflatedZeros, dictPickle, op, tensorOps, torchZip } from './torch-files.js'
import { encodeBlock, encodeFooter, encodeHeader, encodeIndex, withTrailer } from './tf-bundle.js'
import { writeSyntheticCheckpoint, type SyntheticConfig } from './synthetic.js'

/** A tiny ALBERT: builds in milliseconds, so only what the test adds costs time. */
export const TINY: SyntheticConfig = {
  vocab_size: 32,
  embedding_size: 8,
  hidden_size: 8,
  num_hidden_layers: 2,
  num_hidden_groups: 1,
  inner_group_num: 1,
  num_attention_heads: 2,
  intermediate_size: 16,
  max_position_embeddings: 16,
  type_vocab_size: 2,
  hidden_act: 'gelu_new',
}

const tinyConfigJson = (extra: Record<string, unknown> = {}) => JSON.stringify({ ...TINY, model_type: 'albert', architectures: ['AlbertModel'], ...extra })

/** config.json (TINY) and `bin` as pytorch_model.bin. */
export function torchCheckpoint(dir: string, bin: Uint8Array): string {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'config.json'), tinyConfigJson())
  fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), bin)
  return dir
}

/** `count` tensors of `elements` floats, each with stride 0 over one 4-byte storage. */
export function stride0Checkpoint(dir: string, count = 100, elements = 2 ** 24): string {
  const items: [string, number[]][] = []
  for (let i = 0; i < count; i++) items.push([`t${i}`, tensorOps({ key: '0', numel: 1, size: [elements], stride: [0] })])
  return torchCheckpoint(dir, torchZip(dictPickle(items), { 0: new Uint8Array(4) }))
}

/** `count` tensors, each a whole (contiguous) view of one storage of `bytes` bytes. */
export function viewsCheckpoint(dir: string, count = 3000, bytes = 4 << 20): string {
  const items: [string, number[]][] = []
  for (let i = 0; i < count; i++) items.push([`v${i}`, tensorOps({ key: '0', numel: bytes / 4, size: [bytes / 4], stride: [1] })])
  return torchCheckpoint(dir, torchZip(dictPickle(items), { 0: new Uint8Array(bytes) }))
}

/** `members` storages of `bytesEach` zero bytes, deflated (about 1 KB per MiB), one tensor each. */
export function zipBombCheckpoint(dir: string, members = 4, bytesEach = 256 << 20): string {
  const items: [string, number[]][] = []
  const storages: Record<string, ReturnType<typeof deflatedZeros>> = {}
  const bomb = deflatedZeros(bytesEach)
  for (let i = 0; i < members; i++) {
    items.push([`w${i}`, tensorOps({ key: String(i), numel: bytesEach / 4, size: [bytesEach / 4], stride: [1] })])
    storages[String(i)] = bomb
  }
  return torchCheckpoint(dir, torchZip(dictPickle(items), storages))
}

/** A data.pkl entry deflated from `size` zero bytes. */
export function deflatedPickleCheckpoint(dir: string, size = 1 << 30): string {
  return torchCheckpoint(dir, torchZip(deflatedZeros(size), {}))
}

/** A pickle in a state dict's place: `{'x': <body>}`; `body` leaves one value on the stack. */
function statePickle(body: Buffer[]): Buffer {
  return Buffer.concat([Buffer.from([...op.proto(2), ...op.emptyDict, ...op.mark, ...op.str('x')]), ...body, Buffer.from([...op.setitems, ...op.stop])])
}

/** {'x': [0, 0, …]} with all `items` in one APPENDS. */
export function appendsCheckpoint(dir: string, items = 300_000): string {
  const ints = Buffer.alloc(items * 2)
  for (let i = 0; i < items; i++) ints[2 * i] = 0x4b // BININT1 0
  const pkl = statePickle([Buffer.from([...op.emptyList, ...op.mark]), ints, Buffer.from(op.appends)])
  return torchCheckpoint(dir, torchZip(pkl, {}))
}

/** {'x': [{}, {}, …]}: `count` empty dicts, two bytes each. */
export function manyDictsCheckpoint(dir: string, count = 2_500_000): string {
  const dicts = Buffer.alloc(count * 2)
  for (let i = 0; i < count; i++) [dicts[2 * i], dicts[2 * i + 1]] = [0x7d, 0x61] // EMPTY_DICT, APPEND
  return torchCheckpoint(dir, torchZip(statePickle([Buffer.from(op.emptyList), dicts]), {}))
}

/** {'x': None} after `count` empty lists were each memoized and popped: a memo of `count` lists. */
export function memoCheckpoint(dir: string, count = 1_600_000): string {
  const body = Buffer.alloc(count * 3)
  for (let i = 0; i < count; i++) body.set([0x5d, 0x94, 0x30], 3 * i) // EMPTY_LIST, MEMOIZE, POP
  return torchCheckpoint(dir, torchZip(statePickle([body, Buffer.from(op.none)]), {}))
}

/**
 * {'w': _rebuild_from_type_v2(F, Tensor, (F, Tensor, (F, …, (_rebuild_tensor_v2, Tensor, args, None)…)))}
 * nested `depth` deep; each level's tuple is built from the memo, so the pickle never nests MARKs.
 */
export function nestedRebuildCheckpoint(dir: string, depth = 50_000): string {
  const F = 0
  const T = 1
  const head = [
    ...op.proto(2),
    ...op.global('torch._tensor', '_rebuild_from_type_v2'),
    ...op.longBinput(F),
    ...op.pop,
    ...op.global('torch', 'Tensor'),
    ...op.longBinput(T),
    ...op.pop,
  ]
  // Innermost: (_rebuild_tensor_v2, Tensor, (storage, 0, (1,), (1,), False, OrderedDict()), None).
  const rebuild = tensorOps({ key: '0', numel: 1, size: [1], stride: [1] })
  const args = rebuild.slice(op.global('torch._utils', '_rebuild_tensor_v2').length, -op.reduce.length) // MARK … TUPLE
  const inner = [...op.mark, ...op.global('torch._utils', '_rebuild_tensor_v2'), ...op.longBinget(T), ...args, ...op.none, ...op.tuple, ...op.longBinput(2), ...op.pop]
  const level = (k: number) => [...op.mark, ...op.longBinget(F), ...op.longBinget(T), ...op.longBinget(k - 1), ...op.none, ...op.tuple, ...op.longBinput(k), ...op.pop]
  const size = level(3).length
  const levels = Buffer.alloc(size * (depth - 1))
  for (let k = 3; k <= depth + 1; k++) levels.set(level(k), size * (k - 3))
  const tail = [...op.emptyDict, ...op.mark, ...op.str('w'), ...op.longBinget(F), ...op.longBinget(depth + 1), ...op.reduce, ...op.setitems, ...op.stop]
  const pkl = Buffer.concat([Buffer.from(head), Buffer.from(inner), levels, Buffer.from(tail)])
  return torchCheckpoint(dir, torchZip(pkl, { 0: new Uint8Array(4) }))
}

/** The tiny synthetic checkpoint (safetensors) with config.json keys overridden. */
export function configCheckpoint(dir: string, overrides: Record<string, unknown>): string {
  writeSyntheticCheckpoint(dir, TINY)
  fs.writeFileSync(path.join(dir, 'config.json'), tinyConfigJson(overrides))
  return dir
}

/** The tiny checkpoint whose config.json is padded to `bytes` with a list of empty objects. */
export function bigConfigCheckpoint(dir: string, bytes = 5_000_000): string {
  writeSyntheticCheckpoint(dir, TINY)
  const head = tinyConfigJson().slice(0, -1) + ',"padding":['
  const n = Math.max(1, Math.floor((bytes - head.length - 2) / 3))
  fs.writeFileSync(path.join(dir, 'config.json'), `${head}${'{},'.repeat(n - 1)}{}]}`)
  return dir
}

/** config.json (TINY) and a model.safetensors whose header nests arrays `depth` deep. */
export function deepSafetensorsCheckpoint(dir: string, depth = 2_000_000): string {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'config.json'), tinyConfigJson())
  const header = Buffer.from(`{"w":${'['.repeat(depth)}${']'.repeat(depth)}}`)
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(header.length))
  fs.writeFileSync(path.join(dir, 'model.safetensors'), Buffer.concat([len, header]))
  return dir
}

/** config.json (TINY) and a model.safetensors with one tensor described by `entry`. */
export function safetensorsEntryCheckpoint(dir: string, name: string, entry: Record<string, unknown>, dataBytes = 0): string {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'config.json'), tinyConfigJson())
  const header = Buffer.from(JSON.stringify({ [name]: entry }))
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(header.length))
  fs.writeFileSync(path.join(dir, 'model.safetensors'), Buffer.concat([len, header, Buffer.alloc(dataBytes)]))
  return dir
}

const GOOGLE_CONFIG = { vocab_size: 32, embedding_size: 8, hidden_size: 8, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 16, max_position_embeddings: 16 }

function varint(v: number): number[] {
  const out: number[] = []
  for (; v > 0x7f; v = Math.floor(v / 128)) out.push((v & 0x7f) | 0x80)
  out.push(v)
  return out
}

/**
 * A TF checkpoint whose index block expands its prefix-compressed keys quadratically: one key of
 * `keyBytes` bytes, then every later entry shares all but its last two bytes (7 bytes each on
 * disk, `keyBytes` each expanded): about 40,000 entries, 280 KB that expand to 2.4 GB.
 */
export function tfKeyBombCheckpoint(dir: string, keyBytes = 60_000): string {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'albert_config.json'), JSON.stringify(GOOGLE_CONFIG))
  const header = encodeHeader(1)
  const first = 0x6162 // 'ab': just after the long key's last two bytes 'aa'
  const parts: Buffer[] = [Buffer.from([0, 0, ...varint(header.length), ...header]), Buffer.from([0, ...varint(keyBytes), 0]), Buffer.alloc(keyBytes, 0x61)]
  const entry = [...varint(keyBytes - 2), 2, 0]
  const body = Buffer.alloc((entry.length + 2) * (0x10000 - first))
  for (let i = first, at = 0; i <= 0xffff; i++, at += entry.length + 2) body.set([...entry, i >> 8, i & 0xff], at)
  parts.push(body, Buffer.from([0, 0, 0, 0, 1, 0, 0, 0])) // one restart point (0), count 1
  const block = withTrailer(Buffer.concat(parts))
  const meta = withTrailer(encodeBlock([]))
  const index = encodeBlock([{ key: Buffer.from('b'), value: Uint8Array.from([...varint(0), ...varint(block.length - 5)]) }], 1)
  const footer = encodeFooter({ offset: block.length, size: meta.length - 5 }, { offset: block.length + meta.length, size: index.length })
  fs.writeFileSync(path.join(dir, 'model.ckpt-1.index'), Buffer.concat([block, meta, withTrailer(index), footer]))
  return dir
}

/** Dense layers in Google's scopes inside `group_g/inner_group_0/`. */
const DENSE_SCOPES = ['attention_1/self/query', 'attention_1/self/key', 'attention_1/self/value', 'attention_1/output/dense', 'ffn_1/intermediate/dense', 'ffn_1/intermediate/output/dense']

/**
 * A TF checkpoint of `groups` layer groups whose every dense kernel (a 512×512 float32, 1 MiB) is
 * the same bytes of a 1 MiB shard: 6 × `groups` MiB of tensors (and as many transposed copies)
 * from one MiB of data.
 */
export function tfOverlapCheckpoint(dir: string, groups = 256): string {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'albert_config.json'), JSON.stringify({ ...GOOGLE_CONFIG, num_hidden_layers: groups, num_hidden_groups: groups }))
  const size = 1 << 20
  const crc = maskCrc(crc32c(new Uint8Array(size)))
  const entries = []
  for (let g = 0; g < groups; g++) {
    for (const scope of DENSE_SCOPES) {
      entries.push({ name: `bert/encoder/transformer/group_${g}/inner_group_0/${scope}/kernel`, tfDtype: 1, shape: [512, 512], shardId: 0, offset: 0, size, crc32c: crc, slices: 0 })
    }
  }
  fs.writeFileSync(path.join(dir, 'model.ckpt-1.index'), encodeIndex(1, entries))
  fs.writeFileSync(path.join(dir, 'model.ckpt-1.data-00000-of-00001'), Buffer.alloc(size))
  return dir
}

/**
 * Original Google ALBERT (TF1) checkpoints: `albert_config.json` beside a TensorFlow tensor bundle,
 * `<prefix>.index` (a table, see tf-table.ts: the key "" holds a BundleHeaderProto, every other
 * key is a variable name whose value is a BundleEntryProto: dtype, shape, shard, offset, size,
 * masked CRC-32C) and `<prefix>.data-0000i-of-0000K` (raw little-endian tensor bytes).
 *
 * Variables are renamed to the Hugging Face names albertkit's builder reads, as transformers'
 * converter does: `bert/...` → `albert....`, `cls/predictions/...` → `predictions....`,
 * `cls/seq_relationship/output_*` → `sop_classifier.classifier.*`; every dense `kernel` (stored
 * (in, out)) is transposed to nn.Linear's (out, in). Optimizer slots (`.../adam_m`, `.../adam_v`)
 * and `global_step` are skipped; any other unknown variable is an error. The config's keys are
 * Google's: `hidden_act` "gelu" there is the tanh approximation (HF's gelu_new). Sizes, offsets and
 * shards are checked against the files before anything is read, and no two tensors may share a
 * shard's bytes (so the bytes read are at most the shards' size, however many entries the index
 * holds); every tensor read is checked against its CRC-32C; errors are one line naming the file,
 * variable names escaped.
 */
import fs from 'node:fs'
import path from 'node:path'
import { DataType, byteLengthOf, dtypeName } from '../ir/dtype.js'
import { transposeTensor } from '../ir/evaluate.js'
import { Tensor, elementCount } from '../ir/tensor.js'
import { ProtoReader, WIRE_I32, WIRE_LEN, WIRE_VARINT, WireError } from '../protobuf/wire.js'
import { crc32c, unmaskCrc } from '../util/crc32c.js'
import { fail } from '../util/errors.js'
import { printable } from '../util/printable.js'
import { CONFIG_JSON_LIMITS, parseConfig, type AlbertConfig } from './config.js'
import { readExactly, readJsonFile, statOrFail } from '../util/read.js'
import { MAX_RANK } from '../ir/tensor.js'
import type { WeightEntry } from './weights.js'
import { readTable, showKey } from './tf-table.js'

export interface TfCheckpoint {
  config: AlbertConfig
  /** The index, then the data shards. */
  weightFiles: string[]
  weights: Map<string, WeightEntry>
  /** Variables left out on purpose (optimizer slots, global_step). */
  skipped: string[]
}

/** Largest index file read (an albert-xxlarge index with optimizer slots is a few kB). */
export const MAX_INDEX_BYTES = 256 * 1024 * 1024
const STATE_FILE = 'checkpoint'
/** The `checkpoint` state file is a few lines of text. */
const MAX_STATE_FILE_BYTES = 1 << 20

// ---------------------------------------------------------------------------------------------
// Finding the checkpoint

/** The `<prefix>.index` file of a folder holding a TF checkpoint, or undefined. */
export function findTfCheckpoint(dir: string): string | undefined {
  const fromState = prefixFromStateFile(dir)
  if (fromState) return `${fromState}.index`
  const indexes = listIndexes(dir)
  if (indexes.length === 0) return undefined
  return path.join(dir, latestIndex(dir, indexes))
}

/** The prefix named by the folder's `checkpoint` state file, when it names one that exists here. */
function prefixFromStateFile(dir: string): string | undefined {
  const file = path.join(dir, STATE_FILE)
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) return undefined
  const size = fs.statSync(file).size
  if (size > MAX_STATE_FILE_BYTES) fail(file, `${size} bytes, over the ${MAX_STATE_FILE_BYTES}-byte limit for a checkpoint state file`)
  const match = /^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"/m.exec(fs.readFileSync(file, 'utf8'))
  if (!match) fail(file, 'no model_checkpoint_path line')
  let named: string
  try {
    named = JSON.parse(`"${match[1]!}"`) as string
  } catch {
    fail(file, `cannot read the model_checkpoint_path string ${printable(match[1]!)}`)
  }
  // The state file may hold an absolute path from the machine that trained: try it, then this folder.
  for (const prefix of [path.resolve(dir, named), path.join(dir, path.basename(named))]) {
    if (fs.existsSync(`${prefix}.index`)) return prefix
  }
  fail(file, `model_checkpoint_path "${printable(named)}" has no ${printable(path.basename(named))}.index in ${dir}`)
}

function listIndexes(dir: string): string[] {
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch {
    return []
  }
  return names.filter((n) => n.endsWith('.index')).sort()
}

/** One index: that one. Several: the highest `-N` step, if every one has a step. */
function latestIndex(dir: string, indexes: string[]): string {
  if (indexes.length === 1) return indexes[0]!
  const steps = indexes.map((n) => /-(\d+)\.index$/.exec(n)?.[1])
  if (steps.some((s) => s === undefined)) {
    fail(dir, `several checkpoints (${printable(indexes.join(', '))}) and no '${STATE_FILE}' file naming one; keep one or add the file`)
  }
  let best = 0
  for (let i = 1; i < indexes.length; i++) if (BigInt(steps[i]!) > BigInt(steps[best]!)) best = i
  return indexes[best]!
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Read albert_config.json and the tensor bundle, names mapped to Hugging Face's. */
export function readTfCheckpoint(dir: string, configFile: string): TfCheckpoint {
  const indexFile = findTfCheckpoint(dir)
  if (!indexFile) fail(dir, `has ${path.basename(configFile)} but no TensorFlow checkpoint (no '${STATE_FILE}' file and no *.index)`)
  const googleConfig = readJsonFile(configFile, { ...CONFIG_JSON_LIMITS, what: 'an albert_config.json' })
  const bundle = readBundleIndex(indexFile)
  const { mapped, skipped } = mapVariables(indexFile, bundle.entries)
  const config = tfConfig(googleConfig, configFile, architectureOf(mapped))
  checkLayerIndices(indexFile, mapped, config, configFile)
  const shards = openShards(indexFile, bundle.numShards)
  try {
    checkBounds(bundle.entries, shards)
    const weights = new Map<string, WeightEntry>()
    for (const m of mapped) weights.set(m.hfName, { tensor: readTensor(m, shards), file: shards[m.entry.shardId]!.file })
    return { config, weightFiles: [indexFile, ...shards.map((s) => s.file)], weights, skipped }
  } finally {
    for (const s of shards) fs.closeSync(s.fd)
  }
}

// ---------------------------------------------------------------------------------------------
// The bundle index: header and entries

export interface BundleEntry {
  name: string
  /** TensorFlow's DataType enum value. */
  tfDtype: number
  shape: number[]
  shardId: number
  offset: number
  size: number
  /** Masked CRC-32C of the tensor bytes (proto3: an absent field is 0, and 0 is then the CRC). */
  crc32c: number
  slices: number
}

export interface BundleIndex {
  numShards: number
  entries: BundleEntry[]
}

/** Read and validate `<prefix>.index`: the header entry first, then one entry per tensor. */
export function readBundleIndex(file: string): BundleIndex {
  const size = statOrFail(file, (code) => `cannot open: ${code}`).size
  if (size > MAX_INDEX_BYTES) fail(file, `${size} bytes, over the ${MAX_INDEX_BYTES}-byte limit for a checkpoint index`)
  const table = readTable(file, fs.readFileSync(file))
  const head = table[0]
  if (!head || head.key.byteLength !== 0) fail(file, 'no header entry (the empty key): not a tensor bundle index')
  const numShards = parseHeader(file, head.value)
  const entries = table.slice(1).map((e) => parseEntry(file, Buffer.from(e.key).toString('utf8'), e.value))
  for (const e of entries) {
    if (e.shardId >= numShards) fail(file, `tensor ${showKey(Buffer.from(e.name))} is in shard ${e.shardId}, but the bundle has ${numShards}`)
  }
  return { numShards, entries }
}

/** BundleHeaderProto: num_shards = 1, endianness = 2 (0 little, 1 big), version = 3 (VersionDef). */
function parseHeader(file: string, value: Uint8Array): number {
  let numShards = 0
  let endianness = 0
  let minConsumer = 0
  const badConsumers: number[] = []
  protoFields(file, 'bundle header', value, (field, wire, r) => {
    if (field === 1 && wire === WIRE_VARINT) numShards = r.int32()
    else if (field === 2 && wire === WIRE_VARINT) endianness = r.int32()
    else if (field === 3 && wire === WIRE_LEN) {
      protoFields(file, 'bundle header version', r.bytes(), (f, w, v) => {
        if (f === 2 && w === WIRE_VARINT) minConsumer = v.int32()
        else if (f === 3 && w === WIRE_VARINT) badConsumers.push(v.int32())
        else return false
        return true
      })
    } else return false
    return true
  })
  if (numShards < 1 || numShards > 99999) fail(file, `bundle header says ${numShards} shards`)
  if (endianness !== 0) fail(file, 'big-endian tensor bundle; albertkit reads little-endian checkpoints only')
  if (minConsumer > 1 || badConsumers.includes(1)) fail(file, `tensor bundle format needs a newer reader (min_consumer ${minConsumer})`)
  return numShards
}

/**
 * BundleEntryProto: dtype = 1, shape = 2 (TensorShapeProto), shard_id = 3, offset = 4, size = 5,
 * crc32c = 6 (fixed32), slices = 7 (repeated TensorSliceProto: partitioned variables).
 */
export function parseEntry(file: string, name: string, value: Uint8Array): BundleEntry {
  const e: BundleEntry = { name, tfDtype: 0, shape: [], shardId: 0, offset: 0, size: 0, crc32c: 0, slices: 0 }
  const what = `entry for ${showKey(Buffer.from(name))}`
  protoFields(file, what, value, (field, wire, r) => {
    if (field === 1 && wire === WIRE_VARINT) e.tfDtype = r.int32()
    else if (field === 2 && wire === WIRE_LEN) e.shape = parseShape(file, what, r.bytes())
    else if (field === 3 && wire === WIRE_VARINT) e.shardId = r.int32()
    else if (field === 4 && wire === WIRE_VARINT) e.offset = safeInt(file, what, 'offset', r.int64())
    else if (field === 5 && wire === WIRE_VARINT) e.size = safeInt(file, what, 'size', r.int64())
    else if (field === 6 && wire === WIRE_I32) {
      const b = r.skip(WIRE_I32, r.pos)
      e.crc32c = new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true)
    } else if (field === 7 && wire === WIRE_LEN) {
      r.bytes()
      e.slices++
    } else return false
    return true
  })
  if (e.shardId < 0) fail(file, `${what}: shard_id ${e.shardId}`)
  return e
}

/** TensorShapeProto: dim = 2 (Dim: size = 1, name = 2), unknown_rank = 3. */
function parseShape(file: string, what: string, bytes: Uint8Array): number[] {
  const dims: number[] = []
  protoFields(file, `${what} shape`, bytes, (field, wire, r) => {
    if (field === 2 && wire === WIRE_LEN) {
      let size = 0
      protoFields(file, `${what} shape`, r.bytes(), (f, w, d) => {
        if (f !== 1 || w !== WIRE_VARINT) return false
        size = safeInt(file, what, 'dimension', d.int64())
        return true
      })
      if (dims.length === MAX_RANK) fail(file, `${what}: shape has more than ${MAX_RANK} dimensions`)
      dims.push(size)
    } else if (field === 3 && wire === WIRE_VARINT) {
      if (r.bool()) fail(file, `${what}: shape of unknown rank`)
    } else return false
    return true
  })
  return dims
}

/**
 * Walk a message's fields; `visit` reads the value of the fields it knows and returns true,
 * else the field is skipped. Malformed bytes become one-line errors naming the file.
 */
function protoFields(file: string, what: string, bytes: Uint8Array, visit: (field: number, wire: number, r: ProtoReader) => boolean): void {
  const r = new ProtoReader(bytes)
  try {
    while (r.nextField()) {
      if (!visit(r.field, r.wire, r)) r.skipField()
    }
  } catch (e) {
    if (e instanceof WireError) fail(file, `${what}: malformed protobuf (${e.message})`)
    throw e
  }
}

function safeInt(file: string, what: string, field: string, v: number | bigint): number {
  if (typeof v !== 'number' || v < 0) fail(file, `${what}: ${field} ${v} is out of range`)
  return v
}

// ---------------------------------------------------------------------------------------------
// Names: TensorFlow → Hugging Face

export interface MappedVariable {
  entry: BundleEntry
  hfName: string
  /** A dense kernel: stored (in, out), transposed to (out, in). */
  transpose: boolean
  /** For encoder variables: the group and inner-group indices. */
  layer?: { group: number; inner: number }
}

/** Optimizer state and step counters: dropped, as transformers' converter drops them. */
const SKIPPED_LEAVES = new Set(['adam_m', 'adam_v', 'AdamWeightDecayOptimizer', 'AdamWeightDecayOptimizer_1'])

/** Scopes inside `bert/encoder/transformer/group_g/inner_group_j/` → HF's names inside `albert_layers.j.`. */
const LAYER_SCOPES: Record<string, string> = {
  'attention_1/self/query': 'attention.query',
  'attention_1/self/key': 'attention.key',
  'attention_1/self/value': 'attention.value',
  'attention_1/output/dense': 'attention.dense',
  LayerNorm: 'attention.LayerNorm',
  'ffn_1/intermediate/dense': 'ffn',
  'ffn_1/intermediate/output/dense': 'ffn_output',
  LayerNorm_1: 'full_layer_layer_norm',
}

/** Other scopes → HF modules. */
const SCOPES: Record<string, string> = {
  'bert/embeddings/LayerNorm': 'albert.embeddings.LayerNorm',
  'bert/encoder/embedding_hidden_mapping_in': 'albert.encoder.embedding_hidden_mapping_in',
  'bert/pooler/dense': 'albert.pooler',
  'cls/predictions/transform/dense': 'predictions.dense',
  'cls/predictions/transform/LayerNorm': 'predictions.LayerNorm',
}

/** Whole-name variables that are not dense layers or LayerNorms. */
const WHOLE_NAMES: Record<string, string> = {
  'bert/embeddings/word_embeddings': 'albert.embeddings.word_embeddings.weight',
  'bert/embeddings/position_embeddings': 'albert.embeddings.position_embeddings.weight',
  'bert/embeddings/token_type_embeddings': 'albert.embeddings.token_type_embeddings.weight',
  'cls/predictions/output_bias': 'predictions.bias',
  // BERT-style output layer: output_weights is already (labels, hidden), used with transpose_b.
  'cls/seq_relationship/output_weights': 'sop_classifier.classifier.weight',
  'cls/seq_relationship/output_bias': 'sop_classifier.classifier.bias',
}

const LAYER_RE = /^bert\/encoder\/transformer\/group_(\d+)\/inner_group_(\d+)\/(.+)$/

/** HF's name for a TF variable; 'skip' for optimizer state; undefined when ALBERT has no such variable. */
export function hfNameOf(tfName: string): Omit<MappedVariable, 'entry'> | 'skip' | undefined {
  const name = tfName.startsWith('module/') ? tfName.slice('module/'.length) : tfName
  const parts = name.split('/')
  if (name === 'global_step' || SKIPPED_LEAVES.has(parts[parts.length - 1]!)) return 'skip'
  const whole = WHOLE_NAMES[name]
  if (whole) return { hfName: whole, transpose: false }
  const leaf = parts.pop()!
  const scope = parts.join('/')
  const layer = LAYER_RE.exec(scope)
  if (layer) {
    const inner = LAYER_SCOPES[layer[3]!]
    if (!inner) return undefined
    const prefix = `albert.encoder.albert_layer_groups.${layer[1]}.albert_layers.${layer[2]}.${inner}`
    return param(prefix, leaf, { group: Number(layer[1]), inner: Number(layer[2]) })
  }
  const module = SCOPES[scope]
  return module ? param(module, leaf) : undefined
}

/** kernel/bias of a dense layer, gamma/beta of a LayerNorm. */
function param(module: string, leaf: string, layer?: { group: number; inner: number }): Omit<MappedVariable, 'entry'> | undefined {
  const norm = module.endsWith('LayerNorm') || module.endsWith('layer_norm')
  const hf = norm ? { gamma: 'weight', beta: 'bias' }[leaf] : { kernel: 'weight', bias: 'bias' }[leaf]
  if (!hf) return undefined
  const out: Omit<MappedVariable, 'entry'> = { hfName: `${module}.${hf}`, transpose: leaf === 'kernel' }
  if (layer) out.layer = layer
  return out
}

/** Map every entry; unknown variables fail, naming the first few. */
function mapVariables(file: string, entries: BundleEntry[]): { mapped: MappedVariable[]; skipped: string[] } {
  const mapped: MappedVariable[] = []
  const skipped: string[] = []
  const unknown: string[] = []
  const seen = new Map<string, string>()
  for (const entry of entries) {
    const m = hfNameOf(entry.name)
    if (m === 'skip') skipped.push(entry.name)
    else if (m === undefined) unknown.push(entry.name)
    else {
      const prev = seen.get(m.hfName)
      if (prev) fail(file, `variables '${printable(prev)}' and '${printable(entry.name)}' both map to '${m.hfName}'`)
      seen.set(m.hfName, entry.name)
      mapped.push({ entry, ...m })
    }
  }
  if (unknown.length > 0) {
    const shown = unknown.slice(0, 3).map((n) => `'${printable(n)}'`).join(', ')
    fail(file, `variable${unknown.length > 1 ? 's' : ''} ${shown}${unknown.length > 3 ? ` and ${unknown.length - 3} more` : ''} not part of an ALBERT pre-training checkpoint (embeddings, encoder, pooler, cls/predictions, cls/seq_relationship; optimizer slots and global_step are skipped)`)
  }
  if (mapped.length === 0) fail(file, 'no ALBERT variables in this checkpoint')
  return { mapped, skipped }
}

/** The HF class whose state dict the variables make up. */
function architectureOf(mapped: MappedVariable[]): string {
  const has = (prefix: string) => mapped.some((m) => m.hfName.startsWith(prefix))
  if (!has('predictions.')) return 'AlbertModel'
  return has('sop_classifier.') ? 'AlbertForPreTraining' : 'AlbertForMaskedLM'
}

/** Encoder variables must belong to a group and inner layer the config has. */
function checkLayerIndices(file: string, mapped: MappedVariable[], config: AlbertConfig, configFile: string): void {
  for (const m of mapped) {
    if (!m.layer) continue
    if (m.layer.group >= config.numHiddenGroups || m.layer.inner >= config.innerGroupNum) {
      fail(file, `variable '${printable(m.entry.name)}' is in group_${m.layer.group}/inner_group_${m.layer.inner}, but ${path.basename(configFile)} has num_hidden_groups ${config.numHiddenGroups}, inner_group_num ${config.innerGroupNum}`)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Config: Google's albert_config.json → HF's

/** Google's activation names (modeling.get_activation, case-insensitive) → HF's. */
const GOOGLE_ACTIVATIONS: Record<string, string> = { gelu: 'gelu_new', relu: 'relu', tanh: 'tanh', linear: 'linear', '': 'linear' }

const GOOGLE_KEYS = [
  'vocab_size',
  'embedding_size',
  'hidden_size',
  'num_hidden_layers',
  'num_hidden_groups',
  'num_attention_heads',
  'intermediate_size',
  'inner_group_num',
  'max_position_embeddings',
  'type_vocab_size',
  'initializer_range',
  'hidden_dropout_prob',
  'attention_probs_dropout_prob',
  'layer_norm_eps',
] as const

/**
 * An HF config (model_type albert, the architecture the variables make up) from Google's keys.
 * Missing keys take Google's defaults, which are HF's (hidden_act "gelu" is the tanh form);
 * vocab_size is required, as Google's code requires it. Unused keys (down_scale_factor, ...) are ignored.
 */
export function tfConfig(json: unknown, file: string, architecture: string): AlbertConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(file, 'not a JSON object')
  const google = json as Record<string, unknown>
  if (google.vocab_size === undefined) fail(file, "no 'vocab_size' (Google's ALBERT config requires it)")
  const act = google.hidden_act ?? 'gelu'
  const hfAct = typeof act === 'string' ? GOOGLE_ACTIVATIONS[act.toLowerCase()] : act === null ? 'linear' : undefined
  if (hfAct === undefined) fail(file, `hidden_act ${printable(JSON.stringify(act) ?? String(act), 80)}: Google's ALBERT code knows linear, relu, gelu and tanh`)
  const raw: Record<string, unknown> = { architectures: [architecture], model_type: 'albert' }
  for (const k of GOOGLE_KEYS) if (google[k] !== undefined) raw[k] = google[k]
  Object.assign(raw, { hidden_act: hfAct, layer_norm_eps: google.layer_norm_eps ?? 1e-12, num_labels: 2, tie_word_embeddings: true })
  return parseConfig(raw, file)
}

// ---------------------------------------------------------------------------------------------
// Data shards and tensors

interface Shard {
  file: string
  fd: number
  size: number
}

/** `<prefix>.data-%05d-of-%05d` for every shard, opened. */
function openShards(indexFile: string, numShards: number): Shard[] {
  const prefix = indexFile.slice(0, -'.index'.length)
  const shards: Shard[] = []
  try {
    for (let i = 0; i < numShards; i++) {
      const file = `${prefix}.data-${String(i).padStart(5, '0')}-of-${String(numShards).padStart(5, '0')}`
      let fd: number
      try {
        fd = fs.openSync(file, 'r')
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        fail(file, code === 'ENOENT' ? `data shard ${i} of ${numShards} named by ${path.basename(indexFile)} is missing` : `cannot open: ${code}`)
      }
      shards.push({ file, fd, size: fs.fstatSync(fd).size })
    }
  } catch (e) {
    for (const s of shards) fs.closeSync(s.fd)
    throw e
  }
  return shards
}

/**
 * Every entry (skipped ones too) must lie inside its shard (a short shard is a broken download),
 * and no two may share bytes: TensorFlow writes each tensor once, so the bytes read stay within
 * the shards' size however many entries point at the same place.
 */
function checkBounds(entries: BundleEntry[], shards: Shard[]): void {
  for (const e of entries) {
    const shard = shards[e.shardId]!
    if (e.offset + e.size > shard.size) {
      fail(shard.file, `tensor '${printable(e.name)}' at bytes ${e.offset}..${e.offset + e.size} runs past the end of this ${shard.size}-byte shard (truncated?)`)
    }
  }
  const placed = entries.filter((e) => e.size > 0).sort((a, b) => a.shardId - b.shardId || a.offset - b.offset)
  for (let i = 1; i < placed.length; i++) {
    const [prev, e] = [placed[i - 1]!, placed[i]!]
    if (e.shardId === prev.shardId && e.offset < prev.offset + prev.size) {
      fail(shards[e.shardId]!.file, `tensor '${printable(e.name)}' at bytes ${e.offset}..${e.offset + e.size} overlaps tensor '${printable(prev.name)}' at bytes ${prev.offset}..${prev.offset + prev.size}; a bundle stores each tensor once`)
    }
  }
}

/** TensorFlow's DataType enum → albertkit's element types (fixed-width types only). */
const TF_DTYPES: Record<number, DataType> = {
  1: DataType.FLOAT,
  2: DataType.DOUBLE,
  3: DataType.INT32,
  4: DataType.UINT8,
  5: DataType.INT16,
  6: DataType.INT8,
  9: DataType.INT64,
  10: DataType.BOOL,
  14: DataType.BFLOAT16,
  17: DataType.UINT16,
  19: DataType.FLOAT16,
  22: DataType.UINT32,
  23: DataType.UINT64,
}

/** Check an entry's metadata, read its bytes, verify the CRC, transpose kernels. */
function readTensor(m: MappedVariable, shards: Shard[]): Tensor {
  const { entry: e } = m
  const shard = shards[e.shardId]!
  const where = `tensor '${printable(e.name)}'`
  if (e.slices > 0) fail(shard.file, `${where} is a partitioned variable (${e.slices} slices); albertkit reads whole tensors only`)
  const dtype = TF_DTYPES[e.tfDtype]
  if (dtype === undefined) fail(shard.file, `${where} has TensorFlow dtype ${e.tfDtype}, not a fixed-width numeric type`)
  const count = elementCount(e.shape)
  if (!Number.isSafeInteger(count)) fail(shard.file, `${where}: shape [${e.shape.join(', ')}] is absurdly large`)
  const want = byteLengthOf(dtype, count)
  if (e.size !== want) fail(shard.file, `${where}: ${dtypeName(dtype)}[${e.shape.join(', ')}] needs ${want} bytes but the index says ${e.size}`)
  const data = new Uint8Array(e.size)
  readExactly(shard.fd, data, e.offset, shard.file, where)
  if (crc32c(data) !== unmaskCrc(e.crc32c)) fail(shard.file, `${where}: checksum mismatch; the shard is corrupt`)
  if (!m.transpose) return new Tensor(dtype, e.shape, data)
  if (e.shape.length !== 2) fail(shard.file, `${where}: a dense kernel should be 2-D (in, out), got shape [${e.shape.join(', ')}]`)
  const [rows, cols] = e.shape as [number, number]
  return transposeTensor(new Tensor(dtype, [rows, cols], data), [1, 0])
}


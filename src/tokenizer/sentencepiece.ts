/**
 * SentencePiece models (`spiece.model`, Google's `30k-clean.model`): a strict reader for the
 * ModelProto, and the tokenizer files transformers writes for ALBERT from one, so that a checkpoint
 * that ships only the SentencePiece model still gets a tokenizer.json that transformers.js loads.
 *
 * The files follow what transformers 5.18's AlbertTokenizer saves after converting spiece.model
 * (the committed fixtures/albert-mlm/tokenizer.json is one): a Unigram model over the pieces and
 * their scores, a normalizer that maps `` and '' to ", decomposes and strips accents (unless
 * keep_accents), lowercases (when do_lower_case) and applies the model's precompiled charsmap,
 * whitespace splitting plus Metaspace (▁) before the model, and [CLS] A [SEP] (B [SEP]) after it.
 */
import { ProtoReader, WIRE_I32, WIRE_LEN, WIRE_VARINT, WireError } from '../protobuf/wire.js'
import { readWholeFile, statOrFail } from '../util/read.js'
import { LIMITS, trieNodes } from './limits.js'
import { UserError, describe, fail } from '../util/errors.js'
import { printable } from '../util/printable.js'

/** SentencePiece.Type in sentencepiece_model.proto: each type's name, by its number. */
const PIECE_TYPES = {
  1: 'NORMAL',
  2: 'UNKNOWN',
  3: 'CONTROL',
  4: 'USER_DEFINED',
  5: 'UNUSED',
  6: 'BYTE',
} as const

/** A piece's type, by its name in sentencepiece_model.proto. */
export type PieceType = (typeof PIECE_TYPES)[keyof typeof PIECE_TYPES]

/** TrainerSpec.ModelType. */
const MODEL_TYPES: Record<number, string> = { 1: 'unigram', 2: 'BPE', 3: 'word', 4: 'char' }

export interface Piece {
  piece: string
  score: number
  type: PieceType
}

export interface SentencePieceModel {
  pieces: Piece[]
  trainer: {
    /** 1 unigram, 2 BPE, 3 word, 4 char */
    modelType: number
    vocabSize: number | undefined
    unkId: number
    bosId: number
    eosId: number
    padId: number
    byteFallback: boolean
  }
  normalizer: {
    name: string | undefined
    /** empty when the model normalizes nothing (identity) */
    precompiledCharsmap: Uint8Array
    addDummyPrefix: boolean
    removeExtraWhitespaces: boolean
    escapeWhitespaces: boolean
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** Field-by-field reading with the file named in every complaint. */
class SpmReader {
  constructor(readonly file: string) {}

  problem(what: string): never {
    fail(this.file, `not a valid SentencePiece model: ${what}`)
  }

  expect(wire: number, want: number, field: string): void {
    if (wire !== want) this.problem(`${field} has wire type ${wire}, expected ${want}`)
  }

  string(r: ProtoReader, field: string): string {
    try {
      return strictUtf8.decode(r.bytes())
    } catch (e) {
      if (e instanceof WireError) throw e
      this.problem(`${field} is not UTF-8`)
    }
  }
}

/** Parse the bytes of a SentencePiece ModelProto; `file` names it in errors. */
export function parseSentencepiece(bytes: Uint8Array, file: string): SentencePieceModel {
  const rd = new SpmReader(file)
  if (bytes.byteLength === 0) fail(file, 'empty file (expected a SentencePiece model)')
  const model: SentencePieceModel = {
    pieces: [],
    trainer: { modelType: 1, vocabSize: undefined, unkId: 0, bosId: 1, eosId: 2, padId: -1, byteFallback: false },
    normalizer: { name: undefined, precompiledCharsmap: new Uint8Array(0), addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true },
  }
  const seen = new Set<number>()
  try {
    const r = new ProtoReader(bytes)
    while (r.nextField()) {
      seen.add(r.field)
      if (r.field === 1) {
        rd.expect(r.wire, WIRE_LEN, 'a piece')
        if (model.pieces.length === LIMITS.vocabEntries) fail(file, `has more than ${LIMITS.vocabEntries} pieces, the most albertkit loads`)
        model.pieces.push(readPiece(r.message(), rd, model.pieces.length))
      } else if (r.field === 2) {
        rd.expect(r.wire, WIRE_LEN, 'trainer_spec')
        readTrainerSpec(r.message(), rd, model.trainer)
      } else if (r.field === 3) {
        rd.expect(r.wire, WIRE_LEN, 'normalizer_spec')
        readNormalizerSpec(r.message(), rd, model.normalizer)
      } else {
        r.skipField() // self_test_data, denormalizer_spec, extensions
      }
    }
  } catch (e) {
    if (e instanceof UserError) throw e
    if (e instanceof WireError) rd.problem(`truncated or corrupt (${e.message})`)
    throw e
  }
  // SentencePiece writes pieces, trainer_spec, normalizer_spec in that order: a file that stops
  // between whole fields lacks the specs.
  if (seen.has(1) && !seen.has(2)) rd.problem('it ends before its trainer_spec (truncated?)')
  if (seen.has(1) && !seen.has(3)) rd.problem('it ends before its normalizer_spec (truncated?)')
  check(model, rd)
  return model
}

function readPiece(r: ProtoReader, rd: SpmReader, index: number): Piece {
  let piece: string | undefined
  let score = 0
  let type = 1 // NORMAL
  while (r.nextField()) {
    if (r.field === 1) {
      rd.expect(r.wire, WIRE_LEN, `piece ${index}`)
      piece = rd.string(r, `piece ${index}`)
    } else if (r.field === 2) {
      rd.expect(r.wire, WIRE_I32, `the score of piece ${index}`)
      score = r.fixed32Float()
    } else if (r.field === 3) {
      rd.expect(r.wire, WIRE_VARINT, `the type of piece ${index}`)
      type = r.int32()
    } else r.skipField()
  }
  if (piece === undefined) rd.problem(`piece ${index} has no text`)
  if (piece.length > LIMITS.pieceChars) fail(rd.file, `piece ${index} is ${piece.length} characters long, more than the ${LIMITS.pieceChars} albertkit loads`)
  if (!Number.isFinite(score)) rd.problem(`piece ${index} ('${printable(piece)}') has score ${score}`)
  const name = (PIECE_TYPES as Readonly<Record<number, PieceType | undefined>>)[type]
  if (name === undefined) rd.problem(`piece ${index} ('${printable(piece)}') has unknown type ${type}`)
  return { piece, score, type: name }
}

function readTrainerSpec(r: ProtoReader, rd: SpmReader, t: SentencePieceModel['trainer']): void {
  const int = (name: string) => {
    rd.expect(r.wire, WIRE_VARINT, `trainer_spec.${name}`)
    return r.int32()
  }
  while (r.nextField()) {
    if (r.field === 3) t.modelType = int('model_type')
    else if (r.field === 4) t.vocabSize = int('vocab_size')
    else if (r.field === 35) {
      rd.expect(r.wire, WIRE_VARINT, 'trainer_spec.byte_fallback')
      t.byteFallback = r.bool()
    } else if (r.field === 40) t.unkId = int('unk_id')
    else if (r.field === 41) t.bosId = int('bos_id')
    else if (r.field === 42) t.eosId = int('eos_id')
    else if (r.field === 43) t.padId = int('pad_id')
    else r.skipField()
  }
}

function readNormalizerSpec(r: ProtoReader, rd: SpmReader, n: SentencePieceModel['normalizer']): void {
  while (r.nextField()) {
    if (r.field === 1) {
      rd.expect(r.wire, WIRE_LEN, 'normalizer_spec.name')
      n.name = rd.string(r, 'normalizer_spec.name')
    } else if (r.field === 2) {
      rd.expect(r.wire, WIRE_LEN, 'normalizer_spec.precompiled_charsmap')
      n.precompiledCharsmap = r.bytes()
    } else if (r.field === 3 || r.field === 4 || r.field === 5) {
      rd.expect(r.wire, WIRE_VARINT, `normalizer_spec field ${r.field}`)
      const v = r.bool()
      if (r.field === 3) n.addDummyPrefix = v
      else if (r.field === 4) n.removeExtraWhitespaces = v
      else n.escapeWhitespaces = v
    } else r.skipField()
  }
}

/** What SentencePiece itself insists on when it loads a model, plus what ALBERT's tokenizer needs. */
function check(m: SentencePieceModel, rd: SpmReader): void {
  if (m.pieces.length === 0) rd.problem('it has no pieces')
  const type = MODEL_TYPES[m.trainer.modelType]
  if (type === undefined) rd.problem(`unknown model_type ${m.trainer.modelType}`)
  if (m.trainer.modelType !== 1) {
    fail(rd.file, `a ${type} SentencePiece model; only unigram models (what ALBERT uses) can be converted`)
  }
  const seen = new Map<string, number>()
  m.pieces.forEach((p, i) => {
    if (p.piece.length === 0) rd.problem(`piece ${i} is empty`)
    const before = seen.get(p.piece)
    if (before !== undefined) rd.problem(`piece '${printable(p.piece)}' appears twice (ids ${before} and ${i})`)
    seen.set(p.piece, i)
  })
  // What the tokenizer built from the pieces will hold: a trie over them, and the control and
  // user-defined pieces as added tokens.
  const nodes = trieNodes(m.pieces.map((p) => p.piece))
  if (nodes > LIMITS.trieNodes) fail(rd.file, `its pieces spell ${nodes} distinct prefixes, more than the ${LIMITS.trieNodes} albertkit loads`)
  const added = m.pieces.filter((p) => p.type === 'CONTROL' || p.type === 'USER_DEFINED')
  if (added.length > LIMITS.addedTokens) fail(rd.file, `has ${added.length} control and user-defined pieces, more than the ${LIMITS.addedTokens} albertkit loads`)
  const long = added.find((p) => p.piece.length > LIMITS.addedTokenChars)
  if (long) fail(rd.file, `control or user-defined piece '${printable(long.piece, 40)}' is ${long.piece.length} characters long, more than ${LIMITS.addedTokenChars}`)
  const unk = m.trainer.unkId
  const unknowns = m.pieces.flatMap((p, i) => (p.type === 'UNKNOWN' ? [i] : []))
  if (unknowns.length !== 1) rd.problem(`${unknowns.length} pieces have type UNKNOWN, expected exactly 1`)
  if (unknowns[0] !== unk) rd.problem(`trainer_spec.unk_id is ${unk} but the UNKNOWN piece is ${unknowns[0]}`)
  const charsmap = m.normalizer.precompiledCharsmap
  if (charsmap.byteLength > 0) {
    // A uint32 trie size, the double-array trie (4-byte units), then the normalized strings.
    const trie = charsmap.byteLength >= 4 ? new DataView(charsmap.buffer, charsmap.byteOffset, 4).getUint32(0, true) : -1
    if (trie < 0 || trie % 4 !== 0 || trie > charsmap.byteLength - 4) {
      rd.problem(`normalizer_spec.precompiled_charsmap is malformed (${charsmap.byteLength} bytes, trie of ${trie} bytes)`)
    }
  }
}

/** Read and check a SentencePiece model file (its size checked before it is read). */
export function readSentencepiece(file: string): SentencePieceModel {
  const size = statOrFail(file, (code) => `cannot read: ${code}`).size
  if (size > LIMITS.tokenizerFileBytes) fail(file, `is ${size} bytes, more than the ${LIMITS.tokenizerFileBytes} albertkit reads from a tokenizer file`)
  return parseSentencepiece(readWholeFile(file), file)
}

export interface AlbertTokenizerOptions {
  /** lowercase before the model (AlbertTokenizer's default: true) */
  doLowerCase?: boolean
  /** keep accents (AlbertTokenizer's default: false, i.e. NFKD then strip combining marks) */
  keepAccents?: boolean
  /** tokenizer_config.json's model_max_length (the model's max_position_embeddings); left out when not given */
  modelMaxLength?: number
}

/** The three files, as JSON values ready for JSON.stringify. */
export interface TokenizerFiles {
  'tokenizer.json': Record<string, unknown>
  'tokenizer_config.json': Record<string, unknown>
  'special_tokens_map.json': Record<string, string>
}

/** AlbertTokenizer's special tokens, in the order special_tokens_map.json lists them. */
const ALBERT_SPECIALS = [
  ['bos_token', '[CLS]'],
  ['eos_token', '[SEP]'],
  ['unk_token', '<unk>'],
  ['sep_token', '[SEP]'],
  ['pad_token', '<pad>'],
  ['cls_token', '[CLS]'],
  ['mask_token', '[MASK]'],
] as const

const METASPACE = '\u2581'

/**
 * The tokenizer files transformers writes for an ALBERT checkpoint whose tokenizer is this
 * SentencePiece model. `file` names the model in errors.
 */
export function albertTokenizerFiles(m: SentencePieceModel, file: string, opts: AlbertTokenizerOptions = {}): TokenizerFiles {
  const doLowerCase = opts.doLowerCase ?? true
  const keepAccents = opts.keepAccents ?? false
  const idOf = new Map(m.pieces.map((p, i) => [p.piece, i]))
  for (const need of ['[CLS]', '[SEP]']) {
    if (!idOf.has(need)) fail(file, `has no ${need} piece; ALBERT's tokenizer frames every input with [CLS] … [SEP]`)
  }
  const unkToken = m.pieces[m.trainer.unkId]!.piece
  const names = new Map<string, string>()
  for (const [key, token] of ALBERT_SPECIALS) {
    const content = key === 'unk_token' ? unkToken : token
    if (idOf.has(content)) names.set(key, content)
  }
  const special = new Set(names.values())

  // Control and user-defined pieces become added tokens (matched before the model runs), as do the
  // named special tokens; only user-defined pieces that are not named special tokens stay non-special.
  const addedTokens = m.pieces.flatMap((p, id) => {
    const isNamed = special.has(p.piece)
    if (!isNamed && p.type !== 'CONTROL' && p.type !== 'USER_DEFINED') return []
    return [{ id, content: p.piece, single_word: false, lstrip: false, rstrip: false, normalized: false, special: isNamed || p.type !== 'USER_DEFINED' }]
  })

  const normalizers: Record<string, unknown>[] = [
    { type: 'Replace', pattern: { String: '``' }, content: '"' },
    { type: 'Replace', pattern: { String: "''" }, content: '"' },
  ]
  if (!keepAccents) normalizers.push({ type: 'NFKD' }, { type: 'StripAccents' })
  if (doLowerCase) normalizers.push({ type: 'Lowercase' })
  if (m.normalizer.precompiledCharsmap.byteLength > 0) {
    normalizers.push({ type: 'Precompiled', precompiled_charsmap: Buffer.from(m.normalizer.precompiledCharsmap).toString('base64') })
  }
  // transformers prepends ▁ to every word whatever normalizer_spec.add_dummy_prefix says (ALBERT's
  // models all set it); follow transformers, whose outputs are what verification compares against.
  const metaspace = { type: 'Metaspace', replacement: METASPACE, prepend_scheme: 'always', split: true }
  const cls = idOf.get('[CLS]')!
  const sep = idOf.get('[SEP]')!
  const seq = (id: 'A' | 'B', typeId: number) => ({ Sequence: { id, type_id: typeId } })
  const tok = (id: string, typeId: number) => ({ SpecialToken: { id, type_id: typeId } })

  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: { type: 'Sequence', normalizers },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, metaspace] },
    post_processor: {
      type: 'TemplateProcessing',
      single: [tok('[CLS]', 0), seq('A', 0), tok('[SEP]', 0)],
      pair: [tok('[CLS]', 0), seq('A', 0), tok('[SEP]', 0), seq('B', 1), tok('[SEP]', 1)],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [cls], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [sep], tokens: ['[SEP]'] },
      },
    },
    decoder: { ...metaspace },
    model: {
      type: 'Unigram',
      unk_id: m.trainer.unkId,
      vocab: m.pieces.map((p) => [p.piece, p.score]),
      // AlbertTokenizer builds its Unigram without byte fallback whatever the model was trained with.
      byte_fallback: false,
    },
  }

  const specialsMap: Record<string, string> = {}
  for (const [key] of ALBERT_SPECIALS) {
    const v = names.get(key)
    if (v !== undefined) specialsMap[key] = v
  }
  const config: Record<string, unknown> = {
    add_prefix_space: true,
    backend: 'tokenizers',
  }
  const put = (key: string) => {
    const v = names.get(key)
    if (v !== undefined) config[key] = v
  }
  put('bos_token')
  put('cls_token')
  config.do_lower_case = doLowerCase
  put('eos_token')
  config.extra_special_tokens = m.pieces.filter((p) => p.type === 'CONTROL' || p.type === 'USER_DEFINED').map((p) => p.piece)
  config.keep_accents = keepAccents
  put('mask_token')
  if (opts.modelMaxLength !== undefined) config.model_max_length = opts.modelMaxLength
  put('pad_token')
  put('sep_token')
  config.tokenizer_class = 'AlbertTokenizer'
  config.trim_offsets = true
  config.unk_id = m.trainer.unkId
  put('unk_token')

  return { 'tokenizer.json': tokenizerJson, 'tokenizer_config.json': config, 'special_tokens_map.json': specialsMap }
}

/**
 * tokenizer.json, tokenizer_config.json and special_tokens_map.json for an ALBERT checkpoint that
 * has only a SentencePiece model. Throws a UserError naming `spmPath` for a file that is not a
 * unigram SentencePiece model.
 */
export function tokenizerFilesFromSentencepiece(spmPath: string, opts: AlbertTokenizerOptions = {}): TokenizerFiles {
  const model = readSentencepiece(spmPath)
  try {
    return albertTokenizerFiles(model, spmPath, opts)
  } catch (e) {
    if (e instanceof UserError) throw e
    fail(spmPath, `cannot build a tokenizer from it: ${describe(e)}`)
  }
}

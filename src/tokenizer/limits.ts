/**
 * What a tokenizer and its texts may cost, checked before the work: a tokenizer.json (or the one
 * albertkit converts from a SentencePiece model) is read field by field against these limits
 * before @huggingface/tokenizers builds anything from it, its regex patterns must match in linear
 * time (pattern.ts), and while texts are encoded no normalizer or pre-tokenizer step may grow a
 * text past a fixed size. Each limit is far above what ALBERT's tokenizers use (a 30,000-piece
 * vocabulary of pieces up to 16 characters, a handful of added tokens) and each refusal names it.
 */
import type { Tokenizer } from '@huggingface/tokenizers'
import { fail } from '../util/errors.js'
import { printable } from '../util/printable.js'
import { superLinearReason } from './pattern.js'

export const LIMITS = {
  /** bytes of tokenizer.json or a SentencePiece model (ALBERT's: 1.3 MB and 0.8 MB) */
  tokenizerFileBytes: 16 * 2 ** 20,
  /** bytes of tokenizer_config.json */
  configFileBytes: 2 ** 20,
  /** entries of a vocabulary (SentencePiece pieces, a Unigram/WordPiece/BPE vocab) */
  vocabEntries: 262_144,
  /** characters of one vocabulary entry or merge part */
  pieceChars: 512,
  /** distinct prefixes of a Unigram vocabulary (the nodes of the trie the tokenizer builds, ~250 bytes each) */
  trieNodes: 524_288,
  /** BPE merges */
  merges: 262_144,
  /** added tokens, and entries of tokenizer_config.json's additional_special_tokens */
  addedTokens: 4096,
  /** characters of an added token */
  addedTokenChars: 128,
  /** WordPiece's max_input_chars_per_word (its cost grows with the cube of it; BERT's is 100) */
  wordpieceChars: 100,
  /** steps of one normalizer / pre-tokenizer / post-processor Sequence, and their nesting */
  sequenceSteps: 32,
  sequenceDepth: 4,
  /** characters of a replacement written into the text (Replace content, Prepend, Metaspace replacement) */
  replacementChars: 16,
  /** items of a TemplateProcessing template */
  templateItems: 16,
  /** characters of one text (a pair counts both) */
  textChars: 32_768,
  /** texts in one run */
  texts: 1024,
  /** characters of all texts together */
  totalTextChars: 2 ** 20,
  /** characters one normalizer or pre-tokenizer step may produce from one text */
  stepChars: 8 * 32_768,
  /** characters of one word reaching the model (the Unigram lattice over it takes ~1.5 kB a character, and its tokens are spread into one call's arguments) */
  wordChars: 65_536,
} as const

type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
const shown = (v: unknown) => printable(typeof v === 'string' ? `'${v}'` : JSON.stringify(v) ?? String(v), 60)

/** Field-by-field checks of a tokenizer.json, each complaint naming the file and the field's path. */
class Checker {
  constructor(readonly file: string) {}

  problem(where: string, what: string): never {
    fail(this.file, `${where} ${what}`)
  }

  object(v: unknown, where: string): Json {
    if (!isObject(v)) this.problem(where, `must be an object, got ${shown(v)}`)
    return v
  }

  array(v: unknown, where: string, max: number): unknown[] {
    if (!Array.isArray(v)) this.problem(where, `must be an array, got ${shown(v)}`)
    if (v.length > max) this.problem(where, `has ${v.length} entries, more than the ${max} albertkit loads`)
    return v
  }

  string(v: unknown, where: string, max: number): string {
    if (typeof v !== 'string') this.problem(where, `must be a string, got ${shown(v)}`)
    if (v.length > max) this.problem(where, `is ${v.length} characters long, more than ${max}`)
    return v
  }

  optionalString(v: unknown, where: string, max: number): void {
    if (v !== undefined && v !== null) this.string(v, where, max)
  }

  integer(v: unknown, where: string, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.problem(where, `must be an integer from ${min} to ${max}, got ${shown(v)}`)
    return v
  }

  /** Text the tokenizer writes into the input: short, and free of `$`, which JavaScript's replace reads as a pattern ($&, $', $`). */
  replacement(v: unknown, where: string): void {
    if (v === undefined || v === null) return
    const s = this.string(v, where, LIMITS.replacementChars)
    if (s.includes('$')) this.problem(where, `${shown(s)} holds '$', which the JavaScript tokenizer would read as a replacement pattern`)
  }

  /** A Replace/Split pattern: a literal, or a regex that matches in linear time. */
  pattern(v: unknown, where: string): void {
    const p = this.object(v, where)
    if (p.Regex !== undefined) {
      const regex = this.string(p.Regex, `${where}.Regex`, 1024)
      const why = superLinearReason(regex)
      if (why) this.problem(`${where}.Regex`, `${shown(regex)} is refused, matching it could take more than linear time: ${printable(why)}`)
    } else if (p.String !== undefined) this.string(p.String, `${where}.String`, 1024)
    else this.problem(where, 'must hold a String or a Regex')
  }

  type(v: Json, where: string, known: readonly string[]): string {
    const type = v.type
    if (typeof type !== 'string' || !known.includes(type)) this.problem(`${where}.type`, `${shown(type)} is not one of ${known.join(', ')}`)
    return type
  }

  /** A Replace step: what it finds, and the text it writes in its place. */
  private replace(node: Json, where: string): void {
    this.pattern(node.pattern, `${where}.pattern`)
    this.replacement(node.content, `${where}.content`)
  }

  /**
   * One normalizer or pre-tokenizer step: null (none), or an object whose type is one of `known`.
   * A Sequence's steps (`node[key]`) are each checked by `each`, nested at most
   * LIMITS.sequenceDepth deep. The object is returned for its own fields to be checked; for null
   * and a Sequence there is nothing left to check.
   */
  private step(v: unknown, where: string, known: readonly string[], key: string, depth: number, each: (s: unknown, at: string) => void): Json | undefined {
    if (v === null) return undefined
    const node = this.object(v, where)
    if (this.type(node, where, known) !== 'Sequence') return node
    if (depth >= LIMITS.sequenceDepth) this.problem(where, `nests Sequences more than ${LIMITS.sequenceDepth} deep`)
    this.array(node[key], `${where}.${key}`, LIMITS.sequenceSteps).forEach((s, i) => each(s, `${where}.${key}[${i}]`))
    return undefined
  }

  normalizer(v: unknown, where: string, depth = 0): void {
    const n = this.step(v, where, NORMALIZERS, 'normalizers', depth, (s, at) => this.normalizer(s, at, depth + 1))
    if (n?.type === 'Replace') this.replace(n, where)
    else if (n?.type === 'Prepend') this.replacement(n.prepend, `${where}.prepend`)
  }

  preTokenizer(v: unknown, where: string, depth = 0): void {
    const p = this.step(v, where, PRE_TOKENIZERS, 'pretokenizers', depth, (s, at) => this.preTokenizer(s, at, depth + 1))
    switch (p?.type) {
      case 'Split':
        this.pattern(p.pattern, `${where}.pattern`)
        break
      case 'Replace':
        this.replace(p, where)
        break
      case 'Metaspace':
        this.replacement(p.replacement, `${where}.replacement`)
        this.replacement(p.str_rep, `${where}.str_rep`)
        break
      case 'FixedLength':
        this.integer(p.length, `${where}.length`, 1, LIMITS.wordChars)
        break
    }
  }

  postProcessor(v: unknown, where: string, inSequence = false): void {
    if (v === null) return
    const p = this.object(v, where)
    switch (this.type(p, where, inSequence ? POST_PROCESSORS.filter((t) => t !== 'Sequence') : POST_PROCESSORS)) {
      case 'TemplateProcessing':
        this.template(p.single, `${where}.single`)
        if (p.pair !== undefined) this.template(p.pair, `${where}.pair`)
        break
      case 'BertProcessing':
      case 'RobertaProcessing':
        for (const key of ['cls', 'sep']) {
          const pair = this.array(p[key], `${where}.${key}`, 2)
          this.string(pair[0], `${where}.${key}[0]`, LIMITS.addedTokenChars)
          this.integer(pair[1], `${where}.${key}[1]`, 0, 2 ** 31 - 1)
        }
        break
      case 'Sequence':
        this.array(p.processors, `${where}.processors`, LIMITS.sequenceSteps).forEach((s, i) => this.postProcessor(s, `${where}.processors[${i}]`, true))
        break
    }
  }

  /** `[{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, ...]` */
  template(v: unknown, where: string): void {
    this.array(v, where, LIMITS.templateItems).forEach((item, i) => {
      const at = `${where}[${i}]`
      const o = this.object(item, at)
      const keys = Object.keys(o)
      if (keys.length !== 1 || (keys[0] !== 'SpecialToken' && keys[0] !== 'Sequence')) this.problem(at, `must be {"SpecialToken": {...}} or {"Sequence": {...}}, got ${shown(o)}`)
      const body = this.object(o[keys[0]!], `${at}.${keys[0]}`)
      if (keys[0] === 'SpecialToken') this.string(body.id, `${at}.SpecialToken.id`, LIMITS.addedTokenChars)
      else if (body.id !== 'A' && body.id !== 'B') this.problem(`${at}.Sequence.id`, `must be "A" or "B", got ${shown(body.id)}`)
      this.integer(body.type_id, `${at}.${keys[0]}.type_id`, 0, 255)
    })
  }

  /** A WordPiece or BPE vocabulary: `{"token": id, ...}`. */
  vocabObject(v: unknown, where: string): void {
    const vocab = this.object(v, where)
    const keys = Object.keys(vocab)
    if (keys.length > LIMITS.vocabEntries) this.problem(where, `has ${keys.length} entries, more than the ${LIMITS.vocabEntries} albertkit loads`)
    for (const k of keys) {
      if (k.length > LIMITS.pieceChars) this.problem(where, `entry '${printable(k, 40)}' is ${k.length} characters long, more than ${LIMITS.pieceChars}`)
      this.integer(vocab[k], `${where}['${printable(k, 40)}']`, 0, LIMITS.vocabEntries - 1)
    }
  }

  model(v: unknown, where: string): void {
    const m = this.object(v, where)
    switch (this.type(m, where, MODELS)) {
      case 'Unigram': {
        const vocab = this.array(m.vocab, `${where}.vocab`, LIMITS.vocabEntries)
        if (vocab.length === 0) this.problem(`${where}.vocab`, 'is empty')
        const pieces = vocab.map((entry, i) => {
          const at = `${where}.vocab[${i}]`
          const e = this.array(entry, at, 2)
          if (typeof e[1] !== 'number' || !Number.isFinite(e[1])) this.problem(`${at}[1]`, `must be a finite score, got ${shown(e[1])}`)
          return this.string(e[0], `${at}[0]`, LIMITS.pieceChars)
        })
        if (m.unk_id !== undefined && m.unk_id !== null) this.integer(m.unk_id, `${where}.unk_id`, 0, vocab.length - 1)
        const nodes = trieNodes(pieces)
        if (nodes > LIMITS.trieNodes) this.problem(`${where}.vocab`, `spells ${nodes} distinct prefixes, more than the ${LIMITS.trieNodes} albertkit loads`)
        break
      }
      case 'WordPiece':
        this.vocabObject(m.vocab, `${where}.vocab`)
        this.optionalString(m.unk_token, `${where}.unk_token`, LIMITS.addedTokenChars)
        this.optionalString(m.continuing_subword_prefix, `${where}.continuing_subword_prefix`, LIMITS.replacementChars)
        if (m.max_input_chars_per_word !== undefined) this.integer(m.max_input_chars_per_word, `${where}.max_input_chars_per_word`, 1, LIMITS.wordpieceChars)
        break
      case 'BPE': {
        this.vocabObject(m.vocab, `${where}.vocab`)
        this.optionalString(m.unk_token, `${where}.unk_token`, LIMITS.addedTokenChars)
        for (const key of ['continuing_subword_prefix', 'continuing_subword_suffix', 'end_of_word_suffix']) this.optionalString(m[key], `${where}.${key}`, LIMITS.replacementChars)
        const merges = this.array(m.merges, `${where}.merges`, LIMITS.merges)
        merges.forEach((merge, i) => {
          const at = `${where}.merges[${i}]`
          if (typeof merge === 'string') this.string(merge, at, 2 * LIMITS.pieceChars + 1)
          else this.array(merge, at, 2).forEach((part, j) => this.string(part, `${at}[${j}]`, LIMITS.pieceChars))
        })
        break
      }
    }
  }

  addedTokens(v: unknown, where: string): void {
    this.array(v, where, LIMITS.addedTokens).forEach((t, i) => {
      const at = `${where}[${i}]`
      const o = this.object(t, at)
      this.integer(o.id, `${at}.id`, 0, LIMITS.vocabEntries + LIMITS.addedTokens)
      const content = this.string(o.content, `${at}.content`, LIMITS.addedTokenChars)
      if (content === '') this.problem(`${at}.content`, 'is empty')
    })
  }
}

const NORMALIZERS = ['BertNormalizer', 'Precompiled', 'Sequence', 'Replace', 'NFC', 'NFD', 'NFKC', 'NFKD', 'Strip', 'StripAccents', 'Lowercase', 'Prepend'] as const
const PRE_TOKENIZERS = ['BertPreTokenizer', 'Sequence', 'Whitespace', 'WhitespaceSplit', 'Metaspace', 'ByteLevel', 'Split', 'Punctuation', 'Digits', 'Replace', 'FixedLength'] as const
const POST_PROCESSORS = ['TemplateProcessing', 'ByteLevel', 'BertProcessing', 'RobertaProcessing', 'Sequence'] as const
const MODELS = ['Unigram', 'WordPiece', 'BPE'] as const

/** Nodes of a character trie over `words` (distinct non-empty prefixes, in UTF-16 units: at least the library's count in code points). */
export function trieNodes(words: readonly string[]): number {
  const sorted = [...words].sort()
  let nodes = 0
  let prev = ''
  for (const w of sorted) {
    let k = 0
    const n = Math.min(w.length, prev.length)
    while (k < n && w.charCodeAt(k) === prev.charCodeAt(k)) k++
    nodes += w.length - k
    prev = w
  }
  return nodes
}

/**
 * Check a tokenizer.json's content against LIMITS before the tokenizers library builds anything
 * from it: the model, the added tokens, the normalizer, pre-tokenizer and post-processor (the
 * decoder is never run). A UserError names `file` and the field.
 */
export function checkTokenizerJson(json: Json, file: string): void {
  const c = new Checker(file)
  c.model(json.model, 'model')
  for (const key of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) {
    if (!(key in json)) c.problem(key, 'is missing')
  }
  c.addedTokens(json.added_tokens, 'added_tokens')
  c.normalizer(json.normalizer, 'normalizer')
  c.preTokenizer(json.pre_tokenizer, 'pre_tokenizer')
  c.postProcessor(json.post_processor, 'post_processor')
}

/** The tokenizer_config.json fields the tokenizers library loops over, bounded. */
export function checkTokenizerConfig(config: Json, file: string): void {
  const c = new Checker(file)
  if (config.additional_special_tokens !== undefined) c.array(config.additional_special_tokens, 'additional_special_tokens', LIMITS.addedTokens)
}

interface Step {
  normalize?: (text: string) => string
  pre_tokenize?: (text: string | string[], options?: unknown) => string[]
  normalizers?: unknown[]
  tokenizers?: unknown[]
}

/**
 * While texts are encoded, no single normalizer or pre-tokenizer step may turn one text into more
 * than LIMITS.stepChars characters, and no word reaching the model may be longer than
 * LIMITS.wordChars: the library's steps are wrapped to count. `begin(label)` starts a text.
 */
export function boundTokenizerWork(tokenizer: Tokenizer, json: Json, file: string): { begin(label: string): void } {
  let label = ''
  let produced = new Map<string, number>()
  const charge = (where: string, type: string, chars: number) => {
    const total = (produced.get(where) ?? 0) + chars
    produced.set(where, total)
    if (total > LIMITS.stepChars) fail(file, `${where} (${printable(type)}) turns ${label} into more than ${LIMITS.stepChars} characters`)
  }
  const wrap = (step: unknown, config: unknown, where: string) => {
    // the library's steps are Callables: functions with methods
    if ((typeof step !== 'function' && !isObject(step)) || !isObject(config)) return
    const s = step as Step
    const type = String(config.type)
    const inner = s.normalizers ?? s.tokenizers
    const innerConfigs = config.normalizers ?? config.pretokenizers
    if (Array.isArray(inner) && Array.isArray(innerConfigs)) {
      const key = s.normalizers ? 'normalizers' : 'pretokenizers'
      inner.forEach((child, i) => wrap(child, innerConfigs[i], `${where}.${key}[${i}]`))
      return
    }
    if (typeof s.normalize === 'function') {
      const normalize = s.normalize.bind(step)
      s.normalize = (text: string) => {
        const out = normalize(text)
        charge(where, type, out.length)
        return out
      }
    } else if (typeof s.pre_tokenize === 'function') {
      const preTokenize = s.pre_tokenize.bind(step)
      s.pre_tokenize = (text: string | string[], options?: unknown) => {
        const out = preTokenize(text, options)
        let chars = 0
        for (const w of out) chars += w.length
        charge(where, type, chars)
        return out
      }
    }
  }
  wrap(tokenizer.normalizer, json.normalizer, 'normalizer')
  wrap(tokenizer.pre_tokenizer, json.pre_tokenizer, 'pre_tokenizer')
  const model = tokenizer.model as unknown as { encode: (words: string[]) => string[] } | null
  if (model) {
    const encode = model.encode.bind(model)
    model.encode = (words: string[]) => {
      for (const w of words) {
        if (w.length > LIMITS.wordChars) fail(file, `${label} has a word of ${w.length} characters after normalization, more than ${LIMITS.wordChars}`)
      }
      return encode(words)
    }
  }
  return {
    begin(next: string) {
      label = next
      produced = new Map()
    },
  }
}

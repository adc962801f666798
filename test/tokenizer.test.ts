/**
 * Tokenizers: the SentencePiece → tokenizer.json conversion against the files transformers 5.18
 * saved for the same spiece.model, encodings against transformers' own (meta.json goldens), the
 * batch built from them, and hostile SentencePiece files.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Tokenizer } from '@huggingface/tokenizers'
import { fixtureDir, tempDir } from './support/helpers.js'
import { cpuTimed } from './support/bounded.js'
import { ProtoReader, ProtoWriter, WIRE_LEN, WIRE_VARINT, concatPieces } from '../src/protobuf/wire.js'
import { UserError } from '../src/util/errors.js'
import {
  encodeTexts,
  openTokenizer,
  parseSentencepiece,
  textFeeds,
  tokenPreview,
  tokenizerFilesFromSentencepiece,
  type TextInput,
} from '../src/tokenizer/index.js'
import { readConfig } from '../src/checkpoint/config.js'
import { superLinearReason } from '../src/tokenizer/pattern.js'

const MLM = fixtureDir('albert-mlm')
const SPIECE = path.join(MLM, 'spiece.model')
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'))

interface Sample {
  text: string
  pair: string | null
  input_ids: number[]
  token_type_ids: number[]
  tokens: string[]
}
const SAMPLES: Sample[] = readJson(path.join(MLM, 'meta.json')).tokenizer.samples
const inputOf = (s: Sample): TextInput => (s.pair ? { text: s.text, pair: s.pair } : { text: s.text })

/**
 * More goldens: ids from the Python `tokenizers` 0.22 library (the Rust implementation transformers
 * uses) on fixtures/albert-mlm/tokenizer.json. They exercise the normalizer: whitespace runs, tabs,
 * newlines, `` and '', accents, ligatures, full-width letters, "digit," pieces.
 */
const RUST_GOLDENS: [string, number[]][] = [
  ["  Hello   ``world''  café  ÉTÉ\tnew\nline ", [2, 6, 136, 77, 121, 6, 1, 48, 151, 154, 1, 18, 55, 126, 11, 180, 96, 41, 11, 48, 140, 28, 11, 3]],
  ['ﬁne ½ Ⅻ ｆｕｌｌ', [2, 145, 23, 28, 11, 6, 1, 6, 36, 23, 23, 145, 24, 77, 3]],
  ['   ', [2, 3]],
  ['Straße İstanbul naïve — “quotes”', [2, 31, 183, 1, 11, 70, 17, 34, 196, 24, 53, 41, 55, 23, 79, 6, 1, 6, 1, 144, 121, 96, 8, 1, 3]],
  ['1,000, 2,5 the end,', [2, 6, 1, 7, 1, 7, 6, 1, 7, 1, 5, 6, 15, 21, 7, 3]],
]

/** A folder holding only the fixture's spiece.model (no tokenizer.json): the converter's path. */
function spieceOnlyFolder(extra: Record<string, string> = {}): string {
  const dir = tempDir('albertkit-spm-')
  fs.copyFileSync(SPIECE, path.join(dir, 'spiece.model'))
  for (const [name, text] of Object.entries(extra)) fs.writeFileSync(path.join(dir, name), text)
  return dir
}

describe('SentencePiece → tokenizer.json', () => {
  const files = tokenizerFilesFromSentencepiece(SPIECE, { doLowerCase: true, keepAccents: false })
  const got = JSON.parse(JSON.stringify(files['tokenizer.json']))
  const want = readJson(path.join(MLM, 'tokenizer.json'))

  it('reads the fixture spiece.model: 200 unigram pieces, their types and the charsmap', () => {
    const m = parseSentencepiece(fs.readFileSync(SPIECE), SPIECE)
    assert.equal(m.pieces.length, 200)
    assert.equal(m.trainer.modelType, 1)
    assert.equal(m.trainer.unkId, 1)
    assert.deepEqual(m.pieces.slice(0, 6).map((p) => [p.piece, p.type]), [
      ['<pad>', 'CONTROL'],
      ['<unk>', 'UNKNOWN'],
      ['[CLS]', 'CONTROL'],
      ['[SEP]', 'CONTROL'],
      ['[MASK]', 'USER_DEFINED'],
      ['▁the', 'NORMAL'],
    ])
    assert.equal(m.pieces[5]!.score, Math.fround(-2.7504782676696777))
    assert.equal(m.normalizer.name, 'nmt_nfkc')
    assert.equal(m.normalizer.precompiledCharsmap.byteLength, 240007)
  })

  it('equals the tokenizer.json transformers saved, field by field', () => {
    assert.deepEqual(Object.keys(got), Object.keys(want), 'same fields, same order')
    assert.equal(got.model.type, 'Unigram')
    assert.equal(got.model.unk_id, want.model.unk_id)
    assert.equal(got.model.byte_fallback, want.model.byte_fallback)
    assert.equal(got.model.vocab.length, 200)
    assert.deepEqual(got.model.vocab, want.model.vocab, 'pieces and scores')
    assert.deepEqual(got.normalizer, want.normalizer)
    assert.deepEqual(got.pre_tokenizer, want.pre_tokenizer)
    assert.deepEqual(got.post_processor, want.post_processor)
    assert.deepEqual(got.decoder, want.decoder)
    assert.deepEqual(got.added_tokens, want.added_tokens)
    assert.deepEqual(got, want, 'and nothing else differs')
  })

  it('writes tokenizer_config.json and special_tokens_map.json as transformers did', () => {
    assert.deepEqual(files['special_tokens_map.json'], readJson(path.join(MLM, 'special_tokens_map.json')))
    const wantConfig = readJson(path.join(MLM, 'tokenizer_config.json'))
    const config = files['tokenizer_config.json']
    // transformers also records how it was loaded (is_local, local_files_only) and "no limit" (1e30).
    const loaderOnly = ['is_local', 'local_files_only', 'model_max_length']
    assert.deepEqual(Object.keys(config), Object.keys(wantConfig).filter((k) => !loaderOnly.includes(k)))
    for (const [k, v] of Object.entries(config)) assert.deepEqual(v, wantConfig[k], k)
    const limited = tokenizerFilesFromSentencepiece(SPIECE, { modelMaxLength: 512 })['tokenizer_config.json']
    assert.equal(limited.model_max_length, 512)
  })

  it('follows do_lower_case and keep_accents in the normalizer', () => {
    const types = (opts: { doLowerCase?: boolean; keepAccents?: boolean }) =>
      (tokenizerFilesFromSentencepiece(SPIECE, opts)['tokenizer.json'].normalizer as { normalizers: { type: string }[] }).normalizers.map((n) => n.type)
    assert.deepEqual(types({}), ['Replace', 'Replace', 'NFKD', 'StripAccents', 'Lowercase', 'Precompiled'])
    assert.deepEqual(types({ keepAccents: true }), ['Replace', 'Replace', 'Lowercase', 'Precompiled'])
    assert.deepEqual(types({ doLowerCase: false, keepAccents: true }), ['Replace', 'Replace', 'Precompiled'])
    const cased = new Tokenizer(tokenizerFilesFromSentencepiece(SPIECE, { doLowerCase: false })['tokenizer.json'], {})
    assert.notDeepEqual(cased.encode('The').ids, new Tokenizer(got, {}).encode('The').ids, 'an upper-case T is not "▁the"')
  })
})

describe('encoding text', () => {
  const fixtureTok = openTokenizer(MLM)
  const converted = openTokenizer(spieceOnlyFolder())

  it('opens tokenizer.json where there is one, else converts spiece.model', () => {
    assert.equal(fixtureTok.kind, 'tokenizer.json')
    assert.equal(path.basename(fixtureTok.file), 'tokenizer.json')
    assert.equal(converted.kind, 'sentencepiece')
    assert.equal(path.basename(converted.file), 'spiece.model')
    assert.equal(fixtureTok.padId, 0)
    assert.equal(converted.padId, 0)
  })

  for (const [name, tok] of [['fixture tokenizer.json', fixtureTok], ['converted spiece.model', converted]] as const) {
    it(`gives transformers' ids, token types and tokens for every meta.json sample (${name})`, () => {
      assert.equal(SAMPLES.length, 3)
      assert.ok(SAMPLES.some((s) => s.pair), 'a sample with a pair')
      for (const s of SAMPLES) {
        const e = encodeTexts(tok, [inputOf(s)], { maxLength: 512 })
        assert.deepEqual(e.rows[0]!.ids, s.input_ids, s.text)
        assert.deepEqual(e.rows[0]!.tokens, s.tokens, s.text)
        assert.deepEqual(e.feeds.get('token_type_ids')!.toNumbers(), s.token_type_ids, s.text)
        const lib = tok.tokenizer.encode(s.text, { text_pair: s.pair, return_token_type_ids: true })
        assert.deepEqual(lib.ids, s.input_ids, `the library's own encode: ${s.text}`)
      }
    })

    it(`matches the Rust tokenizers on whitespace, accents and compatibility characters (${name})`, () => {
      for (const [text, ids] of RUST_GOLDENS) assert.deepEqual(encodeTexts(tok, [{ text }], { maxLength: 512 }).rows[0]!.ids, ids, JSON.stringify(text))
    })
  }

  it('batches rows padded to the longest, as int64 [rows, longest]', () => {
    const e = encodeTexts(fixtureTok, SAMPLES.map(inputOf), { maxLength: 40 })
    const lengths = SAMPLES.map((s) => s.input_ids.length)
    assert.deepEqual(lengths, [25, 26, 21])
    assert.equal(e.longest, 26)
    assert.deepEqual(e.warnings, [])
    for (const name of ['input_ids', 'attention_mask', 'token_type_ids']) {
      const t = e.feeds.get(name)!
      assert.equal(t.dtype, 7, `${name} is INT64`)
      assert.deepEqual(t.dims, [3, 26])
    }
    const ids = e.feeds.get('input_ids')!.toNumbers()
    const mask = e.feeds.get('attention_mask')!.toNumbers()
    const types = e.feeds.get('token_type_ids')!.toNumbers()
    SAMPLES.forEach((s, r) => {
      const row = (a: number[]) => a.slice(r * 26, (r + 1) * 26)
      const pad = 26 - s.input_ids.length
      assert.deepEqual(row(ids), [...s.input_ids, ...Array(pad).fill(0)])
      assert.deepEqual(row(mask), [...Array(s.input_ids.length).fill(1), ...Array(pad).fill(0)])
      assert.deepEqual(row(types), [...s.token_type_ids, ...Array(pad).fill(0)])
    })
  })

  it("cuts rows to maxLength longest segment first, as transformers' truncation='longest_first' does", () => {
    const pair = SAMPLES[1]!
    // transformers 5.18: tok(text, pair, truncation='longest_first', max_length=12 / 14)
    const want12 = ['[CLS]', '▁whe', 're', '▁is', '▁the', '[SEP]', '▁it', '▁o', 'pe', 'ns', '▁at', '[SEP]']
    const want14 = ['[CLS]', '▁whe', 're', '▁is', '▁the', '▁li', '[SEP]', '▁it', '▁o', 'pe', 'ns', '▁at', '▁', '[SEP]']
    const e12 = encodeTexts(fixtureTok, [inputOf(pair)], { maxLength: 12 })
    assert.deepEqual(e12.rows[0]!.tokens, want12)
    assert.equal(e12.rows[0]!.truncated, 14)
    assert.deepEqual(e12.feeds.get('token_type_ids')!.toNumbers(), [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    assert.deepEqual(e12.warnings, ['text 1 has 26 tokens; cut to 12 (max_position_embeddings 12)'])
    assert.deepEqual(encodeTexts(fixtureTok, [inputOf(pair)], { maxLength: 14 }).rows[0]!.tokens, want14)
    const single = encodeTexts(fixtureTok, [{ text: SAMPLES[0]!.text }], { maxLength: 5 })
    assert.deepEqual(single.rows[0]!.tokens, ['[CLS]', '▁the', '▁qui', 'c', '[SEP]'])
    assert.throws(() => encodeTexts(fixtureTok, [inputOf(pair)], { maxLength: 3 }), /3 special tokens leave no room within 3 positions/)
  })

  it('previews the first tokens of a row', () => {
    assert.equal(tokenPreview(SAMPLES[0]!.tokens), '[CLS] ▁the ▁qui c k ▁b … (25 tokens)')
    assert.equal(tokenPreview(['[CLS]', '▁hi', '[SEP]']), '[CLS] ▁hi [SEP] (3 tokens)')
  })

  it('reads do_lower_case from tokenizer_config.json when converting spiece.model', () => {
    const cased = openTokenizer(spieceOnlyFolder({ 'tokenizer_config.json': JSON.stringify({ do_lower_case: false }) }))
    const text = 'The Dog'
    assert.notDeepEqual(encodeTexts(cased, [{ text }], { maxLength: 40 }).rows[0]!.ids, encodeTexts(converted, [{ text }], { maxLength: 40 }).rows[0]!.ids)
    assert.deepEqual(encodeTexts(cased, [{ text: 'the dog' }], { maxLength: 40 }).rows[0]!.ids, encodeTexts(converted, [{ text }], { maxLength: 40 }).rows[0]!.ids)
    const bad = spieceOnlyFolder({ 'tokenizer_config.json': JSON.stringify({ do_lower_case: 'yes' }) })
    assert.throws(() => openTokenizer(bad), (e: unknown) => e instanceof UserError && /tokenizer_config\.json: do_lower_case must be true or false/.test(e.message))
  })

  it('checks the encoded ids against the model: vocab size, token types, multiple choice', () => {
    const config = readConfig(path.join(MLM, 'config.json'))
    const feeds = textFeeds(MLM, SAMPLES.map(inputOf), config, 'fill-mask', '--text')
    assert.equal(feeds.source, '--text')
    assert.deepEqual(feeds.feeds.get('input_ids')!.dims, [3, 26])
    const small = { ...config, vocabSize: 100 }
    assert.throws(() => textFeeds(MLM, SAMPLES.map(inputOf), small, 'fill-mask', '--text'), /tokenizer\.json: gives id 1\d\d for text 1, outside the model's vocab_size 100/)
    const oneType = textFeeds(MLM, SAMPLES.map(inputOf), { ...config, typeVocabSize: 1 }, 'fill-mask', '--text')
    assert.ok(oneType.feeds.get('token_type_ids')!.toNumbers().every((t) => t === 0))
    assert.match(oneType.warnings.join('\n'), /type_vocab_size 1/)
    assert.throws(() => textFeeds(MLM, [{ text: 'a' }], config, 'multiple-choice', '--text'), /multiple-choice head/)
  })
})

describe('hostile tokenizer files', () => {
  const good = new Uint8Array(fs.readFileSync(SPIECE))
  const dir = tempDir('albertkit-bad-spm-')

  /** The model's bytes with one top-level field rewritten (`edit` returns its new raw bytes) or dropped (null). */
  function rewrite(edit: (field: number, payload: Uint8Array, index: number) => Uint8Array | null | undefined): Uint8Array {
    const out = new ProtoWriter()
    const r = new ProtoReader(good)
    const seen = new Map<number, number>()
    while (!r.done) {
      const start = r.pos
      const [field, wire] = r.tag()
      assert.equal(wire, WIRE_LEN)
      const payload = r.bytes()
      const index = seen.get(field) ?? 0
      seen.set(field, index + 1)
      const replaced = edit(field, payload, index)
      if (replaced === null) continue
      if (replaced === undefined) out.appendRaw(good.subarray(start, r.pos))
      else out.bytes(field, replaced)
    }
    return concatPieces(out.finish())
  }

  /** A message's fields with `field` replaced by a varint `value`. */
  function withVarint(payload: Uint8Array, field: number, value: number): Uint8Array {
    const out = new ProtoWriter()
    const r = new ProtoReader(payload)
    while (!r.done) {
      const start = r.pos
      const [f, wire] = r.tag()
      r.skip(wire, start)
      if (f !== field) out.appendRaw(payload.subarray(start, r.pos))
    }
    out.tag(field, WIRE_VARINT)
    out.int64Value(value)
    return concatPieces(out.finish())
  }

  function piece(text: string, score: number, type: number): Uint8Array {
    const w = new ProtoWriter()
    w.string(1, text)
    w.float(2, score)
    w.int64(3, type)
    return concatPieces(w.finish())
  }

  function expectRefused(name: string, bytes: Uint8Array, pattern: RegExp): void {
    const file = path.join(dir, name)
    fs.writeFileSync(file, bytes)
    assert.throws(
      () => tokenizerFilesFromSentencepiece(file),
      (e: unknown) => {
        assert.ok(e instanceof UserError, `a UserError, got ${e}`)
        assert.ok(e.message.startsWith(`${file}: `), `names the file: ${e.message}`)
        assert.ok(!e.message.includes('\n'), 'one line')
        assert.match(e.message, pattern)
        return true
      },
    )
  }

  it('the rewriting helpers keep a good model good', () => {
    assert.ok(Buffer.from(rewrite(() => undefined)).equals(good))
    const ok = path.join(dir, 'same.model')
    fs.writeFileSync(ok, rewrite((f, p) => (f === 2 ? withVarint(p, 3, 1) : undefined)))
    assert.equal((tokenizerFilesFromSentencepiece(ok)['tokenizer.json'].model as { vocab: unknown[] }).vocab.length, 200)
  })

  it('refuses BPE, word and char models', () => {
    expectRefused('bpe.model', rewrite((f, p) => (f === 2 ? withVarint(p, 3, 2) : undefined)), /a BPE SentencePiece model; only unigram models/)
    expectRefused('word.model', rewrite((f, p) => (f === 2 ? withVarint(p, 3, 3) : undefined)), /a word SentencePiece model/)
    expectRefused('type9.model', rewrite((f, p) => (f === 2 ? withVarint(p, 3, 9) : undefined)), /unknown model_type 9/)
  })

  it('refuses truncated files', () => {
    // 1000 bytes ends between two pieces; the others cut a field in the middle
    for (const keep of [1, 10, 1000, 1001, Math.floor(good.byteLength / 2), good.byteLength - 1]) {
      expectRefused(`cut-${keep}.model`, good.subarray(0, keep), /not a valid SentencePiece model: (truncated or corrupt \(.*\)|it ends before its (trainer|normalizer)_spec \(truncated\?\))$/)
    }
  })

  it('refuses garbage, text, JSON and empty files', () => {
    let seed = 7
    const noise = Uint8Array.from({ length: 4096 }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24))
    expectRefused('noise.model', noise, /not a valid SentencePiece model/)
    expectRefused('vocab.model', new TextEncoder().encode('[PAD]\n[UNK]\n[CLS]\nthe\n'), /not a valid SentencePiece model/)
    expectRefused('json.model', fs.readFileSync(path.join(MLM, 'tokenizer.json')), /not a valid SentencePiece model/)
    expectRefused('empty.model', new Uint8Array(0), /empty file/)
  })

  it('refuses broken pieces: duplicates, unknown types, no or two unknown pieces, a wrong unk_id', () => {
    expectRefused('dup.model', rewrite((f, _p, i) => (f === 1 && i === 7 ? piece('▁the', -3, 1) : undefined)), /piece '▁the' appears twice \(ids 5 and 7\)/)
    expectRefused('type.model', rewrite((f, _p, i) => (f === 1 && i === 9 ? piece('zz', -3, 12) : undefined)), /piece 9 \('zz'\) has unknown type 12/)
    expectRefused('nounk.model', rewrite((f, _p, i) => (f === 1 && i === 1 ? piece('<unk>', 0, 1) : undefined)), /0 pieces have type UNKNOWN/)
    expectRefused('twounk.model', rewrite((f, _p, i) => (f === 1 && i === 9 ? piece('zz', 0, 2) : undefined)), /2 pieces have type UNKNOWN/)
    expectRefused('unkid.model', rewrite((f, p) => (f === 2 ? withVarint(p, 40, 0) : undefined)), /unk_id is 0 but the UNKNOWN piece is 1/)
    expectRefused('nan.model', rewrite((f, _p, i) => (f === 1 && i === 9 ? piece('zz', NaN, 1) : undefined)), /score NaN/)
    expectRefused('nopieces.model', rewrite((f) => (f === 1 ? null : undefined)), /no pieces/)
    expectRefused('nocls.model', rewrite((f, _p, i) => (f === 1 && i === 2 ? piece('<cls>', 0, 3) : undefined)), /has no \[CLS\] piece/)
  })

  it('refuses a malformed precompiled charsmap', () => {
    const charsmap = (bytes: Uint8Array) => (f: number) => {
      if (f !== 3) return undefined
      const w = new ProtoWriter()
      w.string(1, 'nmt_nfkc')
      w.bytes(2, bytes)
      return concatPieces(w.finish())
    }
    expectRefused('charsmap.model', rewrite(charsmap(Uint8Array.of(0xff, 0xff, 0, 0, 1, 2))), /precompiled_charsmap is malformed/)
  })

  it('a checkpoint folder: no tokenizer, a bad spiece.model, a bad tokenizer.json', () => {
    assert.throws(() => openTokenizer(fixtureDir('albert-model')), (e: unknown) => {
      assert.ok(e instanceof UserError)
      assert.equal(e.message, `${fixtureDir('albert-model')}: has no tokenizer (looked for tokenizer.json, spiece.model, 30k-clean.model)`)
      return true
    })
    const badSpm = tempDir('albertkit-badspm-')
    fs.writeFileSync(path.join(badSpm, 'spiece.model'), good.subarray(0, 500))
    assert.throws(() => openTokenizer(badSpm), (e: unknown) => e instanceof UserError && e.message.startsWith(path.join(badSpm, 'spiece.model')))
    const badJson = tempDir('albertkit-badjson-')
    fs.writeFileSync(path.join(badJson, 'tokenizer.json'), '{"model": ')
    assert.throws(() => openTokenizer(badJson), (e: unknown) => e instanceof UserError && /tokenizer\.json: not valid JSON/.test(e.message))
    fs.writeFileSync(path.join(badJson, 'tokenizer.json'), '{"model": {"type": "Nonesuch"}, "added_tokens": []}')
    assert.throws(() => openTokenizer(badJson), (e: unknown) => e instanceof UserError && e.message === `${path.join(badJson, 'tokenizer.json')}: model.type 'Nonesuch' is not one of Unigram, WordPiece, BPE`)
  })
})

describe('linear-time patterns', () => {
  it('passes the shapes ALBERT-family tokenizers use', () => {
    for (const p of [' {2,}', '\\s+', '\\p{N}{1,3}', "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}", '``', '[[:alpha:]]+', '(?<w>ab)|c+', 'a{1,3}?b', 'x*', '', '𝒜+']) {
      assert.equal(superLinearReason(p), undefined, p)
    }
  })

  it('refuses what backtracks more than linearly, saying why', () => {
    const cases: [string, string][] = [
      ['(a+)+$', "an unbounded repeat at offset 4 applies to a group; '+', '*' and '{n,}' may only repeat one character"],
      ['(a|a)*', "an unbounded repeat at offset 5 applies to a group; '+', '*' and '{n,}' may only repeat one character"],
      ['a+b', "an unbounded repeat at offset 1 is followed by more pattern; '+', '*' and '{n,}' may only end an alternative"],
      ['\\s+(?!\\S)', "an unbounded repeat at offset 2 is followed by more pattern; '+', '*' and '{n,}' may only end an alternative"],
      ['(a|a){30}', 'up to millions of ways to match at each position, reading up to 30 characters each (at most 256 ways × characters)'],
      ['\\p{L}{1,100}', 'up to 100 ways to match at each position, reading up to 100 characters each (at most 256 ways × characters)'],
      ['(a)\\1', "a backreference ('\\1') at offset 3, which no linear-time engine can match"],
      ['(?<x>a)\\k<x>', "a backreference ('\\k') at offset 7, which no linear-time engine can match"],
      ['(?>a)', "an unsupported group '(?>' at offset 0 (atomic groups, conditionals, comments and subroutines are refused)"],
      ['a++', 'a repeat of a repeat at offset 1 (nested or possessive quantifier)'],
      ['a{2000}', 'a repeat count above 1000 at offset 1'],
      ['[a-z', 'the character class opened at offset 0 is not closed'],
      ['(ab', 'the group opened at offset 0 is not closed'],
      ['ab)', "an unmatched ')' at offset 2"],
      ['x'.repeat(1025), '1025 characters long, more than 1024'],
    ]
    for (const [p, why] of cases) assert.equal(superLinearReason(p), why, p)
  })

  it('the refused shapes really are slow in JavaScript, the passed ones are not', () => {
    const time = (source: string, text: string) => cpuTimed(() => text.replaceAll(new RegExp(source, 'gu'), '')).cpuMs
    const run = 'a'.repeat(20_000)
    assert.ok(time('a+b', run) > 20 * time('a+', run), 'a+b is quadratic where a+ is linear')
    assert.ok(time('(a+)+$', 'a'.repeat(22) + '!') > 10 * time('a+', 'a'.repeat(22) + '!'), '(a+)+$ is exponential')
  })
})

describe('tokenizer.json limits', () => {
  const dir = tempDir('albertkit-tok-limits-')
  const base = () => readJson(path.join(MLM, 'tokenizer.json'))
  let k = 0
  /** openTokenizer on the fixture's tokenizer.json edited by `edit` (and a tokenizer_config.json); the message, or '' when it opens. */
  function open(edit: (j: Record<string, any>) => void, config?: Record<string, unknown>): { file: string; message: string } {
    const folder = path.join(dir, String(k++))
    fs.mkdirSync(folder)
    const j = base()
    edit(j)
    const file = path.join(folder, 'tokenizer.json')
    fs.writeFileSync(file, JSON.stringify(j))
    if (config) fs.writeFileSync(path.join(folder, 'tokenizer_config.json'), JSON.stringify(config))
    try {
      openTokenizer(folder)
      return { file, message: '' }
    } catch (e) {
      assert.ok(e instanceof UserError, `a UserError: ${e}`)
      return { file, message: e.message }
    }
  }
  const refusedWith = (r: { file: string; message: string }, problem: string) => assert.equal(r.message, `${r.file}: ${problem}`)

  it('opens the committed tokenizers unchanged', () => {
    assert.equal(open(() => {}).message, '')
  })

  it('refuses replacements JavaScript would read as patterns ($&, $`) and long ones', () => {
    refusedWith(
      open((j) => j.normalizer.normalizers.push({ type: 'Replace', pattern: { String: 'a' }, content: '$`' })),
      "normalizer.normalizers[6].content '$`' holds '$', which the JavaScript tokenizer would read as a replacement pattern",
    )
    refusedWith(open((j) => (j.pre_tokenizer.pretokenizers[1].replacement = '▁'.repeat(17))), 'pre_tokenizer.pretokenizers[1].replacement is 17 characters long, more than 16')
  })

  it('refuses a FixedLength of 0 (an endless loop), a huge WordPiece word limit, deep Sequences', () => {
    refusedWith(open((j) => (j.pre_tokenizer = { type: 'FixedLength', length: 0 })), 'pre_tokenizer.length must be an integer from 1 to 65536, got 0')
    refusedWith(
      open((j) => (j.model = { type: 'WordPiece', vocab: { '[UNK]': 0, a: 1 }, unk_token: '[UNK]', max_input_chars_per_word: 1e9 })),
      'model.max_input_chars_per_word must be an integer from 1 to 100, got 1000000000',
    )
    let deep: Record<string, unknown> = { type: 'Lowercase' }
    for (let i = 0; i < 5; i++) deep = { type: 'Sequence', normalizers: [deep] }
    refusedWith(open((j) => (j.normalizer = deep)), 'normalizer.normalizers[0].normalizers[0].normalizers[0].normalizers[0] nests Sequences more than 4 deep')
  })

  it('refuses malformed post-processors field by field', () => {
    refusedWith(open((j) => (j.post_processor.single[1] = { Nonsense: {} })), 'post_processor.single[1] must be {"SpecialToken": {...}} or {"Sequence": {...}}, got {"Nonsense":{}}')
    refusedWith(open((j) => (j.post_processor.pair[3].Sequence.id = 'C')), "post_processor.pair[3].Sequence.id must be \"A\" or \"B\", got 'C'")
    refusedWith(open((j) => (j.post_processor = { type: 'BertProcessing', cls: ['[CLS]'], sep: ['[SEP]', 3] })), 'post_processor.cls[1] must be an integer from 0 to 2147483647, got undefined')
  })

  it('refuses too many added tokens or special tokens, and escapes what it quotes', () => {
    refusedWith(
      open((j) => {
        for (let i = 0; i < 4100; i++) j.added_tokens.push({ id: 200 + i, content: `<extra_${i}>`, special: true })
      }),
      'added_tokens has 4105 entries, more than the 4096 albertkit loads',
    )
    const config = { additional_special_tokens: Array.from({ length: 5000 }, (_, i) => `<s${i}>`) }
    const r = open(() => {}, config)
    assert.equal(r.message, `${path.join(path.dirname(r.file), 'tokenizer_config.json')}: additional_special_tokens has 5000 entries, more than the 4096 albertkit loads`)
    refusedWith(open((j) => (j.normalizer.type = 'Evil\x1b[2J')), "normalizer.type 'Evil\\x1b[2J' is not one of BertNormalizer, Precompiled, Sequence, Replace, NFC, NFD, NFKC, NFKD, Strip, StripAccents, Lowercase, Prepend")
  })

  it('bounds the work on each text: a long text, a pre-tokenizer that multiplies it', () => {
    const tok = openTokenizer(MLM)
    assert.throws(() => encodeTexts(tok, [{ text: 'ok' }, { text: 'a'.repeat(40_000) }], { maxLength: 512 }), (e: unknown) => e instanceof UserError && e.message === 'text 2: 40000 characters, more than the 32768 a text may have')
    const long = open((j) => j.normalizer.normalizers.push({ type: 'Replace', pattern: { String: 'a' }, content: 'aaa' }))
    assert.throws(
      () => encodeTexts(openTokenizer(path.dirname(long.file)), [{ text: 'a'.repeat(30_000) }], { maxLength: 512 }),
      (e: unknown) => e instanceof UserError && e.message === `${long.file}: text 1 has a word of 90001 characters after normalization, more than 65536`,
    )
    const r = open((j) => (j.pre_tokenizer = { type: 'Sequence', pretokenizers: Array.from({ length: 6 }, () => ({ type: 'Replace', pattern: { String: ' ' }, content: '    ' })) }))
    assert.equal(r.message, '')
    const grown = openTokenizer(path.dirname(r.file))
    assert.throws(
      () => encodeTexts(grown, [{ text: 'a b c d e f g h i j' }, { text: ' '.repeat(30_000) }], { maxLength: 512 }),
      (e: unknown) => e instanceof UserError && e.message === `${r.file}: pre_tokenizer.pretokenizers[1] (Replace) turns text 2 into more than 262144 characters`,
    )
  })
})

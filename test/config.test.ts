import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { parseConfig, groupOfLayer, CONFIG_DEFAULTS } from '../src/checkpoint/config.js'
import { UserError } from '../src/util/errors.js'

const parse = (json: unknown) => parseConfig(json, 'config.json')
const rejects = (json: unknown, fragment: string) =>
  assert.throws(() => parse(json), (e: unknown) => e instanceof UserError && e.message.startsWith('config.json: ') && e.message.includes(fragment))

describe('config.json', () => {
  it("fills HF's defaults for missing keys", () => {
    const c = parse({ model_type: 'albert' })
    assert.equal(c.vocabSize, CONFIG_DEFAULTS.vocab_size)
    assert.equal(c.hiddenSize, 4096)
    assert.equal(c.numAttentionHeads, 64)
    assert.equal(c.intermediateSize, 16384)
    assert.equal(c.hiddenAct, 'gelu_new')
    assert.equal(c.layerNormEps, 1e-12)
    assert.equal(c.typeVocabSize, 2)
    assert.equal(c.numLabels, 2)
    assert.equal(c.tieWordEmbeddings, true)
  })

  it('ignores the unused keys of old hub configs', () => {
    const c = parse({ model_type: 'albert', down_scale_factor: 1, gap_size: 0, net_structure_type: 0, num_memory_blocks: 0, hidden_size: 768, num_attention_heads: 12 })
    assert.equal(c.hiddenSize, 768)
  })

  it('takes num_labels from id2label when not given', () => {
    assert.equal(parse({ model_type: 'albert', id2label: { 0: 'a', 1: 'b', 2: 'c' } }).numLabels, 3)
    assert.equal(parse({ model_type: 'albert', num_labels: 5, id2label: { 0: 'a' } }).numLabels, 5)
  })

  it('rejects other model types and configs without one', () => {
    rejects({ model_type: 'bert' }, 'model_type is "bert"')
    rejects({}, "no 'model_type'")
    assert.equal(parse({ architectures: ['AlbertForMaskedLM'] }).architectures[0], 'AlbertForMaskedLM')
  })

  it('rejects values that would build a broken model', () => {
    rejects({ model_type: 'albert', hidden_size: 100, num_attention_heads: 12 }, 'not a multiple')
    rejects({ model_type: 'albert', num_hidden_layers: 0 }, "'num_hidden_layers'")
    rejects({ model_type: 'albert', vocab_size: 1.5 }, "'vocab_size'")
    rejects({ model_type: 'albert', num_hidden_groups: 13 }, 'more than num_hidden_layers')
    rejects({ model_type: 'albert', hidden_act: 3 }, "'hidden_act'")
    rejects([], 'not a JSON object')
  })

  it('maps layers to groups exactly as transformers does, also when groups do not divide layers', () => {
    const c = (L: number, G: number) => parse({ model_type: 'albert', num_hidden_layers: L, num_hidden_groups: G })
    assert.deepEqual([0, 1, 2, 3].map((i) => groupOfLayer(c(4, 2), i)), [0, 0, 1, 1])
    // Python: [int(i / (7 / 3)) for i in range(7)] == [0, 0, 0, 1, 1, 2, 2]
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((i) => groupOfLayer(c(7, 3), i)), [0, 0, 0, 1, 1, 2, 2])
    // Python: [int(i / (12 / 5)) for i in range(12)] == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4]
    assert.deepEqual(Array.from({ length: 12 }, (_, i) => groupOfLayer(c(12, 5), i)), [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4])
  })
})

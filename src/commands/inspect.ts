import { Args } from '@oclif/core'
import { revisionFlag, revisionOf } from '../cli/checkpoint-flags.js'
import type { ParsedFlags } from '../cli/recipe.js'
import { AlbertkitCommand } from '../cli/base.js'
import { inspect, type InspectReport } from '../report/inspect.js'
import { formatBytes } from '../util/format.js'
import { exitCodeRows } from '../cli/exit-codes.js'
import { examples, prose } from '../cli/prose.js'

export default class Inspect extends AlbertkitCommand {
  static override summary = 'Show what an ALBERT checkpoint or ONNX file holds.'
  static override description = prose(`
    Prints the config summary; the parameters stored, unique (equal tensors counted once) and
    as-if-unshared (one copy per layer call); the bytes per dtype; and for an ONNX file its producer,
    opsets, inputs, outputs and op counts.

    It also finds the embedding factorization: V, E and H, and V·E + E·H parameters against V·H
    unfactorized.

    Nothing is written. The summary, or with --json the whole report, goes to stdout.
  `)
  static override usage = '<%= command.id %> TARGET [FLAGS]'
  static override examples = examples('inspect', `
    fixtures/albert-mlm

    build/albert-mlm/onnx/model.onnx --json

    The embedding size of a checkpoint, for a script:
    ./my-albert --json | jq .factorization.E
  `)
  static exitCodes = exitCodeRows(`
    ok: the summary was printed

    usage: an unknown flag, a missing or extra argument, a malformed --revision or one given with a
    local path

    input: a checkpoint or ONNX file that is missing, unreadable, malformed or unsupported; a model or
    revision missing from the Hugging Face cache
  `)
  static override args = {
    target: Args.string({ description: 'checkpoint folder, .onnx file, or org/name in the Hugging Face cache', required: true }),
  }
  static override flags = {
    ...revisionFlag,
  }

  async run(): Promise<InspectReport> {
    const parsed = await this.parse(Inspect)
    const { args, flags } = parsed
    const cache = this.usage(() => revisionOf(args.target, parsed as unknown as ParsedFlags<Record<string, unknown>>, flags))
    const reading = this.progress(flags).start(`reading ${args.target}`)
    const report = inspect(args.target, cache)
    reading.done(kindAndFormat(report))
    if (!this.jsonEnabled()) this.log(formatInspect(report))
    return report
  }
}

const num = (n: number) => n.toLocaleString('en-US')

/** `checkpoint, safetensors`, or just `onnx` for an ONNX file. */
function kindAndFormat(r: InspectReport): string {
  return r.kind === r.format ? r.kind : `${r.kind}, ${r.format}`
}

export function formatInspect(r: InspectReport): string {
  const lines: string[] = [`${r.path} (${kindAndFormat(r)})`]
  if (r.hub) lines.push(`  hub cache      ${r.hub.id} at ${r.hub.revision}, commit ${r.hub.commit}`)
  if (r.config) {
    const c = r.config
    lines.push(
      `  architecture   ${c.architecture ?? '(none)'}`,
      `  layers         ${c.num_hidden_layers} (groups ${c.num_hidden_groups}, inner ${c.inner_group_num}), heads ${c.num_attention_heads}, act ${c.hidden_act}`,
      `  sizes          V ${c.vocab_size}, E ${c.embedding_size}, H ${c.hidden_size}, I ${c.intermediate_size}, positions ${c.max_position_embeddings}, types ${c.type_vocab_size}`,
    )
  }
  if (r.onnx) {
    const o = r.onnx
    lines.push(
      `  producer       ${o.producer || '(unknown)'}, IR ${o.irVersion}, opsets ${Object.entries(o.opsets).map(([d, v]) => `${d} ${v}`).join(', ')}`,
      `  graph          ${o.nodes} nodes; inputs ${o.inputs.join(', ')}; outputs ${o.outputs.join(', ')}`,
      `  ops            ${Object.entries(o.opCounts).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    )
  }
  const p = r.parameters
  lines.push(
    `  parameters     stored ${num(p.stored)}${p.quantized ? ` (${num(p.quantized)} quantized)` : ''}, unique ${num(p.unique)}, as-if-unshared ${num(p.asIfUnshared)} (${p.tensors} tensors)`,
    `  bytes          ${Object.entries(p.bytesByDtype).map(([k, v]) => `${k} ${formatBytes(v)}`).join(', ')}`,
  )
  const f = r.factorization
  if (f) {
    lines.push(
      `  embeddings     V ${f.V}, E ${f.E}, H ${f.H}${f.projectionFound ? '' : ' (no E→H projection found)'}`,
      `  factorization  V·E + E·H = ${num(f.factorized)} vs V·H = ${num(f.unfactorized)}: saves ${num(f.saving)} (${(100 * (1 - f.ratio)).toFixed(1)}%)`,
    )
  } else lines.push('  embeddings     no embedding lookup found')
  return lines.join('\n')
}

/**
 * required_operators.config: the operators a set of models needs, in the format onnxruntime's
 * reduced-operator build reads (`build.py --include_ops_by_config`): `#` comment lines, then one
 * line per domain and opset, `<domain>;<opset>;<op>,<op>,...`, the opset being the one each model
 * imports for that domain, the default domain written `ai.onnx`. Ops inside subgraphs count.
 */
import fs from 'node:fs'
import type { Graph, Model } from '../ir/graph.js'

export interface OperatorLine {
  domain: string
  opset: number
  ops: string[]
}

const domainName = (d: string) => (d === '' ? 'ai.onnx' : d)

/** Collects the operators of models as they are emitted. */
export class RequiredOperators {
  private readonly files: string[] = []
  private readonly byKey = new Map<string, Set<string>>()

  /** Record every op of `model` (written as `file`) under its domain and imported opset. */
  add(file: string, model: Model): void {
    this.files.push(file)
    for (const [domain, op] of opsOf(model.graph)) {
      const opset = model.opsetVersion(domain)
      if (opset === undefined) throw new Error(`${file}: op ${op} of domain '${domainName(domain)}' has no opset import`)
      const key = `${domainName(domain)};${opset}`
      const set = this.byKey.get(key) ?? new Set<string>()
      set.add(op)
      this.byKey.set(key, set)
    }
  }

  /** Record operators read from a file that is no ONNX model (an ORT-format one), with their opsets. */
  addOperators(file: string, ops: readonly { domain: string; opset: number; op: string }[]): void {
    this.files.push(file)
    for (const { domain, opset, op } of ops) {
      const key = `${domainName(domain)};${opset}`
      const set = this.byKey.get(key) ?? new Set<string>()
      set.add(op)
      this.byKey.set(key, set)
    }
  }

  lines(): OperatorLine[] {
    return [...this.byKey]
      .map(([key, ops]) => {
        const [domain, opset] = key.split(';') as [string, string]
        return { domain, opset: Number(opset), ops: [...ops].sort() }
      })
      .sort((a, b) => a.domain.localeCompare(b.domain) || a.opset - b.opset)
  }

  text(): string {
    const head = ['# Operators the models below need, for an onnxruntime reduced-operator build', '# (build.py --include_ops_by_config). Written by albertkit from model/s:']
    const files = this.files.map((f) => `# - ${f}`)
    const body = this.lines().map((l) => `${l.domain};${l.opset};${l.ops.join(',')}`)
    return [...head, ...files, ...body].join('\n') + '\n'
  }

  write(file: string): void {
    fs.writeFileSync(file, this.text())
  }
}

/** [domain, op type] of every node of a graph and its subgraphs. */
function* opsOf(g: Graph): Generator<[string, string]> {
  for (const n of g.nodes) {
    yield [n.domain === 'ai.onnx' ? '' : n.domain, n.opType]
    for (const sub of n.subgraphs()) yield* opsOf(sub)
  }
}

/** Read a required_operators.config back (comments and blank lines skipped; type-reduction JSON is not supported). */
export function parseRequiredOperators(text: string): OperatorLine[] {
  const out: OperatorLine[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const [domain, opset, ops] = line.split(';')
    if (!domain || !opset || ops === undefined || !/^\d+$/.test(opset)) throw new Error(`required_operators.config: bad line '${line}'`)
    out.push({ domain, opset: Number(opset), ops: ops.split(',').filter(Boolean) })
  }
  return out
}

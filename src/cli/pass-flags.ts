/** Flags that set pass options, shared by `convert` and `optimize`. */
import { Flags } from '@oclif/core'
import type { PassOptions } from '../passes/pass.js'
import { UsageError } from '../util/errors.js'
import type { FlagGroup } from './help.js'

const list = (s: string | undefined) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : undefined)

export const passFlags = {
  'standard-ops': Flags.boolean({ description: 'standard ONNX ops only, no com.microsoft contrib ops', default: false, helpGroup: 'GRAPH' satisfies FlagGroup }),
  refactor: Flags.boolean({ description: 'factorization-check: restore a folded embedding factorization', default: false, helpGroup: 'GRAPH' satisfies FlagGroup }),
  'per-tensor': Flags.boolean({ description: 'int8: one scale per weight instead of one per output channel', default: false, helpGroup: 'QUANTIZATION' satisfies FlagGroup }),
  'block-size': Flags.integer({ description: 'int4: weights per quantization block along K (a power of two, 16 or more)', default: 32, helpValue: '<n>', helpGroup: 'QUANTIZATION' satisfies FlagGroup }),
  asymmetric: Flags.boolean({ description: 'int4: asymmetric blocks with zero points', default: false, helpGroup: 'QUANTIZATION' satisfies FlagGroup }),
  'keep-nodes': Flags.string({ description: 'int8, int4, fp16: comma-separated node names to keep in float32', helpValue: '<names>', helpGroup: 'QUANTIZATION' satisfies FlagGroup }),
  'keep-ops': Flags.string({ description: 'int8, int4, fp16: comma-separated op types to keep in float32 (e.g. Gather)', helpValue: '<ops>', helpGroup: 'QUANTIZATION' satisfies FlagGroup }),
}

/** convert and optimize: what each pass did, and on a terminal each step's summary, on stderr. */
export const verboseFlag = {
  verbose: Flags.boolean({
    description: 'also print what each pass did (nodes, tensors, size, its own figures) and, for convert, each verdict and file as it goes; on a terminal, keep each step\'s summary line',
    default: false,
    helpGroup: 'OUTPUT' satisfies FlagGroup,
  }),
}

export function passOptionsFrom(flags: {
  'per-tensor': boolean
  'keep-nodes'?: string | undefined
  'keep-ops'?: string | undefined
  'standard-ops': boolean
  'block-size': number
  asymmetric: boolean
  refactor: boolean
}): PassOptions {
  const b = flags['block-size']
  if (!Number.isInteger(b) || b < 16 || (b & (b - 1)) !== 0) throw new UsageError(`--block-size must be a power of two, 16 or more (got ${b})`)
  const o: PassOptions = {
    perTensor: flags['per-tensor'],
    contribOps: !flags['standard-ops'],
    blockSize: flags['block-size'],
    asymmetric: flags.asymmetric,
    refactor: flags.refactor,
  }
  const nodes = list(flags['keep-nodes'])
  const ops = list(flags['keep-ops'])
  if (nodes) o.keepNodes = nodes
  if (ops) o.keepOps = ops
  return o
}

/** Flags for the parity verdict, shared by `convert` and `verify`. */
import { Flags } from '@oclif/core'
import { DEFAULT_INPUTS, type InputSpec, type Thresholds } from '../verify/verify.js'
import { UserError } from '../util/errors.js'

export const verifyFlags = {
  seed: Flags.integer({ description: 'seed of the random verification inputs', default: DEFAULT_INPUTS.seed }),
  batch: Flags.integer({ description: 'rows of the random verification inputs', default: DEFAULT_INPUTS.batch }),
  sequence: Flags.integer({ description: 'sequence length of the random verification inputs', default: DEFAULT_INPUTS.sequence }),
  'max-abs': Flags.string({ description: 'fail when an output’s max abs error exceeds this (overrides the precision default)' }),
  cosine: Flags.string({ description: 'fail when an output’s cosine similarity is below this (overrides the precision default)' }),
  top1: Flags.string({ description: 'fail when top-1 agreement of logits is below this share, 0..1 (overrides the precision default)' }),
}

function number(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const v = Number(text)
  if (!Number.isFinite(v)) throw new UserError(`--${name} must be a number, got '${text}'`)
  return v
}

export function thresholdsFrom(flags: { 'max-abs'?: string | undefined; cosine?: string | undefined; top1?: string | undefined }): Thresholds {
  const t: Thresholds = {}
  const maxAbs = number('max-abs', flags['max-abs'])
  const cosine = number('cosine', flags.cosine)
  const top1 = number('top1', flags.top1)
  if (maxAbs !== undefined) t.maxAbs = maxAbs
  if (cosine !== undefined) t.cosine = cosine
  if (top1 !== undefined) t.top1 = top1
  return t
}

export function inputSpecFrom(flags: { seed: number; batch: number; sequence: number }): InputSpec {
  return { ...DEFAULT_INPUTS, seed: flags.seed, batch: flags.batch, sequence: flags.sequence }
}

/**
 * convert's flags that only some targets take (targets/targets.ts says which): `--fixed-shape`
 * and `--calibration`, their help naming those targets, and their values read.
 */
import { Flags } from '@oclif/core'
import { readSafetensors } from '../checkpoint/safetensors.js'
import { targetsTaking } from '../targets/targets.js'
import { UserError } from '../util/errors.js'
import type { Feed } from '../verify/inputs.js'
import type { FlagGroup } from './help.js'

export const targetFlags = {
  'fixed-shape': Flags.string({
    description: `${targetsTaking('fixed-shape')}: pin batch and sequence sizes (e.g. 1,128); the models then take exactly [B, S]`,
    helpValue: '<B,S>',
    helpGroup: 'MODEL' satisfies FlagGroup,
  }),
  calibration: Flags.string({
    description: `${targetsTaking('calibration')}: safetensors of sample inputs (input_ids, attention_mask, token_type_ids) to calibrate static int8 on (default: seeded random inputs)`,
    helpValue: '<file>',
    helpGroup: 'MODEL' satisfies FlagGroup,
  }),
}

/** Parse "B,S" as given to `--fixed-shape`. */
export function parseFixedShape(text: string): [number, number] {
  const parts = text.split(',').map((s) => s.trim())
  const dims = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : NaN))
  if (dims.length !== 2 || dims.some((d) => !(d >= 1))) throw new UserError(`--fixed-shape must be B,S with two positive integers (got '${text}')`)
  return dims as [number, number]
}

/** Calibration inputs from a safetensors file of model inputs (as `--calibration` gives them). */
export function readCalibration(file: string): Feed[] {
  const { tensors } = readSafetensors(file)
  if (tensors.size === 0) throw new UserError(`${file}: no tensors`)
  return [new Map(tensors)]
}

/** Flags for labelled evaluation (`--eval`, `--max-drop`), shared by `convert` and `verify`. */
import { Flags } from '@oclif/core'
import { EVAL_LIMITS } from '../eval/index.js'
import type { EvalRequest } from '../pipeline/evaluation.js'
import { UserError } from '../util/errors.js'
import type { FlagGroup } from './help.js'

export const evalFlags = {
  eval: Flags.string({
    description: 'labelled dev set to score every model on against the fp32 reference: JSONL or TSV (text-classification), SQuAD JSON (question-answering), CoNLL (token-classification), JSONL (fill-mask, multiple-choice)',
    helpValue: '<file>',
    helpGroup: 'EVALUATION' satisfies FlagGroup,
  }),
  'max-drop': Flags.string({ description: 'fail (exit code 1) when a model’s metric drops by more than this many points against the fp32 reference (accuracy 72.5% → 71.0% is 1.5)', helpValue: '<points>', helpGroup: 'EVALUATION' satisfies FlagGroup }),
  'eval-metric': Flags.string({ description: 'the metric --max-drop gates on (default the task’s first: accuracy, entity_f1, f1, top1)', helpValue: '<name>', helpGroup: 'EVALUATION' satisfies FlagGroup }),
  'eval-limit': Flags.integer({ description: 'score only the first n examples of --eval', helpValue: '<n>', helpGroup: 'EVALUATION' satisfies FlagGroup }),
  'eval-seed': Flags.integer({ description: 'seed of the paired bootstrap that gives the drop’s 95% interval (default 0)', helpValue: '<n>', helpGroup: 'EVALUATION' satisfies FlagGroup }),
}

export interface EvalFlagValues {
  eval?: string | undefined
  'max-drop'?: string | undefined
  'eval-metric'?: string | undefined
  'eval-limit'?: number | undefined
  'eval-seed'?: number | undefined
}

/** The evaluation the flags ask for, checked (a UserError the command turns into a usage error), or undefined. */
export function evalRequestFrom(flags: EvalFlagValues): EvalRequest | undefined {
  if (flags.eval === undefined) {
    const stray = (['max-drop', 'eval-metric', 'eval-limit', 'eval-seed'] as const).filter((k) => flags[k] !== undefined)
    if (stray.length > 0) throw new UserError(`${stray.map((k) => `--${k}`).join(', ')} ${stray.length === 1 ? 'needs' : 'need'} a dev set to score (--eval)`)
    return undefined
  }
  if (flags.eval.trim() === '') throw new UserError('--eval needs a file name')
  const request: EvalRequest = { file: flags.eval }
  if (flags['max-drop'] !== undefined) {
    const v = Number(flags['max-drop'])
    if (flags['max-drop'].trim() === '' || !Number.isFinite(v) || v < 0 || v > 100) throw new UserError(`--max-drop must be a number of points from 0 to 100, got '${flags['max-drop']}'`)
    request.maxDrop = v
  }
  if (flags['eval-metric'] !== undefined) request.metric = flags['eval-metric']
  if (flags['eval-limit'] !== undefined) {
    if (flags['eval-limit'] < 1 || flags['eval-limit'] > EVAL_LIMITS.examples) throw new UserError(`--eval-limit must be from 1 to ${EVAL_LIMITS.examples}, got ${flags['eval-limit']}`)
    request.limit = flags['eval-limit']
  }
  if (flags['eval-seed'] !== undefined) {
    if (flags['eval-seed'] < 0 || flags['eval-seed'] > 0xffffffff) throw new UserError(`--eval-seed must be from 0 to 4294967295, got ${flags['eval-seed']}`)
    request.seed = flags['eval-seed']
  }
  return request
}

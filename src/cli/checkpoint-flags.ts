/**
 * What a command reads of a checkpoint: `--revision` names a version of a model in the Hugging
 * Face cache (checkpoint/hf-cache.ts), for convert, verify and inspect alike; `--task` the head
 * built from it, for convert and verify.
 */
import { Flags } from '@oclif/core'
import { DEFAULT_REVISION, checkRevisionArgument, type ResolveOptions } from '../checkpoint/hf-cache.js'
import { TASKS } from '../checkpoint/task.js'
import { UserError } from '../util/errors.js'
import { given, type ParsedFlags, type Recipe } from './recipe.js'
import type { FlagGroup } from './help.js'

export const revisionFlag = {
  revision: Flags.string({
    description: `the version of a model in the Hugging Face cache, for a checkpoint named by its id (org/name) or a models--org--name folder: a branch, tag or commit (default ${DEFAULT_REVISION}); nothing is downloaded`,
    helpValue: '<rev>',
    helpGroup: 'CHECKPOINT' satisfies FlagGroup,
  }),
}

/**
 * The revision asked for and where it came from (the flag, or the recipe's `revision`), checked
 * against the checkpoint argument before anything is read: a malformed revision, or one with a
 * local path, is a usage error naming both. Empty when no revision was asked for.
 */
export function revisionOf(checkpoint: string, parsed: ParsedFlags<Record<string, unknown>>, flags: { revision?: string | undefined }, recipe?: Recipe): ResolveOptions {
  if (flags.revision === undefined) return {}
  const source = { revision: flags.revision, revisionFrom: given(parsed, 'revision') || !recipe ? '--revision' : `${recipe.file}: revision` }
  checkRevisionArgument(checkpoint, source)
  return source
}

/** `--task`: `head` names what the head is (`head to build`), and the group it shows in. */
export function taskFlag(head: string, group: FlagGroup) {
  return {
    task: Flags.string({ description: `${head}, default from config.architectures: ${TASKS.join(', ')}`, helpValue: '<task>', helpGroup: group }),
  }
}

/** A task given (by --task or a recipe) must be one of TASKS. */
export function checkTask(task: string | undefined): void {
  if (task && !(TASKS as readonly string[]).includes(task)) throw new UserError(`unknown task '${task}' (choose one of ${TASKS.join(', ')})`)
}

/**
 * The heads albertkit builds, named as Hugging Face's pipeline tasks, and how a checkpoint's
 * config.architectures or a user's `--task` names one. Every stage from the builder up speaks of
 * tasks; they live here, beside the config that names them.
 */
import { UserError, fail } from '../util/errors.js'
import { printable } from '../util/printable.js'
import type { AlbertConfig } from './config.js'

export const TASKS = [
  'feature-extraction',
  'fill-mask',
  'pretraining',
  'text-classification',
  'token-classification',
  'question-answering',
  'multiple-choice',
] as const
export type Task = (typeof TASKS)[number]

export const TASK_OF_ARCHITECTURE: Record<string, Task> = {
  AlbertModel: 'feature-extraction',
  AlbertForMaskedLM: 'fill-mask',
  AlbertForPreTraining: 'pretraining',
  AlbertForSequenceClassification: 'text-classification',
  AlbertForTokenClassification: 'token-classification',
  AlbertForQuestionAnswering: 'question-answering',
  AlbertForMultipleChoice: 'multiple-choice',
}

/** Other names users give tasks (Optimum's, transformers' class suffixes). */
export const TASK_ALIASES: Record<string, Task> = {
  model: 'feature-extraction',
  default: 'feature-extraction',
  'masked-lm': 'fill-mask',
  'sequence-classification': 'text-classification',
  'sentiment-analysis': 'text-classification',
}

/** config.architectures' class name for each task (the head actually built). */
export const ARCHITECTURE_OF_TASK: Record<Task, string> = Object.fromEntries(
  Object.entries(TASK_OF_ARCHITECTURE).map(([arch, task]) => [task, arch]),
) as Record<Task, string>

/** The task to build: `--task` if given (canonical name or alias), else from config.architectures. */
export function resolveTask(config: AlbertConfig, requested: string | undefined, configFile: string): Task {
  if (requested) {
    const t = (TASKS as readonly string[]).includes(requested) ? (requested as Task) : TASK_ALIASES[requested]
    if (!t) throw new UserError(`unknown task '${printable(requested)}' (choose one of ${TASKS.join(', ')})`)
    return t
  }
  const arch = config.architectures[0]
  if (arch === undefined) return 'feature-extraction'
  const t = TASK_OF_ARCHITECTURE[arch]
  if (!t) fail(configFile, `architecture '${printable(arch)}' is not an ALBERT head albertkit knows (${Object.keys(TASK_OF_ARCHITECTURE).join(', ')}); pass --task`)
  return t
}

/**
 * What one evaluation may read and do, checked before the work. Line formats (JSONL, TSV, CoNLL)
 * are streamed in fixed chunks, so their size bounds time, not memory; SQuAD JSON is one document
 * and is read whole, so it has a size of its own.
 */
import { LIMITS } from '../tokenizer/index.js'

export const EVAL_LIMITS = {
  /** bytes of one line of a JSONL / TSV / CoNLL file (a 32,768-character text and its pair, escaped, fit many times) */
  lineBytes: 1 << 20,
  /** bytes of a streamed file (read 1 MiB at a time; this bounds the time spent, not memory) */
  streamedFileBytes: 2 ** 36,
  /** bytes of a SQuAD JSON file, which is read whole (SQuAD v2.0's dev set is 4.4 MB, its train set 42 MB) */
  squadFileBytes: 256 * 2 ** 20,
  /** examples one evaluation scores (lines, sentences, questions); `limit` takes fewer */
  examples: 1_000_000,
  /** characters of one text, a pair counting both (the tokenizer's limit) */
  textChars: LIMITS.textChars,
  /** words of one CoNLL sentence */
  sentenceWords: 4096,
  /** choices of one multiple-choice question */
  choices: 64,
  /** characters of a SQuAD context (the tokenizer's limit on one text) */
  contextChars: LIMITS.textChars,
  /** rows of one batch */
  batchRows: 256,
  /** float32 values of one batch's largest output (a fill-mask batch is rows × length × vocabulary) */
  outputValues: 1 << 26,
  /** bootstrap resamples */
  resamples: 100_000,
} as const

/** How a run is batched, and how far it may go (each at most its EVAL_LIMITS ceiling). */
export interface BatchOptions {
  /** rows of one batch (default 32; questions for multiple-choice) */
  batchSize?: number
  /** rows × padded length of one batch (default 16,384 tokens) */
  batchTokens?: number
}

export const DEFAULT_BATCH = { batchSize: 32, batchTokens: 16_384 } as const

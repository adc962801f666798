/**
 * The output folder's layout, made for transformers.js to load as it is:
 *
 *   config.json                  the checkpoint's config; rewritten only where transformers.js needs
 *                                something else (the head actually built, external-data files)
 *   tokenizer.json, …            the checkpoint's tokenizer files; made from spiece.model when the
 *                                checkpoint has no tokenizer.json
 *   onnx/model.onnx              fp32 (transformers.js dtype "fp32")
 *   onnx/model_int8.onnx         int8 (dtype "int8")
 *   onnx/model_quantized.onnx    dtype "q8", transformers.js's default in the browser (wasm): the int8
 *                                model under a second name, a hard link where the file system allows
 *   onnx/model_q4.onnx, onnx/model_fp16.onnx
 *
 * transformers.js has no AlbertForTokenClassification (nor multiple choice): such folders load with
 * AutoModel, whose forward returns the graph's outputs (`logits`) by name.
 */
import fs from 'node:fs'
import path from 'node:path'
import { TASK_OF_ARCHITECTURE, type Task } from '../builder/albert.js'
import { readTokenizerConfig, sentencepieceOptions, tokenizerFilesFromSentencepiece } from '../tokenizer/index.js'

/** transformers.js's file name for dtype "q8". */
export const Q8_FILE = 'onnx/model_quantized.onnx'
const INT8_FILE = 'onnx/model_int8.onnx'

/** A second name for an emitted file. */
export interface Alias {
  file: string
  of: string
  /** 'link' (hard link: no extra bytes on disk) or 'copy' (where links are not possible). */
  how: 'link' | 'copy'
}

/**
 * Give the int8 model transformers.js's q8 name too, unless a plan already writes a model there
 * (the mobile target's weight-only variant does). Returns the alias made, if any.
 */
export function writeQ8Alias(dir: string, files: string[]): Alias | undefined {
  if (!files.includes(INT8_FILE) || files.includes(Q8_FILE)) return undefined
  const from = path.join(dir, INT8_FILE)
  const to = path.join(dir, Q8_FILE)
  try {
    fs.linkSync(from, to)
    return { file: Q8_FILE, of: INT8_FILE, how: 'link' }
  } catch {
    fs.copyFileSync(from, to)
    return { file: Q8_FILE, of: INT8_FILE, how: 'copy' }
  }
}

const ARCHITECTURE_OF_TASK: Record<Task, string> = Object.fromEntries(
  Object.entries(TASK_OF_ARCHITECTURE).map(([arch, task]) => [task, arch]),
) as Record<Task, string>

/**
 * The config.json to write beside the models, or undefined when the checkpoint's own (copied byte
 * for byte) already says what transformers.js needs: `architectures` naming the head that was built
 * (it differs after `--task`), and `transformers.js_config.use_external_data_format` naming each
 * model whose weights live in a `<file>_data` file (browsers fetch those only when told).
 */
export function configForFolder(raw: Record<string, unknown>, task: Task, externalFiles: string[]): Record<string, unknown> | undefined {
  const architecture = ARCHITECTURE_OF_TASK[task]
  const archs = raw.architectures
  const archOk = Array.isArray(archs) && archs.length === 1 && archs[0] === architecture
  if (archOk && externalFiles.length === 0) return undefined
  const out: Record<string, unknown> = { ...raw, architectures: [architecture] }
  if (externalFiles.length > 0) {
    const previous = (raw['transformers.js_config'] as Record<string, unknown> | undefined) ?? {}
    const formats: Record<string, number> = {}
    for (const f of externalFiles) formats[path.basename(f)] = 1
    out['transformers.js_config'] = { ...previous, use_external_data_format: formats }
  }
  return out
}

/**
 * A checkpoint with only a SentencePiece model (Google's original ALBERT ships `30k-clean.model`,
 * copied here as spiece.model) gets the tokenizer files transformers would write for it, so that
 * transformers.js and `verify --text` can tokenize. The casing options come from the checkpoint's
 * tokenizer_config.json when it has one (read as verify reads it). Returns the files written.
 */
export function writeTokenizerFiles(dir: string, sourceDir: string, maxPositions: number): string[] {
  const spm = path.join(dir, 'spiece.model')
  if (!fs.existsSync(spm) || fs.existsSync(path.join(dir, 'tokenizer.json'))) return []
  const { file: configFile, config } = readTokenizerConfig(sourceDir) // the checkpoint's, so errors name it
  const opts = { ...sentencepieceOptions(config, configFile), modelMaxLength: maxPositions }
  const files = tokenizerFilesFromSentencepiece(spm, opts)
  const written: string[] = []
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name)
    if (fs.existsSync(file)) continue
    fs.writeFileSync(file, JSON.stringify(content, null, 2) + '\n')
    written.push(name)
  }
  return written
}

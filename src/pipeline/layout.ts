/**
 * The output folder's layout, made for transformers.js to load as it is (the model file names,
 * and the second name of the int8 model, are targets/precision.ts's):
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
import type { Checkpoint } from '../checkpoint/index.js'
import { ARCHITECTURE_OF_TASK, type Task } from '../checkpoint/task.js'
import { PRECISION, PRECISIONS } from '../targets/precision.js'
import { readTokenizerConfig, sentencepieceOptions, tokenizerFilesFromSentencepiece } from '../tokenizer/index.js'

/** A second name for an emitted file. */
export interface Alias {
  file: string
  of: string
  /** 'link' (hard link: no extra bytes on disk) or 'copy' (where links are not possible). */
  how: 'link' | 'copy'
}

/**
 * Give each emitted model the second name its precision has (targets/precision.ts: the int8
 * model is also transformers.js's q8 file), unless a plan already writes a model there (the
 * mobile target's weight-only variant does). Returns the aliases made.
 */
export function writeAliases(dir: string, files: string[]): Alias[] {
  const aliases: Alias[] = []
  for (const p of PRECISIONS) {
    const { file, alias } = PRECISION[p]
    if (!alias || !files.includes(file) || files.includes(alias.file)) continue
    const from = path.join(dir, file)
    const to = path.join(dir, alias.file)
    try {
      fs.linkSync(from, to)
      aliases.push({ file: alias.file, of: file, how: 'link' })
    } catch {
      fs.copyFileSync(from, to)
      aliases.push({ file: alias.file, of: file, how: 'copy' })
    }
  }
  return aliases
}

/**
 * The config.json to write beside the models, or undefined when the checkpoint's own (copied byte
 * for byte) already says what transformers.js needs: `architectures` naming the head that was built
 * (it differs after `--task`), and `transformers.js_config.use_external_data_format` naming each
 * model whose weights live in a `<file>_data` file (browsers fetch those only when told), and the
 * entries a target asks for (`jsConfig`: the dtype transformers.js picks per device).
 */
export function configForFolder(raw: Record<string, unknown>, task: Task, externalFiles: string[], jsConfig: Record<string, unknown> = {}): Record<string, unknown> | undefined {
  const architecture = ARCHITECTURE_OF_TASK[task]
  const archs = raw.architectures
  const archOk = Array.isArray(archs) && archs.length === 1 && archs[0] === architecture
  const asked = Object.keys(jsConfig).length > 0
  if (archOk && externalFiles.length === 0 && !asked) return undefined
  const out: Record<string, unknown> = { ...raw, architectures: [architecture] }
  if (externalFiles.length > 0 || asked) {
    const previous = (raw['transformers.js_config'] as Record<string, unknown> | undefined) ?? {}
    const formats: Record<string, number> = {}
    for (const f of externalFiles) formats[path.basename(f)] = 1
    out['transformers.js_config'] = { ...previous, ...jsConfig, ...(externalFiles.length > 0 ? { use_external_data_format: formats } : {}) }
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

/** What the folder holds besides the models: files copied from the checkpoint, second names, files made for it. */
export interface FolderFiles {
  copied: string[]
  aliases: Alias[]
  generated: string[]
}

/**
 * Everything but the models, written into `dir` once the models (`models`, folder-relative paths;
 * those in `externalFiles` with their weights beside them) are: the checkpoint's config and
 * tokenizer files, the q8 alias, config.json where transformers.js needs another, and tokenizer
 * files made from spiece.model.
 */
export function layOutFolder(ckpt: Checkpoint, task: Task, dir: string, models: string[], externalFiles: string[], jsConfig: Record<string, unknown> = {}): FolderFiles {
  const copied = copyCheckpointFiles(ckpt, dir)
  const aliases = layoutForTransformersJs(ckpt, task, dir, models, externalFiles, copied, jsConfig)
  const generated = writeTokenizerFiles(dir, ckpt.dir, ckpt.config.maxPositionEmbeddings)
  return { copied, aliases, generated }
}

/** Files copied from the checkpoint folder next to the ONNX models when they exist. */
export const COPIED_FILES = ['config.json', 'spiece.model', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']

/** The q8 alias and, where needed, config.json. */
function layoutForTransformersJs(ckpt: Checkpoint, task: Task, dir: string, models: string[], externalFiles: string[], copied: string[], jsConfig: Record<string, unknown>): Alias[] {
  const aliases = writeAliases(dir, models)
  const config = configForFolder(ckpt.config.raw, task, externalFiles, jsConfig)
  if (config) {
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n')
    if (!copied.includes('config.json')) copied.push('config.json')
  }
  return aliases
}

function copyCheckpointFiles(ckpt: Checkpoint, dest: string): string[] {
  const copied: string[] = []
  if (ckpt.format === 'tf-checkpoint') {
    // An original Google checkpoint has albert_config.json: write the Hugging Face config it maps to,
    // and Google's SentencePiece model under the name transformers loads.
    fs.writeFileSync(path.join(dest, 'config.json'), JSON.stringify(ckpt.config.raw, null, 2) + '\n')
    copied.push('config.json')
    const spm = fs.readdirSync(ckpt.dir).find((f) => f.endsWith('.model'))
    if (spm && !fs.existsSync(path.join(ckpt.dir, 'spiece.model'))) {
      fs.copyFileSync(path.join(ckpt.dir, spm), path.join(dest, 'spiece.model'))
      copied.push('spiece.model')
    }
  }
  copied.push(...copyFolderFiles(ckpt.dir, dest))
  return copied
}

/** COPIED_FILES that sit in `source`, copied into `dest` (`optimize --target`: those beside the input ONNX). Returns their names. */
export function copyFolderFiles(source: string, dest: string): string[] {
  const copied: string[] = []
  for (const name of COPIED_FILES) {
    const src = path.join(source, name)
    if (!fs.statSync(src, { throwIfNoEntry: false })?.isFile()) continue
    fs.copyFileSync(src, path.join(dest, name))
    copied.push(name)
  }
  return copied
}

/** The files under `dir`, as relative paths with `/` (report.json's `written`, the folder's mark). */
export function filesIn(dir: string, rel = ''): string[] {
  const files: string[] = []
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const name = rel ? `${rel}/${e.name}` : e.name
    if (e.isDirectory()) files.push(...filesIn(dir, name))
    else files.push(name)
  }
  return files
}

/**
 * The folder's last file, report.json: `body` and `written`, every file in the folder (report.json
 * included) as relative paths with `/`: with `albertkit`, the mark `--force` looks for (util/mark.ts).
 */
export function writeFolderReport<T extends object>(dir: string, body: T): T & { written: string[] } {
  const report = { ...body, written: [...filesIn(dir), 'report.json'].sort() }
  fs.writeFileSync(path.join(dir, 'report.json'), JSON.stringify(report, null, 2) + '\n')
  return report
}

/**
 * SQuAD JSON (v1.1, and v2.0 with unanswerable questions). A SQuAD file is one JSON document, so
 * unlike the line formats it is read whole: at most EVAL_LIMITS.squadFileBytes (256 MiB; SQuAD
 * v2.0's train set is 42 MB), strict UTF-8, then checked field by field with the JSON path of each
 * problem. Every answer must sit in its context at answer_start (SQuAD counts characters, that is
 * code points; a context with characters beyond the BMP is mapped to JavaScript's UTF-16 indices).
 */
import { fail } from '../util/errors.js'
import { printable } from '../util/printable.js'
import { EVAL_LIMITS } from './limits.js'
import { firstBadUtf8, jsonWhere, openChecked } from './lines.js'

export interface SquadQuestion {
  id: string
  question: string
  /** gold answer texts (possibly none: unanswerable) */
  answers: string[]
  /** where it is in the file: data[i].paragraphs[j].qas[k] */
  where: string
}

export interface SquadParagraph {
  context: string
  where: string
  questions: SquadQuestion[]
}

export interface SquadFile {
  file: string
  size: number
  /** 2 when the file says version 2 or any question has is_impossible */
  version: 1 | 2
  paragraphs: SquadParagraph[]
  questions: number
}

type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A code-point index of `context` as a UTF-16 index (the same unless the context has characters beyond the BMP). */
function utf16Index(context: string, codePoint: number): number {
  if (!/[\ud800-\udfff]/.test(context)) return codePoint
  let i = 0
  for (let cp = 0; cp < codePoint && i < context.length; cp++) i += context.codePointAt(i)! > 0xffff ? 2 : 1
  return i
}

export async function readSquad(file: string): Promise<SquadFile> {
  const { handle, size } = await openChecked(file, EVAL_LIMITS.squadFileBytes, 'a SQuAD JSON file (read whole)')
  let bytes: Buffer
  try {
    bytes = await handle.readFile()
  } finally {
    await handle.close()
  }
  if (bytes.length === 0) fail(file, 'empty file: no question')
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    const i = firstBadUtf8(bytes)
    fail(file, `not UTF-8 (byte 0x${bytes[i]!.toString(16).toUpperCase().padStart(2, '0')} at byte ${i + 1})`)
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    fail(file, `not valid JSON${jsonWhere(text, e, true)}`)
  }
  function problem(where: string, what: string): never {
    fail(file, `${where}: ${what}`)
  }
  if (!isObject(doc)) fail(file, 'expected a JSON object with a "data" list (SQuAD)')
  const data: unknown = doc.data
  if (!Array.isArray(data)) fail(file, 'no "data" list (SQuAD: data[].paragraphs[].qas[])')
  let version: 1 | 2 = typeof doc.version === 'string' && /^v?2(\.|$)/.test(doc.version) ? 2 : 1
  const paragraphs: SquadParagraph[] = []
  const ids = new Map<string, string>()
  const outside: string[] = []
  let questions = 0
  for (const [a, article] of (data as unknown[]).entries()) {
    const aw = `data[${a}]`
    if (!isObject(article) || !Array.isArray(article.paragraphs)) problem(aw, 'no "paragraphs" list')
    for (const [p, para] of (article.paragraphs as unknown[]).entries()) {
      const pw = `${aw}.paragraphs[${p}]`
      if (!isObject(para)) problem(pw, 'not an object')
      const context = para.context
      if (typeof context !== 'string') problem(pw, 'no "context" (a string)')
      if (!Array.isArray(para.qas)) problem(pw, 'no "qas" list')
      const qs: SquadQuestion[] = []
      for (const [q, qa] of (para.qas as unknown[]).entries()) {
        const qw = `${pw}.qas[${q}]`
        if (!isObject(qa)) problem(qw, 'not an object')
        if (typeof qa.id !== 'string' && typeof qa.id !== 'number') problem(qw, 'no "id"')
        const id = String(qa.id)
        const question = qa.question
        if (typeof question !== 'string' || question.trim() === '') problem(qw, 'no "question" (a non-empty string)')
        const twice = ids.get(id)
        if (twice !== undefined) problem(qw, `question id "${printable(id, 80)}" is also the id of ${twice}`)
        ids.set(id, qw)
        if (qa.is_impossible !== undefined) {
          if (typeof qa.is_impossible !== 'boolean') problem(qw, '"is_impossible" must be true or false')
          version = 2
        }
        if (!Array.isArray(qa.answers)) problem(qw, 'no "answers" list')
        const answers: string[] = []
        for (const [k, ans] of (qa.answers as unknown[]).entries()) {
          const kw = `${qw}.answers[${k}]`
          if (!isObject(ans) || typeof ans.text !== 'string') problem(kw, 'no "text" (a string)')
          const text = ans.text as string
          const start = ans.answer_start
          if (typeof start !== 'number' || !Number.isSafeInteger(start)) problem(kw, 'no "answer_start" (an integer)')
          answers.push(text)
          const why = outsideContext(context, text, start)
          if (why) outside.push(`question "${printable(id, 80)}" (${qw}): ${why}`)
        }
        qs.push({ id, question, answers, where: qw })
        if (++questions > EVAL_LIMITS.examples) fail(file, `has more than ${EVAL_LIMITS.examples} questions, the most one evaluation scores`)
      }
      paragraphs.push({ context, where: pw, questions: qs })
    }
  }
  if (outside.length === 1) fail(file, `an answer outside its context: ${outside[0]}`)
  if (outside.length > 1) fail(file, `${outside.length} answers outside their context; the first: ${outside[0]}`)
  if (questions === 0) fail(file, 'no question (data[].paragraphs[].qas[] is empty)')
  return { file, size, version, paragraphs, questions }
}

/** Why an answer is not at answer_start in its context, or undefined. */
function outsideContext(context: string, answer: string, start: number): string | undefined {
  const cps = /[\ud800-\udfff]/.test(context) ? [...context].length : context.length
  if (start < 0) return `answer_start ${start} is negative`
  if (start >= cps && answer !== '') return `answer_start ${start} is past the context's end (${cps} characters)`
  const s = utf16Index(context, start)
  if (context.slice(s, s + answer.length) === answer) return undefined
  const found = context.indexOf(answer)
  const shown = `"${printable(answer, 60)}"`
  return found < 0 ? `${shown} is not at answer_start ${start}, nor anywhere in the context` : `${shown} is not at answer_start ${start} (it is at ${[...context.slice(0, found)].length})`
}

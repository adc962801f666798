/**
 * Reading input files (weights, models, tokenizers, small JSON): open with a one-line error, read
 * exact byte ranges (a short read is a truncated file), never allocate more than the file holds,
 * and check a JSON file's size and nesting before JSON.parse sees it.
 */
import fs from 'node:fs'
import { constants as bufferConstants } from 'node:buffer'
import { describe, fail } from './errors.js'
import { printable } from './printable.js'

/** `fs.statSync(file)`, or a one-line error naming `file`: `problem` words the error code (ENOENT, EACCES, …). */
export function statOrFail(file: string, problem: (code: string) => string): fs.Stats {
  try {
    return fs.statSync(file)
  } catch (e) {
    fail(file, problem((e as NodeJS.ErrnoException).code ?? describe(e)))
  }
}

/** Open `file` for reading, run `use(fd, size)`, close. */
export function withFile<T>(file: string, use: (fd: number, size: number) => T): T {
  let fd: number
  try {
    fd = fs.openSync(file, 'r')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    fail(file, code === 'ENOENT' ? 'not found' : `cannot open: ${code ?? String(e)}`)
  }
  try {
    return use(fd, fs.fstatSync(fd).size)
  } finally {
    fs.closeSync(fd)
  }
}

/** Fill `buf` from byte `position` of the file; running out of file is a truncation error. */
export function readExactly(fd: number, buf: Uint8Array, position: number, file: string, what = ''): void {
  for (let off = 0; off < buf.byteLength; ) {
    const got = fs.readSync(fd, buf, off, Math.min(buf.byteLength - off, 1 << 30), position + off)
    if (got === 0) fail(file, `${what ? `${what}: ` : ''}truncated: ended after ${position + off} bytes`)
    off += got
  }
}

/** The whole file in one buffer, its size checked first. */
export function readWholeFile(file: string): Buffer {
  return withFile(file, (fd, size) => {
    if (size === 0) fail(file, 'empty file')
    if (size > bufferConstants.MAX_LENGTH) fail(file, `${size} bytes is more than one buffer can hold (${bufferConstants.MAX_LENGTH}); shard the checkpoint`)
    const buf = Buffer.allocUnsafe(size)
    readExactly(fd, buf, 0, file)
    return buf
  })
}

/** What a small JSON file (a config, a shard index) may hold, checked before JSON.parse sees it. */
export interface JsonLimits {
  /** what the file is, for messages: 'a config.json' */
  what: string
  maxBytes: number
  /** brackets nested deeper than this are refused */
  maxDepth: number
  /** objects and lists in all (parsing a million empty ones takes seconds and hundreds of MB) */
  maxContainers: number
}

/**
 * A small JSON file: its size checked before reading, its nesting and number of objects and
 * lists before parsing, so neither a huge file nor brackets nested or repeated a million times
 * reach JSON.parse.
 */
export function readJsonFile(file: string, limits: JsonLimits): unknown {
  const text = withFile(file, (fd, size) => {
    if (size > limits.maxBytes) fail(file, `${size} bytes, over the ${limits.maxBytes}-byte limit for ${limits.what}`)
    const buf = Buffer.allocUnsafe(size)
    readExactly(fd, buf, 0, file)
    return buf.toString('utf8')
  })
  const problem = jsonShapeProblem(text, limits.maxDepth, limits.maxContainers)
  if (problem !== undefined) fail(file, `not valid JSON for ${limits.what}: ${problem}`)
  try {
    return JSON.parse(text)
  } catch (e) {
    fail(file, `not valid JSON (${printable((e as Error).message)})`)
  }
}

/**
 * Scan JSON `text` linearly, strings skipped, and call `open` at each `{` or `[` with its character
 * code, the depth it opens (1 for the outermost) and its index; the first value `open` returns ends
 * the scan and is returned.
 */
export function scanJsonBrackets<T>(text: string, open: (bracket: number, depth: number, at: number) => T | undefined): T | undefined {
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      // a string: skip to its closing quote
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++
    } else if (c === 0x7b || c === 0x5b) {
      const found = open(c, ++depth, i)
      if (found !== undefined) return found
    } else if (c === 0x7d || c === 0x5d) depth--
  }
  return undefined
}

/** Where JSON `text` nests deeper than `maxDepth` or opens more than `maxContainers` brackets (strings skipped), if it does. */
export function jsonShapeProblem(text: string, maxDepth: number, maxContainers: number): string | undefined {
  let containers = 0
  return scanJsonBrackets(text, (_, depth, i) => {
    if (depth > maxDepth) return `nested deeper than ${maxDepth} levels at character ${i}`
    if (++containers > maxContainers) return `more than ${maxContainers} objects and lists (at character ${i})`
    return undefined
  })
}

/**
 * A text file as numbered lines, streamed: read 1 MiB at a time into one reused buffer, each line
 * checked against a byte limit before it is kept and decoded as strict UTF-8 (a bad byte is an
 * error naming the line). Memory stays at the chunk plus the longest line, whatever the file's size.
 */
import fs from 'node:fs'
import { UserError, fail } from '../util/errors.js'

const CHUNK = 1 << 20

export interface Line {
  /** 1-based */
  number: number
  /** without its line break (LF or CRLF) and, on line 1, without a byte-order mark */
  text: string
}

export interface LineReader {
  file: string
  /** the file's size in bytes */
  size: number
  /** bytes read so far (for a progress bar over the file) */
  bytesRead(): number
  lines(): AsyncGenerator<Line>
  /** close the file without reading it (lines() closes it when it ends, however it ends) */
  close(): Promise<void>
}

/** Open a regular file for reading, its size checked: the ways opening it can fail, each one line naming it. */
export async function openChecked(file: string, maxBytes: number, what: string): Promise<{ handle: fs.promises.FileHandle; size: number }> {
  let handle: fs.promises.FileHandle
  try {
    handle = await fs.promises.open(file, 'r')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    fail(file, code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder, not a file' : `cannot read: ${code ?? String(e)}`)
  }
  try {
    const stat = await handle.stat()
    if (stat.isDirectory()) fail(file, 'is a folder, not a file')
    // a FIFO or a device (/dev/zero) would never end
    if (!stat.isFile()) fail(file, 'not a regular file')
    if (stat.size > maxBytes) fail(file, `is ${stat.size} bytes, more than the ${maxBytes} albertkit reads from ${what}`)
    return { handle, size: stat.size }
  } catch (e) {
    await handle.close()
    throw e
  }
}

/** Index of the first byte that breaks UTF-8 in `bytes` (-1 when there is none). */
export function firstBadUtf8(bytes: Uint8Array): number {
  let i = 0
  while (i < bytes.length) {
    const b = bytes[i]!
    if (b < 0x80) {
      i++
      continue
    }
    let need: number
    let min: number
    if (b >= 0xc2 && b <= 0xdf) (need = 1), (min = 0x80)
    else if (b >= 0xe0 && b <= 0xef) (need = 2), (min = 0x800)
    else if (b >= 0xf0 && b <= 0xf4) (need = 3), (min = 0x10000)
    else return i
    let cp = b & (0x3f >> need)
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k]
      if (c === undefined || (c & 0xc0) !== 0x80) return i
      cp = (cp << 6) | (c & 0x3f)
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i
    i += need + 1
  }
  return -1
}

/**
 * Where JSON.parse stopped, from V8's message: ` (line 2, column 7)` in a document, ` (column 7)`
 * in one line, that it ends too early, or nothing.
 */
export function jsonWhere(text: string, e: unknown, lines: boolean): string {
  const early = lines ? ' (the file ends before the document is complete)' : ' (the line ends before the value is complete)'
  const message = e instanceof Error ? e.message : String(e)
  const pos = /position (\d+)/.exec(message)
  if (pos) {
    const p = Number(pos[1])
    if (p >= text.trimEnd().length) return early
    const before = text.slice(0, p)
    const column = p - before.lastIndexOf('\n')
    return lines ? ` (line ${before.split('\n').length}, column ${column})` : ` (column ${column})`
  }
  if (/end of (JSON )?input|Unterminated/i.test(message)) return early
  return ''
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function decodeLine(file: string, number: number, bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes)
  } catch {
    const at = Math.max(0, firstBadUtf8(bytes))
    const byte = bytes[at] ?? 0
    fail(file, `line ${number}: not UTF-8 (byte 0x${byte.toString(16).toUpperCase().padStart(2, '0')} at byte ${at + 1} of the line)`)
  }
}

/** A streamed reader of `file`'s lines; opening checks it is a regular file of at most `maxFileBytes`. */
export async function openLines(file: string, opts: { maxLineBytes: number; maxFileBytes: number }): Promise<LineReader> {
  const { handle, size } = await openChecked(file, opts.maxFileBytes, 'a file it streams')
  let read = 0
  let started = false
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    await handle.close()
  }
  async function* lines(): AsyncGenerator<Line> {
    if (started) throw new Error('lines() can be iterated once')
    started = true
    const buf = Buffer.allocUnsafe(CHUNK)
    const parts: Buffer[] = []
    let partBytes = 0
    let number = 1
    const tooLong = () => new UserError(`${file}: line ${number}: longer than the ${opts.maxLineBytes} bytes albertkit reads in one line`)
    const finish = (last: Uint8Array): Line => {
      let bytes: Uint8Array = last
      if (parts.length > 0) {
        parts.push(Buffer.from(last))
        bytes = Buffer.concat(parts)
        parts.length = 0
        partBytes = 0
      }
      let end = bytes.length
      if (end > 0 && bytes[end - 1] === 0x0d) end--
      let text = decodeLine(file, number, bytes.subarray(0, end))
      if (number === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1)
      return { number: number++, text }
    }
    try {
      for (;;) {
        const { bytesRead } = await handle.read(buf, 0, CHUNK, null)
        if (bytesRead === 0) break
        read += bytesRead
        // a file that grows while it is read stops at the same bound
        if (read > opts.maxFileBytes) fail(file, `grew past the ${opts.maxFileBytes} bytes albertkit reads from a file it streams`)
        const chunk = buf.subarray(0, bytesRead)
        let start = 0
        for (;;) {
          const nl = chunk.indexOf(0x0a, start)
          if (nl < 0) break
          if (partBytes + (nl - start) > opts.maxLineBytes) throw tooLong()
          yield finish(chunk.subarray(start, nl))
          start = nl + 1
        }
        if (start < bytesRead) {
          partBytes += bytesRead - start
          if (partBytes > opts.maxLineBytes) throw tooLong()
          parts.push(Buffer.from(chunk.subarray(start)))
        }
      }
      if (partBytes > 0) yield finish(new Uint8Array(0))
    } finally {
      await close()
    }
  }
  return { file, size, bytesRead: () => read, lines, close }
}

/**
 * Reading weight files: open with a one-line error, read exact byte ranges (a short read is a
 * truncated file), and never allocate more than the file holds.
 */
import fs from 'node:fs'
import { constants as bufferConstants } from 'node:buffer'
import { fail } from '../util/errors.js'

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

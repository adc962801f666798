/** Reading and writing ONNX files, external data included. */
import fs from 'node:fs'
import path from 'node:path'
import type { Model, Value } from '../ir/graph.js'
import { fail, describe } from '../util/errors.js'
import { printable } from '../util/printable.js'
import { readExactly } from '../util/read.js'
import { writeFilesAtomic, writePiecesAtomic } from '../util/atomic.js'
import { DecodeError, decodeModel, type ExternalRef } from './decode.js'
import { encodeModel, type ExternalPlacement } from './encode.js'
import { concatPieces } from '../protobuf/wire.js'

/** protobuf cannot hold a message of 2 GiB or more. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1

/** A regular file opened for reading without blocking on a FIFO; its fd and size, or the reason it cannot be read. */
function openRegular(file: string): { fd: number; size: number } | { problem: string } {
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
  } catch (e) {
    return { problem: `cannot read: ${(e as NodeJS.ErrnoException).code ?? describe(e)}` }
  }
  const stat = fs.fstatSync(fd)
  if (!stat.isFile()) {
    fs.closeSync(fd)
    return { problem: 'not a regular file' }
  }
  return { fd, size: stat.size }
}

interface ExternalFile {
  fd: number
  size: number
  /** byte ranges already read, by "offset:length": tensors that share bytes share one copy */
  ranges: Map<string, Uint8Array>
  /** bytes read so far: never more than the file holds */
  read: number
}

/**
 * Load a model file; tensors stored in external files beside it are read range by range. An
 * external file must resolve (symlinks followed) to a regular file inside the model's folder, each
 * tensor's bytes must lie within its real size, and no more bytes are read from it than it holds
 * (tensors whose ranges overlap are refused, except exact repeats, which share one copy).
 */
export function readModelFile(file: string): Model {
  const opened = openRegular(file)
  if ('problem' in opened) fail(file, opened.problem)
  let bytes: Buffer
  try {
    if (opened.size > PROTOBUF_LIMIT) fail(file, `is ${opened.size} bytes, more than protobuf's 2 GiB limit for a model file`)
    bytes = Buffer.allocUnsafe(opened.size)
    readExactly(opened.fd, bytes, 0, file)
  } finally {
    fs.closeSync(opened.fd)
  }
  const dir = path.dirname(path.resolve(file))
  let realDir: string | undefined
  const files = new Map<string, ExternalFile>()
  const openExternal = (ref: ExternalRef): ExternalFile => {
    const shown = `tensor '${printable(ref.tensorName)}': external data '${printable(ref.location)}'`
    let real: string
    try {
      real = fs.realpathSync(path.join(dir, ref.location))
      realDir ??= fs.realpathSync(dir)
    } catch (e) {
      throw new DecodeError(`${shown} cannot be read: ${(e as NodeJS.ErrnoException).code ?? describe(e)}`)
    }
    const rel = path.relative(realDir, real)
    if (rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
      throw new DecodeError(`${shown} resolves to '${printable(real)}', outside the model's folder`)
    }
    const f = openRegular(real)
    if ('problem' in f) throw new DecodeError(`${shown} is ${f.problem === 'not a regular file' ? f.problem : `unreadable (${f.problem})`}`)
    return { ...f, ranges: new Map(), read: 0 }
  }
  const external = (ref: ExternalRef): Uint8Array => {
    if (path.isAbsolute(ref.location) || ref.location.split(/[\\/]/).includes('..')) {
      throw new DecodeError(`tensor '${printable(ref.tensorName)}' points outside the model's folder ('${printable(ref.location)}')`)
    }
    let f = files.get(ref.location)
    if (!f) {
      f = openExternal(ref)
      files.set(ref.location, f)
    }
    const length = ref.length ?? f.size - ref.offset
    if (ref.offset > f.size || length > f.size - ref.offset) {
      throw new DecodeError(`tensor '${printable(ref.tensorName)}' needs bytes ${ref.offset}..${ref.offset + length} of '${printable(ref.location)}', which has ${f.size}`)
    }
    const key = `${ref.offset}:${length}`
    let data = f.ranges.get(key)
    if (!data) {
      if (f.read + length > f.size) {
        throw new DecodeError(`tensor '${printable(ref.tensorName)}' overlaps other tensors in '${printable(ref.location)}': together they ask for more than its ${f.size} bytes`)
      }
      data = Buffer.allocUnsafe(length)
      readExactly(f.fd, data, ref.offset, path.join(dir, ref.location))
      f.read += length
      f.ranges.set(key, data)
    }
    return data
  }
  let model: Model
  try {
    model = decodeModel(bytes, { external })
  } catch (e) {
    if (e instanceof DecodeError || e instanceof RangeError) fail(file, e.message)
    throw e
  } finally {
    for (const f of files.values()) fs.closeSync(f.fd)
  }
  try {
    model.graph.toposort()
  } catch (e) {
    fail(file, `not a valid ONNX model: ${describe(e)}`)
  }
  return model
}

/** Encode a model in memory (for running it, or hashing it). */
export function modelBytes(model: Model): Uint8Array {
  return concatPieces(encodeModel(model))
}

export interface WriteOptions {
  /**
   * 'auto' (default): external data only when the model would pass protobuf's 2 GiB limit;
   * true: always (initializers of 1 KiB and more); false: never (fails past the limit).
   */
  externalData?: boolean | 'auto'
}

export interface WrittenModel {
  bytes: number
  externalFile?: string
  externalBytes?: number
}

/** Write a model atomically; external data, when used, goes to `<file>_data` beside it. */
export function writeModelFile(file: string, model: Model, opts: WriteOptions = {}): WrittenModel {
  const mode = opts.externalData ?? 'auto'
  if (mode !== true) {
    const pieces = encodeModel(model)
    const size = pieces.reduce((n, p) => n + p.byteLength, 0)
    if (size <= PROTOBUF_LIMIT) return { bytes: writePiecesAtomic(file, pieces) }
    if (mode === false) fail(file, `the model is ${size} bytes, past protobuf's 2 GiB limit; use external data`)
  }
  return writeWithExternalData(file, model)
}

function writeWithExternalData(file: string, model: Model): WrittenModel {
  const location = `${path.basename(file)}_data`
  const dataFile = path.join(path.dirname(file), location)
  const placements = new Map<Value, ExternalPlacement>()
  const dataPieces: Uint8Array[] = []
  let offset = 0
  const align = 4096
  const place = (v: Value): ExternalPlacement | undefined => {
    if (!v.const || v.const.byteLength < 1024 || v.const.strings) return undefined
    let p = placements.get(v)
    if (!p) {
      const pad = (align - (offset % align)) % align
      if (pad) dataPieces.push(new Uint8Array(pad))
      offset += pad
      p = { location, offset }
      placements.set(v, p)
      dataPieces.push(v.const.data)
      offset += v.const.byteLength
    }
    return p
  }
  const pieces = encodeModel(model, { placeExternal: place })
  // the data first, then the model that points to it: a reader never finds the model without its data
  const [, bytes] = writeFilesAtomic([
    { file: dataFile, pieces: dataPieces },
    { file, pieces },
  ])
  return { bytes: bytes!, externalFile: dataFile, externalBytes: offset }
}

/** Reading and writing ONNX files, external data included. */
import fs from 'node:fs'
import path from 'node:path'
import type { Model, Value } from '../ir/graph.js'
import { fail, describe } from '../util/errors.js'
import { writeFilesAtomic, writePiecesAtomic } from '../util/atomic.js'
import { DecodeError, decodeModel, type ExternalRef } from './decode.js'
import { encodeModel, type ExternalPlacement } from './encode.js'
import { concatPieces } from './wire.js'

/** protobuf cannot hold a message of 2 GiB or more. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1

/** Load a model file; tensors stored in external files beside it are read (each file once). */
export function readModelFile(file: string): Model {
  let bytes: Buffer
  try {
    bytes = fs.readFileSync(file)
  } catch (e) {
    fail(file, `cannot read: ${describe(e)}`)
  }
  const dir = path.dirname(path.resolve(file))
  const files = new Map<string, Buffer>()
  const external = (ref: ExternalRef): Uint8Array => {
    if (path.isAbsolute(ref.location) || ref.location.split(/[\\/]/).includes('..')) {
      throw new DecodeError(`tensor '${ref.tensorName}' points outside the model's folder ('${ref.location}')`)
    }
    let data = files.get(ref.location)
    if (!data) {
      const where = path.join(dir, ref.location)
      try {
        data = fs.readFileSync(where)
      } catch (e) {
        throw new DecodeError(`tensor '${ref.tensorName}': cannot read external data '${ref.location}': ${describe(e)}`)
      }
      files.set(ref.location, data)
    }
    const length = ref.length ?? data.byteLength - ref.offset
    if (ref.offset + length > data.byteLength) {
      throw new DecodeError(
        `tensor '${ref.tensorName}' needs bytes ${ref.offset}..${ref.offset + length} of '${ref.location}', which has ${data.byteLength}`,
      )
    }
    return data.subarray(ref.offset, ref.offset + length)
  }
  let model: Model
  try {
    model = decodeModel(bytes, { external })
  } catch (e) {
    if (e instanceof DecodeError || e instanceof RangeError) fail(file, e.message)
    throw e
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

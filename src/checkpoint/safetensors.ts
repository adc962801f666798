/**
 * A strict safetensors reader. The format: 8 bytes little-endian header length N, N bytes of JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}), then the data
 * section. Every size a file states is checked against the file before anything is allocated,
 * tensors must tile the data section exactly, and every error names the file and the tensor
 * (escaped: names and dtypes are the file's text). The header's nesting is checked before it is
 * parsed: brackets nested a million deep never reach JSON.parse.
 */
import { DataType, byteLengthOf } from '../ir/dtype.js'
import { Tensor, elementCount } from '../ir/tensor.js'
import { fail } from '../util/errors.js'
import { printable } from '../util/printable.js'
import { MAX_RANK } from '../ir/tensor.js'
import { readExactly, scanJsonBrackets, withFile } from '../util/read.js'

/** Largest header accepted, as the reference implementation does. */
export const MAX_HEADER_BYTES = 100_000_000

export const SAFETENSORS_DTYPES: Record<string, DataType> = {
  F64: DataType.DOUBLE,
  F32: DataType.FLOAT,
  F16: DataType.FLOAT16,
  BF16: DataType.BFLOAT16,
  I64: DataType.INT64,
  I32: DataType.INT32,
  I16: DataType.INT16,
  I8: DataType.INT8,
  U64: DataType.UINT64,
  U32: DataType.UINT32,
  U16: DataType.UINT16,
  U8: DataType.UINT8,
  BOOL: DataType.BOOL,
  F8_E4M3: DataType.FLOAT8E4M3FN,
  F8_E5M2: DataType.FLOAT8E5M2,
}

export interface SafetensorsFile {
  file: string
  tensors: Map<string, Tensor>
  metadata: Record<string, string>
}

interface Entry {
  name: string
  dtype: DataType
  shape: number[]
  begin: number
  end: number
}

/** Read and validate a whole .safetensors file. The data section is read once; tensors are views of it. */
export function readSafetensors(file: string): SafetensorsFile {
  return withFile(file, (fd, size) => {
    if (size < 8) fail(file, `truncated: ${size} bytes, too short for a safetensors header`)
    const lenBuf = Buffer.alloc(8)
    readExactly(fd, lenBuf, 0, file)
    const headerLen = lenBuf.readBigUInt64LE(0)
    if (headerLen > BigInt(MAX_HEADER_BYTES)) {
      fail(file, `header claims ${headerLen} bytes, over the ${MAX_HEADER_BYTES}-byte limit`)
    }
    const n = Number(headerLen)
    if (8 + n > size) fail(file, `truncated: header claims ${n} bytes but the file has ${size - 8} after the length field`)
    const headerBuf = Buffer.alloc(n)
    readExactly(fd, headerBuf, 8, file)
    const dataLen = size - 8 - n
    const { entries, metadata } = parseHeader(headerBuf, file, dataLen)
    const data = Buffer.allocUnsafe(dataLen)
    readExactly(fd, data, 8 + n, file)
    const tensors = new Map<string, Tensor>()
    for (const e of entries) tensors.set(e.name, new Tensor(e.dtype, e.shape, data.subarray(e.begin, e.end)))
    return { file, tensors, metadata }
  })
}

/** Validate the JSON header against the data section's length; entries come back sorted by offset. */
export function parseHeader(headerBuf: Uint8Array, file: string, dataLen: number): { entries: Entry[]; metadata: Record<string, string> } {
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBuf)
  } catch {
    fail(file, 'header is not valid UTF-8')
  }
  if (!text.trimStart().startsWith('{')) fail(file, 'header is not a JSON object')
  const deep = tooDeep(text)
  if (deep !== undefined) fail(file, `header nests deeper than {name: {dtype, shape: [...], data_offsets: [...]}} at character ${deep}`)
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    fail(file, `header is not valid JSON (${printable((e as Error).message)})`)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(file, 'header is not a JSON object')
  const dup = firstDuplicateKey(text)
  if (dup !== undefined) fail(file, `tensor '${printable(dup)}' appears twice in the header`)

  const metadata: Record<string, string> = {}
  const entries: Entry[] = []
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(file, '__metadata__ is not an object')
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(file, `__metadata__ value '${printable(k)}' is not a string`)
        metadata[k] = v
      }
      continue
    }
    entries.push(parseEntry(name, raw, file))
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end)
  let at = 0
  for (const e of entries) {
    if (e.begin < at) fail(file, `tensor '${printable(e.name)}' overlaps the tensor before it (starts at ${e.begin}, previous ends at ${at})`)
    if (e.begin > at) fail(file, `tensor '${printable(e.name)}' starts at ${e.begin}, leaving a gap after byte ${at}`)
    if (e.end > dataLen) fail(file, `tensor '${printable(e.name)}' ends at byte ${e.end}, past the data section's ${dataLen} bytes (truncated file?)`)
    at = e.end
  }
  if (at !== dataLen) fail(file, `data section has ${dataLen} bytes but the tensors cover ${at}`)
  return { entries, metadata }
}

function parseEntry(name: string, raw: unknown, file: string): Entry {
  const where = `tensor '${printable(name)}'`
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(file, `${where}: entry is not an object`)
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>
  if (typeof dtype !== 'string') fail(file, `${where}: no dtype`)
  const dt = SAFETENSORS_DTYPES[dtype]
  if (dt === undefined) fail(file, `${where}: unknown dtype '${printable(dtype, 40)}'`)
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(file, `${where}: shape is not a list of non-negative integers`)
  }
  if (shape.length > MAX_RANK) fail(file, `${where}: shape has ${shape.length} dimensions, more than ${MAX_RANK}`)
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    fail(file, `${where}: data_offsets is not [begin, end]`)
  }
  const [begin, end] = offsets as [number, number]
  if (end < begin) fail(file, `${where}: data_offsets end ${end} is before begin ${begin}`)
  const count = elementCount(shape as number[])
  if (!Number.isSafeInteger(count)) fail(file, `${where}: shape [${shape.join(', ')}] is absurdly large`)
  const want = byteLengthOf(dt, count)
  if (end - begin !== want) {
    fail(file, `${where}: ${dtype}[${shape.join(', ')}] needs ${want} bytes but data_offsets span ${end - begin}`)
  }
  return { name, dtype: dt, shape: shape as number[], begin, end }
}

/**
 * Where the header first nests deeper than a safetensors header can: objects at levels 1 and 2,
 * lists (shape, data_offsets) at level 3, nothing below. A linear scan; strings are skipped.
 */
function tooDeep(text: string): number | undefined {
  return scanJsonBrackets(text, (bracket, depth, i) => (depth > 3 || (depth === 3 && bracket === 0x7b) ? i : undefined))
}

/**
 * The first key that appears twice at the top level of a JSON object text (JSON.parse keeps the
 * last one silently). The text has already parsed as JSON, so the scan can be simple.
 */
export function firstDuplicateKey(text: string): string | undefined {
  const seen = new Set<string>()
  let depth = 0
  let expectKey = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '"') {
      let j = i + 1
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string
        if (seen.has(key)) return key
        seen.add(key)
        expectKey = false
      }
      i = j
    } else if (c === '{' || c === '[') {
      depth++
      if (depth === 1) expectKey = true
    } else if (c === '}' || c === ']') {
      depth--
    } else if (c === ',' && depth === 1) {
      expectKey = true
    }
  }
  return undefined
}

/** Write a safetensors file (fixtures, tests, tools). Tensors are laid out in the given order. */
export function encodeSafetensors(tensors: Map<string, Tensor>, metadata?: Record<string, string>): Uint8Array[] {
  const names: Record<DataType, string> = Object.fromEntries(Object.entries(SAFETENSORS_DTYPES).map(([k, v]) => [v, k])) as Record<DataType, string>
  const header: Record<string, unknown> = {}
  if (metadata) header.__metadata__ = metadata
  let offset = 0
  for (const [name, t] of tensors) {
    header[name] = { dtype: names[t.dtype], shape: t.dims, data_offsets: [offset, offset + t.byteLength] }
    offset += t.byteLength
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8)
  const head = Buffer.alloc(8 + Buffer.byteLength(json))
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0)
  head.write(json, 8)
  return [head, ...[...tensors.values()].map((t) => t.data)]
}

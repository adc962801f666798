/**
 * A small TensorFlow tensor-bundle writer for tests: tables (LevelDB SSTable layout, uncompressed
 * unless asked, masked CRC-32C trailers), BundleHeaderProto / BundleEntryProto, and a helper that
 * rewrites a checkpoint's index with edited entries, so tests can craft broken or unusual bundles.
 */
import fs from 'node:fs'
import { ProtoWriter, WIRE_I32, concatPieces } from '../../src/protobuf/wire.js'
import { crc32c, maskCrc } from '../../src/util/crc32c.js'
import { TABLE_MAGIC, decodeHandle, parseBlock, readFooter, readTable, type BlockHandle } from '../../src/checkpoint/tf-table.js'
import { parseEntry, type BundleEntry } from '../../src/checkpoint/tf-checkpoint.js'

export interface RawEntry {
  key: Uint8Array
  value: Uint8Array
}

export interface TableOptions {
  /** Entries per data block (default: all in one). */
  blockEntries?: number
  /** Entries between restart points (TensorFlow: 16). */
  restartInterval?: number
  /** Compression type byte written in every block trailer (0 = none). */
  compression?: number
}

function varint(v: number): number[] {
  const out: number[] = []
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80)
    v = Math.floor(v / 128)
  }
  out.push(v)
  return out
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(v >>> 0)
  return b
}

function sharedPrefix(a: Uint8Array, b: Uint8Array): number {
  let n = 0
  while (n < a.length && n < b.length && a[n] === b[n]) n++
  return n
}

/** One block: prefix-compressed entries, restart offsets, their count. */
export function encodeBlock(entries: RawEntry[], restartInterval = 16): Buffer {
  const parts: Buffer[] = []
  const restarts: number[] = []
  let size = 0
  let prev: Uint8Array = new Uint8Array(0)
  entries.forEach((e, i) => {
    const restart = i % restartInterval === 0
    if (restart) restarts.push(size)
    const shared = restart ? 0 : sharedPrefix(prev, e.key)
    const part = Buffer.concat([Buffer.from([...varint(shared), ...varint(e.key.length - shared), ...varint(e.value.length)]), e.key.subarray(shared), e.value])
    parts.push(part)
    size += part.length
    prev = e.key
  })
  if (restarts.length === 0) restarts.push(0)
  return Buffer.concat([...parts, ...restarts.map(u32), u32(restarts.length)])
}

/** A block followed by its trailer: compression type and masked CRC-32C of both. */
export function withTrailer(contents: Buffer, compression = 0): Buffer {
  const type = Buffer.from([compression])
  return Buffer.concat([contents, type, u32(maskCrc(crc32c(type, crc32c(contents))))])
}

/** The 48-byte footer: two varint block handles, zero padding, magic. */
export function encodeFooter(metaindex: BlockHandle, index: BlockHandle): Buffer {
  const footer = Buffer.alloc(48)
  Buffer.from([...varint(metaindex.offset), ...varint(metaindex.size), ...varint(index.offset), ...varint(index.size)]).copy(footer)
  footer.writeBigUInt64LE(TABLE_MAGIC, 40)
  return footer
}

const handleBytes = (h: BlockHandle) => Uint8Array.from([...varint(h.offset), ...varint(h.size)])

/** A whole table file (entries written in the order given). */
export function encodeTable(entries: RawEntry[], opts: TableOptions = {}): Buffer {
  const { blockEntries = entries.length || 1, restartInterval = 16, compression = 0 } = opts
  const out: Buffer[] = []
  let offset = 0
  const writeBlock = (contents: Buffer): BlockHandle => {
    out.push(withTrailer(contents, compression))
    const handle = { offset, size: contents.length }
    offset += contents.length + 5
    return handle
  }
  const index: RawEntry[] = []
  for (let i = 0; i < entries.length; i += blockEntries) {
    const chunk = entries.slice(i, i + blockEntries)
    index.push({ key: chunk[chunk.length - 1]!.key, value: handleBytes(writeBlock(encodeBlock(chunk, restartInterval))) })
  }
  const meta = writeBlock(encodeBlock([], restartInterval))
  const idx = writeBlock(encodeBlock(index, 1))
  out.push(encodeFooter(meta, idx))
  return Buffer.concat(out)
}

/** Rewrite a table's index block (the last block before the footer) with edited data-block handles. */
export function rewriteIndexBlock(file: string, edit: (handles: (BlockHandle & { key: Uint8Array })[]) => (BlockHandle & { key: Uint8Array })[]): void {
  const bytes = fs.readFileSync(file)
  const { metaindex, index } = readFooter(file, bytes)
  const entries = parseBlock(file, bytes.subarray(index.offset, index.offset + index.size), 'index block')
  const handles = edit(entries.map((e) => ({ key: e.key, ...decodeHandle(file, e.value, 'index entry') })))
  const block = encodeBlock(handles.map((h) => ({ key: h.key, value: handleBytes(h) })), 1)
  fs.writeFileSync(file, Buffer.concat([bytes.subarray(0, index.offset), withTrailer(block), encodeFooter(metaindex, { offset: index.offset, size: block.length })]))
}

/** BundleHeaderProto. */
export function encodeHeader(numShards: number, endianness = 0, minConsumer = 0): Uint8Array {
  const w = new ProtoWriter()
  w.int64(1, numShards)
  if (endianness) w.int64(2, endianness)
  const v = new ProtoWriter()
  v.int64(1, 1)
  if (minConsumer) v.int64(2, minConsumer)
  w.message(3, v)
  return concatPieces(w.finish())
}

/** BundleEntryProto. */
export function encodeEntry(e: BundleEntry): Uint8Array {
  const w = new ProtoWriter()
  w.int64(1, e.tfDtype)
  const shape = new ProtoWriter()
  for (const d of e.shape) {
    const dim = new ProtoWriter()
    dim.int64(1, d)
    shape.message(2, dim)
  }
  w.message(2, shape)
  if (e.shardId) w.int64(3, e.shardId)
  if (e.offset) w.int64(4, e.offset)
  w.int64(5, e.size)
  w.tag(6, WIRE_I32)
  w.appendRaw(u32(e.crc32c))
  for (let i = 0; i < e.slices; i++) w.bytes(7, new Uint8Array(0))
  return concatPieces(w.finish())
}

/** A bundle index from a header and entries (sorted by name unless `sort` is false). */
export function encodeIndex(numShards: number, entries: BundleEntry[], opts: TableOptions & { header?: Uint8Array; sort?: boolean } = {}): Buffer {
  const sorted = opts.sort === false ? entries : [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)))
  const raw: RawEntry[] = [{ key: new Uint8Array(0), value: opts.header ?? encodeHeader(numShards) }]
  for (const e of sorted) raw.push({ key: Buffer.from(e.name), value: encodeEntry(e) })
  return encodeTable(raw, opts)
}

/** The header's shard count and the entries of an existing index. */
export function readIndexEntries(file: string): { numShards: number; entries: BundleEntry[] } {
  const table = readTable(file, fs.readFileSync(file))
  const header = table[0]!.value
  const numShards = header[0] === 0x08 ? header[1]! : 1
  return { numShards, entries: table.slice(1).map((t) => parseEntry(file, Buffer.from(t.key).toString('utf8'), t.value)) }
}

/** Rewrite an index with edited entries (the data shards stay as they are). */
export function rewriteIndex(file: string, edit: (entries: BundleEntry[]) => BundleEntry[], opts: TableOptions & { header?: Uint8Array } = {}): void {
  const { numShards, entries } = readIndexEntries(file)
  fs.writeFileSync(file, encodeIndex(numShards, edit(entries), opts))
}

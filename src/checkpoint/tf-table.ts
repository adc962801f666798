/**
 * A strict reader for TensorFlow's "table" files (LevelDB's SSTable format), which hold a
 * checkpoint's `.index`. Layout: data blocks of key/value entries, a metaindex block, an index
 * block whose entries point at the data blocks, and a 48-byte footer (two block handles, padding,
 * magic 0xdb4775248b80fb57). A block is its entries (prefix-compressed keys: shared length,
 * unshared length, value length as varints, then the unshared key bytes and the value), an array
 * of uint32 restart offsets and their count; each block is followed by a 1-byte compression type
 * and the masked CRC-32C of block + type. Every handle is checked against the file, every
 * checksum is verified, and every error is one line naming the file.
 *
 * Prefix compression lets each entry repeat a long key for a few bytes, so a small block could
 * expand into gigabytes of keys: the expanded keys of a whole table may take MAX_KEY_BYTES in all
 * (a checkpoint index's keys are variable names, a few kB together), checked entry by entry.
 */
import { ProtoReader, WireError } from '../protobuf/wire.js'
import { crc32c, maskCrc } from '../util/crc32c.js'
import { fail } from '../util/errors.js'
import { printable } from '../util/printable.js'

export const TABLE_MAGIC = 0xdb4775248b80fb57n
export const FOOTER_BYTES = 48
/** Compression type byte and masked CRC after every block. */
export const BLOCK_TRAILER_BYTES = 5
const COMPRESSION_NAMES: Record<number, string> = { 1: 'Snappy', 2: 'Zlib', 3: 'LZ4', 4: 'ZSTD' }
/** Bytes all of a table's keys may take once expanded. */
export const MAX_KEY_BYTES = 16 << 20

export interface BlockHandle {
  offset: number
  size: number
}

export interface TableEntry {
  key: Uint8Array
  value: Uint8Array
}

/** Every entry of a table, in key order (keys strictly increasing across the whole table). */
export function readTable(file: string, bytes: Uint8Array): TableEntry[] {
  const { metaindex, index } = readFooter(file, bytes)
  const dataEnd = bytes.byteLength - FOOTER_BYTES
  readBlock(file, bytes, metaindex, 'metaindex block', dataEnd) // checked, not used: TF writes no filters
  const indexEntries = parseBlock(file, readBlock(file, bytes, index, 'index block', dataEnd), 'index block')
  const entries: TableEntry[] = []
  const keyBudget = { left: MAX_KEY_BYTES }
  for (const [i, ie] of indexEntries.entries()) {
    const handle = decodeHandle(file, ie.value, `index entry ${i}`)
    if (handle.offset + handle.size + BLOCK_TRAILER_BYTES > index.offset) {
      fail(file, `index entry ${i} points at bytes ${handle.offset}..${handle.offset + handle.size}, not before the index block at ${index.offset}`)
    }
    const what = `data block ${i} (bytes ${handle.offset}..${handle.offset + handle.size})`
    for (const e of parseBlock(file, readBlock(file, bytes, handle, what, dataEnd), what, keyBudget)) {
      const prev = entries[entries.length - 1]
      if (prev && Buffer.compare(prev.key, e.key) >= 0) fail(file, `key ${showKey(e.key)} in ${what} is not after ${showKey(prev.key)}`)
      entries.push(e)
    }
  }
  return entries
}

/** The footer's two block handles, after checking its size and magic number. */
export function readFooter(file: string, bytes: Uint8Array): { metaindex: BlockHandle; index: BlockHandle } {
  if (bytes.byteLength < FOOTER_BYTES) fail(file, `truncated: ${bytes.byteLength} bytes, too short for a table footer (${FOOTER_BYTES})`)
  const at = bytes.byteLength - FOOTER_BYTES
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const magic = view.getBigUint64(bytes.byteLength - 8, true)
  if (magic !== TABLE_MAGIC) {
    fail(file, `not a TensorFlow table (magic 0x${magic.toString(16).padStart(16, '0')} at the end, expected 0x${TABLE_MAGIC.toString(16)}); truncated or not a checkpoint index?`)
  }
  const r = new ProtoReader(bytes, at, bytes.byteLength - 8)
  const metaindex = varintHandle(file, r, 'footer')
  const index = varintHandle(file, r, 'footer')
  return { metaindex, index }
}

/** A block's contents after checking its bounds, checksum and compression type. */
export function readBlock(file: string, bytes: Uint8Array, handle: BlockHandle, what: string, dataEnd: number): Uint8Array {
  const end = handle.offset + handle.size
  if (end + BLOCK_TRAILER_BYTES > dataEnd) {
    fail(file, `${what} at bytes ${handle.offset}..${end} (+${BLOCK_TRAILER_BYTES}-byte trailer) runs past the ${dataEnd} bytes before the footer (truncated or corrupt)`)
  }
  const contents = bytes.subarray(handle.offset, end)
  const type = bytes[end]!
  const stored = new DataView(bytes.buffer, bytes.byteOffset + end + 1, 4).getUint32(0, true)
  const actual = maskCrc(crc32c(bytes.subarray(end, end + 1), crc32c(contents)))
  if (stored !== actual) fail(file, `${what}: checksum mismatch (stored 0x${hex32(stored)}, computed 0x${hex32(actual)}); the file is corrupt`)
  if (type !== 0) {
    const name = COMPRESSION_NAMES[type]
    if (name) fail(file, `${what} is ${name}-compressed; TensorFlow writes checkpoint indexes uncompressed and albertkit reads only those`)
    fail(file, `${what} has unknown compression type ${type}`)
  }
  return contents
}

/** The entries of one block, keys expanded; restart points checked. */
export function parseBlock(file: string, block: Uint8Array, what: string, keyBudget = { left: MAX_KEY_BYTES }): TableEntry[] {
  if (block.byteLength < 4) fail(file, `${what}: ${block.byteLength} bytes, too short for a block`)
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength)
  const numRestarts = view.getUint32(block.byteLength - 4, true)
  if (numRestarts < 1 || numRestarts > (block.byteLength - 4) / 4) fail(file, `${what}: ${numRestarts} restart points do not fit its ${block.byteLength} bytes`)
  const restartsAt = block.byteLength - 4 - 4 * numRestarts
  const restarts = new Set<number>()
  for (let i = 0; i < numRestarts; i++) restarts.add(view.getUint32(restartsAt + 4 * i, true))
  const entries: TableEntry[] = []
  const starts = new Set<number>()
  let key: Uint8Array = new Uint8Array(0)
  const r = new ProtoReader(block, 0, restartsAt)
  while (!r.done) {
    const start = r.pos
    starts.add(start)
    const [shared, unshared, valueLen] = [blockVarint(file, r, what), blockVarint(file, r, what), blockVarint(file, r, what)]
    if (shared > key.byteLength) fail(file, `${what}: entry at byte ${start} shares ${shared} key bytes with a ${key.byteLength}-byte key`)
    if (restarts.has(start) && shared !== 0) fail(file, `${what}: entry at restart point ${start} shares key bytes`)
    if (r.pos + unshared + valueLen > restartsAt) fail(file, `${what}: entry at byte ${start} runs past the entries' ${restartsAt} bytes`)
    keyBudget.left -= shared + unshared
    if (keyBudget.left < 0) fail(file, `${what}: entry at byte ${start} expands the table's keys past ${MAX_KEY_BYTES} bytes in all (prefix-compressed keys repeating a ${shared}-byte prefix)`)
    const next = new Uint8Array(shared + unshared)
    next.set(key.subarray(0, shared))
    next.set(block.subarray(r.pos, r.pos + unshared), shared)
    key = next
    const value = block.subarray(r.pos + unshared, r.pos + unshared + valueLen)
    r.pos += unshared + valueLen
    entries.push({ key, value })
  }
  for (const off of restarts) {
    if (!starts.has(off) && !(entries.length === 0 && off === 0)) fail(file, `${what}: restart point ${off} is not the start of an entry`)
  }
  return entries
}

/** A block handle stored as a value (an index block entry). */
export function decodeHandle(file: string, value: Uint8Array, what: string): BlockHandle {
  const r = new ProtoReader(value)
  const handle = varintHandle(file, r, what)
  if (!r.done) fail(file, `${what}: ${value.byteLength - r.pos} stray bytes after the block handle`)
  return handle
}

function varintHandle(file: string, r: ProtoReader, what: string): BlockHandle {
  return { offset: blockVarint(file, r, what), size: blockVarint(file, r, what) }
}

function blockVarint(file: string, r: ProtoReader, what: string): number {
  try {
    return r.uint32()
  } catch (e) {
    if (e instanceof WireError) fail(file, `${what}: bad varint at byte ${r.pos} (${e.message})`)
    throw e
  }
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0')
}

/** A key for messages: its text, quoted, control characters escaped, length capped. */
export function showKey(key: Uint8Array): string {
  return `"${printable(Buffer.from(key.subarray(0, 400)).toString('utf8'))}"`
}

/**
 * A strict ZIP reader for the archives torch.save writes (and any other plain ZIP file held in
 * memory). It reads the central directory, never trusts a size or offset before checking it
 * against the buffer, and hands out entries by name only: names are Map keys, never paths, so
 * `../` in a name can reach nothing.
 *
 * Layout (PKWARE APPNOTE): local header + data for each entry, then the central directory, then
 * (zip64) the zip64 end record and its locator, then the end-of-central-directory record with an
 * optional comment of up to 65535 bytes. torch.save writes every entry STORED (method 0), sets
 * general-purpose bit 3 (sizes in a data descriptor after the data, zeros in the local header) and
 * always writes the zip64 records. Supported: methods 0 and 8 (deflate, inflated in memory with
 * node:zlib up to MAX_INFLATED_BYTES an entry), zip64 sizes and offsets. Refused: encryption,
 * multi-disk archives, duplicate names, entries that overlap each other or the central directory.
 *
 * Inflation budget: all the entries read from one archive may inflate to at most
 * INFLATE_SLACK_BYTES + INFLATE_RATIO × the compressed bytes of its deflated entries; an entry
 * whose declared size would pass it is refused before it is inflated, so a megabyte of deflated
 * zeros cannot become gigabytes. `checkInflation` checks a whole set of entries up front.
 *
 * CRC-32 is checked when an entry is read, except where the stored CRC is 0: torch.save writes 0
 * for every entry under `torch.serialization.set_crc32_options(False)` and torch.load accepts that.
 */
import zlib from 'node:zlib'
import { fail } from '../util/errors.js'
import { printable } from '../util/printable.js'

const EOCD_SIG = 0x06054b50
const EOCD_LEN = 22
const MAX_COMMENT = 0xffff
const ZIP64_LOCATOR_SIG = 0x07064b50
const ZIP64_LOCATOR_LEN = 20
const ZIP64_EOCD_SIG = 0x06064b50
const ZIP64_EOCD_LEN = 56
const CENTRAL_SIG = 0x02014b50
const CENTRAL_LEN = 46
const LOCAL_SIG = 0x04034b50
const LOCAL_LEN = 30
const ZIP64_EXTRA_ID = 0x0001
const U32_MAX = 0xffffffff
const U16_MAX = 0xffff
const FLAG_ENCRYPTED = 0x0001
const FLAG_STRONG_ENCRYPTION = 0x0040
const FLAG_DATA_DESCRIPTOR = 0x0008
const STORED = 0
const DEFLATED = 8

/** Largest entry inflated in memory (a deflated entry declares its size; bigger ones are refused). */
export const MAX_INFLATED_BYTES = 1 << 30
/** Inflation budget: this much, plus INFLATE_RATIO × the archive's deflated (compressed) bytes. */
export const INFLATE_SLACK_BYTES = 64 << 20
/** Weights deflate to 80–95% of their size; zeros 1000× smaller. 16× covers any real checkpoint. */
export const INFLATE_RATIO = 16

export interface ZipEntry {
  name: string
  method: number
  flags: number
  crc32: number
  compressedSize: number
  size: number
  /** Offset of the local header. */
  headerOffset: number
  /** Offset of the entry's (compressed) data, after the local header was checked. */
  dataOffset: number
}

export interface ZipArchive {
  file: string
  entries: Map<string, ZipEntry>
  /** Bytes all reads of deflated entries may inflate to, together. */
  inflateBudget: number
  /** An entry's bytes, CRC checked: a view of the buffer when stored, an inflated copy when deflated. */
  read(name: string): Uint8Array
  /** Refuse (before inflating anything) when reading all of `names` would pass the inflation budget. */
  checkInflation(names: readonly string[]): void
}

interface Directory {
  count: number
  offset: number
  size: number
  /** Where the central directory must end: the zip64 end record or the end record. */
  end: number
}

/** Open a ZIP archive held in `buf`; `file` names it in errors. */
export function readZip(file: string, buf: Buffer): ZipArchive {
  const dir = locateDirectory(file, buf, findEndRecord(file, buf))
  const list = readCentralDirectory(file, buf, dir)
  const entries = new Map<string, ZipEntry>()
  let deflatedBytes = 0
  for (const e of list) {
    if (entries.has(e.name)) fail(file, `ZIP entry '${printable(e.name)}' appears twice`)
    entries.set(e.name, e)
    if (e.method === DEFLATED) deflatedBytes += e.compressedSize
  }
  checkLocalHeaders(file, buf, list, dir.offset)
  const inflateBudget = INFLATE_SLACK_BYTES + INFLATE_RATIO * deflatedBytes
  const budgetText = `this archive's inflation budget of ${inflateBudget} bytes (${INFLATE_SLACK_BYTES} + ${INFLATE_RATIO} × its ${deflatedBytes} deflated bytes)`
  const inflated = new Set<string>()
  let spent = 0
  /** Bytes that inflating the not yet inflated deflated entries among `names` would add. */
  const cost = (names: Iterable<string>) => {
    let n = 0
    for (const name of new Set(names)) {
      const e = entries.get(name)
      if (e && e.method === DEFLATED && !inflated.has(name)) n += e.size
    }
    return n
  }
  return {
    file,
    entries,
    inflateBudget,
    read: (name) => {
      const more = cost([name])
      if (spent + more > inflateBudget) {
        fail(file, `ZIP entry '${printable(name)}' inflates to ${more} bytes, which with the ${spent} inflated before passes ${budgetText}`)
      }
      const bytes = readEntry(file, buf, entries, name)
      if (more > 0) {
        inflated.add(name)
        spent += more
      }
      return bytes
    },
    checkInflation: (names) => {
      const more = cost(names)
      if (spent + more > inflateBudget) {
        fail(file, `its deflated entries would inflate to ${spent + more} bytes in all, over ${budgetText}`)
      }
    },
  }
}

/** Whether `buf` starts like a ZIP archive (a local header, or the end record of an empty one). */
export function looksLikeZip(buf: Uint8Array): boolean {
  if (buf.byteLength < 4) return false
  const sig = Buffer.from(buf.buffer, buf.byteOffset, 4).readUInt32LE(0)
  return sig === LOCAL_SIG || sig === EOCD_SIG
}

/** The end-of-central-directory record: searched backwards through the last 64 KiB + 22 bytes. */
function findEndRecord(file: string, buf: Buffer): number {
  if (buf.length < EOCD_LEN) fail(file, `truncated: ${buf.length} bytes, too short for a ZIP archive`)
  const lowest = Math.max(0, buf.length - EOCD_LEN - MAX_COMMENT)
  for (let at = buf.length - EOCD_LEN; at >= lowest; at--) {
    // The comment must run exactly to the end of the file: that rules out a signature inside it.
    if (buf.readUInt32LE(at) === EOCD_SIG && at + EOCD_LEN + buf.readUInt16LE(at + 20) === buf.length) return at
  }
  fail(file, 'not a complete ZIP archive: no end-of-central-directory record at its end (truncated?)')
}

/** Where the central directory is, from the end record or, where present, the zip64 end record. */
function locateDirectory(file: string, buf: Buffer, eocd: number): Directory {
  const disk = buf.readUInt16LE(eocd + 4)
  const cdDisk = buf.readUInt16LE(eocd + 6)
  const onDisk = buf.readUInt16LE(eocd + 8)
  const count = buf.readUInt16LE(eocd + 10)
  const size = buf.readUInt32LE(eocd + 12)
  const offset = buf.readUInt32LE(eocd + 16)
  const locator = eocd - ZIP64_LOCATOR_LEN
  if (locator >= 0 && buf.readUInt32LE(locator) === ZIP64_LOCATOR_SIG) return readZip64End(file, buf, locator)
  if (count === U16_MAX || size === U32_MAX || offset === U32_MAX) {
    fail(file, 'ZIP end record defers to zip64 records, but there is no zip64 locator before it')
  }
  if (disk !== 0 || cdDisk !== 0 || onDisk !== count) fail(file, 'multi-disk ZIP archives are not supported')
  return { count, size, offset, end: eocd }
}

/** The zip64 locator (20 bytes) points at the zip64 end record (56 bytes + extensible data). */
function readZip64End(file: string, buf: Buffer, locator: number): Directory {
  const disk = buf.readUInt32LE(locator + 4)
  const at = u64(file, buf, locator + 8, 'zip64 end record offset')
  const disks = buf.readUInt32LE(locator + 16)
  if (disk !== 0 || disks > 1) fail(file, 'multi-disk ZIP archives are not supported')
  if (at + ZIP64_EOCD_LEN > locator) fail(file, `zip64 locator points at byte ${at}, leaving no room for the zip64 end record before byte ${locator}`)
  if (buf.readUInt32LE(at) !== ZIP64_EOCD_SIG) fail(file, `zip64 locator points at byte ${at}, where there is no zip64 end record`)
  const recordEnd = at + 12 + u64(file, buf, at + 4, 'zip64 end record size')
  if (recordEnd !== locator) fail(file, `zip64 end record at byte ${at} ends at ${recordEnd}, not at the locator (byte ${locator})`)
  if (buf.readUInt32LE(at + 16) !== 0 || buf.readUInt32LE(at + 20) !== 0) fail(file, 'multi-disk ZIP archives are not supported')
  const onDisk = u64(file, buf, at + 24, 'zip64 entry count')
  const count = u64(file, buf, at + 32, 'zip64 entry count')
  if (onDisk !== count) fail(file, 'multi-disk ZIP archives are not supported')
  const size = u64(file, buf, at + 40, 'central directory size')
  const offset = u64(file, buf, at + 48, 'central directory offset')
  return { count, size, offset, end: at }
}

/** Every central directory entry; the directory must fill exactly the bytes before the end records. */
function readCentralDirectory(file: string, buf: Buffer, dir: Directory): ZipEntry[] {
  if (dir.offset + dir.size !== dir.end) {
    fail(file, `central directory (${dir.size} bytes at byte ${dir.offset}) does not end where the end record starts (byte ${dir.end}): truncated or bad offsets`)
  }
  if (dir.count * CENTRAL_LEN > dir.size) fail(file, `central directory claims ${dir.count} entries in only ${dir.size} bytes`)
  const entries: ZipEntry[] = []
  let at = dir.offset
  for (let i = 0; i < dir.count; i++) {
    const { entry, next } = readCentralEntry(file, buf, at, dir.end)
    entries.push(entry)
    at = next
  }
  if (at !== dir.end) fail(file, `central directory has ${dir.end - at} bytes after its ${dir.count} entries`)
  return entries
}

function readCentralEntry(file: string, buf: Buffer, at: number, end: number): { entry: ZipEntry; next: number } {
  if (at + CENTRAL_LEN > end || buf.readUInt32LE(at) !== CENTRAL_SIG) fail(file, `central directory is damaged at byte ${at}`)
  const nameLen = buf.readUInt16LE(at + 28)
  const extraLen = buf.readUInt16LE(at + 30)
  const commentLen = buf.readUInt16LE(at + 32)
  const next = at + CENTRAL_LEN + nameLen + extraLen + commentLen
  if (next > end) fail(file, `central directory entry at byte ${at} runs past the directory`)
  const name = decodeName(file, buf.subarray(at + CENTRAL_LEN, at + CENTRAL_LEN + nameLen), at)
  const entry: ZipEntry = {
    name,
    flags: buf.readUInt16LE(at + 8),
    method: buf.readUInt16LE(at + 10),
    crc32: buf.readUInt32LE(at + 16),
    compressedSize: buf.readUInt32LE(at + 20),
    size: buf.readUInt32LE(at + 24),
    headerOffset: buf.readUInt32LE(at + 42),
    dataOffset: -1,
  }
  const disk = buf.readUInt16LE(at + 34)
  const extra = buf.subarray(at + CENTRAL_LEN + nameLen, at + CENTRAL_LEN + nameLen + extraLen)
  applyZip64Extra(file, entry, disk, extra)
  checkEntryKind(file, entry)
  return { entry, next }
}

function decodeName(file: string, bytes: Uint8Array, at: number): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    fail(file, `central directory entry at byte ${at} has a name that is not UTF-8`)
  }
}

/** Sizes and offset of 0xffffffff (disk 0xffff) are in the zip64 extra field (id 1), in that order. */
function applyZip64Extra(file: string, e: ZipEntry, disk: number, extra: Buffer): void {
  const where = `ZIP entry '${printable(e.name)}'`
  for (let p = 0; p + 4 <= extra.length; ) {
    const id = extra.readUInt16LE(p)
    const len = extra.readUInt16LE(p + 2)
    const end = p + 4 + len
    if (end > extra.length) fail(file, `${where}: extra field runs past its entry`)
    if (id === ZIP64_EXTRA_ID) {
      let q = p + 4
      const take = (what: string): number => {
        if (q + 8 > end) fail(file, `${where}: zip64 extra field is too short for its ${what}`)
        q += 8
        return u64(file, extra, q - 8, `${where}: zip64 ${what}`)
      }
      if (e.size === U32_MAX) e.size = take('size')
      if (e.compressedSize === U32_MAX) e.compressedSize = take('compressed size')
      if (e.headerOffset === U32_MAX) e.headerOffset = take('offset')
      if (disk === U16_MAX) disk = q + 4 <= end ? extra.readUInt32LE(q) : disk
    }
    p = end
  }
  if (e.size === U32_MAX || e.compressedSize === U32_MAX || e.headerOffset === U32_MAX) {
    fail(file, `${where}: sizes or offset defer to a zip64 extra field, but it has none`)
  }
  if (disk !== 0) fail(file, `${where}: on disk ${disk}; multi-disk ZIP archives are not supported`)
}

function checkEntryKind(file: string, e: ZipEntry): void {
  const where = `ZIP entry '${printable(e.name)}'`
  if (e.flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)) fail(file, `${where} is encrypted`)
  if (e.method !== STORED && e.method !== DEFLATED) fail(file, `${where} uses compression method ${e.method} (only stored and deflated entries are supported)`)
  if (e.method === STORED && e.compressedSize !== e.size) {
    fail(file, `${where} is stored but its compressed size ${e.compressedSize} differs from its size ${e.size}`)
  }
  if (e.method === DEFLATED && e.size > MAX_INFLATED_BYTES) {
    fail(file, `${where} is deflated to ${e.size} bytes, over the ${MAX_INFLATED_BYTES}-byte limit for compressed entries`)
  }
}

/**
 * Each local header must be where the central directory says, agree with it, and its data must
 * lie before the central directory without overlapping another entry.
 */
function checkLocalHeaders(file: string, buf: Buffer, entries: ZipEntry[], limit: number): void {
  for (const e of entries) e.dataOffset = checkLocalHeader(file, buf, e, limit)
  const sorted = [...entries].sort((a, b) => a.headerOffset - b.headerOffset)
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!
    const cur = sorted[i]!
    const prevEnd = prev.dataOffset + prev.compressedSize
    if (cur.headerOffset < prevEnd) {
      fail(file, `ZIP entry '${printable(cur.name)}' starts at byte ${cur.headerOffset}, inside entry '${printable(prev.name)}' (which ends at ${prevEnd}): bad offsets`)
    }
  }
}

function checkLocalHeader(file: string, buf: Buffer, e: ZipEntry, limit: number): number {
  const where = `ZIP entry '${printable(e.name)}'`
  const at = e.headerOffset
  if (at + LOCAL_LEN > limit) fail(file, `${where}: local header offset ${at} is past the entries' area (${limit} bytes): bad offset`)
  if (buf.readUInt32LE(at) !== LOCAL_SIG) fail(file, `${where}: no local header at byte ${at}: bad offset`)
  const flags = buf.readUInt16LE(at + 6)
  const nameLen = buf.readUInt16LE(at + 26)
  const extraLen = buf.readUInt16LE(at + 28)
  if (buf.readUInt16LE(at + 8) !== e.method) fail(file, `${where}: local header and central directory disagree on the compression method`)
  if (flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)) fail(file, `${where} is encrypted`)
  const data = at + LOCAL_LEN + nameLen + extraLen
  if (data > limit) fail(file, `${where}: local header at byte ${at} runs past the entries' area: bad offset`)
  const localName = buf.subarray(at + LOCAL_LEN, at + LOCAL_LEN + nameLen)
  if (!localName.equals(Buffer.from(e.name, 'utf8'))) fail(file, `${where}: local header at byte ${at} names another entry`)
  if (!(flags & FLAG_DATA_DESCRIPTOR)) checkLocalSizes(file, buf, e, at)
  if (data + e.compressedSize > limit) {
    fail(file, `${where}: its ${e.compressedSize} bytes at byte ${data} run past the entries' area (${limit} bytes): truncated or bad offset`)
  }
  return data
}

/** Without a data descriptor the local header repeats CRC and sizes (0xffffffff: in its zip64 extra). */
function checkLocalSizes(file: string, buf: Buffer, e: ZipEntry, at: number): void {
  const crc = buf.readUInt32LE(at + 14)
  const comp = buf.readUInt32LE(at + 18)
  const size = buf.readUInt32LE(at + 22)
  const sizesAgree = (comp === U32_MAX || comp === e.compressedSize) && (size === U32_MAX || size === e.size)
  if (crc !== e.crc32 || !sizesAgree) fail(file, `ZIP entry '${printable(e.name)}': local header and central directory disagree on CRC or sizes`)
}

function readEntry(file: string, buf: Buffer, entries: Map<string, ZipEntry>, name: string): Uint8Array {
  const e = entries.get(name)
  if (!e) fail(file, `no ZIP entry '${printable(name)}'`)
  const raw = buf.subarray(e.dataOffset, e.dataOffset + e.compressedSize)
  const bytes = e.method === STORED ? raw : inflate(file, e, raw)
  if (e.crc32 !== 0 && crc32(bytes) !== e.crc32) fail(file, `ZIP entry '${printable(name)}': CRC-32 mismatch (the file is damaged)`)
  return bytes
}

function inflate(file: string, e: ZipEntry, raw: Uint8Array): Uint8Array {
  let out: Buffer
  try {
    out = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) })
  } catch (err) {
    fail(file, `ZIP entry '${printable(e.name)}': cannot inflate (${(err as Error).message.split('\n')[0]})`)
  }
  if (out.length !== e.size) fail(file, `ZIP entry '${printable(e.name)}': inflates to ${out.length} bytes, not the ${e.size} its header says`)
  return out
}

/** A little-endian uint64 that must fit a JS number (no real file is 9 PB). */
function u64(file: string, buf: Buffer, at: number, what: string): number {
  const v = buf.readBigUInt64LE(at)
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(file, `${what} ${v} is absurdly large`)
  return Number(v)
}

let crcTable: Uint32Array | undefined

/** CRC-32 (IEEE): node:zlib's where it has one (Node ≥ 20.15), else a table-driven one. */
export function crc32(bytes: Uint8Array): number {
  const native = (zlib as unknown as { crc32?: (b: Uint8Array) => number }).crc32
  if (native) return native(bytes) >>> 0
  crcTable ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    return c >>> 0
  })
  let c = 0xffffffff
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

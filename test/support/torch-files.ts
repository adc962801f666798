/**
 * Hand-made torch.save files for the reader's tests: a small ZIP writer (stored or deflated
 * entries, optional zip64 records) and a pickle assembler for state dicts. They write what the
 * tests need to be wrong in exactly one way; the committed fixtures in fixtures/torch-bin/ are
 * the real torch.save output.
 */
import zlib from 'node:zlib'
import { crc32 } from '../../src/checkpoint/zip.js'

export interface ZipInput {
  name: string
  data: Uint8Array
  /** Deflate this entry (method 8). */
  deflate?: boolean
  /**
   * An entry deflated already (method 8): `data` is ignored, `body` is written as the compressed
   * bytes and `size` as the inflated size, with CRC 0 (unchecked, as torch.load allows).
   */
  deflated?: { body: Uint8Array; size: number }
}

export interface ZipOptions {
  /** Write the zip64 end record and locator, and every central size and offset as 0xffffffff + zip64 extra. */
  zip64?: boolean
}

/** A ZIP archive: local headers with CRC and sizes (no data descriptors), central directory, end records. */
export function makeZip(inputs: ZipInput[], opts: ZipOptions = {}): Buffer {
  const parts: Buffer[] = []
  const central: Buffer[] = []
  let offset = 0
  for (const input of inputs) {
    const name = Buffer.from(input.name, 'utf8')
    const pre = input.deflated
    const body = pre ? Buffer.from(pre.body) : input.deflate ? zlib.deflateRawSync(input.data) : Buffer.from(input.data)
    const crc = pre ? 0 : crc32(input.data)
    const method = pre || input.deflate ? 8 : 0
    const size = pre ? pre.size : input.data.byteLength
    const local = Buffer.alloc(30)
    local.writeUInt32LE(0x04034b50, 0)
    local.writeUInt16LE(20, 4)
    local.writeUInt16LE(0x0800, 6)
    local.writeUInt16LE(method, 8)
    local.writeUInt32LE(crc, 14)
    local.writeUInt32LE(body.length, 18)
    local.writeUInt32LE(size, 22)
    local.writeUInt16LE(name.length, 26)
    parts.push(local, name, body)
    central.push(centralEntry(name, method, crc, body.length, size, offset, opts.zip64 ?? false))
    offset += local.length + name.length + body.length
  }
  const cd = Buffer.concat(central)
  parts.push(cd)
  if (opts.zip64) parts.push(zip64End(inputs.length, cd.length, offset), zip64Locator(offset + cd.length))
  parts.push(endRecord(opts.zip64 ? 0xffff : inputs.length, opts.zip64 ? 0xffffffff : cd.length, opts.zip64 ? 0xffffffff : offset))
  return Buffer.concat(parts)
}

function centralEntry(name: Buffer, method: number, crc: number, comp: number, size: number, offset: number, zip64: boolean): Buffer {
  const extra = zip64 ? Buffer.alloc(4 + 24) : Buffer.alloc(0)
  if (zip64) {
    extra.writeUInt16LE(1, 0)
    extra.writeUInt16LE(24, 2)
    extra.writeBigUInt64LE(BigInt(size), 4)
    extra.writeBigUInt64LE(BigInt(comp), 12)
    extra.writeBigUInt64LE(BigInt(offset), 20)
  }
  const h = Buffer.alloc(46)
  h.writeUInt32LE(0x02014b50, 0)
  h.writeUInt16LE(zip64 ? 45 : 20, 4)
  h.writeUInt16LE(zip64 ? 45 : 20, 6)
  h.writeUInt16LE(0x0800, 8)
  h.writeUInt16LE(method, 10)
  h.writeUInt32LE(crc, 16)
  h.writeUInt32LE(zip64 ? 0xffffffff : comp, 20)
  h.writeUInt32LE(zip64 ? 0xffffffff : size, 24)
  h.writeUInt16LE(name.length, 28)
  h.writeUInt16LE(extra.length, 30)
  h.writeUInt32LE(zip64 ? 0xffffffff : offset, 42)
  return Buffer.concat([h, name, extra])
}

function zip64End(count: number, cdSize: number, cdOffset: number): Buffer {
  const r = Buffer.alloc(56)
  r.writeUInt32LE(0x06064b50, 0)
  r.writeBigUInt64LE(44n, 4)
  r.writeUInt16LE(45, 12)
  r.writeUInt16LE(45, 14)
  r.writeBigUInt64LE(BigInt(count), 24)
  r.writeBigUInt64LE(BigInt(count), 32)
  r.writeBigUInt64LE(BigInt(cdSize), 40)
  r.writeBigUInt64LE(BigInt(cdOffset), 48)
  return r
}

function zip64Locator(recordOffset: number): Buffer {
  const r = Buffer.alloc(20)
  r.writeUInt32LE(0x07064b50, 0)
  r.writeBigUInt64LE(BigInt(recordOffset), 8)
  r.writeUInt32LE(1, 16)
  return r
}

function endRecord(count: number, cdSize: number, cdOffset: number): Buffer {
  const r = Buffer.alloc(22)
  r.writeUInt32LE(0x06054b50, 0)
  r.writeUInt16LE(count, 8)
  r.writeUInt16LE(count, 10)
  r.writeUInt32LE(cdSize, 12)
  r.writeUInt32LE(cdOffset, 16)
  return r
}

// --- pickles -----------------------------------------------------------------------------------

/** Pickle opcodes as byte lists, to be concatenated. */
export const op = {
  proto: (n = 2) => [0x80, n],
  mark: [0x28],
  stop: [0x2e],
  tuple: [0x74],
  emptyTuple: [0x29],
  emptyDict: [0x7d],
  emptyList: [0x5d],
  setitem: [0x73],
  setitems: [0x75],
  appends: [0x65],
  reduce: [0x52],
  build: [0x62],
  binpersid: [0x51],
  none: [0x4e],
  false: [0x89],
  true: [0x88],
  global: (module: string, name: string) => [0x63, ...Buffer.from(`${module}\n${name}\n`, 'utf8')],
  stackGlobal: [0x93],
  str: (s: string) => {
    const b = Buffer.from(s, 'utf8')
    const len = Buffer.alloc(4)
    len.writeUInt32LE(b.length)
    return [0x58, ...len, ...b]
  },
  int: (n: number | bigint) => {
    const v = BigInt(n)
    if (v >= 0n && v < 256n) return [0x4b, Number(v)]
    if (v >= -(2n ** 31n) && v < 2n ** 31n) {
      const b = Buffer.alloc(4)
      b.writeInt32LE(Number(v))
      return [0x4a, ...b]
    }
    const b = Buffer.alloc(8)
    b.writeBigInt64LE(v)
    return [0x8a, 8, ...b]
  },
  ints: (ns: readonly (number | bigint)[]) => [...op.mark, ...ns.flatMap((n) => op.int(n)), ...op.tuple],
  binput: (i: number) => [0x71, i],
  binget: (i: number) => [0x68, i],
  longBinput: (i: number) => [0x72, i & 0xff, (i >>> 8) & 0xff, (i >>> 16) & 0xff, i >>> 24],
  longBinget: (i: number) => [0x6a, i & 0xff, (i >>> 8) & 0xff, (i >>> 16) & 0xff, i >>> 24],
  pop: [0x30],
}

export interface TensorSpec {
  storageType?: string
  key: string
  numel: number | bigint
  offset?: number | bigint
  size: readonly (number | bigint)[]
  stride: readonly (number | bigint)[]
  /** Legacy format: the persistent id's sixth item, view_metadata (view_key, offset, size) or None. */
  legacyView?: [string, number, number] | null
}

/** _rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict()) as torch writes it. */
export function tensorOps(t: TensorSpec): number[] {
  const v = t.legacyView
  const view = v === undefined ? [] : v === null ? op.none : [...op.mark, ...op.str(v[0]), ...op.int(v[1]), ...op.int(v[2]), ...op.tuple]
  const pid = [...op.mark, ...op.str('storage'), ...op.global('torch', t.storageType ?? 'FloatStorage'), ...op.str(t.key), ...op.str('cpu'), ...op.int(t.numel), ...view, ...op.tuple]
  return [
    ...op.global('torch._utils', '_rebuild_tensor_v2'),
    ...op.mark,
    ...pid,
    ...op.binpersid,
    ...op.int(t.offset ?? 0),
    ...op.ints(t.size),
    ...op.ints(t.stride),
    ...op.false,
    ...op.global('collections', 'OrderedDict'),
    ...op.emptyTuple,
    ...op.reduce,
    ...op.tuple,
    ...op.reduce,
  ]
}

/** A protocol-2 pickle of {name: value, …}, each value given as opcodes. */
export function dictPickle(items: [string, number[]][]): Uint8Array {
  const body = items.flatMap(([k, v]) => [...op.str(k), ...v])
  return Uint8Array.from([...op.proto(2), ...op.emptyDict, ...op.mark, ...body, ...op.setitems, ...op.stop])
}

/** A torch.save-shaped ZIP: archive/data.pkl, archive/byteorder, archive/data/<key> for each storage. */
export function torchZip(
  pkl: Uint8Array | ZipInput['deflated'],
  storages: Record<string, Uint8Array | ZipInput['deflated']>,
  opts: ZipOptions & { byteorder?: string; deflatePickle?: boolean } = {},
): Buffer {
  const entry = (name: string, data: Uint8Array | ZipInput['deflated'], deflate = false): ZipInput =>
    data instanceof Uint8Array ? { name, data, deflate } : { name, data: new Uint8Array(0), deflated: data }
  const entries: ZipInput[] = [entry('archive/data.pkl', pkl, opts.deflatePickle ?? false)]
  entries.push({ name: 'archive/byteorder', data: Buffer.from(opts.byteorder ?? 'little') })
  for (const [key, data] of Object.entries(storages)) entries.push(entry(`archive/data/${key}`, data))
  entries.push({ name: 'archive/version', data: Buffer.from('3\n') })
  return makeZip(entries, opts)
}

/**
 * A legacy-format file: the magic-number, protocol and sys-info pickles, `main` (the state dict),
 * the key list, then per storage an int64 element count and its bytes.
 */
export function legacyFile(main: Uint8Array, storages: [key: string, numel: number, bytes: Uint8Array][]): Buffer {
  const magic = Buffer.alloc(10)
  magic.writeBigUInt64LE(0x1950a86a20f9469cfc6cn & 0xffffffffffffffffn, 0)
  magic.writeUInt16LE(Number(0x1950a86a20f9469cfc6cn >> 64n), 8)
  const sysInfo = [...op.str('protocol_version'), ...op.int(1001), ...op.str('little_endian'), ...op.true, ...op.str('type_sizes'), ...op.emptyDict]
  const parts: Uint8Array[] = [
    Uint8Array.from([...op.proto(), 0x8a, 10, ...magic, ...op.stop]),
    Uint8Array.from([...op.proto(), ...op.int(1001), ...op.stop]),
    Uint8Array.from([...op.proto(), ...op.emptyDict, ...op.mark, ...sysInfo, ...op.setitems, ...op.stop]),
    main,
    Uint8Array.from([...op.proto(), ...op.emptyList, ...op.mark, ...storages.flatMap(([k]) => op.str(k)), ...op.appends, ...op.stop]),
  ]
  for (const [, numel, bytes] of storages) {
    const n = Buffer.alloc(8)
    n.writeBigInt64LE(BigInt(numel))
    parts.push(n, bytes)
  }
  return Buffer.concat(parts)
}

/**
 * A raw deflate stream that inflates to `size` zero bytes, made without allocating them: one MiB
 * of zeros deflated with a sync flush (byte-aligned, and its back-references reach only zeros) is
 * repeated, then the rest and a final empty block. About 1 KB per MiB.
 */
export function deflatedZeros(size: number): { body: Uint8Array; size: number } {
  const MiB = 1 << 20
  const sync = { level: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH }
  const chunk = zlib.deflateRawSync(Buffer.alloc(MiB), sync)
  const parts: Buffer[] = new Array<Buffer>(Math.floor(size / MiB)).fill(chunk)
  if (size % MiB) parts.push(zlib.deflateRawSync(Buffer.alloc(size % MiB), sync))
  parts.push(Buffer.from([0x03, 0x00]))
  return { body: Buffer.concat(parts), size }
}

export function floats(...values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer)
}

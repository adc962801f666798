/**
 * Protocol-buffer wire format, the small part albertkit's readers and writers need (ONNX models,
 * TensorFlow checkpoints, SentencePiece models): a bounds-checked reader over a byte view
 * (length-delimited fields come back as views, never copies) and a writer that builds a message
 * as a list of byte pieces, so that large tensor bytes are referenced, not copied. Its own codec,
 * no generated classes: nothing is decoded that a reader does not ask for, and hostile sizes are
 * checked before anything is allocated.
 */
import type { Int } from '../util/int64.js'

export const WIRE_VARINT = 0
export const WIRE_I64 = 1
export const WIRE_LEN = 2
export const WIRE_I32 = 5

export class WireError extends Error {
  override name = 'WireError'
}

export class ProtoReader {
  readonly buf: Uint8Array
  pos: number
  readonly end: number
  /** The number and wire type of the field whose tag was read last (`nextField`, `tag`). */
  field = 0
  wire = 0
  /** Where that field's tag starts. */
  private fieldStart = 0

  constructor(buf: Uint8Array, start = 0, end = buf.byteLength) {
    this.buf = buf
    this.pos = start
    this.end = end
  }

  get done(): boolean {
    return this.pos >= this.end
  }

  /**
   * Move to the message's next field: false at its end, else true with `field` and `wire` set. The
   * caller then reads the value, or passes it over with `skipField`:
   * `while (r.nextField()) { if (r.field === 1) name = r.string() ... else r.skipField() }`.
   */
  nextField(): boolean {
    if (this.pos >= this.end) return false
    this.readTag()
    return true
  }

  /** Pass over the value of the field `nextField` moved to; returns the whole field's raw bytes, tag included. */
  skipField(): Uint8Array {
    return this.skip(this.wire, this.fieldStart)
  }

  /** The next field's tag as [field number, wire type]. */
  tag(): [number, number] {
    this.readTag()
    return [this.field, this.wire]
  }

  private readTag(): void {
    this.fieldStart = this.pos
    const t = this.uint32()
    const field = Math.floor(t / 8)
    if (field === 0 || field > 0x1fffffff) throw new WireError(`invalid field number ${field} at byte ${this.pos}`)
    this.field = field
    this.wire = t % 8
  }

  /** An unsigned varint that must fit in 2^53 (lengths, tags). */
  uint32(): number {
    let result = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.end) throw new WireError('truncated varint')
      const b = this.buf[this.pos++]!
      result += (b & 0x7f) * scale
      if ((b & 0x80) === 0) return result
      scale *= 128
    }
    throw new WireError('varint too large for a length or tag')
  }

  /** A varint read as int64 (two's complement), exact. */
  int64(): Int {
    let lo = 0
    let hi = 0
    let i = 0
    for (; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError('truncated varint')
      const b = this.buf[this.pos++]!
      const bits = b & 0x7f
      const shift = i * 7
      if (shift < 28) lo |= bits << shift
      else if (shift === 28) {
        lo |= (bits & 0xf) << 28
        hi |= bits >>> 4
      } else hi |= bits << (shift - 32)
      if ((b & 0x80) === 0) break
    }
    if (i === 10) throw new WireError('varint longer than 10 bytes')
    lo >>>= 0
    hi >>>= 0
    if (hi === 0) return lo
    if (hi < 0x200000) return hi * 0x100000000 + lo
    const big = BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo))
    const n = Number(big)
    return Number.isSafeInteger(n) ? n : big
  }

  int32(): number {
    return Number(BigInt.asIntN(32, BigInt(this.int64())))
  }

  bool(): boolean {
    return this.int64() !== 0
  }

  fixed32Float(): number {
    this.need(4)
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true)
    this.pos += 4
    return v
  }

  fixed64Double(): number {
    this.need(8)
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true)
    this.pos += 8
    return v
  }

  /** A length-delimited field as a view into the buffer. */
  bytes(): Uint8Array {
    const len = this.uint32()
    this.need(len)
    const view = this.buf.subarray(this.pos, this.pos + len)
    this.pos += len
    return view
  }

  string(): string {
    return textDecoder.decode(this.bytes())
  }

  /** A sub-reader over a length-delimited field. */
  message(): ProtoReader {
    const len = this.uint32()
    this.need(len)
    const r = new ProtoReader(this.buf, this.pos, this.pos + len)
    this.pos += len
    return r
  }

  /** Skip a field's value; returns the raw bytes of the whole field (tag included) from `tagStart`. */
  skip(wire: number, tagStart: number): Uint8Array {
    switch (wire) {
      case WIRE_VARINT:
        this.int64()
        break
      case WIRE_I64:
        this.need(8)
        this.pos += 8
        break
      case WIRE_LEN: {
        const len = this.uint32()
        this.need(len)
        this.pos += len
        break
      }
      case WIRE_I32:
        this.need(4)
        this.pos += 4
        break
      default:
        throw new WireError(`unsupported wire type ${wire} at byte ${tagStart}`)
    }
    return this.buf.subarray(tagStart, this.pos)
  }

  private need(n: number): void {
    if (n > this.end - this.pos) throw new WireError(`field of ${n} bytes runs past the end of its message`)
  }
}

export const textDecoder = new TextDecoder('utf-8')
export const textEncoder = new TextEncoder()

/** Read a repeated int64 field that may arrive packed or one value per tag. */
export function readInt64s(r: ProtoReader, wire: number, into: Int[]): void {
  readRepeated(r, wire, WIRE_VARINT, 'integer', (from) => into.push(from.int64()))
}

/** Read a repeated float field that may arrive packed or one value per tag. */
export function readFloats(r: ProtoReader, wire: number, into: number[]): void {
  readRepeated(r, wire, WIRE_I32, 'float', (from) => into.push(from.fixed32Float()))
}

/** A repeated scalar field: packed (one length-delimited run of values) or one value per tag (`scalarWire`). */
function readRepeated(r: ProtoReader, wire: number, scalarWire: number, what: string, readOne: (from: ProtoReader) => void): void {
  if (wire === WIRE_LEN) {
    const sub = r.message()
    while (!sub.done) readOne(sub)
  } else if (wire === scalarWire) readOne(r)
  else throw new WireError(`wire type ${wire} for a repeated ${what}`)
}

/** Nested messages up to this many bytes are copied into their parent instead of referenced. */
const INLINE_MESSAGE = 4096

/**
 * Builds one message as a list of pieces. Small fields go to a growing scratch buffer; a large
 * bytes field, or a nested message, is appended by reference.
 */
export class ProtoWriter {
  readonly pieces: Uint8Array[] = []
  length = 0
  private scratch: Uint8Array
  private used = 0

  constructor(initial = 64) {
    this.scratch = new Uint8Array(initial)
  }

  private ensure(n: number): void {
    if (this.used + n <= this.scratch.byteLength) return
    let size = this.scratch.byteLength * 2
    while (size < this.used + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.scratch.subarray(0, this.used))
    this.scratch = next
  }

  private flush(): void {
    if (this.used === 0) return
    this.pieces.push(this.scratch.subarray(0, this.used))
    this.scratch = this.scratch.subarray(this.used)
    this.used = 0
    if (this.scratch.byteLength < 16) this.scratch = new Uint8Array(64)
  }

  private rawVarint(v: number): void {
    this.ensure(10)
    while (v > 0x7f) {
      this.scratch[this.used++] = (v & 0x7f) | 0x80
      v = Math.floor(v / 128)
    }
    this.scratch[this.used++] = v
  }

  private countFrom(before: number): void {
    this.length += this.used - before
  }

  uvarint(v: number): void {
    const before = this.used
    this.rawVarint(v)
    this.countFrom(before)
  }

  tag(field: number, wire: number): void {
    this.uvarint(field * 8 + wire)
  }

  int64Value(v: Int): void {
    if (typeof v === 'number' && v >= 0 && Number.isSafeInteger(v)) {
      this.uvarint(v)
      return
    }
    let u = BigInt.asUintN(64, BigInt(v))
    const before = this.used
    this.ensure(10)
    while (u > 0x7fn) {
      this.scratch[this.used++] = Number(u & 0x7fn) | 0x80
      u >>= 7n
    }
    this.scratch[this.used++] = Number(u)
    this.countFrom(before)
  }

  int64(field: number, v: Int): void {
    this.tag(field, WIRE_VARINT)
    this.int64Value(v)
  }

  float(field: number, v: number): void {
    this.fixed(field, WIRE_I32, 4).setFloat32(0, v, true)
  }

  double(field: number, v: number): void {
    this.fixed(field, WIRE_I64, 8).setFloat64(0, v, true)
  }

  /** Tag a fixed-width field and reserve its `bytes`; the caller writes them through the view. */
  private fixed(field: number, wire: number, bytes: number): DataView {
    this.tag(field, wire)
    this.ensure(bytes)
    const view = new DataView(this.scratch.buffer, this.scratch.byteOffset + this.used, bytes)
    this.used += bytes
    this.length += bytes
    return view
  }

  /** Bytes of a length-delimited field; large ones are referenced, not copied. */
  bytes(field: number, data: Uint8Array): void {
    this.tag(field, WIRE_LEN)
    this.uvarint(data.byteLength)
    this.appendRaw(data)
  }

  string(field: number, s: string): void {
    this.tag(field, WIRE_LEN)
    const n = s.length
    if (n < 128) {
      // Short ASCII strings (names, op types) are written in place: no encoder call, no allocation.
      this.ensure(n + 1)
      const buf = this.scratch
      const at = this.used
      let i = 0
      for (; i < n; i++) {
        const c = s.charCodeAt(i)
        if (c >= 0x80) break
        buf[at + 1 + i] = c
      }
      if (i === n) {
        buf[at] = n
        this.used = at + 1 + n
        this.length += n + 1
        return
      }
    }
    const data = textEncoder.encode(s)
    this.uvarint(data.byteLength)
    this.appendRaw(data)
  }

  /** Bytes already encoded (a field kept verbatim, tag included). */
  appendRaw(data: Uint8Array): void {
    if (data.byteLength <= 256) {
      this.ensure(data.byteLength)
      this.scratch.set(data, this.used)
      this.used += data.byteLength
    } else {
      this.flush()
      this.pieces.push(data)
    }
    this.length += data.byteLength
  }

  message(field: number, child: ProtoWriter): void {
    this.tag(field, WIRE_LEN)
    this.uvarint(child.length)
    if (child.pieces.length === 0 && child.used <= INLINE_MESSAGE) {
      // A small message (a node, a value_info) is copied in: a million nodes make one buffer, not millions of pieces.
      this.ensure(child.used)
      const from = child.scratch
      const to = this.scratch
      const at = this.used
      if (child.used <= 64) for (let i = 0; i < child.used; i++) to[at + i] = from[i]!
      else to.set(from.subarray(0, child.used), at)
      this.used += child.used
      this.length += child.length
      return
    }
    child.flush()
    this.flush()
    for (const p of child.pieces) this.pieces.push(p)
    this.length += child.length
  }

  packedInt64(field: number, values: readonly Int[]): void {
    if (values.length === 0) return
    const child = new ProtoWriter(values.length * 2 + 8)
    for (const v of values) child.int64Value(v)
    this.message(field, child)
  }

  packedFloats(field: number, values: readonly number[]): void {
    if (values.length === 0) return
    const arr = Float32Array.from(values)
    this.bytes(field, new Uint8Array(arr.buffer))
  }

  /** The finished message's pieces. */
  finish(): Uint8Array[] {
    this.flush()
    return this.pieces
  }
}

export function concatPieces(pieces: readonly Uint8Array[], total?: number): Uint8Array {
  const size = total ?? pieces.reduce((n, p) => n + p.byteLength, 0)
  const out = Buffer.allocUnsafe(size)
  let off = 0
  for (const p of pieces) {
    out.set(p, off)
    off += p.byteLength
  }
  return out
}

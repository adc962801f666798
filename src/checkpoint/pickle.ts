/**
 * A restricted pickle machine: enough of Python's pickle to read what torch.save writes for a
 * state dict, and nothing that can run code.
 *
 * It implements the binary opcodes (protocols 1–5) that build plain data (None, bools, ints,
 * floats, strings, bytes, tuples, lists, dicts), the memo, MARK, PROTO/FRAME, and four that
 * reach outside plain data, each through the caller's hooks:
 * - GLOBAL / STACK_GLOBAL ask `hooks.findGlobal(module, name)`, which returns an object the
 *   caller built in JS (its allow-list) or refuses. Nothing is ever imported or looked up by name.
 * - REDUCE applies only a `PyCallable` — a JS function some allow-list put there; anything else
 *   on the stack is refused. BUILD only sets the attributes of a dict (OrderedDict._metadata).
 * - BINPERSID hands the persistent id to `hooks.persistentLoad`.
 * Opcodes that create instances or reach registries (INST, OBJ, NEWOBJ, NEWOBJ_EX, EXT1/2/4,
 * PERSID) and the text opcodes of protocol 0 are refused, as is anything unknown.
 *
 * Bounds: every length is checked against the bytes left before anything is read or decoded;
 * the values a pickle may build (every push counts), the stack, the memo and MARK nesting have
 * fixed ceilings, so memory stays proportional to a state dict's size however the opcodes are
 * arranged; the machine never recurses, so self-referencing containers are harmless. Ints are
 * bigints, floats are numbers.
 */
import { fail } from '../util/errors.js'

export type PyValue = null | boolean | bigint | number | string | Uint8Array | PyTuple | PyList | PyDict | PyObject
export type DictKey = string | bigint | number | boolean | null

export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

export class PyList {
  constructor(readonly items: PyValue[] = []) {}
}

export class PyDict {
  private map: Map<DictKey, PyValue> | undefined
  /** Instance attributes set by BUILD (a state dict's OrderedDict carries `_metadata`). */
  attributes: PyDict | null = null
  constructor(readonly typeName: string = 'dict') {}
  /** Made on first use: a state dict pickles one empty OrderedDict per tensor (its hooks). */
  get items(): Map<DictKey, PyValue> {
    return (this.map ??= new Map())
  }
}

/** A value from the caller's allow-list: a function, a type, a storage, a tensor. */
export abstract class PyObject {
  abstract readonly typeName: string
}

/** A function from an allow-list, implemented in JS. REDUCE applies nothing else. */
export class PyCallable extends PyObject {
  constructor(
    readonly typeName: string,
    readonly apply: (args: readonly PyValue[]) => PyValue,
  ) {
    super()
  }
}

export interface UnpickleHooks {
  /** GLOBAL module.name: an allow-listed object, or throw to refuse. */
  findGlobal(module: string, name: string): PyValue
  /** BINPERSID: what the persistent id stands for. */
  persistentLoad(pid: PyValue): PyValue
}

export interface Unpickled {
  value: PyValue
  /** Offset just past the STOP opcode. */
  end: number
}

/**
 * Values one pickle may push (built or fetched from the memo): a state dict pushes about 25 per
 * tensor and memoizes about 10, so these allow some 40,000 tensors in one file while bounding
 * what any arrangement of opcodes can allocate (about 100 bytes a value at most).
 */
export const MAX_VALUES = 1_000_000
export const MAX_STACK = 1_000_000
export const MAX_MEMO = 500_000
export const MAX_MARK_DEPTH = 1000
export const HIGHEST_PROTOCOL = 5
/** Longest LONG1/LONG4 integer accepted, in bytes (a state dict needs 8; torch's magic is 10). */
const MAX_LONG_BYTES = 64
/** Longest GLOBAL module or name line. */
const MAX_GLOBAL_LINE = 1024

/** A short name for a value's type, for messages. */
export function typeName(v: PyValue): string {
  if (v === null) return 'None'
  if (typeof v === 'boolean') return 'bool'
  if (typeof v === 'bigint') return 'int'
  if (typeof v === 'number') return 'float'
  if (typeof v === 'string') return 'str'
  if (v instanceof Uint8Array) return 'bytes'
  if (v instanceof PyTuple) return 'tuple'
  if (v instanceof PyList) return 'list'
  return v.typeName
}

/** A value's type with its article, for messages: 'an int', 'a tuple', 'None'. */
export function aType(v: PyValue): string {
  const t = typeName(v)
  if (t === 'None') return t
  return /^[aeiou]/i.test(t) ? `an ${t}` : `a ${t}`
}

/**
 * Run the pickle that starts at `start` in `bytes` and return its value. `file` names the file
 * and `label` the pickle (for example 'archive/data.pkl') in errors; byte positions in messages
 * count from the start of `bytes`.
 */
export function unpickle(bytes: Uint8Array, start: number, file: string, label: string, hooks: UnpickleHooks): Unpickled {
  return new Machine(bytes, start, file, label, hooks).run()
}

type Op = (m: Machine) => void

/** Opcodes refused by name: they make instances, use registries, or are protocol 0's text forms. */
const REFUSED: Record<number, string> = {
  0x69: 'INST', 0x6f: 'OBJ', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4',
  0x50: 'PERSID', 0x49: 'INT', 0x4c: 'LONG', 0x46: 'FLOAT', 0x53: 'STRING', 0x56: 'UNICODE',
  0x67: 'GET', 0x70: 'PUT', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
}

/** BININT1's 256 values, made once: a pickle of small ints allocates nothing per int. */
const SMALL_INTS = Array.from({ length: 256 }, (_, i) => BigInt(i))

class Machine {
  private stack: PyValue[] = []
  private pushed = 0
  private marks: number[] = []
  readonly memo = new Map<number, PyValue>()
  private readonly view: DataView
  /** Offset of the opcode being run (for messages). */
  private opAt = 0
  pos: number
  stopped = false

  constructor(
    readonly bytes: Uint8Array,
    start: number,
    readonly file: string,
    readonly label: string,
    readonly hooks: UnpickleHooks,
  ) {
    this.pos = start
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  run(): Unpickled {
    while (!this.stopped) {
      this.opAt = this.pos
      if (this.pos >= this.bytes.byteLength) this.fail('ends before its STOP opcode (truncated?)')
      const code = this.bytes[this.pos++]!
      const op = OPS[code]
      if (op) op(this)
      else if (REFUSED[code] !== undefined) this.fail(`opcode ${REFUSED[code]} (0x${hex(code)}) is not supported: a state dict does not need it`)
      else this.fail(`unknown opcode 0x${hex(code)}`)
    }
    return { value: this.pop(), end: this.pos }
  }

  fail(problem: string): never {
    fail(this.file, `pickle ${this.label}, byte ${this.opAt}: ${problem}`)
  }

  // --- reading operands -------------------------------------------------------------------

  /** Move past `n` bytes (checked against what is left) and return where they start. */
  skip(n: number, what: string): number {
    const left = this.bytes.byteLength - this.pos
    if (n > left) this.fail(`${what} needs ${n} bytes but only ${left} are left (truncated?)`)
    const at = this.pos
    this.pos += n
    return at
  }

  take(n: number, what: string): Uint8Array {
    const at = this.skip(n, what)
    return this.bytes.subarray(at, at + n)
  }

  u8(): number {
    return this.bytes[this.skip(1, 'operand')]!
  }

  u16(): number {
    return this.view.getUint16(this.skip(2, 'operand'), true)
  }

  i32(): number {
    return this.view.getInt32(this.skip(4, 'operand'), true)
  }

  u32(): number {
    return this.view.getUint32(this.skip(4, 'operand'), true)
  }

  u64(): number {
    const v = this.view.getBigUint64(this.skip(8, 'operand'), true)
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v)
  }

  f64be(): number {
    return this.view.getFloat64(this.skip(8, 'operand'), false)
  }

  utf8(n: number, what: string): string {
    const raw = this.take(n, what)
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(raw)
    } catch {
      this.fail(`${what} is not valid UTF-8`)
    }
  }

  latin1(n: number, what: string): string {
    if (n < 0) this.fail(`${what} has a negative length`)
    return Buffer.from(this.take(n, what)).toString('latin1')
  }

  /** A little-endian two's-complement integer of n bytes (LONG1, LONG4). */
  long(n: number): bigint {
    if (n < 0 || n > MAX_LONG_BYTES) this.fail(`integer of ${n} bytes is out of range (at most ${MAX_LONG_BYTES})`)
    const raw = this.take(n, 'integer')
    let v = 0n
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(raw[i]!)
    if (n > 0 && raw[n - 1]! & 0x80) v -= 1n << BigInt(8 * n)
    return v
  }

  /** A newline-terminated line (GLOBAL's module and name). */
  line(what: string): string {
    const limit = Math.min(this.bytes.byteLength, this.pos + MAX_GLOBAL_LINE + 1)
    let end = this.pos
    while (end < limit && this.bytes[end] !== 0x0a) end++
    if (end >= limit) this.fail(`${what} is not a line of at most ${MAX_GLOBAL_LINE} bytes`)
    const text = this.utf8(end - this.pos, what)
    this.pos++
    return text
  }

  // --- the stack, marks and memo ---------------------------------------------------------

  push(v: PyValue): void {
    if (this.stack.length >= MAX_STACK) this.fail(`stack is deeper than ${MAX_STACK} items`)
    if (++this.pushed > MAX_VALUES) this.fail(`builds more than ${MAX_VALUES} values, more than a state dict's pickle needs (refusing to go on)`)
    this.stack.push(v)
  }

  pop(): PyValue {
    if (this.stack.length === 0 || this.stack.length === this.marks[this.marks.length - 1]) this.fail('stack underflow')
    return this.stack.pop()!
  }

  top(): PyValue {
    if (this.stack.length === 0 || this.stack.length === this.marks[this.marks.length - 1]) this.fail('stack underflow')
    return this.stack[this.stack.length - 1]!
  }

  mark(): void {
    if (this.marks.length >= MAX_MARK_DEPTH) this.fail(`MARKs nest deeper than ${MAX_MARK_DEPTH}`)
    this.marks.push(this.stack.length)
  }

  /** The items pushed since the last MARK, removing them and the mark. */
  popMark(): PyValue[] {
    const at = this.marks.pop()
    if (at === undefined) this.fail('no MARK to pop to')
    return this.stack.splice(at)
  }

  put(index: number): void {
    if (index < 0) this.fail('negative memo index')
    if (!this.memo.has(index) && this.memo.size >= MAX_MEMO) this.fail(`memo holds more than ${MAX_MEMO} items`)
    this.memo.set(index, this.top())
  }

  get(index: number): void {
    if (!this.memo.has(index)) this.fail(`memo index ${index} was never stored`)
    this.push(this.memo.get(index)!)
  }

  // --- containers ------------------------------------------------------------------------

  list(): PyList {
    const v = this.top()
    if (!(v instanceof PyList)) this.fail(`APPEND to ${aType(v)}, not a list`)
    return v
  }

  dict(): PyDict {
    const v = this.top()
    if (!(v instanceof PyDict)) this.fail(`SETITEM on ${aType(v)}, not a dict`)
    return v
  }

  setItems(d: PyDict, kv: readonly PyValue[]): void {
    if (kv.length % 2 !== 0) this.fail('odd number of items for a dict')
    for (let i = 0; i < kv.length; i += 2) d.items.set(this.key(kv[i]!), kv[i + 1]!)
  }

  key(k: PyValue): DictKey {
    if (k === null || typeof k === 'string' || typeof k === 'bigint' || typeof k === 'number' || typeof k === 'boolean') return k
    this.fail(`dict key of type ${typeName(k)} is not supported`)
  }

  // --- the operations that reach outside plain data --------------------------------------

  global(module: string, name: string): void {
    this.push(this.hooks.findGlobal(module, name))
  }

  reduce(): void {
    const args = this.pop()
    const fn = this.pop()
    if (!(fn instanceof PyCallable)) this.fail(`REDUCE on ${aType(fn)}, which is not an allowed function`)
    if (!(args instanceof PyTuple)) this.fail(`REDUCE with ${typeName(args)} arguments, not a tuple`)
    this.push(fn.apply(args.items))
  }

  build(): void {
    const state = this.pop()
    const obj = this.top()
    if (!(obj instanceof PyDict)) this.fail(`BUILD on ${aType(obj)} is not supported`)
    if (state !== null && !(state instanceof PyDict)) this.fail(`BUILD with ${aType(state)} state, not a dict`)
    obj.attributes = state
  }
}

function hex(code: number): string {
  return code.toString(16).padStart(2, '0')
}

const tupleOf = (n: number): Op => (m) => {
  const items: PyValue[] = []
  for (let i = 0; i < n; i++) items.unshift(m.pop())
  m.push(new PyTuple(items))
}

const OPS: Record<number, Op> = {
  // framing
  0x80: (m) => {
    const proto = m.u8()
    if (proto > HIGHEST_PROTOCOL) m.fail(`protocol ${proto} is newer than ${HIGHEST_PROTOCOL}`)
  },
  0x95: (m) => {
    const n = m.u64()
    if (n > m.bytes.byteLength - m.pos) m.fail(`FRAME of ${n} bytes runs past the end (truncated?)`)
  },
  0x2e: (m) => void (m.stopped = true),
  // stack manipulation
  0x28: (m) => m.mark(),
  0x30: (m) => void m.pop(),
  0x31: (m) => void m.popMark(),
  0x32: (m) => m.push(m.top()),
  // constants and numbers
  0x4e: (m) => m.push(null),
  0x88: (m) => m.push(true),
  0x89: (m) => m.push(false),
  0x4a: (m) => m.push(BigInt(m.i32())),
  0x4b: (m) => m.push(SMALL_INTS[m.u8()]!),
  0x4d: (m) => m.push(BigInt(m.u16())),
  0x8a: (m) => m.push(m.long(m.u8())),
  0x8b: (m) => m.push(m.long(m.i32())),
  0x47: (m) => m.push(m.f64be()),
  // strings and bytes
  0x58: (m) => m.push(m.utf8(m.u32(), 'string')),
  0x8c: (m) => m.push(m.utf8(m.u8(), 'string')),
  0x8d: (m) => m.push(m.utf8(m.u64(), 'string')),
  0x55: (m) => m.push(m.latin1(m.u8(), 'string')),
  0x54: (m) => m.push(m.latin1(m.i32(), 'string')),
  0x43: (m) => m.push(m.take(m.u8(), 'bytes')),
  0x42: (m) => m.push(m.take(m.u32(), 'bytes')),
  0x8e: (m) => m.push(m.take(m.u64(), 'bytes')),
  // tuples, lists, dicts
  0x29: (m) => m.push(new PyTuple([])),
  0x85: tupleOf(1),
  0x86: tupleOf(2),
  0x87: tupleOf(3),
  0x74: (m) => m.push(new PyTuple(m.popMark())),
  0x5d: (m) => m.push(new PyList()),
  0x6c: (m) => m.push(new PyList(m.popMark())),
  0x61: (m) => {
    const v = m.pop()
    m.list().items.push(v)
  },
  0x65: (m) => {
    const items = m.popMark()
    const list = m.list().items
    for (const v of items) list.push(v) // not push(...items): a spread of 300,000 arguments overflows the call stack
  },
  0x7d: (m) => m.push(new PyDict()),
  0x64: (m) => {
    const d = new PyDict()
    m.setItems(d, m.popMark())
    m.push(d)
  },
  0x73: (m) => {
    const v = m.pop()
    const k = m.pop()
    m.setItems(m.dict(), [k, v])
  },
  0x75: (m) => {
    const kv = m.popMark()
    m.setItems(m.dict(), kv)
  },
  // memo
  0x71: (m) => m.put(m.u8()),
  0x72: (m) => m.put(m.u32()),
  0x94: (m) => m.put(m.memo.size), // MEMOIZE: index len(memo), as Python does
  0x68: (m) => m.get(m.u8()),
  0x6a: (m) => m.get(m.u32()),
  // outside plain data: through the hooks only
  0x63: (m) => {
    const module = m.line('GLOBAL module')
    m.global(module, m.line('GLOBAL name'))
  },
  0x93: (m) => {
    const name = m.pop()
    const module = m.pop()
    if (typeof module === 'string' && typeof name === 'string') m.global(module, name)
    else m.fail('STACK_GLOBAL needs two strings')
  },
  0x52: (m) => m.reduce(),
  0x62: (m) => m.build(),
  0x51: (m) => m.push(m.hooks.persistentLoad(m.pop())),
}


/**
 * pytorch_model.bin: a torch.save'd state dict, read without running any code the file names.
 *
 * Formats:
 * - ZIP (torch ≥ 1.6, the default): `<archive>/data.pkl` (the pickled state dict),
 *   `<archive>/data/<key>` (one entry of raw little-endian bytes per storage), `<archive>/byteorder`
 *   and version records. Read with the strict reader in zip.ts.
 * - Legacy (torch < 1.6, or `_use_new_zipfile_serialization=False`): five pickles in a row — the
 *   magic number 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys-info dict, the state
 *   dict, the list of storage keys — then, per key in that order, an int64 element count and the
 *   storage's bytes.
 * The older tar format (torch < 0.4) is refused.
 *
 * The pickles run on the restricted machine in pickle.ts. GLOBAL resolves only this allow-list,
 * each entry a JS object: collections.OrderedDict; torch._utils._rebuild_tensor,
 * _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter, _rebuild_parameter_with_state;
 * torch._tensor._rebuild_from_type_v2 (with torch.Tensor / torch.nn.parameter.Parameter as the
 * type); the storage types (torch.FloatStorage … torch.storage.UntypedStorage) and the dtypes
 * that _rebuild_tensor_v3 names. Anything else (os.system, builtins.eval, subprocess.Popen, …) is
 * refused at the GLOBAL, before it could be applied. Persistent ids ('storage', type, key,
 * location, numel[, view]) become storages; a storage used by several tensors (tied weights) is
 * one set of bytes.
 *
 * The file is read once into one buffer. A tensor whose strides are row-major (contiguous) is a
 * view of its storage's bytes at its offset, so tied tensors are views of the same bytes; other
 * strides (a transposed or sliced view) give a contiguous copy. Every size is checked: a storage's
 * numel × element size against its bytes, a tensor's offset, sizes and strides against its
 * storage. Errors are one line naming the file, and the tensor or storage where there is one.
 *
 * Budgets, each checked before the work it bounds and named in its error: data.pkl is at most
 * MAX_PICKLE_BYTES; a deflated storage entry must inflate to exactly the bytes its storage
 * declares, and all deflated entries together within the archive's inflation budget (zip.ts);
 * the tensors together within the file's tensor budget (TENSOR_BYTES_PER_STORAGE_BYTE × its
 * storage bytes + TENSOR_SLACK_BYTES), views and copies alike: stride-0 views of a small storage
 * cannot expand into gigabytes, and thousands of views of one storage cannot make every later step
 * read it thousands of times.
 */
import { DataType, byteLengthOf, dtypeName } from '../ir/dtype.js'
import { Tensor } from '../ir/tensor.js'
import { fail } from '../util/errors.js'
import { readWholeFile } from '../util/read.js'
import { MAX_RANK } from '../ir/tensor.js'
import { printable } from '../util/printable.js'
import { PyCallable, PyDict, PyList, PyObject, PyTuple, aType, typeName, unpickle, type PyValue, type UnpickleHooks } from './pickle.js'
import { looksLikeZip, readZip, type ZipArchive } from './zip.js'

/** torch's legacy-format magic number and protocol version. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn
const LEGACY_PROTOCOL = 1001n
/**
 * The tensors of one file may take this many times the bytes of its storages: room for tied
 * weights (T5 names one embedding four times) and transposed copies, plus TENSOR_SLACK_BYTES for
 * a small expanded (stride-0) buffer; never gigabytes from a few bytes.
 */
export const TENSOR_BYTES_PER_STORAGE_BYTE = 4
export const TENSOR_SLACK_BYTES = 16 << 20
/** Largest data.pkl read: a state dict's pickle takes a few hundred bytes per tensor. */
export const MAX_PICKLE_BYTES = 64 << 20
/** Largest byteorder record ('little' or 'big'). */
const MAX_BYTEORDER_BYTES = 16

/** Read a torch.save state dict without running any code it names. Tensor names as in the pickle. */
export function readTorchBin(file: string): Map<string, Tensor> {
  const buf = readWholeFile(file)
  if (looksLikeZip(buf)) return readZipFormat(file, buf)
  if (looksLikeLegacy(buf)) return readLegacyFormat(file, buf)
  if (looksLikeTar(buf)) fail(file, 'the tar format of torch < 0.4 is not supported; re-save with torch>=1.6')
  fail(file, "not a torch.save file (neither its ZIP format nor its legacy pickle format)")
}

// --- objects the allow-list makes ------------------------------------------------------------

class StorageType extends PyObject {
  readonly typeName = 'storage type'
  constructor(readonly name: string, readonly dtype: DataType) {
    super()
  }
}

class DtypeValue extends PyObject {
  readonly typeName = 'torch.dtype'
  constructor(readonly name: string, readonly dtype: DataType) {
    super()
  }
}

class TensorType extends PyObject {
  readonly typeName = 'tensor type'
  constructor(readonly name: string) {
    super()
  }
}

/** A storage: `nbytes` bytes under `key`, or (legacy) a view of a root storage. */
class Storage extends PyObject {
  readonly typeName = 'storage'
  bytes: Uint8Array | undefined
  constructor(
    readonly key: string,
    readonly type: StorageType,
    readonly nbytes: number,
    readonly view?: { root: Storage; byteOffset: number },
  ) {
    super()
  }
}

/** A tensor as pickled: offset, sizes and strides in elements of `dtype`. */
class TensorRef extends PyObject {
  readonly typeName = 'tensor'
  constructor(
    readonly storage: Storage,
    readonly dtype: DataType,
    readonly offset: bigint,
    readonly size: readonly bigint[],
    readonly stride: readonly bigint[],
  ) {
    super()
  }
}

const STORAGE_TYPES: Record<string, DataType> = {
  FloatStorage: DataType.FLOAT,
  DoubleStorage: DataType.DOUBLE,
  HalfStorage: DataType.FLOAT16,
  BFloat16Storage: DataType.BFLOAT16,
  LongStorage: DataType.INT64,
  IntStorage: DataType.INT32,
  ShortStorage: DataType.INT16,
  CharStorage: DataType.INT8,
  ByteStorage: DataType.UINT8,
  BoolStorage: DataType.BOOL,
  ComplexFloatStorage: DataType.COMPLEX64,
  ComplexDoubleStorage: DataType.COMPLEX128,
}

/** torch dtypes by their pickled name (GLOBAL 'torch <name>'), for _rebuild_tensor_v3. */
const DTYPES: Record<string, DataType> = {
  float32: DataType.FLOAT,
  float64: DataType.DOUBLE,
  float16: DataType.FLOAT16,
  bfloat16: DataType.BFLOAT16,
  int64: DataType.INT64,
  int32: DataType.INT32,
  int16: DataType.INT16,
  int8: DataType.INT8,
  uint8: DataType.UINT8,
  uint16: DataType.UINT16,
  uint32: DataType.UINT32,
  uint64: DataType.UINT64,
  bool: DataType.BOOL,
  float8_e4m3fn: DataType.FLOAT8E4M3FN,
  float8_e4m3fnuz: DataType.FLOAT8E4M3FNUZ,
  float8_e5m2: DataType.FLOAT8E5M2,
  float8_e5m2fnuz: DataType.FLOAT8E5M2FNUZ,
  float8_e8m0fnu: DataType.FLOAT8E8M0,
  complex64: DataType.COMPLEX64,
  complex128: DataType.COMPLEX128,
}

/** Everything GLOBAL may resolve to, keyed 'module.name'; built per file so errors can name it. */
function allowList(file: string): Map<string, PyValue> {
  const fn = (name: string, apply: (a: readonly PyValue[]) => PyValue) => [name, new PyCallable(name, apply)] as const
  const allowed = new Map<string, PyValue>([
    fn('collections.OrderedDict', (a) => orderedDict(file, a)),
    fn('torch._utils._rebuild_tensor', (a) => rebuildTensor(file, '_rebuild_tensor', a, 4, 4, false)),
    fn('torch._utils._rebuild_tensor_v2', (a) => rebuildTensor(file, '_rebuild_tensor_v2', a, 6, 7, false)),
    fn('torch._utils._rebuild_tensor_v3', (a) => rebuildTensor(file, '_rebuild_tensor_v3', a, 7, 8, true)),
    fn('torch._utils._rebuild_parameter', (a) => rebuildParameter(file, '_rebuild_parameter', a, 3)),
    fn('torch._utils._rebuild_parameter_with_state', (a) => rebuildParameter(file, '_rebuild_parameter_with_state', a, 4)),
    fn('torch._tensor._rebuild_from_type_v2', (a) => rebuildFromType(file, a)),
    ['torch.Tensor', new TensorType('torch.Tensor')],
    ['torch.nn.parameter.Parameter', new TensorType('torch.nn.parameter.Parameter')],
    ['torch.storage.UntypedStorage', new StorageType('UntypedStorage', DataType.UINT8)],
    ['torch.UntypedStorage', new StorageType('UntypedStorage', DataType.UINT8)],
  ])
  for (const [name, dt] of Object.entries(STORAGE_TYPES)) allowed.set(`torch.${name}`, new StorageType(name, dt))
  for (const [name, dt] of Object.entries(DTYPES)) allowed.set(`torch.${name}`, new DtypeValue(name, dt))
  return allowed
}

function refuse(file: string, module: string, name: string): never {
  fail(file, `pickle refers to '${printable(`${module}.${name}`)}', which a state dict does not need (refusing to load)`)
}

/** Hooks for the pickle that holds the state dict. */
function stateDictHooks(file: string, persistentLoad: (pid: PyValue) => PyValue): UnpickleHooks {
  const allowed = allowList(file)
  return {
    findGlobal: (module, name) => allowed.get(`${module}.${name}`) ?? refuse(file, module, name),
    persistentLoad,
  }
}

/** Hooks for pickles that hold plain data only (the legacy format's header and key list). */
function plainHooks(file: string): UnpickleHooks {
  return {
    findGlobal: (module, name) => refuse(file, module, name),
    persistentLoad: () => fail(file, 'a persistent id where plain data was expected'),
  }
}

// --- the allow-listed functions ----------------------------------------------------------------

function orderedDict(file: string, a: readonly PyValue[]): PyDict {
  if (a.length !== 0) fail(file, `collections.OrderedDict called with ${a.length} arguments; a state dict pickles it with none`)
  return new PyDict('collections.OrderedDict')
}

/** _rebuild_tensor(storage, offset, size, stride), _v2(…, requires_grad, hooks[, metadata]), _v3(…, dtype[, metadata]). */
function rebuildTensor(file: string, fn: string, a: readonly PyValue[], min: number, max: number, withDtype: boolean): TensorRef {
  const where = `torch._utils.${fn}`
  arity(file, where, a, min, max)
  const storage = a[0]
  if (!(storage instanceof Storage)) fail(file, `${where}: first argument is ${aType(a[0]!)}, not a storage`)
  const offset = nonNegative(file, where, 'storage offset', a[1]!)
  const size = intTuple(file, where, 'size', a[2]!)
  const stride = intTuple(file, where, 'stride', a[3]!)
  if (size.length > MAX_RANK) fail(file, `${where}: size has ${size.length} dimensions, more than ${MAX_RANK}`)
  if (size.length !== stride.length) fail(file, `${where}: size has ${size.length} dimensions but stride has ${stride.length}`)
  if (a.length > 4) checkGradArgs(file, where, a[4]!, a[5]!)
  let dtype = storage.type.dtype
  if (withDtype) {
    const d = a[6]!
    if (!(d instanceof DtypeValue)) fail(file, `${where}: dtype argument is ${aType(d)}, not a torch dtype`)
    dtype = d.dtype
  }
  return new TensorRef(storage, dtype, offset, size, stride)
}

function rebuildParameter(file: string, fn: string, a: readonly PyValue[], n: number): TensorRef {
  const where = `torch._utils.${fn}`
  arity(file, where, a, n, n)
  const data = a[0]!
  if (!(data instanceof TensorRef)) fail(file, `${where}: data is ${aType(data)}, not a tensor`)
  checkGradArgs(file, where, a[1]!, a[2]!)
  return data
}

/** _rebuild_from_type_v2(func, new_type, args, state): a tensor (or Parameter) with Python attributes. */
function rebuildFromType(file: string, a: readonly PyValue[]): TensorRef {
  const where = 'torch._tensor._rebuild_from_type_v2'
  arity(file, where, a, 4, 4)
  const [func, newType, args, state] = a as [PyValue, PyValue, PyValue, PyValue]
  if (!(func instanceof PyCallable)) fail(file, `${where}: func is ${aType(func)}, not an allowed function`)
  if (!(newType instanceof TensorType)) fail(file, `${where}: type is ${aType(newType)}, not a tensor type`)
  if (!(args instanceof PyTuple)) fail(file, `${where}: args is ${aType(args)}, not a tuple`)
  if (state !== null && !(state instanceof PyDict)) fail(file, `${where}: state is ${aType(state)}, not a dict`)
  // torch.save wraps a rebuild function in it once; nesting it would recurse once per level.
  if (func.typeName === where) fail(file, `${where}: func is ${where} itself; torch.save never nests it`)
  const t = func.apply(args.items)
  if (!(t instanceof TensorRef)) fail(file, `${where}: ${func.typeName} gave ${aType(t)}, not a tensor`)
  return t
}

function arity(file: string, where: string, a: readonly PyValue[], min: number, max: number): void {
  if (a.length < min || a.length > max) {
    fail(file, `${where} called with ${a.length} arguments, expected ${min === max ? min : `${min} to ${max}`}`)
  }
}

function checkGradArgs(file: string, where: string, requiresGrad: PyValue, hooks: PyValue): void {
  if (typeof requiresGrad !== 'boolean') fail(file, `${where}: requires_grad is ${aType(requiresGrad)}, not a bool`)
  if (!(hooks instanceof PyDict)) fail(file, `${where}: backward_hooks is ${aType(hooks)}, not a dict`)
}

function nonNegative(file: string, where: string, what: string, v: PyValue): bigint {
  if (typeof v !== 'bigint') fail(file, `${where}: ${what} is ${aType(v)}, not an int`)
  if (v < 0n) fail(file, `${where}: ${what} ${v} is negative`)
  return v
}

function intTuple(file: string, where: string, what: string, v: PyValue): bigint[] {
  if (!(v instanceof PyTuple)) fail(file, `${where}: ${what} is ${aType(v)}, not a tuple of ints`)
  return v.items.map((x) => nonNegative(file, where, what, x))
}

// --- persistent ids: storages ----------------------------------------------------------------

interface Pid {
  type: StorageType
  key: string
  numel: bigint
  /** Legacy only: (view_key, offset, view_size) in elements. */
  view: { key: string; offset: bigint; size: bigint } | null
}

/** ('storage', storage_type, key, location, numel) — the legacy format adds view_metadata. */
function parsePid(file: string, pid: PyValue, legacy: boolean): Pid {
  const n = legacy ? 6 : 5
  if (!(pid instanceof PyTuple) || pid.items.length !== n || pid.items[0] !== 'storage') {
    fail(file, `persistent id is not a ${n}-tuple ('storage', type, key, location, numel${legacy ? ', view' : ''})`)
  }
  const [, type, key, location, numel] = pid.items as PyValue[]
  if (!(type instanceof StorageType)) fail(file, `persistent id names ${aType(type!)}, not a storage type`)
  const k = storageKey(file, key!)
  if (typeof location !== 'string') fail(file, `storage '${k}': location is ${aType(location!)}, not a string`)
  const count = nonNegative(file, `storage '${k}'`, 'numel', numel!)
  return { type, key: k, numel: count, view: legacy ? parseView(file, k, pid.items[5]!) : null }
}

function parseView(file: string, key: string, v: PyValue): Pid['view'] {
  if (v === null) return null
  if (!(v instanceof PyTuple) || v.items.length !== 3) fail(file, `storage '${key}': view metadata is not (view_key, offset, size)`)
  const where = `storage '${key}' view`
  return { key: storageKey(file, v.items[0]!), offset: nonNegative(file, where, 'offset', v.items[1]!), size: nonNegative(file, where, 'size', v.items[2]!) }
}

function storageKey(file: string, key: PyValue): string {
  if (typeof key !== 'string' || !/^[A-Za-z0-9_]{1,64}$/.test(key)) {
    fail(file, `storage key ${typeof key === 'string' ? `'${printable(key)}'` : `of type ${typeName(key)}`} is not a short alphanumeric name`)
  }
  return key
}

function byteCount(file: string, key: string, type: StorageType, numel: bigint): number {
  const bytes = numel * BigInt(elementSize(type.dtype))
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) fail(file, `storage '${key}': ${type.name} of ${numel} elements is absurdly large`)
  return Number(bytes)
}

/** The storage under `key`, made on first use; later uses must agree on its type and size. */
function storageFor(file: string, storages: Map<string, Storage>, key: string, type: StorageType, numel: bigint): Storage {
  const nbytes = byteCount(file, key, type, numel)
  const seen = storages.get(key)
  if (!seen) {
    const s = new Storage(key, type, nbytes)
    storages.set(key, s)
    return s
  }
  if (seen.type.dtype !== type.dtype || seen.nbytes !== nbytes) {
    fail(file, `storage '${key}' is used as ${seen.type.name} of ${seen.nbytes} bytes and as ${type.name} of ${nbytes} bytes`)
  }
  return seen
}

function zipPersistentLoad(file: string, storages: Map<string, Storage>): (pid: PyValue) => PyValue {
  return (raw) => {
    const pid = parsePid(file, raw, false)
    return storageFor(file, storages, pid.key, pid.type, pid.numel)
  }
}

/** Legacy persistent ids may name a view (offset, size) of a root storage, cached under its own key. */
function legacyPersistentLoad(file: string, storages: Map<string, Storage>, views: Map<string, Storage>): (pid: PyValue) => PyValue {
  return (raw) => {
    const pid = parsePid(file, raw, true)
    const root = storageFor(file, storages, pid.key, pid.type, pid.numel)
    if (!pid.view) return root
    const es = BigInt(elementSize(pid.type.dtype))
    const end = (pid.view.offset + pid.view.size) * es
    if (end > BigInt(root.nbytes)) fail(file, `storage '${pid.view.key}': view ends at byte ${end} of storage '${pid.key}', which has ${root.nbytes}`)
    const seen = views.get(pid.view.key)
    if (seen) return seen
    const view = new Storage(pid.view.key, pid.type, Number(pid.view.size * es), { root, byteOffset: Number(pid.view.offset * es) })
    views.set(pid.view.key, view)
    return view
  }
}

function elementSize(dtype: DataType): number {
  return byteLengthOf(dtype, 1)
}

// --- the ZIP format ------------------------------------------------------------------------------

function readZipFormat(file: string, buf: Buffer): Map<string, Tensor> {
  const zip = readZip(file, buf)
  const prefix = archivePrefix(file, zip)
  checkByteOrder(file, zip, prefix)
  const pklName = `${prefix}data.pkl`
  const pklSize = zip.entries.get(pklName)!.size
  if (pklSize > MAX_PICKLE_BYTES) fail(file, `'${printable(pklName)}' is ${pklSize} bytes, over the ${MAX_PICKLE_BYTES}-byte limit for a state dict's pickle`)
  const pkl = zip.read(pklName)
  const storages = new Map<string, Storage>()
  const { value } = unpickle(pkl, 0, file, printable(pklName), stateDictHooks(file, zipPersistentLoad(file, storages)))
  // Every entry must hold exactly its storage's bytes, and all of them fit the inflation budget, before one is inflated.
  const names = [...storages.values()].map((s) => zipStorageEntry(file, zip, prefix, s))
  zip.checkInflation(names)
  for (const s of storages.values()) s.bytes = zip.read(`${prefix}data/${s.key}`)
  return stateDict(file, value, storages.values())
}

/** The archive's folder: the one `<name>/data.pkl` entry. */
function archivePrefix(file: string, zip: ZipArchive): string {
  const pickles = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n))
  if (pickles.length === 0) fail(file, 'a ZIP archive without <archive>/data.pkl: not a torch.save file')
  if (pickles.length > 1) fail(file, `a ZIP archive with ${pickles.length} data.pkl entries; torch.save writes one`)
  return pickles[0]!.slice(0, -'data.pkl'.length)
}

function checkByteOrder(file: string, zip: ZipArchive, prefix: string): void {
  const name = `${prefix}byteorder`
  const entry = zip.entries.get(name)
  if (!entry) return // torch < 1.10 wrote none; its files are little-endian
  if (entry.size > MAX_BYTEORDER_BYTES) fail(file, `'${printable(name)}' is ${entry.size} bytes; torch writes 'little' or 'big'`)
  const order = Buffer.from(zip.read(name)).toString('latin1').trim()
  if (order !== 'little') fail(file, `byte order '${printable(order)}' is not supported (only little-endian checkpoints)`)
}

/** The entry holding storage `s`, its (inflated) size checked against the storage's bytes. */
function zipStorageEntry(file: string, zip: ZipArchive, prefix: string, s: Storage): string {
  const name = `${prefix}data/${s.key}`
  const entry = zip.entries.get(name)
  if (!entry) fail(file, `storage '${s.key}' has no entry '${printable(name)}' in the archive`)
  if (entry.size !== s.nbytes) {
    fail(file, `storage '${s.key}': ${s.type.name} of ${s.nbytes / elementSize(s.type.dtype)} elements needs ${s.nbytes} bytes but '${printable(name)}' holds ${entry.size}`)
  }
  return name
}

// --- the legacy format ---------------------------------------------------------------------------

/** A pickle (PROTO 2–5) first: the legacy format, or some other pickle that its magic number check rejects. */
function looksLikeLegacy(buf: Buffer): boolean {
  return buf.length >= 2 && buf[0] === 0x80 && buf[1]! >= 2 && buf[1]! <= 5
}

function looksLikeTar(buf: Buffer): boolean {
  return buf.length >= 262 && buf.subarray(257, 262).toString('latin1') === 'ustar'
}

function readLegacyFormat(file: string, buf: Buffer): Map<string, Tensor> {
  const plain = plainHooks(file)
  const magic = unpickle(buf, 0, file, 'magic number (legacy format)', plain)
  if (magic.value !== LEGACY_MAGIC) fail(file, 'not a torch.save file: wrong magic number (legacy format)')
  const proto = unpickle(buf, magic.end, file, 'protocol version (legacy format)', plain)
  if (proto.value !== LEGACY_PROTOCOL) fail(file, `legacy format protocol version ${String(proto.value)} is not ${LEGACY_PROTOCOL}`)
  const sys = unpickle(buf, proto.end, file, 'sys info (legacy format)', plain)
  checkSysInfo(file, sys.value)
  const storages = new Map<string, Storage>()
  const views = new Map<string, Storage>()
  const hooks = stateDictHooks(file, legacyPersistentLoad(file, storages, views))
  const main = unpickle(buf, sys.end, file, 'state dict (legacy format)', hooks)
  const keys = unpickle(buf, main.end, file, 'storage keys (legacy format)', plain)
  const end = readLegacyStorages(file, buf, keys.end, keys.value, storages)
  if (end !== buf.length) fail(file, `${buf.length - end} bytes after the last storage (legacy format)`)
  for (const v of views.values()) v.bytes = v.view!.root.bytes!.subarray(v.view!.byteOffset, v.view!.byteOffset + v.nbytes)
  return stateDict(file, main.value, storages.values())
}

function checkSysInfo(file: string, info: PyValue): void {
  if (!(info instanceof PyDict)) fail(file, `legacy format sys info is ${aType(info)}, not a dict`)
  if (info.items.get('little_endian') !== true) fail(file, 'big-endian checkpoints are not supported (legacy format sys info)')
}

/** After the key list: per key, an int64 element count and the storage's bytes. Returns the end offset. */
function readLegacyStorages(file: string, buf: Buffer, start: number, keys: PyValue, storages: Map<string, Storage>): number {
  if (!(keys instanceof PyList)) fail(file, `legacy format storage key list is ${aType(keys)}, not a list`)
  let at = start
  for (const raw of keys.items) {
    const key = storageKey(file, raw)
    const s = storages.get(key)
    if (!s) fail(file, `storage '${key}' is in the key list but no tensor uses it (legacy format)`)
    if (s.bytes) fail(file, `storage '${key}' appears twice in the key list (legacy format)`)
    if (at + 8 > buf.length) fail(file, `truncated: storage '${key}' has no element count at byte ${at} (legacy format)`)
    const numel = buf.readBigInt64LE(at)
    const want = BigInt(s.nbytes / elementSize(s.type.dtype))
    if (numel !== want) fail(file, `storage '${key}': ${numel} elements in the data, ${want} in the state dict (legacy format)`)
    at += 8
    if (at + s.nbytes > buf.length) fail(file, `truncated: storage '${key}' needs ${s.nbytes} bytes at byte ${at}, the file has ${buf.length - at} left (legacy format)`)
    s.bytes = buf.subarray(at, at + s.nbytes)
    at += s.nbytes
  }
  for (const s of storages.values()) if (!s.bytes) fail(file, `storage '${s.key}' is used but not in the key list (legacy format)`)
  return at
}

// --- tensors -------------------------------------------------------------------------------------

/** Bytes the file's tensors (views and copies) may still take, out of `total`. */
interface TensorBudget {
  total: number
  storageBytes: number
  left: number
}

/** The root object must be a dict of name → tensor. `storages` (roots, not views) set the tensor budget. */
function stateDict(file: string, root: PyValue, storages: Iterable<Storage>): Map<string, Tensor> {
  if (!(root instanceof PyDict)) fail(file, `holds ${aType(root)}, not a state dict (a dict of name → tensor)`)
  let storageBytes = 0
  for (const s of storages) storageBytes += s.nbytes
  const total = TENSOR_BYTES_PER_STORAGE_BYTE * storageBytes + TENSOR_SLACK_BYTES
  const budget: TensorBudget = { total, storageBytes, left: total }
  const out = new Map<string, Tensor>()
  for (const [name, value] of root.items) {
    if (typeof name !== 'string') fail(file, `state dict key ${printable(String(name))} is not a string`)
    if (!(value instanceof TensorRef)) fail(file, `'${printable(name)}' holds ${aType(value)}, not a tensor`)
    out.set(name, materialize(file, name, value, budget))
  }
  return out
}

/** A Tensor for `t`, charged to `budget`: a view of its storage's bytes when contiguous, else a contiguous copy. */
function materialize(file: string, name: string, t: TensorRef, budget: TensorBudget): Tensor {
  const where = `tensor '${printable(name)}'`
  const bytes = t.storage.bytes!
  const es = elementSize(t.dtype)
  const numel = t.size.reduce((a, b) => a * b, 1n)
  const shape = `${dtypeName(t.dtype)}[${t.size.join(', ')}]`
  if (numel === 0n) {
    if (t.size.some((d) => d > BigInt(Number.MAX_SAFE_INTEGER))) fail(file, `${where}: ${shape} has an absurd dimension`)
    return new Tensor(t.dtype, t.size.map(Number), new Uint8Array(0))
  }
  const last = t.size.reduce((acc, d, i) => acc + (d - 1n) * t.stride[i]!, t.offset)
  const reach = (last + 1n) * BigInt(es)
  if (reach > BigInt(bytes.byteLength)) {
    fail(file, `${where}: ${shape} at offset ${t.offset} with strides (${t.stride.join(', ')}) reaches byte ${reach} of storage '${t.storage.key}', which has ${bytes.byteLength}`)
  }
  const outBytes = numel * BigInt(es)
  const size = t.size.map(Number)
  const stride = t.stride.map(Number)
  const start = Number(t.offset) * es
  const contiguous = isContiguous(size, stride)
  if (outBytes > BigInt(budget.left)) {
    const strides = `strides (${t.stride.join(', ')})`
    const what = contiguous ? `a view of storage '${t.storage.key}'` : overlapsItself(t.size, t.stride) ? `expanded by ${strides}` : `a copy for ${strides}`
    const left = budget.left === budget.total ? '' : ` (${budget.left} of them left)`
    fail(file, `${where}: ${shape}, ${what}, would take ${outBytes} bytes, over the file's tensor budget of ${budget.total} bytes${left}: ${TENSOR_BYTES_PER_STORAGE_BYTE} × its ${budget.storageBytes} bytes of storages + ${TENSOR_SLACK_BYTES}`)
  }
  budget.left -= Number(outBytes)
  if (contiguous) return new Tensor(t.dtype, size, bytes.subarray(start, start + Number(outBytes)))
  return new Tensor(t.dtype, size, gather(bytes, es, start, size, stride))
}

/** Whether two index tuples of a view reach the same element (sizes ≥ 1; torch's conservative test). */
export function overlapsItself(size: readonly bigint[], stride: readonly bigint[]): boolean {
  const dims = size.map((n, i) => ({ n, s: stride[i]! })).filter((d) => d.n > 1n)
  dims.sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : 0))
  let span = 1n
  for (const d of dims) {
    if (d.s < span) return true
    span += (d.n - 1n) * d.s
  }
  return false
}

/** Row-major strides (dimensions of size 1 may have any stride). */
export function isContiguous(size: readonly number[], stride: readonly number[]): boolean {
  let expect = 1
  for (let i = size.length - 1; i >= 0; i--) {
    if (size[i] !== 1 && stride[i] !== expect) return false
    expect *= size[i]!
  }
  return true
}

/** Copy a strided view (rank ≥ 1, sizes ≥ 1) into a contiguous buffer, row by row. */
export function gather(src: Uint8Array, es: number, start: number, size: readonly number[], stride: readonly number[]): Uint8Array {
  const rank = size.length
  const inner = size[rank - 1]!
  const step = stride[rank - 1]! * es
  const rows = size.slice(0, -1).reduce((a, b) => a * b, 1)
  const out = new Uint8Array(rows * inner * es)
  const index = new Array<number>(rank - 1).fill(0)
  let base = start
  let o = 0
  for (let row = 0; row < rows; row++) {
    for (let j = 0, s = base; j < inner; j++, s += step) {
      for (let b = 0; b < es; b++) out[o++] = src[s + b]!
    }
    for (let d = rank - 2; d >= 0; d--) {
      base += stride[d]! * es
      if (++index[d]! < size[d]!) break
      base -= stride[d]! * es * size[d]!
      index[d] = 0
    }
  }
  return out
}

// --- the file ------------------------------------------------------------------------------------


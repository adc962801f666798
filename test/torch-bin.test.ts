/**
 * pytorch_model.bin: torch.save files (ZIP and legacy formats) read without running pickle code.
 * The albert-mlm-bin fixture converts and matches its transformers golden; tied weights share
 * bytes; views with offsets and strides, every dtype, fp16/bf16 models read byte-exact against
 * what torch wrote (fixtures/torch-bin/*.expected.safetensors); hostile pickles are refused and
 * their command does not run; damaged files give one line naming the file.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { readTorchBin } from '../src/checkpoint/torch-bin.js'
import { readSafetensors } from '../src/checkpoint/safetensors.js'
import { readZip } from '../src/checkpoint/zip.js'
import { buildAlbert } from '../src/builder/albert.js'
import { resolveTask } from '../src/checkpoint/task.js'
import { modelBytes } from '../src/onnx/file.js'
import { createSession, runSession } from '../src/runtime/session.js'
import { compareOutputs } from '../src/verify/compare.js'
import { DataType } from '../src/ir/dtype.js'
import type { Tensor } from '../src/ir/tensor.js'
import { UserError } from '../src/util/errors.js'
import { BIN, FIXTURES, fixtureDir, fixtureGolden, fixtureInputs, tempDir } from './support/helpers.js'
import { dictPickle, floats, legacyFile, makeZip, op, tensorOps, torchZip } from './support/torch-files.js'

const TOLERANCE = 1e-5
const UNIT = path.join(FIXTURES, 'torch-bin')
const HOSTILE = path.join(FIXTURES, 'hostile')
/** What the hostile pickles `touch` in the current directory when unpickled by Python. */
const MARKER = 'albertkit-hostile-marker'
const TIED: Record<string, string> = {
  'predictions.decoder.weight': 'albert.embeddings.word_embeddings.weight',
  'predictions.decoder.bias': 'predictions.bias',
}
const work = tempDir()
let counter = 0

const TORCH_DTYPES: Record<string, DataType> = {
  float32: DataType.FLOAT, float64: DataType.DOUBLE, float16: DataType.FLOAT16, bfloat16: DataType.BFLOAT16,
  int64: DataType.INT64, int32: DataType.INT32, int16: DataType.INT16, int8: DataType.INT8, uint8: DataType.UINT8,
  uint16: DataType.UINT16, uint32: DataType.UINT32, uint64: DataType.UINT64, bool: DataType.BOOL,
  float8_e4m3fn: DataType.FLOAT8E4M3FN, float8_e5m2: DataType.FLOAT8E5M2, float8_e4m3fnuz: DataType.FLOAT8E4M3FNUZ,
  float8_e5m2fnuz: DataType.FLOAT8E5M2FNUZ, float8_e8m0fnu: DataType.FLOAT8E8M0, complex64: DataType.COMPLEX64,
  complex128: DataType.COMPLEX128,
}

function write(bytes: Uint8Array, name = `case${counter++}.bin`): string {
  const file = path.join(work, name)
  fs.writeFileSync(file, bytes)
  return file
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** readTorchBin(file) fails with one line that starts with the file and has every fragment. */
function expectError(file: string, ...fragments: (string | RegExp)[]): string {
  let message = ''
  assert.throws(
    () => readTorchBin(file),
    (e: unknown) => {
      assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`)
      assert.ok(e.message.startsWith(`${file}: `), `message names the file: ${e.message}`)
      assert.ok(!e.message.includes('\n'), `one line: ${e.message}`)
      for (const f of fragments) assert.match(e.message, typeof f === 'string' ? new RegExp(escape(f)) : f)
      message = e.message
      return true
    },
  )
  return message
}

/** Every tensor of `file` has the dtype, shape and bytes torch wrote into `<expected>.expected.safetensors`. */
function assertMatchesExpected(file: string, expected: string): Map<string, Tensor> {
  const got = readTorchBin(file)
  const ref = readSafetensors(path.join(UNIT, `${expected}.expected.safetensors`))
  assert.deepEqual([...got.keys()].sort(), [...ref.tensors.keys()].sort(), `${path.basename(file)}: the same names`)
  const described = JSON.parse(ref.metadata.tensors!) as Record<string, { dtype: string; shape: number[] }>
  for (const [name, bytes] of ref.tensors) {
    const meta = described[name]!
    const t = got.get(name)!
    assert.equal(t.dtype, TORCH_DTYPES[meta.dtype], `${name}: dtype ${meta.dtype}`)
    assert.deepEqual([...t.dims], meta.shape, `${name}: shape`)
    assert.ok(Buffer.from(t.data).equals(Buffer.from(bytes.data)), `${name}: bytes differ from torch's`)
  }
  return got
}

/** Both tensors are views of the same bytes (not equal copies). */
function assertSameBytes(a: Tensor, b: Tensor, what: string): void {
  assert.equal(a.data.buffer, b.data.buffer, `${what}: one buffer`)
  assert.equal(a.data.byteOffset, b.data.byteOffset, `${what}: same offset`)
  assert.equal(a.data.byteLength, b.data.byteLength, `${what}: same length`)
}

/** Build the fixture's graph from `dir` and compare every output with albert-mlm's golden. */
async function parityOf(dir: string): Promise<Map<string, number>> {
  const ckpt = openCheckpoint(dir)
  const task = resolveTask(ckpt.config, undefined, ckpt.configFile)
  const { model, unused } = buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile })
  assert.deepEqual(unused, [], 'every tensor used (tied aliases are not unused)')
  const session = await createSession(modelBytes(model), { optimization: 'disabled' })
  const outputs = await runSession(session, fixtureInputs('albert-mlm-bin'))
  const golden = fixtureGolden('albert-mlm-bin')
  const result = new Map<string, number>()
  for (const [name, ref] of golden) {
    const got = outputs.get(name)!
    assert.deepEqual(got.dims, [...ref.dims], `${name}: shape`)
    result.set(name, compareOutputs(ref.toFloat32(), got.data).maxAbs)
  }
  return result
}

/** A checkpoint folder: albert-mlm-bin's config.json with `bin` as pytorch_model.bin. */
function folderWith(bin: string): string {
  const dir = path.join(work, `ckpt${counter++}`)
  fs.mkdirSync(dir)
  fs.copyFileSync(path.join(fixtureDir('albert-mlm-bin'), 'config.json'), path.join(dir, 'config.json'))
  fs.copyFileSync(bin, path.join(dir, 'pytorch_model.bin'))
  return dir
}

describe('pytorch_model.bin: albert-mlm-bin (torch.save of AlbertForMaskedLM.state_dict())', () => {
  it(`converts and matches the transformers golden within ${TOLERANCE}`, async (t) => {
    assert.equal(openCheckpoint(fixtureDir('albert-mlm-bin')).format, 'pytorch-bin')
    const parity = await parityOf(fixtureDir('albert-mlm-bin'))
    for (const [name, maxAbs] of parity) {
      t.diagnostic(`${name}: max abs ${maxAbs.toExponential(2)}`)
      assert.ok(maxAbs <= TOLERANCE, `${name}: max abs ${maxAbs} > ${TOLERANCE}`)
    }
  })

  it('holds albert-mlm/model.safetensors byte for byte, plus the tied aliases', () => {
    const bin = readTorchBin(path.join(fixtureDir('albert-mlm-bin'), 'pytorch_model.bin'))
    const st = readSafetensors(path.join(fixtureDir('albert-mlm'), 'model.safetensors')).tensors
    assert.deepEqual([...bin.keys()].filter((k) => !(k in TIED)).sort(), [...st.keys()].sort())
    for (const [name, ref] of st) {
      const got = bin.get(name)!
      assert.equal(got.dtype, ref.dtype, name)
      assert.deepEqual(got.dims, ref.dims, name)
      assert.ok(Buffer.from(got.data).equals(Buffer.from(ref.data)), `${name}: bytes`)
    }
  })

  it('gives tied weights as views of one storage, and contiguous tensors as views of the file', () => {
    const bin = readTorchBin(path.join(fixtureDir('albert-mlm-bin'), 'pytorch_model.bin'))
    for (const [alias, source] of Object.entries(TIED)) assertSameBytes(bin.get(alias)!, bin.get(source)!, alias)
    const buffers = new Set([...bin.values()].map((t) => t.data.buffer))
    assert.equal(buffers.size, 1, 'every tensor is a view of the one file buffer (no copies)')
  })

  it('the CLI converts it', () => {
    const out = path.join(work, 'cli-out')
    const r = spawnSync(process.execPath, [BIN, 'convert', fixtureDir('albert-mlm-bin'), '--out', out, '--json', '--no-verify'], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.deepEqual(report.outputs, ['logits'])
    assert.ok(fs.statSync(path.join(out, 'onnx', 'model.onnx')).size > 0)
  })
})

describe('pytorch_model.bin: the legacy (non-zip) format', () => {
  it(`legacy-mlm.bin converts and matches the golden within ${TOLERANCE}`, async (t) => {
    const dir = folderWith(path.join(UNIT, 'legacy-mlm.bin'))
    const parity = await parityOf(dir)
    for (const [name, maxAbs] of parity) {
      t.diagnostic(`${name}: max abs ${maxAbs.toExponential(2)}`)
      assert.ok(maxAbs <= TOLERANCE, `${name}: max abs ${maxAbs}`)
    }
    const legacy = readTorchBin(path.join(UNIT, 'legacy-mlm.bin'))
    const zip = readTorchBin(path.join(fixtureDir('albert-mlm-bin'), 'pytorch_model.bin'))
    assert.deepEqual([...legacy.keys()], [...zip.keys()], 'same names, same order')
    for (const [name, z] of zip) assert.ok(Buffer.from(legacy.get(name)!.data).equals(Buffer.from(z.data)), name)
    for (const [alias, source] of Object.entries(TIED)) assertSameBytes(legacy.get(alias)!, legacy.get(source)!, alias)
  })
})

describe('pytorch_model.bin: sharded (pytorch_model.bin.index.json)', () => {
  it(`two .bin shards convert and match the golden within ${TOLERANCE}`, async (t) => {
    const dir = path.join(UNIT, 'sharded')
    const ckpt = openCheckpoint(dir)
    assert.equal(ckpt.format, 'pytorch-bin-sharded')
    assert.deepEqual(ckpt.weightFiles.map((f) => path.basename(f)), ['pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin'])
    for (const [name, maxAbs] of await parityOf(dir)) {
      t.diagnostic(`${name}: max abs ${maxAbs.toExponential(2)}`)
      assert.ok(maxAbs <= TOLERANCE, `${name}: max abs ${maxAbs}`)
    }
  })
})

describe('pytorch_model.bin: legacy storage views (view_metadata)', () => {
  const root: [string, number, Uint8Array] = ['root', 6, floats(1, 2, 3, 4, 5, 6)]

  it('a tensor on a view of a root storage reads the view', () => {
    const main = dictPickle([
      ['whole', tensorOps({ key: 'root', numel: 6, size: [6], stride: [1], legacyView: null })],
      ['part', tensorOps({ key: 'root', numel: 6, size: [3], stride: [1], legacyView: ['v', 2, 3] })],
      ['again', tensorOps({ key: 'root', numel: 6, offset: 1, size: [2], stride: [1], legacyView: ['v', 2, 3] })],
    ])
    const m = readTorchBin(write(legacyFile(main, [root])))
    assert.deepEqual(Array.from(m.get('whole')!.toFloat32()), [1, 2, 3, 4, 5, 6])
    assert.deepEqual(Array.from(m.get('part')!.toFloat32()), [3, 4, 5])
    assert.deepEqual(Array.from(m.get('again')!.toFloat32()), [4, 5])
    assert.equal(m.get('part')!.data.buffer, m.get('whole')!.data.buffer, 'a view, not a copy')
  })

  it('a view past its root, a tensor past its view, a key list that disagrees', () => {
    const past = dictPickle([['p', tensorOps({ key: 'root', numel: 6, size: [3], stride: [1], legacyView: ['v', 4, 3] })]])
    expectError(write(legacyFile(past, [root])), "storage 'v': view ends at byte 28 of storage 'root', which has 24")
    const over = dictPickle([['p', tensorOps({ key: 'root', numel: 6, size: [4], stride: [1], legacyView: ['v', 2, 3] })]])
    expectError(write(legacyFile(over, [root])), "tensor 'p'", "storage 'v', which has 12")
    const plain = dictPickle([['p', tensorOps({ key: 'root', numel: 6, size: [6], stride: [1], legacyView: null })]])
    expectError(write(legacyFile(plain, [['other', 6, floats(1, 2, 3, 4, 5, 6)]])), "storage 'other' is in the key list but no tensor uses it")
    expectError(write(legacyFile(plain, [['root', 5, floats(1, 2, 3, 4, 5)]])), "storage 'root': 5 elements in the data, 6 in the state dict")
  })
})

describe('pytorch_model.bin: views, storage offsets and strides', () => {
  for (const variant of ['views.bin', 'views-p4.bin', 'views-legacy.bin', 'views-nocrc.bin']) {
    it(`${variant} gives torch's values exactly`, () => {
      assertMatchesExpected(path.join(UNIT, variant), 'views')
    })
  }

  it('contiguous views share their storage bytes; strided ones are copies', () => {
    const v = readTorchBin(path.join(UNIT, 'views.bin'))
    const base = v.get('base')!
    for (const [name, offset] of [['rows', 6], ['row', 12], ['element', 22]] as const) {
      const t = v.get(name)!
      assert.equal(t.data.buffer, base.data.buffer, `${name}: a view`)
      assert.equal(t.data.byteOffset, base.data.byteOffset + offset * 4, `${name}: at its storage offset`)
    }
    for (const name of ['transposed', 'cols', 'strided']) assert.notEqual(v.get(name)!.data.buffer, base.data.buffer, `${name}: a copy`)
    // transposed[i][j] = base[j][i]
    const b = base.toFloat32()
    const tr = v.get('transposed')!.toFloat32()
    for (let i = 0; i < 6; i++) for (let j = 0; j < 4; j++) assert.equal(tr[i * 4 + j], b[j * 6 + i])
    assert.deepEqual(v.get('expanded')!.toNumbers(), [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2], 'stride 0')
    assert.deepEqual([...v.get('element')!.dims], [], '0-d')
    assert.equal(v.get('empty')!.byteLength, 0)
  })
})

describe('pytorch_model.bin: dtypes', () => {
  it('reads every dtype torch writes (typed storages and _rebuild_tensor_v3) exactly', () => {
    const got = assertMatchesExpected(path.join(UNIT, 'dtypes.bin'), 'dtypes')
    assert.equal(got.size, 21)
  })

  for (const [name, dtype] of [['mlm-fp16', DataType.FLOAT16], ['mlm-bf16', DataType.BFLOAT16]] as const) {
    it(`${name}.bin: the half-precision model, exact and still tied`, () => {
      const got = assertMatchesExpected(path.join(UNIT, `${name}.bin`), name)
      for (const t of got.values()) assert.equal(t.dtype, dtype)
      for (const [alias, source] of Object.entries(TIED)) assertSameBytes(got.get(alias)!, got.get(source)!, alias)
    })
  }
})

describe('pytorch_model.bin: pickles that would run code are refused', () => {
  const cases: [string, string][] = [
    ['posix-system.bin', 'posix.system'],
    ['builtins-eval.bin', 'builtins.eval'],
    ['after-tensors.bin', 'posix.system'],
    ['legacy-posix-system.bin', 'posix.system'],
  ]

  for (const [name, target] of cases) {
    it(`${name}: refused in one line, and its command did not run`, () => {
      const cwd = process.cwd()
      const sandbox = path.join(work, `sandbox${counter++}`)
      fs.mkdirSync(sandbox)
      process.chdir(sandbox) // where `touch` would have written
      try {
        expectError(path.join(HOSTILE, name), `pickle refers to '${target}', which a state dict does not need (refusing to load)`)
      } finally {
        process.chdir(cwd)
      }
      assert.deepEqual(fs.readdirSync(sandbox), [], 'the marker file does not exist')
    })
  }

  it('the CLI refuses posix-system.bin with exit code 3, and the command did not run', () => {
    const dir = folderWith(path.join(HOSTILE, 'posix-system.bin'))
    const sandbox = path.join(work, 'cli-sandbox')
    fs.mkdirSync(sandbox)
    const out = path.join(sandbox, 'out')
    const r = spawnSync(process.execPath, [BIN, 'convert', dir, '--out', out], { encoding: 'utf8', cwd: sandbox })
    assert.equal(r.status, 3, r.stderr)
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`)
    assert.match(r.stderr, /pytorch_model\.bin: pickle refers to 'posix\.system', which a state dict does not need \(refusing to load\)/)
    assert.ok(!fs.existsSync(path.join(sandbox, MARKER)), 'the marker file does not exist')
    assert.ok(!fs.existsSync(path.join(dir, MARKER)))
    assert.deepEqual(fs.readdirSync(sandbox), [], 'nothing written')
  })

  it('refuses every global outside the allow-list, exact names only', () => {
    const names = [['os', 'system'], ['subprocess', 'Popen'], ['builtins', 'exec'], ['torch', 'load'], ['torch._utils', '_rebuild_tensor_v2.__globals__'], ['torch.storage', '_load_from_bytes'], ['torch', 'QInt8Storage'], ['collections', 'OrderedDict ']]
    for (const [module, name] of names) {
      const pkl = Uint8Array.from([...op.proto(), ...op.global(module!, name!), ...op.emptyTuple, ...op.reduce, ...op.stop])
      expectError(write(torchZip(pkl, {})), `pickle refers to '${module}.${name}', which a state dict does not need`)
    }
  })

  it('refuses STACK_GLOBAL names too, and keeps the message on one line', () => {
    const pkl = Uint8Array.from([...op.proto(4), ...op.str('os'), ...op.str('system\nrm -rf /'), ...op.stackGlobal, ...op.stop])
    expectError(write(torchZip(pkl, {})), "pickle refers to 'os.system\\x0arm -rf /'")
  })

  it('applies REDUCE to allow-listed functions only', () => {
    const dtype = Uint8Array.from([...op.proto(), ...op.global('torch', 'float32'), ...op.emptyTuple, ...op.reduce, ...op.stop])
    expectError(write(torchZip(dtype, {})), 'REDUCE on a torch.dtype, which is not an allowed function')
    const str = Uint8Array.from([...op.proto(), ...op.str('os.system'), ...op.emptyTuple, ...op.reduce, ...op.stop])
    expectError(write(torchZip(str, {})), 'REDUCE on a str, which is not an allowed function')
  })

  it('refuses opcodes that create instances (INST, OBJ, NEWOBJ) by name', () => {
    const inst = Uint8Array.from([...op.proto(), ...op.mark, 0x69, ...Buffer.from('os\nsystem\n'), ...op.stop])
    expectError(write(torchZip(inst, {})), 'opcode INST (0x69) is not supported')
    const newobj = Uint8Array.from([...op.proto(), ...op.global('collections', 'OrderedDict'), ...op.emptyTuple, 0x81, ...op.stop])
    expectError(write(torchZip(newobj, {})), 'opcode NEWOBJ (0x81) is not supported')
  })
})

describe('pytorch_model.bin: hand-made files exercise the ZIP reader', () => {
  const pkl = dictPickle([
    ['w', tensorOps({ key: '0', numel: 6, size: [2, 3], stride: [3, 1] })],
    ['wt', tensorOps({ key: '0', numel: 6, size: [3, 2], stride: [1, 3] })],
    ['tail', tensorOps({ key: '0', numel: 6, offset: 4, size: [2], stride: [1] })],
  ])
  const storage = floats(1, 2, 3, 4, 5, 6)

  function check(file: string): void {
    const m = readTorchBin(file)
    assert.deepEqual(Array.from(m.get('w')!.toFloat32()), [1, 2, 3, 4, 5, 6])
    assert.deepEqual(Array.from(m.get('wt')!.toFloat32()), [1, 4, 2, 5, 3, 6])
    assert.deepEqual(Array.from(m.get('tail')!.toFloat32()), [5, 6])
  }

  it('reads stored entries with CRC and sizes in the local headers', () => check(write(torchZip(pkl, { 0: storage }))))
  it('reads zip64 end records and zip64 extra fields', () => check(write(torchZip(pkl, { 0: storage }, { zip64: true }))))
  it('reads a deflated data.pkl', () => check(write(torchZip(pkl, { 0: storage }, { deflatePickle: true }))))
  it('never uses entry names as paths', () => {
    const zip = makeZip([
      { name: 'archive/data.pkl', data: pkl },
      { name: '../../escape', data: Buffer.from('x') },
      { name: '/etc/passwd', data: Buffer.from('y') },
      { name: 'archive/data/0', data: storage },
    ])
    check(write(zip))
    assert.ok(!fs.existsSync(path.join(work, '..', '..', 'escape')))
  })
})

describe('pytorch_model.bin: damaged files give one line naming the file', () => {
  const good = (): Buffer => torchZip(dictPickle([['w', tensorOps({ key: '0', numel: 4, size: [4], stride: [1] })]]), { 0: floats(1, 2, 3, 4) })

  it('an empty file, a non-torch file, the old tar format', () => {
    expectError(write(new Uint8Array(0)), 'empty file')
    expectError(write(Buffer.from('{"not": "a checkpoint"}')), 'not a torch.save file')
    expectError(write(Uint8Array.from([...op.proto(), ...op.emptyDict, ...op.stop])), 'not a torch.save file: wrong magic number (legacy format)')
    const tar = Buffer.alloc(1024)
    tar.write('ustar', 257, 'latin1')
    expectError(write(tar), 'tar format of torch < 0.4 is not supported; re-save with torch>=1.6')
  })

  it('every truncation of a real file fails cleanly', () => {
    for (const name of ['views.bin', 'views-legacy.bin']) {
      const buf = fs.readFileSync(path.join(UNIT, name))
      for (let len = 1; len < buf.length; len += 23) {
        const file = write(buf.subarray(0, len), `trunc-${name}-${len}`)
        expectError(file)
      }
    }
  })

  it('every single-byte corruption of a real file either reads or fails cleanly', () => {
    for (const name of ['views.bin', 'views-legacy.bin']) {
      const buf = fs.readFileSync(path.join(UNIT, name))
      for (let at = 0; at < buf.length; at += 13) {
        const bad = Buffer.from(buf)
        bad[at] = bad[at]! ^ 0x5a
        const file = write(bad, `flip-${name}-${at}`)
        try {
          readTorchBin(file)
        } catch (e) {
          assert.ok(e instanceof UserError, `byte ${at} of ${name}: ${String(e)}`)
          assert.ok(e.message.startsWith(`${file}: `) && !e.message.includes('\n'), e.message)
        }
      }
    }
  })

  it('a truncated ZIP: no end record', () => {
    const buf = good()
    expectError(write(buf.subarray(0, buf.length - 10)), 'no end-of-central-directory record')
  })

  it('bad offsets: a local header offset past the data or into another entry', () => {
    const buf = good()
    const zip = readZip('x', buf)
    const entry = zip.entries.get('archive/data/0')!
    // find this entry's central record and point its local header offset elsewhere
    const cd = buf.indexOf(Buffer.from('PK\x01\x02', 'latin1'))
    const nameAt = buf.indexOf(Buffer.from('archive/data/0'), cd)
    const central = nameAt - 46
    for (const [offset, fragment] of [[buf.length - 30, 'past the entries'], [entry.headerOffset + 8, 'no local header'], [0, 'names another entry']] as const) {
      const bad = Buffer.from(buf)
      bad.writeUInt32LE(offset, central + 42)
      expectError(write(bad), "ZIP entry 'archive/data/0'", fragment)
    }
  })

  it('a central directory that does not end at the end record', () => {
    const buf = good()
    const bad = Buffer.from(buf)
    const eocd = bad.length - 22
    bad.writeUInt32LE(bad.readUInt32LE(eocd + 16) - 5, eocd + 16)
    expectError(write(bad), 'central directory', 'bad offsets')
  })

  it('a damaged storage: CRC-32 mismatch', () => {
    const buf = good()
    const e = readZip('x', buf).entries.get('archive/data/0')!
    const bad = Buffer.from(buf)
    bad[e.dataOffset + 1] = bad[e.dataOffset + 1]! ^ 1
    expectError(write(bad), "ZIP entry 'archive/data/0': CRC-32 mismatch")
  })

  it('an unknown opcode', () => {
    expectError(write(torchZip(Uint8Array.from([0x80, 2, 0xff]), {})), 'pickle archive/data.pkl, byte 2: unknown opcode 0xff')
  })

  it('a pickle that ends early, underflows, or reads an unset memo', () => {
    expectError(write(torchZip(Uint8Array.from([...op.proto(), ...op.emptyDict]), {})), 'ends before its STOP opcode')
    expectError(write(torchZip(Uint8Array.from([...op.proto(), ...op.setitem, ...op.stop]), {})), 'stack underflow')
    expectError(write(torchZip(Uint8Array.from([...op.proto(), ...op.binget(7), ...op.stop]), {})), 'memo index 7 was never stored')
    const longString = Uint8Array.from([...op.proto(), 0x58, 0xff, 0xff, 0xff, 0x7f, 0x41, ...op.stop])
    expectError(write(torchZip(longString, {})), 'string needs 2147483647 bytes but only 2 are left')
    const deep = Uint8Array.from([...op.proto(), ...Array(1001).fill(0x28), ...op.stop])
    expectError(write(torchZip(deep, {})), 'MARKs nest deeper than 1000')
  })

  it('a huge numel: the storage against its entry, the tensor against its storage', () => {
    const huge = dictPickle([['w', tensorOps({ key: '0', numel: 2n ** 61n, size: [4], stride: [1] })]])
    expectError(write(torchZip(huge, { 0: floats(1, 2, 3, 4) })), "storage '0': FloatStorage of 2305843009213693952 elements is absurdly large")
    const more = dictPickle([['w', tensorOps({ key: '0', numel: 1000, size: [4], stride: [1] })]])
    expectError(write(torchZip(more, { 0: floats(1, 2, 3, 4) })), "storage '0': FloatStorage of 1000 elements needs 4000 bytes but 'archive/data/0' holds 16")
    const big = dictPickle([['w', tensorOps({ key: '0', numel: 4, size: [2n ** 40n, 2n ** 40n], stride: [2n ** 40n, 1] })]])
    expectError(write(torchZip(big, { 0: floats(1, 2, 3, 4) })), "tensor 'w': FLOAT[1099511627776, 1099511627776]", 'reaches byte', "storage '0', which has 16")
    const offset = dictPickle([['w', tensorOps({ key: '0', numel: 4, offset: 2, size: [3], stride: [1] })]])
    expectError(write(torchZip(offset, { 0: floats(1, 2, 3, 4) })), "tensor 'w'", 'reaches byte 20')
    const expanded = dictPickle([['w', tensorOps({ key: '0', numel: 4, size: [2n ** 50n], stride: [0] })]])
    expectError(write(torchZip(expanded, { 0: floats(1, 2, 3, 4) })), "tensor 'w': FLOAT[1125899906842624], expanded by strides (0), would take 4503599627370496 bytes, over the file's tensor budget of 16777280 bytes")
  })

  it('a missing storage entry, a big-endian archive, no data.pkl', () => {
    const pkl = dictPickle([['w', tensorOps({ key: '3', numel: 4, size: [4], stride: [1] })]])
    expectError(write(torchZip(pkl, { 0: floats(1, 2, 3, 4) })), "storage '3' has no entry 'archive/data/3'")
    const ok = dictPickle([['w', tensorOps({ key: '0', numel: 4, size: [4], stride: [1] })]])
    expectError(write(torchZip(ok, { 0: floats(1, 2, 3, 4) }, { byteorder: 'big' })), "byte order 'big' is not supported")
    expectError(write(makeZip([{ name: 'model/weights', data: floats(1) }])), 'without <archive>/data.pkl')
  })

  it('a state dict holding something other than tensors', () => {
    expectError(write(torchZip(dictPickle([['step', op.int(5)]]), {})), "'step' holds an int, not a tensor")
    const list = Uint8Array.from([...op.proto(), ...op.emptyList, ...op.stop])
    expectError(write(torchZip(list, {})), 'holds a list, not a state dict')
  })

  it('a truncated legacy file names what is missing', () => {
    const buf = fs.readFileSync(path.join(UNIT, 'views-legacy.bin'))
    expectError(write(buf.subarray(0, buf.length - 3)), 'truncated', 'legacy')
    expectError(write(Buffer.concat([buf, Buffer.from([0])])), '1 bytes after the last storage (legacy format)')
  })
})

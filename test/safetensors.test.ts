import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { readSafetensors, encodeSafetensors, firstDuplicateKey } from '../src/checkpoint/safetensors.js'
import { Tensor } from '../src/ir/tensor.js'
import { DataType } from '../src/ir/dtype.js'
import { UserError } from '../src/util/errors.js'
import { tempDir } from './support/helpers.js'

const dir = tempDir()
let counter = 0

/** A safetensors file from a raw header text and a data section of `dataLen` bytes. */
function craft(header: string, dataLen: number, lengthField?: bigint): string {
  const file = path.join(dir, `case${counter++}.safetensors`)
  const h = Buffer.from(header)
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(lengthField ?? BigInt(h.byteLength))
  fs.writeFileSync(file, Buffer.concat([len, h, Buffer.alloc(dataLen, 7)]))
  return file
}

function expectError(file: string, ...fragments: (string | RegExp)[]): void {
  assert.throws(
    () => readSafetensors(file),
    (e: unknown) => {
      assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`)
      assert.ok(e.message.startsWith(file), `message names the file: ${e.message}`)
      assert.ok(!e.message.includes('\n'), 'one line')
      for (const f of fragments) assert.match(e.message, typeof f === 'string' ? new RegExp(escape(f)) : f)
      return true
    },
  )
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

describe('safetensors reader', () => {
  it('reads what it writes, tensors as views of one buffer', () => {
    const a = Tensor.fromFloat32([2, 3], Float32Array.of(1, 2, 3, 4, 5, 6))
    const b = Tensor.fromInt64([2], [7, -8])
    const file = path.join(dir, 'ok.safetensors')
    fs.writeFileSync(file, Buffer.concat(encodeSafetensors(new Map([['a', a], ['b', b]]), { format: 'pt' })))
    const st = readSafetensors(file)
    assert.deepEqual([...st.tensors.keys()].sort(), ['a', 'b'])
    assert.deepEqual(Array.from(st.tensors.get('a')!.toFloat32()), [1, 2, 3, 4, 5, 6])
    assert.deepEqual(st.tensors.get('b')!.toNumbers(), [7, -8])
    assert.equal(st.tensors.get('a')!.data.buffer, st.tensors.get('b')!.data.buffer, 'one backing buffer')
    assert.deepEqual(st.metadata, { format: 'pt' })
  })

  it('reads every dtype it lists', () => {
    const header = JSON.stringify({
      f16: { dtype: 'F16', shape: [2], data_offsets: [0, 4] },
      bf16: { dtype: 'BF16', shape: [2], data_offsets: [4, 8] },
      i8: { dtype: 'I8', shape: [3], data_offsets: [8, 11] },
      b: { dtype: 'BOOL', shape: [1], data_offsets: [11, 12] },
      u16: { dtype: 'U16', shape: [2], data_offsets: [12, 16] },
      f64: { dtype: 'F64', shape: [1], data_offsets: [16, 24] },
    })
    const st = readSafetensors(craft(header, 24))
    assert.equal(st.tensors.get('f16')!.dtype, DataType.FLOAT16)
    assert.equal(st.tensors.get('bf16')!.dtype, DataType.BFLOAT16)
    assert.equal(st.tensors.get('f64')!.dtype, DataType.DOUBLE)
    assert.equal(st.tensors.size, 6)
  })

  it('rejects a file shorter than the length field', () => {
    const file = path.join(dir, 'tiny.safetensors')
    fs.writeFileSync(file, Buffer.from([1, 2, 3]))
    expectError(file, 'truncated', '3 bytes')
  })

  it('rejects a header claiming an absurd size before allocating it', () => {
    expectError(craft('{}', 0, 2n ** 62n), 'over the 100000000-byte limit')
    expectError(craft('{}', 0, 2n ** 64n - 1n), 'over the 100000000-byte limit')
  })

  it('rejects a header longer than the file', () => {
    expectError(craft('{}', 0, 5000n), 'truncated', 'header claims 5000 bytes')
  })

  it('rejects invalid JSON, non-objects and bad UTF-8', () => {
    expectError(craft('{"a": ', 0), 'not valid JSON')
    expectError(craft('[1, 2]', 0), 'not a JSON object')
    const file = path.join(dir, 'utf8.safetensors')
    const h = Buffer.from([0x7b, 0xff, 0x7d])
    const len = Buffer.alloc(8)
    len.writeBigUInt64LE(3n)
    fs.writeFileSync(file, Buffer.concat([len, h]))
    expectError(file, 'not valid UTF-8')
  })

  it('rejects a truncated data section, naming the tensor', () => {
    const header = JSON.stringify({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } })
    expectError(craft(header, 10), "tensor 'w'", 'past the data section', 'truncated')
  })

  it('rejects overlapping offsets', () => {
    const header = JSON.stringify({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    })
    expectError(craft(header, 12), "tensor 'b'", 'overlaps')
  })

  it('rejects gaps and bytes no tensor covers', () => {
    const gap = JSON.stringify({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } })
    expectError(craft(gap, 8), "tensor 'a'", 'gap')
    const tail = JSON.stringify({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } })
    expectError(craft(tail, 8), 'tensors cover 4')
  })

  it('rejects an unknown dtype', () => {
    const header = JSON.stringify({ w: { dtype: 'Q7', shape: [1], data_offsets: [0, 1] } })
    expectError(craft(header, 1), "tensor 'w'", "unknown dtype 'Q7'")
  })

  it('rejects a byte span that does not match shape × dtype size', () => {
    const header = JSON.stringify({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } })
    expectError(craft(header, 8), "tensor 'w'", 'needs 12 bytes', 'span 8')
  })

  it('rejects bad shapes and offsets', () => {
    expectError(craft(JSON.stringify({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }), 4), "tensor 'w'", 'shape')
    expectError(craft(JSON.stringify({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }), 4), "tensor 'w'", 'before begin')
    expectError(craft(JSON.stringify({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }), 4), "tensor 'w'", 'data_offsets')
    expectError(craft(JSON.stringify({ w: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 4] } }), 4), "tensor 'w'", 'absurdly large')
  })

  it('rejects duplicate tensor names (JSON.parse would keep the last silently)', () => {
    const header = '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}'
    expectError(craft(header, 8), "tensor 'w' appears twice")
  })

  it('finds duplicate keys only at the top level', () => {
    assert.equal(firstDuplicateKey('{"a": {"x": 1, "x": 2}, "b": [{"a": 1}]}'), undefined)
    assert.equal(firstDuplicateKey('{"a\\"b": 1, "c": "a\\"b", "a\\"b": 2}'), 'a"b')
  })

  it('rejects a non-string metadata value', () => {
    expectError(craft(JSON.stringify({ __metadata__: { format: 1 } }), 0), '__metadata__')
  })
})

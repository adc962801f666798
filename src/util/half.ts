/** IEEE half and bfloat16 conversions on typed arrays. */

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** One float32 to IEEE half bits, round to nearest even; overflow gives ±Inf. */
export function toHalfBits(value: number): number {
  f32[0] = value
  const x = u32[0]!
  const sign = (x >>> 16) & 0x8000
  const exp = (x >>> 23) & 0xff
  let mant = x & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0) // Inf / NaN
  const e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign // underflow to zero
    mant |= 0x800000
    const shift = 14 - e
    let half = mant >>> shift
    const rem = mant & ((1 << shift) - 1)
    const mid = 1 << (shift - 1)
    if (rem > mid || (rem === mid && (half & 1) !== 0)) half++
    return sign | half
  }
  let half = sign | (e << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) !== 0)) half++ // may carry into the exponent: correct
  return half
}

const halfTable = buildHalfTable()

function buildHalfTable(): Float32Array {
  const table = new Float32Array(65536)
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1
    const exp = (h >>> 10) & 0x1f
    const mant = h & 0x3ff
    let v: number
    if (exp === 0) v = mant * 2 ** -24
    else if (exp === 0x1f) v = mant === 0 ? Infinity : NaN
    else v = (1 + mant / 1024) * 2 ** (exp - 15)
    table[h] = sign * v
  }
  return table
}

export function halfArrayToFloat32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  for (let i = 0; i < src.length; i++) out[i] = halfTable[src[i]!]!
  return out
}

export function float32ToHalfArray(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) out[i] = toHalfBits(src[i]!)
  return out
}

export function bf16ArrayToFloat32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length)
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16
  return out
}

/** Largest finite half value. */
export const HALF_MAX = 65504

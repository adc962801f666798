/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as LevelDB tables and TensorFlow tensor
 * bundles use it, with their "masked" form (rotate right 15, add 0xa282ead8), which they store so
 * that a CRC of data that itself holds CRCs stays well distributed.
 */

const POLY = 0x82f63b78
const MASK_DELTA = 0xa282ead8

/** Slicing-by-8 tables: TABLES[k][b] is the CRC contribution of byte b, k bytes from the end. */
const TABLES: Uint32Array[] = makeTables()

function makeTables(): Uint32Array[] {
  const first = new Uint32Array(256)
  for (let b = 0; b < 256; b++) {
    let c = b
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1
    first[b] = c >>> 0
  }
  const tables = [first]
  for (let k = 1; k < 8; k++) {
    const prev = tables[k - 1]!
    const t = new Uint32Array(256)
    for (let b = 0; b < 256; b++) t[b] = (prev[b]! >>> 8) ^ first[prev[b]! & 0xff]!
    tables.push(t)
  }
  return tables
}

/** The CRC-32C of `data`, continuing from `crc` (the CRC of the bytes before it; 0 to start). */
export function crc32c(data: Uint8Array, crc = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array]
  let c = ~crc >>> 0
  let i = 0
  const n = data.byteLength
  for (; i + 8 <= n; i += 8) {
    const lo = (c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) >>> 0
    c =
      t7[lo & 0xff]! ^
      t6[(lo >>> 8) & 0xff]! ^
      t5[(lo >>> 16) & 0xff]! ^
      t4[lo >>> 24]! ^
      t3[data[i + 4]!]! ^
      t2[data[i + 5]!]! ^
      t1[data[i + 6]!]! ^
      t0[data[i + 7]!]!
  }
  for (; i < n; i++) c = t0[(c ^ data[i]!) & 0xff]! ^ (c >>> 8)
  return ~c >>> 0
}

/** The masked form LevelDB and TensorFlow store. */
export function maskCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + MASK_DELTA) >>> 0
}

export function unmaskCrc(masked: number): number {
  const rot = (masked - MASK_DELTA) >>> 0
  return ((rot >>> 17) | (rot << 15)) >>> 0
}

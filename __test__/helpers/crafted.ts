// Crafted files for the tests of untrusted input (issue K).
import { encodeModel } from '../../src/output/model-file'

/** A model file whose metadata's class names are replaced after encoding (as a crafted file would hold them). */
export function modelWithNames(names: string[]): Uint8Array {
  const good = encodeModel({ layers: [4, names.length], classNames: names.map((_, k) => `c${k}`) }, [new Float32Array(4 * names.length), new Float32Array(names.length)])
  const n = Number(Buffer.from(good).readBigUInt64LE(0))
  const header = JSON.parse(Buffer.from(good.subarray(8, 8 + n)).toString('utf8'))
  const key = Object.keys(header.__metadata__)[0]
  const meta = JSON.parse(header.__metadata__[key])
  meta.classNames = names
  header.__metadata__[key] = JSON.stringify(meta)
  const json = Buffer.from(JSON.stringify(header))
  const padded = Math.ceil(json.length / 8) * 8
  const out = Buffer.alloc(8 + padded + (good.length - 8 - n), 0x20)
  out.writeBigUInt64LE(BigInt(padded), 0)
  json.copy(out, 8)
  Buffer.from(good.subarray(8 + n)).copy(out, 8 + padded)
  return out
}


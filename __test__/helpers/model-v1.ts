// The version-1 model-file writer as it was before version 2 (src/model-file.ts at 098feaf,
// `encode`), reproduced so that tests can make version-1 files without committing any: the
// metadata JSON under "kana-native" in the same key order, tensors layers.{l}.weight then
// layers.{l}.bias in layer order, the header space-padded to a multiple of 8, little-endian F32.
export interface V1Meta {
  layers: number[]
  classNames?: string[]
  inputShape?: [number, number]
  training?: Record<string, unknown>
  metrics?: Record<string, unknown>
  seed?: number
  createdAt?: string
}

export function encodeModelV1(meta: V1Meta, weights: Float32Array[]): Uint8Array {
  const full: Record<string, unknown> = {
    format: 'kana-native-model', version: 1, layers: [...meta.layers],
    activation: 'relu', output: 'softmax', normalization: { divideBy: 255 },
  }
  // checkMeta copied the optional fields in this order, when present.
  if (meta.inputShape !== undefined) full.inputShape = [meta.inputShape[0], meta.inputShape[1]]
  if (meta.classNames !== undefined) full.classNames = [...meta.classNames]
  if (meta.training !== undefined) full.training = meta.training
  if (meta.metrics !== undefined) full.metrics = meta.metrics
  if (meta.seed !== undefined) full.seed = meta.seed
  full.createdAt = meta.createdAt ?? new Date().toISOString()
  const header: Record<string, unknown> = { __metadata__: { 'kana-native': JSON.stringify(full) } }
  let size = 0
  for (let l = 0; l + 1 < meta.layers.length; l++) {
    const [i, o] = [meta.layers[l], meta.layers[l + 1]]
    for (const [name, shape] of [[`layers.${l}.weight`, [i, o]], [`layers.${l}.bias`, [o]]] as const) {
      const numel = shape.reduce((a, b) => a * b, 1)
      header[name] = { dtype: 'F32', shape, data_offsets: [size, size + 4 * numel] }
      size += 4 * numel
    }
  }
  const json = new TextEncoder().encode(JSON.stringify(header))
  const padded = Math.ceil(json.length / 8) * 8
  const bytes = new Uint8Array(8 + padded + size)
  const dv = new DataView(bytes.buffer)
  dv.setBigUint64(0, BigInt(padded), true)
  bytes.set(json, 8)
  bytes.fill(0x20, 8 + json.length, 8 + padded)
  let pos = 8 + padded
  for (const w of weights) {
    for (let k = 0; k < w.length; k++) dv.setFloat32(pos + 4 * k, w[k], true)
    pos += 4 * w.length
  }
  return bytes
}

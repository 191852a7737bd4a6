import { mulberry32 } from '../../src/data/split'

/**
 * Random pixels labelled by the largest of `classes` random projections (a learnable rule), with a
 * share `noise` of the labels replaced by random ones (so that a network can overfit them).
 */
export function learnable(n: number, features: number, classes: number, seed: number, noise = 0) {
  const r = mulberry32(seed)
  const proj = Array.from({ length: classes }, () => Float64Array.from({ length: features }, () => r() - 0.5))
  const images = new Uint8Array(n * features).map(() => Math.floor(r() * 256))
  const labels = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    let best = 0
    let bv = -Infinity
    for (let k = 0; k < classes; k++) {
      let s = 0
      for (let j = 0; j < features; j++) s += proj[k][j] * images[i * features + j]
      if (s > bv) [bv, best] = [s, k]
    }
    labels[i] = noise > 0 && r() < noise ? Math.floor(r() * classes) : best
  }
  return { images, labels, features }
}

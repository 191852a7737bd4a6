// The training-time augmentation of the pure-TypeScript reference: the engine's random affine and
// elastic transforms (crates/kana-core/src/augment.rs states the math; this follows it line by
// line in float64 with plain loops), so M1/M2 still compare with augmentation on. No native code.
import { dropoutKey, mix32 } from './reference'

/** Ranges of the random transform (each default 0; all 0 and no elastic = the identity). */
export interface AugmentSettings {
  /** Rotation uniform in ±rotate degrees, [0, 180]. */
  rotate?: number
  /** Scale factor uniform in 1 ± scale, [0, 1). */
  scale?: number
  /** Horizontal shear coefficient uniform in ±shear, [0, 1]. */
  shear?: number
  /** Shift uniform in ±shift pixels per axis, [0, 1000]. */
  shift?: number
  /** Elastic distortion (Simard et al. 2003): field scale alpha px, Gaussian smoothing sigma px. */
  elastic?: { alpha: number; sigma: number } | null
}

/**
 * The augmentation a configuration asks for (its rotate, scale, shear, shift, elastic settings),
 * or null when every range is 0 and elastic is off (the images as they are).
 */
export function augmentOf(c: { rotate?: number; scale?: number; shear?: number; shift?: number; elastic?: 'off' | readonly [number, number] }): AugmentSettings | null {
  const { rotate = 0, scale = 0, shear = 0, shift = 0 } = c
  const elastic = c.elastic === undefined || c.elastic === 'off' ? null : { alpha: c.elastic[0], sigma: c.elastic[1] }
  return rotate === 0 && scale === 0 && shear === 0 && shift === 0 && elastic === null ? null : { rotate, scale, shear, shift, elastic }
}

/** The hash "layer" of the augmentation key ("aug1"), as in the engine. */
const AUG_TAG = 0x61756731
const FIELD0 = 8

/** Refuses a bad range with a message naming it (the engine's words). */
export function checkAugment(a: AugmentSettings): void {
  const check = (ok: boolean, name: string, must: string, v: unknown) => {
    if (!ok) throw new RangeError(`augment.${name} must be ${must}, got ${String(v)}`)
  }
  const { rotate = 0, scale = 0, shear = 0, shift = 0 } = a
  check(rotate >= 0 && rotate <= 180, 'rotate', 'in [0, 180] degrees', rotate)
  check(scale >= 0 && scale < 1, 'scale', 'in [0, 1)', scale)
  check(shear >= 0 && shear <= 1, 'shear', 'in [0, 1]', shear)
  check(shift >= 0 && shift <= 1e3, 'shift', 'a number of pixels in [0, 1000]', shift)
  if (a.elastic) {
    check(a.elastic.alpha >= 0 && a.elastic.alpha <= 1e3, 'elastic.alpha', 'in [0, 1000] pixels', a.elastic.alpha)
    check(a.elastic.sigma > 0 && a.elastic.sigma <= 100, 'elastic.sigma', 'in (0, 100] pixels', a.elastic.sigma)
  }
}

/** u(k) of a sample's stream: (2·mix32(kr ^ k) + 1)/2³² − 1, uniform in (−1, 1). */
const uniform = (kr: number, k: number) => (2 * mix32(kr ^ k) + 1) / 4294967296 - 1

function gaussian(sigma: number): Float64Array {
  const rho = Math.ceil(3 * sigma)
  const raw = new Float64Array(2 * rho + 1)
  let sum = 0
  for (let i = -rho; i <= rho; i++) sum += raw[i + rho] = Math.exp(-(i * i) / (2 * sigma * sigma))
  for (let t = 0; t < raw.length; t++) raw[t] /= sum
  return raw
}

/** Smooths the n×n field in place: rows, then columns, zero outside, taps in increasing order. */
function smooth(f: Float64Array, n: number, g: Float64Array): void {
  const rho = (g.length - 1) / 2
  const tmp = new Float64Array(n * n)
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      let s = 0
      for (let t = 0; t < g.length; t++) {
        const xx = x + t - rho
        if (xx >= 0 && xx < n) s += g[t] * f[y * n + xx]
      }
      tmp[y * n + x] = s
    }
  }
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      let s = 0
      for (let t = 0; t < g.length; t++) {
        const yy = y + t - rho
        if (yy >= 0 && yy < n) s += g[t] * tmp[yy * n + x]
      }
      f[y * n + x] = s
    }
  }
}

/** The side of a square image of `features` pixels, or a RangeError. */
export function imageSide(features: number): number {
  const n = Math.round(Math.sqrt(features))
  if (n * n !== features) throw new RangeError(`augmentation needs square images, but a sample has ${features} features (not n×n)`)
  return n
}

/**
 * The `n` images (u8, `features` each, square) augmented as optimiser step `step` of a model
 * seeded `seed` sees them: n × features values in [0, 1] (v/255, not rounded back to u8). Row r
 * of the batch draws its parameters from (seed, step, r).
 */
export function augmentBatch(images: Uint8Array, n: number, features: number, a: AugmentSettings, seed: number, step: number): Float64Array {
  checkAugment(a)
  const side = imageSide(features)
  if (images.length !== n * features) throw new RangeError(`images has length ${images.length}, expected n × features = ${n}×${features}`)
  const key = dropoutKey(seed, step, AUG_TAG)
  const { rotate = 0, scale = 0, shear = 0, shift = 0 } = a
  const kernel = a.elastic ? gaussian(a.elastic.sigma) : null
  const alpha = a.elastic ? a.elastic.alpha : 0
  const out = new Float64Array(n * features)
  const ex = new Float64Array(features)
  const ey = new Float64Array(features)
  for (let r = 0; r < n; r++) {
    const kr = mix32(key ^ r)
    const params: AffineParams = {
      theta: (rotate * uniform(kr, 0) * Math.PI) / 180,
      s: 1 + scale * uniform(kr, 1),
      h: shear * uniform(kr, 2),
      tx: shift * uniform(kr, 3),
      ty: shift * uniform(kr, 4),
    }
    if (kernel) {
      for (let j = 0; j < features; j++) {
        ex[j] = uniform(kr, FIELD0 + j)
        ey[j] = uniform(kr, FIELD0 + features + j)
      }
      smooth(ex, side, kernel)
      smooth(ey, side, kernel)
    }
    out.set(sample(images.subarray(r * features, (r + 1) * features), side, params, kernel ? { ex, ey, alpha } : undefined), r * features)
  }
  return out
}

/** One sample's affine parameters: angle (radians), scale, shear, shift (pixels). */
export interface AffineParams { theta: number; s: number; h: number; tx: number; ty: number }

/**
 * The inverse map and bilinear sampling (augment.rs's comment) of one n×n u8 image with given
 * parameters and optional elastic fields: n² values v/255 in [0, 1].
 */
export function sample(src: Uint8Array, side: number, p: AffineParams, field?: { ex: Float64Array; ey: Float64Array; alpha: number }): Float64Array {
  const out = new Float64Array(side * side)
  const c = (side - 1) / 2
  const sin = Math.sin(p.theta)
  const cos = Math.cos(p.theta)
  // the inverse map's matrix, once per sample (augment.rs): rotation by −θ, inverse shear, inverse scale
  const m00 = (cos + p.h * sin) / p.s
  const m01 = (sin - p.h * cos) / p.s
  const m10 = -sin / p.s
  const m11 = cos / p.s
  const alpha = field?.alpha ?? 0
  const pixel = (yy: number, xx: number) => (yy >= 0 && xx >= 0 && yy < side && xx < side ? src[yy * side + xx] : 0)
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const dx = alpha !== 0 ? alpha * field!.ex[y * side + x] : 0
      const dy = alpha !== 0 ? alpha * field!.ey[y * side + x] : 0
      const qx = x + dx - c - p.tx
      const qy = y + dy - c - p.ty
      const sx = m00 * qx + m01 * qy + c
      const sy = m10 * qx + m11 * qy + c
      const x0 = Math.floor(sx)
      const y0 = Math.floor(sy)
      const fx = sx - x0
      const fy = sy - y0
      const top = (1 - fx) * pixel(y0, x0) + fx * pixel(y0, x0 + 1)
      const bottom = (1 - fx) * pixel(y0 + 1, x0) + fx * pixel(y0 + 1, x0 + 1)
      out[y * side + x] = ((1 - fy) * top + fy * bottom) / 255
    }
  }
  return out
}

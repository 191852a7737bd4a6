// Robustness under input noise (issue F2; the 2026 course's test): a model's accuracy and loss on
// labelled images corrupted at increasing levels, the clean level first. Here in output/ beside
// metrics.ts: it is a way of evaluating a model, with its table, CSV and plot.
//
// Noise acts on the pixel values 0..255 and the result is rounded (half up) and clipped back to
// u8, the images the engine takes:
//   gaussian:σ,…      p + σ·z, z standard normal, σ in PIXEL units (σ = 25.5 is 0.1 of the range)
//   salt-pepper:p,…   each pixel with probability p becomes 0 or 255 (equally likely)
//   occlusion:s,…     an s×s black square at a random position inside each image
// Seeded and level-independent: every level uses the same random numbers (the same z per pixel,
// the same uniform per pixel, the same square position per image), so a higher level is the same
// corruption, stronger — accuracy curves are not jagged by resampling. Level 0 is the clean image
// exactly (σ = 0, p = 0, s = 0 change no pixel).
import { join } from 'node:path'
import { dropoutKey, mix32 } from '../engine/reference'
import type { Labels } from '../engine/mlp'
import { writeRendered, type Rendered } from './render'
import { renderChart } from './plots'
import { writeFileAtomic } from './atomic'
import { pct } from './format'

export type NoiseKind = 'gaussian' | 'salt-pepper' | 'occlusion'
export const NOISE_KINDS: readonly NoiseKind[] = ['gaussian', 'salt-pepper', 'occlusion']

export interface NoiseSpec {
  kind: NoiseKind
  /** Levels, in the order given; evaluateNoise puts the clean level (0) first. */
  levels: number[]
}

/** Parses `gaussian:8,16,32`, `salt-pepper:0.05,0.1`, `occlusion:4,8,12`. */
export function parseNoiseSpec(text: string): NoiseSpec {
  const m = /^\s*([a-z-]+)\s*:\s*(.+)$/.exec(String(text))
  if (!m) throw new RangeError(`noise must be kind:level,level,… (kinds: ${NOISE_KINDS.join(', ')}), got "${text}"`)
  const kind = m[1] as NoiseKind
  if (!NOISE_KINDS.includes(kind)) throw new RangeError(`noise kind must be ${NOISE_KINDS.join(', ')}, got "${m[1]}"`)
  const levels = m[2].split(',').map((x) => x.trim()).filter(Boolean).map(Number)
  const spec = { kind, levels }
  checkNoiseSpec(spec)
  return spec
}

export function checkNoiseSpec(spec: NoiseSpec): void {
  const { kind, levels } = spec
  if (!NOISE_KINDS.includes(kind)) throw new RangeError(`noise kind must be ${NOISE_KINDS.join(', ')}, got "${String(kind)}"`)
  if (!Array.isArray(levels) || levels.length === 0) throw new RangeError(`${kind} noise needs at least one level`)
  for (const x of levels) {
    const ok = kind === 'gaussian' ? Number.isFinite(x) && x >= 0 && x <= 1e4
      : kind === 'salt-pepper' ? Number.isFinite(x) && x >= 0 && x <= 1
      : Number.isInteger(x) && x >= 0 && x <= 1e4
    if (!ok) {
      const must = kind === 'gaussian' ? 'a standard deviation in pixel units (0..255 scale), ≥ 0' : kind === 'salt-pepper' ? 'a probability in [0, 1]' : 'an integer square side in pixels, ≥ 0'
      throw new RangeError(`${kind} noise level must be ${must}, got ${x}`)
    }
  }
}

const TAG = { a: 0x6e6f6931, b: 0x6e6f6932 } // "noi1", "noi2": two independent streams
const unit = (h: number) => (h + 0.5) / 4294967296 // (0, 1)

/**
 * The `images` (n × features u8) with `kind` noise at `level`, seeded: a new array. Square
 * images are needed for occlusion only.
 */
export function addNoise(images: Uint8Array, features: number, kind: NoiseKind, level: number, seed: number): Uint8Array {
  checkNoiseSpec({ kind, levels: [level] })
  const out = new Uint8Array(images)
  if (level === 0) return out
  const ka = dropoutKey(seed, 0, TAG.a)
  const kb = dropoutKey(seed, 0, TAG.b)
  const n = images.length / features
  if (kind === 'gaussian') {
    for (let q = 0; q < out.length; q++) {
      // Box–Muller from the two streams at this pixel
      const z = Math.sqrt(-2 * Math.log(unit(mix32(ka ^ q)))) * Math.cos(2 * Math.PI * unit(mix32(kb ^ q)))
      out[q] = Math.min(255, Math.max(0, Math.floor(images[q] + level * z + 0.5)))
    }
  } else if (kind === 'salt-pepper') {
    for (let q = 0; q < out.length; q++) {
      if (unit(mix32(ka ^ q)) < level) out[q] = mix32(kb ^ q) & 1 ? 255 : 0
    }
  } else {
    const side = Math.round(Math.sqrt(features))
    if (side * side !== features) throw new RangeError(`occlusion needs square images, but a sample has ${features} features`)
    const s = Math.min(level, side)
    for (let r = 0; r < n; r++) {
      // the square's top-left corner, uniform over the positions inside the image
      const top = Math.floor(unit(mix32(ka ^ r)) * (side - s + 1))
      const left = Math.floor(unit(mix32(kb ^ r)) * (side - s + 1))
      for (let y = top; y < top + s; y++) out.fill(0, r * features + y * side + left, r * features + y * side + left + s)
    }
  }
  return out
}

export interface NoiseRow {
  level: number
  accuracy: number
  loss: number
}

export interface NoiseResult {
  kind: NoiseKind
  seed: number
  samples: number
  /** The clean level (0) first, then the levels as given (a 0 given is not repeated). */
  rows: NoiseRow[]
}

/** Anything that evaluates labelled images: an MLP or an Ensemble. */
export interface Evaluates {
  readonly inputs: number
  evaluate(images: Uint8Array, labels: Labels): Promise<{ loss: number; accuracy: number }>
}

/** Accuracy and loss of `model` on `images` under each level of `spec` (a string or a NoiseSpec), seeded. */
export async function evaluateNoise(model: Evaluates, images: Uint8Array, labels: Labels, spec: NoiseSpec | string, seed = 0): Promise<NoiseResult> {
  const s = typeof spec === 'string' ? parseNoiseSpec(spec) : spec
  checkNoiseSpec(s)
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be an integer ≥ 0, got ${seed}`)
  const features = model.inputs
  if (images.length % features !== 0) throw new RangeError(`images has ${images.length} pixels, not a multiple of the model's ${features} inputs`)
  const levels = [0, ...s.levels.filter((x) => x !== 0)]
  const rows: NoiseRow[] = []
  for (const level of levels) {
    const { loss, accuracy } = await model.evaluate(addNoise(images, features, s.kind, level, seed), labels)
    rows.push({ level, accuracy, loss })
  }
  return { kind: s.kind, seed, samples: images.length / features, rows }
}

const UNITS: Record<NoiseKind, string> = { gaussian: 'σ (pixel units, 0..255)', 'salt-pepper': 'p (share of pixels)', occlusion: 'square side (pixels)' }

export function noiseCsv(r: NoiseResult): string {
  return ['kind,level,accuracy,loss', ...r.rows.map((x) => `${r.kind},${x.level},${x.accuracy},${x.loss}`)].join('\n') + '\n'
}

/** The table as printed: level, accuracy (%), loss. */
export function noiseTable(r: NoiseResult): string[][] {
  return [[`${r.kind} ${UNITS[r.kind]}`, 'accuracy', 'loss'], ...r.rows.map((x) => [x.level === 0 ? '0 (clean)' : String(x.level), pct(x.accuracy), x.loss.toFixed(4)])]
}

/** Accuracy per noise level, a line with points, in the look of every other chart. */
export async function noisePlot(r: NoiseResult, title?: string): Promise<Rendered> {
  return renderChart({
    title: { text: title ?? `Accuracy under ${r.kind} noise`, subtitle: `${r.samples} samples · seed ${r.seed}` },
    width: 420,
    height: 260,
    data: { values: r.rows },
    mark: { type: 'line', point: { size: 40, filled: true }, strokeWidth: 2 },
    encoding: {
      x: { field: 'level', type: 'quantitative', title: UNITS[r.kind] },
      y: { field: 'accuracy', type: 'quantitative', title: 'accuracy', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
    },
  })
}

/** Writes noise.json, noise.csv, noise.svg and noise.png into `dir` (which must exist). */
export async function writeNoise(dir: string, r: NoiseResult): Promise<void> {
  await writeFileAtomic(join(dir, 'noise.json'), JSON.stringify(r, null, 2) + '\n')
  await writeFileAtomic(join(dir, 'noise.csv'), noiseCsv(r))
  await writeRendered(join(dir, 'noise'), await noisePlot(r))
}

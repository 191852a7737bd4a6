// The mini-batch order of the experiment's runs, generated in TypeScript from the seed, so that
// the engine (sources.ts engineBatches) and the reference (reference-source.ts) step through the
// very same batches.
import { mulberry32 } from '../data/split'
import type { ModelConfig } from './config'
import type { Part } from '../data/inputs'

/** Optimiser steps in one epoch of configuration `c` on `n` training samples (full-batch GD: one). */
export const stepsPerEpoch = (c: ModelConfig, n: number): number => (c.optimizer === 'gd' || c.batchSize >= n ? 1 : Math.ceil(n / c.batchSize))

/**
 * The sample order of (0-based) epoch `epoch` of a run seeded `seed`: a Fisher–Yates shuffle
 * driven by mulberry32, seeded from (seed, epoch) alone so any epoch can be regenerated on its own.
 */
export function epochOrder(seed: number, epoch: number, n: number): Uint32Array {
  // mix seed and epoch (splitmix-style finaliser on 32 bits) so neighbouring seeds/epochs differ
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b) ^ Math.floor(seed / 2 ** 32)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0
  h = (h ^ (h >>> 16)) >>> 0
  const rand = mulberry32(h)
  const order = new Uint32Array(n)
  for (let i = 0; i < n; i++) order[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    const t = order[i]
    order[i] = order[j]
    order[j] = t
  }
  return order
}

/** Mini-batch `b` of an epoch's order: its pixels and labels, copied. */
export function batchAt(part: Part, features: number, order: Uint32Array, batchSize: number, b: number): { images: Uint8Array; labels: Int32Array; n: number } {
  const start = b * batchSize
  const n = Math.min(batchSize, order.length - start)
  const images = new Uint8Array(n * features)
  const labels = new Int32Array(n)
  for (let k = 0; k < n; k++) {
    const i = order[start + k]
    images.set(part.images.subarray(i * features, (i + 1) * features), k * features)
    labels[k] = part.labels[i]
  }
  return { images, labels, n }
}


// The pure-TypeScript reference (float64) as a batch source of a Run: the same batches as the
// engine's (batches.ts), for M2 and the M1/M2 comparison.
import { ReferenceMLP, type ReferenceGradient, type ReferenceInit, type ReferenceStateInit, type StepOptions } from '../engine/reference'
import { batchAt, epochOrder } from './batches'
import { EpochAbandoned, EpochInterrupted, type EpochSource } from './run'
import { modelOptions, type ModelConfig } from './config'
import type { Part } from '../data/inputs'
import { augmentBatch, augmentOf } from '../engine/augment'

/** [W1, b1, W2, b2, …] → the reference's per-layer form. */
export const referenceInit = (w: ArrayLike<number>[]): ReferenceInit[] => {
  const out: ReferenceInit[] = []
  for (let l = 0; l < w.length; l += 2) out.push({ weights: w[l], bias: w[l + 1] })
  return out
}

/** The reference's per-layer parameters → [W1, b1, W2, b2, …]. */
export const flatParams = (ps: { weights: Float64Array; bias: Float64Array }[]): Float64Array[] => ps.flatMap((p) => [p.weights, p.bias])

/** Per-layer optimiser state (Adam's moments, the momentum buffer) → the engine's order: W, b, then γ, β with batch norm. */
export const flatState = (ps: ReferenceGradient[]): Float64Array[] => ps.flatMap((p) => (p.gamma ? [p.weights, p.bias, p.gamma, p.beta!] : [p.weights, p.bias]))

/** The engine's optimiser-state order (flatState) → per layer; `normLayers` hidden layers have γ, β. */
export function stateInit(flat: ArrayLike<number>[], layers: number, normLayers: number): ReferenceStateInit[] {
  const out: ReferenceStateInit[] = []
  let k = 0
  for (let l = 0; l < layers; l++) {
    const layer: ReferenceStateInit = { weights: flat[k++], bias: flat[k++] }
    if (l < normLayers) Object.assign(layer, { gamma: flat[k++], beta: flat[k++] })
    out.push(layer)
  }
  return out
}

/** The reference's options of one step of `c` at rate `lr` (the engine's fitOptions, sources.ts). */
export function referenceStepOptions(c: ModelConfig, lr: number): StepOptions {
  const o: StepOptions = { optimizer: c.optimizer === 'gd' ? 'sgd' : c.optimizer, lr, l2: c.l2, beta1: c.beta1, beta2: c.beta2, eps: c.eps }
  if (c.labelSmoothing > 0) o.labelSmoothing = c.labelSmoothing
  if (c.clipNorm !== undefined) o.clipNorm = c.clipNorm
  if (c.optimizer === 'adamw') o.weightDecay = c.weightDecay
  if ((c.optimizer === 'gd' || c.optimizer === 'sgd') && c.momentum > 0) Object.assign(o, { momentum: c.momentum, nesterov: c.nesterov })
  return o
}

/**
 * A reference model of `c` from `params`: [W1, b1, …] and, with batch norm, the norm state after
 * them (the Run's layout, sources.ts modelParams); same options and seed (dropout masks) as the engine's.
 */
export function referenceModel(layers: number[], params: ArrayLike<number>[], c: ModelConfig): ReferenceMLP {
  const n = 2 * (layers.length - 1)
  const model = new ReferenceMLP(layers, referenceInit(params.slice(0, n)), { ...modelOptions(c), seed: c.seed })
  if (params.length > n) model.setNormState(params.slice(n))
  return model
}

export interface ReferenceSource extends EpochSource<Float64Array> {
  readonly model: ReferenceMLP
  /** The parameters at the start of the epoch under way (what an abandoned epoch falls back to). */
  epochStart?: Float64Array[]
}

/**
 * The reference fed the TypeScript-generated batches: the M1/M2 comparison. `stop` is shared
 * memory another thread sets to interrupt (the reference's loop runs on a worker); `abandon` says,
 * after each batch of an epoch after the first, whether to give the epoch up (its time budget).
 */
export function referenceBatches(
  layers: number[], init: ArrayLike<number>[], c: ModelConfig, train: Part, validation: Part, features: number,
  control: { stop?: Int32Array; abandon?: () => boolean } = {},
): ReferenceSource {
  const n = train.labels.length
  const batchSize = c.optimizer === 'gd' ? n : Math.min(c.batchSize, n)
  const steps = Math.ceil(n / batchSize)
  const augment = augmentOf(c)
  const src: ReferenceSource = {
    model: referenceModel(layers, init, c),
    async trainEpoch(t, lr, _signal, from) {
      const order = batchSize >= n ? Uint32Array.from({ length: n }, (_, i) => i) : epochOrder(c.seed, t, n)
      if (!from && t > 0) src.epochStart = src.getWeights()
      let loss = from?.loss ?? 0
      let correct = from?.correct ?? 0
      for (let b = from?.nextBatch ?? 0; b < steps; b++) {
        if (control.stop && Atomics.load(control.stop, 0) !== 0) throw new EpochInterrupted({ nextBatch: b, loss, correct })
        const batch = batchAt(train, features, order, batchSize, b)
        // augmented as the engine augments it: keyed by the engine model's seed (the run's), this step and the row
        const images = augment ? augmentBatch(batch.images, batch.n, features, augment, c.seed, src.model.steps) : batch.images
        const r = src.model.step(images, batch.labels, batch.n, referenceStepOptions(c, lr))
        loss += r.loss * batch.n
        correct += Math.round(r.accuracy * batch.n)
        if (t > 0 && control.abandon?.()) {
          // Adam's moments have moved too, so the clean state is the weights of the last full
          // epoch: rebuild from them (the moments are needed only to continue, and the run stops).
          src.setWeights(src.epochStart!)
          throw new EpochAbandoned('budget')
        }
      }
      if (!Number.isFinite(loss)) throw Object.assign(new Error(`the training loss became ${loss / n}`), { code: 'KANA_DIVERGED' })
      return { loss: loss / n, accuracy: correct / n }
    },
    async validate() {
      const { loss, accuracy } = src.model.evaluate(validation.images, validation.labels, validation.labels.length)
      return { loss, accuracy }
    },
    // with batch norm, the norm state after the weights (as the engine's sources.ts modelParams)
    getWeights: () => [...flatParams(src.model.getWeights64()), ...src.model.getNormState64()],
    // a rebuilt model: used to end with the best (or last full) epoch's parameters, never to continue
    setWeights: (w) => void ((src as { model: ReferenceMLP }).model = referenceModel(layers, w, c)),
  }
  return src
}

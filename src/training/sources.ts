// The engine's batch sources of a Run (run.ts): how one epoch's optimiser steps are taken. The
// third source, the pure-TypeScript reference fed the same batches, is reference-source.ts (apart,
// so that a worker running it never loads the native addon).
//
// * engineEpochs — the engine's own epoch: it shuffles with its seeded generator and steps through
//   the mini-batches natively (`train()`; the fastest path). An abort stops it between two batches
//   and the engine keeps the unfinished epoch in its training state.
// * engineBatches — the mini-batch order generated here, in TypeScript (`epochOrder`: mulberry32
//   seeded by the run's seed and the epoch, Fisher–Yates), each mini-batch handed to the engine as
//   its own Dataset with batchSize = its length, so the engine takes exactly one optimiser step on
//   exactly those samples (the experiment's trials). The reference steps through the very same
//   batches, which makes the M1/M2 comparison an exact one. Full-batch gradient descent ('gd')
//   needs no order and uses the engine's 'gd' directly. Measured cost of the per-batch calls on
//   [784,512,10], batch 32: none visible (0.38 s per epoch of 150 steps against 0.44 s for the
//   engine's own shuffled epoch, on a loaded 2-core machine).
import { Dataset, type FitOptions, type MLP } from '../engine/mlp'
import { batchAt, epochOrder, stepsPerEpoch } from './batches'
import { EpochInterrupted, type EpochFit, type EpochSource } from './run'
import type { ModelConfig } from './config'

export { modelOptions } from './config'
import type { Part } from '../data/inputs'
import { augmentOf } from '../engine/augment'

/** Training and validation data held once in native memory and shared by every trial. */
export interface TrialData {
  train: Part
  validation: Part
  features: number
  classes: number
  trainSet: Dataset
  validationSet: Dataset
}

export function trialData(train: Part, validation: Part, features: number, classes: number): TrialData {
  if (validation.labels.length === 0) throw new RangeError('the validation split is empty: early stopping and model selection need one')
  return {
    train, validation, features, classes,
    trainSet: new Dataset(train.images, train.labels, features),
    validationSet: new Dataset(validation.images, validation.labels, features),
  }
}

/** The engine's fit options of one epoch of `c` at rate `lr`: the one place a configuration reaches the engine's optimiser. */
export function fitOptions(c: ModelConfig, lr: number): FitOptions {
  const o: FitOptions = { optimizer: c.optimizer, lr, batchSize: c.batchSize, l2: c.l2, beta1: c.beta1, beta2: c.beta2, eps: c.eps }
  // only the options that apply: the engine refuses e.g. a momentum given to Adam, and the
  // defaults (none of them given) are the study's optimisers exactly
  if (c.labelSmoothing > 0) o.labelSmoothing = c.labelSmoothing
  if (c.clipNorm !== undefined) o.clipNorm = c.clipNorm
  if (c.optimizer === 'adamw') o.weightDecay = c.weightDecay
  if ((c.optimizer === 'gd' || c.optimizer === 'sgd') && c.momentum > 0) {
    o.momentum = c.momentum
    if (c.nesterov) o.nesterov = true
  }
  const augment = augmentOf(c)
  if (augment) o.augment = augment
  return o
}


/**
 * What a Run keeps of the model (restore-best, the kept epoch): the weights [W1, b1, …] and, with
 * batch norm, the norm state after them (γ, β, running statistics: evaluation needs them too).
 * Without batch norm this is getWeights() exactly.
 */
export const modelParams = (model: MLP): Float32Array[] => [...model.getWeights(), ...model.getNormState()]

export function setModelParams(model: MLP, w: Float32Array[]): void {
  const n = 2 * (model.layers.length - 1)
  model.setWeights(w.slice(0, n))
  if (w.length > n) model.setNormState(w.slice(n))
}

const evaluation = async (model: MLP, set: Dataset, signal?: AbortSignal): Promise<EpochFit> => {
  const { loss, accuracy } = await model.evaluate(set, { signal })
  return { loss, accuracy }
}

/** The engine's own shuffled epoch over `train` (see the file comment). */
export function engineEpochs(
  model: MLP, c: ModelConfig, sets: { train: Dataset; validation: Dataset },
  progress: Pick<FitOptions, 'progressInterval'> & { onProgress?: (p: { epoch: number; step: number; steps: number; loss: number; accuracy: number }) => void } = {},
): EpochSource<Float32Array> {
  return {
    async trainEpoch(t, lr, signal) {
      const { loss, accuracy } = await model.fit(sets.train, {
        ...fitOptions(c, lr), signal, progressInterval: progress.progressInterval,
        onProgress: progress.onProgress && ((p) => progress.onProgress!({ ...p, epoch: t + 1 })),
      })
      return { loss, accuracy }
    },
    validate: (signal) => evaluation(model, sets.validation, signal),
    getWeights: () => modelParams(model),
    setWeights: (w) => setModelParams(model, w),
  }
}

/** Called after every optimiser step (0-based epoch and batch), e.g. to disturb the weights on purpose. */
export type AfterStep = (model: MLP, epoch: number, batch: number) => void

/** The engine fed the TypeScript-generated batches (see the file comment). */
export function engineBatches(model: MLP, c: ModelConfig, data: TrialData, afterStep?: AfterStep): EpochSource<Float32Array> {
  return {
    async trainEpoch(t, lr, signal, from) {
      const common = fitOptions(c, lr)
      const n = data.train.labels.length
      const steps = stepsPerEpoch(c, n)
      if (steps === 1) {
        // one step on the whole training set: no order to reproduce
        if (signal?.aborted) throw new EpochInterrupted({ nextBatch: 0, loss: 0, correct: 0 }, signal.reason)
        const r = await model.fit(data.trainSet, { ...common, batchSize: n })
        afterStep?.(model, t, 0)
        return { loss: r.loss, accuracy: r.accuracy }
      }
      const order = epochOrder(c.seed, t, n)
      let loss = from?.loss ?? 0
      let correct = from?.correct ?? 0
      for (let b = from?.nextBatch ?? 0; b < steps; b++) {
        // an abort is honoured between mini-batches only, never inside an optimiser step
        if (signal?.aborted) throw new EpochInterrupted({ nextBatch: b, loss, correct }, signal.reason)
        const batch = batchAt(data.train, data.features, order, c.batchSize, b)
        const r = await model.fit(new Dataset(batch.images, batch.labels, data.features), { ...common, batchSize: batch.n })
        loss += r.loss * batch.n
        correct += Math.round(r.accuracy * batch.n)
        afterStep?.(model, t, b)
      }
      return { loss: loss / n, accuracy: correct / n }
    },
    validate: (signal) => evaluation(model, data.validationSet, signal),
    getWeights: () => modelParams(model),
    setWeights: (w) => setModelParams(model, w),
  }
}


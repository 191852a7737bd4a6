// The raw Node-API binding (crates/kana-node), typed. Loaded once by the package's index.js.
// Everything here is synchronous and cheap except fitEpoch/evaluate/predictProba, which run on a
// worker thread and return Promises. Prefer the classes in mlp.ts; these are the building blocks.

/** An opaque native model (weights, optimiser state, thread pool). */
export interface ModelHandle { readonly __kanaModel: unique symbol }
/** An opaque native data set (u8 pixels and integer labels, held once in native memory). */
export interface DatasetHandle { readonly __kanaDataset: unique symbol }

export type LabelArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array

export interface NativeEpochOptions {
  optimizer: 'gd' | 'sgd' | 'adam'
  lr: number
  l2?: number
  /** Required for 'sgd' and 'adam'; 'gd' always uses the whole data set. */
  batchSize?: number
  beta1?: number
  beta2?: number
  eps?: number
}

export interface EpochResult {
  /** Mean cross-entropy over the epoch's batches, each measured before its update (no L2 term). */
  loss: number
  accuracy: number
  /** Optimiser steps taken. */
  steps: number
}

export interface Evaluation {
  loss: number
  accuracy: number
  /** K×K counts, row = true class, column = predicted class. */
  confusion: Uint32Array
}

export interface TrainingState {
  /** Optimiser steps taken (Adam's t). */
  step: number
  /** The shuffling generator's 64-bit state, as a decimal string. */
  rng: string
  /** Adam's first and second moments, laid out like the weights (empty before the first Adam step). */
  m: Float32Array[]
  v: Float32Array[]
  /** An epoch stopped part-way by an abort, continued by the next fit on the same data and batch size. */
  partialEpoch: { order: Uint32Array; batchSize: number; nextStep: number; loss: number; correct: number } | null
}

export interface NativeBinding {
  createModel(layers: number[], seed: number, threads: number): ModelHandle
  freeModel(model: ModelHandle): void
  modelInfo(model: ModelHandle): { layers: number[]; threads: number; steps: number; params: number }
  getWeights(model: ModelHandle): Float32Array[]
  setWeights(model: ModelHandle, weights: Float32Array[]): void
  getTrainingState(model: ModelHandle): TrainingState
  setTrainingState(model: ModelHandle, state: TrainingState): void
  cancel(model: ModelHandle): void
  progress(model: ModelHandle): [done: number, total: number, loss: number, accuracy: number]
  createDataset(images: Uint8Array, labels: LabelArray | null, features: number): DatasetHandle
  datasetInfo(dataset: DatasetHandle): { length: number; features: number; labeled: boolean }
  fitEpoch(model: ModelHandle, dataset: DatasetHandle, options: NativeEpochOptions): Promise<EpochResult>
  evaluate(model: ModelHandle, dataset: DatasetHandle): Promise<Evaluation>
  predictProba(model: ModelHandle, dataset: DatasetHandle): Promise<Float32Array>
  cpuFeatures(): { arch: string; avx512f?: boolean; avx2?: boolean; fma?: boolean }
  /** Test hook: panics in Rust on purpose ('sync' on this thread, 'async' in a worker). */
  debugPanic(mode: 'sync' | 'async'): Promise<void> | void
}

// index.js has set `native` on its exports before it loads this module (see the note there).
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const native: NativeBinding = require('../../index.js').native

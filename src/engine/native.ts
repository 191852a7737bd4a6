// The raw Node-API binding (crates/kana-node), typed. Loaded once by the package's index.js.
// Everything here is synchronous and cheap except fitEpoch/evaluate/predictProba, which run on a
// worker thread and return Promises. Prefer the classes in mlp.ts; these are the building blocks.

/** An opaque native model (weights, optimiser state, thread pool). */
export interface ModelHandle { readonly __kanaModel: unique symbol }
/** An opaque native data set (u8 pixels and integer labels, held once in native memory). */
export interface DatasetHandle { readonly __kanaDataset: unique symbol }
/** An opaque native pixel buffer: filled chunk by chunk (writePixels), then adopted by createDataset without a copy. */
export interface PixelsHandle { readonly __kanaPixels: unique symbol }

export type LabelArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array

export type Activation = 'relu' | 'leaky-relu' | 'silu' | 'gelu'

/** Architecture options of createModel; all optional (ReLU, no dropout, no batch norm). */
export interface NativeModelOptions {
  /** Hidden-layer activation. Default 'relu'. GELU is the exact erf form. */
  activation?: Activation
  /** Slope α of 'leaky-relu' for x ≤ 0 (finite, ≥ 0). Default 0.01; refused with other activations. */
  leakySlope?: number
  /** Inverted dropout after each hidden activation: one rate for all hidden layers or one per hidden layer, each in [0, 1). */
  dropout?: number | number[]
  /** Batch norm of every hidden layer, before its activation. */
  batchNorm?: boolean
  /** Weight of each batch in the running statistics, in [0, 1). Default 0.1 (PyTorch's). Only with batchNorm. */
  bnMomentum?: number
  /** Added to the variance, > 0. Default 1e-5. Only with batchNorm. */
  bnEps?: number
}

/**
 * Random augmentation of every training batch (kana-core/src/augment.rs has the exact math): per
 * sample a rotation uniform in ±rotate degrees, a scale in 1 ± scale, a horizontal shear in ±shear,
 * a shift in ±shift pixels per axis, then (optional) an elastic distortion (Simard et al. 2003) of
 * strength alpha pixels, smoothed with sigma pixels; bilinear, zero outside the image. Each
 * range defaults to 0. Seeded by (model seed, optimiser step, row in the batch).
 */
export interface AugmentOptions {
  rotate?: number
  scale?: number
  shear?: number
  shift?: number
  elastic?: { alpha: number; sigma: number } | null
}

export interface NativeEpochOptions {
  optimizer: 'gd' | 'sgd' | 'adam' | 'adamw'
  lr: number
  l2?: number
  /** Required for 'sgd', 'adam' and 'adamw'; 'gd' always uses the whole data set. */
  batchSize?: number
  beta1?: number
  beta2?: number
  eps?: number
  /** 'adamw' only: decoupled decay of the weights (not biases, γ, β), W ← W·(1 − lr·λw). Default 1e-2. */
  weightDecay?: number
  /** 'gd'/'sgd' only: momentum μ in [0, 1) (PyTorch's SGD, dampening 0). Default 0 = plain SGD. */
  momentum?: number
  /** 'gd'/'sgd' only, with momentum > 0: Nesterov's variant. */
  nesterov?: boolean
  /** ε in [0, 1): training targets (1 − ε)·onehot + ε/K. Reported losses stay the plain cross-entropy. */
  labelSmoothing?: number
  /** Clip the gradients to this global L2 norm (> 0) before the step. Default: no clipping. */
  clipNorm?: number
  /** Augment every training batch (square images only). Default: none (null/undefined). */
  augment?: AugmentOptions | null
}

export interface ModelInfo {
  layers: number[]
  threads: number
  steps: number
  /** Weights and biases (γ, β not counted). */
  params: number
  activation: Activation
  /** Only for 'leaky-relu'. */
  leakySlope?: number
  /** Dropout rate of each hidden layer. */
  dropout: number[]
  batchNorm: boolean
  bnMomentum: number
  bnEps: number
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
  /**
   * Adam's first and second moments, one array per parameter tensor: for each layer W, b, then
   * (hidden layers with batch norm) γ, β — the layout of the weights when there is no batch norm.
   * With SGD momentum, `m` is the momentum buffer and `v` is empty. Both empty before the first
   * step of an optimiser that uses them.
   */
  m: Float32Array[]
  v: Float32Array[]
  /** An epoch stopped part-way by an abort, continued by the next fit on the same data and batch size. */
  partialEpoch: { order: Uint32Array; batchSize: number; nextStep: number; loss: number; correct: number } | null
}

export interface NativeBinding {
  createModel(layers: number[], seed: number, threads: number, options?: NativeModelOptions): ModelHandle
  freeModel(model: ModelHandle): void
  modelInfo(model: ModelHandle): ModelInfo
  getWeights(model: ModelHandle): Float32Array[]
  setWeights(model: ModelHandle, weights: Float32Array[]): void
  /** Batch norm's tensors, [γ, β, runningMean, runningVar] for each hidden layer (empty without batch norm). */
  getNormState(model: ModelHandle): Float32Array[]
  /** Replaces them (same layout); checks lengths, finiteness and runningVar > 0. */
  setNormState(model: ModelHandle, state: Float32Array[]): void
  getTrainingState(model: ModelHandle): TrainingState
  setTrainingState(model: ModelHandle, state: TrainingState): void
  cancel(model: ModelHandle): void
  progress(model: ModelHandle): [done: number, total: number, loss: number, accuracy: number]
  /** An empty native buffer with room for `length` pixel bytes (reserved fallibly: a RangeError naming the bytes). */
  createPixels(length: number): PixelsHandle
  /** Appends a copy of `chunk`; returns the bytes written so far. A chunk past the buffer's length is a RangeError. */
  writePixels(pixels: PixelsHandle, chunk: Uint8Array): number
  /** A Uint8Array is copied; a pixel buffer, completely written, is adopted without a copy and left empty. */
  createDataset(images: Uint8Array | PixelsHandle, labels: LabelArray | null, features: number): DatasetHandle
  datasetInfo(dataset: DatasetHandle): { length: number; features: number; labeled: boolean }
  fitEpoch(model: ModelHandle, dataset: DatasetHandle, options: NativeEpochOptions): Promise<EpochResult>
  evaluate(model: ModelHandle, dataset: DatasetHandle): Promise<Evaluation>
  predictProba(model: ModelHandle, dataset: DatasetHandle): Promise<Float32Array>
  /** The n images as training step `step` of a model seeded `seed` sees them, augmented, pixels ÷ 255 (for tests). */
  augmentBatch(images: Uint8Array, n: number, options: AugmentOptions, seed: number, step: number): Float32Array
  cpuFeatures(): { arch: string; avx512f?: boolean; avx2?: boolean; fma?: boolean }
  /** Test hook: panics in Rust on purpose ('sync' on this thread, 'async' in a worker). */
  debugPanic(mode: 'sync' | 'async'): Promise<void> | void
}

// index.js has set `native` on its exports before it loads this module (see the note there).
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const native: NativeBinding = require('../../index.js').native

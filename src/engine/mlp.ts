// The typed, Promise-based face of the native engine: `Dataset` and `MLP`.
// Each asynchronous call runs on a worker thread (the event loop keeps turning), can be aborted
// between batches with an AbortSignal, and can report progress.
import { availableParallelism, totalmem } from 'node:os'
import { randomInt } from 'node:crypto'
import {
  native,
  type Activation,
  type AugmentOptions,
  type DatasetHandle,
  type EpochResult,
  type Evaluation,
  type LabelArray,
  type ModelHandle,
  type PixelsHandle,
  type NativeEpochOptions,
  type NativeModelOptions,
  type TrainingState,
} from './native'

export type { Activation, AugmentOptions, EpochResult, Evaluation, TrainingState } from './native'

/** Labels as any integer typed array (BigInt64Array too, as int64 `.npy` files load) or plain numbers. */
export type Labels = LabelArray | BigInt64Array | BigUint64Array | ArrayLike<number>

function toLabelArray(labels: Labels): LabelArray {
  if (
    labels instanceof Uint8Array || labels instanceof Int8Array || labels instanceof Uint16Array ||
    labels instanceof Int16Array || labels instanceof Uint32Array || labels instanceof Int32Array
  ) {
    return labels
  }
  const out = new Int32Array(labels.length)
  for (let i = 0; i < labels.length; i++) {
    const raw = (labels as ArrayLike<number | bigint>)[i]
    const v = Number(raw)
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
      throw new RangeError(`labels[${i}] = ${String(raw)} is not a class index (an integer ≥ 0)`)
    }
    out[i] = v
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Memory: a model or data set that cannot fit is refused up front, with the figure, rather than
// left to the kernel's OOM killer part-way through an allocation.

/** The engine's limits (crates/kana-core/src/mlp.rs): wider layers or more parameters are refused there. */
const MAX_WIDTH = 2 ** 20
const MAX_PARAMS = 2 ** 28
/** Rows the engine pushes through the network at once (kana-core's CHUNK_ROWS). */
const CHUNK_ROWS = 2048

/** The memory this process may use: the machine's, or its cgroup's limit when that is lower. */
export function memoryLimit(): { bytes: number; what: string } {
  const total = totalmem()
  const constrained = process.constrainedMemory?.() ?? 0
  return constrained > 0 && constrained < total
    ? { bytes: constrained, what: `the ${gb(constrained)} this process is limited to (cgroup; the machine has ${gb(total)})` }
    : { bytes: total, what: `the ${gb(total)} this machine has (os.totalmem())` }
}

function gb(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`
}

/** Weights and biases of a fully connected network with these layer sizes (as MLP.parameterCount reports). */
export const parameterCount = (layers: readonly number[]): number => layers.slice(1).reduce((s, n, i) => s + n * (layers[i] + 1), 0)

/**
 * The native memory a model of these layer sizes needs, about: every parameter four times as f32
 * (weights, gradients, Adam's two moments) and workspaces for up to 2048 rows of every layer
 * (activations, deltas, evaluation), f32.
 */
export function estimateModelBytes(layers: readonly number[]): { params: number; parameterBytes: number; workspaceBytes: number; bytes: number } {
  const params = parameterCount(layers)
  const widths = layers.reduce((sum, n) => sum + n, 0)
  const parameterBytes = params * 4 * 4
  const workspaceBytes = CHUNK_ROWS * widths * 4 * 3
  return { params, parameterBytes, workspaceBytes, bytes: parameterBytes + workspaceBytes }
}

function checkModelMemory(layers: unknown): void {
  // Sizes the engine refuses anyway are left to it: its message names the offending entry.
  if (!Array.isArray(layers) || layers.length < 2 || !layers.every((n) => Number.isInteger(n) && n >= 1 && n <= MAX_WIDTH)) return
  const est = estimateModelBytes(layers)
  if (est.params > MAX_PARAMS) return
  const limit = memoryLimit()
  if (est.bytes > limit.bytes) {
    const shown = layers.length <= 8 ? `[${layers.join(', ')}]` : `[${layers.slice(0, 4).join(', ')}, … ${layers.length} sizes]`
    throw new RangeError(
      `layers ${shown} would need about ${gb(est.bytes)} of native memory (${est.params} parameters × 4 bytes × 4 ` +
        `for weights, gradients and Adam's moments: ${gb(est.parameterBytes)}; workspaces for ${CHUNK_ROWS} rows: ` +
        `${gb(est.workspaceBytes)}), more than ${limit.what}`,
    )
  }
}

function checkDatasetMemory(images: { length: number }, labels: ArrayLike<unknown> | null | undefined): void {
  const bytes = images.length + 4 * (labels?.length ?? 0) // u8 pixels and u32 labels
  const limit = memoryLimit()
  if (bytes > limit.bytes) {
    throw new RangeError(`a data set of ${images.length} pixels and ${labels?.length ?? 0} labels would need ${gb(bytes)} of native memory, more than ${limit.what}`)
  }
}

/**
 * Pixels written straight into native memory, chunk by chunk, for a `Dataset` that adopts them
 * without a copy: images read from a file (src/data/dataset-file.ts, `loadDataset`) never exist
 * whole in JavaScript memory. Each `write` copies its chunk in; the chunk may be reused at once.
 */
export class PixelBuffer {
  readonly handle: PixelsHandle
  /** Bytes the buffer holds once complete. */
  readonly length: number
  #written = 0

  constructor(length: number) {
    if (!(Number.isSafeInteger(length) && length >= 0)) throw new RangeError(`length must be a non-negative integer, got ${length}`)
    checkDatasetMemory({ length }, null)
    this.handle = native.createPixels(length)
    this.length = length
  }

  /** Bytes written so far. */
  get written(): number {
    return this.#written
  }

  write(chunk: Uint8Array): void {
    this.#written = native.writePixels(this.handle, chunk)
  }
}

/**
 * A data set held once in native memory: `u8` pixels (normalised ÷255 per batch by the engine) and
 * optional integer labels. Building one from a Uint8Array copies it (the JavaScript copy may then
 * be dropped); from a complete `PixelBuffer` it takes the pixels over without a copy.
 */
export class Dataset {
  readonly handle: DatasetHandle
  readonly length: number
  readonly features: number
  readonly labeled: boolean

  constructor(images: Uint8Array | PixelBuffer, labels?: Labels | null, features = 784) {
    const buffer = images instanceof PixelBuffer
    if (!buffer && !(images instanceof Uint8Array)) throw new TypeError('images must be a Uint8Array of pixel values 0..255')
    if (!buffer) checkDatasetMemory(images, labels) // a PixelBuffer's pixels are already had
    this.handle = native.createDataset(buffer ? images.handle : images, labels == null ? null : toLabelArray(labels), features)
    const info = native.datasetInfo(this.handle)
    this.length = info.length
    this.features = info.features
    this.labeled = info.labeled
  }
}

export { abortError } from './abort'

import { abortError } from './abort'

/** The optimisers fit accepts (the run schema and the search draw from these): the study's and AdamW. */
export type OptimizerName = 'gd' | 'sgd' | 'adam' | 'adamw'
/** Kept for callers of the earlier name. */
export type FitOptimizerName = OptimizerName

/**
 * A model: its layers, seed and threads, and the architecture options of the engine
 * (native.ts NativeModelOptions, each documented there): activation, leakySlope, dropout,
 * batchNorm, bnMomentum, bnEps — all optional, the plain ReLU network by default.
 */
export interface MLPOptions extends NativeModelOptions {
  /** Layer sizes, input first and classes last, e.g. [784, 512, 49]. */
  layers: number[]
  /** Fixes the initial weights, every shuffle and the dropout masks. Default: a random seed, readable as `model.seed`. */
  seed?: number
  /** Worker threads for the engine. Default: the machine's available cores. */
  threads?: number
}

export interface Progress {
  /** Epoch within the call, from 0. */
  epoch: number
  /** Optimiser steps (or evaluation chunks) done, and in total, in the current epoch. */
  step: number
  steps: number
  /** Running mean loss and accuracy of the epoch so far (training only; NaN before the first batch). */
  loss: number
  accuracy: number
}

export interface CallOptions {
  /** Aborting stops the work after the current batch; the Promise rejects with an AbortError. */
  signal?: AbortSignal
  /** Called about every `progressInterval` ms while the work runs. */
  onProgress?: (p: Progress) => void
  progressInterval?: number
}

/**
 * One fit call: its epochs and the optimiser settings of every step. The settings past lr and
 * batchSize are the engine's own (native.ts NativeEpochOptions, where each is documented): L2,
 * Adam's β1/β2/ε, AdamW's weightDecay, momentum/nesterov, labelSmoothing, clipNorm, augment.
 */
export interface FitOptions extends CallOptions, Partial<Omit<NativeEpochOptions, 'optimizer' | 'lr' | 'batchSize'>> {
  /** Default 1. */
  epochs?: number
  /** 'gd' = full-batch gradient descent, 'sgd' = mini-batch SGD, 'adam' (default), 'adamw' (Adam with decoupled weight decay). */
  optimizer?: FitOptimizerName
  /** Learning rate. Default 1e-3 for Adam, 0.1 for gd/sgd. */
  lr?: number
  /** Mini-batch size for 'sgd' and 'adam'. Default 32. L2 (`l2`, λ: (λ/2)·Σ‖W‖² added to the loss) defaults to 0 here. */
  batchSize?: number
  /** Called after every epoch (awaited). */
  onEpoch?: (result: EpochResult & { epoch: number }) => void | Promise<void>
}

/** A multilayer perceptron: hidden layers (ReLU by default; optional batch norm and dropout), softmax output, cross-entropy loss. */
export class MLP {
  readonly layers: readonly number[]
  readonly seed: number
  readonly threads: number
  readonly activation: Activation
  /** Only for 'leaky-relu'. */
  readonly leakySlope: number | undefined
  /** Dropout rate of each hidden layer. */
  readonly dropout: readonly number[]
  readonly batchNorm: boolean
  readonly bnMomentum: number
  readonly bnEps: number
  readonly #handle: ModelHandle

  constructor(options: MLPOptions) {
    if (options == null || typeof options !== 'object') throw new TypeError('options must be an object with `layers`')
    this.seed = options.seed ?? randomInt(0, 2 ** 47)
    this.threads = options.threads ?? availableParallelism()
    checkModelMemory(options.layers)
    const { activation, leakySlope, dropout, batchNorm, bnMomentum, bnEps } = options
    this.#handle = native.createModel(options.layers, this.seed, this.threads, { activation, leakySlope, dropout, batchNorm, bnMomentum, bnEps })
    const info = native.modelInfo(this.#handle)
    this.layers = Object.freeze([...info.layers])
    this.activation = info.activation
    this.leakySlope = info.leakySlope
    this.dropout = Object.freeze([...info.dropout])
    this.batchNorm = info.batchNorm
    this.bnMomentum = info.bnMomentum
    this.bnEps = info.bnEps
  }

  get inputs(): number {
    return this.layers[0]
  }

  get classes(): number {
    return this.layers[this.layers.length - 1]
  }

  /** Number of weights and biases. */
  get parameterCount(): number {
    return native.modelInfo(this.#handle).params
  }

  /** Optimiser steps taken so far. */
  get steps(): number {
    return native.modelInfo(this.#handle).steps
  }

  #dataset(data: Dataset | Uint8Array, labels: Labels | null | undefined): Dataset {
    return data instanceof Dataset ? data : new Dataset(data, labels, this.inputs)
  }

  /** Runs `work` with abort and progress wired to the native model; `epoch` labels progress reports. */
  async #guard<T>(opts: CallOptions, epoch: number, work: () => Promise<T>): Promise<T> {
    const { signal, onProgress } = opts
    if (signal?.aborted) throw abortError(signal.reason)
    const onAbort = () => native.cancel(this.#handle)
    signal?.addEventListener('abort', onAbort, { once: true })
    const report = () => {
      const [step, steps, loss, accuracy] = native.progress(this.#handle)
      onProgress!({ epoch, step, steps, loss, accuracy })
    }
    const timer = onProgress ? setInterval(report, opts.progressInterval ?? 100) : undefined
    try {
      const result = await work()
      if (onProgress) report()
      return result
    } finally {
      clearInterval(timer)
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /**
   * Trains for `epochs` epochs and returns the last epoch's mean loss and accuracy.
   * `fit(images, labels, options)` or `fit(dataset, options)`.
   */
  fit(images: Uint8Array, labels: Labels, options?: FitOptions): Promise<EpochResult>
  fit(data: Dataset, options?: FitOptions): Promise<EpochResult>
  async fit(data: Dataset | Uint8Array, labelsOrOptions?: Labels | FitOptions, maybeOptions?: FitOptions): Promise<EpochResult> {
    const [labels, opts] = data instanceof Dataset ? [undefined, (labelsOrOptions as FitOptions | undefined) ?? {}] : [labelsOrOptions as Labels, maybeOptions ?? {}]
    const dataset = this.#dataset(data, labels)
    const epochs = opts.epochs ?? 1
    if (!Number.isInteger(epochs) || epochs < 1) throw new RangeError(`epochs must be an integer ≥ 1, got ${epochs}`)
    const optimizer = opts.optimizer ?? 'adam'
    const native_opts = {
      optimizer,
      lr: opts.lr ?? (optimizer === 'adam' || optimizer === 'adamw' ? 1e-3 : 0.1),
      l2: opts.l2 ?? 0,
      batchSize: opts.batchSize ?? 32,
      beta1: opts.beta1,
      beta2: opts.beta2,
      eps: opts.eps,
      weightDecay: opts.weightDecay,
      momentum: opts.momentum,
      nesterov: opts.nesterov,
      labelSmoothing: opts.labelSmoothing,
      clipNorm: opts.clipNorm,
      augment: opts.augment ?? undefined,
    }
    let last: EpochResult | undefined
    for (let epoch = 0; epoch < epochs; epoch++) {
      last = await this.#guard(opts, epoch, () => native.fitEpoch(this.#handle, dataset.handle, native_opts))
      await opts.onEpoch?.({ ...last, epoch })
    }
    return last!
  }

  /** Mean cross-entropy, accuracy and confusion matrix (row = true class) over labelled data. */
  evaluate(images: Uint8Array, labels: Labels, options?: CallOptions): Promise<Evaluation>
  evaluate(data: Dataset, options?: CallOptions): Promise<Evaluation>
  evaluate(data: Dataset | Uint8Array, labelsOrOptions?: Labels | CallOptions, maybeOptions?: CallOptions): Promise<Evaluation> {
    const [labels, opts] = data instanceof Dataset ? [undefined, (labelsOrOptions as CallOptions | undefined) ?? {}] : [labelsOrOptions as Labels, maybeOptions ?? {}]
    if (!(data instanceof Dataset) && labels == null) throw new TypeError('labels are required to evaluate')
    const dataset = this.#dataset(data, labels)
    return this.#guard(opts, 0, () => native.evaluate(this.#handle, dataset.handle))
  }

  /** Softmax probabilities, N×K row-major; every row sums to 1. */
  predictProba(data: Dataset | Uint8Array, options: CallOptions = {}): Promise<Float32Array> {
    const dataset = this.#dataset(data, null)
    return this.#guard(options, 0, () => native.predictProba(this.#handle, dataset.handle))
  }

  /** Copies of the parameters: [W1, b1, W2, b2, …], W_l row-major `in × out`. */
  getWeights(): Float32Array[] {
    return native.getWeights(this.#handle)
  }

  /** Replaces every parameter (same layout as getWeights); checks shapes and finiteness. */
  setWeights(weights: Float32Array[]): void {
    native.setWeights(this.#handle, weights)
  }

  /**
   * Batch norm's learned scale and shift and its running statistics: [γ, β, runningMean, runningVar]
   * for each hidden layer (empty without batch norm). Part of the model (evaluate and predict use
   * the running statistics), so save it with the weights.
   */
  getNormState(): Float32Array[] {
    return native.getNormState(this.#handle)
  }

  /** Replaces them (layout of getNormState); checks lengths, finiteness and runningVar > 0. */
  setNormState(state: Float32Array[]): void {
    native.setNormState(this.#handle, state)
  }

  /** Optimiser moments (or momentum buffer), step count and shuffling state: with the weights and the norm state, all a resume needs. */
  getTrainingState(): TrainingState {
    return native.getTrainingState(this.#handle)
  }

  setTrainingState(state: TrainingState): void {
    native.setTrainingState(this.#handle, state)
  }

  /** Releases the native memory now; any later call on this model throws. */
  free(): void {
    native.freeModel(this.#handle)
  }
}

/**
 * The engine's augmentation of `n` images (u8, square) as optimiser step `step` of a model seeded
 * `seed` sees them in training: n × features values in [0, 1]. For tests and for looking at it.
 */
export function augmentBatch(images: Uint8Array, n: number, options: AugmentOptions, seed: number, step: number): Float32Array {
  return native.augmentBatch(images, n, options, seed, step)
}

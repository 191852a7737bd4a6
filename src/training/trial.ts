// A resumable training run on fixed, already-split data — the unit of the experiment and of the
// hyper-parameter search.
//
// It follows train()'s procedure (per-epoch learning-rate schedule, validation after every epoch,
// early stopping on validation loss, restore-best-weights, divergence handling) with two
// differences that the study needs:
//
// * It can be advanced in pieces (`advance(untilEpoch)`), so successive halving can run every trial
//   to a rung, compare them, and continue only the survivors — without retraining anything.
// * The mini-batch order is generated here, in TypeScript (`epochOrder`: mulberry32 seeded by the
//   trial's seed and the epoch, Fisher–Yates), and each mini-batch is handed to the engine as its
//   own Dataset with batchSize = its length, so the engine takes exactly one optimiser step on
//   exactly those samples and shuffles nothing itself. The pure-TypeScript reference
//   (reference-trial.ts) steps through the very same batches, which is what makes the M1/M2
//   comparison an exact one: same split, same initial weights, same batches, same learning rates.
//   Full-batch gradient descent ('gd') needs no order at all and uses the engine's 'gd' directly.
//   Measured cost of the per-batch calls on [784,512,10], batch 32: none visible (0.38 s per epoch
//   of 150 steps against 0.44 s for the engine's own shuffled epoch, on a loaded 2-core machine).
//
// The test split never enters a Trial: selection sees validation only.
import { abortError, Dataset, MLP, type TrainingState } from '../engine/mlp'
import { EarlyStopping, type EarlyStoppingState } from './early-stopping'
import { learningRate } from './schedule'
import { CheckpointError } from './checkpoint'
import { checkModelConfig, type ModelConfig } from './config'
import { mulberry32 } from '../data/split'
import type { Part } from '../data/inputs'
import type { EpochRecord, StopReason } from './records'

export { checkModelConfig, resolveModelConfig, type ModelConfig } from './config'

/** Layer sizes of a configuration on data with `features` inputs and `classes` classes. */
export const layersOf = (c: ModelConfig, features: number, classes: number): number[] => [features, ...c.hidden, classes]

/** Optimiser steps in one epoch of configuration `c` on `n` training samples (full-batch GD: one). */
export const stepsPerEpoch = (c: ModelConfig, n: number): number => (c.optimizer === 'gd' || c.batchSize >= n ? 1 : Math.ceil(n / c.batchSize))

/** Learning rate of (0-based) epoch t, as train() computes it. */
export const epochLr = (c: ModelConfig, t: number): number =>
  learningRate({ name: c.schedule, lr: c.lr, lrMin: c.lrMin, epochs: c.epochs }, t)

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

function divergedError(e: unknown): boolean {
  return (e as NodeJS.ErrnoException)?.code === 'KANA_DIVERGED'
}

/**
 * An epoch stopped between two mini-batches by an abort: where it stood, so the next advance()
 * continues it with the same order (regenerated from the seed) and the same running sums.
 */
export interface PartialTrialEpoch {
  /** 0-based epoch. */
  epoch: number
  /** Index of the next mini-batch to train. */
  nextBatch: number
  /** Sample-weighted loss sum and correct count of the batches done. */
  loss: number
  correct: number
  /** Seconds spent in this epoch so far. */
  seconds: number
}

/**
 * Everything that makes a Trial continue exactly where it stood (experiment checkpoints). The
 * tensors are absent once the trial's model was released: such a trial is never trained again.
 */
export interface TrialSnapshot {
  config: ModelConfig
  history: EpochRecord[]
  stopReason: StopReason | null
  divergence?: string
  seconds: number
  weightsEpoch: number
  finished: boolean
  released: boolean
  earlyStopping: EarlyStoppingState
  partial: PartialTrialEpoch | null
  weights?: Float32Array[]
  best?: Float32Array[]
  kept?: Float32Array[]
  training?: Omit<TrainingState, 'partialEpoch'>
}

export interface TrialOptions {
  threads: number
  /** Start from these weights instead of the seed's initialisation (layout of MLP.getWeights()). */
  initialWeights?: Float32Array[]
  /** Called after every epoch. */
  onEpoch?: (record: EpochRecord, trial: Trial) => void
  /** Called after every optimiser step (0-based epoch and batch), e.g. to disturb the weights on purpose. */
  afterStep?: (model: MLP, epoch: number, batch: number) => void
  /** Keep a copy of the weights after this (1-based) epoch, as `kept`. */
  keepEpoch?: number
}

export class Trial {
  readonly config: ModelConfig
  readonly model: MLP
  readonly history: EpochRecord[] = []
  readonly layers: number[]
  /** Set once the run cannot continue: early stopping, all epochs done, or divergence. */
  stopReason: StopReason | null = null
  divergence?: string
  /** Wall seconds spent training and validating (not counting time waiting between advances). */
  seconds = 0
  /** 1-based epoch whose weights the model holds after finish(). */
  weightsEpoch = 0
  /** finish() has run. */
  finished = false
  /** The model was freed (a trial dropped by the search): it keeps only its record. */
  released = false
  /** The state came from a snapshot (restore()). */
  private restored = false
  /** The weights after epoch `keepEpoch` (TrialOptions), once it has run. */
  kept: Float32Array[] | undefined
  private readonly keepEpoch?: number
  private partial: PartialTrialEpoch | null = null
  private stopper: EarlyStopping
  private best: Float32Array[] | undefined
  private readonly data: TrialData
  private readonly onEpoch?: (record: EpochRecord, trial: Trial) => void
  private readonly afterStep?: (model: MLP, epoch: number, batch: number) => void

  constructor(config: ModelConfig, data: TrialData, opts: TrialOptions) {
    checkModelConfig(config)
    this.config = config
    this.data = data
    this.layers = layersOf(config, data.features, data.classes)
    this.model = new MLP({ layers: this.layers, seed: config.seed, threads: opts.threads })
    if (opts.initialWeights) this.model.setWeights(opts.initialWeights)
    this.onEpoch = opts.onEpoch
    this.afterStep = opts.afterStep
    this.keepEpoch = opts.keepEpoch
    this.stopper = new EarlyStopping({ patience: config.earlyStopping ? config.patience : Number.MAX_SAFE_INTEGER, minDelta: config.minDelta, restoreBest: config.restoreBest })
  }

  get epochsRun(): number {
    return this.history.length
  }

  get done(): boolean {
    return this.stopReason !== null
  }

  /** 1-based epoch of the lowest validation loss so far (0 before any). */
  get bestEpoch(): number {
    return this.stopper.bestEpoch + 1
  }

  /** Lowest validation loss so far (Infinity before any finite one): the selection criterion. */
  get bestValLoss(): number {
    return this.stopper.bestLoss
  }

  get bestValAccuracy(): number {
    return this.bestEpoch > 0 ? this.history[this.bestEpoch - 1].valAccuracy : NaN
  }

  /**
   * Runs epochs until `untilEpoch` have run or the run stops (early stopping, T reached, divergence).
   * An abort through `signal` stops it between two mini-batches (the current one finishes) and
   * rejects with an AbortError; snapshot() then holds the unfinished epoch, and the next advance()
   * continues it exactly.
   */
  async advance(untilEpoch: number, signal?: AbortSignal): Promise<void> {
    const c = this.config
    while (!this.done && this.history.length < untilEpoch) {
      if (this.released) {
        // only a checkpoint that does not belong to this configuration can lead here
        throw this.restored
          ? new CheckpointError('ECONFLICT', 'the checkpoint has a trial dropped by the search that this experiment would train on: it was written for another configuration')
          : new Error('internal error: a released trial was advanced')
      }
      const t = this.history.length
      const resumed = this.partial?.epoch === t ? this.partial : null
      const started = performance.now() - (resumed?.seconds ?? 0) * 1000
      const lr = epochLr(c, t)
      let fit: { loss: number; accuracy: number }
      try {
        fit = await nativeEpoch(this.model, this.data, c, t, lr, signal, this.afterStep, resumed)
        this.partial = null
      } catch (e) {
        if (e instanceof EpochInterrupted) {
          this.partial = { ...e.at, seconds: (performance.now() - started) / 1000 }
          throw abortError(signal?.reason)
        }
        if (!divergedError(e)) throw e
        this.partial = null
        this.stopReason = 'diverged'
        this.divergence = `epoch ${t + 1}: ${(e as Error).message}`
        this.seconds += (performance.now() - started) / 1000
        break
      }
      // validation is not interrupted: it is short, and the epoch is then complete
      const val = await this.model.evaluate(this.data.validationSet)
      const record: EpochRecord = {
        epoch: t + 1, lr, trainLoss: fit.loss, trainAccuracy: fit.accuracy,
        valLoss: val.loss, valAccuracy: val.accuracy, seconds: (performance.now() - started) / 1000,
      }
      this.seconds += record.seconds
      this.history.push(record)
      const { improved, stop } = this.stopper.update(t, val.loss)
      if (improved) this.best = this.model.getWeights()
      if (record.epoch === this.keepEpoch) this.kept = this.model.getWeights()
      this.onEpoch?.(record, this)
      if (!Number.isFinite(val.loss)) {
        this.stopReason = 'diverged'
        this.divergence = `epoch ${t + 1}: the validation loss became ${val.loss}; the learning rate (${lr}) is probably too high`
      } else if (stop) this.stopReason = 'early-stopping'
      else if (this.history.length >= c.epochs) this.stopReason = 'completed'
    }
  }

  /** Ends the run: restores the best validation epoch's weights when configured (or after divergence). Runs once. */
  finish(): void {
    if (this.finished) return
    this.finished = true
    this.weightsEpoch = this.history.length
    if (this.best && (this.config.restoreBest || this.stopReason === 'diverged')) {
      this.model.setWeights(this.best)
      this.weightsEpoch = this.bestEpoch
    } else if (this.stopReason === 'diverged') {
      throw Object.assign(new Error(`training diverged before any usable epoch (${this.divergence}); lower the learning rate`), { code: 'KANA_DIVERGED' })
    }
    if (this.stopReason === null) this.stopReason = 'completed'
    this.best = undefined
  }

  /** Frees the model: the trial keeps its record (history, scores) but can no longer train. */
  release(): void {
    if (this.released) return
    this.released = true
    this.best = undefined
    this.model.free()
  }

  /** The trial's whole state, tensors copied (see TrialSnapshot). Call only between advances. */
  snapshot(): TrialSnapshot {
    const s: TrialSnapshot = {
      config: this.config, history: this.history.map((h) => ({ ...h })), stopReason: this.stopReason, divergence: this.divergence,
      seconds: this.seconds, weightsEpoch: this.weightsEpoch, finished: this.finished, released: this.released,
      earlyStopping: this.stopper.toJSON(), partial: this.partial && { ...this.partial },
    }
    if (!this.released) {
      const { step, rng, m, v, partialEpoch } = this.model.getTrainingState()
      // every mini-batch is a whole engine epoch of its own, so the engine never holds half of one
      if (partialEpoch) throw new Error('internal error: the engine holds an unfinished epoch between trial batches')
      s.weights = this.model.getWeights()
      s.best = this.best?.map((w) => w.slice())
      s.kept = this.kept?.map((w) => w.slice())
      s.training = { step, rng, m, v }
    }
    return s
  }

  /** Puts this (new) trial into the state of `s`, which must come from a trial of the same configuration. */
  restore(s: TrialSnapshot): void {
    if (JSON.stringify(s.config) !== JSON.stringify(this.config)) throw new Error('internal error: a trial snapshot of another configuration')
    this.restored = true
    this.history.splice(0, this.history.length, ...s.history.map((h) => ({ ...h })))
    this.stopReason = s.stopReason
    this.divergence = s.divergence
    this.seconds = s.seconds
    this.weightsEpoch = s.weightsEpoch
    this.finished = s.finished
    this.stopper = EarlyStopping.fromJSON(s.earlyStopping)
    this.partial = s.partial && { ...s.partial }
    if (s.released) {
      this.release()
      return
    }
    if (!s.weights || !s.training) throw new Error('internal error: a trial snapshot without its weights')
    this.model.setWeights(s.weights)
    this.model.setTrainingState({ ...s.training, partialEpoch: null })
    this.best = s.best?.map((w) => w.slice())
    this.kept = s.kept?.map((w) => w.slice())
  }
}

/** Thrown by nativeEpoch when an abort stops it between two mini-batches. */
class EpochInterrupted extends Error {
  constructor(readonly at: Omit<PartialTrialEpoch, 'seconds'>) {
    super('epoch interrupted')
  }
}

/**
 * One epoch on the engine in the TypeScript-generated order (see the file comment). Returns the
 * sample-weighted mean of the batches' pre-update loss and accuracy, as the engine's own epoch does.
 * An abort is honoured between mini-batches only (never inside an optimiser step), by throwing
 * EpochInterrupted with the position and the running sums; `from` continues such an epoch.
 */
export async function nativeEpoch(
  model: MLP, data: TrialData, c: ModelConfig, t: number, lr: number, signal?: AbortSignal,
  afterStep?: (model: MLP, epoch: number, batch: number) => void,
  from?: Omit<PartialTrialEpoch, 'seconds'> | null,
): Promise<{ loss: number; accuracy: number }> {
  const common = { lr, l2: c.l2, beta1: c.beta1, beta2: c.beta2, eps: c.eps }
  const n = data.train.labels.length
  const interrupted = (b: number, loss: number, correct: number) => new EpochInterrupted({ epoch: t, nextBatch: b, loss, correct })
  const steps = stepsPerEpoch(c, n)
  if (steps === 1) {
    // one step on the whole training set: no order to reproduce
    if (signal?.aborted) throw interrupted(0, 0, 0)
    const r = await model.fit(data.trainSet, { ...common, optimizer: c.optimizer, batchSize: n })
    afterStep?.(model, t, 0)
    return r
  }
  const order = epochOrder(c.seed, t, n)
  let loss = from?.loss ?? 0
  let correct = from?.correct ?? 0
  for (let b = from?.nextBatch ?? 0; b < steps; b++) {
    if (signal?.aborted) throw interrupted(b, loss, correct)
    const batch = batchAt(data.train, data.features, order, c.batchSize, b)
    const r = await model.fit(new Dataset(batch.images, batch.labels, data.features), { ...common, optimizer: c.optimizer, batchSize: batch.n })
    loss += r.loss * batch.n
    correct += Math.round(r.accuracy * batch.n)
    afterStep?.(model, t, b)
  }
  return { loss: loss / n, accuracy: correct / n }
}

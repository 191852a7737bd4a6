// The study's training procedure around the native engine: per-epoch learning-rate schedule,
// validation after every epoch, early stopping with restore-best-weights, divergence handling,
// and the final train/validation/test metrics. The per-batch math runs in the engine (MLP.fit).
import { Dataset, MLP, type OptimizerName } from './mlp'
import { EarlyStopping } from './early-stopping'
import { learningRate, type ScheduleName } from './schedule'
import { summarize, type Summary } from './metrics'
import { loadInputs, type InputOptions, type Inputs } from './inputs'
import { finishRunDir, startRunDir, writeHistory } from './run-dir'
import { randomInt } from 'node:crypto'
import { availableParallelism } from 'node:os'

export interface TrainOptions extends Omit<InputOptions, 'seed'> {
  /** Hidden layer widths; default [512] (the study's best architecture). */
  hidden?: number[]
  /** Default 'adam'. */
  optimizer?: OptimizerName
  /** Initial learning rate η0; default 1e-3 for Adam, 0.1 for gd/sgd. */
  lr?: number
  /** Default 32 (ignored by 'gd'). */
  batchSize?: number
  /** L2 λ: (λ/2)·Σ‖W‖² is added to the loss. Default 1e-3. */
  l2?: number
  beta1?: number
  beta2?: number
  eps?: number
  /** Maximum epochs T; default 200. */
  epochs?: number
  /** 'constant' (default), 'linear' (η0(1 − t/T), floored at lrMin) or 'exponential' (η0·γ^t reaching lrMin at T). */
  schedule?: ScheduleName
  /** Default lr / 100. */
  lrMin?: number
  /** Early stopping on validation loss (default true) with this patience (default 20) and margin (default 0). */
  earlyStopping?: boolean
  patience?: number
  minDelta?: number
  /** Restore the weights of the best validation epoch at the end (default true). */
  restoreBest?: boolean
  /** Default: random, recorded in the result. Fixes split, initial weights and shuffles. */
  seed?: number
  /** Default: the machine's cores. */
  threads?: number
  signal?: AbortSignal
  /** After every epoch (awaited). */
  onEpoch?: (record: EpochRecord, state: { bestEpoch: number; epochs: number }) => void | Promise<void>
  /** During an epoch: optimiser steps done of total. */
  onProgress?: (p: { epoch: number; step: number; steps: number; loss: number; accuracy: number }) => void
  /** Run directory to write (config, history, metrics, model, pictures); none when omitted. */
  out?: string
  /** Recorded in config.json (the CLI passes its argv). */
  command?: string[]
  /** Called once the data is loaded, before training. */
  onData?: (inputs: Inputs) => void
}

export interface EpochRecord {
  /** 1-based. */
  epoch: number
  lr: number
  /** Mean over the epoch's batches, each measured before its update. */
  trainLoss: number
  trainAccuracy: number
  valLoss: number
  valAccuracy: number
  seconds: number
}

export interface SplitMetrics extends Summary {
  loss: number
  confusion: number[]
  samples: number
}

export interface ResolvedConfig {
  layers: number[]
  optimizer: OptimizerName
  lr: number
  batchSize: number
  l2: number
  beta1: number
  beta2: number
  eps: number
  epochs: number
  schedule: ScheduleName
  lrMin: number
  earlyStopping: boolean
  patience: number
  minDelta: number
  restoreBest: boolean
  seed: number
  threads: number
  split: { train: number; validation: number; test: number }
}

export type StopReason = 'completed' | 'early-stopping' | 'diverged'

export interface TrainResult {
  model: MLP
  config: ResolvedConfig
  inputs: Inputs
  history: EpochRecord[]
  /** 1-based epoch of the lowest validation loss. */
  bestEpoch: number
  /** 1-based epoch whose weights the model holds at the end (bestEpoch when restored). */
  weightsEpoch: number
  stopReason: StopReason
  /** Present when the run diverged: what happened, in words. */
  divergence?: string
  metrics: { train: SplitMetrics; validation: SplitMetrics; test: SplitMetrics }
  seconds: number
  runDir?: string
}

export function resolveConfig(opts: TrainOptions, features: number, classes: number): ResolvedConfig {
  const optimizer = opts.optimizer ?? 'adam'
  const lr = opts.lr ?? (optimizer === 'adam' ? 1e-3 : 0.1)
  return {
    layers: [features, ...(opts.hidden ?? [512]), classes],
    optimizer,
    lr,
    batchSize: opts.batchSize ?? 32,
    l2: opts.l2 ?? 1e-3,
    beta1: opts.beta1 ?? 0.9,
    beta2: opts.beta2 ?? 0.999,
    eps: opts.eps ?? 1e-8,
    epochs: opts.epochs ?? 200,
    schedule: opts.schedule ?? 'constant',
    lrMin: opts.lrMin ?? lr / 100,
    earlyStopping: opts.earlyStopping ?? true,
    patience: opts.patience ?? 20,
    minDelta: opts.minDelta ?? 0,
    restoreBest: opts.restoreBest ?? true,
    seed: opts.seed ?? randomInt(0, 2 ** 31),
    threads: opts.threads ?? availableParallelism(),
    split: opts.split ?? { train: 0.6, validation: 0.2, test: 0.2 },
  }
}

async function splitMetrics(model: MLP, data: Dataset, classes: number): Promise<SplitMetrics> {
  const ev = await model.evaluate(data)
  return { ...summarize(ev.confusion, classes, ev.loss), loss: ev.loss, confusion: [...ev.confusion], samples: data.length }
}

/** Loads the data, trains, and evaluates on all three splits. */
export async function train(opts: TrainOptions = {}): Promise<TrainResult> {
  const started = performance.now()
  const seed = opts.seed ?? randomInt(0, 2 ** 31)
  const inputs = await loadInputs({ ...opts, seed })
  opts.onData?.(inputs)
  const config = resolveConfig({ ...opts, seed }, inputs.features, inputs.classes)
  const model = new MLP({ layers: config.layers, seed: config.seed, threads: config.threads })
  if (opts.out) await startRunDir(opts.out, config, inputs, opts.command)
  const sets = {
    train: new Dataset(inputs.train.images, inputs.train.labels, inputs.features),
    validation: new Dataset(inputs.validation.images, inputs.validation.labels, inputs.features),
    test: new Dataset(inputs.test.images, inputs.test.labels, inputs.features),
  }
  if (sets.validation.length === 0) throw new RangeError('the validation split is empty: early stopping and model selection need one')

  const stopper = new EarlyStopping({ patience: config.earlyStopping ? config.patience : Number.MAX_SAFE_INTEGER, minDelta: config.minDelta, restoreBest: config.restoreBest })
  const history: EpochRecord[] = []
  let best: Float32Array[] | undefined
  let stopReason: StopReason = 'completed'
  let divergence: string | undefined
  for (let t = 0; t < config.epochs; t++) {
    const epochStart = performance.now()
    const lr = learningRate({ name: config.schedule, lr: config.lr, lrMin: config.lrMin, epochs: config.epochs }, t)
    let fit
    try {
      fit = await model.fit(sets.train, {
        optimizer: config.optimizer, lr, batchSize: config.batchSize, l2: config.l2,
        beta1: config.beta1, beta2: config.beta2, eps: config.eps,
        signal: opts.signal,
        onProgress: opts.onProgress && ((p) => opts.onProgress!({ ...p, epoch: t + 1 })),
      })
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'KANA_DIVERGED') throw e
      stopReason = 'diverged'
      divergence = `epoch ${t + 1}: ${(e as Error).message}`
      break
    }
    const val = await model.evaluate(sets.validation, { signal: opts.signal })
    const record: EpochRecord = {
      epoch: t + 1, lr, trainLoss: fit.loss, trainAccuracy: fit.accuracy,
      valLoss: val.loss, valAccuracy: val.accuracy, seconds: (performance.now() - epochStart) / 1000,
    }
    history.push(record)
    if (opts.out) await writeHistory(opts.out, history)
    const { improved, stop } = stopper.update(t, val.loss)
    if (improved) best = model.getWeights()
    await opts.onEpoch?.(record, { bestEpoch: stopper.bestEpoch + 1, epochs: config.epochs })
    if (!Number.isFinite(val.loss)) {
      stopReason = 'diverged'
      divergence = `epoch ${t + 1}: the validation loss became ${val.loss}; the learning rate (${lr}) is probably too high`
      break
    }
    if (stop) {
      stopReason = 'early-stopping'
      break
    }
  }
  // Diverged weights are useless; otherwise restore the best epoch when asked.
  const bestEpoch = stopper.bestEpoch + 1
  let weightsEpoch = history.length
  if (best && (config.restoreBest || stopReason === 'diverged')) {
    model.setWeights(best)
    weightsEpoch = bestEpoch
  } else if (stopReason === 'diverged') {
    throw Object.assign(new Error(`training diverged before any usable epoch (${divergence}); lower the learning rate`), { code: 'KANA_DIVERGED' })
  }
  const metrics = {
    train: await splitMetrics(model, sets.train, inputs.classes),
    validation: await splitMetrics(model, sets.validation, inputs.classes),
    test: await splitMetrics(model, sets.test, inputs.classes),
  }
  const result: TrainResult = { model, config, inputs, history, bestEpoch, weightsEpoch, stopReason, divergence, metrics, seconds: (performance.now() - started) / 1000, runDir: opts.out }
  if (opts.out) await finishRunDir(opts.out, result)
  return result
}

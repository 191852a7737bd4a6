// The study's training procedure around the native engine: per-epoch learning-rate schedule,
// validation after every epoch, early stopping with restore-best-weights, divergence handling,
// and the final train/validation/test metrics. The per-batch math runs in the engine (MLP.fit).
import { Dataset, MLP, type OptimizerName } from '../engine/mlp'
import { EarlyStopping } from './early-stopping'
import { learningRate, type ScheduleName } from './schedule'
import { summarize } from '../output/metrics'
import { loadInputs, type InputOptions, type Inputs } from '../data/inputs'
import { finishRunDir, startRunDir } from './run-dir'
import { writeHistory } from './history'
import {
  CHECKPOINT_DIR, CHECKPOINT_INDEX, CheckpointError, dataFingerprint, fileFingerprint, readCheckpoint, removeCheckpoint, writeCheckpoint,
  type Checkpoint, type DataRecord, type FileFingerprint, type PendingFit,
} from './checkpoint'
import { randomInt } from 'node:crypto'
import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join, resolve } from 'node:path'
import { resolveModelConfig } from './config'
import type { EpochRecord, ResolvedConfig, SplitMetrics, StopReason, TrainResult } from './records'

export type { EpochRecord, ResolvedConfig, SplitMetrics, StopReason, TrainResult } from './records'

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
  /**
   * Stops training after the current batch; `train` then rejects with an AbortError. With a run
   * directory, a checkpoint is written first (RUN_DIR/checkpoint/) and the error's `checkpoint`
   * says where; `train({ resume: RUN_DIR })` continues the run from it.
   */
  signal?: AbortSignal
  /** After every epoch (awaited). `model` is the model being trained (its weights are that epoch's). */
  onEpoch?: (record: EpochRecord, state: { bestEpoch: number; epochs: number; model: MLP }) => void | Promise<void>
  /** During an epoch: optimiser steps done of total. */
  onProgress?: (p: { epoch: number; step: number; steps: number; loss: number; accuracy: number }) => void
  /** Milliseconds between onProgress reports (default 100). */
  progressInterval?: number
  /** Run directory to write (config, history, metrics, model, pictures); none when omitted. */
  out?: string
  /**
   * With `out`: also write a checkpoint after an epoch when this many seconds have passed since
   * the last one (default 60; 0 = only when interrupted), so that a run killed outright (SIGKILL,
   * power loss) can be resumed from there. Checkpoints are small: weights, Adam's moments, state.
   */
  checkpointEvery?: number
  /**
   * Continue the interrupted run in this run directory from its checkpoint, with its recorded
   * configuration and data: the result equals that of an uninterrupted run (same threads). Options
   * that define the run (hidden, lr, seed, split, …) may be given only with their recorded values;
   * data options (images, labels, dataset, data, cacheDir) may point to the data's new place, which
   * must hold the same data; `threads` may differ (with a warning: bit-identity needs the same).
   */
  resume?: string
  /** Called once a checkpoint has been loaded, before training continues. */
  onResume?: (info: ResumeInfo) => void
  /** Non-fatal problems (e.g. resuming with another thread count). Default: process.emitWarning. */
  onWarning?: (message: string) => void
  /** Recorded in config.json (the CLI passes its argv). */
  command?: string[]
  /** Called once the data is loaded, before training. */
  onData?: (inputs: Inputs) => void
}

/** Where a resumed run picks up (1-based epoch; step = optimiser steps of that epoch already done). */
export interface ResumeInfo {
  runDir: string
  epoch: number
  epochs: number
  phase: 'train' | 'validate'
  step: number
  steps: number
}

/** Attached as `checkpoint` to the AbortError of an interrupted run that has a run directory. */
export interface InterruptInfo extends ResumeInfo {
  /** The checkpoint folder, RUN_DIR/checkpoint. */
  dir: string
}

/** What `train` rejects with when its signal aborts it. */
export interface TrainAbortError extends Error {
  name: 'AbortError'
  /** Where the checkpoint was written (runs with a run directory). */
  checkpoint?: InterruptInfo
  /** Why no checkpoint could be written, when that failed. */
  checkpointError?: Error
}

/** The study's defaults (one table, shared with the experiments: trial.ts resolveModelConfig), checked. */
export function resolveConfig(opts: TrainOptions, features: number, classes: number): ResolvedConfig {
  const { hidden, ...model } = resolveModelConfig({ ...opts, seed: opts.seed ?? randomInt(0, 2 ** 31) })
  return {
    layers: [features, ...hidden, classes],
    ...model,
    threads: opts.threads ?? availableParallelism(),
    split: opts.split ?? { train: 0.6, validation: 0.2, test: 0.2 },
  }
}

async function splitMetrics(model: MLP, data: Dataset, classes: number): Promise<SplitMetrics> {
  const ev = await model.evaluate(data)
  return { ...summarize(ev.confusion, classes, ev.loss), loss: ev.loss, confusion: [...ev.confusion], samples: data.length }
}

const isAbort = (e: unknown) => (e as Error)?.name === 'AbortError'

/** Options that define a run: on resume each must be absent or equal to the recorded value. */
const RUN_KEYS = ['optimizer', 'lr', 'batchSize', 'l2', 'beta1', 'beta2', 'eps', 'epochs', 'schedule', 'lrMin', 'earlyStopping', 'patience', 'minDelta', 'restoreBest', 'seed'] as const

function checkResumeOptions(opts: TrainOptions, ck: Checkpoint, runDir: string): void {
  const conflicts: string[] = []
  const c = ck.config
  for (const k of RUN_KEYS) {
    if (opts[k] !== undefined && opts[k] !== c[k]) conflicts.push(`${k} ${String(opts[k])} (the run has ${String(c[k])})`)
  }
  const hidden = c.layers.slice(1, -1)
  if (opts.hidden !== undefined && opts.hidden.join() !== hidden.join()) conflicts.push(`hidden ${opts.hidden.join(',')} (the run has ${hidden.join(',')})`)
  const sp = opts.split
  if (sp !== undefined && (sp.train !== c.split.train || sp.validation !== c.split.validation || sp.test !== c.split.test)) {
    conflicts.push(`split ${sp.train},${sp.validation},${sp.test} (the run has ${c.split.train},${c.split.validation},${c.split.test})`)
  }
  if (opts.out !== undefined && resolve(opts.out) !== runDir) conflicts.push(`out ${opts.out} (resuming writes to the run's own directory ${runDir})`)
  if (opts.dataset !== undefined && ck.data.kind === 'dataset' && opts.dataset !== ck.data.dataset) conflicts.push(`dataset ${opts.dataset} (the run has ${ck.data.dataset})`)
  if (conflicts.length > 0) {
    throw new CheckpointError('ECONFLICT', `cannot resume ${runDir} with other settings: ${conflicts.join('; ')}. A resumed run continues with its recorded configuration; start a new run to change it`)
  }
}

/** Where the data came from (to load it again on resume) and what it was (to refuse other data). */
async function recordData(opts: TrainOptions, inputs: Inputs): Promise<DataRecord> {
  const src = inputs.source as Record<string, any>
  const kind: DataRecord['kind'] = opts.data ? 'memory' : opts.dataset ? 'dataset' : 'files'
  const files: FileFingerprint[] = []
  if (kind === 'files') {
    files.push(await fileFingerprint(src.images, 'images'), await fileFingerprint(src.labels, 'labels'))
  } else if (kind === 'dataset' && src.files) {
    for (const role of ['trainImages', 'trainLabels', 'testImages', 'testLabels']) {
      if (typeof src.files[role] === 'string') files.push(await fileFingerprint(src.files[role], role))
    }
  }
  return {
    kind,
    images: kind === 'files' ? src.images : undefined,
    labels: kind === 'files' ? src.labels : undefined,
    dataset: opts.dataset,
    cacheDir: opts.cacheDir === undefined ? undefined : resolve(opts.cacheDir),
    classmap: opts.classmap === undefined ? undefined : resolve(opts.classmap),
    features: inputs.features,
    classes: inputs.classes,
    classNames: inputs.classNames,
    samples: { train: inputs.train.labels.length, validation: inputs.validation.labels.length, test: inputs.test.labels.length },
    files,
    fingerprint: dataFingerprint(inputs),
  }
}

/** Loads the checkpointed run's data again (from where it is now) and proves it is the same data. */
async function loadResumeInputs(opts: TrainOptions, ck: Checkpoint, runDir: string): Promise<{ inputs: Inputs; record: DataRecord }> {
  const rec = ck.data
  const io: InputOptions = { split: ck.config.split, seed: ck.config.seed, signal: opts.signal, onDownloadProgress: opts.onDownloadProgress, cacheDir: opts.cacheDir ?? rec.cacheDir, classmap: opts.classmap }
  const record: DataRecord = { ...rec }
  if (opts.data) {
    io.data = opts.data
    Object.assign(record, { kind: 'memory', images: undefined, labels: undefined, dataset: undefined, files: [] })
  } else if (opts.dataset || (rec.kind === 'dataset' && !opts.images && !opts.labels)) {
    io.dataset = opts.dataset ?? (rec.dataset as InputOptions['dataset'])
  } else if (opts.images || opts.labels || rec.kind === 'files') {
    io.images = resolve(opts.images ?? rec.images ?? 'X_images.npy')
    io.labels = resolve(opts.labels ?? rec.labels ?? 'y_images.npy')
    // A quick, specific refusal before loading: same size and same first and last MiB.
    for (const [role, path] of [['images', io.images], ['labels', io.labels]] as const) {
      const was = rec.files.find((f) => f.role === role)
      if (!was || !existsSync(path)) continue
      const now = await fileFingerprint(path, role)
      if (now.size !== was.size) {
        throw new CheckpointError('EDATA', `cannot resume ${runDir}: ${path} has ${now.size} bytes, but the ${role} the run trained on (${was.path}) had ${was.size}: not the same data`)
      }
      if (now.head !== was.head || now.tail !== was.tail) {
        throw new CheckpointError('EDATA', `cannot resume ${runDir}: ${path} differs from the ${role} the run trained on (${was.path}), though of the same size: not the same data`)
      }
    }
    Object.assign(record, { kind: 'files', images: io.images, labels: io.labels, dataset: undefined })
  } else {
    throw new CheckpointError('EDATA', `cannot resume ${runDir}: the run trained on arrays in memory; pass the same arrays as \`data\` to resume it`)
  }
  const inputs = await loadInputs(io)
  if (dataFingerprint(inputs) !== rec.fingerprint) {
    const s = rec.samples
    throw new CheckpointError('EDATA', `cannot resume ${runDir}: the data (split with the run's seed ${ck.config.seed}) differ from what the run trained on ` +
      `(${inputs.train.labels.length}/${inputs.validation.labels.length}/${inputs.test.labels.length} samples now, ${s.train}/${s.validation}/${s.test} then, or the same counts with other contents)`)
  }
  if (!opts.classmap) inputs.classNames = [...rec.classNames]
  record.classNames = inputs.classNames
  return { inputs, record }
}

/** Loads the data, trains, and evaluates on all three splits. */
export async function train(opts: TrainOptions = {}): Promise<TrainResult> {
  let started = performance.now()
  const warn = opts.onWarning ?? ((message: string) => process.emitWarning(message, 'KanaNativeWarning'))
  let runDir = opts.out
  let ck: Checkpoint | undefined
  let inputs: Inputs
  let config: ResolvedConfig
  let dataRecord: DataRecord | undefined
  if (opts.resume !== undefined) {
    runDir = resolve(opts.resume)
    ck = await readCheckpoint(runDir)
    checkResumeOptions(opts, ck, runDir)
    ;({ inputs, record: dataRecord } = await loadResumeInputs(opts, ck, runDir))
    opts.onData?.(inputs)
    config = { ...ck.config, threads: opts.threads ?? ck.config.threads }
    if (config.threads !== ck.config.threads) {
      warn(`resuming ${runDir} with ${config.threads} threads; it ran with ${ck.config.threads}. Bit-identical results are promised only with the same thread count`)
    }
  } else {
    if (runDir !== undefined && existsSync(join(runDir, CHECKPOINT_DIR, CHECKPOINT_INDEX))) {
      throw new CheckpointError('ECONFLICT', `${runDir} holds the checkpoint of an interrupted run: continue it with \`kana-native train --resume ${runDir}\` (train({ resume })), or delete ${join(runDir, CHECKPOINT_DIR)} to start a new run there`)
    }
    const seed = opts.seed ?? randomInt(0, 2 ** 31)
    inputs = await loadInputs({ ...opts, seed })
    opts.onData?.(inputs)
    config = resolveConfig({ ...opts, seed }, inputs.features, inputs.classes)
    if (runDir !== undefined) dataRecord = await recordData(opts, inputs)
  }
  const model = new MLP({ layers: config.layers, seed: config.seed, threads: config.threads })
  if (runDir !== undefined && !ck) await startRunDir(runDir, config, inputs, opts.command)
  const sets = {
    train: new Dataset(inputs.train.images, inputs.train.labels, inputs.features),
    validation: new Dataset(inputs.validation.images, inputs.validation.labels, inputs.features),
    test: new Dataset(inputs.test.images, inputs.test.labels, inputs.features),
  }
  if (sets.validation.length === 0) throw new RangeError('the validation split is empty: early stopping and model selection need one')
  const n = sets.train.length
  const steps = Math.ceil(n / (config.optimizer === 'gd' ? n : Math.min(config.batchSize, n)))
  const checkpointEvery = opts.checkpointEvery ?? 60
  if (!(checkpointEvery >= 0 && Number.isFinite(checkpointEvery))) throw new RangeError(`checkpointEvery must be a finite number of seconds ≥ 0, got ${opts.checkpointEvery}`)

  let stopper = new EarlyStopping({ patience: config.earlyStopping ? config.patience : Number.MAX_SAFE_INTEGER, minDelta: config.minDelta, restoreBest: config.restoreBest })
  let history: EpochRecord[] = []
  let best: Float32Array[] | undefined
  let first = 0
  let pending: PendingFit | undefined
  let carried = 0
  if (ck) {
    const pe = ck.training.partialEpoch
    // The engine quietly starts a fresh epoch when the unfinished one does not fit the data: refuse instead.
    if (pe && (pe.order.length !== n || pe.batchSize !== Math.min(config.batchSize, n) || pe.nextStep >= steps || pe.order.some((i) => i >= n))) {
      throw new CheckpointError('ECORRUPT', `the checkpoint in ${join(runDir!, CHECKPOINT_DIR)} is damaged: its unfinished epoch does not fit ${n} training samples in batches of ${config.batchSize}`)
    }
    const lr = learningRate({ name: config.schedule, lr: config.lr, lrMin: config.lrMin, epochs: config.epochs }, ck.epoch)
    if (lr !== ck.lr) {
      throw new CheckpointError('ECONFLICT', `cannot resume ${runDir}: its schedule gave epoch ${ck.epoch + 1} the rate ${ck.lr}, this kana-native computes ${lr}`)
    }
    model.setWeights(ck.weights)
    model.setTrainingState(ck.training)
    stopper = EarlyStopping.fromJSON(ck.earlyStopping)
    history = ck.history.map((r) => ({ ...r }))
    best = ck.best
    first = ck.epoch
    pending = ck.pendingFit
    carried = ck.epochSeconds
    started -= ck.seconds * 1000
    opts.onResume?.({ runDir: runDir!, epoch: first + 1, epochs: config.epochs, phase: ck.phase, step: ck.phase === 'validate' ? steps : pe?.nextStep ?? 0, steps })
  }

  /** A checkpoint of the run as it stands in (0-based) epoch t: everything that decides the rest. */
  const checkpoint = async (t: number, lr: number, fit: PendingFit | undefined, epochSeconds: number) => {
    const training = model.getTrainingState()
    const phase: Checkpoint['phase'] = fit ? 'validate' : 'train'
    const dir = await writeCheckpoint(runDir!, {
      epoch: t, phase, lr, pendingFit: fit && { loss: fit.loss, accuracy: fit.accuracy, steps: fit.steps },
      epochSeconds, seconds: (performance.now() - started) / 1000,
      earlyStopping: stopper.toJSON(), history, config, data: dataRecord!, weights: model.getWeights(), best, training,
    })
    return { dir, phase, step: phase === 'validate' ? steps : training.partialEpoch?.nextStep ?? 0 }
  }
  let lastCheckpoint = performance.now()

  let stopReason: StopReason = 'completed'
  let divergence: string | undefined
  for (let t = first; t < config.epochs; t++) {
    const epochStart = performance.now() - (t === first ? carried * 1000 : 0)
    const lr = learningRate({ name: config.schedule, lr: config.lr, lrMin: config.lrMin, epochs: config.epochs }, t)
    let fit: PendingFit | undefined = t === first ? pending : undefined
    let val
    try {
      fit ??= await model.fit(sets.train, {
        optimizer: config.optimizer, lr, batchSize: config.batchSize, l2: config.l2,
        beta1: config.beta1, beta2: config.beta2, eps: config.eps,
        signal: opts.signal, progressInterval: opts.progressInterval,
        onProgress: opts.onProgress && ((p) => opts.onProgress!({ ...p, epoch: t + 1 })),
      })
      val = await model.evaluate(sets.validation, { signal: opts.signal })
    } catch (e) {
      if (isAbort(e) && runDir !== undefined) {
        // Interrupted: everything that decides the rest of the run goes into a checkpoint.
        const err = e as TrainAbortError
        try {
          const { dir, phase, step } = await checkpoint(t, lr, fit, (performance.now() - epochStart) / 1000)
          err.checkpoint = { dir, runDir: resolve(runDir), epoch: t + 1, epochs: config.epochs, phase, step, steps }
        } catch (ce) {
          err.checkpointError = ce as Error
        }
        throw err
      }
      if ((e as NodeJS.ErrnoException).code !== 'KANA_DIVERGED') throw e
      stopReason = 'diverged'
      divergence = `epoch ${t + 1}: ${(e as Error).message}`
      break
    }
    const record: EpochRecord = {
      epoch: t + 1, lr, trainLoss: fit.loss, trainAccuracy: fit.accuracy,
      valLoss: val.loss, valAccuracy: val.accuracy, seconds: (performance.now() - epochStart) / 1000,
    }
    history.push(record)
    if (runDir !== undefined) await writeHistory(runDir, history)
    const { improved, stop } = stopper.update(t, val.loss)
    if (improved) best = model.getWeights()
    await opts.onEpoch?.(record, { bestEpoch: stopper.bestEpoch + 1, epochs: config.epochs, model })
    if (!Number.isFinite(val.loss)) {
      stopReason = 'diverged'
      divergence = `epoch ${t + 1}: the validation loss became ${val.loss}; the learning rate (${lr}) is probably too high`
      break
    }
    if (stop) {
      stopReason = 'early-stopping'
      break
    }
    if (runDir !== undefined && checkpointEvery > 0 && t + 1 < config.epochs && performance.now() - lastCheckpoint >= checkpointEvery * 1000) {
      // an autosave between epochs: what a run killed outright resumes from
      await checkpoint(t + 1, learningRate({ name: config.schedule, lr: config.lr, lrMin: config.lrMin, epochs: config.epochs }, t + 1), undefined, 0)
      lastCheckpoint = performance.now()
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
  const result: TrainResult = { model, config, inputs, history, bestEpoch, weightsEpoch, stopReason, divergence, metrics, seconds: (performance.now() - started) / 1000, runDir }
  if (runDir !== undefined) {
    await finishRunDir(runDir, result)
    await removeCheckpoint(runDir)
  }
  return result
}

// `train()`: the study's training procedure on the user's data — data, one run (run.ts) with its
// hooks, the run directory. Schedule, validation after every epoch, early stopping with
// restore-best, divergence handling, history files, autosave and checkpoint on interruption all
// hang on the run; the per-batch math runs in the engine (MLP.fit, sources.ts engineEpochs).
import { Dataset, MLP } from '../engine/mlp'
import { Run } from './run'
import { engineEpochs, modelOptions } from './sources'
import { summarize } from '../output/metrics'
import { checkParts, loadInputs, type InputOptions, type Inputs } from '../data/inputs'
import { claimRunDir, finishRunDir, startRunDir, type RunDirClaim } from './run-dir'
import { writeHistory } from './history'
import {
  CHECKPOINT_DIR, CHECKPOINT_INDEX, CheckpointError, dataFingerprint, fileFingerprint, readCheckpoint, removeCheckpoint, writeCheckpoint,
  type Checkpoint, type DataRecord, type FileFingerprint,
} from './checkpoint'
import { randomInt } from 'node:crypto'
import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join, resolve } from 'node:path'
import { FIELD_NAMES, checkTrainOptions, resolveModelConfig, type FieldName, type ModelConfig } from './config'
import type { EpochRecord, ResolvedConfig, SplitMetrics, StopReason, TrainResult } from './records'

export type { EpochRecord, ResolvedConfig, SplitMetrics, StopReason, TrainResult } from './records'

/**
 * train()'s options: the model settings of the one schema (config.ts FIELDS: hidden, optimizer, lr,
 * batchSize, l2, beta1, beta2, eps, epochs, schedule, lrMin, earlyStopping, patience, minDelta,
 * restoreBest, issue F1's warmupEpochs, pctStart, divFactor, finalDivFactor, activation, leakySlope,
 * dropout, batchNorm, bnMomentum, bnEps, labelSmoothing, clipNorm, weightDecay, momentum, nesterov,
 * and seed — each optional, with the study's default), the data (InputOptions) and the run's own.
 */
export interface TrainOptions extends Omit<InputOptions, 'seed'>, Partial<ModelConfig> {
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
  /**
   * Run directory to write (config, history, metrics, model, pictures); none when omitted. The
   * directory is locked while the run works in it (a second process fails at once), and a
   * directory holding a finished run is refused unless `overwrite` is set (run-dir.ts claimRunDir).
   */
  out?: string
  /** Replace the run in `out` if there is one: only the files kana-native writes there are removed. Default false. */
  overwrite?: boolean
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


/** Options that define a run: on resume each must be absent or equal to the recorded value (every model setting; hidden is compared as layers). */
const RUN_KEYS = FIELD_NAMES.filter((k): k is Exclude<FieldName, 'hidden'> => k !== 'hidden')

function checkResumeOptions(opts: TrainOptions, ck: Checkpoint, runDir: string): void {
  const conflicts: string[] = []
  const c = ck.config
  for (const k of RUN_KEYS) {
    if (opts[k] !== undefined && JSON.stringify(opts[k]) !== JSON.stringify(c[k])) conflicts.push(`${k} ${String(opts[k])} (the run has ${String(c[k])})`)
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

/**
 * Loads the data, trains one run (run.ts) with the engine's own shuffled epochs, and evaluates on
 * all three splits (no test metrics, `test: null`, when the split's test part is empty). Every
 * setting and the split sizes are checked before any training; the run directory is claimed
 * (locked, and a finished run in it refused unless `overwrite`) before anything is written there.
 */
export async function train(opts: TrainOptions = {}): Promise<TrainResult> {
  // every setting that needs no data, before the directory is claimed or the data loaded
  checkTrainOptions(opts as Record<string, unknown>)
  const dir = opts.resume ?? opts.out
  if (dir === undefined) return trainIn(opts)
  const claim = await claimRunDir(dir, { kind: 'run', overwrite: opts.overwrite, resume: opts.resume !== undefined, command: opts.command, onWarning: opts.onWarning })
  try {
    return await trainIn(opts, claim)
  } finally {
    claim.release()
  }
}

async function trainIn(opts: TrainOptions, claim?: RunDirClaim): Promise<TrainResult> {
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
    checkParts(inputs, { emptyTest: true })
    opts.onData?.(inputs)
    config = resolveConfig({ ...opts, seed }, inputs.features, inputs.classes)
    if (runDir !== undefined) dataRecord = await recordData(opts, inputs)
  }
  const model = new MLP({ layers: config.layers, seed: config.seed, threads: config.threads, ...modelOptions({ ...config, hidden: config.layers.slice(1, -1) }) })
  if (runDir !== undefined && !ck) {
    await claim?.clear()
    await startRunDir(runDir, config, inputs, opts.command)
  }
  const sets = {
    train: new Dataset(inputs.train.images, inputs.train.labels, inputs.features),
    validation: new Dataset(inputs.validation.images, inputs.validation.labels, inputs.features),
    test: new Dataset(inputs.test.images, inputs.test.labels, inputs.features),
  }
  const n = sets.train.length
  const steps = Math.ceil(n / (config.optimizer === 'gd' ? n : Math.min(config.batchSize, n)))
  const checkpointEvery = opts.checkpointEvery ?? 60

  const modelConfig = { ...config, hidden: config.layers.slice(1, -1) }
  const run = new Run(modelConfig, engineEpochs(model, modelConfig, sets, { progressInterval: opts.progressInterval, onProgress: opts.onProgress }), {
    hooks: {
      history: runDir === undefined ? undefined : (_r, r) => writeHistory(runDir!, r.history),
      onEpoch: opts.onEpoch ? [(record, r) => opts.onEpoch!(record, { bestEpoch: r.bestEpoch, epochs: config.epochs, model })] : [],
      checkpoint: runDir === undefined ? undefined : {
        every: checkpointEvery,
        // everything that decides the rest of the run, as it stands between two batches or epochs
        save: async (): Promise<InterruptInfo> => {
          const state = run.state()
          const { step, rng, m, v, partialEpoch } = model.getTrainingState()
          const p = state.progress
          const dir = await writeCheckpoint(runDir!, {
            config, data: dataRecord!, lr: run.lr(p.epoch),
            snapshot: { ...state, released: false, model: { weights: model.getWeights(), norm: model.getNormState(), step, rng, m, v, partialEpoch }, extra: { train: { seconds: (performance.now() - started) / 1000 } } },
          })
          return { dir, runDir: resolve(runDir!), epoch: p.epoch + 1, epochs: config.epochs, phase: p.phase, step: p.phase === 'validate' ? steps : partialEpoch?.nextStep ?? 0, steps }
        },
      },
    },
  })
  if (ck) {
    const s = ck.snapshot
    const pe = s.model.partialEpoch
    // The engine quietly starts a fresh epoch when the unfinished one does not fit the data: refuse instead.
    if (pe && (pe.order.length !== n || pe.batchSize !== Math.min(config.batchSize, n) || pe.nextStep >= steps || pe.order.some((i) => i >= n))) {
      throw new CheckpointError('ECORRUPT', `the checkpoint in ${join(runDir!, CHECKPOINT_DIR)} is damaged: its unfinished epoch does not fit ${n} training samples in batches of ${config.batchSize}`)
    }
    const lr = run.lr(s.progress.epoch)
    if (lr !== ck.lr) {
      throw new CheckpointError('ECONFLICT', `cannot resume ${runDir}: its schedule gave epoch ${s.progress.epoch + 1} the rate ${ck.lr}, this kana-native computes ${lr}`)
    }
    model.setWeights(s.model.weights)
    model.setNormState(s.model.norm ?? [])
    model.setTrainingState({ step: s.model.step, rng: s.model.rng!, m: s.model.m, v: s.model.v, partialEpoch: pe })
    run.restore(s)
    const seconds = (s.extra?.train as { seconds?: unknown } | undefined)?.seconds
    started -= (typeof seconds === 'number' && Number.isFinite(seconds) ? seconds : s.progress.seconds) * 1000
    opts.onResume?.({ runDir: runDir!, epoch: s.progress.epoch + 1, epochs: config.epochs, phase: s.progress.phase, step: s.progress.phase === 'validate' ? steps : pe?.nextStep ?? 0, steps })
  }

  await run.advance(config.epochs, opts.signal)
  // Diverged weights are useless; otherwise the best epoch's when asked (restore-best).
  run.finish()
  if (!run.usable) throw run.divergedError()
  const metrics = {
    train: await splitMetrics(model, sets.train, inputs.classes),
    validation: await splitMetrics(model, sets.validation, inputs.classes),
    test: sets.test.length > 0 ? await splitMetrics(model, sets.test, inputs.classes) : null,
  }
  const result: TrainResult = {
    model, config, inputs, history: run.history, bestEpoch: run.bestEpoch, weightsEpoch: run.weightsEpoch, stopReason: run.stopReason as StopReason,
    divergence: run.divergence, metrics, seconds: (performance.now() - started) / 1000, runDir,
  }
  if (runDir !== undefined) {
    await finishRunDir(runDir, result)
    await removeCheckpoint(runDir)
  }
  return result
}

// The study under way: the options it was started with, and the state every phase reads and adds
// to (configuration, directory, data, checkpoint store, the finished models). openStudy makes it:
// settings (or a checkpoint's, to resume), the data, the test split kept closed until selection is
// over. The phases themselves are in models.ts, m2.ts, evaluation.ts and files.ts.
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { MLP, Dataset, parameterCount } from '../engine/mlp'
import { machineFacts } from '../engine/machine'
import { loadInputs, type InputOptions, type Inputs, type Part } from '../data/inputs'
import { summarize } from '../output/metrics'
import { writeFileAtomic } from '../output/atomic'
import type { RunDirClaim } from '../training/run-dir'
import type { Trial } from '../training/trial'
import type { Run } from '../training/run'
import { trialData, type TrialData } from '../training/sources'
import { CheckpointError, dataFingerprint } from '../training/checkpoint'
import type { EpochRecord, SplitMetrics } from '../training/records'
import { TrialQueue } from '../queue/executor'
import { dataSpecOf } from '../queue/data'
import type { SearchResult } from './search'
import type { runResyncInWorker, ReferenceOutcome, ReferenceRun } from './reference-trial'
import { ExperimentStore, hasExperimentCheckpoint, readExperimentCheckpoint, type ExperimentCheckpointHeader, type LoadedExperimentCheckpoint } from './checkpoint'
import { configForFile, resolveExperiment, RUN_KEYS, type ExperimentConfig, type ModelId, type ResolvedExperiment } from './config'
import { techniques } from './describe'
import { json, type ModelResult } from './records'

/** runExperiment's options: the experiment's settings (config.ts) and how this process runs them. */
export interface ExperimentOptions extends ExperimentConfig {
  /** Arrays in memory instead of files (tests, Node callers). */
  inMemory?: InputOptions['data']
  /**
   * Experiment directory; default runs/experiment-<timestamp>. Locked while the experiment works
   * in it; one holding a finished experiment is refused unless `overwrite` (run-dir.ts claimRunDir).
   */
  out?: string
  /** Replace the experiment in `out` if there is one: only the files kana-native writes there are removed. Default false. */
  overwrite?: boolean
  /** Recorded in experiment.json. */
  command?: string[]
  /** Write report.html at the end (default true). */
  report?: boolean
  /**
   * Aborting stops every model after its current mini-batch, writes a checkpoint into the
   * experiment directory and rejects with an AbortError whose `checkpoint` says where.
   */
  signal?: AbortSignal
  /**
   * Continue the interrupted experiment in this directory from its checkpoint, with its recorded
   * configuration (give no other settings; in-memory data must be passed again as `inMemory`).
   * The result equals that of an uninterrupted run with the same threads.
   */
  resume?: string
  /** Progress lines (phases, trials, epochs of long runs). */
  log?: (line: string) => void
  /**
   * A job queue, redis://[user:password@]host:port[/db] or rediss://: the searches' trials, M0, M4
   * and M5's candidates are trained as jobs by the workers connected to it (`kana-native worker`), with the same
   * results; the rest stays here. Data must come from files (or a named data set) the workers can read.
   */
  queue?: string
}

/**
 * An experiment under way: its configuration, directory, data and checkpoint store, and what its
 * phases have produced so far. Each phase of the outline (experiment.ts) takes it and adds to it.
 */
export interface Study {
  opts: ExperimentOptions
  cfg: ResolvedExperiment
  dir: string
  loaded?: LoadedExperimentCheckpoint
  store: ExperimentStore
  inputs: Inputs
  data: TrialData
  testSplit: TestSplit
  log: (line: string) => void
  clock: PhaseClock
  machineAtStart: ReturnType<typeof machineFacts>
  /** Writes the checkpoint after a phase, so that a process killed outright loses one phase at most. */
  phaseDone(phase: string): Promise<string>
  checkpointHeader(reason: string): ExperimentCheckpointHeader
  wants(m: ModelId): boolean
  finished: Map<ModelId, Finished>
  search?: SearchResult
  arch?: SearchResult
  m5?: SearchResult
  reference?: ReferenceRun
  /** The reference's outcome, recorded in the store as soon as it arrives (for the next checkpoint). */
  referenceOutcome?: Promise<ReferenceOutcome>
  resync?: ReturnType<typeof runResyncInWorker>
  refOut?: ReferenceOutcome
  prefix?: EngineCopy
  twins: EngineCopy[]
  /** Threads for this thread's models while the reference holds one core. */
  sideThreads: number
  queue?: TrialQueue
  /** Advances the trial under `key`: here, or as a job on the queue. */
  advance(key: string, t: Trial, untilEpoch: number): Promise<void>
}

/** What one model's phase leaves for the test split and the files. */
export interface Finished {
  trial?: Trial
  result: Omit<ModelResult, 'metrics' | 'dir' | 'notes'> & { notes?: string }
}

/** A native run of M1's configuration for exactly the reference's epochs, with its weights at the reference's final epoch. */
export interface EngineCopy {
  trial: Trial
  /** Weights at the epoch whose weights M2 ends with (its restored best). */
  atEpoch: number
}

/**
 * Configuration (or the checkpoint's, to resume), the directory, the data, the store of trials.
 * `resolved`: a new experiment's configuration, resolved (its random seed drawn) once, before the directory was claimed.
 */
export async function openStudy(opts: ExperimentOptions, dir: string, claim: RunDirClaim, resolved?: ResolvedExperiment): Promise<Study> {
  const clock = new PhaseClock()
  const log = opts.log ?? (() => {})
  let loaded: LoadedExperimentCheckpoint | undefined
  if (opts.resume !== undefined) {
    const given = RUN_KEYS.filter((k) => opts[k] !== undefined)
    if (given.length) throw new RangeError(`resume takes the experiment's configuration from its checkpoint; do not give ${given.join(', ')}`)
    if (opts.out !== undefined && resolve(opts.out) !== resolve(opts.resume)) throw new RangeError(`resume continues the experiment in its own directory (${resolve(opts.resume)}); do not give another out (${resolve(opts.out)})`)
    loaded = await readExperimentCheckpoint(resolve(opts.resume))
    log(`resuming the experiment in ${loaded.dir} from its checkpoint of ${loaded.createdAt} (${loaded.reason})`)
  }
  let cfg: ResolvedExperiment
  try {
    cfg = loaded ? resolveExperiment(loaded.config as ExperimentConfig) : resolved ?? resolveExperiment(opts)
  } catch (e) {
    if (!loaded) throw e
    throw new CheckpointError('ECORRUPT', `the experiment checkpoint in ${loaded.dir} holds an invalid configuration: ${(e as Error).message}`, { cause: e })
  }
  if (!loaded && (await hasExperimentCheckpoint(dir))) {
    throw new CheckpointError('ECONFLICT', `${dir} holds the checkpoint of an interrupted experiment: continue it with \`kana-native experiment --resume ${dir}\` (runExperiment({ resume })), or choose another directory`)
  }
  await mkdir(dir, { recursive: true })
  const store = new ExperimentStore(loaded)
  const priorSeconds = loaded?.seconds ?? 0
  const interruptions = loaded?.interruptions ?? 0
  const machineAtStart = machineFacts()

  clock.begin('data')
  const inputs: Inputs = await loadInputs({ ...cfg.data, data: opts.inMemory, split: cfg.split, seed: cfg.seed })
  const fingerprint = dataFingerprint(inputs)
  if (loaded && loaded.data.fingerprint !== fingerprint) {
    throw new CheckpointError('EDATA', `the data differ from those the interrupted experiment in ${dir} trained on (their fingerprint changed): resume needs the same files${opts.inMemory ? ' (or the same arrays, passed again as inMemory)' : ''}`)
  }
  const data = trialData(inputs.train, inputs.validation, inputs.features, inputs.classes)
  const testSplit = new TestSplit(inputs.test, inputs.features)
  log(`data: ${inputs.train.labels.length} train / ${inputs.validation.labels.length} validation / ${inputs.test.labels.length} test samples, ${inputs.classes} classes, ${inputs.features} features; seed ${cfg.seed}`)
  if (!loaded) {
    await claim.clear() // an overwritten experiment's files go just before the first new one is written
    await writeFileAtomic(join(dir, 'experiment-config.json'), json(configForFile(cfg)))
  }
  clock.end('data')
  const checkpointHeader = (reason: string): ExperimentCheckpointHeader => ({
    config: configForFile(cfg), data: { fingerprint, samples: { train: inputs.train.labels.length, validation: inputs.validation.labels.length, test: inputs.test.labels.length } },
    reason, seconds: priorSeconds + (performance.now() - clock.started) / 1000, interruptions: interruptions + (reason === 'interrupted' ? 1 : 0), command: opts.command,
  })
  const queue = opts.queue === undefined ? undefined : await TrialQueue.open(opts.queue, { data: dataSpecOf(inputs, cfg.split, cfg.seed, fingerprint), log })
  return {
    opts, cfg, dir, loaded, store, inputs, data, testSplit, log, clock, machineAtStart, checkpointHeader, queue,
    advance: (key, t, untilEpoch) => (queue ? queue.advance(key, t, untilEpoch, opts.signal) : t.advance(untilEpoch, opts.signal)),
    phaseDone: (phase) => store.write(dir, checkpointHeader(phase)),
    wants: (m) => cfg.models.includes(m),
    finished: new Map(), twins: [], sideThreads: cfg.threads,
  }
}

/** Wall seconds per phase (experiment.json `timings`). */
export class PhaseClock {
  readonly started = performance.now()
  readonly timings: Record<string, number> = {}
  private readonly starts = new Map<string, number>()
  begin(p: string): void {
    this.starts.set(p, performance.now())
  }
  end(p: string): void {
    this.timings[p] = (performance.now() - this.starts.get(p)!) / 1000
  }
}

/** The test split: opened once selection is over, each model evaluated on it once. */
export class TestSplit {
  private open = false
  readonly evaluations: { model: string; at: string }[] = []
  readonly set: Dataset
  constructor(readonly part: Part, features: number) {
    this.set = new Dataset(part.images, part.labels, features)
  }
  /** Model selection is over: from now on the test split may be read. */
  unlock(): void {
    this.open = true
  }
  record(model: string): void {
    if (!this.open) throw new Error(`internal error: the test split was read for ${model} before model selection finished`)
    if (this.evaluations.some((e) => e.model === model)) throw new Error(`internal error: the test split was read twice for ${model}`)
    this.evaluations.push({ model, at: new Date().toISOString() })
  }
  async evaluate(model: string, m: MLP, classes: number): Promise<SplitMetrics> {
    this.record(model)
    return metricsOf(await m.evaluate(this.set), classes, this.part.labels.length)
  }
}

/** A split's metrics from an evaluation: its confusion matrix summarised (output/metrics.ts). */
export function metricsOf(ev: { loss: number; accuracy: number; confusion: ArrayLike<number> }, classes: number, samples: number): SplitMetrics {
  return { ...summarize(ev.confusion, classes, ev.loss), loss: ev.loss, confusion: Array.from(ev.confusion), samples }
}

/** A finished engine trial as model `id`'s result (notes, metrics and directory come later). */
export const fromTrial = (id: ModelId, t: Trial): Finished['result'] => ({
  id, engine: 'native', config: t.config, layers: t.layers, parameters: parameterCount(t.layers), history: t.history,
  bestEpoch: t.bestEpoch, weightsEpoch: t.weightsEpoch, stoppedBy: t.stopReason ?? 'completed', seconds: t.seconds, techniques: techniques(t.config),
})

/** Progress lines of a long run: its first, every `every`-th and last epoch. */
export const epochLogger = (log: (line: string) => void, id: string, every: number) => (r: EpochRecord, t: Run<Float32Array>) => {
  if (r.epoch % every === 0 || r.epoch === 1 || r.epoch === t.config.epochs) {
    log(`${id} epoch ${r.epoch}/${t.config.epochs}  loss ${r.trainLoss.toFixed(4)}  acc ${r.trainAccuracy.toFixed(4)}  val_loss ${r.valLoss.toFixed(4)}  val_acc ${r.valAccuracy.toFixed(4)}  ${r.seconds.toFixed(2)}s`)
  }
}

/** M1's trial, once the search has selected it: M2, M3 and the agreement check start from it. */
export const m1Of = (x: Study) => x.finished.get('M1')?.trial

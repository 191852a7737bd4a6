// M2: a model configuration trained by the independent pure-TypeScript reference (reference.ts)
// instead of the engine — same split, same initial weights, same mini-batches in the same order
// (sources.ts epochOrder), same learning rate per epoch, same early stopping and restore-best: the
// same Run (run.ts) as every engine model, with the reference as its batch source.
//
// The reference computes in float64 with plain loops and is slow (≈ 0.15–0.4 s per batch of 32 on
// [784,512,10]: tens of seconds per epoch of 4,800 images), so it runs the longest prefix of the
// configuration's epochs that fits a wall-clock budget: an epoch is started only when the time
// used so far plus the last epoch's duration fits, and one that overruns the budget by half is
// abandoned (its partial steps are not reported). The first epoch always runs. It runs on a worker
// thread (runReferenceInWorker) so that native training can use the other core meanwhile; the
// test split is sent only at the end, after model selection, and evaluated once.
//
// Interrupting (an experiment's Ctrl-C): the worker's loop is synchronous, so it watches a flag in
// shared memory before every mini-batch; when it is set, the run stops there and hands back its
// whole state (ReferenceState: float64 parameters, Adam's moments, the unfinished epoch's sums,
// the time used against the budget), from which runReference continues exactly.
import { Worker } from 'node:worker_threads'
import { join } from 'node:path'
import { ReferenceMLP } from '../engine/reference'
import { EpochInterrupted, Run, epochLr } from '../training/run'
import { flatParams, flatState, referenceBatches, referenceModel, stateInit } from '../training/reference-source'
import type { ModelConfig } from '../training/config'
import type { RunSnapshot } from '../training/checkpoint'
import type { Part } from '../data/inputs'
import type { EpochRecord } from '../training/records'

export interface ReferenceJob {
  config: ModelConfig
  layers: number[]
  /** [W1, b1, W2, b2, …] as MLP.getWeights() returns them (then, with batch norm, the norm state: sources.ts modelParams). */
  init: Float32Array[]
  train: Part
  validation: Part
  features: number
  budgetSeconds: number
}

export type ReferenceStop = 'budget' | 'early-stopping' | 'completed' | 'diverged'

export interface ReferenceOutcome {
  history: EpochRecord[]
  /** Why the run ended: the time budget, or as the configuration would have ended it anyway. */
  stoppedBy: ReferenceStop
  bestEpoch: number
  weightsEpoch: number
  seconds: number
  /** Weights the run ends with (after restore-best when configured), float32; with batch norm, the norm state after them. */
  weights: Float32Array[]
  /** The same in float64: the model the test split is evaluated with. */
  weights64: Float64Array[]
  validation: { loss: number; accuracy: number; confusion: number[] }
  /** Whether the run trained on a worker thread: recorded with the outcome in a checkpoint, so that a resumed experiment reports it as it was. */
  onWorker?: boolean
}

/**
 * A reference run stopped between two mini-batches: enough to continue it exactly. The run's
 * snapshot in float64 (model: parameters, Adam's step and moments, the parameters at the epoch's
 * start), with the time budget's state in `extra.budget` (seconds used, the last epoch's duration).
 */
export type ReferenceState = RunSnapshot<Float64Array>

export interface ReferenceTest {
  loss: number
  accuracy: number
  confusion: number[]
}

export interface ReferenceControl {
  /** Shared Int32Array: when element 0 becomes non-zero the run stops before its next mini-batch. */
  stop?: Int32Array
  /** Continue from this state instead of the initial weights. */
  resume?: ReferenceState
}

export type ReferenceRunResult = { outcome: ReferenceOutcome; model: ReferenceMLP; state?: undefined } | { state: ReferenceState; outcome?: undefined; model?: undefined }

/** The time budget's state: wall seconds used over every session, and the last epoch's duration. */
interface BudgetState {
  seconds: number
  lastEpochSeconds: number
}

/**
 * Puts an optimiser state in the engine's layout (checkpoint.ts ModelState; Adam's moments, or the
 * momentum buffer in `m`) into a reference model, with its step counter (the dropout masks' step).
 */
function restoreReference(model: ReferenceMLP, layers: number[], c: ModelConfig, m: { norm?: ArrayLike<number>[]; step: number; m: ArrayLike<number>[]; v: ArrayLike<number>[] }): void {
  const hiddenNorm = c.batchNorm ? layers.length - 2 : 0
  if (m.norm?.length) model.setNormState(m.norm)
  model.setSteps(m.step)
  const adamLike = c.optimizer === 'adam' || c.optimizer === 'adamw'
  if (adamLike) model.setAdamState(m.m.length ? { t: m.step, m: stateInit(m.m, layers.length - 1, hiddenNorm), v: stateInit(m.v, layers.length - 1, hiddenNorm) } : null)
  else model.setMomentumState(m.m.length ? stateInit(m.m, layers.length - 1, hiddenNorm) : null)
}

/** The reference run itself. Keeps the final model for the later test evaluation. */
export async function runReference(job: ReferenceJob, onEpoch?: (r: EpochRecord) => void, control: ReferenceControl = {}): Promise<ReferenceRunResult> {
  const c = job.config
  const rs = control.resume
  const budget: BudgetState = { seconds: 0, lastEpochSeconds: 0, ...(rs?.extra?.budget as BudgetState | undefined) }
  const started = performance.now() - budget.seconds * 1000
  const elapsed = () => (performance.now() - started) / 1000
  // One that overruns the budget by half is abandoned (the first epoch always runs to its end).
  const src = referenceBatches(job.layers, rs?.model ? rs.model.weights : job.init, c, job.train, job.validation, job.features, {
    stop: control.stop, abandon: () => elapsed() > job.budgetSeconds * 1.5,
  })
  const run = new Run<Float64Array>(c, src, {
    hooks: {
      // an epoch starts only when the time used so far plus the last epoch's duration fits
      before: [(_r, t) => (t > 0 && elapsed() + budget.lastEpochSeconds > job.budgetSeconds ? 'budget' : null)],
      onEpoch: [(record) => {
        budget.lastEpochSeconds = record.seconds
        onEpoch?.(record)
      }],
    },
  })
  if (rs) {
    const m = rs.model!
    restoreReference(src.model, job.layers, c, m)
    src.epochStart = m.epochStart
    run.restore(rs)
  }
  try {
    await run.advance(c.epochs)
  } catch (e) {
    if ((e as Error)?.name !== 'AbortError') throw e
    const ref = src.model
    const adam = ref.getAdamState()
    const momentum = ref.getMomentumState()
    return {
      state: {
        ...run.state(), released: false,
        model: {
          weights: flatParams(ref.getWeights64()), norm: ref.getNormState64(), step: ref.steps, rng: null,
          m: adam ? flatState(adam.m) : momentum ? flatState(momentum) : [], v: adam ? flatState(adam.v) : [], partialEpoch: null, epochStart: src.epochStart,
        },
        extra: { budget: { ...budget, seconds: elapsed() } },
      },
    }
  }
  run.finish()
  const model = src.model
  const val = model.evaluate(job.validation.images, job.validation.labels, job.validation.labels.length)
  // with batch norm the norm state follows the weights (the Run's layout, sources.ts modelParams)
  const weights = [...model.getWeights().flatMap((p) => [p.weights, p.bias]), ...model.getNormState()]
  return {
    model,
    outcome: {
      history: run.history, stoppedBy: run.stopReason as ReferenceStop, bestEpoch: run.bestEpoch, weightsEpoch: run.weightsEpoch, seconds: elapsed(), weights, weights64: [...flatParams(model.getWeights64()), ...model.getNormState64()],
      validation: { loss: val.loss, accuracy: val.accuracy, confusion: [...val.confusion] },
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Re-synchronised epochs: the reference trains epoch e from the engine's exact state at the start
// of epoch e (weights, Adam's step count and moments) on the same batches, and its training loss
// is compared with the engine's for that epoch. A free-running comparison (M2 against M1) also
// measures how far a configuration carries rounding differences from epoch to epoch, which in
// chaotic training grows far beyond any implementation error; starting every epoch afresh from
// the same state leaves one epoch's worth of that growth, so what remains is the implementations.

/** The engine's state at the start of (0-based) epoch `epoch`. */
export interface EpochStart {
  epoch: number
  /** sources.ts modelParams: the weights, then with batch norm the norm state. */
  weights: Float32Array[]
  step: number
  /** Adam's moments (empty before the first Adam step). */
  m: Float32Array[]
  v: Float32Array[]
}

export interface ResyncJob {
  config: ModelConfig
  layers: number[]
  train: Part
  features: number
  starts: EpochStart[]
  /** The engine's weights at the end of each of those epochs, and its training loss in each. */
  ends: Float32Array[][]
  engineLoss: number[]
  budgetSeconds: number
  /** Epochs already done (a resumed experiment): start with starts[skip]. */
  skip: number
}

export interface ResyncRecord {
  /** 1-based. */
  epoch: number
  engineLoss: number
  referenceLoss: number
  /** |engine − reference| / reference. */
  relDiff: number
  /** Largest |Δ| between the two implementations' weights at the end of the epoch. */
  maxAbsWeightDiff: number
  seconds: number
}

/**
 * Runs the re-synchronised epochs, within the budget; stops before a batch when `stop` is set.
 * Each is one epoch of the reference's batch source from an engine state — a measurement, not a
 * run: nothing is validated, kept or stopped early.
 */
export async function runResync(job: ResyncJob, onEpoch: (r: ResyncRecord) => void, stop?: Int32Array): Promise<void> {
  const c = job.config
  const started = performance.now()
  let last = 0
  for (let k = job.skip; k < job.starts.length; k++) {
    const elapsed = (performance.now() - started) / 1000
    if (k > job.skip && elapsed + last > job.budgetSeconds) return
    const epochStart = performance.now()
    const s = job.starts[k]
    const src = referenceBatches(job.layers, s.weights, c, job.train, job.train, job.features, { stop })
    restoreReference(src.model, job.layers, c, { norm: [], step: s.step, m: s.m, v: s.v })
    let referenceLoss: number
    try {
      referenceLoss = (await src.trainEpoch(s.epoch, epochLr(c, s.epoch), undefined, null)).loss
    } catch (e) {
      if (e instanceof EpochInterrupted) return
      throw e
    }
    const w = src.getWeights()
    let maxAbs = 0
    job.ends[k].forEach((e, l) => e.forEach((x, i) => (maxAbs = Math.max(maxAbs, Math.abs(x - w[l][i])))))
    const engineLoss = job.engineLoss[k]
    last = (performance.now() - epochStart) / 1000
    onEpoch({ epoch: s.epoch + 1, engineLoss, referenceLoss, relDiff: Math.abs(engineLoss - referenceLoss) / Math.abs(referenceLoss), maxAbsWeightDiff: maxAbs, seconds: last })
  }
}

/**
 * Runs the re-synchronised epochs on a worker thread; the records arrive one by one. Interrupting
 * ends the worker at once: the epoch under way is recomputed on resume (it is a check, not training).
 */
export function runResyncInWorker(job: ResyncJob, onEpoch: (r: ResyncRecord) => void): { result: Promise<void>; terminate(): Promise<void> } {
  const stop = new Int32Array(new SharedArrayBuffer(4))
  let worker: Worker
  try {
    worker = new Worker(workerCode(), { eval: true, workerData: { kind: 'resync', job, stop } })
  } catch {
    return { result: runResync(job, onEpoch), terminate: async () => {} }
  }
  const result = new Promise<void>((resolve, reject) => {
    worker.on('message', (m: { type: string; record?: ResyncRecord; error?: string }) => {
      if (m.type === 'resync-epoch') onEpoch(m.record!)
      else if (m.type === 'resync-done') resolve()
      else if (m.type === 'error') reject(new Error(`re-synchronised reference epochs failed: ${m.error}`))
    })
    worker.on('error', reject)
  })
  result.catch(() => {})
  return {
    result,
    terminate: async () => {
      Atomics.store(stop, 0, 1)
      await worker.terminate()
    },
  }
}

/** Code that starts reference-worker in a worker thread (registering tsx first under the TypeScript sources, as tests run). */
function workerCode(): string {
  const ts = __filename.endsWith('.ts')
  const entry = join(__dirname, `reference-worker${ts ? '.ts' : '.js'}`)
  return `${ts ? "require('tsx/cjs/api').register();" : ''} require(${JSON.stringify(entry)})`
}

/** A reference run under way: its result, and the test evaluation to ask for once selection is done. */
export interface ReferenceRun {
  result: Promise<ReferenceOutcome>
  /** Evaluates the final model on the test split (call once, after `result`), then ends the worker. */
  test(test: Part): Promise<ReferenceTest>
  /**
   * Stops the run before its next mini-batch and resolves with its state — or with its outcome, if
   * it had finished. The worker ends either way.
   */
  interrupt(): Promise<{ state?: ReferenceState; outcome?: ReferenceOutcome }>
  /** Whether it runs on a worker thread (false: in this thread, because the worker could not start). */
  readonly onWorker: boolean
  terminate(): Promise<void>
}

type WorkerMessage = { type: string; record?: EpochRecord; outcome?: ReferenceOutcome; state?: ReferenceState; test?: ReferenceTest; error?: string }

/** Starts the reference run on a worker thread (continuing `resume` when given). */
export function runReferenceInWorker(job: ReferenceJob, onEpoch?: (r: EpochRecord) => void, resume?: ReferenceState): ReferenceRun {
  const stop = new Int32Array(new SharedArrayBuffer(4))
  let worker: Worker
  try {
    worker = new Worker(workerCode(), { eval: true, workerData: { kind: 'reference', job, resume, stop } })
  } catch {
    return runReferenceHere(job, onEpoch, resume)
  }
  let settleTest: ((r: ReferenceTest) => void) | undefined
  let failTest: ((e: Error) => void) | undefined
  let failed: Error | undefined
  let done: ReferenceOutcome | undefined
  let stopped: ((s: { state?: ReferenceState; outcome?: ReferenceOutcome }) => void) | undefined
  let failStop: ((e: Error) => void) | undefined
  const fail = (e: Error) => {
    failed = e
    failTest?.(e)
    failStop?.(e)
  }
  const result = new Promise<ReferenceOutcome>((resolve, reject) => {
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'epoch') onEpoch?.(m.record!)
      else if (m.type === 'done') {
        done = m.outcome!
        resolve(done)
        stopped?.({ outcome: done })
      } else if (m.type === 'interrupted') stopped?.({ state: m.state! })
      else if (m.type === 'test') settleTest?.(m.test!)
      else if (m.type === 'error') {
        const e = new Error(`reference run failed: ${m.error}`)
        reject(e)
        fail(e)
      }
    })
    worker.on('error', (e) => {
      reject(e)
      fail(e)
    })
  })
  result.catch(() => {})
  return {
    result,
    onWorker: true,
    test: (test) =>
      new Promise<ReferenceTest>((resolve, reject) => {
        if (failed) return reject(failed)
        settleTest = (r) => {
          resolve(r)
          void worker.terminate()
        }
        failTest = reject
        worker.postMessage({ type: 'test', images: test.images, labels: test.labels })
      }),
    interrupt: async () => {
      const r = await new Promise<{ state?: ReferenceState; outcome?: ReferenceOutcome }>((resolve, reject) => {
        if (failed) return reject(failed)
        if (done) return resolve({ outcome: done })
        stopped = resolve
        failStop = reject
        Atomics.store(stop, 0, 1)
      })
      await worker.terminate()
      return r
    },
    terminate: async () => {
      await worker.terminate()
    },
  }
}

/** The same, on this thread (blocks the event loop while it runs). */
export function runReferenceHere(job: ReferenceJob, onEpoch?: (r: EpochRecord) => void, resume?: ReferenceState): ReferenceRun {
  let model: ReferenceMLP | undefined
  const result = runReference(job, onEpoch, { resume }).then((r) => {
    model = r.model
    return r.outcome!
  })
  return {
    result,
    onWorker: false,
    test: async (test) => {
      await result
      return testOf(model!, test)
    },
    interrupt: async () => ({ outcome: await result }),
    terminate: async () => {},
  }
}

/** A finished reference run (from an experiment's checkpoint): its outcome, and its model for the test split. */
export function finishedReference(job: ReferenceJob, outcome: ReferenceOutcome): ReferenceRun {
  const model = referenceModel(job.layers, outcome.weights64, job.config)
  return {
    result: Promise.resolve(outcome),
    onWorker: outcome.onWorker ?? false,
    test: async (test) => testOf(model, test),
    interrupt: async () => ({ outcome }),
    terminate: async () => {},
  }
}

function testOf(model: ReferenceMLP, test: Part): ReferenceTest {
  const ev = model.evaluate(test.images, test.labels, test.labels.length)
  return { loss: ev.loss, accuracy: ev.accuracy, confusion: [...ev.confusion] }
}

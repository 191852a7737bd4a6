// M2: a model configuration trained by the independent pure-TypeScript reference (reference.ts)
// instead of the engine — same split, same initial weights, same mini-batches in the same order
// (trial.ts's epochOrder), same learning rate per epoch, same early stopping and restore-best.
//
// The reference computes in float64 with plain loops and is slow (≈ 0.15–0.4 s per batch of 32 on
// [784,512,10]: tens of seconds per epoch of 4,800 images), so it runs the longest prefix of the
// configuration's epochs that fits a wall-clock budget: an epoch is started only when the time
// used so far plus the last epoch's duration fits, and one that overruns the budget by half is
// abandoned (its partial steps are not reported). The first epoch always runs. It runs on a worker
// thread (runReferenceInWorker) so that native training can use the other core meanwhile; the
// test split is sent only at the end, after model selection, and evaluated once.
import { Worker } from 'node:worker_threads'
import { join } from 'node:path'
import { ReferenceMLP, type ReferenceInit } from './reference'
import { EarlyStopping } from './early-stopping'
import { batchAt, epochLr, epochOrder, type ModelConfig } from './trial'
import type { Part } from './inputs'
import type { EpochRecord } from './train'

export interface ReferenceJob {
  config: ModelConfig
  layers: number[]
  /** [W1, b1, W2, b2, …] as MLP.getWeights() returns them. */
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
  /** Weights the run ends with (after restore-best when configured), float32. */
  weights: Float32Array[]
  validation: { loss: number; accuracy: number; confusion: number[] }
}

export interface ReferenceTest {
  loss: number
  accuracy: number
  confusion: number[]
}

const toInit = (w: ArrayLike<number>[]): ReferenceInit[] => {
  const out: ReferenceInit[] = []
  for (let l = 0; l < w.length; l += 2) out.push({ weights: w[l], bias: w[l + 1] })
  return out
}

/** The reference run itself, synchronous. Keeps the final model for the later test evaluation. */
export function runReference(job: ReferenceJob, onEpoch?: (r: EpochRecord) => void): { outcome: ReferenceOutcome; model: ReferenceMLP } {
  const c = job.config
  const started = performance.now()
  const elapsed = () => (performance.now() - started) / 1000
  let model = new ReferenceMLP(job.layers, toInit(job.init))
  const stopper = new EarlyStopping({ patience: c.earlyStopping ? c.patience : Number.MAX_SAFE_INTEGER, minDelta: c.minDelta, restoreBest: c.restoreBest })
  const history: EpochRecord[] = []
  let best: Float64Array[] | undefined
  let stoppedBy: ReferenceStop | undefined
  const n = job.train.labels.length
  const optimizer = c.optimizer === 'adam' ? 'adam' : 'sgd' // 'gd' = SGD on the full batch
  const batchSize = c.optimizer === 'gd' ? n : Math.min(c.batchSize, n)
  let lastEpochSeconds = 0
  for (let t = 0; t < c.epochs; t++) {
    if (t > 0 && elapsed() + lastEpochSeconds > job.budgetSeconds) {
      stoppedBy = 'budget'
      break
    }
    const epochStart = performance.now()
    const lr = epochLr(c, t)
    const order = batchSize >= n ? Uint32Array.from({ length: n }, (_, i) => i) : epochOrder(c.seed, t, n)
    const steps = Math.ceil(n / batchSize)
    let loss = 0
    let correct = 0
    let abandoned = false
    // a copy of the model to fall back to if this epoch has to be abandoned half-way
    const before = t > 0 ? model.getWeights64() : undefined
    for (let b = 0; b < steps; b++) {
      const batch = batchAt(job.train, job.features, order, batchSize, b)
      const r = model.step(batch.images, batch.labels, batch.n, { optimizer, lr, l2: c.l2, beta1: c.beta1, beta2: c.beta2, eps: c.eps })
      loss += r.loss * batch.n
      correct += Math.round(r.accuracy * batch.n)
      if (t > 0 && elapsed() > job.budgetSeconds * 1.5) {
        abandoned = true
        break
      }
    }
    if (abandoned) {
      // Adam's moments have moved too, so the clean state is the weights of the last full epoch:
      // rebuild from them (moments are only needed to continue, and the run stops here).
      model = new ReferenceMLP(job.layers, before!.map((p) => ({ weights: p.weights, bias: p.bias })))
      stoppedBy = 'budget'
      break
    }
    if (!Number.isFinite(loss)) {
      stoppedBy = 'diverged'
      break
    }
    const val = model.evaluate(job.validation.images, job.validation.labels, job.validation.labels.length)
    const record: EpochRecord = {
      epoch: t + 1, lr, trainLoss: loss / n, trainAccuracy: correct / n,
      valLoss: val.loss, valAccuracy: val.accuracy, seconds: (performance.now() - epochStart) / 1000,
    }
    lastEpochSeconds = record.seconds
    history.push(record)
    onEpoch?.(record)
    const { improved, stop } = stopper.update(t, val.loss)
    if (improved) best = model.getWeights64().flatMap((p) => [p.weights, p.bias])
    if (!Number.isFinite(val.loss)) {
      stoppedBy = 'diverged'
      break
    }
    if (stop) {
      stoppedBy = 'early-stopping'
      break
    }
  }
  stoppedBy ??= 'completed'
  let weightsEpoch = history.length
  if (best && (c.restoreBest || stoppedBy === 'diverged')) {
    model = new ReferenceMLP(job.layers, toInit(best))
    weightsEpoch = stopper.bestEpoch + 1
  }
  const val = model.evaluate(job.validation.images, job.validation.labels, job.validation.labels.length)
  const weights = model.getWeights().flatMap((p) => [p.weights, p.bias])
  return {
    model,
    outcome: {
      history, stoppedBy, bestEpoch: stopper.bestEpoch + 1, weightsEpoch, seconds: elapsed(), weights,
      validation: { loss: val.loss, accuracy: val.accuracy, confusion: [...val.confusion] },
    },
  }
}

/** A reference run under way: its result, and the test evaluation to ask for once selection is done. */
export interface ReferenceRun {
  result: Promise<ReferenceOutcome>
  /** Evaluates the final model on the test split (call once, after `result`), then ends the worker. */
  test(test: Part): Promise<ReferenceTest>
  /** Whether it runs on a worker thread (false: in this thread, because the worker could not start). */
  readonly onWorker: boolean
  terminate(): Promise<void>
}

/**
 * Starts the reference run on a worker thread. Under the TypeScript sources (tsx, as the tests
 * run) the worker registers tsx itself, since Node does not hand a loader to worker entry files.
 */
export function runReferenceInWorker(job: ReferenceJob, onEpoch?: (r: EpochRecord) => void): ReferenceRun {
  const ts = __filename.endsWith('.ts')
  const entry = join(__dirname, `reference-worker${ts ? '.ts' : '.js'}`)
  const code = `${ts ? "require('tsx/cjs/api').register();" : ''} require(${JSON.stringify(entry)})`
  let worker: Worker
  try {
    worker = new Worker(code, { eval: true, workerData: job })
  } catch {
    return runReferenceHere(job, onEpoch)
  }
  let settleTest: ((r: ReferenceTest) => void) | undefined
  let failTest: ((e: Error) => void) | undefined
  let failed: Error | undefined
  const result = new Promise<ReferenceOutcome>((resolve, reject) => {
    worker.on('message', (m: { type: string; record?: EpochRecord; outcome?: ReferenceOutcome; test?: ReferenceTest; error?: string }) => {
      if (m.type === 'epoch') onEpoch?.(m.record!)
      else if (m.type === 'done') resolve(m.outcome!)
      else if (m.type === 'test') settleTest?.(m.test!)
      else if (m.type === 'error') {
        failed = new Error(`reference run failed: ${m.error}`)
        reject(failed)
        failTest?.(failed)
      }
    })
    worker.on('error', (e) => {
      failed = e
      reject(e)
      failTest?.(e)
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
    terminate: async () => {
      await worker.terminate()
    },
  }
}

/** The same, on this thread (blocks the event loop while it runs). */
export function runReferenceHere(job: ReferenceJob, onEpoch?: (r: EpochRecord) => void): ReferenceRun {
  let model: ReferenceMLP | undefined
  const result = Promise.resolve().then(() => {
    const r = runReference(job, onEpoch)
    model = r.model
    return r.outcome
  })
  return {
    result,
    onWorker: false,
    test: async (test) => {
      await result
      const ev = model!.evaluate(test.images, test.labels, test.labels.length)
      return { loss: ev.loss, accuracy: ev.accuracy, confusion: [...ev.confusion] }
    },
    terminate: async () => {},
  }
}

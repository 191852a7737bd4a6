// M2: M1's configuration trained by the pure-TypeScript reference on a worker thread, beside the
// engine's models (experiment.ts runs M3 and M4 meanwhile), and the engine's runs it is compared
// with: epochs 1–10 re-synchronised from the engine's state on a second worker, the engine's own
// copy of the reference's epochs, and twins of it jittered by one float32 rounding. What they show
// is judged in agreement.ts, after the test split.
import { abortError, MLP } from '../engine/mlp'
import { Trial, type ModelConfig } from '../training/trial'
import { modelOptions, modelParams, setModelParams, type AfterStep, type TrialData } from '../training/sources'
import { stepsPerEpoch } from '../training/batches'
import { mulberry32 } from '../data/split'
import { finishedReference, runReferenceInWorker, runResyncInWorker, type EpochStart, type ReferenceJob, type ReferenceOutcome } from './reference-trial'
import type { ExperimentStore } from './checkpoint'
import { relPct } from '../output/format'
import { m1Of, type EngineCopy, type Study } from './study'

/** M2: M1's configuration trained by the reference, on a worker thread, from the same initial weights. */
export function startReference(x: Study): void {
  const { cfg, inputs, store, log } = x
  const m1 = m1Of(x)
  if (!x.wants('M2') || !m1) return
  // the initial weights: a fresh engine model with M1's seed, as M1 itself started
  // (with M1's architecture options: with batch norm its initial norm state comes along)
  const fresh = new MLP({ layers: m1.layers, seed: m1.config.seed, threads: 1, ...modelOptions(m1.config) })
  const init = modelParams(fresh)
  fresh.free()
  const job: ReferenceJob = { config: m1.config, layers: m1.layers, init, train: inputs.train, validation: inputs.validation, features: inputs.features, budgetSeconds: cfg.reference.budgetSeconds }
  x.clock.begin('M2')
  if (store.reference.outcome) {
    log(`M2: the reference run finished before the interruption (${store.reference.outcome.history.length} epochs)`)
    x.reference = finishedReference(job, store.reference.outcome)
  } else {
    const from = store.reference.state
    log(from
      ? `M2: the reference continues on a worker thread from epoch ${from.progress.epoch + 1}, batch ${(from.progress.partial?.nextBatch ?? 0) + 1} (${from.progress.seconds.toFixed(0)}s of its ${cfg.reference.budgetSeconds}s used)`
      : `M2: the reference trains M1's configuration from the same initial weights on a worker thread, for up to ${cfg.reference.budgetSeconds}s`)
    x.reference = runReferenceInWorker(
      job,
      (r) => log(`M2 (reference) epoch ${r.epoch}/${m1.config.epochs}  loss ${r.trainLoss.toFixed(4)}  val_loss ${r.valLoss.toFixed(4)}  val_acc ${r.valAccuracy.toFixed(4)}  ${r.seconds.toFixed(1)}s`),
      from,
    )
  }
  const onWorker = x.reference.onWorker
  x.referenceOutcome = x.reference.result.then((o) => {
    x.clock.end('M2')
    store.reference = { outcome: { ...o, onWorker } }
    return o
  })
  x.referenceOutcome.catch(() => {}) // awaited (and its failure reported) by waitForReference
  // while the reference holds one core, this thread's models get the rest
  x.sideThreads = cfg.architecture.threads
}

/**
 * Epochs 1–10 again, each from the engine's state at its start, on a second worker (the core this
 * thread has used so far), while the reference finishes.
 */
export async function resyncReference(x: Study): Promise<void> {
  const { cfg, inputs, store, log } = x
  const m1 = m1Of(x)
  if (!x.reference || !m1) return
  const epochs = Math.min(10, m1.config.epochs)
  if (store.resync.length >= epochs) return
  const eng = await engineEpochStarts(m1, x.data, x.sideThreads, epochs, x.opts.signal)
  log(`M2: the reference also trains epochs ${store.resync.length + 1}–${epochs} each from the engine's state at the epoch's start, on a second worker`)
  x.resync = runResyncInWorker(
    // the budget counts the epochs done before an interruption too
    { config: m1.config, layers: m1.layers, train: inputs.train, features: inputs.features, ...eng, budgetSeconds: cfg.reference.budgetSeconds - store.resync.reduce((sum, r) => sum + r.seconds, 0), skip: store.resync.length },
    (r) => {
      store.resync.push(r)
      log(`M2 (re-synchronised) epoch ${r.epoch}: training loss engine ${r.engineLoss.toFixed(6)}, reference ${r.referenceLoss.toFixed(6)} (${relPct(r.relDiff)} apart), weights at most ${r.maxAbsWeightDiff.toExponential(1)} apart`)
    },
  )
}

/** The reference's outcome, and the re-synchronised epochs' end (or an AbortError as soon as the signal aborts). */
export async function waitForReference(x: Study): Promise<void> {
  const signal = x.opts.signal
  const wait = <T>(p: Promise<T>) => (signal ? untilAborted(p, signal) : p)
  if (x.referenceOutcome) x.refOut = await wait(x.referenceOutcome)
  if (x.resync) await wait(x.resync.result)
}

/**
 * The engine's copy of M2's prefix, for the agreement check, and the same from a start moved by one
 * float32 rounding: how far this configuration's own arithmetic noise carries.
 */
export async function agreementCopies(x: Study): Promise<void> {
  const { cfg, inputs, store, refOut } = x
  const m1 = m1Of(x)
  if (!refOut || !m1) return
  x.clock.begin('agreement-prefix')
  const init = new MLP({ layers: m1.layers, seed: m1.config.seed, threads: 1 })
  const w0 = init.getWeights()
  init.free()
  x.prefix = await engineCopy(store, 'agreement/prefix', m1.config, x.data, cfg.threads, w0, refOut, x.opts.signal)
  const steps = stepsPerEpoch(m1.config, inputs.train.labels.length)
  for (let k = 1; k <= SENSITIVITY_TWINS; k++) {
    // jitter call 1 moves the start, call 2 + (global step) follows each step
    const jitter = jitterer(w0, k)
    x.twins.push(await engineCopy(store, `agreement/twin${k}`, m1.config, x.data, cfg.threads, jitter.apply(w0, 1), refOut, x.opts.signal, (m, epoch, batch) => m.setWeights(jitter.apply(m.getWeights(), 2 + epoch * steps + batch))))
  }
  x.clock.end('agreement-prefix')
  await x.phaseDone('agreement')
}

async function engineCopy(
  store: ExperimentStore, key: string, c: ModelConfig, data: TrialData, threads: number, init: Float32Array[], ref: ReferenceOutcome, signal?: AbortSignal,
  afterStep?: AfterStep,
): Promise<EngineCopy> {
  // Early stopping only decides when to stop; here the reference decided it, so run exactly its epochs.
  const trial = store.trial(key, { ...c, earlyStopping: false, restoreBest: false }, data, { threads, initialWeights: init, afterStep, keepEpoch: ref.weightsEpoch })
  await trial.advance(ref.history.length, signal)
  trial.finish()
  if (ref.weightsEpoch > 0) setModelParams(trial.model, trial.kept!)
  return { trial, atEpoch: ref.weightsEpoch }
}

/**
 * The engine's state at the start of each of the first `epochs` epochs of `m1`'s configuration
 * (from its seed's initial weights, the same batches), the weights at each epoch's end and the
 * epoch's training loss: what the re-synchronised reference epochs start from and are compared
 * with. Cheap next to the reference, so it is recomputed rather than checkpointed.
 */
async function engineEpochStarts(m1: Trial, data: TrialData, threads: number, epochs: number, signal?: AbortSignal): Promise<{ starts: EpochStart[]; ends: Float32Array[][]; engineLoss: number[] }> {
  const starts: EpochStart[] = []
  const ends: Float32Array[][] = []
  const engineLoss: number[] = []
  const stateOf = (t: Trial, epoch: number): EpochStart => {
    const { step, m, v } = t.model.getTrainingState()
    return { epoch, weights: modelParams(t.model), step, m, v }
  }
  // M1's configuration (its schedule over all its epochs) from its seed, run for `epochs` whatever
  // early stopping would say; each epoch's end is the next one's start
  const copy = new Trial({ ...m1.config, earlyStopping: false }, data, {
    threads,
    onEpoch: (r, run) => {
      const t = run as Trial
      engineLoss.push(r.trainLoss)
      ends.push(modelParams(t.model))
      if (r.epoch < epochs) starts.push(stateOf(t, r.epoch))
    },
  })
  try {
    starts.push(stateOf(copy, 0))
    await copy.advance(epochs, signal)
    // a diverging epoch has nothing to compare
    if (starts.length > ends.length) starts.length = ends.length
    return { starts, ends, engineLoss }
  } finally {
    copy.release()
  }
}

/** `p`, or an AbortError as soon as `signal` aborts (p keeps running; its result is then someone else's). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(abortError(signal.reason))
    if (signal.aborted) return abort()
    signal.addEventListener('abort', abort, { once: true })
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort))
  })
}

/** Engine twins with jittered weights measure how far this configuration carries rounding noise. */
export const SENSITIVITY_TWINS = 2

/**
 * Multiplies every parameter by 1 ± 2^-24 — a change of about one float32 rounding (0 to 1 unit in
 * the last place) — with signs from a fixed pseudo-random pattern (twin k), shifted by the call number.
 * Applied to the start and after every step, it mimics what separates the engine from the
 * reference: the engine rounds its weights to float32 at every step, the reference keeps float64.
 */
export function jitterer(shape: Float32Array[], k: number): { apply(ws: Float32Array[], call: number): Float32Array[] } {
  const rand = mulberry32((0x51ed27 * k) >>> 0)
  const signs = shape.map((w) => Float32Array.from({ length: w.length }, () => (rand() < 0.5 ? -(2 ** -24) : 2 ** -24)))
  return {
    // a pure function of the call number, so that a resumed twin continues the same pattern
    apply(ws, call) {
      return ws.map((w, l) => {
        const s = signs[l]
        const n = w.length
        const off = (call * 7919) % Math.max(1, n)
        const out = new Float32Array(n)
        for (let i = 0; i < n; i++) {
          const j = i + off < n ? i + off : i + off - n
          out[i] = w[i] * (1 + s[j])
        }
        return out
      })
    },
  }
}

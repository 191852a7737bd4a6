// The agreement check's verdict: the engine's copy of M2's epochs against the reference, measured
// against how far the engine drifts from its own rounding-jittered twins (m2.ts makes all three),
// and the M2 row's notes that say it in words.
import type { Trial } from '../training/trial'
import { modelParams } from '../training/sources'
import type { SplitMetrics } from '../training/records'
import type { ReferenceOutcome, ResyncRecord } from './reference-trial'
import { relPct } from '../output/format'
import type { Agreement } from './records'
import type { EngineCopy } from './study'

/** The reference may be this many times further from the engine than the farthest twin (training loss)… */
export const SENSITIVITY_FACTOR = 10
/** …and this many times for test accuracy (or 0.5 points, or one test sample, whichever is larger). */
export const SENSITIVITY_FACTOR_ACCURACY = 3

/** The agreement of engine and reference (records.ts Agreement): the criteria, the yardstick of the twins, the re-synchronised epochs, the verdict. */
export function agreementOf(ref: ReferenceOutcome, refTest: { loss: number; accuracy: number }, prefix: EngineCopy, prefixTest: SplitMetrics, twins: EngineCopy[], twinTests: SplitMetrics[], resync: ResyncRecord[], m1: Trial, budget: number, onWorker: boolean): Agreement {
  const p = prefix.trial.history
  const n = Math.min(ref.history.length, p.length)
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b)
  const trainLossRelDiff = Array.from({ length: n }, (_, i) => rel(p[i].trainLoss, ref.history[i].trainLoss))
  const valLossRelDiff = Array.from({ length: n }, (_, i) => rel(p[i].valLoss, ref.history[i].valLoss))
  // per epoch, the farthest any twin is from the engine
  const sensTrain = Array.from({ length: n }, (_, i) => Math.max(0, ...twins.map((tw) => (tw.trial.history[i] ? rel(tw.trial.history[i].trainLoss, p[i].trainLoss) : 0))))
  const first = (xs: number[]) => (xs.length ? Math.max(...xs.slice(0, 10)) : NaN)
  const maxFirst10 = first(trainLossRelDiff)
  const refW = ref.weights
  // with batch norm both lists end with the norm state (sources.ts modelParams)
  const natW = modelParams(prefix.trial.model)
  let maxAbs = 0
  for (let l = 0; l < refW.length; l++) for (let i = 0; i < refW[l].length; i++) maxAbs = Math.max(maxAbs, Math.abs(refW[l][i] - natW[l][i]))
  const common = Math.min(p.length, m1.history.length)
  let same = true
  for (let i = 0; i < common; i++) if (p[i].trainLoss !== m1.history[i].trainLoss || p[i].valLoss !== m1.history[i].valLoss) same = false
  const accDiff = Math.abs(prefixTest.accuracy - refTest.accuracy) * 100
  const twinAcc = twinTests.map((m) => Math.abs(prefixTest.accuracy - m.accuracy) * 100)
  const sensAcc = Math.max(0, ...twinAcc)
  const pass = { trainLoss: maxFirst10 <= 0.01, testAccuracy: accDiff <= 0.5 }
  // Explained by rounding: over epochs 1–10 the reference's largest drift is within
  // SENSITIVITY_FACTOR× the twins' largest (plus 1e-6 for runs where everything agrees to ~1e-9),
  // and the accuracy gap within SENSITIVITY_FACTOR_ACCURACY× the largest twin's (or 0.5 points, or
  // one sample). The maxima, not epoch by epoch: in a chaotic configuration the epoch at which a
  // rounding difference blows up varies from one pair of trajectories to the next (measured on
  // KMNIST seed 1: the twins' drift jumped at epoch 6 with one GEMM kernel and at epoch 3 with
  // another, the reference's at epoch 4), while its size does not. Implementation errors are what
  // the re-synchronised epochs (resyncPass) catch, each epoch on its own.
  const window = Math.min(10, n)
  const lossExplained = Math.max(0, ...trainLossRelDiff.slice(0, window)) <= SENSITIVITY_FACTOR * Math.max(0, ...sensTrain.slice(0, window)) + 1e-6
  const oneSample = 100 / prefixTest.samples
  const accExplained = accDiff <= Math.max(0.5, SENSITIVITY_FACTOR_ACCURACY * sensAcc, oneSample)
  const rs = [...resync].sort((a, b) => a.epoch - b.epoch)
  const resyncMax = rs.length ? Math.max(...rs.map((r) => r.relDiff)) : NaN
  const resyncPass = rs.length > 0 && resyncMax <= 0.01
  const verdict: Agreement['verdict'] = pass.trainLoss && pass.testAccuracy ? 'agree' : resyncPass && lossExplained && accExplained ? 'float32-sensitivity' : 'disagree'
  return {
    method: 'both step through the same mini-batches: each epoch\'s order is generated in TypeScript from the seed (trial.ts epochOrder), and each batch is handed to the engine as its own Dataset with batchSize = its length and to the reference\'s step() as arrays (full-batch GD needs no order). Test accuracy is compared at the epoch whose weights M2 ends with',
    epochsConfigured: m1.config.epochs,
    epochsCompared: n,
    stoppedBy: ref.stoppedBy,
    budgetSeconds: budget,
    referenceSeconds: ref.seconds,
    referenceOnWorker: onWorker,
    trainLossRelDiff,
    valLossRelDiff,
    maxTrainLossRelDiffFirst10: maxFirst10,
    atEpoch: prefix.atEpoch,
    engine: { trainLoss: p.map((h) => h.trainLoss), bestEpoch: m1.bestEpoch, testAccuracy: prefixTest.accuracy, testLoss: prefixTest.loss },
    reference: { trainLoss: ref.history.map((h) => h.trainLoss), bestEpoch: ref.bestEpoch, testAccuracy: refTest.accuracy, testLoss: refTest.loss },
    testAccuracyDiffPoints: accDiff,
    maxAbsWeightDiff: maxAbs,
    prefixMatchesM1: same,
    criteria: { trainLossRelFirst10: 0.01, testAccuracyPoints: 0.5 },
    pass,
    sensitivity: {
      perturbation: `${twins.length} engine twins whose weights are multiplied by 1 ± 2^-24 (about one float32 rounding, signs pseudo-random) at the start and after every step; same batches`,
      twins: twins.length,
      trainLossRelDiff: sensTrain,
      maxTrainLossRelDiffFirst10: first(sensTrain),
      testAccuracy: twinTests.map((m) => m.accuracy),
      testAccuracyDiffPoints: sensAcc,
      factor: SENSITIVITY_FACTOR,
      factorAccuracy: SENSITIVITY_FACTOR_ACCURACY,
    },
    resync: {
      method: 'the reference trains each epoch from the engine\'s weights, Adam step count and moments at the start of that epoch, on the same mini-batches; training loss compared with the engine\'s for the same epoch, weights at its end',
      epochs: rs.map((r) => r.epoch),
      engineLoss: rs.map((r) => r.engineLoss),
      referenceLoss: rs.map((r) => r.referenceLoss),
      trainLossRelDiff: rs.map((r) => r.relDiff),
      maxTrainLossRelDiff: resyncMax,
      maxAbsWeightDiff: rs.map((r) => r.maxAbsWeightDiff),
      pass: resyncPass,
    },
    verdict,
  }
}

/** The M2 row's notes: how far the reference ran, and how it agrees with the engine. */
export function referenceNote(agreement: Agreement, refOut: ReferenceOutcome, m1: Trial, budgetSeconds: number): string {
  const e10 = Math.min(10, agreement.epochsCompared)
  const rs = agreement.resync
  const resyncNote = rs.epochs.length ? `; each of epochs 1–${rs.epochs.length} re-run by the reference from the engine's state at its start: training loss within ${relPct(rs.maxTrainLossRelDiff)}` : ''
  const verdict = agreement.verdict === 'agree' ? resyncNote : agreement.verdict === 'float32-sensitivity'
    ? `${resyncNote} — the free-running losses drift apart by more than 1%, no further than the engine drifts from itself with its weights jittered by one float32 rounding per step (${relPct(agreement.sensitivity.maxTrainLossRelDiffFirst10)}, Δ ${agreement.sensitivity.testAccuracyDiffPoints.toFixed(2)} points): this configuration amplifies rounding`
    : `${resyncNote} — DISAGREES`
  return `pure-TypeScript reference, M1's settings and initial weights: ${refOut.history.length} of ${m1.config.epochs} epochs (${{ budget: `ended by the time budget of ${budgetSeconds}s`, 'early-stopping': 'ended by early stopping', completed: 'all epochs', diverged: 'diverged' }[refOut.stoppedBy]}); vs the engine on the same batches: training loss within ${relPct(agreement.maxTrainLossRelDiffFirst10)} over epochs 1–${e10}, test accuracy Δ ${agreement.testAccuracyDiffPoints.toFixed(2)} points at epoch ${refOut.weightsEpoch}${refOut.weightsEpoch !== m1.weightsEpoch ? ` (M2 ends with epoch ${refOut.weightsEpoch}'s weights, M1 with epoch ${m1.weightsEpoch}'s: their validation minima fall on different epochs)` : ''}${verdict}`
}

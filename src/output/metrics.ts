// Classification metrics from a K×K confusion matrix C, stored row-major:
// C[i·K + j] = number of samples whose true class is i and predicted class is j.
//
// Conventions (documented because libraries differ):
// - Any ratio 0/0 is defined as 0: precision of a class never predicted, recall of a class with
//   no support, F1 when precision + recall = 0, accuracy of an empty matrix.
// - macroF1 averages F1 over the classes that occur in the truth or in the predictions. A class
//   absent from both carries no evidence either way, so counting it as F1 = 0 would only punish
//   a small evaluation set (same label set as scikit-learn infers when no labels are given).
//   A class predicted but never true does count, with F1 = 0: those are pure false positives.
// - balancedAccuracy averages recall over the classes with support > 0; recall of an absent
//   class is undefined, not a miss. Empty matrix → 0.

export type Confusion = Uint32Array | ArrayLike<number>

export interface ClassMetrics {
  precision: number
  recall: number
  f1: number
  /** Number of samples whose true class is this one (row sum). */
  support: number
}

export interface Summary {
  accuracy: number
  /** Mean cross-entropy when given to summarize(), else null. */
  loss: number | null
  balancedAccuracy: number
  macroF1: number
  perClass: ClassMetrics[]
}

/** Smallest probability fed to log(): −log(1e-12) ≈ 27.6 caps one confident mistake. */
export const PROB_FLOOR = 1e-12

function checkK(K: number): void {
  if (!Number.isInteger(K) || K < 1) throw new RangeError(`K must be an integer >= 1, got ${K}`)
}

function checkConfusion(confusion: Confusion, K: number): void {
  checkK(K)
  if (confusion.length !== K * K) {
    throw new RangeError(`confusion must have K*K = ${K * K} entries, got ${confusion.length}`)
  }
  for (let i = 0; i < confusion.length; i++) {
    const c = confusion[i]
    if (!Number.isInteger(c) || c < 0) {
      throw new RangeError(`confusion[${i}] must be a non-negative integer count, got ${c}`)
    }
  }
}

function ratio(num: number, den: number): number {
  return den === 0 ? 0 : num / den
}

/** Fraction of samples on the diagonal. */
export function accuracy(confusion: Confusion, K: number): number {
  checkConfusion(confusion, K)
  let correct = 0
  let total = 0
  for (let i = 0; i < K; i++) {
    for (let j = 0; j < K; j++) total += confusion[i * K + j]
    correct += confusion[i * K + i]
  }
  return ratio(correct, total)
}

/** Precision, recall, F1 and support for each class, index = class. */
export function perClass(confusion: Confusion, K: number): ClassMetrics[] {
  checkConfusion(confusion, K)
  const out: ClassMetrics[] = []
  for (let k = 0; k < K; k++) {
    let support = 0 // row sum: tp + fn
    let predicted = 0 // column sum: tp + fp
    for (let j = 0; j < K; j++) {
      support += confusion[k * K + j]
      predicted += confusion[j * K + k]
    }
    const tp = confusion[k * K + k]
    // 2tp / (2tp + fp + fn) is the harmonic mean of P and R without the extra 0/0 case.
    out.push({
      precision: ratio(tp, predicted),
      recall: ratio(tp, support),
      f1: ratio(2 * tp, support + predicted),
      support,
    })
  }
  return out
}

/** Mean F1 over classes present in the truth or the predictions (see header). */
export function macroF1(confusion: Confusion, K: number): number {
  const classes = perClass(confusion, K)
  let sum = 0
  let n = 0
  for (let k = 0; k < K; k++) {
    let predicted = 0
    for (let i = 0; i < K; i++) predicted += confusion[i * K + k]
    if (classes[k].support > 0 || predicted > 0) {
      sum += classes[k].f1
      n++
    }
  }
  return ratio(sum, n)
}

/** Mean recall over classes with support > 0 (see header). */
export function balancedAccuracy(confusion: Confusion, K: number): number {
  let sum = 0
  let n = 0
  for (const c of perClass(confusion, K)) {
    if (c.support > 0) {
      sum += c.recall
      n++
    }
  }
  return ratio(sum, n)
}

function checkClassIds(name: string, ids: ArrayLike<number>, K: number): void {
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i]
    if (!Number.isInteger(v) || v < 0 || v >= K) {
      throw new RangeError(`${name}[${i}] must be an integer class in [0, ${K}), got ${v}`)
    }
  }
}

/** Count (label, prediction) pairs into a K×K confusion matrix. */
export function confusionFromPredictions(
  labels: ArrayLike<number>,
  preds: ArrayLike<number>,
  K: number,
): Uint32Array {
  checkK(K)
  if (labels.length !== preds.length) {
    throw new RangeError(`labels and preds must have equal length, got ${labels.length} and ${preds.length}`)
  }
  checkClassIds('labels', labels, K)
  checkClassIds('preds', preds, K)
  const confusion = new Uint32Array(K * K)
  for (let i = 0; i < labels.length; i++) confusion[labels[i] * K + preds[i]]++
  return confusion
}

function rowCount(name: string, values: ArrayLike<number>, K: number): number {
  checkK(K)
  if (values.length % K !== 0) {
    throw new RangeError(`${name} length ${values.length} is not a multiple of K = ${K}`)
  }
  return values.length / K
}

/**
 * Index of the largest entry in each row of an N×K row-major matrix. Ties go to the lowest
 * index; NaN never wins (an all-NaN row yields 0), so one bad logit cannot pick the class.
 */
export function argmaxRows(probs: Float32Array | ArrayLike<number>, K: number): Int32Array {
  const n = rowCount('probs', probs, K)
  const out = new Int32Array(n)
  for (let r = 0; r < n; r++) {
    let best = 0
    let bestValue = -Infinity
    for (let k = 0; k < K; k++) {
      const v = probs[r * K + k]
      if (v > bestValue) {
        bestValue = v
        best = k
      }
    }
    out[r] = best
  }
  return out
}

/**
 * Mean −log p(true class) over N rows of probabilities. Each p is clamped to ≥ PROB_FLOOR so a
 * single zero gives a large finite loss rather than Infinity; NaN is deliberately not clamped
 * (Math.max propagates it), so a diverged model reports NaN instead of a plausible number.
 */
export function crossEntropy(
  probs: Float32Array | ArrayLike<number>,
  labels: ArrayLike<number>,
  K: number,
): number {
  const n = rowCount('probs', probs, K)
  if (labels.length !== n) {
    throw new RangeError(`labels must have one entry per row (${n}), got ${labels.length}`)
  }
  if (n === 0) throw new RangeError('crossEntropy needs at least one row')
  checkClassIds('labels', labels, K)
  let sum = 0
  for (let r = 0; r < n; r++) sum -= Math.log(Math.max(probs[r * K + labels[r]], PROB_FLOOR))
  return sum / n
}

/** All confusion-matrix metrics at once, plus the loss if the caller computed one. */
export function summarize(confusion: Confusion, K: number, loss?: number): Summary {
  return {
    accuracy: accuracy(confusion, K),
    loss: loss ?? null,
    balancedAccuracy: balancedAccuracy(confusion, K),
    macroF1: macroF1(confusion, K),
    perClass: perClass(confusion, K),
  }
}

import test, { type ExecutionContext } from 'ava'
import fc from 'fast-check'

import {
  accuracy,
  argmaxRows,
  balancedAccuracy,
  confusionFromPredictions,
  crossEntropy,
  macroF1,
  perClass,
  PROB_FLOOR,
  summarize,
  type ClassMetrics,
} from '../src/output/metrics'

const EPS = 1e-12

function near(t: ExecutionContext, got: number, want: number, what: string): void {
  t.true(Math.abs(got - want) <= EPS, `${what}: got ${got}, want ${want}`)
}

function nearClasses(t: ExecutionContext, got: ClassMetrics[], want: ClassMetrics[]): void {
  t.is(got.length, want.length)
  want.forEach((w, k) => {
    near(t, got[k].precision, w.precision, `class ${k} precision`)
    near(t, got[k].recall, w.recall, `class ${k} recall`)
    near(t, got[k].f1, w.f1, `class ${k} f1`)
    t.is(got[k].support, w.support, `class ${k} support`)
  })
}

// Case A, every class present.      predicted →   0  1  2   | row sum (support)
//                                          true 0   5  2  1   |  8
//                                          true 1   1  3  0   |  4
//                                          true 2   2  1  6   |  9
//                                      column sum   8  6  7   | 21
const A = Uint32Array.from([5, 2, 1, 1, 3, 0, 2, 1, 6])

test('case A: accuracy = trace / total = (5+3+6)/21 = 2/3', (t) => {
  near(t, accuracy(A, 3), 14 / 21, 'accuracy')
})

test('case A: per-class precision, recall, F1, support', (t) => {
  // class 0: P = 5/8, R = 5/8, F1 = 2·5/(8+8) = 5/8
  // class 1: P = 3/6, R = 3/4, F1 = 2·3/(6+4) = 3/5   (check: 2·(1/2·3/4)/(1/2+3/4) = 0.75/1.25)
  // class 2: P = 6/7, R = 6/9, F1 = 2·6/(7+9) = 3/4   (check: 2·(4/7)/(32/21) = 168/224)
  nearClasses(t, perClass(A, 3), [
    { precision: 5 / 8, recall: 5 / 8, f1: 5 / 8, support: 8 },
    { precision: 1 / 2, recall: 3 / 4, f1: 3 / 5, support: 4 },
    { precision: 6 / 7, recall: 2 / 3, f1: 3 / 4, support: 9 },
  ])
})

test('case A: macro-F1 and balanced accuracy', (t) => {
  // macro-F1 = (5/8 + 3/5 + 3/4)/3 = (0.625 + 0.6 + 0.75)/3 = 1.975/3
  near(t, macroF1(A, 3), 1.975 / 3, 'macroF1')
  // balanced = (5/8 + 3/4 + 2/3)/3 = (15 + 18 + 16)/24/3 = 49/72
  near(t, balancedAccuracy(A, 3), 49 / 72, 'balancedAccuracy')
})

// Case B: class 1 is never predicted (column 1 is zero), class 2 never occurs (row 2 is zero)
// but is predicted 3 times.         predicted →   0  1  2   | support
//                                          true 0   4  0  2   |  6
//                                          true 1   3  0  1   |  4
//                                          true 2   0  0  0   |  0
//                                      column sum   7  0  3   | 10
const B = [4, 0, 2, 3, 0, 1, 0, 0, 0]

test('case B: a class with no predictions and a class with no support', (t) => {
  // accuracy = (4+0+0)/10
  near(t, accuracy(B, 3), 0.4, 'accuracy')
  // class 0: P = 4/7, R = 4/6, F1 = 2·4/(7+6) = 8/13
  // class 1: P = 0/0 → 0, R = 0/4 = 0, F1 = 0/(0+4) = 0
  // class 2: P = 0/3 = 0, R = 0/0 → 0, F1 = 0/(3+0) = 0
  nearClasses(t, perClass(B, 3), [
    { precision: 4 / 7, recall: 2 / 3, f1: 8 / 13, support: 6 },
    { precision: 0, recall: 0, f1: 0, support: 4 },
    { precision: 0, recall: 0, f1: 0, support: 0 },
  ])
  // macro-F1 over classes seen in truth or predictions = all three: (8/13 + 0 + 0)/3 = 8/39
  near(t, macroF1(B, 3), 8 / 39, 'macroF1')
  // balanced accuracy over classes with support (0 and 1): (2/3 + 0)/2 = 1/3
  near(t, balancedAccuracy(B, 3), 1 / 3, 'balancedAccuracy')
})

test('case C: a class absent from truth and predictions is left out of both averages', (t) => {
  //   predicted → 0 1 2
  //      true 0   2 1 0
  //      true 1   1 2 0
  //      true 2   0 0 0
  // F1 of classes 0 and 1: 2·2/(3+3) = 2/3 each. Class 2 carries no evidence:
  // macro-F1 = (2/3 + 2/3)/2 = 2/3 (not 4/9); balanced = (2/3 + 2/3)/2 = 2/3.
  const C = [2, 1, 0, 1, 2, 0, 0, 0, 0]
  near(t, macroF1(C, 3), 2 / 3, 'macroF1')
  near(t, balancedAccuracy(C, 3), 2 / 3, 'balancedAccuracy')
  t.deepEqual(perClass(C, 3)[2], { precision: 0, recall: 0, f1: 0, support: 0 })
})

test('empty matrix: every metric is 0, none is NaN', (t) => {
  const s = summarize(new Uint32Array(9), 3)
  t.deepEqual(s, {
    accuracy: 0,
    loss: null,
    balancedAccuracy: 0,
    macroF1: 0,
    perClass: [0, 1, 2].map(() => ({ precision: 0, recall: 0, f1: 0, support: 0 })),
  })
})

test('confusionFromPredictions counts (label, pred) pairs', (t) => {
  // pairs: (0,0) (0,1) (1,1) (2,2) (2,0) (2,2) (1,1)
  const labels = [0, 0, 1, 2, 2, 2, 1]
  const preds = Int32Array.from([0, 1, 1, 2, 0, 2, 1])
  t.deepEqual(
    confusionFromPredictions(labels, preds, 3),
    //            p0 p1 p2
    Uint32Array.from([1, 1, 0, /* t0 */ 0, 2, 0, /* t1 */ 1, 0, 2 /* t2 */]),
  )
  t.deepEqual(confusionFromPredictions([], [], 2), new Uint32Array(4))
})

test('argmaxRows: ties go to the lowest index, NaN never wins', (t) => {
  const probs = Float32Array.from([
    0.1, 0.7, 0.2, // → 1
    0.4, 0.2, 0.4, // tie → 0
    Number.NaN, 0.3, 0.6, // NaN skipped → 2
    Number.NaN, Number.NaN, Number.NaN, // all NaN → 0
    -5, -1, -3, // logits work too → 1
  ])
  t.deepEqual(argmaxRows(probs, 3), Int32Array.from([1, 0, 2, 0, 1]))
  t.deepEqual(argmaxRows(new Float32Array(0), 3), new Int32Array(0))
})

test('crossEntropy: mean −log p(true class)', (t) => {
  // Rows (float32): [0.7, 0.2, 0.1] label 0, [0.1, 0.3, 0.6] label 2.
  // loss = (−ln 0.7 − ln 0.6)/2 = (0.35667494… + 0.51082562…)/2 ≈ 0.43375028,
  // using the float32-rounded probabilities the array actually holds.
  const probs = Float32Array.from([0.7, 0.2, 0.1, 0.1, 0.3, 0.6])
  const want = -(Math.log(Math.fround(0.7)) + Math.log(Math.fround(0.6))) / 2
  near(t, crossEntropy(probs, [0, 2], 3), want, 'loss')
  t.true(Math.abs(want - 0.43375028) < 1e-7)
  // Perfect predictions: −ln 1 = 0.
  t.is(crossEntropy(Float32Array.from([1, 0, 0, 1]), Uint8Array.from([0, 1]), 2), 0)
})

test('crossEntropy: p = 0 is clamped to 1e-12, NaN propagates', (t) => {
  // −ln 1e-12 = 12 ln 10 ≈ 27.631; mean with a perfect row: 27.631/2.
  const probs = Float32Array.from([0, 1, 1, 0])
  near(t, crossEntropy(probs, [0, 0], 2), (12 * Math.LN10) / 2, 'clamped loss')
  t.is(PROB_FLOOR, 1e-12)
  t.true(Number.isNaN(crossEntropy(Float32Array.from([Number.NaN, 1]), [0], 2)))
})

test('summarize bundles the metrics and the loss', (t) => {
  const s = summarize(A, 3, 0.25)
  t.is(s.loss, 0.25)
  t.is(s.accuracy, accuracy(A, 3))
  t.is(s.macroF1, macroF1(A, 3))
  t.is(s.balancedAccuracy, balancedAccuracy(A, 3))
  t.deepEqual(s.perClass, perClass(A, 3))
  t.is(summarize(A, 3).loss, null)
})

test('size and value validation', (t) => {
  const r = { instanceOf: RangeError }
  for (const K of [0, -1, 1.5, Number.NaN]) t.throws(() => accuracy([], K), { ...r, message: /^K must/ })
  t.throws(() => accuracy(A, 2), { ...r, message: /^confusion must have/ })
  t.throws(() => perClass([1, 2, 3], 2), { ...r, message: /^confusion must have/ })
  t.throws(() => macroF1([1, -1, 0, 0], 2), { ...r, message: /^confusion\[1\]/ })
  t.throws(() => balancedAccuracy([1, 0.5, 0, 0], 2), { ...r, message: /^confusion\[1\]/ })
  t.throws(() => summarize([1, Number.NaN, 0, 0], 2), { ...r, message: /^confusion\[1\]/ })
  t.throws(() => confusionFromPredictions([0, 1], [0], 2), { ...r, message: /equal length/ })
  t.throws(() => confusionFromPredictions([0, 2], [0, 1], 2), { ...r, message: /^labels\[1\]/ })
  t.throws(() => confusionFromPredictions([0, 1], [0, -1], 2), { ...r, message: /^preds\[1\]/ })
  t.throws(() => confusionFromPredictions([0], [0], 0), { ...r, message: /^K must/ })
  t.throws(() => argmaxRows(new Float32Array(5), 3), { ...r, message: /not a multiple of K/ })
  t.throws(() => crossEntropy(new Float32Array(5), [0], 3), { ...r, message: /not a multiple of K/ })
  t.throws(() => crossEntropy(new Float32Array(6), [0], 3), { ...r, message: /^labels must have one entry/ })
  t.throws(() => crossEntropy(new Float32Array(0), [], 3), { ...r, message: /at least one row/ })
  t.throws(() => crossEntropy(new Float32Array(3), [3], 3), { ...r, message: /^labels\[0\]/ })
})

// Alternative computation straight from the (label, pred) pairs, with no confusion matrix:
// per class count tp, fp, fn by scanning, then apply the textbook formulas.
function direct(labels: number[], preds: number[], K: number) {
  const classes = []
  for (let k = 0; k < K; k++) {
    let tp = 0
    let fp = 0
    let fn = 0
    for (let i = 0; i < labels.length; i++) {
      if (labels[i] === k && preds[i] === k) tp++
      else if (preds[i] === k) fp++
      else if (labels[i] === k) fn++
    }
    const precision = tp + fp > 0 ? tp / (tp + fp) : 0
    const recall = tp + fn > 0 ? tp / (tp + fn) : 0
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0
    classes.push({ precision, recall, f1, support: tp + fn, seen: tp + fp + fn > 0 })
  }
  const correct = labels.filter((l, i) => l === preds[i]).length
  const seen = classes.filter((c) => c.seen)
  const supported = classes.filter((c) => c.support > 0)
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0)
  return {
    accuracy: labels.length ? correct / labels.length : 0,
    macroF1: mean(seen.map((c) => c.f1)),
    balancedAccuracy: mean(supported.map((c) => c.recall)),
    perClass: classes.map(({ precision, recall, f1, support }) => ({ precision, recall, f1, support })),
  }
}

test('random predictions agree with the direct pairwise computation', (t) => {
  const sample = fc.integer({ min: 1, max: 6 }).chain((K) =>
    fc.tuple(
      fc.constant(K),
      fc.array(fc.tuple(fc.nat(K - 1), fc.nat(K - 1)), { maxLength: 60 }),
    ),
  )
  fc.assert(
    fc.property(sample, ([K, pairs]) => {
      const labels = pairs.map((p) => p[0])
      const preds = pairs.map((p) => p[1])
      const s = summarize(confusionFromPredictions(labels, preds, K), K)
      const d = direct(labels, preds, K)
      const ok = (a: number, b: number) => Math.abs(a - b) <= EPS
      return (
        ok(s.accuracy, d.accuracy) &&
        ok(s.macroF1, d.macroF1) &&
        ok(s.balancedAccuracy, d.balancedAccuracy) &&
        s.perClass.every(
          (c, k) =>
            ok(c.precision, d.perClass[k].precision) &&
            ok(c.recall, d.perClass[k].recall) &&
            ok(c.f1, d.perClass[k].f1) &&
            c.support === d.perClass[k].support,
        )
      )
    }),
    { seed: 7, numRuns: 500 },
  )
  t.pass()
})

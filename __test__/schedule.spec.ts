import test from 'ava'

import { learningRate, schedule, type ScheduleOptions } from '../src/training/schedule'

const EPS = 1e-12

function close(t: { true: (c: boolean, m?: string) => void }, got: number[], want: number[]): void {
  t.true(got.length === want.length, `length ${got.length} != ${want.length}`)
  for (let i = 0; i < want.length; i++) {
    t.true(Math.abs(got[i] - want[i]) <= EPS, `epoch ${i}: got ${got[i]}, want ${want[i]}`)
  }
}

test('constant: η0 every epoch', (t) => {
  t.deepEqual(schedule({ name: 'constant', lr: 0.1, epochs: 3 }), [0.1, 0.1, 0.1])
})

test('linear: η0(1 − t/T), floor not reached', (t) => {
  // η0 = 0.1, T = 4: 0.1·1, 0.1·0.75, 0.1·0.5, 0.1·0.25; all ≥ η_min = 0.01.
  close(t, schedule({ name: 'linear', lr: 0.1, lrMin: 0.01, epochs: 4 }), [0.1, 0.075, 0.05, 0.025])
  // Default η_min = 0 gives the same sequence; the last epoch is η0/T, not 0.
  close(t, schedule({ name: 'linear', lr: 0.1, epochs: 4 }), [0.1, 0.075, 0.05, 0.025])
})

test('linear: floor clips the tail', (t) => {
  // η_min = 0.04: 0.025 at t = 3 is raised to 0.04; 0.05 at t = 2 is above it and kept.
  close(t, schedule({ name: 'linear', lr: 0.1, lrMin: 0.04, epochs: 4 }), [0.1, 0.075, 0.05, 0.04])
  // η_min = η0 makes it constant.
  close(t, schedule({ name: 'linear', lr: 0.1, lrMin: 0.1, epochs: 4 }), [0.1, 0.1, 0.1, 0.1])
})

test('exponential: γ = (η_min/η0)^(1/T)', (t) => {
  // η0 = 0.1, η_min = 0.01, T = 4: γ = 0.1^(1/4) = 10^(−1/4).
  // η_t = 0.1 · 10^(−t/4): 0.1, 10^(−1.25), 10^(−1.5), 10^(−1.75).
  const want = [0.1, 0.05623413251903491, 0.031622776601683794, 0.017782794100389228]
  const opts: ScheduleOptions = { name: 'exponential', lr: 0.1, lrMin: 0.01, epochs: 4 }
  close(t, schedule(opts), want)
  // Same thing written as η0·γ^t with γ computed first.
  const gamma = Math.pow(0.01 / 0.1, 1 / 4)
  close(t, schedule(opts), [0, 1, 2, 3].map((e) => 0.1 * Math.pow(gamma, e)))
  // One step past the last epoch would land exactly on η_min.
  t.true(Math.abs(0.1 * Math.pow(gamma, 4) - 0.01) <= EPS)
})

test('T = 1: a single epoch at η0', (t) => {
  for (const name of ['constant', 'linear', 'exponential'] as const) {
    t.deepEqual(schedule({ name, lr: 0.3, lrMin: 0.001, epochs: 1 }), [0.3])
  }
})

test('learningRate agrees with schedule', (t) => {
  for (const name of ['constant', 'linear', 'exponential'] as const) {
    const opts: ScheduleOptions = { name, lr: 0.05, lrMin: 0.002, epochs: 7 }
    const all = schedule(opts)
    for (let e = 0; e < 7; e++) t.is(learningRate(opts, e), all[e])
  }
})

test('decaying schedules are non-increasing and stay within [η_min, η0]', (t) => {
  for (const name of ['linear', 'exponential'] as const) {
    const s = schedule({ name, lr: 0.2, lrMin: 0.003, epochs: 50 })
    for (let e = 0; e < s.length; e++) {
      t.true(s[e] <= 0.2 && s[e] >= 0.003, `${name} epoch ${e}: ${s[e]}`)
      if (e > 0) t.true(s[e] <= s[e - 1], `${name} epoch ${e} rose`)
    }
  }
})

test('validation names the offending option', (t) => {
  const base: ScheduleOptions = { name: 'linear', lr: 0.1, lrMin: 0.01, epochs: 4 }
  const bad: Array<[Partial<ScheduleOptions> & Record<string, unknown>, RegExp]> = [
    [{ name: 'step' as never }, /^name/],
    [{ lr: 0 }, /^lr must/],
    [{ lr: -0.1 }, /^lr must/],
    [{ lr: Number.NaN }, /^lr must/],
    [{ lr: Infinity }, /^lr must/],
    [{ lrMin: -1e-3 }, /^lrMin/],
    [{ lrMin: 0.2 }, /^lrMin/],
    [{ lrMin: Number.NaN }, /^lrMin/],
    [{ name: 'exponential', lrMin: 0 }, /^lrMin must be > 0/],
    [{ name: 'exponential', lrMin: undefined }, /^lrMin must be > 0/],
    [{ epochs: 0 }, /^epochs/],
    [{ epochs: 2.5 }, /^epochs/],
    [{ epochs: Number.NaN }, /^epochs/],
  ]
  for (const [patch, message] of bad) {
    const opts = { ...base, ...patch } as ScheduleOptions
    t.throws(() => schedule(opts), { instanceOf: RangeError, message }, JSON.stringify(patch))
    t.throws(() => learningRate(opts, 0), { instanceOf: RangeError, message })
  }
})

test('learningRate rejects epochs outside [0, T)', (t) => {
  const opts: ScheduleOptions = { name: 'constant', lr: 0.1, epochs: 4 }
  for (const e of [-1, 4, 1.5, Number.NaN]) {
    t.throws(() => learningRate(opts, e), { instanceOf: RangeError, message: /^epoch must/ })
  }
})

// ------------------------------------------------------------------ F1: cosine, warm-up, one-cycle

test('cosine: η_min + (η0 − η_min)(1 + cos(πt/T))/2, η0 exactly at t = 0', (t) => {
  // η0 = 0.1, η_min = 0.01, T = 4: cos(π/4) = √2/2, so 0.01 + 0.09·(1 ± √2/2)/2 at t = 1, 3; 0.055 at t = 2.
  const s = schedule({ name: 'cosine', lr: 0.1, lrMin: 0.01, epochs: 4 })
  close(t, s, [0.1, 0.01 + 0.09 * (1 + Math.SQRT1_2) / 2, 0.055, 0.01 + 0.09 * (1 - Math.SQRT1_2) / 2])
  close(t, s, [0.1, 0.08681980515339463, 0.055, 0.023180194846605363])
  t.is(s[0], 0.1)
  // η_min = 0 by default: one step past the end would be 0; T = 1 is η0.
  close(t, schedule({ name: 'cosine', lr: 1, epochs: 2 }), [1, 0.5])
  t.deepEqual(schedule({ name: 'cosine', lr: 0.3, epochs: 1 }), [0.3])
  const long = schedule({ name: 'cosine', lr: 0.2, lrMin: 0.003, epochs: 50 })
  for (let e = 1; e < 50; e++) t.true(long[e] < long[e - 1] && long[e] > 0.003, `epoch ${e}`)
})

test('warm-up: (t+1)/(W+1)·s(0) for t < W, then the schedule over the remaining T − W epochs', (t) => {
  // constant, W = 2, T = 5: 0.1, 0.2, then 0.3 ×3.
  close(t, schedule({ name: 'constant', lr: 0.3, epochs: 5, warmupEpochs: 2 }), [0.1, 0.2, 0.3, 0.3, 0.3])
  // linear, W = 1, T = 5: 0.05, then linear over T' = 4: 0.1, 0.075, 0.05, 0.025.
  close(t, schedule({ name: 'linear', lr: 0.1, epochs: 5, warmupEpochs: 1 }), [0.05, 0.1, 0.075, 0.05, 0.025])
  // exponential, W = 1, T = 3, η_min = 0.01: 0.05, then 0.1·0.1^(t'/2): 0.1, 0.1·√0.1.
  close(t, schedule({ name: 'exponential', lr: 0.1, lrMin: 0.01, epochs: 3, warmupEpochs: 1 }), [0.05, 0.1, 0.1 * Math.sqrt(0.1)])
  // cosine, W = 2, T = 6: 0.1/3, 0.2/3, then the T' = 4 cosine above.
  close(t, schedule({ name: 'cosine', lr: 0.1, lrMin: 0.01, epochs: 6, warmupEpochs: 2 }), [0.1 / 3, 0.2 / 3, 0.1, 0.08681980515339463, 0.055, 0.023180194846605363])
  // one-cycle, W = 1, T = 5: the ramp leads to one-cycle's own first rate 0.1/25 (T' = 4, below).
  close(t, schedule({ name: 'one-cycle', lr: 0.1, epochs: 5, warmupEpochs: 1 }), [0.002, 0.004, 0.0811745653949763, 0.028306099820869922, 4e-7])
  // W = 0 is the plain schedule, bit for bit, for every schedule.
  for (const name of ['constant', 'linear', 'exponential', 'cosine', 'one-cycle'] as const) {
    const opts: ScheduleOptions = { name, lr: 0.05, lrMin: 0.002, epochs: 7 }
    t.deepEqual(schedule({ ...opts, warmupEpochs: 0 }), schedule(opts))
  }
})

test('one-cycle: PyTorch OneCycleLR (cos, two phases) stepped per epoch, defaults pctStart 0.3, divFactor 25, finalDivFactor 1e4', (t) => {
  // lr = 1, T = 10: initial 1/25 = 0.04, final 0.04/1e4 = 4e-6, rise ends at e1 = 0.3·10 − 1 = 2.
  //   t = 0: 0.04; t = 1: halfway on the cos, (1 + 0.04)/2 = 0.52; t = 2: 1;
  //   t = 3..9: 4e-6 + (1 − 4e-6)(1 + cos(π(t − 2)/7))/2, ending at 4e-6.
  const s = schedule({ name: 'one-cycle', lr: 1, epochs: 10 })
  const fall = [3, 4, 5, 6, 7, 8, 9].map((e) => 4e-6 + (1 - 4e-6) * (1 + Math.cos((Math.PI * (e - 2)) / 7)) / 2)
  close(t, s, [0.04, 0.52, 1, ...fall])
  // The same numbers from Python, PyTorch's algorithm verbatim (phases, _annealing_cos):
  close(t, s, [0.040000000000000036, 0.52, 1.0, 0.9504846320134737, 0.8117456539497631, 0.6112620219362893, 0.38874197806371075, 0.18825834605023697, 0.049519367986526286, 4e-06])
  // T = 4: e1 = 0.2, so epoch 0 is the rise's start and the fall runs over x = (t − 0.2)/2.8.
  const down = (x: number) => 4e-7 + (0.1 - 4e-7) * (1 + Math.cos(Math.PI * x)) / 2
  close(t, schedule({ name: 'one-cycle', lr: 0.1, epochs: 4 }), [0.004, down(0.8 / 2.8), down(1.8 / 2.8), 4e-7])
  close(t, schedule({ name: 'one-cycle', lr: 0.1, epochs: 4 }), [0.0040000000000000036, 0.0811745653949763, 0.028306099820869922, 4e-7])
  // T = 2: e1 = −0.4 < 0, the rise ends before epoch 0, which is already on the way down
  // (PyTorch's behaviour): x = (t + 0.4)/1.4.
  close(t, schedule({ name: 'one-cycle', lr: 0.1, epochs: 2 }), [down(0.4 / 1.4), 4e-7])
  // Custom factors; lrMin is not used.
  const c = schedule({ name: 'one-cycle', lr: 2, lrMin: 1, epochs: 3, pctStart: 0.5, divFactor: 4, finalDivFactor: 10 })
  // e1 = 0.5: t = 0 rises from 0.5 (x = 0); t = 1, 2 fall over x = (t − 0.5)/1.5 to 0.05.
  close(t, c, [0.5, 0.05 + 1.95 * (1 + Math.cos(Math.PI / 3)) / 2, 0.05])
  t.deepEqual(schedule({ name: 'one-cycle', lr: 0.1, epochs: 1 }), [0.1 / 25 / 1e4])
  for (let e = 0; e < 10; e++) t.is(learningRate({ name: 'one-cycle', lr: 1, epochs: 10 }, e), s[e])
})

test('validation of the F1 schedule options names the option', (t) => {
  const bad: Array<[ScheduleOptions, RegExp]> = [
    [{ name: 'cosine', lr: 0.1, epochs: 4, warmupEpochs: 4 }, /^warmupEpochs must be an integer with 0 <= warmupEpochs < epochs \(4\), got 4/],
    [{ name: 'constant', lr: 0.1, epochs: 4, warmupEpochs: -1 }, /^warmupEpochs/],
    [{ name: 'constant', lr: 0.1, epochs: 4, warmupEpochs: 1.5 }, /^warmupEpochs/],
    [{ name: 'one-cycle', lr: 0.1, epochs: 4, pctStart: 0 }, /^pctStart must be a number in \(0, 1\)/],
    [{ name: 'one-cycle', lr: 0.1, epochs: 4, pctStart: 1 }, /^pctStart/],
    [{ name: 'one-cycle', lr: 0.1, epochs: 4, divFactor: 0 }, /^divFactor must be a finite number > 0/],
    [{ name: 'one-cycle', lr: 0.1, epochs: 4, finalDivFactor: Infinity }, /^finalDivFactor/],
    [{ name: 'one-cycle', lr: 0.1, epochs: 10, pctStart: 0.1 }, /^pctStart × epochs = 0.1 × 10 = 1: one-cycle's rise would end at its first epoch/],
    [{ name: 'one-cycle', lr: 0.1, epochs: 11, warmupEpochs: 1, pctStart: 0.1 }, /\(after warm-up\)/],
    [{ name: 'step' as never, lr: 0.1, epochs: 4 }, /^name must be one of constant, linear, exponential, cosine, one-cycle/],
  ]
  for (const [opts, message] of bad) {
    t.throws(() => schedule(opts), { instanceOf: RangeError, message }, JSON.stringify(opts))
    t.throws(() => learningRate(opts, 0), { instanceOf: RangeError, message })
  }
})

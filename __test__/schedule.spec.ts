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
    [{ name: 'cosine' as never }, /^name/],
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

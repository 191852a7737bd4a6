// Learning-rate schedules, one rate per epoch t = 0, 1, …, T − 1 (T = `epochs`).
//
//   constant     η_t = η0
//   linear       η_t = max(η0 · (1 − t/T), η_min)
//   exponential  η_t = η0 · γ^t,  γ = (η_min / η0)^(1/T)
//
// Both decaying schedules are anchored so that they would reach η_min at t = T, one step past
// the last epoch; the last rate actually used is therefore slightly above η_min (for linear with
// η_min = 0 it is η0/T, never a wasted epoch at rate 0).

export type ScheduleName = 'constant' | 'linear' | 'exponential'

export interface ScheduleOptions {
  name: ScheduleName
  /** Initial rate η0: finite, > 0. */
  lr: number
  /** Floor η_min: finite, 0 ≤ lrMin ≤ lr. Defaults to 0; the exponential schedule needs lrMin > 0. */
  lrMin?: number
  /** Total epochs T: integer ≥ 1. */
  epochs: number
}

const NAMES: readonly ScheduleName[] = ['constant', 'linear', 'exponential']

function validate(opts: ScheduleOptions): number {
  const { name, lr, epochs } = opts
  const lrMin = opts.lrMin ?? 0
  if (!NAMES.includes(name)) {
    throw new RangeError(`name must be one of ${NAMES.join(', ')}, got ${String(name)}`)
  }
  if (typeof lr !== 'number' || !Number.isFinite(lr) || lr <= 0) {
    throw new RangeError(`lr must be a finite number > 0, got ${lr}`)
  }
  if (typeof lrMin !== 'number' || !Number.isFinite(lrMin) || lrMin < 0 || lrMin > lr) {
    throw new RangeError(`lrMin must be a finite number with 0 <= lrMin <= lr (${lr}), got ${lrMin}`)
  }
  // γ = (0/η0)^(1/T) = 0 would drop the rate to zero after the first epoch.
  if (name === 'exponential' && lrMin <= 0) {
    throw new RangeError(`lrMin must be > 0 for the exponential schedule, got ${lrMin}`)
  }
  if (!Number.isInteger(epochs) || epochs < 1) {
    throw new RangeError(`epochs must be an integer >= 1, got ${epochs}`)
  }
  return lrMin
}

/** Rate for epoch `epoch` (integer, 0 ≤ epoch < opts.epochs). */
export function learningRate(opts: ScheduleOptions, epoch: number): number {
  const lrMin = validate(opts)
  if (!Number.isInteger(epoch) || epoch < 0 || epoch >= opts.epochs) {
    throw new RangeError(`epoch must be an integer in [0, ${opts.epochs}), got ${epoch}`)
  }
  return rateAt(opts.name, opts.lr, lrMin, opts.epochs, epoch)
}

/** Rates for every epoch, index = epoch. */
export function schedule(opts: ScheduleOptions): number[] {
  const lrMin = validate(opts)
  const out = new Array<number>(opts.epochs)
  for (let t = 0; t < opts.epochs; t++) out[t] = rateAt(opts.name, opts.lr, lrMin, opts.epochs, t)
  return out
}

function rateAt(name: ScheduleName, lr: number, lrMin: number, T: number, t: number): number {
  switch (name) {
    case 'constant':
      return lr
    case 'linear':
      return Math.max(lr * (1 - t / T), lrMin)
    case 'exponential':
      // (η_min/η0)^(t/T) equals γ^t but takes one rounding instead of t compounded ones.
      return lr * Math.pow(lrMin / lr, t / T)
  }
}

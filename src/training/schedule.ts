// Learning-rate schedules, one rate per epoch t = 0, 1, …, T − 1 (T = `epochs`).
//
//   constant     η_t = η0
//   linear       η_t = max(η0 · (1 − t/T), η_min)
//   exponential  η_t = η0 · γ^t,  γ = (η_min / η0)^(1/T)
//   cosine       η_t = η_min + (η0 − η_min) · (1 + cos(π·t/T)) / 2
//   one-cycle    PyTorch's OneCycleLR (anneal_strategy 'cos', three_phase False) stepped once per
//                epoch with total_steps = T and max_lr = η0: from η0/d up to η0 over the first
//                p·T epochs, then down to η0/(d·f):
//                  e1 = p·T − 1;  t ≤ e1:  η_t = cos_anneal(η0/d, η0, t/e1)
//                  otherwise:              η_t = cos_anneal(η0, η0/(d·f), (t − e1)/(T − 1 − e1))
//                  cos_anneal(a, b, x) = b + (a − b)·(1 + cos(π·x))/2
//                defaults (PyTorch's): p = pctStart = 0.3, d = divFactor = 25, f = finalDivFactor = 1e4.
//                η_min is not used (the end point is η0/(d·f)). If p·T < 1 the rise is shorter than
//                one epoch and, as in PyTorch, the run starts on the way down; p·T = 1 exactly is
//                refused (PyTorch divides by zero there).
//
// linear, exponential and cosine are anchored so that they would reach η_min at t = T, one step
// past the last epoch (as PyTorch's CosineAnnealingLR with T_max = T); the last rate actually used
// is therefore slightly above η_min (for linear with η_min = 0 it is η0/T, never a wasted epoch at
// rate 0). One-cycle, as PyTorch's, does reach η0/(d·f) at the last epoch.
//
// Warm-up (warmupEpochs W, 0 ≤ W < T, default 0), combinable with every schedule: the first W
// epochs ramp linearly up to the schedule's first rate, and the schedule then runs, whole, over
// the remaining T − W epochs:
//   t < W:  η_t = (t + 1)/(W + 1) · s(0)        t ≥ W:  η_t = s(t − W)
// where s is the schedule above with T − W epochs in place of T. So W = 2 gives s(0)/3, 2·s(0)/3,
// then s(0), s(1), …; no epoch runs at rate 0, and the decay still ends where it would without
// warm-up. (s(0) = η0 for every schedule but one-cycle, whose s(0) = η0/d.) W = 0 is the plain
// schedule, bit for bit.

export type ScheduleName = 'constant' | 'linear' | 'exponential' | 'cosine' | 'one-cycle'

export interface ScheduleOptions {
  name: ScheduleName
  /** Initial rate η0 (one-cycle: the peak, max_lr): finite, > 0. */
  lr: number
  /** Floor η_min: finite, 0 ≤ lrMin ≤ lr. Defaults to 0; the exponential schedule needs lrMin > 0; one-cycle ignores it. */
  lrMin?: number
  /** Total epochs T: integer ≥ 1. */
  epochs: number
  /** Linear warm-up epochs W before the schedule: integer, 0 ≤ W < epochs. Default 0. */
  warmupEpochs?: number
  /** one-cycle: fraction of the (post-warm-up) run spent rising, in (0, 1). Default 0.3. */
  pctStart?: number
  /** one-cycle: the first rate is lr / divFactor; > 0. Default 25. */
  divFactor?: number
  /** one-cycle: the last rate is lr / (divFactor · finalDivFactor); > 0. Default 1e4. */
  finalDivFactor?: number
}

export const SCHEDULE_NAMES: readonly ScheduleName[] = ['constant', 'linear', 'exponential', 'cosine', 'one-cycle']

interface Resolved {
  lrMin: number
  warmup: number
  pctStart: number
  divFactor: number
  finalDivFactor: number
}

function positive(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new RangeError(`${name} must be a finite number > 0, got ${String(v)}`)
  return v
}

function validate(opts: ScheduleOptions): Resolved {
  const { name, lr, epochs } = opts
  const lrMin = opts.lrMin ?? 0
  if (!SCHEDULE_NAMES.includes(name)) {
    throw new RangeError(`name must be one of ${SCHEDULE_NAMES.join(', ')}, got ${String(name)}`)
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
  const warmup = opts.warmupEpochs ?? 0
  if (!Number.isInteger(warmup) || warmup < 0 || warmup >= epochs) {
    throw new RangeError(`warmupEpochs must be an integer with 0 <= warmupEpochs < epochs (${epochs}), got ${warmup}`)
  }
  const pctStart = opts.pctStart ?? 0.3
  if (typeof pctStart !== 'number' || !(pctStart > 0 && pctStart < 1)) {
    throw new RangeError(`pctStart must be a number in (0, 1), got ${String(pctStart)}`)
  }
  const divFactor = positive('divFactor', opts.divFactor ?? 25)
  const finalDivFactor = positive('finalDivFactor', opts.finalDivFactor ?? 1e4)
  if (name === 'one-cycle' && pctStart * (epochs - warmup) === 1) {
    throw new RangeError(
      `pctStart × epochs = ${pctStart} × ${epochs - warmup}${warmup ? ' (after warm-up)' : ''} = 1: one-cycle's rise would end at its first epoch (PyTorch divides by zero there); choose another pctStart or epochs`,
    )
  }
  return { lrMin, warmup, pctStart, divFactor, finalDivFactor }
}

/** Rate for epoch `epoch` (integer, 0 ≤ epoch < opts.epochs). */
export function learningRate(opts: ScheduleOptions, epoch: number): number {
  const r = validate(opts)
  if (!Number.isInteger(epoch) || epoch < 0 || epoch >= opts.epochs) {
    throw new RangeError(`epoch must be an integer in [0, ${opts.epochs}), got ${epoch}`)
  }
  return withWarmup(opts, r, epoch)
}

/** Rates for every epoch, index = epoch. */
export function schedule(opts: ScheduleOptions): number[] {
  const r = validate(opts)
  const out = new Array<number>(opts.epochs)
  for (let t = 0; t < opts.epochs; t++) out[t] = withWarmup(opts, r, t)
  return out
}

function withWarmup(opts: ScheduleOptions, r: Resolved, t: number): number {
  const W = r.warmup
  if (W === 0) return rateAt(opts.name, opts.lr, r, opts.epochs, t)
  const T = opts.epochs - W
  if (t < W) return ((t + 1) / (W + 1)) * rateAt(opts.name, opts.lr, r, T, 0)
  return rateAt(opts.name, opts.lr, r, T, t - W)
}

/** cos annealing from a (x = 0) to b (x = 1), PyTorch's _annealing_cos. */
function cosAnneal(a: number, b: number, x: number): number {
  return b + ((a - b) / 2) * (Math.cos(Math.PI * x) + 1)
}

function rateAt(name: ScheduleName, lr: number, r: Resolved, T: number, t: number): number {
  const { lrMin } = r
  switch (name) {
    case 'constant':
      return lr
    case 'linear':
      return Math.max(lr * (1 - t / T), lrMin)
    case 'exponential':
      // (η_min/η0)^(t/T) equals γ^t but takes one rounding instead of t compounded ones.
      return lr * Math.pow(lrMin / lr, t / T)
    case 'cosine':
      // η0 − (η0 − η_min)(1 − cos)/2, the same value, written so that t = 0 gives η0 exactly.
      return lr - ((lr - lrMin) * (1 - Math.cos((Math.PI * t) / T))) / 2
    case 'one-cycle': {
      // PyTorch's phases: rise over steps 0 … e1, fall from e1 to T − 1 (the last phase takes
      // every step past e1, including all of them when e1 < 0).
      const initial = lr / r.divFactor
      const final = initial / r.finalDivFactor
      const e1 = r.pctStart * T - 1
      if (t <= e1) return cosAnneal(initial, lr, t / e1)
      // T = 1 with e1 < 0: the single epoch is the end of the fall, x = 1 (PyTorch's value too).
      return cosAnneal(lr, final, (t - e1) / (T - 1 - e1))
    }
  }
}

// Hyper-parameter search: grid or random over learning rate, batch size, hidden layers, L2 λ,
// optimizer, schedule and patience; every trial scored by its best validation loss (the epoch
// early stopping would restore), every trial logged. The test split is not available here.
//
// Successive halving (Jamieson & Talwalkar 2016; the synchronous core of Hyperband): instead of
// training every candidate for the full budget of T epochs, train all of them for a few epochs
// (the first rung, r0), keep the best 1/η by validation loss, train the survivors to r0·η epochs,
// keep the best 1/η again, and so on; the last survivor(s) run to T. With 12 trials, r0 = 3, η = 3
// and T = 30 that is 12×3 + 4×6 + 2×18 + 1×3 ≈ 100 epochs instead of 12×30 = 360. Trials are
// resumed, never retrained (Trial.advance), and each keeps its own early stopping, so a trial can
// also end before a rung. The bet is that a configuration that is clearly worse after a few epochs
// will not come back; learning rates that start slowly (small lr, decaying schedules) are the ones
// it can misjudge, which is why r0 defaults to 3 epochs rather than 1 and only 2/3 are dropped at
// each rung.
//
// Concurrency: `concurrency` trials train side by side, each with `threads` engine threads. On a
// 2-core machine two 1-thread trials against one 2-thread trial at a time were measured
// (bench/trial-concurrency.ts, README "Experiments and reports"): a tie within noise; the default
// (experiments.ts DEFAULT_SEARCH_CONCURRENCY) and the reasons are recorded there.
import { mulberry32 } from '../data/split'
import { pct } from '../output/format'
import { resolveModelConfig, Trial, type ModelConfig } from '../training/trial'
import type { TrialData } from '../training/sources'
import { z } from 'zod'
import { fieldSchema, parseWith } from '../training/config'
import type { OptimizerName } from '../engine/mlp'
import type { ScheduleName } from '../training/schedule'

/** Candidate values of one setting: a non-empty list, each value checked by the setting's own schema. */
const candidates = <S extends z.ZodType>(s: S, what: string) => z.array(s).min(1).meta({ must: `must be a non-empty list of ${what}` })

/** The search space's schema: the model settings' own schemas for every candidate (strict: unknown keys are refused). */
export const SearchSpaceSchema = z.strictObject({
  optimizer: candidates(fieldSchema('optimizer'), 'optimizers'),
  lr: z.partialRecord(fieldSchema('optimizer'), candidates(fieldSchema('lr'), 'learning rates')),
  batchSize: candidates(fieldSchema('batchSize'), 'batch sizes'),
  hidden: candidates(fieldSchema('hidden'), 'hidden-layer lists'),
  l2: candidates(fieldSchema('l2'), 'L2 λ values'),
  schedule: candidates(fieldSchema('schedule'), 'schedules'),
  patience: candidates(fieldSchema('patience'), 'patience values'),
  // issue F1's levers: searched only when listed (otherwise every trial has the study's value)
  activation: candidates(fieldSchema('activation'), 'activations').optional(),
  dropout: candidates(fieldSchema('dropout'), 'dropout rates').optional(),
  batchNorm: candidates(fieldSchema('batchNorm'), 'batch-norm switches').optional(),
  labelSmoothing: candidates(fieldSchema('labelSmoothing'), 'label-smoothing ε values').optional(),
  weightDecay: candidates(fieldSchema('weightDecay'), 'AdamW weight decays').optional(),
  momentum: candidates(fieldSchema('momentum'), 'momentum values').optional(),
  warmupEpochs: candidates(fieldSchema('warmupEpochs'), 'warm-up lengths').optional(),
})

/** The levers a search space may list beside the study's settings (issue F1), in drawing order. */
export const LEVERS = ['activation', 'dropout', 'batchNorm', 'labelSmoothing', 'weightDecay', 'momentum', 'warmupEpochs'] as const
type Lever = (typeof LEVERS)[number]
type Levers = Partial<Pick<ModelConfig, Lever>>

/** Candidate values per hyper-parameter. Random search draws lr log-uniformly over [min, max] of its optimizer's list. */
export interface SearchSpace {
  optimizer: OptimizerName[]
  lr: Partial<Record<OptimizerName, number[]>>
  batchSize: number[]
  hidden: number[][]
  l2: number[]
  schedule: ScheduleName[]
  patience: number[]
  /** Optional (issue F1): each listed lever is searched too; weightDecay applies to adamw trials only, momentum to gd/sgd ones. */
  activation?: ModelConfig['activation'][]
  dropout?: ModelConfig['dropout'][]
  batchNorm?: boolean[]
  labelSmoothing?: number[]
  weightDecay?: number[]
  momentum?: number[]
  warmupEpochs?: number[]
}
// the interface is what the search reads; the schema must describe exactly it
const _sameSpace: [z.infer<typeof SearchSpaceSchema>] extends [SearchSpace] ? ([SearchSpace] extends [z.infer<typeof SearchSpaceSchema>] ? true : never) : never = true
void _sameSpace

export const DEFAULT_RANDOM_SPACE: SearchSpace = {
  optimizer: ['adam', 'sgd'],
  lr: { adam: [1e-4, 3e-3], sgd: [0.01, 0.3], gd: [0.05, 0.5] },
  batchSize: [32, 64, 128],
  hidden: [[256], [512], [256, 128]],
  l2: [0, 1e-4, 1e-3],
  schedule: ['constant', 'exponential'],
  patience: [5, 10],
}

/** The grid default: 12 points, optimizer × learning rate × batch size, the rest at the study's values. */
export const DEFAULT_GRID_SPACE: SearchSpace = {
  optimizer: ['adam', 'sgd'],
  lr: { adam: [3e-4, 1e-3, 3e-3], sgd: [0.03, 0.1, 0.3], gd: [0.1, 0.3] },
  batchSize: [32, 128],
  hidden: [[512]],
  l2: [1e-3],
  schedule: ['constant'],
  patience: [10],
}

export interface HalvingOptions {
  /** Epochs of the first rung, r0. */
  minEpochs: number
  /** Keep the best 1/η at each rung; rungs at r0, r0·η, r0·η², … < T, then T. */
  eta: number
}

export interface SearchOptions {
  mode: 'grid' | 'random'
  /** Random: how many trials. Grid: at most this many points (error if the grid is larger); 0 = no cap. */
  trials: number
  /** Maximum epochs per trial (the schedule's T). */
  epochs: number
  /** Successive halving; false trains every trial to T (or its early stop). */
  halving: HalvingOptions | false
  /** Trials training at the same time, and engine threads for each. */
  concurrency: number
  threads: number
  space: SearchSpace
  /** Settings every trial shares (anything not searched), e.g. beta1, minDelta. */
  base?: Partial<ModelConfig>
}

export interface TrialLog {
  id: number
  optimizer: OptimizerName
  lr: number
  batchSize: number
  hidden: string
  l2: number
  schedule: ScheduleName
  patience: number
  /** Epochs trained. */
  epochs: number
  /** 1-based epoch of the lowest validation loss. */
  bestEpoch: number
  valLoss: number
  valAccuracy: number
  /** early-stopping, completed, diverged, or halving@<rung> (dropped by successive halving after that many epochs). */
  stoppedBy: string
  seconds: number
  selected: boolean
  config: ModelConfig
  history: { epoch: number; trainLoss: number; valLoss: number; valAccuracy: number }[]
}

export interface SearchResult {
  name: string
  mode: 'grid' | 'random' | 'architecture' | 'candidates'
  trials: TrialLog[]
  /** The selected trial (lowest validation loss), still holding its model. */
  best: Trial
  bestId: number
  rungs: number[]
  concurrency: number
  threads: number
  seconds: number
  /** Epochs trained in total, and what training every trial to its end would have cost at most. */
  epochsTrained: number
  epochsWithoutHalving: number
}

const pick = <T>(rand: () => number, xs: T[]): T => xs[Math.floor(rand() * xs.length)]

/** Checks a complete search space (RangeError naming the entry, e.g. `search.space.lr.adam[0]`). */
export function checkSpace(s: SearchSpace, where = 'search.space'): void {
  parseWith(SearchSpaceSchema, s, where)
  for (const o of s.optimizer) {
    if (s.lr[o] === undefined) throw new RangeError(`${where}.lr.${o} must list positive learning rates: ${o} is among the optimizers searched`)
  }
}

/** The candidate configurations of a grid or random search, in trial order. */
export function searchConfigs(opts: Pick<SearchOptions, 'mode' | 'trials' | 'epochs' | 'space' | 'base'>, seed: number): ModelConfig[] {
  const s = opts.space
  checkSpace(s)
  const make = (o: OptimizerName, lr: number, batchSize: number, hidden: number[], l2: number, schedule: ScheduleName, patience: number, levers: Levers = {}) => {
    // a lever that does not apply to the trial's optimizer is left at the study's value
    const { weightDecay, momentum, ...rest } = levers
    const own = { ...rest, ...(o === 'adamw' && weightDecay !== undefined ? { weightDecay } : {}), ...((o === 'gd' || o === 'sgd') && momentum !== undefined ? { momentum } : {}) }
    return resolveModelConfig({ ...opts.base, ...own, optimizer: o, lr, lrMin: undefined, batchSize, hidden, l2, schedule, patience, epochs: opts.epochs, earlyStopping: true, restoreBest: true, seed })
  }
  const listed = LEVERS.filter((k) => s[k] !== undefined)
  if (opts.mode === 'grid') {
    // every combination of the listed levers (one empty combination when none is listed)
    let combos: Levers[] = [{}]
    for (const k of listed) combos = combos.flatMap((c) => (s[k] as unknown[]).map((v) => ({ ...c, [k]: v })))
    const out: ModelConfig[] = []
    for (const o of s.optimizer) for (const lr of s.lr[o]!) for (const b of s.batchSize) for (const h of s.hidden) for (const l2 of s.l2) for (const sch of s.schedule) for (const p of s.patience) for (const lv of combos) out.push(make(o, lr, b, h, l2, sch, p, lv))
    if (opts.trials > 0 && out.length > opts.trials) {
      throw new RangeError(`the grid has ${out.length} points, more than trials = ${opts.trials}: shrink the space or use random search`)
    }
    return out
  }
  if (!(Number.isInteger(opts.trials) && opts.trials >= 1)) throw new RangeError(`random search needs trials ≥ 1, got ${opts.trials}`)
  const rand = mulberry32((seed ^ 0x5eed5eed) >>> 0)
  // the levers from a generator of their own, after the study's draws: a space without them draws
  // exactly the sequence it always did, and listing them leaves the other settings' draws as they were
  const leverRand = mulberry32((seed ^ 0x1e7e7500) >>> 0)
  return Array.from({ length: opts.trials }, () => {
    const o = pick(rand, s.optimizer)
    const lrs = s.lr[o]!
    const [lo, hi] = [Math.min(...lrs), Math.max(...lrs)]
    const lr = Number((lo * (hi / lo) ** rand()).toPrecision(3)) // log-uniform
    const drawn = [pick(rand, s.batchSize), pick(rand, s.hidden), pick(rand, s.l2), pick(rand, s.schedule), pick(rand, s.patience)] as const
    const levers: Levers = Object.fromEntries(listed.map((k) => [k, pick(leverRand, s[k] as unknown[])]))
    return make(o, lr, ...drawn, levers)
  })
}

/** Rung lengths: r0, r0·η, … below T, then T. */
export function rungsFor(epochs: number, halving: HalvingOptions | false): number[] {
  if (!halving) return [epochs]
  const { minEpochs, eta } = halving
  if (!(Number.isInteger(minEpochs) && minEpochs >= 1)) throw new RangeError(`halving minEpochs must be an integer ≥ 1, got ${minEpochs}`)
  if (!(eta > 1)) throw new RangeError(`halving eta must be > 1, got ${eta}`)
  const rungs: number[] = []
  for (let r = minEpochs; r < epochs; r = Math.ceil(r * eta)) rungs.push(r)
  rungs.push(epochs)
  return rungs
}

/**
 * Runs `f` over `items` with at most `c` running at a time. After a failure (an abort, say) no new
 * item starts, and the ones running are waited for before the first error is rethrown — so that
 * every trial is at rest, between two mini-batches, when a checkpoint is taken.
 */
async function pool<T>(items: T[], c: number, f: (x: T) => Promise<void>): Promise<void> {
  let next = 0
  let failed = false
  const runs = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(c, items.length)) }, async () => {
    while (!failed && next < items.length) {
      try {
        await f(items[next++])
      } catch (e) {
        failed = true
        throw e
      }
    }
  }))
  const bad = runs.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (bad) throw bad.reason
}

export const hiddenLabel = (h: number[]): string => (h.length ? h.join('-') : 'none')

export function describeConfig(c: ModelConfig): string {
  const parts = [`[${hiddenLabel(c.hidden)}]`, `${c.optimizer} lr ${Number(c.lr.toPrecision(3))}`]
  if (c.optimizer !== 'gd') parts.push(`batch ${c.batchSize}`)
  parts.push(`L2 ${c.l2}`, c.schedule)
  if (c.earlyStopping) parts.push(`patience ${c.patience}`)
  return parts.join(', ')
}

/**
 * Trains the candidate configurations with successive halving and selects the one with the lowest
 * best-validation-loss. Models of dropped trials are freed; the selected trial is returned still
 * holding its model, trained to its end (not yet `finish()`ed).
 */
export async function runTrials(
  name: string,
  mode: SearchResult['mode'],
  configs: ModelConfig[],
  data: TrialData,
  opts: {
    epochs: number; halving: HalvingOptions | false; concurrency: number; threads: number; signal?: AbortSignal; log?: (line: string) => void
    /** Makes trial `i` (0-based); an experiment's checkpoint store restores saved trials this way. */
    makeTrial?: (i: number, c: ModelConfig, threads: number) => Trial
    /** Advances trial `i` (0-based) to `untilEpoch`, e.g. as a job on a queue (src/queue); default here, t.advance. */
    advance?: (t: Trial, untilEpoch: number, i: number) => Promise<void>
    /** Trials advanced at once when `advance` sends them elsewhere (a queue: every trial of a rung); default `concurrency`. */
    inFlight?: number
    /**
     * The validation loss a trial is ranked and selected by, and logged as `valLoss`; default its
     * best epoch's (the epoch early stopping restores). M5 keeps its last epoch's weights and is
     * scored by that epoch's loss.
     */
    score?: (t: Trial) => { valLoss: number; valAccuracy: number }
  },
): Promise<SearchResult> {
  if (configs.length === 0) throw new RangeError(`${name}: no configurations to try`)
  const started = performance.now()
  const rungs = rungsFor(opts.epochs, configs.length > 1 ? opts.halving : false)
  const make = opts.makeTrial ?? ((_: number, c: ModelConfig, threads: number) => new Trial(c, data, { threads }))
  const trials = configs.map((c, i) => make(i, c, opts.threads))
  const stoppedBy = new Map<Trial, string>()
  const scoreOf = opts.score ?? ((t: Trial) => ({ valLoss: t.bestValLoss, valAccuracy: t.bestValAccuracy }))
  const score = (t: Trial) => scoreOf(t).valLoss
  let alive = trials
  for (const [i, rung] of rungs.entries()) {
    await pool(alive, opts.inFlight ?? opts.concurrency, async (t) => {
      const before = t.epochsRun
      await (opts.advance ? opts.advance(t, rung, trials.indexOf(t)) : t.advance(rung, opts.signal))
      if (t.epochsRun === before) return // already stopped by itself: nothing new to say
      const id = trials.indexOf(t) + 1
      opts.log?.(`${name} trial ${id}/${trials.length} (${describeConfig(t.config)}): ${t.epochsRun} epochs, best val_loss ${t.bestValLoss.toFixed(4)} @ ${t.bestEpoch}, val_acc ${pct(t.bestValAccuracy)}, ${t.seconds.toFixed(1)}s${t.stopReason ? ` (${t.stopReason})` : ''}`)
    })
    if (i === rungs.length - 1) break
    const ranked = [...alive].sort((a, b) => score(a) - score(b))
    const keep = Math.max(1, Math.ceil(alive.length / (opts.halving ? opts.halving.eta : 1)))
    for (const t of ranked.slice(keep)) {
      if (!t.done) stoppedBy.set(t, `halving@${rung}`)
      t.release() // never trained again: its memory back now, and nothing of it to checkpoint
    }
    alive = ranked.slice(0, keep)
    if (opts.log && ranked.length > keep) opts.log(`${name}: rung ${rung} epochs — keeping ${keep} of ${ranked.length} (trials ${alive.map((t) => trials.indexOf(t) + 1).join(', ')})`)
  }
  // Among the last survivors: no dropped trial scored lower (survivors only improve), and a dropped
  // one's model is already freed, so a tie must not select it.
  const best = alive.reduce((a, b) => (score(b) < score(a) ? b : a))
  const bestId = trials.indexOf(best) + 1
  const logs: TrialLog[] = trials.map((t, i) => ({
    id: i + 1,
    optimizer: t.config.optimizer,
    lr: t.config.lr,
    batchSize: t.config.batchSize,
    hidden: hiddenLabel(t.config.hidden),
    l2: t.config.l2,
    schedule: t.config.schedule,
    patience: t.config.patience,
    epochs: t.epochsRun,
    bestEpoch: t.bestEpoch,
    ...scoreOf(t),
    stoppedBy: stoppedBy.get(t) ?? t.stopReason ?? 'completed',
    seconds: t.seconds,
    selected: t === best,
    config: t.config,
    history: t.history.map((h) => ({ epoch: h.epoch, trainLoss: h.trainLoss, valLoss: h.valLoss, valAccuracy: h.valAccuracy })),
  }))
  for (const t of trials) if (t !== best) t.release()
  return {
    name, mode, trials: logs, best, bestId, rungs, concurrency: opts.concurrency, threads: opts.threads,
    seconds: (performance.now() - started) / 1000,
    epochsTrained: trials.reduce((s, t) => s + t.epochsRun, 0),
    epochsWithoutHalving: configs.length * opts.epochs,
  }
}

// ---------------------------------------------------------------------------------------------
// Logs

const TRIAL_COLUMNS = ['id', 'optimizer', 'lr', 'batchSize', 'hidden', 'l2', 'schedule', 'patience', 'epochs', 'bestEpoch', 'valLoss', 'valAccuracy', 'stoppedBy', 'seconds', 'selected'] as const

export function trialsCsv(trials: TrialLog[]): string {
  const cell = (v: unknown) => {
    const s = String(v)
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
  }
  // a `levers` column only when a trial used one (the study's files keep their columns)
  const withLevers = trials.some((t) => leversOf(t.config) !== '')
  const head: string[] = withLevers ? [...TRIAL_COLUMNS, 'levers'] : [...TRIAL_COLUMNS]
  return [head.join(','), ...trials.map((t) => [...TRIAL_COLUMNS.map((c) => cell(t[c])), ...(withLevers ? [cell(leversOf(t.config))] : [])].join(','))].join('\n') + '\n'
}

/** Issue F1's levers a configuration uses, in words ('' for none): the trials' `levers` column. */
export function leversOf(c: ModelConfig): string {
  const parts: string[] = []
  if (c.activation !== 'relu') parts.push(c.activation)
  const rates = Array.isArray(c.dropout) ? c.dropout : [c.dropout]
  if (rates.some((p) => p > 0)) parts.push(`dropout ${rates.join('/')}`)
  if (c.batchNorm) parts.push('batch norm')
  if (c.labelSmoothing > 0) parts.push(`label smoothing ${c.labelSmoothing}`)
  if (c.clipNorm !== undefined) parts.push(`clip ${c.clipNorm}`)
  if (c.optimizer === 'adamw') parts.push(`wd ${c.weightDecay}`)
  if (c.momentum > 0) parts.push(`${c.nesterov ? 'nesterov ' : ''}momentum ${c.momentum}`)
  if (c.warmupEpochs > 0) parts.push(`warm-up ${c.warmupEpochs}`)
  if (c.rotate > 0 || c.scale > 0 || c.shear > 0 || c.shift > 0 || c.elastic !== 'off') parts.push('augmentation')
  return parts.join('; ')
}

/** The trials as a Markdown table, sorted by validation loss (best first). */
export function trialsMarkdown(trials: TrialLog[]): string {
  const sorted = [...trials].sort((a, b) => a.valLoss - b.valLoss || a.id - b.id)
  const rows = sorted.map((t, rank) => [
    String(rank + 1), String(t.id) + (t.selected ? ' ✓' : ''), t.optimizer, String(Number(t.lr.toPrecision(3))), t.optimizer === 'gd' ? '—' : String(t.batchSize), t.hidden, String(t.l2), t.schedule, String(t.patience),
    String(t.epochs), String(t.bestEpoch), Number.isFinite(t.valLoss) ? t.valLoss.toFixed(4) : String(t.valLoss), Number.isFinite(t.valAccuracy) ? pct(t.valAccuracy) : '—', t.stoppedBy, t.seconds.toFixed(1),
  ])
  const head = ['rank', 'trial', 'optimizer', 'lr', 'batch', 'hidden', 'L2', 'schedule', 'patience', 'epochs', 'best epoch', 'val loss', 'val acc', 'stopped by', 'seconds']
  if (sorted.some((t) => leversOf(t.config) !== '')) {
    head.push('levers')
    sorted.forEach((t, k) => rows[k].push(leversOf(t.config) || '—'))
  }
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n') + '\n'
}

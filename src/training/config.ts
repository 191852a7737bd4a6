// The settings that decide one training run, their defaults (the study's, shared by `train` and
// the experiments) and their checks.
import type { OptimizerName } from '../engine/mlp'
import type { ScheduleName } from './schedule'

/** Everything that decides a training run (the seed fixes initial weights and batch order). */
export interface ModelConfig {
  hidden: number[]
  optimizer: OptimizerName
  lr: number
  batchSize: number
  l2: number
  beta1: number
  beta2: number
  eps: number
  epochs: number
  schedule: ScheduleName
  lrMin: number
  earlyStopping: boolean
  patience: number
  minDelta: number
  restoreBest: boolean
  seed: number
}

/** The study's defaults (train()'s), with `seed` to be given. */
export function resolveModelConfig(c: Partial<ModelConfig> & { seed: number }): ModelConfig {
  const optimizer = c.optimizer ?? 'adam'
  const lr = c.lr ?? (optimizer === 'adam' ? 1e-3 : 0.1)
  const cfg: ModelConfig = {
    hidden: c.hidden ?? [512],
    optimizer,
    lr,
    batchSize: c.batchSize ?? 32,
    l2: c.l2 ?? 1e-3,
    beta1: c.beta1 ?? 0.9,
    beta2: c.beta2 ?? 0.999,
    eps: c.eps ?? 1e-8,
    epochs: c.epochs ?? 200,
    schedule: c.schedule ?? 'constant',
    lrMin: c.lrMin ?? lr / 100,
    earlyStopping: c.earlyStopping ?? true,
    patience: c.patience ?? 20,
    minDelta: c.minDelta ?? 0,
    restoreBest: c.restoreBest ?? true,
    seed: c.seed,
  }
  checkModelConfig(cfg)
  return cfg
}

export function checkModelConfig(c: ModelConfig): void {
  const bad = (what: string, v: unknown) => { throw new RangeError(`${what}, got ${JSON.stringify(v)}`) }
  if (!Array.isArray(c.hidden) || !c.hidden.every((w) => Number.isInteger(w) && w >= 1)) bad('hidden must be a list of positive integer widths', c.hidden)
  if (!['gd', 'sgd', 'adam'].includes(c.optimizer)) bad('optimizer must be gd, sgd or adam', c.optimizer)
  if (!(c.lr > 0 && Number.isFinite(c.lr))) bad('lr must be a finite number > 0', c.lr)
  if (!(Number.isInteger(c.batchSize) && c.batchSize >= 1)) bad('batchSize must be an integer ≥ 1', c.batchSize)
  if (!(c.l2 >= 0 && Number.isFinite(c.l2))) bad('l2 must be a finite number ≥ 0', c.l2)
  if (!(Number.isInteger(c.epochs) && c.epochs >= 1)) bad('epochs must be an integer ≥ 1', c.epochs)
  if (!['constant', 'linear', 'exponential'].includes(c.schedule)) bad('schedule must be constant, linear or exponential', c.schedule)
  if (!(Number.isInteger(c.patience) && c.patience >= 0)) bad('patience must be an integer ≥ 0', c.patience)
  if (!Number.isSafeInteger(c.seed)) bad('seed must be an integer', c.seed)
  for (const k of ['beta1', 'beta2'] as const) if (!(typeof c[k] === 'number' && c[k] >= 0 && c[k] < 1)) bad(`${k} must be a number in [0, 1)`, c[k])
  if (!(c.eps > 0 && Number.isFinite(c.eps))) bad('eps must be a finite number > 0', c.eps)
  for (const k of ['lrMin', 'minDelta'] as const) if (!(c[k] >= 0 && Number.isFinite(c[k]))) bad(`${k} must be a finite number ≥ 0`, c[k])
  for (const k of ['earlyStopping', 'restoreBest'] as const) if (typeof c[k] !== 'boolean') bad(`${k} must be true or false`, c[k])
}

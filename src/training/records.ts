// The records a training run produces and the configuration it runs with, shared by the loop,
// its checkpoints, the run directory and the experiments (type-only, so nothing imports in a circle).
import type { MLP } from '../engine/mlp'
import type { Inputs } from '../data/inputs'
import type { Summary } from '../output/metrics'
import type { ModelConfig } from './config'

export interface EpochRecord {
  /** 1-based. */
  epoch: number
  lr: number
  /** Mean over the epoch's batches, each measured before its update. */
  trainLoss: number
  trainAccuracy: number
  valLoss: number
  valAccuracy: number
  seconds: number
}

export interface SplitMetrics extends Summary {
  loss: number
  confusion: number[]
  samples: number
}

/** A run's full configuration: a model configuration (config.ts) placed on data, with threads and split. */
export type ResolvedConfig = Omit<ModelConfig, 'hidden'> & {
  layers: number[]
  threads: number
  split: { train: number; validation: number; test: number }
}

export type StopReason = 'completed' | 'early-stopping' | 'diverged'

export interface TrainResult {
  model: MLP
  config: ResolvedConfig
  inputs: Inputs
  history: EpochRecord[]
  /** 1-based epoch of the lowest validation loss. */
  bestEpoch: number
  /** 1-based epoch whose weights the model holds at the end (bestEpoch when restored). */
  weightsEpoch: number
  stopReason: StopReason
  /** Present when the run diverged: what happened, in words. */
  divergence?: string
  /** `test` is null when the split's test part is empty. */
  metrics: { train: SplitMetrics; validation: SplitMetrics; test: SplitMetrics | null }
  seconds: number
  runDir?: string
}


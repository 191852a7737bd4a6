// What the study produces, as experiment.json records it: every model's result, the comparison
// table's rows, the agreement of engine and reference, the searches' summaries. Types (and the JSON
// text they are written as) only, so that the phases and the files can name them without
// importing one another.
import { stringifyNonFinite } from '../output/json'
import type { ModelConfig } from '../training/trial'
import type { EpochRecord, SplitMetrics } from '../training/records'
import type { SearchResult } from './search'
import type { NoiseSummary } from './robustness'
import type { ModelId, ResolvedExperiment } from './config'

export interface ModelResult {
  id: ModelId
  engine: 'native' | 'reference'
  config: ModelConfig
  layers: number[]
  parameters: number
  history: EpochRecord[]
  bestEpoch: number
  weightsEpoch: number
  stoppedBy: string
  seconds: number
  techniques: string
  notes: string
  metrics: { validation: SplitMetrics; test: SplitMetrics; train?: SplitMetrics }
  dir: string
}

export interface TableRow {
  model: ModelId
  testAccuracy: number
  testLoss: number
  balancedAccuracy: number
  macroF1: number
  techniques: string
  notes: string
  seconds: number
}

export interface Agreement {
  /** How the two runs were made to see the same batches. */
  method: string
  epochsConfigured: number
  epochsCompared: number
  stoppedBy: string
  budgetSeconds: number
  referenceSeconds: number
  referenceOnWorker: boolean
  /** Per epoch: |engine − reference| / reference training loss (and validation loss). */
  trainLossRelDiff: number[]
  valLossRelDiff: number[]
  maxTrainLossRelDiffFirst10: number
  engine: { trainLoss: number[]; bestEpoch: number; testAccuracy: number; testLoss: number }
  reference: { trainLoss: number[]; bestEpoch: number; testAccuracy: number; testLoss: number }
  testAccuracyDiffPoints: number
  maxAbsWeightDiff: number
  /** The engine's prefix run repeats M1's first epochs bit for bit (same seed, order, weights). */
  prefixMatchesM1: boolean
  criteria: { trainLossRelFirst10: number; testAccuracyPoints: number }
  /** The criteria of the study: training loss within 1% over epochs 1–10, test accuracy within 0.5 points. */
  pass: { trainLoss: boolean; testAccuracy: boolean }
  /** Epoch at which test accuracy is compared (the epoch whose weights M2 ends with). */
  atEpoch: number
  /**
   * The engine against twins of itself whose weights are jittered by about one float32 rounding at
   * the start and after every step: how far this configuration carries arithmetic noise. Engine
   * and reference differ in every rounding (float32 against float64), so they cannot be expected
   * to agree more closely than this.
   */
  sensitivity: { perturbation: string; twins: number; trainLossRelDiff: number[]; maxTrainLossRelDiffFirst10: number; testAccuracy: number[]; testAccuracyDiffPoints: number; factor: number; factorAccuracy: number }
  /**
   * Epochs 1–10 re-synchronised: the reference trains each epoch from the engine's exact state at
   * its start (reference-trial.ts runResync), so differences cannot build up from epoch to epoch.
   */
  resync: { method: string; epochs: number[]; engineLoss: number[]; referenceLoss: number[]; trainLossRelDiff: number[]; maxTrainLossRelDiff: number; maxAbsWeightDiff: number[]; pass: boolean }
  /**
   * agree: the criteria hold as stated (free-running, from the same initial weights);
   * float32-sensitivity: the free-running training losses drift apart by more than 1%, but every
   * re-synchronised epoch agrees within 1%, the largest drift over epochs 1–10 is within 10× of
   * the largest that rounding-size jitter makes the engine drift from itself, and test accuracy
   * agrees; disagree: anything else.
   */
  verdict: 'agree' | 'float32-sensitivity' | 'disagree'
}

/** Attached as `checkpoint` to the AbortError of an interrupted experiment. */
export interface ExperimentInterruption {
  dir: string
  /** The checkpoint folder, or undefined when it could not be written (see `error`). */
  checkpoint?: string
  error?: Error
}

export interface ExperimentResult {
  dir: string
  config: ResolvedExperiment
  models: ModelResult[]
  table: TableRow[]
  search?: SearchSummary
  architecture?: SearchSummary
  /** M5's candidates (a search without halving). */
  m5?: SearchSummary
  agreement?: Agreement
  /** Every model on the test split under input noise (robustness.ts), unless `noise: false`. */
  noise?: NoiseSummary
  seconds: number
  timings: Record<string, number>
  reportPath?: string
}

/** A search as experiment.json records it: its SearchResult without the trials' logs and model, plus its files. */
export interface SearchSummary extends Pick<SearchResult, 'name' | 'mode' | 'bestId' | 'rungs' | 'concurrency' | 'threads' | 'seconds' | 'epochsTrained' | 'epochsWithoutHalving'> {
  /** How many trials (their logs are in the files). */
  trials: number
  best: { config: ModelConfig; valLoss: number; valAccuracy: number; bestEpoch: number }
  files: { csv: string; json: string; markdown: string; plot?: string }
}

/** The text of the study's JSON files: non-finite numbers (a diverged loss) as strings, which JSON cannot hold. */
export const json = (v: unknown): string => stringifyNonFinite(v, 2) + '\n'

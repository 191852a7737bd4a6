// The settings of an experiment: what `--config exp.json` holds, their defaults, and the resolved
// configuration (experiment-config.json) that reproduces an experiment number for number.
import { availableParallelism } from 'node:os'
import { randomInt } from 'node:crypto'
import { resolve } from 'node:path'
import { z } from 'zod'
import { PartialModelConfigSchema, RUN_FIELDS, parseWith, ranges, readJsonObject, resolveModelConfig, show, type ModelConfig } from '../training/config'
import { DEFAULT_GRID_SPACE, DEFAULT_RANDOM_SPACE, SearchSpaceSchema, searchConfigs, type HalvingOptions, type SearchSpace } from './search'
import type { InputOptions } from '../data/inputs'
import type { SplitFractions } from '../data/split'

export type ModelId = 'M0' | 'M1' | 'M2' | 'M3' | 'M4'
export const MODEL_IDS: ModelId[] = ['M0', 'M1', 'M2', 'M3', 'M4']

export interface SearchConfig {
  mode?: 'grid' | 'random'
  trials?: number
  epochs?: number
  halving?: Partial<HalvingOptions> | false
  concurrency?: number
  /** Engine threads per trial. */
  threads?: number
  space?: Partial<SearchSpace>
  base?: Partial<ModelConfig>
}

export interface ArchitectureConfig {
  depths?: number[]
  widths?: number[]
  halving?: Partial<HalvingOptions> | false
  concurrency?: number
  threads?: number
}

/** What `--config exp.json` holds; every field optional. Flags override it. */
export interface ExperimentConfig {
  seed?: number
  split?: SplitFractions
  /** Engine threads (default: all cores). */
  threads?: number
  data?: Pick<InputOptions, 'images' | 'labels' | 'dataset' | 'cacheDir' | 'classmap'>
  /** Which models to run (M2 and M3 need M1's search, which then runs even if M1 is not listed). */
  models?: ModelId[]
  M0?: Partial<ModelConfig>
  M4?: Partial<ModelConfig>
  search?: SearchConfig
  architecture?: ArchitectureConfig
  reference?: { budgetSeconds?: number }
}

export interface ResolvedExperiment {
  seed: number
  split: SplitFractions
  threads: number
  data: ExperimentConfig['data']
  models: ModelId[]
  M0: ModelConfig
  M4: ModelConfig
  search: { mode: 'grid' | 'random'; trials: number; epochs: number; halving: HalvingOptions | false; concurrency: number; threads: number; space: SearchSpace; base: Partial<ModelConfig> }
  architecture: { depths: number[]; widths: number[]; halving: HalvingOptions | false; concurrency: number; threads: number }
  reference: { budgetSeconds: number }
}

/** The settings that define an experiment (what resume takes from the checkpoint instead). */
export const RUN_KEYS = ['seed', 'split', 'threads', 'data', 'models', 'M0', 'M4', 'search', 'architecture', 'reference'] as const satisfies readonly (keyof ExperimentConfig)[]

export const DEFAULT_M0: Partial<ModelConfig> = { hidden: [100, 80], optimizer: 'gd', lr: 0.1, l2: 0, epochs: 500, schedule: 'constant', earlyStopping: false, restoreBest: false }
export const DEFAULT_M4: Partial<ModelConfig> = { hidden: [1024, 1024], optimizer: 'adam', lr: 1e-3, batchSize: 32, l2: 0, epochs: 30, schedule: 'constant', earlyStopping: false, restoreBest: false }
export const DEFAULT_REFERENCE_BUDGET = 480
/**
 * Trials side by side. Measured on the 2-core build machine (bench/trial-concurrency.ts, three
 * typical search models, 2 trials × 3 epochs, medians of 3 rounds): two 1-thread trials at a time
 * 3.85 s against one 2-thread trial after another 3.75 s at load 2; 6.09 s against 6.19 s under
 * heavy load from other jobs — a tie within noise, because these GEMMs (batch 32–128, widths
 * ≤ 512) gain little from a second thread. Two at a time is kept: it also keeps the second core
 * busy during the per-batch JavaScript work and the validation passes. README "Experiments and reports".
 */
export const DEFAULT_SEARCH_CONCURRENCY = 2

// The experiment file's schema (zod, strict at every level: unknown keys are errors). Model
// settings (M0, M4, search.base) are partial model configurations of the one schema
// (training/config.ts), and the search space checks each candidate with its setting's schema.
const halvingSchema = z.union([
  z.literal(false),
  z.strictObject({ minEpochs: ranges.intAtLeast(1), eta: z.number().gt(1).meta({ must: 'must be a number > 1' }) }).partial(),
]).meta({ must: 'must be false or {minEpochs, eta}' })
const gt0 = z.number().gt(0)

export const ExperimentFileSchema = z.strictObject({
  seed: z.number().int().min(0).meta({ must: 'must be a non-negative integer' }),
  split: z.strictObject({ train: gt0, validation: gt0, test: gt0 }).meta({ must: 'must give positive train, validation and test fractions' }),
  threads: ranges.intAtLeast(1),
  data: z.strictObject({ images: RUN_FIELDS.images, labels: RUN_FIELDS.labels, dataset: RUN_FIELDS.dataset, cacheDir: RUN_FIELDS.cacheDir, classmap: RUN_FIELDS.classmap }).partial(),
  models: z.array(ranges.oneOf(MODEL_IDS as [ModelId, ...ModelId[]])).meta({ must: `must be a list of model ids (${MODEL_IDS.join(', ')})` }),
  M0: PartialModelConfigSchema,
  M4: PartialModelConfigSchema,
  search: z.strictObject({
    mode: ranges.oneOf(['grid', 'random']),
    trials: ranges.intAtLeast(0),
    epochs: ranges.intAtLeast(1),
    halving: halvingSchema,
    concurrency: ranges.intAtLeast(1),
    threads: ranges.intAtLeast(1),
    space: SearchSpaceSchema.partial(),
    base: PartialModelConfigSchema,
  }).partial(),
  architecture: z.strictObject({
    depths: z.array(z.number().int().min(0)).min(1).meta({ must: 'must be a non-empty list of hidden-layer counts ≥ 0' }),
    widths: z.array(z.number().int().min(1)).min(1).meta({ must: 'must be a non-empty list of positive integer widths' }),
    halving: halvingSchema,
    concurrency: ranges.intAtLeast(1),
    threads: ranges.intAtLeast(1),
  }).partial(),
  reference: z.strictObject({ budgetSeconds: z.number().gt(0).meta({ must: 'must be > 0' }) }).partial(),
}).partial()

// what the schema accepts is an ExperimentConfig
const _fileIsConfig: z.infer<typeof ExperimentFileSchema> extends ExperimentConfig ? true : never = true
void _fileIsConfig

/** Today's message for a model id that does not exist (before the schema's, which would say less). */
function checkModels(models: unknown): void {
  if (!Array.isArray(models)) return
  for (const m of models) if (!MODEL_IDS.includes(m)) throw new RangeError(`unknown model ${show(m)}: choose from ${MODEL_IDS.join(', ')}`)
}

/** The settings of `o` that define an experiment (RUN_KEYS; other keys are runExperiment's own), checked by the schema. */
export function checkExperimentConfig(o: ExperimentConfig, where = ''): ExperimentConfig {
  const run = Object.fromEntries(RUN_KEYS.filter((k) => o[k] !== undefined).map((k) => [k, o[k]]))
  checkModels(run.models)
  return parseWith(ExperimentFileSchema, run, where) as ExperimentConfig
}

/** Fills every default; the result, saved as experiment-config.json, reproduces the experiment. */
export function resolveExperiment(options: ExperimentConfig): ResolvedExperiment {
  // every setting checked by the schema first: nothing fails later, after minutes of training
  const o = checkExperimentConfig(options)
  const seed = o.seed ?? randomInt(0, 2 ** 31)
  const threads = o.threads ?? availableParallelism()
  const models = o.models ?? MODEL_IDS
  const s = o.search ?? {}
  const mode = s.mode ?? 'random'
  const defaultSpace = mode === 'grid' ? DEFAULT_GRID_SPACE : DEFAULT_RANDOM_SPACE
  const halving = (h: Partial<HalvingOptions> | false | undefined): HalvingOptions | false => (h === false ? false : { minEpochs: h?.minEpochs ?? 3, eta: h?.eta ?? 3 })
  const conc = s.concurrency ?? Math.min(DEFAULT_SEARCH_CONCURRENCY, threads)
  const a = o.architecture ?? {}
  const budget = o.reference?.budgetSeconds ?? DEFAULT_REFERENCE_BUDGET
  const model = (id: 'M0' | 'M4', defaults: Partial<ModelConfig>) => {
    try {
      return resolveModelConfig({ ...defaults, ...o[id], seed: o[id]?.seed ?? seed })
    } catch (e) {
      throw e instanceof RangeError ? new RangeError(`${id}: ${e.message}`) : e
    }
  }
  const resolved: ResolvedExperiment = {
    seed,
    split: o.split ?? { train: 0.6, validation: 0.2, test: 0.2 },
    threads,
    data: o.data ?? {},
    models: MODEL_IDS.filter((m) => models.includes(m)),
    M0: model('M0', DEFAULT_M0),
    M4: model('M4', DEFAULT_M4),
    search: {
      mode,
      trials: s.trials ?? (mode === 'grid' ? 0 : 12),
      epochs: s.epochs ?? 30,
      halving: halving(s.halving),
      concurrency: conc,
      threads: s.threads ?? Math.max(1, Math.floor(threads / conc)),
      space: { ...defaultSpace, ...s.space, lr: { ...defaultSpace.lr, ...s.space?.lr } },
      base: s.base ?? {},
    },
    architecture: {
      depths: a.depths ?? [1, 2],
      widths: a.widths ?? [128, 256, 512, 1024],
      halving: halving(a.halving),
      concurrency: a.concurrency ?? 1,
      threads: a.threads ?? Math.max(1, threads - 1),
    },
    reference: { budgetSeconds: budget },
  }
  // the search's candidates (and so search.base with each of them) resolve, when a search will run
  if (resolved.models.some((m) => m === 'M1' || m === 'M2' || m === 'M3')) searchConfigs(resolved.search, seed)
  return resolved
}

/** The resolved configuration as `--config` reads it back (data paths included, seed fixed). */
export function configForFile(cfg: ResolvedExperiment): ResolvedExperiment {
  const d = { ...cfg.data }
  for (const k of ['images', 'labels', 'classmap', 'cacheDir'] as const) if (d[k]) d[k] = resolve(d[k]!)
  return { ...cfg, data: d }
}

/** Reads a JSON experiment configuration (the `--config` file), with a clear message when it is bad. */
export async function readExperimentConfig(path: string): Promise<ExperimentConfig> {
  const v = await readJsonObject(path, 'a JSON object (see README "Experiments and reports")')
  try {
    checkModels((v as ExperimentConfig).models)
    return parseWith(ExperimentFileSchema, v) as ExperimentConfig
  } catch (e) {
    throw e instanceof RangeError ? new RangeError(`${path}: ${e.message}`) : e
  }
}


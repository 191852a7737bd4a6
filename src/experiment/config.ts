// The settings of an experiment: what `--config exp.json` holds, their defaults, and the resolved
// configuration (experiment-config.json) that reproduces an experiment number for number.
import { availableParallelism } from 'node:os'
import { randomInt } from 'node:crypto'
import { resolve } from 'node:path'
import { z } from 'zod'
import { PartialModelConfigSchema, RUN_FIELDS, parseWith, ranges, readJsonObject, resolveModelConfig, show, type ModelConfig } from '../training/config'
import { DEFAULT_GRID_SPACE, DEFAULT_RANDOM_SPACE, SearchSpaceSchema, searchConfigs, type HalvingOptions, type SearchSpace } from './search'
import { PRESETS } from '../training/presets'
import { NOISE_KINDS, checkNoiseSpec, type NoiseKind } from '../output/noise'
import type { InputOptions } from '../data/inputs'
import type { SplitFractions } from '../data/split'

export type ModelId = 'M0' | 'M1' | 'M2' | 'M3' | 'M4' | 'M5'
export const MODEL_IDS: ModelId[] = ['M0', 'M1', 'M2', 'M3', 'M4', 'M5']

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

/** M5: the best by validation loss of a few modern candidates (each `base` + its own settings). */
export interface M5Config {
  /** Settings every candidate starts from; default the `modern` preset (training/presets.ts). */
  base?: Partial<ModelConfig>
  /** The candidates, each a partial model configuration over `base`; default DEFAULT_M5_CANDIDATES. */
  candidates?: Partial<ModelConfig>[]
  /** Candidates training side by side, and engine threads for each. */
  concurrency?: number
  threads?: number
}

/** Levels per kind of input noise (output/noise.ts), each in that kind's unit; the kinds listed are the ones run. */
export type NoiseLevels = Partial<Record<NoiseKind, number[]>>

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
  M5?: M5Config
  search?: SearchConfig
  architecture?: ArchitectureConfig
  reference?: { budgetSeconds?: number }
  /** Robustness of every model on the test split under input noise: the levels per kind, or false for none. */
  noise?: NoiseLevels | false
}

export interface ResolvedExperiment {
  seed: number
  split: SplitFractions
  threads: number
  data: ExperimentConfig['data']
  models: ModelId[]
  M0: ModelConfig
  M4: ModelConfig
  /** The candidates resolved (base merged in, seed fixed). */
  M5: { candidates: ModelConfig[]; concurrency: number; threads: number }
  search: { mode: 'grid' | 'random'; trials: number; epochs: number; halving: HalvingOptions | false; concurrency: number; threads: number; space: SearchSpace; base: Partial<ModelConfig> }
  architecture: { depths: number[]; widths: number[]; halving: HalvingOptions | false; concurrency: number; threads: number }
  reference: { budgetSeconds: number }
  noise: NoiseLevels | false
}

/** The settings that define an experiment (what resume takes from the checkpoint instead). */
export const RUN_KEYS = ['seed', 'split', 'threads', 'data', 'models', 'M0', 'M4', 'M5', 'search', 'architecture', 'reference', 'noise'] as const satisfies readonly (keyof ExperimentConfig)[]

export const DEFAULT_M0: Partial<ModelConfig> = { hidden: [100, 80], optimizer: 'gd', lr: 0.1, l2: 0, epochs: 500, schedule: 'constant', earlyStopping: false, restoreBest: false }
export const DEFAULT_M4: Partial<ModelConfig> = { hidden: [1024, 1024], optimizer: 'adam', lr: 1e-3, batchSize: 32, l2: 0, epochs: 30, schedule: 'constant', earlyStopping: false, restoreBest: false }
/**
 * M5's candidates over the modern preset: the preset itself, and the preset without dropout and
 * label smoothing (augmentation, AdamW and one-cycle only), which had the lowest validation loss of
 * the variants measured on the 8,000 KMNIST images; two fill the two cores in one round. README
 * "Experiments and reports" has the measurements.
 */
export const DEFAULT_M5_CANDIDATES: Partial<ModelConfig>[] = [{}, { dropout: 0, labelSmoothing: 0 }]
/**
 * Input noise for the robustness table, on the 0..255 pixel scale: Gaussian σ of 10%, 20% and 30%
 * of the range; salt and pepper on 5%, 10% and 20% of the pixels; a black square of side 7, 10 and
 * 14 pixels (6%, 13% and 25% of a 28×28 image). Mild to heavy, every level still legible to a person.
 */
export const DEFAULT_NOISE: NoiseLevels = { gaussian: [25.5, 51, 76.5], 'salt-pepper': [0.05, 0.1, 0.2], occlusion: [7, 10, 14] }
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
  M5: z.strictObject({
    base: PartialModelConfigSchema,
    candidates: z.array(PartialModelConfigSchema).min(1).meta({ must: 'must be a non-empty list of model settings' }),
    concurrency: ranges.intAtLeast(1),
    threads: ranges.intAtLeast(1),
  }).partial(),
  reference: z.strictObject({ budgetSeconds: z.number().gt(0).meta({ must: 'must be > 0' }) }).partial(),
  noise: z.union([
    z.literal(false),
    z.strictObject(Object.fromEntries(NOISE_KINDS.map((k) => [k, z.array(z.number()).min(1)])) as Record<NoiseKind, z.ZodArray<z.ZodNumber>>).partial()
      .refine((o) => Object.keys(o).length > 0),
  ]).meta({ must: `must be false or levels per kind, e.g. {"gaussian": [25.5, 51]} (kinds: ${NOISE_KINDS.join(', ')})` }),
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
  const c = parseWith(ExperimentFileSchema, run, where) as ExperimentConfig
  checkNoise(c.noise, where)
  return c
}

/** Each noise level in its kind's range (output/noise.ts), the message naming the place. */
function checkNoise(noise: ExperimentConfig['noise'], where = ''): void {
  if (!noise) return
  for (const [kind, levels] of Object.entries(noise) as [NoiseKind, number[]][]) {
    try {
      checkNoiseSpec({ kind, levels })
    } catch (e) {
      throw new RangeError(`${where ? `${where}: ` : ''}noise.${kind}: ${(e as Error).message}`)
    }
  }
}

/** M5's candidates: `base` (default the modern preset) and each candidate over it, resolved with the study's seed. */
function m5Candidates(m5: M5Config | undefined, seed: number): ModelConfig[] {
  const base: Partial<ModelConfig> = m5?.base ?? PRESETS.modern
  return (m5?.candidates ?? DEFAULT_M5_CANDIDATES).map((c, i) => {
    try {
      return resolveModelConfig({ ...base, ...c, seed: c.seed ?? base.seed ?? seed } as Partial<ModelConfig> & { seed: number })
    } catch (e) {
      throw e instanceof RangeError ? new RangeError(`M5.candidates[${i}]: ${e.message}`) : e
    }
  })
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
  const m5conc = o.M5?.concurrency ?? Math.min(DEFAULT_SEARCH_CONCURRENCY, threads)
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
    M5: { candidates: m5Candidates(o.M5, seed), concurrency: m5conc, threads: o.M5?.threads ?? Math.max(1, Math.floor(threads / m5conc)) },
    reference: { budgetSeconds: budget },
    noise: o.noise === undefined ? DEFAULT_NOISE : o.noise,
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
    const c = parseWith(ExperimentFileSchema, v) as ExperimentConfig
    checkNoise(c.noise)
    return c
  } catch (e) {
    throw e instanceof RangeError ? new RangeError(`${path}: ${e.message}`) : e
  }
}


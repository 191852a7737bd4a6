// The one schema of a model configuration: every setting of a training run declared once — its
// type and range (a zod schema), its default (the study's), its meaning, its CLI flag. From that
// declaration derive the ModelConfig type, resolveModelConfig/checkModelConfig, the flags of
// `kana-native train` (cli/args.ts), the `--config` JSON of train and of the experiment (strict:
// unknown keys are errors), the search space's per-value checks, the checks of checkpoints and of
// model-file metadata, and the README's option table (cli/options-table.ts).
//
// Why zod (v4): maintained and widely used, types inferred from the schema (z.infer, so the
// declaration is also the TypeScript type), strict objects for "unknown key" errors, metadata on
// any schema (.meta) to carry flag names and help, and JSON Schema export (z.toJSONSchema) for
// editors and other tools. Valibot would have done as well; zod was already the design's pick.
//
// Adding a setting (issue F1 adds many) = one entry in FIELDS below: its flag, its --config key,
// its checks everywhere, its README row follow. Cross-field constraints go in RULES.
import { z } from 'zod'
import type { MLPOptions, OptimizerName } from '../engine/mlp'
import { learningRate, type ScheduleName } from './schedule'

// ---------------------------------------------------------------------------------------------
// Ranges: a zod schema and the same range in words, for messages `${setting} ${must}, got ${value}`.

/** A value range: the schema, with the words that say it (`must be …`) in its metadata. */
const range = <S extends z.ZodType>(schema: S, must: string): S => schema.meta({ must }) as S

const words = (xs: readonly string[]) => (xs.length > 1 ? `${xs.slice(0, -1).join(', ')} or ${xs[xs.length - 1]}` : xs.join(''))

/** Range constructors shared by the model settings, the run options and the experiment file. */
export const ranges = {
  /** A finite number > 0 (z.number() refuses NaN and ±Infinity). */
  positive: () => range(z.number().gt(0), 'must be a finite number > 0'),
  nonNegative: () => range(z.number().min(0), 'must be a finite number ≥ 0'),
  /** [0, 1), e.g. Adam's β. */
  unit: () => range(z.number().min(0).lt(1), 'must be a number in [0, 1)'),
  /** A safe integer ≥ min (z.number().int() is safe-integer only). */
  intAtLeast: (min: number) => range(z.number().int().min(min), `must be an integer ≥ ${min}`),
  integer: () => range(z.number().int(), 'must be an integer'),
  boolean: () => range(z.boolean(), 'must be true or false'),
  oneOf: <const T extends readonly [string, ...string[]]>(xs: T) => range(z.enum(xs), `must be ${words(xs)}`),
  widths: () => range(z.array(z.number().int().min(1)), 'must be a list of positive integer widths'),
  string: () => range(z.string(), 'must be a string'),
  /** (0, 1), e.g. one-cycle's pctStart. */
  openUnit: () => range(z.number().gt(0).lt(1), 'must be a number in (0, 1)'),
  /** A dropout rate in [0, 1), or one per hidden layer. */
  rates: () => range(z.union([z.number().min(0).lt(1), z.array(z.number().min(0).lt(1))]), 'must be a rate in [0, 1) or a list of one rate in [0, 1) per hidden layer'),
}

// ---------------------------------------------------------------------------------------------
// The fields

/** The resolved fields so far (declaration order): what a dependent default may read. */
type Partly = Record<string, unknown>

export interface FieldSpec<S extends z.ZodType = z.ZodType> {
  /** Type and range. */
  schema: S
  /** The study's default, or a function of the settings declared before it; none: required (seed), or unset when the schema is .optional() (e.g. a clip norm that is off unless given). */
  default?: z.infer<S> | ((c: Partly) => z.infer<S>)
  /** What it means: --help, the README table, the JSON Schema's description. */
  doc: string
  /** The default as shown (--help, README) when it is not a plain value. */
  defaultText?: string
  /** README placeholder for the value, e.g. 'η0'. */
  arg?: string
  /** CLI flag: default the kebab-case of the key; false for none. */
  flag?: string | false
  /** How the flag's text becomes a value (list-valued settings); default: yargs' own number/boolean/choice. */
  fromFlag?: (text: string) => unknown
}

const field = <S extends z.ZodType>(spec: FieldSpec<S>): FieldSpec<S> => spec

/** Comma-separated numbers, e.g. `--hidden 100,80` (the CLI names the flag in the error). */
export const numberList = (s: string): number[] => {
  const xs = String(s).split(',').map((x) => x.trim()).filter(Boolean).map(Number)
  if (xs.some((x) => !Number.isFinite(x))) throw new Error(`must be a comma-separated list of numbers, got "${s}"`)
  return xs
}

/** `--dropout 0.2` → 0.2 (every hidden layer), `--dropout 0.2,0.1` → one rate per hidden layer. */
export const rateList = (s: string): number | number[] => {
  const xs = numberList(s)
  return xs.length === 1 && !String(s).includes(',') ? xs[0] : xs
}

export const OPTIMIZERS = ['gd', 'sgd', 'adam', 'adamw'] as const satisfies readonly OptimizerName[]
export const ACTIVATIONS = ['relu', 'leaky-relu', 'silu', 'gelu'] as const
const adamLike = (o: unknown) => o === 'adam' || o === 'adamw'
export const SCHEDULES = ['constant', 'linear', 'exponential', 'cosine', 'one-cycle'] as const satisfies readonly ScheduleName[]

/**
 * Every setting of a training run. The order is the order of ModelConfig's keys (config.json,
 * checkpoints and the experiment's trial comparison see it) and of dependent defaults.
 */
export const FIELDS = {
  hidden: field({ schema: ranges.widths(), default: [512], arg: 'W[,W…]', fromFlag: numberList, doc: 'hidden layer widths (`100,80` for two layers)' }),
  optimizer: field({ schema: ranges.oneOf(OPTIMIZERS), default: 'adam', doc: 'full-batch gradient descent, mini-batch SGD (reshuffled every epoch), Adam, AdamW (Adam with decoupled weight decay, `--weight-decay`)' }),
  lr: field({ schema: ranges.positive(), default: (c) => (adamLike(c.optimizer) ? 1e-3 : 0.1), defaultText: '1e-3 (adam, adamw), 0.1 (gd/sgd)', arg: 'η0', doc: 'initial learning rate' }),
  batchSize: field({ schema: ranges.intAtLeast(1), default: 32, arg: 'm', doc: 'mini-batch size (sgd, adam)' }),
  l2: field({ schema: ranges.nonNegative(), default: 1e-3, arg: 'λ', doc: 'L2: (λ/2)·Σ‖W‖² added to the loss, weights only' }),
  beta1: field({ schema: ranges.unit(), default: 0.9, arg: 'β1', doc: 'Adam β1' }),
  beta2: field({ schema: ranges.unit(), default: 0.999, arg: 'β2', doc: 'Adam β2' }),
  eps: field({ schema: ranges.positive(), default: 1e-8, arg: 'ε', doc: 'Adam ε' }),
  epochs: field({ schema: ranges.intAtLeast(1), default: 200, arg: 'T', doc: 'maximum epochs' }),
  schedule: field({ schema: ranges.oneOf(SCHEDULES), default: 'constant', doc: 'learning rate of epoch t < T: constant η_t = η0; linear η_t = max(η0(1 − t/T), η_min); exponential η_t = η0·γ^t with γ = (η_min/η0)^{1/T}; cosine η_t = η_min + (η0 − η_min)(1 + cos(πt/T))/2; one-cycle PyTorch\'s OneCycleLR per epoch (peak η0, see `--pct-start`); all after the `--warmup-epochs` (see *Schedules*)' }),
  lrMin: field({ schema: ranges.nonNegative(), default: (c) => (c.lr as number) / 100, defaultText: 'lr/100', arg: 'η_min', doc: 'floor / end point of the schedule' }),
  earlyStopping: field({ schema: ranges.boolean(), default: true, doc: 'stop when validation loss has not improved for `--patience` epochs' }),
  patience: field({ schema: ranges.intAtLeast(0), default: 20, arg: 'p', doc: 'epochs without a validation improvement before early stopping' }),
  minDelta: field({ schema: ranges.nonNegative(), default: 0, arg: 'd', doc: 'an improvement must lower the best validation loss by more than d' }),
  restoreBest: field({ schema: ranges.boolean(), default: true, doc: 'end with the weights of the best validation epoch' }),
  warmupEpochs: field({ schema: ranges.intAtLeast(0), default: 0, arg: 'W', doc: 'linear warm-up: epoch t < W runs at (t+1)/(W+1) of the schedule\'s first rate, then the schedule runs over the remaining T − W epochs (W < T)' }),
  pctStart: field({ schema: ranges.openUnit(), default: 0.3, arg: 'p', doc: 'one-cycle: fraction of the epochs spent rising to η0' }),
  divFactor: field({ schema: ranges.positive(), default: 25, arg: 'd', doc: 'one-cycle: the first rate is η0/d' }),
  finalDivFactor: field({ schema: ranges.positive(), default: 1e4, arg: 'f', doc: 'one-cycle: the last rate is η0/(d·f)' }),
  activation: field({ schema: ranges.oneOf(ACTIVATIONS), default: 'relu', doc: 'hidden-layer activation: ReLU, leaky ReLU (`--leaky-slope`), SiLU x·σ(x), GELU (exact erf form)' }),
  leakySlope: field({ schema: ranges.nonNegative(), default: 0.01, arg: 'α', doc: 'leaky-relu: slope for x ≤ 0 (refused with another activation)' }),
  dropout: field({ schema: ranges.rates(), default: 0, arg: 'p[,p…]', fromFlag: rateList, doc: 'inverted dropout after each hidden activation, training only: one rate, or one per hidden layer' }),
  batchNorm: field({ schema: ranges.boolean(), default: false, doc: 'batch normalisation of the hidden layers, before the activation (running statistics in evaluation and prediction)' }),
  bnMomentum: field({ schema: ranges.unit(), default: 0.1, arg: 'm', doc: 'batch norm: momentum of the running statistics (PyTorch\'s)' }),
  bnEps: field({ schema: ranges.positive(), default: 1e-5, arg: 'ε', doc: 'batch norm: ε in √(σ² + ε)' }),
  labelSmoothing: field({ schema: ranges.unit(), default: 0, arg: 'ε', doc: 'label smoothing: training targets (1 − ε)·onehot + ε/K; reported losses stay the plain cross-entropy' }),
  clipNorm: field({ schema: ranges.positive().optional(), defaultText: 'off', arg: 'c', doc: 'clip the gradients to this global L2 norm (over W, b, γ, β, before L2) before each step' }),
  weightDecay: field({ schema: ranges.nonNegative(), default: (c) => (c.optimizer === 'adamw' ? 1e-2 : 0), defaultText: '1e-2 (adamw), 0', arg: 'λw', doc: 'AdamW\'s decoupled weight decay W ← W·(1 − η·λw), weights only (adamw only)' }),
  momentum: field({ schema: ranges.unit(), default: 0, arg: 'μ', doc: 'SGD/GD momentum (PyTorch\'s, dampening 0); 0: plain SGD (gd, sgd only)' }),
  nesterov: field({ schema: ranges.boolean(), default: false, doc: 'Nesterov momentum (needs `--momentum` > 0)' }),
  // Augmentation of the training batches (issue F2; kana-core/src/augment.rs has the math). On when
  // any range is > 0 or elastic is set; `augment` only switches the ranges' defaults to F2's recipe.
  augment: field({ schema: ranges.boolean(), default: false, doc: 'augment every training batch with the defaults of rotate, scale, shear and shift below (F2\'s measured recipe; no elastic); each range can also be set alone' }),
  rotate: field({ schema: range(z.number().min(0).max(180), 'must be a number of degrees in [0, 180]'), default: (c) => (c.augment ? 12 : 0), defaultText: '12 with --augment, else 0', arg: 'deg', doc: 'augmentation: random rotation uniform in ±deg degrees' }),
  scale: field({ schema: ranges.unit(), default: (c) => (c.augment ? 0.1 : 0), defaultText: '0.1 with --augment, else 0', arg: 's', doc: 'augmentation: random scale factor uniform in 1 ± s' }),
  shear: field({ schema: range(z.number().min(0).max(1), 'must be a number in [0, 1]'), default: (c) => (c.augment ? 0.15 : 0), defaultText: '0.15 with --augment, else 0', arg: 's', doc: 'augmentation: random horizontal shear x += s·y, s uniform in ±s' }),
  shift: field({ schema: range(z.number().min(0).max(1000), 'must be a number of pixels in [0, 1000]'), default: (c) => (c.augment ? 1.7 : 0), defaultText: '1.7 with --augment, else 0', arg: 'px', doc: 'augmentation: random translation uniform in ±px pixels along each axis' }),
  elastic: field({
    schema: range(z.union([z.literal('off'), z.tuple([z.number().min(0).max(1000), z.number().gt(0).max(100)])]), 'must be off or [α, σ] with α in [0, 1000] and σ in (0, 100] pixels'),
    default: 'off', arg: 'α,σ',
    fromFlag: (s: string) => (String(s).trim() === 'off' ? 'off' : numberList(s)),
    doc: 'augmentation: elastic distortion (Simard et al. 2003), a random displacement field smoothed by a Gaussian of σ px and scaled by α px (`34,4` is Simard\'s MNIST setting)',
  }),
  seed: field({ schema: ranges.integer(), defaultText: 'random, recorded in `config.json`', arg: 'N', doc: 'fixes split, initial weights and every shuffle' }),
}

export type FieldName = keyof typeof FIELDS
export const FIELD_NAMES = Object.keys(FIELDS) as FieldName[]
type Shape = { [K in FieldName]: (typeof FIELDS)[K]['schema'] }
// each field's schema with its meaning and plain default as metadata (the JSON Schema shows them)
const shape = Object.fromEntries(FIELD_NAMES.map((k) => {
  const f = FIELDS[k] as FieldSpec
  const plain = f.default !== undefined && typeof f.default !== 'function' ? { default: f.default } : {}
  const doc = f.defaultText === undefined ? f.doc : `${f.doc} (default: ${f.defaultText})`
  return [k, f.schema.meta({ ...z.globalRegistry.get(f.schema), description: doc, ...plain })]
})) as Shape

/** The field schemas, by name, e.g. for the search space's candidate lists. */
export const fieldSchema = <K extends FieldName>(k: K): Shape[K] => shape[k]

/** A complete model configuration (what resolveModelConfig returns), strict. */
export const ModelConfigSchema = z.strictObject(shape)
/** Some settings, the rest to be defaulted (M0, M4, search.base, train's --config): strict. */
export const PartialModelConfigSchema = z.strictObject(shape).partial()

/** Everything that decides a training run (the seed fixes initial weights and batch order). */
export type ModelConfig = z.infer<typeof ModelConfigSchema>

// The engine's and the schedule's own names must stay those of the schema.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never
const _sameOptimizers: Same<ModelConfig['optimizer'], OptimizerName> = true
const _sameSchedules: Same<ModelConfig['schedule'], ScheduleName> = true
void _sameOptimizers, _sameSchedules

/** Constraints between settings, checked after the single fields: a message, or nothing. */
const RULES: ((c: ModelConfig) => string | undefined)[] = [
  // the schedule's own checks (schedule.ts), here so that they fail before any work
  (c) => (c.lrMin > c.lr ? `lrMin must be ≤ lr (${c.lr}), got ${c.lrMin}` : undefined),
  (c) => (c.schedule === 'exponential' && c.lrMin <= 0 ? `lrMin must be > 0 for the exponential schedule, got ${c.lrMin}` : undefined),
  (c) => (c.warmupEpochs >= c.epochs ? `warmupEpochs must be < epochs (${c.epochs}), got ${c.warmupEpochs}` : undefined),
  // what else the schedule refuses (one-cycle's pctStart × epochs = 1)
  (c) => {
    try {
      epochLrOf(c, 0)
      return undefined
    } catch (e) {
      return (e as Error).message
    }
  },
  (c) => (c.batchNorm && c.optimizer !== 'gd' && c.batchSize === 1 ? 'batchSize must be ≥ 2 with batchNorm (a batch of one sample cannot be normalised), got 1' : undefined),
  (c) => (Array.isArray(c.dropout) && c.dropout.length !== c.hidden.length ? `dropout must list one rate per hidden layer (${c.hidden.length}), got ${c.dropout.length}` : undefined),
  (c) => (c.weightDecay > 0 && c.optimizer !== 'adamw' ? `weightDecay is only used by optimizer adamw, not ${c.optimizer} (use l2 for an L2 penalty), got ${c.weightDecay}` : undefined),
  (c) => (c.momentum > 0 && c.optimizer !== 'gd' && c.optimizer !== 'sgd' ? `momentum is only used by optimizers gd and sgd, not ${c.optimizer}, got ${c.momentum}` : undefined),
  (c) => (c.nesterov && !(c.momentum > 0) ? 'nesterov needs a momentum > 0' : undefined),
  // a slope set for another activation would be silently unused: the resolved value is the default unless given
  (c) => (c.activation !== 'leaky-relu' && c.leakySlope !== FIELDS.leakySlope.default ? `leakySlope is only used by activation leaky-relu, not ${c.activation}, got ${c.leakySlope}` : undefined),
]

/** The schedule's options of a configuration (run.ts epochLr is this at epoch t). */
export const scheduleOf = (c: ModelConfig) => ({
  name: c.schedule, lr: c.lr, lrMin: c.lrMin, epochs: c.epochs,
  warmupEpochs: c.warmupEpochs, pctStart: c.pctStart, divFactor: c.divFactor, finalDivFactor: c.finalDivFactor,
})
const epochLrOf = (c: ModelConfig, t: number) => learningRate(scheduleOf(c), t)

/** The architecture options of `c` beyond the layer sizes, as MLP and ReferenceMLP take them: only those that apply. */
export function modelOptions(c: ModelConfig): Pick<MLPOptions, 'activation' | 'leakySlope' | 'dropout' | 'batchNorm' | 'bnMomentum' | 'bnEps'> {
  const o: ReturnType<typeof modelOptions> = {}
  if (c.activation !== 'relu') o.activation = c.activation
  if (c.activation === 'leaky-relu') o.leakySlope = c.leakySlope
  if (Array.isArray(c.dropout) ? c.dropout.some((p) => p > 0) : c.dropout > 0) o.dropout = Array.isArray(c.dropout) ? [...c.dropout] : c.dropout
  if (c.batchNorm) Object.assign(o, { batchNorm: true, bnMomentum: c.bnMomentum, bnEps: c.bnEps })
  return o
}

// ---------------------------------------------------------------------------------------------
// Messages from zod's issues, in kana-native's words

/** A value as an error message shows it: JSON, cut short; never throws (cycles, deep nesting). */
export const show = (v: unknown): string => {
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v)
  if (typeof v === 'bigint') return `${v}n`
  let s: string
  try {
    s = JSON.stringify(v) ?? String(v)
  } catch {
    return '(a value that cannot be shown: cyclic or too deeply nested)'
  }
  return s.length > 200 ? `${s.slice(0, 200)}…` : s
}

const label = (path: PropertyKey[]) => path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('')

const defOf = (s: z.ZodType): any => (s as any)._zod.def
const mustOf = (s: z.ZodType): string | undefined => (z.globalRegistry.get(s) as { must?: string } | undefined)?.must

/** The schema inside wrappers (optional, default, nullable, readonly, pipe input). */
function unwrap(s: z.ZodType): z.ZodType {
  for (;;) {
    const d = defOf(s)
    if (mustOf(s) !== undefined) return s
    if (d.type === 'optional' || d.type === 'nullable' || d.type === 'default' || d.type === 'readonly' || d.type === 'prefault') s = d.innerType
    else if (d.type === 'pipe') s = d.in
    else return s
  }
}

/** One step into a schema: the schema of key `k` (objects, records, arrays, unions of objects). */
function child(s: z.ZodType, k: PropertyKey): z.ZodType | undefined {
  const inner = (x: z.ZodType): z.ZodType => {
    const d = defOf(x)
    return d.type === 'optional' || d.type === 'nullable' || d.type === 'default' || d.type === 'readonly' || d.type === 'prefault' ? inner(d.innerType) : d.type === 'pipe' ? inner(d.in) : x
  }
  const d = defOf(inner(s))
  if (d.type === 'object') return d.shape[k as string]
  if (d.type === 'record') return d.valueType
  if (d.type === 'array') return d.element
  if (d.type === 'union') for (const o of d.options) { const c = child(o, k); if (c) return c }
  return undefined
}

const objectKeys = (s: z.ZodType | undefined): string[] => {
  if (!s) return []
  const d = defOf(s)
  if (d.type === 'optional' || d.type === 'nullable' || d.type === 'default' || d.type === 'readonly') return objectKeys(d.innerType)
  if (d.type === 'object') return Object.keys(d.shape)
  if (d.type === 'record') return defOf(d.keyType).type === 'enum' ? Object.keys(defOf(d.keyType).entries) : []
  if (d.type === 'union') return d.options.flatMap(objectKeys)
  return []
}

const at = (v: unknown, path: PropertyKey[]) => path.reduce<any>((o, k) => (o !== null && typeof o === 'object' ? o[k] : undefined), v)

/** A zod issue as kana-native says it: the setting (its path), what it must be, the value it got. */
export function describeIssue(root: z.ZodType, value: unknown, issue: z.core.$ZodIssue, where = ''): string {
  const path = issue.path
  const base = where ? `${where}.` : ''
  if (issue.code === 'unrecognized_keys') {
    let s: z.ZodType | undefined = root
    for (const k of path) s = s && child(s, k)
    const keys = issue.keys
    const inside = path.length ? ` in ${base}${label(path)}` : where ? ` in ${where}` : ''
    return `unknown key${keys.length > 1 ? 's' : ''} ${keys.map((k) => JSON.stringify(k)).join(', ')}${inside}; known: ${objectKeys(s).join(', ')}`
  }
  // the deepest schema along the path that says its range in words
  let s: z.ZodType | undefined = root
  let found: { must: string; depth: number } | undefined
  const visit = (x: z.ZodType | undefined, depth: number) => {
    const m = x && mustOf(unwrap(x))
    if (m) found = { must: m, depth }
  }
  visit(s, 0)
  for (let i = 0; i < path.length && s; i++) {
    s = child(s, path[i])
    visit(s, i + 1)
  }
  const name = (p: PropertyKey[]) => (p.length ? `${base}${label(p)}` : where || 'value')
  if (!found) return `${name(path)} is invalid (${issue.message}), got ${show(at(value, path))}`
  const p = path.slice(0, found.depth)
  return `${name(p)} ${found.must}, got ${show(at(value, p))}`
}

/** Parses `value` with `schema`, or throws a RangeError naming the first bad setting. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, where = ''): z.infer<S> {
  const r = schema.safeParse(value)
  if (r.success) return r.data
  throw new RangeError(describeIssue(schema, value, r.error.issues[0], where))
}

// ---------------------------------------------------------------------------------------------
// Resolving and checking

/** Some model settings (undefined = absent), checked: unknown keys are refused. `where` prefixes messages (e.g. 'M0'). */
export function checkPartialModelConfig(c: unknown, where = ''): Partial<ModelConfig> {
  return parseWith(PartialModelConfigSchema, c, where)
}

/** The study's defaults (train()'s), with `seed` to be given; other keys of `c` are ignored. */
export function resolveModelConfig(c: Partial<ModelConfig> & { seed: number }): ModelConfig {
  const cfg: Partly = {}
  for (const k of FIELD_NAMES) {
    const f = FIELDS[k] as FieldSpec
    const given = (c as Partly)[k]
    const v = given !== undefined ? given : typeof f.default === 'function' ? (f.default as (c: Partly) => unknown)(cfg) : f.default
    // an optional setting left unset (clipNorm) is absent, not undefined
    if (v !== undefined) cfg[k] = v
  }
  checkModelConfig(cfg as ModelConfig)
  return cfg as ModelConfig
}

/** Checks every setting of a complete configuration (other keys are ignored), then the rules between them. */
export function checkModelConfig(c: ModelConfig): void {
  if (c === null || typeof c !== 'object') throw new RangeError(`a model configuration must be an object, got ${show(c)}`)
  for (const k of FIELD_NAMES) {
    const r = FIELDS[k].schema.safeParse((c as Partly)[k])
    if (!r.success) throw new RangeError(describeIssue(z.object({ [k]: FIELDS[k].schema }), c, { ...r.error.issues[0], path: [k, ...r.error.issues[0].path] }))
  }
  for (const rule of RULES) {
    const m = rule(c)
    if (m) throw new RangeError(m)
  }
}

/** The resolved value a field takes when not given (dependent defaults from the others' defaults). */
export const defaultModelConfig = (): Omit<ModelConfig, 'seed'> => {
  const { seed: _, ...rest } = resolveModelConfig({ seed: 0 })
  return rest
}

/** JSON Schema (draft 2020-12) of a partial model configuration: for editors and other tools. */
export const modelConfigJsonSchema = () => z.toJSONSchema(PartialModelConfigSchema)

// ---------------------------------------------------------------------------------------------
// The run options of `train` besides the model: data, split, threads, checkpoints. Declared the
// same way, for train's --config file and the up-front check of train()'s options.

const fractions = range(z.strictObject({ train: z.number().min(0), validation: z.number().min(0), test: z.number().min(0) }), 'must be {train, validation, test}: three finite fractions ≥ 0')

/** What `train --config FILE` may hold besides the model settings (paths relative to the file). */
export const RUN_FIELDS = {
  images: ranges.string(),
  labels: ranges.string(),
  dataset: ranges.oneOf(['k49', 'kmnist', 'fashion-mnist']),
  cacheDir: ranges.string(),
  classmap: ranges.string(),
  split: fractions,
  threads: ranges.intAtLeast(1),
  checkpointEvery: ranges.nonNegative(),
}

/** train's --config JSON: model settings and run options, every key optional, unknown keys refused. */
export const TrainFileSchema = z.strictObject({ ...shape, ...RUN_FIELDS }).partial()
export type TrainFile = z.infer<typeof TrainFileSchema>

/**
 * train()'s options checked before any work: every model setting given (and, resolved with the
 * defaults, the rules between them), threads and checkpointEvery. Other keys are train()'s own.
 */
export function checkTrainOptions(o: Record<string, unknown>): void {
  const pick = (keys: string[]) => Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]]))
  const model = checkPartialModelConfig(pick(FIELD_NAMES))
  parseWith(z.strictObject({ threads: RUN_FIELDS.threads, checkpointEvery: RUN_FIELDS.checkpointEvery }).partial(), pick(['threads', 'checkpointEvery']))
  if (o.resume === undefined) resolveModelConfig({ ...model, seed: model.seed ?? 0 })
}

/**
 * The `training` record of a model file's metadata (the run's configuration and how it ended):
 * the model settings it holds must be valid ones; other keys (layers, epochsRun, …) are free.
 * Returns what is wrong, or undefined.
 */
export function trainingRecordProblem(record: Record<string, unknown>): string | undefined {
  const r = z.looseObject(shape).partial().safeParse(record)
  return r.success ? undefined : describeIssue(ModelConfigSchema, record, r.error.issues[0])
}

/** A configuration file's JSON object, with a message naming the file when it cannot be read, parsed or is no object. */
export async function readJsonObject(path: string, what: string): Promise<Record<string, unknown>> {
  const { readFile } = await import('node:fs/promises')
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    throw new Error(`cannot read the configuration ${path}: ${(e as Error).message}`)
  }
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`)
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${path} must hold ${what}`)
  return v as Record<string, unknown>
}

/**
 * Reads train's `--config` JSON: model settings and run options, checked (unknown keys and bad
 * values are errors naming the file and the key); relative data paths are relative to the file.
 */
export async function readTrainConfig(path: string): Promise<TrainFile> {
  const { dirname, resolve } = await import('node:path')
  const v = await readJsonObject(path, 'a JSON object of settings (see README "kana-native train")')
  let c: TrainFile
  try {
    c = parseWith(TrainFileSchema, v)
  } catch (e) {
    throw new RangeError(`${path}: ${(e as Error).message}`)
  }
  for (const k of ['images', 'labels', 'classmap', 'cacheDir'] as const) if (c[k] !== undefined) c[k] = resolve(dirname(path), c[k]!)
  return c
}

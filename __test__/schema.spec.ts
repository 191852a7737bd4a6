// The one schema of a run's settings (src/training/config.ts): defaults, ranges and messages, the
// strict JSON files (train's --config and the experiment's), the search space, the flags and the
// README table derived from it, and checks that come before any work.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import {
  FIELDS, FIELD_NAMES, checkModelConfig, checkPartialModelConfig, modelConfigJsonSchema, readTrainConfig, resolveModelConfig, trainingRecordProblem,
  type FieldSpec, type ModelConfig,
} from '../src/training/config'
import { readExperimentConfig, resolveExperiment } from '../src/experiment/config'
import { searchConfigs, DEFAULT_RANDOM_SPACE } from '../src/experiment/search'
import { parser } from '../src/cli/main'
import { modelOptions, modelSettingsFrom, type Fields } from '../src/cli/args'
import { tableIn, trainOptionsTable } from '../src/cli/options-table'
import { decodeModel, encodeModel, ModelFileError } from '../src/output/model-file'
import { train } from '../src/training/train'
import { runExperiment } from '../src/experiment/experiment'
import { npy } from './helpers/npy'

const root = join(__dirname, '..')
const bin = join(root, 'bin', 'kana-native.js')

/** The study's defaults, written out by hand: what every field resolves to when not given. */
const STUDY: Omit<ModelConfig, 'seed'> = {
  hidden: [512], optimizer: 'adam', lr: 1e-3, batchSize: 32, l2: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, epochs: 200,
  schedule: 'constant', lrMin: 1e-5, earlyStopping: true, patience: 20, minDelta: 0, restoreBest: true,
  // issue F1's levers, all off (clipNorm: absent unless given)
  warmupEpochs: 0, pctStart: 0.3, divFactor: 25, finalDivFactor: 1e4, activation: 'relu', leakySlope: 0.01, dropout: 0, batchNorm: false,
  bnMomentum: 0.1, bnEps: 1e-5, labelSmoothing: 0, weightDecay: 0, momentum: 0, nesterov: false,
  augment: false, rotate: 0, scale: 0, shear: 0, shift: 0, elastic: 'off',
}
/** The settings that stay absent when not given. */
const OPTIONAL = ['clipNorm']

test('every field resolves to the study\'s default, in the declared key order', (t) => {
  const c = resolveModelConfig({ seed: 5 })
  t.deepEqual(c, { ...STUDY, seed: 5 })
  t.deepEqual(Object.keys(c), FIELD_NAMES.filter((k) => !OPTIONAL.includes(k)), 'ModelConfig keys in declaration order (config.json, trial comparison)')
  t.deepEqual(Object.keys(STUDY).concat('seed', ...OPTIONAL).sort(), [...FIELD_NAMES].sort(), 'the hand-written table covers every field')
})

test('dependent defaults: lr by optimizer, lrMin = lr / 100; undefined means absent', (t) => {
  t.is(resolveModelConfig({ seed: 1, optimizer: 'gd' }).lr, 0.1)
  t.is(resolveModelConfig({ seed: 1, optimizer: 'sgd' }).lr, 0.1)
  t.is(resolveModelConfig({ seed: 1, optimizer: 'adam' }).lr, 1e-3)
  t.is(resolveModelConfig({ seed: 1, optimizer: 'adamw' }).lr, 1e-3)
  t.is(resolveModelConfig({ seed: 1, optimizer: 'adamw' }).weightDecay, 1e-2)
  t.is(resolveModelConfig({ seed: 1, optimizer: 'adam' }).weightDecay, 0)
  t.false('clipNorm' in resolveModelConfig({ seed: 1 }))
  t.is(resolveModelConfig({ seed: 1, optimizer: 'gd' }).lrMin, 0.1 / 100)
  t.is(resolveModelConfig({ seed: 1, lr: 0.37 }).lrMin, 0.37 / 100)
  t.is(resolveModelConfig({ seed: 1, lr: 0.37, lrMin: 0 }).lrMin, 0)
  t.is(resolveModelConfig({ seed: 1, lr: undefined, optimizer: 'sgd' }).lr, 0.1)
  // other keys (train()'s options) are ignored
  t.deepEqual(resolveModelConfig({ seed: 1, images: 'x.npy' } as never), { ...STUDY, seed: 1 })
})

test('augment switches the ranges\' defaults to F2\'s recipe; each range can be set alone', (t) => {
  t.like(resolveModelConfig({ seed: 1, augment: true }), { rotate: 12, scale: 0.1, shear: 0.15, shift: 1.7, elastic: 'off' })
  t.like(resolveModelConfig({ seed: 1, augment: true, rotate: 0, elastic: [34, 4] }), { rotate: 0, scale: 0.1, elastic: [34, 4] })
  t.like(resolveModelConfig({ seed: 1, rotate: 5 }), { augment: false, rotate: 5, scale: 0 })
})

test('a bad value of every field is a RangeError naming the setting and the value', (t) => {
  const bad: Record<keyof ModelConfig, unknown[]> = {
    hidden: [[0], [1.5], [-3], 'abc', [null], 512],
    optimizer: ['rmsprop', '', 3, null],
    lr: [0, -1, NaN, Infinity, '0.1', null],
    batchSize: [0, 1.5, -1, NaN, '32'],
    l2: [-1e-3, NaN, Infinity, true],
    beta1: [1, -0.1, 2, NaN],
    beta2: [1, -0.1, NaN],
    eps: [0, -1, Infinity],
    epochs: [0, 2.5, -1, NaN],
    schedule: ['step', '', null],
    lrMin: [-1, NaN, Infinity],
    earlyStopping: ['yes', 1, null],
    patience: [-1, 0.5, NaN],
    minDelta: [-0.1, NaN],
    restoreBest: ['true', 0],
    augment: ['yes', 1],
    rotate: [-1, 181, NaN],
    scale: [1, -0.1],
    shear: [1.5, -1],
    shift: [-1, 1e4],
    elastic: ['on', [1], [1, 0], [-1, 2], 3, null],
    seed: [1.5, NaN, 2 ** 60, '1'],
    warmupEpochs: [-1, 1.5, NaN, '2'],
    pctStart: [0, 1, -0.5, NaN],
    divFactor: [0, -1, Infinity],
    finalDivFactor: [0, -1, NaN],
    activation: ['tanh', '', 'ReLU', null],
    leakySlope: [-0.1, NaN, Infinity],
    dropout: [-0.1, 1, 1.5, NaN, [0.5, 1], [-0.1], 'x'],
    batchNorm: ['yes', 1],
    bnMomentum: [1, -0.1, NaN],
    bnEps: [0, -1e-5, Infinity],
    labelSmoothing: [1, -0.1, NaN, 2],
    clipNorm: [0, -1, NaN, Infinity, '1'],
    weightDecay: [-1e-2, NaN],
    momentum: [1, -0.1, NaN],
    nesterov: ['true', 1],
  }
  const valid = resolveModelConfig({ seed: 1 })
  for (const k of FIELD_NAMES) {
    t.true(bad[k].length > 0, k)
    for (const v of bad[k]) {
      const e = t.throws(() => checkModelConfig({ ...valid, [k]: v } as ModelConfig), { instanceOf: RangeError }, `${k} = ${String(v)}`)
      t.regex(e!.message, new RegExp(`^${k} must be .*, got `), `${k} = ${String(v)}`)
      t.throws(() => resolveModelConfig({ seed: 1, [k]: v } as never), { instanceOf: RangeError, message: new RegExp(`^${k} must be`) })
    }
  }
  // today's exact words, which tests and users match
  t.throws(() => checkModelConfig({ ...valid, hidden: [0] }), { message: 'hidden must be a list of positive integer widths, got [0]' })
  t.throws(() => checkModelConfig({ ...valid, optimizer: 'rmsprop' as never }), { message: 'optimizer must be gd, sgd, adam or adamw, got "rmsprop"' })
  t.throws(() => checkModelConfig({ ...valid, activation: 'tanh' as never }), { message: 'activation must be relu, leaky-relu, silu or gelu, got "tanh"' })
  t.throws(() => checkModelConfig({ ...valid, dropout: 1 }), { message: 'dropout must be a rate in [0, 1) or a list of one rate in [0, 1) per hidden layer, got 1' })
  t.throws(() => checkModelConfig({ ...valid, dropout: [0.2, -0.1] }), { message: 'dropout must be a rate in [0, 1) or a list of one rate in [0, 1) per hidden layer, got [0.2,-0.1]' })
  t.throws(() => checkModelConfig({ ...valid, labelSmoothing: 1 }), { message: 'labelSmoothing must be a number in [0, 1), got 1' })
  t.throws(() => checkModelConfig({ ...valid, clipNorm: 0 }), { message: 'clipNorm must be a finite number > 0, got 0' })
  t.throws(() => checkModelConfig({ ...valid, lr: -1 }), { message: 'lr must be a finite number > 0, got -1' })
  t.throws(() => checkModelConfig({ ...valid, lr: NaN }), { message: 'lr must be a finite number > 0, got NaN' })
  t.throws(() => checkModelConfig({ ...valid, batchSize: 0 }), { message: 'batchSize must be an integer ≥ 1, got 0' })
  t.throws(() => checkModelConfig({ ...valid, beta2: 1 }), { message: 'beta2 must be a number in [0, 1), got 1' })
  t.throws(() => checkModelConfig({ ...valid, schedule: 'step' as never }), { message: 'schedule must be constant, linear, exponential, cosine or one-cycle, got "step"' })
  t.throws(() => checkModelConfig({ ...valid, restoreBest: 'no' as never }), { message: 'restoreBest must be true or false, got "no"' })
})

test('rules between settings: the schedule\'s lrMin checks come before any work', (t) => {
  t.throws(() => resolveModelConfig({ seed: 1, lr: 0.01, lrMin: 0.1 }), { instanceOf: RangeError, message: 'lrMin must be ≤ lr (0.01), got 0.1' })
  t.throws(() => resolveModelConfig({ seed: 1, schedule: 'exponential', lrMin: 0 }), { instanceOf: RangeError, message: /^lrMin must be > 0 for the exponential schedule/ })
  t.notThrows(() => resolveModelConfig({ seed: 1, schedule: 'linear', lrMin: 0 }))
})

test('rules between settings: the F1 levers that do not go together are refused before any work', (t) => {
  const refused: [Partial<ModelConfig>, RegExp][] = [
    [{ batchNorm: true, batchSize: 1 }, /^batchSize must be ≥ 2 with batchNorm/],
    [{ optimizer: 'sgd', nesterov: true }, /^nesterov needs a momentum > 0/],
    [{ optimizer: 'adam', momentum: 0.9 }, /^momentum is only used by optimizers gd and sgd, not adam/],
    [{ optimizer: 'adamw', momentum: 0.9 }, /^momentum is only used by optimizers gd and sgd, not adamw/],
    [{ optimizer: 'adam', weightDecay: 0.01 }, /^weightDecay is only used by optimizer adamw, not adam/],
    [{ optimizer: 'sgd', weightDecay: 0.01 }, /^weightDecay is only used by optimizer adamw, not sgd/],
    [{ hidden: [8, 4], dropout: [0.1] }, /^dropout must list one rate per hidden layer \(2\), got 1/],
    [{ epochs: 5, warmupEpochs: 5 }, /^warmupEpochs must be < epochs \(5\), got 5/],
    [{ epochs: 10, schedule: 'one-cycle', pctStart: 0.1 }, /^pctStart × epochs = 0.1 × 10 = 1/],
    [{ activation: 'gelu', leakySlope: 0.2 }, /^leakySlope is only used by activation leaky-relu, not gelu, got 0.2/],
    [{ leakySlope: 0 }, /^leakySlope is only used by activation leaky-relu, not relu, got 0/],
  ]
  for (const [c, message] of refused) t.throws(() => resolveModelConfig({ seed: 1, ...c }), { instanceOf: RangeError, message }, JSON.stringify(c))
  const fine: Partial<ModelConfig>[] = [
    { batchNorm: true, batchSize: 2 }, { batchNorm: true, optimizer: 'gd', batchSize: 1 }, { optimizer: 'sgd', momentum: 0.9, nesterov: true },
    { optimizer: 'gd', momentum: 0.5 }, { optimizer: 'adamw', weightDecay: 0 }, { hidden: [8, 4], dropout: [0.1, 0] }, { epochs: 5, warmupEpochs: 4, schedule: 'cosine' },
    { activation: 'leaky-relu', leakySlope: 0.2 }, { activation: 'leaky-relu', leakySlope: 0 }, { activation: 'silu' }, { clipNorm: 1, labelSmoothing: 0.1 },
  ]
  for (const c of fine) t.notThrows(() => resolveModelConfig({ seed: 1, ...c }), JSON.stringify(c))
})

test('partial model configurations are strict: unknown keys are named, with the known ones', (t) => {
  t.deepEqual(checkPartialModelConfig({ epochs: 3 }), { epochs: 3 })
  t.throws(() => checkPartialModelConfig({ epoch: 3 }, 'M0'), { instanceOf: RangeError, message: /^unknown key "epoch" in M0; known: hidden, optimizer, lr, .*seed$/ })
  t.throws(() => checkPartialModelConfig({ lr: 0 }, 'M4'), { message: 'M4.lr must be a finite number > 0, got 0' })
})

test('the JSON Schema export describes every field, strictly', (t) => {
  const js = modelConfigJsonSchema() as { properties: Record<string, { description?: string }>; additionalProperties: boolean }
  t.deepEqual(Object.keys(js.properties), [...FIELD_NAMES])
  t.is(js.additionalProperties, false)
  for (const k of FIELD_NAMES) t.is(typeof js.properties[k].description, 'string', k)
  t.like(js.properties.batchSize, { type: 'integer', minimum: 1, default: 32 })
  t.like(js.properties.lr, { type: 'number', exclusiveMinimum: 0, description: 'initial learning rate (default: 1e-3 (adam, adamw), 0.1 (gd/sgd))' })
})

// ---------------------------------------------------------------------------------------------
// The experiment file

function tmpFile(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kana-schema-'))
  const p = join(dir, name)
  writeFileSync(p, text)
  return p
}

test('experiment JSON: unknown keys at every level are named with their place', async (t) => {
  const cases: [unknown, RegExp][] = [
    [{ seed: 1, serach: {} }, /exp\.json: unknown key "serach"; known: seed, split, threads, data, models, M0, M4, search, architecture, M5, reference, noise$/],
    [{ M5: { candidates: [{}, { epoch: 3 }] } }, /unknown key "epoch" in M5\.candidates\[1\]; known: hidden, optimizer/],
    [{ M5: { candiates: [] } }, /unknown key "candiates" in M5; known: base, candidates, concurrency, threads$/],
    [{ noise: { gaussian: [10], pepper: [0.1] } }, /unknown key "pepper" in noise; known: gaussian, salt-pepper, occlusion$/],
    [{ noise: { occlusion: [3.5] } }, /noise\.occlusion: occlusion noise level must be an integer square side in pixels, ≥ 0, got 3\.5$/],
    [{ search: { mode: 'grid', trails: 3 } }, /unknown key "trails" in search; known: mode, trials, epochs, halving, concurrency, threads, space, base/],
    [{ search: { halving: { minEpoch: 2 } } }, /unknown key "minEpoch" in search\.halving; known: minEpochs, eta/],
    [{ search: { space: { lr: { rmsprop: [1e-3] } } } }, /unknown key "rmsprop" in search\.space\.lr; known: gd, sgd, adam, adamw/],
    [{ search: { space: { dropuot: [0.1] } } }, /unknown key "dropuot" in search\.space; known: optimizer, lr, batchSize, .*, dropout, batchNorm/],
    [{ M0: { epoch: 3 } }, /unknown key "epoch" in M0; known: hidden, optimizer/],
    [{ search: { base: { betta1: 0.8 } } }, /unknown key "betta1" in search\.base/],
    [{ architecture: { width: [1] } }, /unknown key "width" in architecture/],
    [{ reference: { budget: 3 } }, /unknown key "budget" in reference; known: budgetSeconds/],
    [{ data: { image: 'x' } }, /unknown key "image" in data/],
    [{ split: { train: 0.6, validation: 0.2, test: 0.2, val: 0.1 } }, /unknown key "val" in split; known: train, validation, test/],
  ]
  for (const [cfg, message] of cases) {
    await t.throwsAsync(readExperimentConfig(tmpFile('exp.json', JSON.stringify(cfg))), { message }, JSON.stringify(cfg))
  }
})

test('experiment JSON: nested values checked by the same field schemas, named by their path', async (t) => {
  const cases: [unknown, RegExp][] = [
    [{ M0: { lr: -1 } }, /M0\.lr must be a finite number > 0, got -1/],
    [{ M4: { hidden: [1024, 0] } }, /M4\.hidden must be a list of positive integer widths, got \[1024,0\]/],
    [{ search: { base: { beta1: 1 } } }, /search\.base\.beta1 must be a number in \[0, 1\), got 1/],
    [{ search: { space: { lr: { adam: [1e-3, -1] } } } }, /search\.space\.lr\.adam\[1\] must be a finite number > 0, got -1/],
    [{ search: { space: { batchSize: [32, 0] } } }, /search\.space\.batchSize\[1\] must be an integer ≥ 1, got 0/],
    [{ search: { space: { schedule: ['step'] } } }, /search\.space\.schedule\[0\] must be constant, linear, exponential, cosine or one-cycle/],
    [{ search: { space: { hidden: [] } } }, /search\.space\.hidden must be a non-empty list of hidden-layer lists, got \[\]/],
    [{ search: { space: { dropout: [0.1, 1] } } }, /search\.space\.dropout\[1\] must be a rate in \[0, 1\)/],
    [{ search: { space: { activation: ['tanh'] } } }, /search\.space\.activation\[0\] must be relu, leaky-relu, silu or gelu/],
    [{ search: { space: { batchNorm: [] } } }, /search\.space\.batchNorm must be a non-empty list of batch-norm switches/],
    [{ search: { halving: { eta: 1 } } }, /search\.halving\.eta must be a number > 1, got 1/],
    [{ search: { halving: true } }, /search\.halving must be false or \{minEpochs, eta\}, got true/],
    [{ search: { mode: 'bayes' } }, /search\.mode must be grid or random/],
    [{ architecture: { widths: [128, 0] } }, /architecture\.widths must be a non-empty list of positive integer widths/],
    [{ architecture: { halving: { minEpochs: 0 } } }, /architecture\.halving\.minEpochs must be an integer ≥ 1, got 0/],
    [{ reference: { budgetSeconds: 0 } }, /reference\.budgetSeconds must be > 0, got 0/],
    [{ seed: -1 }, /seed must be a non-negative integer, got -1/],
    [{ split: { train: 0.8, validation: 0.2, test: 0 } }, /split must give positive train, validation and test fractions/],
    [{ models: ['M9'] }, /unknown model "M9": choose from M0, M1, M2, M3, M4, M5$/],
  ]
  for (const [cfg, message] of cases) {
    const e = await t.throwsAsync(readExperimentConfig(tmpFile('exp.json', JSON.stringify(cfg))), { message }, JSON.stringify(cfg))
    t.true(e!.message.includes('exp.json: '), 'the file is named')
    // the Node API says the same without the file
    t.throws(() => resolveExperiment(cfg as never), { instanceOf: RangeError, message })
  }
})

test('search space levers: drawn from their own generator, the study\'s draws unchanged; grids multiply; levers that do not apply are left out', (t) => {
  const opts = { mode: 'random' as const, trials: 8, epochs: 10, space: DEFAULT_RANDOM_SPACE }
  const plain = searchConfigs(opts, 3)
  const space = { ...DEFAULT_RANDOM_SPACE, optimizer: ['adam', 'sgd', 'adamw'] as const, lr: { ...DEFAULT_RANDOM_SPACE.lr, adamw: [1e-4, 1e-3] } }
  const levers = { activation: ['relu', 'gelu'] as const, dropout: [0, 0.3], batchNorm: [false, true], labelSmoothing: [0, 0.1], weightDecay: [0.05], momentum: [0.9], warmupEpochs: [0, 2] }
  const withLevers = searchConfigs({ ...opts, space: { ...DEFAULT_RANDOM_SPACE, ...levers } as never }, 3)
  const study = (c: ModelConfig) => [c.optimizer, c.lr, c.batchSize, c.hidden, c.l2, c.schedule, c.patience]
  t.deepEqual(withLevers.map(study), plain.map(study), 'the study\'s settings are drawn as without levers')
  t.true(withLevers.some((c) => c.activation === 'gelu') && withLevers.some((c) => c.batchNorm), 'the levers are drawn')
  for (const c of withLevers) {
    t.is(c.momentum, c.optimizer === 'sgd' ? 0.9 : 0, 'momentum only for gd/sgd')
    t.is(c.weightDecay, 0, 'weightDecay only for adamw')
  }
  const w = searchConfigs({ ...opts, trials: 20, space: { ...space, ...levers } as never }, 3).filter((c) => c.optimizer === 'adamw')
  t.true(w.length > 0 && w.every((c) => c.weightDecay === 0.05))
  const grid = searchConfigs({ mode: 'grid', trials: 0, epochs: 5, space: { ...DEFAULT_RANDOM_SPACE, optimizer: ['adam'], lr: { adam: [1e-3] }, batchSize: [32], hidden: [[8]], l2: [0], schedule: ['constant'], patience: [5], dropout: [0, 0.2], batchNorm: [false, true] } }, 1)
  t.deepEqual(grid.map((c) => [c.dropout, c.batchNorm]), [[0, false], [0, true], [0.2, false], [0.2, true]])
})

test('resolveExperiment checks the search candidates up front; a resolved configuration reads back', async (t) => {
  // grid larger than trials: today an error at the search, after M0 had trained
  t.throws(() => resolveExperiment({ search: { mode: 'grid', trials: 2 } }), { message: /grid has 12 points, more than trials = 2/ })
  t.notThrows(() => resolveExperiment({ models: ['M0'], search: { mode: 'grid', trials: 2 } }), 'no search runs: not checked')
  const r = resolveExperiment({ seed: 3, M0: { epochs: 3 } })
  const back = await readExperimentConfig(tmpFile('back.json', JSON.stringify(r)))
  t.deepEqual(resolveExperiment(back), r)
  // the search space alone, as searchConfigs sees it
  t.throws(() => searchConfigs({ mode: 'random', trials: 2, epochs: 3, space: { ...DEFAULT_RANDOM_SPACE, l2: [-1] } }, 1), { message: 'search.space.l2[0] must be a finite number ≥ 0, got -1' })
  t.throws(() => searchConfigs({ mode: 'random', trials: 2, epochs: 3, space: { ...DEFAULT_RANDOM_SPACE, lr: { adam: [1e-3] } } }, 1), { message: /search\.space\.lr\.sgd must list positive learning rates/ })
})

// ---------------------------------------------------------------------------------------------
// train's --config

test('train --config JSON: strict, values checked, paths relative to the file', async (t) => {
  const p = tmpFile('train.json', JSON.stringify({ hidden: [64], lr: 0.01, images: 'X.npy', split: { train: 0.5, validation: 0.25, test: 0.25 } }))
  const c = await readTrainConfig(p)
  t.deepEqual(c.hidden, [64])
  t.is(c.images, join(p, '..', 'X.npy'))
  await t.throwsAsync(readTrainConfig(tmpFile('t.json', '{"hiden": [64]}')), { instanceOf: RangeError, message: /t\.json: unknown key "hiden"; known: hidden, optimizer, .*images, labels, dataset, cacheDir, classmap, split, threads, checkpointEvery$/ })
  await t.throwsAsync(readTrainConfig(tmpFile('t.json', '{"lr": "fast"}')), { message: /t\.json: lr must be a finite number > 0, got "fast"/ })
  await t.throwsAsync(readTrainConfig(tmpFile('t.json', '{"split": {"train": 1}}')), { message: /t\.json: split must be \{train, validation, test\}/ })
  await t.throwsAsync(readTrainConfig(tmpFile('t.json', '[1]')), { message: /must hold a JSON object/ })
  await t.throwsAsync(readTrainConfig(tmpFile('t.json', '{')), { message: /is not valid JSON/ })
})

function cli(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** A tiny learnable data set on disk: 4 classes, 16 pixels each lit by its class. */
function tinyFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kana-schema-cli-'))
  const n = 200
  const images = new Uint8Array(n * 784)
  const labels = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    labels[i] = i % 4
    for (let p = 0; p < 784; p++) images[i * 784 + p] = (p % 4 === i % 4 ? 200 : 0) + ((i * 7 + p * 13) % 50)
  }
  writeFileSync(join(dir, 'X.npy'), npy('|u1', [n, 784], images))
  writeFileSync(join(dir, 'y.npy'), npy('<i4', [n], labels))
  return dir
}

test('kana-native train --config: the file\'s settings, flags over them; bad files and settings refused before loading', (t) => {
  const dir = tinyFolder()
  writeFileSync(join(dir, 'run.json'), JSON.stringify({ images: 'X.npy', labels: 'y.npy', hidden: [16], optimizer: 'sgd', epochs: 5, seed: 3, threads: 1 }))
  const r = cli(['train', '--config', 'run.json', '--epochs', '2', '--out', 'run', '--quiet'], dir)
  t.is(r.code, 0, r.stderr)
  const config = JSON.parse(readFileSync(join(dir, 'run', 'config.json'), 'utf8'))
  t.deepEqual(config.layers, [784, 16, 4], 'hidden from the file')
  t.is(config.optimizer, 'sgd')
  t.is(config.lr, 0.1, 'the dependent default follows the file\'s optimizer')
  t.is(config.epochs, 2, 'the flag overrides the file')
  t.is(config.seed, 3)

  const empty = mkdtempSync(join(tmpdir(), 'kana-schema-empty-'))
  writeFileSync(join(empty, 'typo.json'), '{"hiden": [16]}')
  const typo = cli(['train', '--config', 'typo.json'], empty)
  t.is(typo.code, 2)
  t.regex(typo.stderr, /typo\.json: unknown key "hiden"; known: hidden/)
  // a bad setting is named before any data is looked for (there is none here)
  for (const [args, message] of [
    [['--lr', '-1'], /kana-native: lr must be a finite number > 0, got -1\n/],
    [['--hidden', '64,0'], /hidden must be a list of positive integer widths, got \[64,0\]/],
    [['--lr', '0.01', '--lr-min', '0.1'], /lrMin must be ≤ lr/],
    [['--checkpoint-every', '-1'], /checkpointEvery must be a finite number ≥ 0, got -1/],
  ] as [string[], RegExp][]) {
    const b = cli(['train', ...args], empty)
    t.is(b.code, 1, args.join(' '))
    t.regex(b.stderr, message)
    t.notRegex(b.stderr, /X_images\.npy/, 'no data was looked for')
  }
  const list = cli(['train', '--hidden', '64,x'], empty)
  t.is(list.code, 2)
  t.regex(list.stderr, /--hidden must be a comma-separated list of numbers, got "64,x"/)
})

test('train() and runExperiment() check every setting before loading anything', async (t) => {
  const nowhere = join(tmpdir(), 'kana-no-such-dir', 'X.npy')
  await t.throwsAsync(train({ images: nowhere, labels: nowhere, batchSize: 0 }), { instanceOf: RangeError, message: /^batchSize must be an integer ≥ 1/ })
  await t.throwsAsync(train({ images: nowhere, labels: nowhere, threads: 0 }), { instanceOf: RangeError, message: /^threads must be an integer ≥ 1/ })
  await t.throwsAsync(runExperiment({ data: { images: nowhere, labels: nowhere }, architecture: { widths: [0] }, report: false, out: mkdtempSync(join(tmpdir(), 'kana-schema-exp-')) }), { instanceOf: RangeError, message: /architecture\.widths/ })
})

// ---------------------------------------------------------------------------------------------
// Flags and the README table, derived

test('every field is a train flag of its type, with its default shown; absent flags stay undefined', async (t) => {
  const help = await new Promise<string>((res) => parser(['train', '--help']).parse(['train', '--help'], {}, (_e: unknown, _a: unknown, out: string) => res(out)))
  for (const k of FIELD_NAMES) t.regex(help, new RegExp(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}\\b`), k)
  t.regex(help, /--lr .*\[default: 1e-3 \(adam, adamw\), 0\.1 \(gd\/sgd\)\]/)
  t.regex(help, /--optimizer .*\[choices: "gd", "sgd", "adam", "adamw"\] \[default: adam\]/s)
  const argv = await parser([]).parseAsync(['train', '--batch-size', '64', '--no-early-stopping', '--hidden', '100,80', '--schedule', 'linear'])
  t.deepEqual(modelSettingsFrom(argv), { hidden: [100, 80], batchSize: 64, schedule: 'linear', earlyStopping: false })
  const f1 = await parser([]).parseAsync(['train', '--activation', 'gelu', '--dropout', '0.2', '--batch-norm', '--label-smoothing', '0.1', '--clip-norm', '5',
    '--optimizer', 'sgd', '--momentum', '0.9', '--nesterov', '--schedule', 'one-cycle', '--warmup-epochs', '2', '--pct-start', '0.25'])
  t.deepEqual(modelSettingsFrom(f1), { activation: 'gelu', dropout: 0.2, batchNorm: true, labelSmoothing: 0.1, clipNorm: 5, optimizer: 'sgd', momentum: 0.9, nesterov: true, schedule: 'one-cycle', warmupEpochs: 2, pctStart: 0.25 })
  t.deepEqual(modelSettingsFrom(await parser([]).parseAsync(['train', '--dropout', '0.2,0.1'])), { dropout: [0.2, 0.1] })
  const none = await parser([]).parseAsync(['train'])
  t.deepEqual(modelSettingsFrom(none), {}, 'no yargs defaults: the schema\'s apply')
  await t.throwsAsync(async () => parser([]).parseAsync(['train', '--schedule', 'step']), { message: /Invalid values|Choices/ })
})

test('a new field declared in the schema becomes a flag, a parsed value and a README row', async (t) => {
  const fields: Fields = {
    ...(FIELDS as unknown as Fields),
    labelSmoothing: { schema: z.number().min(0).lt(1).meta({ must: 'must be a number in [0, 1)' }), default: 0, arg: 'ε', doc: 'label smoothing ε of the cross-entropy' } as FieldSpec,
    activation: { schema: z.enum(['relu', 'gelu']).meta({ must: 'must be relu or gelu' }), default: 'relu', doc: 'hidden activation' } as FieldSpec,
    dropout: { schema: z.array(z.number()), default: [0], arg: 'p[,p…]', fromFlag: (s: string) => s.split(',').map(Number), doc: 'dropout rate per hidden layer' } as FieldSpec,
    clipNorm: { schema: z.number().gt(0).optional(), arg: 'c', defaultText: 'off', doc: 'gradient clipping by global L2 norm' } as FieldSpec,
  }
  const y = modelOptions(parser([]).help(false), fields)
  const argv = await y.parseAsync(['train', '--label-smoothing', '0.1', '--activation', 'gelu', '--dropout', '0.1,0.2', '--clip-norm', '1'])
  t.deepEqual(modelSettingsFrom(argv, undefined, fields), { labelSmoothing: 0.1, activation: 'gelu', dropout: [0.1, 0.2], clipNorm: 1 })
  const table = trainOptionsTable(fields)
  t.regex(table, /\n\| `--label-smoothing ε` \| 0 \| label smoothing ε of the cross-entropy \|\n/)
  t.regex(table, /\n\| `--activation relu\\\|gelu` \| `relu` \| hidden activation \|\n/)
  t.regex(table, /\n\| `--dropout p\[,p…\]` \| `0` \| dropout rate per hidden layer \|\n/)
  t.regex(table, /\n\| `--clip-norm c` \| off \| gradient clipping by global L2 norm \|\n/)
})

test('README.md holds exactly the generated train option table', (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const inReadme = tableIn(readme)
  t.not(inReadme, undefined, 'the markers are there')
  t.is(inReadme, trainOptionsTable(), 'run `npm run build:ts && node scripts/options-table.mjs --write`')
  for (const k of FIELD_NAMES) t.true(inReadme!.includes(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`), k)
  for (const f of ['--images', '--labels', '--dataset', '--split', '--config', '--threads', '--out', '--resume', '--checkpoint-every', '--json']) t.true(inReadme!.includes(f), f)
})

// ---------------------------------------------------------------------------------------------
// Model files

test('model-file metadata: the training record\'s model settings are checked by the schema', (t) => {
  const weights = [new Float32Array(6 * 3), new Float32Array(3)]
  const ok = encodeModel({ layers: [6, 3], training: { ...resolveModelConfig({ seed: 1 }), layers: [6, 3], epochsRun: 3, stopReason: 'completed' } }, weights)
  t.is(decodeModel(ok).meta.training?.optimizer, 'adam')
  t.is(trainingRecordProblem({ epochsRun: 3, somethingElse: 'free' }), undefined, 'other keys are free')
  for (const [training, message] of [
    [{ optimizer: 'rmsprop' }, /training: optimizer must be gd, sgd, adam or adamw, got "rmsprop"/],
    [{ dropout: 1 }, /training: dropout must be a rate in \[0, 1\)/],
    [{ lr: -1 }, /training: lr must be a finite number > 0, got -1/],
    [{ hidden: [0] }, /training: hidden must be a list of positive integer widths/],
  ] as [Record<string, unknown>, RegExp][]) {
    const e = t.throws(() => encodeModel({ layers: [6, 3], training }, weights), { instanceOf: ModelFileError })
    t.is((e as ModelFileError).code, 'EMETA')
    t.regex(e!.message, message)
  }
})

// Issue F1's levers end to end: from train()'s options, the CLI and --config through the one loop,
// checkpoints and resume (bit-identical with batch norm, dropout, momentum, AdamW, label smoothing,
// clipping, cosine with warm-up), Trial snapshots, and model files that predict as the trained model.
import test, { type ExecutionContext } from 'ava'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { train, type TrainAbortError, type TrainOptions, type TrainResult } from '../src/training/train'
import { readCheckpoint, sealJson } from '../src/training/checkpoint'
import { Trial, resolveModelConfig } from '../src/training/trial'
import { trialData } from '../src/training/sources'
import { loadTrainedModel } from '../src/output/saved-model'
import { decodeModel } from '../src/output/model-file'
import { Dataset } from '../src/engine/mlp'
import { learnable } from './helpers/learnable'
import { npy } from './helpers/npy'

const tmp = mkdtempSync(join(tmpdir(), 'kana-f1-wiring-'))
test.after.always(() => rmSync(tmp, { recursive: true, force: true }))
let runs = 0
const newDir = () => join(tmp, `run${++runs}`)
const bin = join(__dirname, '..', 'bin', 'kana-native.js')

const data = learnable(1200, 64, 5, 3, 0.2)
const noSeconds = (h: TrainResult['history']) => h.map(({ seconds, ...r }) => r)
// 720 training samples in batches of 8
const STEPS = 90

/** Trains `opts` straight, then interrupted in epoch 3 (mid-epoch) and resumed: the two must agree bit for bit. */
async function resumesExactly(t: ExecutionContext, opts: TrainOptions) {
  const want = await train({ ...opts, out: newDir() })
  for (let attempt = 1; ; attempt++) {
    const tried = await t.try(async (tt) => {
      const dir = newDir()
      const ac = new AbortController()
      const err = (await tt.throwsAsync(train({
        ...opts, out: dir, signal: ac.signal, progressInterval: 1,
        onProgress: (p) => p.epoch === 3 && p.steps === STEPS && p.step > 0 && p.step < STEPS / 2 && ac.abort(),
        onEpoch: (r) => void (r.epoch === 2 && setImmediate(() => ac.abort())), // when no report came in time
      }), { name: 'AbortError' })) as TrainAbortError
      tt.truthy(err.checkpoint, err.checkpointError?.message)
      const ck = await readCheckpoint(dir)
      tt.truthy(ck.snapshot.model.partialEpoch, 'interrupted inside an epoch')
      if (opts.batchNorm) tt.is(ck.snapshot.model.norm!.length, 4 * opts.hidden!.length, 'the norm state is in the checkpoint')
      const got = await train({ resume: dir, data: opts.data })
      tt.deepEqual(got.model.getWeights(), want.model.getWeights(), 'bit-identical weights')
      tt.deepEqual(got.model.getNormState(), want.model.getNormState(), 'bit-identical norm state')
      tt.deepEqual(noSeconds(got.history), noSeconds(want.history))
      tt.deepEqual(got.metrics, want.metrics)
      tt.is(got.bestEpoch, want.bestEpoch)
    })
    if (tried.passed || attempt === 3) return tried.commit()
    tried.discard()
  }
}

test.serial('train() with batch norm + dropout + SGD momentum, interrupted mid-epoch, resumes bit-identical', async (t) => {
  await resumesExactly(t, {
    data, hidden: [24, 16], optimizer: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true, batchSize: 8, epochs: 6, batchNorm: true, dropout: [0.2, 0.1],
    activation: 'leaky-relu', leakySlope: 0.1, seed: 3, threads: 2,
  })
})

test.serial('train() with AdamW + label smoothing + clipping + cosine with warm-up (and batch norm), interrupted mid-epoch, resumes bit-identical', async (t) => {
  await resumesExactly(t, {
    data, hidden: [24], optimizer: 'adamw', lr: 3e-3, weightDecay: 0.05, labelSmoothing: 0.1, clipNorm: 0.5, schedule: 'cosine', warmupEpochs: 2,
    batchSize: 8, epochs: 6, batchNorm: true, activation: 'silu', seed: 4, threads: 2, restoreBest: false,
  })
})

test('the levers reach the engine: each changes the trained weights, the defaults do not', async (t) => {
  const base: TrainOptions = { data, hidden: [16], batchSize: 16, epochs: 2, seed: 9, threads: 1, earlyStopping: false }
  const w = async (o: Partial<TrainOptions>) => (await train({ ...base, ...o })).model.getWeights()
  const plain = await w({})
  t.deepEqual(await w({ activation: 'relu', dropout: 0, batchNorm: false, labelSmoothing: 0, momentum: 0, warmupEpochs: 0 }), plain, 'defaults given explicitly: the same run')
  for (const o of [{ activation: 'gelu' }, { dropout: 0.3 }, { batchNorm: true }, { labelSmoothing: 0.2 }, { clipNorm: 0.01 }, { optimizer: 'adamw' }, { warmupEpochs: 1 }] as Partial<TrainOptions>[]) {
    t.notDeepEqual(await w(o), plain, JSON.stringify(o))
  }
  const r = await train({ ...base, activation: 'gelu', dropout: 0.25, batchNorm: true, bnMomentum: 0.2 })
  t.is(r.model.activation, 'gelu')
  t.deepEqual(r.model.dropout, [0.25])
  t.true(r.model.batchNorm)
  t.is(r.model.bnMomentum, 0.2)
  t.deepEqual(r.history.map((h) => h.lr), [1e-3, 1e-3])
  const warm = await train({ ...base, schedule: 'cosine', warmupEpochs: 1, epochs: 3 })
  t.deepEqual(warm.history.map((h) => h.lr), [0.5e-3, 1e-3, 1e-3 - (1e-3 - 1e-5) * (1 - Math.cos(Math.PI / 2)) / 2], 'warm-up, then cosine over the remaining epochs')
})

test('a Trial with batch norm + dropout: snapshot, restore into a new trial, continue exactly', async (t) => {
  const n = data.labels.length
  const cut = Math.floor(n * 0.8)
  const part = (a: number, b: number) => ({ images: data.images.subarray(a * 64, b * 64), labels: Int32Array.from(data.labels.subarray(a, b)) })
  const td = trialData(part(0, cut), part(cut, n), 64, 5)
  const config = resolveModelConfig({ seed: 11, hidden: [16, 8], batchSize: 32, epochs: 4, batchNorm: true, dropout: 0.2, optimizer: 'sgd', momentum: 0.8, lr: 0.05 })
  const straight = new Trial(config, td, { threads: 1 })
  await straight.advance(4)
  const first = new Trial(config, td, { threads: 1 })
  await first.advance(2)
  const snap = first.snapshot()
  t.is(snap.model!.norm!.length, 8)
  t.true(snap.model!.m.length > 4, 'the momentum buffer has γ/β entries')
  const second = new Trial(config, td, { threads: 1 })
  second.restore(snap)
  await second.advance(4)
  t.deepEqual(second.model.getWeights(), straight.model.getWeights())
  t.deepEqual(second.model.getNormState(), straight.model.getNormState())
  t.deepEqual(noSeconds(second.history), noSeconds(straight.history))
  // restore-best puts the best epoch's norm state back with its weights
  straight.finish()
  second.finish()
  t.deepEqual(second.model.getNormState(), straight.model.getNormState())
})

test('a run directory of a gelu + batch norm + dropout model predicts as the trained model (Node API and CLI)', async (t) => {
  const out = newDir()
  const r = await train({ data, hidden: [16], activation: 'gelu', batchNorm: true, dropout: 0.3, batchSize: 16, epochs: 3, seed: 2, threads: 1, out })
  const file = decodeModel(readFileSync(join(out, 'model.safetensors')))
  t.is(file.meta.version, 2)
  t.is(file.meta.activation, 'gelu')
  t.true(file.meta.batchNorm)
  t.deepEqual(file.meta.dropout, [0.3])
  t.is(file.norm.length, 4)
  const loaded = await loadTrainedModel(join(out, 'model.safetensors'), { threads: 1 })
  const images = data.images.subarray(0, 50 * 64)
  const want = await r.model.predictProba(new Dataset(images, null, 64))
  t.deepEqual(await loaded.model.predictProba(new Dataset(images, null, 64)), want)
  // kana-native predict with the CLI
  writeFileSync(join(out, 'X.npy'), npy('|u1', [50, 64], images))
  const p = spawnSync(process.execPath, [bin, 'predict', '--model', join(out, 'model.safetensors'), '--images', join(out, 'X.npy'), '--out', join(out, 'p.csv')], { encoding: 'utf8' })
  t.is(p.status, 0, p.stderr)
  const rows = readFileSync(join(out, 'p.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',').slice(-5).map(Number))
  t.is(rows.length, 50)
  rows.forEach((row, i) => row.forEach((x, k) => t.true(Math.abs(x - want[i * 5 + k]) < 1e-6, `row ${i} class ${k}`)))
})

test('CLI: bad values of the new settings are refused before any work, naming the setting', (t) => {
  const dir = mkdtempSync(join(tmp, 'cli-'))
  const cases: [string[], RegExp][] = [
    [['--dropout', '-0.1'], /dropout must be a rate in \[0, 1\)/],
    [['--dropout', '1'], /dropout must be a rate in \[0, 1\)/],
    [['--label-smoothing', '1'], /labelSmoothing must be a number in \[0, 1\), got 1/],
    [['--label-smoothing', '-0.1'], /labelSmoothing must be a number in \[0, 1\), got -0.1/],
    [['--clip-norm', '0'], /clipNorm must be a finite number > 0, got 0/],
    [['--clip-norm', '-1'], /clipNorm must be a finite number > 0, got -1/],
    [['--activation', 'tanh'], /activation|Invalid values/],
    [['--batch-norm', '--batch-size', '1'], /batchSize must be ≥ 2 with batchNorm/],
    [['--optimizer', 'adam', '--momentum', '0.9'], /momentum is only used by optimizers gd and sgd/],
    [['--weight-decay', '0.1'], /weightDecay is only used by optimizer adamw/],
  ]
  for (const [args, message] of cases) {
    // the images do not exist: a refusal that names the setting came before any loading
    const p = spawnSync(process.execPath, [bin, 'train', '--images', 'none.npy', '--labels', 'none.npy', '--out', join(dir, 'out'), ...args], { cwd: dir, encoding: 'utf8' })
    t.not(p.status, 0, args.join(' '))
    t.regex(p.stderr, message, args.join(' '))
    t.notRegex(p.stderr, /none\.npy/, `${args.join(' ')}: refused before reading the data`)
    t.false(existsSync(join(dir, 'out')), 'no run directory')
  }
})

test('--config: the new settings are keys of train\'s file', async (t) => {
  const dir = mkdtempSync(join(tmp, 'cfg-'))
  writeFileSync(join(dir, 'X.npy'), npy('|u1', [data.labels.length, 64], data.images))
  writeFileSync(join(dir, 'y.npy'), npy('<i4', [data.labels.length], Int32Array.from(data.labels)))
  writeFileSync(join(dir, 'c.json'), JSON.stringify({
    images: 'X.npy', labels: 'y.npy', hidden: [12], epochs: 2, batchSize: 16, seed: 1, threads: 1,
    activation: 'silu', dropout: [0.1], batchNorm: true, labelSmoothing: 0.05, optimizer: 'adamw', weightDecay: 0.02, schedule: 'one-cycle', warmupEpochs: 0,
  }))
  const p = spawnSync(process.execPath, [bin, 'train', '--config', join(dir, 'c.json'), '--out', join(dir, 'run'), '--json'], { cwd: dir, encoding: 'utf8' })
  t.is(p.status, 0, p.stderr)
  const cfg = JSON.parse(readFileSync(join(dir, 'run', 'config.json'), 'utf8'))
  t.like(cfg, { activation: 'silu', dropout: [0.1], batchNorm: true, labelSmoothing: 0.05, optimizer: 'adamw', weightDecay: 0.02, schedule: 'one-cycle' })
  const file = decodeModel(readFileSync(join(dir, 'run', 'model.safetensors')))
  t.is(file.meta.activation, 'silu')
  t.is(file.norm.length, 4)
})

test('a checkpoint written before the F1 settings existed resumes with their defaults', async (t) => {
  const dir = newDir()
  const ac = new AbortController()
  const opts: TrainOptions = { data, hidden: [12], batchSize: 16, epochs: 3, seed: 8, threads: 1 }
  await t.throwsAsync(train({ ...opts, out: dir, signal: ac.signal, onEpoch: (r) => void (r.epoch === 1 && ac.abort()) }), { name: 'AbortError' })
  const path = join(dir, 'checkpoint', 'checkpoint.json')
  const { integrity: _, ...ix } = JSON.parse(readFileSync(path, 'utf8'))
  for (const k of ['warmupEpochs', 'pctStart', 'divFactor', 'finalDivFactor', 'activation', 'leakySlope', 'dropout', 'batchNorm', 'bnMomentum', 'bnEps', 'labelSmoothing', 'weightDecay', 'momentum', 'nesterov']) delete ix.config[k]
  writeFileSync(path, sealJson(ix))
  const got = await train({ resume: dir, data })
  const want = await train(opts)
  t.deepEqual(got.model.getWeights(), want.model.getWeights())
})

// The new layers and optimisers (issue F1) through the binding and the MLP wrapper: options and
// their defaults, the norm state, resume, and a specific error for each bad setting. The numerics
// themselves are checked in Rust (crates/kana-core/tests/layers.rs) and against the reference.
import test from 'ava'
import { Dataset, MLP } from '../index'

/** Seeded test data (a small LCG: the data only has to be fixed, not good). */
function randomData(n: number, features: number, classes: number, seed: number) {
  let s = seed >>> 0
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32
  const images = new Uint8Array(n * features).map(() => Math.floor(next() * 256))
  const labels = new Int32Array(n).map(() => Math.floor(next() * classes))
  return new Dataset(images, labels, features)
}

const same = (a: Float32Array[], b: Float32Array[]) => a.length === b.length && a.every((x, i) => x.length === b[i].length && x.every((v, j) => Object.is(v, b[i][j])))

test('the defaults are the network as before: no options, explicit defaults and the old call give identical weights', async (t) => {
  const data = randomData(300, 20, 4, 1)
  const fit = { optimizer: 'adam' as const, lr: 1e-2, batchSize: 32, epochs: 2 }
  const plain = new MLP({ layers: [20, 16, 8, 4], seed: 5, threads: 2 })
  const explicit = new MLP({ layers: [20, 16, 8, 4], seed: 5, threads: 2, activation: 'relu', dropout: [0, 0], batchNorm: false })
  await plain.fit(data, fit)
  await explicit.fit(data, { ...fit, labelSmoothing: 0, momentum: undefined })
  t.true(same(plain.getWeights(), explicit.getWeights()))
  t.deepEqual(plain.getNormState(), [])
  t.is(plain.activation, 'relu')
  t.deepEqual([plain.dropout, plain.batchNorm, plain.bnMomentum, plain.bnEps, plain.leakySlope], [[0, 0], false, 0.1, 1e-5, undefined])
  // momentum 0 is plain SGD, bit for bit; so is AdamW's weightDecay 0 against Adam
  const sgd = new MLP({ layers: [20, 8, 4], seed: 2, threads: 1 })
  const sgd0 = new MLP({ layers: [20, 8, 4], seed: 2, threads: 1 })
  await sgd.fit(data, { optimizer: 'sgd', lr: 0.1, batchSize: 16 })
  await sgd0.fit(data, { optimizer: 'sgd', lr: 0.1, batchSize: 16, momentum: 0, nesterov: false })
  t.true(same(sgd.getWeights(), sgd0.getWeights()))
  const adam = new MLP({ layers: [20, 8, 4], seed: 2, threads: 1 })
  const adamw = new MLP({ layers: [20, 8, 4], seed: 2, threads: 1 })
  await adam.fit(data, { optimizer: 'adam', batchSize: 16 })
  await adamw.fit(data, { optimizer: 'adamw', weightDecay: 0, batchSize: 16 })
  t.true(same(adam.getWeights(), adamw.getWeights()))
})

test('the model reports its architecture options', (t) => {
  const m = new MLP({ layers: [10, 6, 5, 3], seed: 1, threads: 1, activation: 'leaky-relu', leakySlope: 0.2, dropout: [0.1, 0.3], batchNorm: true, bnMomentum: 0.05, bnEps: 1e-3 })
  t.deepEqual([m.activation, m.leakySlope, m.dropout, m.batchNorm, m.bnMomentum, m.bnEps], ['leaky-relu', Math.fround(0.2), [0.1, 0.3], true, 0.05, 1e-3])
  t.true(Object.isFrozen(m.dropout))
  const one = new MLP({ layers: [10, 6, 5, 3], seed: 1, threads: 1, activation: 'gelu', dropout: 0.25 })
  t.deepEqual([one.activation, one.dropout], ['gelu', [0.25, 0.25]])
})

test('each bad architecture setting is refused with an error naming it', (t) => {
  const layers = [8, 6, 5, 3]
  const bad: [Record<string, unknown>, ErrorConstructor, RegExp][] = [
    [{ activation: 'tanh' }, RangeError, /^activation must be 'relu', 'leaky-relu', 'silu' or 'gelu', got 'tanh'$/],
    [{ activation: 3 }, TypeError, /options\.activation must be a string/],
    [{ leakySlope: 0.1 }, RangeError, /leakySlope is only used by activation 'leaky-relu'/],
    [{ activation: 'leaky-relu', leakySlope: -1 }, RangeError, /leakySlope must be a finite number ≥ 0/],
    [{ dropout: -0.1 }, RangeError, /^dropout must be in \[0, 1\), got -0\.1$/],
    [{ dropout: 1 }, RangeError, /^dropout must be in \[0, 1\), got 1$/],
    [{ dropout: [0.1, 1.5] }, RangeError, /^dropout\[1\] must be in \[0, 1\), got 1\.5$/],
    [{ dropout: [0.1] }, RangeError, /dropout must list one rate per hidden layer \(2\), got 1/],
    [{ dropout: 'half' }, TypeError, /options\.dropout must be a number/],
    [{ dropout: NaN }, RangeError, /options\.dropout must be a finite number/],
    [{ batchNorm: 1 }, TypeError, /options\.batchNorm must be a boolean/],
    [{ bnMomentum: 0.2 }, RangeError, /bnMomentum is only used with batchNorm/],
    [{ batchNorm: true, bnMomentum: 1 }, RangeError, /bnMomentum must be in \[0, 1\), got 1/],
    [{ batchNorm: true, bnEps: 0 }, RangeError, /bnEps must be a positive finite number, got 0/],
  ]
  for (const [opts, kind, message] of bad) {
    t.throws(() => new MLP({ layers, seed: 1, threads: 1, ...opts }), { instanceOf: kind, message }, JSON.stringify(opts))
  }
})

test('each bad training setting is refused before any step, with an error naming it', async (t) => {
  const data = randomData(40, 8, 3, 2)
  const m = new MLP({ layers: [8, 6, 3], seed: 1, threads: 1, batchNorm: true })
  const bad: [Record<string, unknown>, ErrorConstructor, RegExp][] = [
    [{ labelSmoothing: 1 }, RangeError, /^labelSmoothing must be in \[0, 1\), got 1$/],
    [{ labelSmoothing: -0.1 }, RangeError, /^labelSmoothing must be in \[0, 1\), got -0\.1$/],
    [{ clipNorm: 0 }, RangeError, /^clipNorm must be a positive finite number, got 0$/],
    [{ clipNorm: -1 }, RangeError, /^clipNorm must be a positive/],
    [{ clipNorm: Infinity }, RangeError, /options\.clipNorm must be a finite number/],
    [{ optimizer: 'adam', weightDecay: 0.01 }, RangeError, /^weightDecay is only used by optimizer 'adamw', not 'adam'/],
    [{ optimizer: 'sgd', weightDecay: 0.01 }, RangeError, /^weightDecay is only used by optimizer 'adamw', not 'sgd'/],
    [{ optimizer: 'adamw', weightDecay: -1 }, RangeError, /^weightDecay must be a finite number ≥ 0, got -1$/],
    [{ optimizer: 'sgd', momentum: 1 }, RangeError, /^momentum must be in \[0, 1\), got 1$/],
    [{ optimizer: 'gd', momentum: -0.5 }, RangeError, /^momentum must be in \[0, 1\), got -0\.5$/],
    [{ optimizer: 'adam', momentum: 0.9 }, RangeError, /^momentum is only used by optimizers 'gd' and 'sgd', not 'adam'$/],
    [{ optimizer: 'sgd', nesterov: true }, RangeError, /^nesterov needs a momentum > 0$/],
    [{ optimizer: 'adamw', nesterov: true }, RangeError, /^nesterov is only used by optimizers 'gd' and 'sgd'/],
    [{ optimizer: 'sgd', momentum: 0.9, nesterov: 'yes' }, TypeError, /options\.nesterov must be a boolean/],
    [{ batchSize: 1 }, RangeError, /^batchSize 1 cannot be used with batch norm/],
    [{ optimizer: 'rmsprop' }, RangeError, /optimizer must be 'gd', 'sgd', 'adam' or 'adamw', got 'rmsprop'/],
  ]
  for (const [opts, kind, message] of bad) {
    await t.throwsAsync(m.fit(data, opts as object), { instanceOf: kind, message }, JSON.stringify(opts))
  }
  t.is(m.steps, 0, 'no step was taken')
  t.deepEqual(m.getNormState()[2], new Float32Array(6), 'the running mean is untouched')
})

test('norm state: layout, round trip, and strict validation', async (t) => {
  const m = new MLP({ layers: [8, 6, 5, 3], seed: 1, threads: 1, batchNorm: true })
  const init = m.getNormState()
  t.is(init.length, 8)
  t.deepEqual(init.map((a) => a.length), [6, 6, 6, 6, 5, 5, 5, 5])
  t.deepEqual([init[0][0], init[1][0], init[2][0], init[3][0]], [1, 0, 0, 1], 'γ = 1, β = 0, mean 0, variance 1')
  await m.fit(randomData(64, 8, 3, 3), { optimizer: 'adam', lr: 1e-2, batchSize: 16, epochs: 2 })
  const trained = m.getNormState()
  t.false(same(trained, init))
  const copy = new MLP({ layers: [8, 6, 5, 3], seed: 9, threads: 1, batchNorm: true })
  copy.setNormState(trained)
  t.true(same(copy.getNormState(), trained))
  const bad: [(s: Float32Array[]) => unknown[], ErrorConstructor, RegExp][] = [
    [(s) => s.slice(1), RangeError, /norm state must hold 8 arrays \(γ, β, running mean and variance for each of 2 hidden layers\), got 7/],
    [(s) => s.map((a, i) => (i === 4 ? a.subarray(1) : a)), RangeError, /norm state: layer 2 gamma must have 5 values, got 4/],
    [(s) => s.map((a, i) => (i === 2 ? Float32Array.of(...a.subarray(0, 5), NaN) : a)), RangeError, /norm state: layer 1 runningMean\[5\] is NaN, values must be finite/],
    [(s) => s.map((a, i) => (i === 7 ? new Float32Array(5) : a)), RangeError, /norm state: layer 2 runningVar\[0\] is 0, variances must be > 0/],
    [(s) => s.map((a, i) => (i === 3 ? Float32Array.of(1, 1, -1, 1, 1, 1) : a)), RangeError, /runningVar\[2\] is -1/],
    [(s) => s.map((a, i) => (i === 0 ? Float64Array.from(a) : a)), TypeError, /normState\[0\] must be a Float32Array/],
    [() => 'not an array' as unknown as unknown[], TypeError, /normState must be an array/],
  ]
  for (const [make, kind, message] of bad) {
    t.throws(() => copy.setNormState(make(trained) as Float32Array[]), { instanceOf: kind, message })
  }
  t.true(same(copy.getNormState(), trained), 'a refused state changes nothing')
  const plain = new MLP({ layers: [8, 3], seed: 1, threads: 1 })
  plain.setNormState([])
  t.throws(() => plain.setNormState([new Float32Array(3)]), { instanceOf: RangeError, message: /the model has no batch norm/ })
})

test('evaluation and prediction use the running statistics and no dropout', async (t) => {
  const data = randomData(50, 12, 4, 4)
  const m = new MLP({ layers: [12, 10, 4], seed: 3, threads: 2, batchNorm: true, dropout: 0.5, activation: 'silu' })
  await m.fit(data, { optimizer: 'adam', lr: 1e-2, batchSize: 10, epochs: 2 })
  const all = await m.predictProba(data)
  // one sample alone, and the same sample first among very different ones
  const sample = Uint8Array.from({ length: 12 }, (_, i) => i * 20)
  const first = new Dataset(sample, [0], 12)
  const inBatch = new Dataset(Uint8Array.from([...sample, ...new Uint8Array(36).fill(250)]), [0, 1, 2, 3], 12)
  const alone = await m.predictProba(first)
  const among = await m.predictProba(inBatch)
  for (let j = 0; j < 4; j++) t.true(Math.abs(alone[j] - among[j]) < 1e-6, `class ${j}: ${alone[j]} vs ${among[j]}`)
  t.deepEqual(await m.predictProba(data), all, 'prediction is deterministic (no dropout)')
  t.deepEqual(await m.evaluate(data), await m.evaluate(data))
})

test('training state: layout with batch norm and momentum, and a resume that continues bit for bit', async (t) => {
  const data = randomData(200, 16, 5, 5)
  const options = { layers: [16, 12, 8, 5], seed: 21, batchNorm: true, dropout: [0.2, 0.1], activation: 'gelu' as const }
  for (const fit of [
    { optimizer: 'sgd' as const, lr: 0.05, momentum: 0.9, nesterov: true, batchSize: 32, labelSmoothing: 0.1, clipNorm: 1 },
    { optimizer: 'adamw' as const, lr: 1e-2, weightDecay: 0.05, batchSize: 32, l2: 1e-4 },
  ]) {
    const whole = new MLP({ ...options, threads: 2 })
    await whole.fit(data, { ...fit, epochs: 3 })
    const first = new MLP({ ...options, threads: 2 })
    await first.fit(data, { ...fit, epochs: 1 })
    const state = first.getTrainingState()
    // W, b, γ, β for each hidden layer, then W, b of the output layer; momentum keeps only m
    t.deepEqual(state.m.map((a) => a.length), [16 * 12, 12, 12, 12, 12 * 8, 8, 8, 8, 8 * 5, 5])
    t.is(state.v.length, fit.optimizer === 'sgd' ? 0 : 10)
    const resumed = new MLP({ ...options, threads: 1 })
    resumed.setWeights(first.getWeights())
    resumed.setNormState(first.getNormState())
    resumed.setTrainingState(state)
    await resumed.fit(data, { ...fit, epochs: 2 })
    t.true(same(resumed.getWeights(), whole.getWeights()), `${fit.optimizer}: weights`)
    t.true(same(resumed.getNormState(), whole.getNormState()), `${fit.optimizer}: norm state`)
    t.true(same(resumed.getTrainingState().m, whole.getTrainingState().m), `${fit.optimizer}: optimiser state`)
  }
  const m = new MLP({ ...options, threads: 1 })
  t.throws(() => m.setTrainingState({ ...m.getTrainingState(), step: 1, m: [new Float32Array(3)], v: [] }), { instanceOf: RangeError, message: /^m must be empty or hold 10 arrays \(W, b \(and γ, β for hidden layers\) per layer\), got 1$/ })
})

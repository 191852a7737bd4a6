// The native engine from Node: parity with the TypeScript reference, asynchronous behaviour,
// and a specific error for each kind of bad argument.
import test from 'ava'
import { Dataset, MLP, ReferenceMLP, native } from '../index'
import { mulberry32 } from '../src/data/split'

/** Seeded uniform generator for test data: the split's own mulberry32. */
const rand = mulberry32

function randomData(n: number, features: number, classes: number, seed: number) {
  const r = rand(seed)
  const images = new Uint8Array(n * features).map(() => Math.floor(r() * 256))
  const labels = new Int32Array(n).map(() => Math.floor(r() * classes))
  return { images, labels }
}

function toReference(layers: number[], weights: Float32Array[]) {
  const init = layers.slice(1).map((_, l) => ({ weights: weights[2 * l], bias: weights[2 * l + 1] }))
  return new ReferenceMLP(layers, init)
}

function maxAbsDiff(a: Float32Array[], b: { weights: Float32Array; bias: Float32Array }[]) {
  let worst = 0
  b.forEach((layer, l) => {
    for (const [x, y] of [[a[2 * l], layer.weights], [a[2 * l + 1], layer.bias]] as const) {
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]))
    }
  })
  return worst
}

test('native Adam with L2 matches the TypeScript reference for 24 mini-batch steps', async (t) => {
  const layers = [64, 32, 16, 10]
  const model = new MLP({ layers, seed: 3, threads: 2 })
  const ref = toReference(layers, model.getWeights())
  // Four fixed mini-batches, visited in turn: each is its own Dataset with batchSize = its length,
  // so the engine takes exactly one step on exactly that batch (no shuffling to reproduce).
  const batches = [0, 1, 2, 3].map((i) => randomData(16, 64, 10, 100 + i))
  const datasets = batches.map((b) => new Dataset(b.images, b.labels, 64))
  const opts = { optimizer: 'adam' as const, lr: 1e-3, l2: 1e-3, batchSize: 16 }
  for (let step = 0; step < 24; step++) {
    const b = batches[step % 4]
    const got = await model.fit(datasets[step % 4], opts)
    const want = ref.step(b.images, b.labels, 16, { optimizer: 'adam', lr: 1e-3, l2: 1e-3 })
    t.true(Math.abs(got.loss - want.loss) < 1e-5, `step ${step}: loss ${got.loss} vs reference ${want.loss}`)
  }
  const diff = maxAbsDiff(model.getWeights(), ref.getWeights())
  t.log(`max |Δw| after 24 Adam steps: ${diff.toExponential(2)}`)
  t.true(diff <= 1e-4, `max |Δw| = ${diff}`)
  t.is(model.steps, 24)
})

test('native full-batch gradient descent and SGD match the reference', async (t) => {
  const layers = [20, 12, 5]
  const { images, labels } = randomData(300, 20, 5, 7)
  for (const optimizer of ['gd', 'sgd'] as const) {
    const model = new MLP({ layers, seed: 11, threads: 1 })
    const ref = toReference(layers, model.getWeights())
    for (let step = 0; step < 20; step++) {
      await model.fit(images, labels, { optimizer, lr: 0.3, l2: 0.01, batchSize: 300 })
      ref.step(images, labels, 300, { optimizer: 'sgd', lr: 0.3, l2: 0.01 })
    }
    const diff = maxAbsDiff(model.getWeights(), ref.getWeights())
    t.true(diff <= 1e-4, `${optimizer}: max |Δw| = ${diff}`)
    const ev = await model.evaluate(images, labels)
    const rv = ref.evaluate(images, labels, 300)
    t.true(Math.abs(ev.loss - rv.loss) < 1e-5)
    t.deepEqual([...ev.confusion], [...rv.confusion])
  }
})

test('predictProba returns N×K rows that sum to 1 and agree with the reference', async (t) => {
  const layers = [30, 16, 7]
  const model = new MLP({ layers, seed: 5, threads: 2 })
  const { images } = randomData(3000, 30, 7, 9)
  const probs = await model.predictProba(images)
  t.is(probs.length, 3000 * 7)
  const ref = toReference(layers, model.getWeights()).forward(images, 3000)
  let worst = 0
  for (let r = 0; r < 3000; r++) {
    let s = 0
    for (let k = 0; k < 7; k++) {
      s += probs[r * 7 + k]
      worst = Math.max(worst, Math.abs(probs[r * 7 + k] - ref[r * 7 + k]))
    }
    t.true(Math.abs(s - 1) < 1e-5)
  }
  t.true(worst < 1e-6, `max |Δp| = ${worst}`)
})

test('same seed and threads give bit-identical weights; the seed is reported', async (t) => {
  const { images, labels } = randomData(2000, 50, 4, 1)
  const run = async () => {
    const m = new MLP({ layers: [50, 40, 4], seed: 42, threads: 2 })
    await m.fit(images, labels, { epochs: 2, batchSize: 64, l2: 1e-3 })
    return m.getWeights()
  }
  t.deepEqual(await run(), await run())
  t.is(typeof new MLP({ layers: [2, 2] }).seed, 'number')
})

// serial: the other tests' synchronous reference computations would starve the timer
test.serial('the event loop keeps ticking while an epoch runs', async (t) => {
  const { images, labels } = randomData(30000, 784, 10, 2)
  const model = new MLP({ layers: [784, 256, 10], seed: 1, threads: 1 })
  const data = new Dataset(images, labels)
  let ticks = 0
  const timer = setInterval(() => ticks++, 5)
  const started = Date.now()
  await model.fit(data, { batchSize: 32 })
  const ms = Date.now() - started
  clearInterval(timer)
  t.log(`epoch of 30,000 took ${ms} ms; timer fired ${ticks} times`)
  t.true(ms > 50, 'the epoch should be long enough to observe')
  t.true(ticks >= Math.min(5, ms / 20), `only ${ticks} ticks in ${ms} ms`)
})

test('an epoch can be aborted between batches and reports progress', async (t) => {
  const { images, labels } = randomData(40000, 784, 10, 3)
  const model = new MLP({ layers: [784, 128, 10], seed: 1, threads: 1 })
  const data = new Dataset(images, labels)
  const ac = new AbortController()
  const seen: number[] = []
  const run = model.fit(data, {
    batchSize: 8,
    signal: ac.signal,
    progressInterval: 5,
    onProgress: (p) => {
      seen.push(p.step)
      if (p.step > 0) ac.abort()
    },
  })
  const err = await t.throwsAsync(run)
  t.is(err?.name, 'AbortError')
  t.true(seen.some((s) => s > 0) && seen.every((s) => s <= 5000))
  // aborted before starting: rejects at once, nothing runs
  await t.throwsAsync(model.fit(data, { signal: AbortSignal.abort() }), { name: 'AbortError' })
  // the model is usable afterwards
  const ev = await model.evaluate(data)
  t.true(Number.isFinite(ev.loss))
})

test('a Rust panic becomes a JavaScript Error and the process lives on', async (t) => {
  t.throws(() => native.debugPanic('sync'), { instanceOf: Error, message: /Rust panic.*deliberate panic/ })
  await t.throwsAsync(native.debugPanic('async') as Promise<void>, { instanceOf: Error, message: /Rust panic.*worker thread/ })
  const m = new MLP({ layers: [4, 2], seed: 1, threads: 1 })
  const r = await m.fit(new Uint8Array(8), [0, 1], { batchSize: 1 })
  t.true(Number.isFinite(r.loss))
})

test('a busy or freed model gives a clear error instead of racing', async (t) => {
  const { images, labels } = randomData(20000, 100, 3, 4)
  const model = new MLP({ layers: [100, 64, 3], seed: 1, threads: 1 })
  const data = new Dataset(images, labels, 100)
  const first = model.fit(data, { batchSize: 4 })
  await t.throwsAsync(model.fit(data, { batchSize: 4 }), { message: /busy with an epoch of training/ })
  t.throws(() => model.getWeights(), { message: /busy with an epoch of training/ })
  t.throws(() => model.free(), { message: /while it is busy/ })
  await first
  model.free()
  t.throws(() => model.getWeights(), { message: /the model was freed/ })
  await t.throwsAsync(model.predictProba(data), { message: /the model was freed/ })
})

test('each invalid argument gets its specific error', async (t) => {
  t.throws(() => new MLP({ layers: [784, 0, 10] }), { instanceOf: RangeError, message: 'layers[1] must be an integer in 1..=1048576, got 0' })
  t.throws(() => new MLP({ layers: [784, -5, 10] }), { instanceOf: RangeError, message: /layers\[1\]/ })
  t.throws(() => new MLP({ layers: [784] }), { instanceOf: RangeError, message: /at least an input and an output/ })
  t.throws(() => new MLP({ layers: [784, 10], threads: 0 }), { instanceOf: RangeError, message: /threads/ })
  t.throws(() => new MLP({ layers: [784, 10], seed: 1.5 }), { instanceOf: RangeError, message: /seed/ })
  const m = new MLP({ layers: [4, 3, 2], seed: 1, threads: 1 })
  // images whose length is not a multiple of the input size
  t.throws(() => new Dataset(new Uint8Array(7), null, 4), { instanceOf: RangeError, message: 'images has 7 bytes, not a multiple of 4 features per sample' })
  t.throws(() => new Dataset(new Float32Array(8) as unknown as Uint8Array, null, 4), { instanceOf: TypeError, message: /Uint8Array/ })
  t.throws(() => new Dataset(new Uint8Array(8), new Int32Array(3), 4), { instanceOf: RangeError, message: 'labels has 3 entries but images holds 2 samples' })
  t.throws(() => new Dataset(new Uint8Array(8), new Int32Array([0, -1]), 4), { instanceOf: RangeError, message: /labels\[1\] = -1/ })
  // label ≥ classes
  await t.throwsAsync(m.fit(new Uint8Array(8), [0, 2], { batchSize: 1 }), { instanceOf: RangeError, message: 'labels[1] = 2 is not a class index in 0..2' })
  // batch size 0 / missing learning rate / unknown optimiser
  await t.throwsAsync(m.fit(new Uint8Array(8), [0, 1], { batchSize: 0 }), { instanceOf: RangeError, message: 'batchSize must be at least 1' })
  await t.throwsAsync(m.fit(new Uint8Array(8), [0, 1], { lr: -1 }), { instanceOf: RangeError, message: /lr must be a positive/ })
  await t.throwsAsync(m.fit(new Uint8Array(8), [0, 1], { optimizer: 'rmsprop' as 'adam' }), { instanceOf: RangeError, message: /optimizer must be 'gd', 'sgd', 'adam' or 'adamw'/ })
  // data of the wrong width for this network
  await t.throwsAsync(m.evaluate(new Dataset(new Uint8Array(10), [0, 1], 5)), { instanceOf: RangeError, message: /5 features per sample but the network takes 4/ })
  // NaN in weights passed to setWeights; wrong count; wrong type
  const w = m.getWeights()
  w[2][3] = NaN
  t.throws(() => m.setWeights(w), { instanceOf: RangeError, message: 'weights: layer 2 W[3] is NaN, values must be finite' })
  t.throws(() => m.setWeights(w.slice(0, 3)), { instanceOf: RangeError, message: /must hold 4 arrays/ })
  t.throws(() => m.setWeights([new Float32Array(11), w[1], w[2], w[3]]), { instanceOf: RangeError, message: /layer 1 W must have 12 values, got 11/ })
  t.throws(() => m.setWeights([new Float64Array(12) as unknown as Float32Array, w[1], w[2], w[3]]), { instanceOf: TypeError, message: 'weights[0] must be a Float32Array' })
  // a handle of the wrong kind
  t.throws(() => native.modelInfo(new Dataset(new Uint8Array(4), null, 4).handle as never), { instanceOf: TypeError, message: 'model must be a kana-native model handle' })
  t.throws(() => native.modelInfo({} as never), { instanceOf: TypeError })
})

test('divergence stops the epoch with a message naming the learning rate', async (t) => {
  const { images, labels } = randomData(500, 20, 5, 5)
  const m = new MLP({ layers: [20, 50, 5], seed: 1, threads: 1 })
  const err = await t.throwsAsync(m.fit(images, labels, { optimizer: 'sgd', lr: 1e30, batchSize: 10 }))
  t.is((err as NodeJS.ErrnoException).code, 'KANA_DIVERGED')
  t.regex(err!.message, /learning rate \(1e30\) is probably too high/)
})

test('training state round-trips: a resumed model continues exactly like an uninterrupted one', async (t) => {
  const { images, labels } = randomData(1000, 30, 4, 6)
  const data = new Dataset(images, labels, 30)
  const opts = { batchSize: 50, l2: 1e-3 }
  const straight = new MLP({ layers: [30, 20, 4], seed: 9, threads: 2 })
  await straight.fit(data, { ...opts, epochs: 4 })
  const first = new MLP({ layers: [30, 20, 4], seed: 9, threads: 2 })
  await first.fit(data, { ...opts, epochs: 2 })
  const resumed = new MLP({ layers: [30, 20, 4], seed: 123, threads: 2 })
  resumed.setWeights(first.getWeights())
  resumed.setTrainingState(first.getTrainingState())
  await resumed.fit(data, { ...opts, epochs: 2 })
  t.deepEqual(resumed.getWeights(), straight.getWeights())
})

test('an epoch aborted part-way and resumed in a new model ends bit-identical to an uninterrupted one', async (t) => {
  const { images, labels } = randomData(6000, 64, 5, 8)
  const data = new Dataset(images, labels, 64)
  const opts = { batchSize: 4, l2: 1e-3 }
  const straight = new MLP({ layers: [64, 32, 5], seed: 4, threads: 2 })
  const want = await straight.fit(data, { ...opts, epochs: 2 })

  const first = new MLP({ layers: [64, 32, 5], seed: 4, threads: 2 })
  await first.fit(data, opts)
  // Aborting right after the call starts is deterministic whatever the machine's load: the
  // engine finishes the batch it is on (the first) and stops there.
  const ac = new AbortController()
  const run = first.fit(data, { ...opts, signal: ac.signal })
  ac.abort()
  await t.throwsAsync(run, { name: 'AbortError' })
  const state = first.getTrainingState()
  t.truthy(state.partialEpoch, 'the partial epoch is part of the state')
  t.true(state.partialEpoch!.nextStep > 0 && state.partialEpoch!.nextStep < 1500)

  const resumed = new MLP({ layers: [64, 32, 5], seed: 99, threads: 2 })
  resumed.setWeights(first.getWeights())
  resumed.setTrainingState(state)
  const got = await resumed.fit(data, opts)
  t.deepEqual(resumed.getWeights(), straight.getWeights())
  t.is(got.loss, want.loss, 'the epoch mean includes the batches before the interruption')
  t.is(got.accuracy, want.accuracy)
})

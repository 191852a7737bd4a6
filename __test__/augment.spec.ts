// Training-time augmentation (issue F2): the engine's (kana-core/src/augment.rs, through the
// binding) against the reference's (src/engine/augment.ts), hand-computed transforms, seeding.
import test from 'ava'
import { Dataset, MLP, augmentBatch } from '../src/engine/mlp'
import { augmentBatch as referenceAugment, sample } from '../src/engine/augment'
import { mix32 } from '../src/engine/reference'

/** n seeded 28×28 test images (a hash of the pixel index: fixed, not pretty). */
const images = (n: number, seed = 1) => Uint8Array.from({ length: n * 784 }, (_, i) => mix32(i ^ Math.imul(seed, 0x9e3779b9)) & 255)
const FULL = { rotate: 12, scale: 0.1, shear: 0.15, shift: 1.7, elastic: { alpha: 8, sigma: 3 } }
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

test('the identity transform returns the image bit for bit (engine and reference); elastic α = 0 is the identity', (t) => {
  const x = images(3)
  const unit = Float32Array.from(x, (p) => Math.fround(p / 255))
  t.deepEqual(augmentBatch(x, 3, {}, 5, 7), unit)
  t.deepEqual(augmentBatch(x, 3, { elastic: { alpha: 0, sigma: 4 } }, 5, 7), unit)
  t.deepEqual(referenceAugment(x, 3, 784, {}, 5, 7), Float64Array.from(x, (p) => p / 255))
  t.deepEqual(referenceAugment(x, 3, 784, { elastic: { alpha: 0, sigma: 4 } }, 5, 7), Float64Array.from(x, (p) => p / 255))
  // α = 0 with an affine part: the affine part alone
  const affine = { rotate: 10, shift: 1 }
  t.deepEqual(augmentBatch(x, 3, { ...affine, elastic: { alpha: 0, sigma: 2 } }, 5, 7), augmentBatch(x, 3, affine, 5, 7))
})

test('engine and reference produce the same augmented batch to rounding, for every transform', (t) => {
  const x = images(16, 2)
  for (const opts of [{ rotate: 30 }, { scale: 0.3 }, { shear: 0.4 }, { shift: 3 }, { elastic: { alpha: 20, sigma: 4 } }, FULL]) {
    const e = augmentBatch(x, 16, opts, 123456789, 42)
    const r = referenceAugment(x, 16, 784, opts, 123456789, 42)
    t.true(maxDiff(e, r) < 1e-6, `${JSON.stringify(opts)}: ${maxDiff(e, r)}`)
    t.true(maxDiff(e, Float32Array.from(x, (p) => p / 255)) > 0.1, 'it did transform')
  }
})

test('a 90° rotation and an integer shift of a synthetic image match the hand-computed image (reference; the engine\'s in Rust)', (t) => {
  const x = images(1, 6)
  const id = { theta: 0, s: 1, h: 0, tx: 0, ty: 0 }
  // θ = 90°: u = qy, v = −qx, so X = y and Y = 27 − x: out(y, x) = in(27 − x, y)
  const rot = sample(x, 28, { ...id, theta: Math.PI / 2 })
  const want = new Float64Array(784)
  for (let y = 0; y < 28; y++) for (let c = 0; c < 28; c++) want[y * 28 + c] = x[(27 - c) * 28 + y] / 255
  t.true(maxDiff(rot, want) < 1e-12)
  // shift (2, −3): out(y, x) = in(y + 3, x − 2), 0 where that falls outside
  const sh = sample(x, 28, { ...id, tx: 2, ty: -3 })
  for (let y = 0; y < 28; y++) for (let c = 0; c < 28; c++) want[y * 28 + c] = c >= 2 && y + 3 < 28 ? x[(y + 3) * 28 + c - 2] / 255 : 0
  t.deepEqual(sh, want)
})

test('different seeds, steps and rows give different batches; the same give the same', (t) => {
  const x = images(4, 3)
  const a = augmentBatch(x, 4, FULL, 1, 0)
  t.deepEqual(augmentBatch(x, 4, FULL, 1, 0), a)
  t.notDeepEqual(augmentBatch(x, 4, FULL, 2, 0), a)
  t.notDeepEqual(augmentBatch(x, 4, FULL, 1, 1), a)
  t.notDeepEqual(augmentBatch(x, 4, FULL, 2 ** 32 + 1, 0), a, 'the seed\'s high word counts')
})

test('training with augmentation: seeded, identical with 1 and 2 threads, the identity changes nothing, validation untouched', async (t) => {
  const x = images(64, 4)
  const y = Int32Array.from({ length: 64 }, (_, i) => i % 4)
  const data = new Dataset(x, y, 784)
  const run = async (augment: object | undefined, threads: number) => {
    const m = new MLP({ layers: [784, 16, 4], seed: 3, threads })
    await m.fit(data, { optimizer: 'adam', lr: 1e-3, batchSize: 16, epochs: 2, augment })
    return m
  }
  const plain = await run(undefined, 1)
  t.deepEqual((await run({}, 2)).getWeights(), plain.getWeights())
  const aug1 = await run(FULL, 1)
  const aug2 = await run(FULL, 2)
  t.deepEqual(aug1.getWeights(), aug2.getWeights())
  t.notDeepEqual(aug1.getWeights(), plain.getWeights())
  // evaluate and predict never augment: twice the same, and the same as a fresh copy of the weights
  const e1 = await aug1.evaluate(data)
  const copy = new MLP({ layers: [784, 16, 4], seed: 99, threads: 1 })
  copy.setWeights(aug1.getWeights())
  t.deepEqual(await copy.evaluate(data), e1)
})

test('bad augmentation settings are refused with a message naming the setting', async (t) => {
  const x = images(2)
  t.throws(() => augmentBatch(x, 2, { scale: 1 }, 1, 0), { instanceOf: RangeError, message: 'augment.scale must be in [0, 1), got 1' })
  t.throws(() => augmentBatch(x, 2, { elastic: { alpha: 1, sigma: 0 } }, 1, 0), { message: /augment\.elastic\.sigma/ })
  t.throws(() => augmentBatch(new Uint8Array(2 * 780), 2, {}, 1, 0), { message: /square images/ })
  t.throws(() => referenceAugment(x, 2, 784, { rotate: -1 }, 1, 0), { message: /augment\.rotate/ })
  const m = new MLP({ layers: [20, 4, 2], seed: 1, threads: 1 })
  const d = new Dataset(new Uint8Array(40), new Int32Array(2), 20)
  await t.throwsAsync(m.fit(d, { augment: { rotate: 5 } }), { message: /square images/ })
  await t.throwsAsync(m.fit(d, { augment: { shear: 2 } }), { message: /augment\.shear must be in \[0, 1\]/ })
})

test('the engine trained on augmented batches matches the reference fed the reference\'s augmentation of the same batches', async (t) => {
  const { ReferenceMLP } = await import('../src/engine/reference')
  const { referenceInit } = await import('../src/training/reference-source')
  const n = 12
  const x = images(n, 8)
  const y = Int32Array.from({ length: n }, (_, i) => i % 3)
  const seed = 21
  const engine = new MLP({ layers: [784, 10, 3], seed, threads: 2 })
  const ref = new ReferenceMLP([784, 10, 3], referenceInit(engine.getWeights()))
  for (let step = 0; step < 3; step++) {
    // one optimiser step on the whole batch: rows 0..n-1, the step counter before the step
    await engine.fit(new Dataset(x, y, 784), { optimizer: 'sgd', lr: 0.5, batchSize: n, l2: 0, augment: FULL })
    ref.step(referenceAugment(x, n, 784, FULL, seed, ref.steps), y, n, { optimizer: 'sgd', lr: 0.5 })
  }
  const e = engine.getWeights()
  const r = ref.getWeights64().flatMap((p) => [p.weights, p.bias])
  for (let i = 0; i < e.length; i++) t.true(maxDiff(e[i], r[i]) < 1e-4, `tensor ${i}: ${maxDiff(e[i], r[i])}`)
  // and it is not the unaugmented training
  const plain = new MLP({ layers: [784, 10, 3], seed, threads: 2 })
  for (let step = 0; step < 3; step++) await plain.fit(new Dataset(x, y, 784), { optimizer: 'sgd', lr: 0.5, batchSize: n, l2: 0 })
  t.true(maxDiff(plain.getWeights()[0], e[0]) > 1e-3)
})

test('the flags: --augment, --rotate, --elastic α,σ reach the configuration; bad ones are refused', async (t) => {
  const { parser } = await import('../src/cli/main')
  const { modelSettingsFrom } = await import('../src/cli/args')
  const { resolveModelConfig } = await import('../src/training/config')
  const { augmentOf } = await import('../src/engine/augment')
  const argv = (args: string[]) => modelSettingsFrom(parser(['train', ...args]).parseSync() as Record<string, unknown>)
  t.deepEqual(argv(['--augment', '--rotate', '5', '--elastic', '34,4']), { augment: true, rotate: 5, elastic: [34, 4] })
  const c = resolveModelConfig({ ...argv(['--augment', '--elastic', '34,4']), seed: 1 })
  t.deepEqual(augmentOf(c), { rotate: 12, scale: 0.1, shear: 0.15, shift: 1.7, elastic: { alpha: 34, sigma: 4 } })
  t.is(augmentOf(resolveModelConfig({ ...argv(['--elastic', 'off']), seed: 1 })), null, 'off by default: the images as they are')
  t.throws(() => resolveModelConfig({ ...argv(['--elastic', '34']), seed: 1 }), { message: /^elastic must be off or \[α, σ\]/ })
  t.throws(() => resolveModelConfig({ ...argv(['--rotate', '200']), seed: 1 }), { message: 'rotate must be a number of degrees in [0, 180], got 200' })
})

test('the binding checks the augment option\'s types', async (t) => {
  const m = new MLP({ layers: [784, 4, 2], seed: 1, threads: 1 })
  const d = new Dataset(images(2), new Int32Array(2), 784)
  await t.throwsAsync(m.fit(d, { augment: 5 as never }), { instanceOf: TypeError, message: 'options.augment must be an object' })
  await t.throwsAsync(m.fit(d, { augment: { rotate: '5' } as never }), { instanceOf: TypeError, message: 'options.augment.rotate must be a number' })
  await t.throwsAsync(m.fit(d, { augment: { elastic: { alpha: 1 } } as never }), { instanceOf: TypeError, message: 'options.augment.elastic.sigma is required' })
  t.throws(() => augmentBatch(images(2), 3, {}, 1, 0), { message: /not n = 3 samples/ })
})

// Model files through the engine: a trained model saved and loaded predicts the same
// probabilities bit for bit — version-1 files (the pre-version-2 writer, reproduced in the test),
// and version-2 files with every activation and batch norm.
import test from 'ava'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { Dataset, MLP, type MLPOptions } from '../src/engine/mlp'
import { decodeModel, ModelFileError } from '../src/output/model-file'
import { loadTrainedModel, saveTrainedModel } from '../src/output/saved-model'
import { mulberry32 } from '../src/data/split'
import { encodeModelV1 } from './helpers/model-v1'

function randomData(n: number, features: number, classes: number, seed: number) {
  const r = mulberry32(seed)
  return { images: new Uint8Array(n * features).map(() => Math.floor(r() * 256)), labels: new Int32Array(n).map(() => Math.floor(r() * classes)) }
}

const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]))

function tmp(t: { teardown: (f: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kana-saved-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function trained(options: MLPOptions) {
  const model = new MLP({ threads: 2, ...options })
  const d = randomData(96, options.layers[0], options.layers[options.layers.length - 1], 5)
  await model.fit(new Dataset(d.images, d.labels, options.layers[0]), { optimizer: 'adam', lr: 1e-2, batchSize: 32, epochs: 2 })
  return model
}

test('a version-1 file loads as the ReLU model it was and predicts identically', async (t) => {
  const layers = [20, 12, 8, 4]
  const model = await trained({ layers, seed: 11 })
  const p = path.join(tmp(t), 'v1.safetensors')
  fs.writeFileSync(p, encodeModelV1({ layers, seed: 11, classNames: ['a', 'b', 'c', 'd'] }, model.getWeights()))
  t.is(JSON.parse(JSON.parse(Buffer.from(fs.readFileSync(p).subarray(8, 8 + Number(fs.readFileSync(p).readBigUInt64LE(0)))).toString()).__metadata__['kana-native']).version, 1)
  const loaded = await loadTrainedModel(p, { threads: 2 })
  t.teardown(() => { loaded.model.free(); model.free() })
  t.like(loaded.meta, { version: 1, activation: 'relu', batchNorm: false })
  t.is(loaded.model.activation, 'relu')
  t.false(loaded.model.batchNorm)
  t.deepEqual(loaded.classNames, ['a', 'b', 'c', 'd'])
  const x = randomData(300, 20, 4, 6)
  t.true(same(await loaded.model.predictProba(x.images), await model.predictProba(x.images)), 'probabilities bit for bit')
})

for (const activation of ['relu', 'leaky-relu', 'silu', 'gelu'] as const) {
  test(`version 2: ${activation} with batch norm and dropout saves and loads, predicting identically`, async (t) => {
    const layers = [20, 12, 8, 4]
    const model = await trained({ layers, seed: 12, activation, leakySlope: activation === 'leaky-relu' ? 0.2 : undefined, batchNorm: true, bnEps: 1e-3, dropout: [0.3, 0.1] })
    const p = path.join(tmp(t), 'v2.safetensors')
    await saveTrainedModel(p, model, { classNames: ['a', 'b', 'c', 'd'] })
    const file = decodeModel(fs.readFileSync(p))
    t.like(file.meta, { version: 2, activation, batchNorm: true, bnEps: model.bnEps, dropout: [0.3, 0.1] })
    // The engine keeps the slope in f32 (and reports it so); the file holds what it reports.
    t.is(file.meta.leakySlope, activation === 'leaky-relu' ? model.leakySlope : undefined)
    if (activation === 'leaky-relu') t.is(Math.fround(file.meta.leakySlope!), Math.fround(0.2))
    const norm = model.getNormState()
    t.is(norm.length, 8)
    t.true(file.norm.every((a, k) => same(a, norm[k])))
    // The running statistics moved away from their initial 0 / 1.
    t.true(norm[2].some((v) => v !== 0) && norm[3].some((v) => v !== 1))
    const loaded = await loadTrainedModel(p, { threads: 2 })
    t.teardown(() => { loaded.model.free(); model.free() })
    t.is(loaded.model.activation, activation)
    t.is(loaded.model.leakySlope, model.leakySlope)
    t.true(loaded.model.batchNorm)
    t.is(loaded.model.bnEps, model.bnEps)
    t.true(loaded.model.getNormState().every((a, k) => same(a, norm[k])))
    const x = randomData(300, 20, 4, 7)
    t.true(same(await loaded.model.predictProba(x.images), await model.predictProba(x.images)), 'probabilities bit for bit')
  })
}

test('a version-2 file without batch norm has no norm tensors and loads', async (t) => {
  const layers = [20, 6, 3]
  const model = await trained({ layers, seed: 13, activation: 'silu' })
  const p = path.join(tmp(t), 'plain.safetensors')
  await saveTrainedModel(p, model)
  const file = decodeModel(fs.readFileSync(p))
  t.deepEqual(file.norm, [])
  t.like(file.meta, { version: 2, activation: 'silu', batchNorm: false, dropout: [0] })
  const loaded = await loadTrainedModel(p, { threads: 1 })
  t.teardown(() => { loaded.model.free(); model.free() })
  const x = randomData(50, 20, 3, 8)
  t.true(same(await loaded.model.predictProba(x.images), await model.predictProba(x.images)))
  await t.throwsAsync(loadTrainedModel(path.join(path.dirname(p), 'missing.safetensors')), { instanceOf: ModelFileError, code: 'ENOENT' })
})

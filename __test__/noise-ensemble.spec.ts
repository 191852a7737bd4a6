// Robustness under input noise and ensembles of model files (issue F2): the Node API
// (src/output/noise.ts, src/output/ensemble.ts) and `kana-native evaluate/predict`.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MLP } from '../src/engine/mlp'
import { saveTrainedModel } from '../src/output/saved-model'
import { loadEnsemble, meanProbabilities } from '../src/output/ensemble'
import { addNoise, evaluateNoise, parseNoiseSpec } from '../src/output/noise'
import { mulberry32 } from '../src/data/split'
import { npy } from './helpers/npy'

const root = join(__dirname, '..')
const bin = join(root, 'bin', 'kana-native.js')

/** 28×28 images of 3 classes: a bright 8×8 square top-left, centre or bottom-right, on a dim random background. */
function squares(n: number, seed: number) {
  const r = mulberry32(seed)
  const images = new Uint8Array(n * 784)
  const labels = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    const k = i % 3
    labels[i] = k
    for (let q = 0; q < 784; q++) images[i * 784 + q] = Math.floor(r() * 60)
    const at = [2, 10, 18][k]
    for (let y = at; y < at + 8; y++) for (let x = at; x < at + 8; x++) images[i * 784 + y * 28 + x] = 200 + Math.floor(r() * 55)
  }
  return { images, labels }
}

const train = squares(300, 1)
const heldOut = squares(150, 2)
const dir = mkdtempSync(join(tmpdir(), 'kana-f2-'))

async function trained(seed: number, layers = [784, 16, 3]) {
  const m = new MLP({ layers, seed, threads: 1 })
  await m.fit(train.images, train.labels, { optimizer: 'adam', lr: 3e-3, batchSize: 32, epochs: 4 })
  return m
}

async function modelFile(name: string, seed: number, layers?: number[]) {
  const m = await trained(seed, layers)
  const p = join(dir, name)
  await saveTrainedModel(p, m)
  m.free()
  return p
}

test.serial('noise: level 0 is the clean evaluation exactly; accuracy falls (non-strictly) over a strong range; seeded', async (t) => {
  const m = await trained(3)
  const clean = await m.evaluate(heldOut.images, heldOut.labels)
  t.true(clean.accuracy > 0.95, `the tiny model learnt the task: ${clean.accuracy}`)
  for (const spec of ['gaussian:0', 'salt-pepper:0', 'occlusion:0']) {
    const r = await evaluateNoise(m, heldOut.images, heldOut.labels, spec, 5)
    t.deepEqual(r.rows, [{ level: 0, accuracy: clean.accuracy, loss: clean.loss }], spec)
  }
  t.deepEqual(addNoise(heldOut.images, 784, 'gaussian', 0, 1), heldOut.images)
  const g = await evaluateNoise(m, heldOut.images, heldOut.labels, 'gaussian:32,64,128,256,512', 5)
  t.deepEqual(g.rows.map((r) => r.level), [0, 32, 64, 128, 256, 512], 'the clean level first')
  for (let i = 1; i < g.rows.length; i++) t.true(g.rows[i].accuracy <= g.rows[i - 1].accuracy, JSON.stringify(g.rows))
  t.true(g.rows[g.rows.length - 1].accuracy < 0.6, 'strong noise hurts')
  const o = await evaluateNoise(m, heldOut.images, heldOut.labels, { kind: 'occlusion', levels: [4, 8, 16, 28] }, 5)
  for (let i = 1; i < o.rows.length; i++) t.true(o.rows[i].accuracy <= o.rows[i - 1].accuracy + 1e-12, JSON.stringify(o.rows))
  t.is(o.rows[o.rows.length - 1].accuracy, (await m.evaluate(new Uint8Array(heldOut.images.length), heldOut.labels)).accuracy, 'a 28×28 square blanks the image')
  // seeded: the same seed gives the same, another seed other noisy images
  t.deepEqual(await evaluateNoise(m, heldOut.images, heldOut.labels, 'salt-pepper:0.2,0.4', 9), await evaluateNoise(m, heldOut.images, heldOut.labels, 'salt-pepper:0.2,0.4', 9))
  t.notDeepEqual(addNoise(heldOut.images, 784, 'salt-pepper', 0.2, 9), addNoise(heldOut.images, 784, 'salt-pepper', 0.2, 10))
  // salt and pepper at p = 1 leaves only 0 and 255, about half each
  const sp = addNoise(heldOut.images, 784, 'salt-pepper', 1, 1)
  const white = sp.filter((v) => v === 255).length
  t.true(sp.every((v) => v === 0 || v === 255) && Math.abs(white / sp.length - 0.5) < 0.01)
  // gaussian noise has the asked spread (in pixel units) where no clipping happens
  const mid = new Uint8Array(784 * 100).fill(128)
  const noisy = addNoise(mid, 784, 'gaussian', 10, 3)
  const sd = Math.sqrt(noisy.reduce((s, v) => s + (v - 128) ** 2, 0) / noisy.length)
  t.true(Math.abs(sd - 10) < 0.2, `sd ${sd}`)
  m.free()
})

test('noise specs: parsed and refused with the setting named', (t) => {
  t.deepEqual(parseNoiseSpec('gaussian:8, 16,32'), { kind: 'gaussian', levels: [8, 16, 32] })
  t.throws(() => parseNoiseSpec('blur:1'), { message: /noise kind must be gaussian, salt-pepper, occlusion, got "blur"/ })
  t.throws(() => parseNoiseSpec('salt-pepper:1.5'), { message: /salt-pepper noise level must be a probability in \[0, 1\], got 1.5/ })
  t.throws(() => parseNoiseSpec('occlusion:2.5'), { message: /occlusion noise level must be an integer/ })
  t.throws(() => parseNoiseSpec('gaussian'), { message: /kind:level/ })
})

test.serial('ensembles: one model is the model; two average by hand; mismatched models refused naming both files', async (t) => {
  const a = await modelFile('a.safetensors', 11)
  const b = await modelFile('b.safetensors', 12, [784, 8, 3])
  const other = await modelFile('k4.safetensors', 13, [784, 8, 4]).catch(() => undefined)
  const one = await loadEnsemble([a], { threads: 1 })
  const { loadTrainedModel } = await import('../src/output/saved-model')
  const ma = (await loadTrainedModel(a, { threads: 1 })).model
  const mb = (await loadTrainedModel(b, { threads: 1 })).model
  const pa = await ma.predictProba(heldOut.images)
  const pb = await mb.predictProba(heldOut.images)
  t.deepEqual(await one.predictProba(heldOut.images), pa)
  const e1 = await one.evaluate(heldOut.images, heldOut.labels)
  const ea = await ma.evaluate(heldOut.images, heldOut.labels)
  t.is(e1.accuracy, ea.accuracy)
  t.deepEqual(e1.confusion, ea.confusion)
  t.true(Math.abs(e1.loss - ea.loss) < 1e-5)
  const two = await loadEnsemble([a, b], { threads: 1 })
  const p2 = await two.predictProba(heldOut.images)
  const hand = Float32Array.from(pa, (v, i) => (v + pb[i]) / 2)
  t.deepEqual(p2, hand)
  t.deepEqual(meanProbabilities([pa, pb]), hand)
  const e2 = await two.evaluate(heldOut.images, heldOut.labels)
  let correct = 0
  for (let i = 0; i < heldOut.labels.length; i++) {
    const row = Array.from(hand.subarray(i * 3, i * 3 + 3))
    if (row.indexOf(Math.max(...row)) === heldOut.labels[i]) correct++
  }
  t.is(e2.accuracy, correct / heldOut.labels.length)
  // noise on an ensemble works through the same interface
  const nr = await evaluateNoise(two, heldOut.images, heldOut.labels, 'gaussian:0', 1)
  t.is(nr.rows[0].accuracy, e2.accuracy)
  if (!other) throw new Error('could not make the 4-class model')
  const e = await t.throwsAsync(loadEnsemble([a, other], { threads: 1 }), { instanceOf: RangeError })
  t.true(e!.message.includes(a) && e!.message.includes(other) && /has 4 classes but .* has 3/.test(e!.message), e!.message)
  for (const x of [one, two]) x.free()
  ma.free()
  mb.free()
})

test.serial('kana-native evaluate --model a,b --noise …: the table, noise.json/csv/png; predict with an ensemble', async (t) => {
  const a = await modelFile('cli-a.safetensors', 21)
  const b = await modelFile('cli-b.safetensors', 22)
  writeFileSync(join(dir, 'X.npy'), npy('|u1', [150, 28, 28], heldOut.images))
  writeFileSync(join(dir, 'y.npy'), npy('<i4', [150], heldOut.labels))
  const out = join(dir, 'eval')
  const r = spawnSync(process.execPath, [bin, 'evaluate', '--model', `${a},${b}`, '--images', join(dir, 'X.npy'), '--labels', join(dir, 'y.npy'), '--noise', 'gaussian:50,200', '--seed', '3', '--out', out, '--threads', '1'], { encoding: 'utf8' })
  t.is(r.status, 0, r.stderr)
  t.regex(r.stderr, /ensemble of 2 models/)
  t.regex(r.stderr, /under gaussian noise \(seed 3\)/)
  t.regex(r.stderr, /0 \(clean\)/)
  const json = JSON.parse(readFileSync(join(out, 'noise.json'), 'utf8'))
  t.deepEqual(json.rows.map((x: { level: number }) => x.level), [0, 50, 200])
  t.is(readFileSync(join(out, 'noise.csv'), 'utf8').split('\n')[0], 'kind,level,accuracy,loss')
  t.true(existsSync(join(out, 'noise.png')) && existsSync(join(out, 'noise.svg')))
  const bad = spawnSync(process.execPath, [bin, 'evaluate', '--model', a, '--images', join(dir, 'X.npy'), '--labels', join(dir, 'y.npy'), '--noise', 'blur:2'], { encoding: 'utf8' })
  t.is(bad.status, 2)
  t.regex(bad.stderr, /--noise: noise kind must be/)
  const csv = join(dir, 'p.csv')
  const p = spawnSync(process.execPath, [bin, 'predict', '--model', `${a},${b}`, '--images', join(dir, 'X.npy'), '--out', csv, '--threads', '1'], { encoding: 'utf8' })
  t.is(p.status, 0, p.stderr)
  t.is(readFileSync(csv, 'utf8').trim().split('\n').length, 151)
})

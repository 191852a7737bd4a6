// Concurrency: several models training at once, in one process and in worker threads, give the
// results of training them one after another, bit for bit; a Dataset shared by models training at
// the same time is fine (it is immutable in native memory); the addon loads in a worker and goes
// away cleanly when the worker ends, even when it is terminated in the middle of an epoch.
import test from 'ava'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { Dataset, MLP } from '../index'

const INDEX = join(__dirname, '..', 'index.js')
const LAYERS = [64, 48, 5]
const FIT = { epochs: 2, optimizer: 'adam' as const, lr: 2e-3, l2: 1e-4, batchSize: 16 }

/** Seeded test data (mulberry32). */
function data(n: number, features: number, classes: number, seed: number) {
  let a = seed >>> 0
  const r = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const labels = new Int32Array(n).map(() => Math.floor(r() * classes))
  // pixels that depend on the class, so that training has something to learn
  const images = new Uint8Array(n * features).map((_, i) => Math.min(255, Math.floor(r() * 160 + ((labels[Math.floor(i / features)] * 7 + i) % features < 12 ? 95 : 0))))
  return { images, labels }
}

const bytes = (ws: Float32Array[]) => Buffer.concat(ws.map((w) => Buffer.from(w.buffer, w.byteOffset, w.byteLength)))

async function train(seed: number, ds: Dataset, threads = 1) {
  const model = new MLP({ layers: LAYERS, seed, threads })
  const result = await model.fit(ds, FIT)
  const out = { seed, result, weights: bytes(model.getWeights()), probs: Buffer.from((await model.predictProba(ds)).buffer) }
  model.free()
  return out
}

test('three models training at once in one process end bit-identical to training them one after another', async (t) => {
  const seeds = [1, 2, 3]
  const sets = seeds.map((s) => data(1500, 64, 5, 100 + s))
  const sequential = []
  for (const [i, s] of seeds.entries()) sequential.push(await train(s, new Dataset(sets[i].images, sets[i].labels, 64), 1 + (i % 2)))
  const t0 = performance.now()
  const concurrent = await Promise.all(seeds.map((s, i) => train(s, new Dataset(sets[i].images, sets[i].labels, 64), 1 + (i % 2))))
  t.log(`3 models × ${FIT.epochs} epochs at once: ${(performance.now() - t0).toFixed(0)} ms`)
  for (const [i, s] of seeds.entries()) {
    t.true(sequential[i].weights.equals(concurrent[i].weights), `seed ${s}: weights differ`)
    t.true(sequential[i].probs.equals(concurrent[i].probs), `seed ${s}: probabilities differ`)
    t.deepEqual(sequential[i].result, concurrent[i].result)
  }
  // different seeds really gave different models (the comparison is not vacuous)
  t.false(sequential[0].weights.equals(sequential[1].weights))
})

test('a Dataset shared by models training, evaluating and predicting at the same time is fine', async (t) => {
  const { images, labels } = data(800, 64, 5, 7)
  const shared = new Dataset(images, labels, 64)
  const alone = [await train(4, new Dataset(images, labels, 64)), await train(5, new Dataset(images, labels, 64), 2)]
  const judge = new MLP({ layers: LAYERS, seed: 9, threads: 1 })
  await judge.fit(shared, FIT)
  const judged = await judge.evaluate(shared)
  const [a, b, evals, probs] = await Promise.all([
    train(4, shared),
    train(5, shared, 2),
    Promise.all(Array.from({ length: 3 }, () => new MLP({ layers: LAYERS, seed: 9, threads: 1 })).map(async (m) => {
      m.setWeights(judge.getWeights())
      const e = await m.evaluate(shared)
      m.free()
      return e
    })),
    judge.predictProba(shared),
  ])
  t.true(a.weights.equals(alone[0].weights) && b.weights.equals(alone[1].weights))
  for (const e of evals) t.deepEqual(e, judged)
  t.is(probs.length, 800 * 5)
  t.is(shared.length, 800) // untouched
  judge.free()
})

test('two worker threads, each loading the addon and training, give the results of the main thread', async (t) => {
  const seeds = [11, 12]
  const sets = seeds.map((s) => data(600, 64, 5, s))
  const expected = []
  for (const [i, s] of seeds.entries()) expected.push(await train(s, new Dataset(sets[i].images, sets[i].labels, 64)))
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const { MLP, Dataset } = require(${JSON.stringify(INDEX)})
    const { seed, images, labels, layers, fit } = workerData
    const ds = new Dataset(images, labels, 64)
    const model = new MLP({ layers, seed, threads: 1 })
    model.fit(ds, fit).then(async (result) => {
      const weights = model.getWeights()
      const probs = await model.predictProba(ds)
      parentPort.postMessage({ result, weights, probs }, [...weights.map((w) => w.buffer), probs.buffer])
    })`
  const results = await Promise.all(seeds.map((seed, i) => new Promise<{ msg: { result: unknown; weights: Float32Array[]; probs: Float32Array }; exit: number }>((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { seed, ...sets[i], layers: LAYERS, fit: FIT } })
    let msg: any
    w.on('message', (m) => (msg = m))
    w.on('error', reject)
    w.on('exit', (exit) => resolve({ msg, exit })) // the worker ends on its own once idle: the addon's models are finalised
  })))
  for (const [i, { msg, exit }] of results.entries()) {
    t.is(exit, 0)
    t.true(bytes(msg.weights).equals(expected[i].weights), `seed ${seeds[i]}: weights differ`)
    t.true(Buffer.from(msg.probs.buffer).equals(expected[i].probs), `seed ${seeds[i]}: probabilities differ`)
    t.deepEqual(msg.result, expected[i].result)
  }
})

test('workers terminated or exiting in the middle of epochs, and handles collected during one, leave the process alive and the addon usable', async (t) => {
  // In a child process, so that a crash at worker teardown fails this test instead of the runner.
  const script = `
    const { Worker } = require('node:worker_threads')
    const { MLP, Dataset } = require(${JSON.stringify(INDEX)})
    const code = (models, exitInside) => \`
      const { parentPort } = require('node:worker_threads')
      const { MLP, Dataset } = require(${JSON.stringify(INDEX)})
      const n = 3000, f = 784
      const images = new Uint8Array(n * f); for (let i = 0; i < images.length; i++) images[i] = (i * 2654435761) >>> 24
      const ds = new Dataset(images, new Int32Array(n).map((_, i) => i % 10), f)
      for (let i = 0; i < \${models}; i++) {
        const m = new MLP({ layers: [f, 256, 10], seed: i, threads: 2 })
        m.fit(ds, { epochs: 50, batchSize: 32, progressInterval: 10, onProgress: (p) => parentPort.postMessage(p.step) }).catch((e) => parentPort.postMessage(e.message))
      }
      \${exitInside ? 'setTimeout(() => process.exit(0), 150)' : ''}\`
    async function round(name, models, exitInside) {
      const w = new Worker(code(models, exitInside), { eval: true })
      const exited = new Promise((resolve) => w.on('exit', resolve))
      w.on('error', (e) => { console.log(name + ': worker error ' + e.message); process.exitCode = 1 })
      await new Promise((resolve) => w.on('message', (m) => { if (typeof m === 'number' && m >= 5) resolve() }))
      const t0 = performance.now()
      if (!exitInside) await w.terminate()
      const exitCode = await exited
      return name + ': exit ' + exitCode + ' after ' + Math.round(performance.now() - t0) + ' ms'
    }
    ;(async () => {
      const lines = []
      lines.push(await round('terminate, 1 model mid-epoch', 1, false))
      lines.push(await round('terminate, 6 models (2 queued behind the 4 libuv threads)', 6, false))
      lines.push(await round('process.exit() inside the worker mid-epoch', 1, true))
      for (let i = 0; i < 3; i++) lines.push(await round('terminate again #' + (i + 1), 2, false))
      // handles dropped and collected while their epoch runs: the work holds its own references
      const { native } = require(${JSON.stringify(INDEX)})
      const orphan = (() => {
        const n = 3000, f = 784
        const model = native.createModel([f, 128, 10], 1, 2)
        const ds = native.createDataset(new Uint8Array(n * f).fill(7), new Uint8Array(n).map((_, i) => i % 10), f)
        return native.fitEpoch(model, ds, { optimizer: 'adam', lr: 1e-3, batchSize: 32 })
      })()
      for (let i = 0; i < 5; i++) { gc(); await new Promise((r) => setTimeout(r, 10)) }
      lines.push('epoch of a collected model and data set: ' + (await orphan).steps + ' steps')
      const m = new MLP({ layers: [4, 3, 2], seed: 1, threads: 1 })
      const r = await m.fit(new Uint8Array(40), new Uint8Array(10), { epochs: 1, batchSize: 5 })
      lines.push('main thread trains after all that: ' + r.steps + ' steps')
      console.log(lines.join('\\n'))
      console.log('alive')
    })()`
  const proc = spawn(process.execPath, ['--expose-gc', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout.on('data', (b) => (out += b))
  proc.stderr.on('data', (b) => (out += b))
  const timer = setTimeout(() => proc.kill('SIGKILL'), 120_000)
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => proc.on('close', (c, s) => resolve([c, s])))
  clearTimeout(timer)
  t.log(out.trim())
  t.is(signal, null, out)
  t.is(code, 0, out)
  t.true(out.trim().endsWith('alive'), out)
})

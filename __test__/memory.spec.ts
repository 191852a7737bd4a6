// Memory: a model or data set larger than the memory it would need is refused up front, with the
// figure, instead of the process being killed by the kernel (OOM) or aborting on a failed
// allocation part-way.
import test from 'ava'
import { spawn } from 'node:child_process'
import os from 'node:os'
import { join } from 'node:path'
import { Dataset, MLP, native } from '../index'

/** Runs a command to its end (a child process, so that a native crash fails a test instead of the runner). */
async function run(cmd: string, args: string[]): Promise<{ code: number | null; signal: string | null; out: string }> {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout.on('data', (b) => (out += b))
  proc.stderr.on('data', (b) => (out += b))
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => proc.on('close', (c, s) => resolve([c, s])))
  return { code, signal, out }
}

const GB = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`

/** The TypeScript layer's estimate (src/mlp.ts), recomputed here from its definition. */
function estimate(layers: number[]) {
  const params = layers.slice(1).reduce((s, n, i) => s + layers[i] * n + n, 0)
  const widths = layers.reduce((s, n) => s + n, 0)
  return { params, bytes: params * 4 * 4 + 2048 * widths * 4 * 3 }
}

test('a model whose native memory would exceed this machine is refused instantly, naming the estimate and the total', (t) => {
  const total = Math.min(os.totalmem(), process.constrainedMemory?.() || Infinity)
  // Wide layers joined by 2-unit bottlenecks: few parameters (far under the engine's 2^28), but
  // each 1,048,576-wide layer needs 2048 × 2^20 × 12 bytes ≈ 25.8 GB of workspace.
  const wide = Math.min(60, Math.ceil(total / 25.7e9) + 1)
  const layers = [2 ** 20, ...Array.from({ length: wide }, () => [2, 2 ** 20]).flat(), 10]
  const { params, bytes } = estimate(layers)
  t.true(params < 2 ** 28 && bytes > total)
  const t0 = performance.now()
  const err = t.throws(() => new MLP({ layers, seed: 1, threads: 1 }), { instanceOf: RangeError })
  const ms = performance.now() - t0
  t.log(err!.message)
  t.true(ms < 100, `refused after ${ms.toFixed(1)} ms`)
  t.true(err!.message.includes(`would need about ${GB(bytes)} of native memory`), err!.message)
  t.true(err!.message.includes(`${params} parameters`), err!.message)
  t.regex(err!.message, new RegExp(`more than the ${GB(total).replace('.', '\\.')} this (machine has \\(os\\.totalmem\\(\\)\\)|process is limited to)`))
})

test("the engine's parameter limit (2^28) is refused with its own message, through MLP and the raw binding", (t) => {
  const message = 'layers [65536, 4096, 10] give 268480522 parameters, more than the limit of 268435456'
  const t0 = performance.now()
  t.throws(() => native.createModel([65536, 4096, 10], 1, 1), { instanceOf: RangeError, message })
  t.throws(() => new MLP({ layers: [65536, 4096, 10], seed: 1, threads: 1 }), { instanceOf: RangeError, message })
  t.true(performance.now() - t0 < 100)
  // and the specific argument errors still come first
  t.throws(() => new MLP({ layers: [784, 0, 10] }), { instanceOf: RangeError, message: 'layers[1] must be an integer in 1..=1048576, got 0' })
  t.throws(() => new MLP({ layers: [784, 2 ** 20 + 1, 10] }), { instanceOf: RangeError, message: 'layers[1] must be an integer in 1..=1048576, got 1048577' })
})

test('a large model that fits is not refused', (t) => {
  const model = new MLP({ layers: [784, 4096, 4096, 49], seed: 1, threads: 1 })
  t.is(model.parameterCount, 784 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 49 + 49)
  model.free()
})

test('with less memory (os.totalmem patched to 1 MB) a data set and a model are refused with the figures', (t) => {
  const real = os.totalmem
  os.totalmem = () => 1e6
  try {
    const images = new Uint8Array(784 * 2000)
    const err = t.throws(() => new Dataset(images, new Uint8Array(2000), 784), { instanceOf: RangeError })
    t.is(err!.message, 'a data set of 1568000 pixels and 2000 labels would need 1.6 MB of native memory, more than the 1.0 MB this machine has (os.totalmem())')
    const small = new Dataset(new Uint8Array(784 * 100), new Uint8Array(100), 784)
    t.is(small.length, 100)
    const m = t.throws(() => new MLP({ layers: [784, 512, 10], seed: 1 }), { instanceOf: RangeError })
    t.regex(m!.message, /^layers \[784, 512, 10\] would need about 38\.6 MB of native memory \(407050 parameters × 4 bytes × 4 for weights, gradients and Adam's moments: 6\.5 MB; workspaces for 2048 rows: 32\.1 MB\), more than the 1\.0 MB this machine has/)
  } finally {
    os.totalmem = real
  }
})

test('a data set whose native copy cannot be allocated is a RangeError naming the bytes, not an abort (ulimit -v)', async (t) => {
  if (process.platform !== 'linux') return t.pass('ulimit -v is a Linux test')
  // 6 GB of address space: Node and a 4.3 GB array fit, a second 4.3 GB (the native copy) does not.
  const n = Math.floor(2 ** 32 / 784)
  const script = `
    const { native, Dataset } = require(${JSON.stringify(join(__dirname, '..', 'index.js'))})
    const images = new Uint8Array(${n * 784})
    for (const [what, make] of [['raw', () => native.createDataset(images, null, 784)], ['Dataset', () => new Dataset(images, null, 784)]]) {
      try { make(); console.log(what + ' accepted') } catch (e) { console.log(what + ' ' + e.name + ': ' + e.message) }
    }
    const small = new Dataset(new Uint8Array(784 * 10), new Uint8Array(10), 784)
    console.log('alive ' + small.length)`
  const { code, signal, out } = await run('sh', ['-c', 'ulimit -v 6000000 && exec "$0" "$@"', process.execPath, '-e', script])
  t.log(out.trim())
  t.is(signal, null, out)
  t.is(code, 0, out)
  const lines = out.trim().split('\n')
  t.is(lines[0], `raw RangeError: images: cannot allocate ${n * 784} bytes of native memory for a copy`)
  // (a machine with less than 4.3 GB refuses it in TypeScript, before the copy)
  t.regex(lines[1], new RegExp(`^Dataset RangeError: (images: cannot allocate ${n * 784} bytes|a data set of ${n * 784} pixels)`))
  t.is(lines[2], 'alive 10')
})

test('results too large for a typed array, or for memory, are refused before the work starts (was SIGABRT)', async (t) => {
  // A 2-million-parameter model with 1,048,576 classes: evaluate's confusion matrix would be
  // 2^40 counts (4.4 TB), and the engine's allocation failure aborted the process. In a child
  // process, so that a regression fails this test instead of killing the runner.
  const script = `
    const { native } = require(${JSON.stringify(join(__dirname, '..', 'index.js'))})
    const m = native.createModel([1, 1048576], 1, 1)
    const d = native.createDataset(new Uint8Array(5000), new Uint8Array(5000), 1)
    const attempt = async (f) => { try { const r = await f(); console.log('returned ' + (r.length ?? JSON.stringify(r))) } catch (e) { console.log(e.name + ': ' + e.message) } }
    ;(async () => {
      await attempt(() => native.evaluate(m, d))
      await attempt(() => native.predictProba(m, d))
      // (where 25.8 GB could be had, the epoch would really take it: not tried there)
      if (require('node:os').totalmem() < 25e9) await attempt(() => native.fitEpoch(m, d, { optimizer: 'gd', lr: 0.1 }))
      else console.log('skipped')
      console.log('usable: ' + native.modelInfo(m).params + ' parameters')
    })()`
  const { code, signal, out } = await run(process.execPath, ['-e', script])
  t.log(out.trim())
  t.is(signal, null, out)
  t.is(code, 0, out)
  const lines = out.trim().split('\n')
  t.is(lines[0], 'RangeError: evaluate: the confusion matrix (1048576 × 1048576 classes) would hold 1099511627776 values, more than a typed array can (2^32)')
  t.is(lines[1], 'RangeError: predictProba: the probabilities (5000 rows × 1048576 classes) would hold 5242880000 values, more than a typed array can (2^32)')
  // 2048 rows × 1,048,577 units × 4 bytes × 3 ≈ 25.8 GB of workspaces: refused where that cannot be had
  t.regex(lines[2], /^(RangeError: an epoch of training: cannot allocate the 25769828352 bytes of native memory it needs \(workspaces for 2048 rows of 1048577 units\)|skipped)$/)
  t.is(lines[3], 'usable: 2097152 parameters')
})

test('a parameter count that wraps around 2^64, or a sparse array of 2^32 − 1 sizes, is refused at once (was SIGABRT, and a hang)', async (t) => {
  // 2^24 − 15 widths of 2^20 and a last of 16 give exactly 2^64 + 16 parameters: kana-core's
  // count wraps to 16 in a release build, and the first 2^20 × 2^20 layer (4.4 TB) aborted.
  // An empty array with length 2^32 − 1 was read element by element (minutes, gigabytes).
  const script = `
    const { native } = require(${JSON.stringify(join(__dirname, '..', 'index.js'))})
    const layers = new Array(2 ** 24 - 15).fill(2 ** 20)
    layers.push(16)
    try { native.createModel(layers, 1, 1); console.log('accepted') } catch (e) { console.log(e.name + ': ' + e.message) }
    const sparse = []
    sparse.length = 2 ** 32 - 1
    const t0 = performance.now()
    for (const f of [() => native.createModel(sparse, 1, 1), () => native.setWeights(native.createModel([2, 2], 1, 1), sparse)]) {
      try { f(); console.log('accepted') } catch (e) { console.log(e.name + ': ' + e.message) }
    }
    console.log(performance.now() - t0 < 1000 ? 'at once' : 'slowly')`
  const { code, signal, out } = await run(process.execPath, ['-e', script])
  t.is(signal, null, out.slice(0, 2000))
  t.is(code, 0, out.slice(0, 2000))
  t.deepEqual(out.trim().split('\n'), [
    'RangeError: layers has 16777202 entries, more than 2097152',
    'RangeError: layers has 4294967295 entries, more than 2097152',
    'RangeError: weights has 4294967295 entries, more than 2097152',
    'at once',
  ])
})

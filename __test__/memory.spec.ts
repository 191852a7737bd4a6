// Memory: a model or data set larger than the memory it would need is refused up front, with the
// figure, instead of the process being killed by the kernel (OOM) or aborting on a failed
// allocation part-way.
import test from 'ava'
import { spawn } from 'node:child_process'
import os from 'node:os'
import { join } from 'node:path'
import { Dataset, MLP, native } from '../index'

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
  const proc = spawn('sh', ['-c', 'ulimit -v 6000000 && exec "$0" "$@"', process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout.on('data', (b) => (out += b))
  proc.stderr.on('data', (b) => (out += b))
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => proc.on('close', (c, s) => resolve([c, s])))
  t.log(out.trim())
  t.is(signal, null, out)
  t.is(code, 0, out)
  const lines = out.trim().split('\n')
  t.is(lines[0], `raw RangeError: images: cannot allocate ${n * 784} bytes of native memory for a copy`)
  // (a machine with less than 4.3 GB refuses it in TypeScript, before the copy)
  t.regex(lines[1], new RegExp(`^Dataset RangeError: (images: cannot allocate ${n * 784} bytes|a data set of ${n * 784} pixels)`))
  t.is(lines[2], 'alive 10')
})

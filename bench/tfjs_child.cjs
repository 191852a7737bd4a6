'use strict'
// TensorFlow.js peer for `npm run bench` (scripts/bench.mjs): ONE measurement in a fresh process.
// Not a test.
//
//   node bench/tfjs_child.cjs '<json spec>'
//
// spec: { backend: 'cpu'|'wasm', workload: 'train'|'infer', data, labels, features, offset, n,
//         layers, batch, steps, lr, seed }
// The same model as kana-native (Dense+ReLU hidden layers, linear output, softmax cross-entropy),
// Adam, batches sliced (tf.gather) from a seeded shuffled permutation. Pixels are converted to
// float32 ÷255 once, before timing. These backends are slow, so training runs a fixed, small
// number of steps (`steps`) after 2 untimed warm-up steps, and inference a subset of `n` rows.
// In Node the WASM backend runs single-threaded SIMD (no worker-thread build is used there); the
// pure-JS 'cpu' backend is single-threaded too.
// Prints one line "RESULT {json}".
const fs = require('node:fs')

const spec = JSON.parse(process.argv[2])
const F = spec.features ?? 784

// tfjs prints a "use tfjs-node" banner on stdout when it loads: keep stdout for our RESULT line
const log = console.log
console.log = (...a) => console.error(...a)
const tf = require('@tensorflow/tfjs')
require('@tensorflow/tfjs-backend-wasm')

function readRows(off, n) {
  const images = new Uint8Array(n * F)
  const labels = new Int32Array(n)
  const fi = fs.openSync(spec.data, 'r')
  fs.readSync(fi, images, 0, images.length, off * F)
  fs.closeSync(fi)
  const fl = fs.openSync(spec.labels, 'r')
  fs.readSync(fl, new Uint8Array(labels.buffer), 0, n * 4, off * 4)
  fs.closeSync(fl)
  return { images, labels }
}

/** mulberry32 (the project's, src/split.ts): the seeded generator for the batch permutation */
const rng = require(require('node:path').join(__dirname, '..', 'dist', 'data', 'split.js')).mulberry32

async function main() {
  await tf.setBackend(spec.backend)
  await tf.ready()
  const out = {
    tfjs: tf.version.tfjs,
    backend: tf.getBackend(),
    threads: 1,
  }
  if (spec.backend === 'wasm') {
    out.wasmSimd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')
    out.wasmThreads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')
  }
  tf.setSeed?.(spec.seed ?? 1)

  const { images, labels } = readRows(spec.offset, spec.n)
  const xf = new Float32Array(images.length)
  for (let i = 0; i < images.length; i++) xf[i] = images[i] / 255
  const X = tf.tensor2d(xf, [spec.n, F])
  const Y = tf.tensor1d(labels, 'int32')
  const L = spec.layers
  const K = L.at(-1)
  const model = tf.sequential()
  for (let i = 1; i < L.length; i++) {
    model.add(
      tf.layers.dense({
        units: L[i],
        activation: i < L.length - 1 ? 'relu' : 'linear',
        ...(i === 1 ? { inputShape: [F] } : {}),
      }),
    )
  }

  if (spec.workload === 'train') {
    const opt = tf.train.adam(spec.lr ?? 1e-3)
    const bs = spec.batch
    const r = rng(spec.seed ?? 1)
    const perm = Int32Array.from({ length: spec.n }, (_, i) => i)
    for (let i = perm.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1))
      ;[perm[i], perm[j]] = [perm[j], perm[i]]
    }
    const step = (s) => {
      const o = (s * bs) % Math.max(1, spec.n - bs + 1)
      const idx = tf.tensor1d(perm.subarray(o, o + bs), 'int32')
      const loss = tf.tidy(() => {
        const xb = tf.gather(X, idx)
        const yb = tf.oneHot(tf.gather(Y, idx), K)
        return opt.minimize(() => tf.losses.softmaxCrossEntropy(yb, model.predict(xb)), true)
      })
      const v = loss.dataSync()[0] // read the loss each step (forces the work, like .item())
      tf.dispose([loss, idx])
      return v
    }
    step(0)
    step(1) // untimed warm-up
    const steps = spec.steps
    let lossSum = 0
    const t0 = performance.now()
    for (let s = 0; s < steps; s++) lossSum += step(s + 2)
    out.seconds = (performance.now() - t0) / 1000
    Object.assign(out, { samples: steps * bs, steps, loss: lossSum / steps })
  } else if (spec.workload === 'infer') {
    tf.tidy(() => tf.softmax(model.predict(X.slice([0, 0], [Math.min(256, spec.n), F]))).dataSync()) // warm-up
    const t0 = performance.now()
    const p = tf.tidy(() => tf.softmax(model.predict(X)).dataSync())
    out.seconds = (performance.now() - t0) / 1000
    Object.assign(out, { samples: spec.n, checksum: p[0] })
  } else {
    throw new Error('unknown workload ' + spec.workload)
  }
  log('RESULT ' + JSON.stringify(out))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

#!/usr/bin/env node
// What each F1 layer costs: [784,1024,1024,10], Adam, batch 128, one training epoch over --rows
// synthetic rows, 2 threads, kana-native and PyTorch (at its best: BENCHMARKS.md) running the same
// layers side by side — default ReLU, leaky-relu, SiLU, GELU, dropout 0.2, batch norm, and GELU +
// dropout + batch norm, and issue F2's augmentation of every training batch (affine with the
// --augment defaults; affine + elastic, kana-native only). A benchmark, not a test. Each measurement is a fresh child process
// (bench/kana_child.cjs, bench/torch_mlp.py), engines and variants alternate within a repetition,
// and the table gives medians of wall-clock samples/s and of CPU seconds per sample (all threads),
// each variant's cost relative to the same engine's ReLU row, and kana-native / PyTorch.
//
// A second table gives the augmentation alone: one batch of 128 real images (the shared KMNIST
// course file, --images) augmented by kana-native's augmentBatch and by PyTorch's affine_grid +
// grid_sample (bench/torch_recipes.py, the transform bench/recipes.mjs checks against the engine),
// median of 50 calls per process, as a share of the same engine's batch-128 ReLU training step of
// the first table (128 / its samples/s). The training rows "augment …" measure the same cost from
// inside training (cost vs relu).
//
//   node bench/layers.mjs [--reps 3] [--rows 8192] [--threads 2] [--images ../shared/data/kmnist/X_images.npy]
// Needs `npm run build` and, for PyTorch, `apt-get install python3-torch libopenblas0-pthread`.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const { values: args } = parseArgs({ options: {
  reps: { type: 'string', default: '3' }, rows: { type: 'string', default: '8192' }, threads: { type: 'string', default: '2' },
  images: { type: 'string', default: path.resolve(root, '../shared/data/kmnist/X_images.npy') },
} })
const reps = Number(args.reps)
const rows = Number(args.rows)
const threads = Number(args.threads)

// --augment's defaults (src/training/config.ts), and with Simard's elastic setting
const AFFINE = { rotate: 12, scale: 0.1, shear: 0.15, shift: 1.7 }
const ELASTIC = { ...AFFINE, elastic: { alpha: 34, sigma: 4 } }
const VARIANTS = [
  { name: 'relu (default)' },
  { name: 'leaky-relu', activation: 'leaky-relu' },
  { name: 'silu', activation: 'silu' },
  { name: 'gelu', activation: 'gelu' },
  { name: 'dropout 0.2', dropout: 0.2 },
  { name: 'batch norm', batchNorm: true },
  { name: 'gelu + dropout 0.2 + batch norm', activation: 'gelu', dropout: 0.2, batchNorm: true },
  { name: 'augment (affine, --augment)', augment: AFFINE },
  { name: 'augment affine + elastic 34,4', augment: ELASTIC, kanaOnly: true },
]
// the augmentation alone, on 128 real images
const AUG_VARIANTS = [
  { name: 'affine (--augment defaults)', augment: AFFINE },
  { name: 'affine + elastic 34,4', augment: ELASTIC, kanaOnly: true },
]

// the same seeded synthetic data for both engines (the project's mulberry32)
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kana-layers-bench-'))
const data = path.join(dir, 'x.u8')
const labels = path.join(dir, 'y.i32')
{
  const rand = require(path.join(root, 'dist', 'data', 'split.js')).mulberry32(7)
  const x = new Uint8Array(rows * 784)
  for (let i = 0; i < x.length; i++) x[i] = Math.floor(rand() * 256)
  const y = new Int32Array(rows)
  for (let i = 0; i < rows; i++) y[i] = Math.floor(rand() * 10)
  fs.writeFileSync(data, x)
  fs.writeFileSync(labels, new Uint8Array(y.buffer))
}
// 128 real images, spread over the course file, raw u8 like the synthetic ones
const real = path.join(dir, 'real.u8')
{
  const { loadImages } = require(path.join(root, 'dist', 'data', 'readers.js'))
  const img = await loadImages(args.images)
  const f = img.rows * img.cols
  if (f !== 784) throw new Error(`${args.images}: the augmentation rows need 28×28 images, got ${img.rows}×${img.cols}`)
  const total = img.images.length / f
  const x = new Uint8Array(128 * f)
  for (let r = 0; r < 128; r++) {
    const i = Math.floor((r * total) / 128)
    x.set(img.images.subarray(i * f, (i + 1) * f), r * f)
  }
  fs.writeFileSync(real, x)
}

const PY = '/usr/bin/python3'
const torchEnv = { ...process.env, OPENBLAS_NUM_THREADS: '1' }
delete torchEnv.OPENBLAS_CORETYPE // BENCHMARKS.md "at its best", in this child's environment only
delete torchEnv.OPENBLAS_L2_SIZE
const haveTorch = fs.existsSync(PY) && spawnSync(PY, ['-c', 'import torch'], { env: torchEnv }).status === 0

function run(engine, v) {
  const spec = { workload: 'train', data, labels, features: 784, offset: 0, n: rows, layers: [784, 1024, 1024, 10], batch: 128, threads, lr: 1e-3, seed: 1, warmup: 8, ...v }
  delete spec.name
  delete spec.kanaOnly
  const [cmd, argv, env] = engine === 'kana'
    ? [process.execPath, ['--expose-gc', path.join(root, 'bench', 'kana_child.cjs'), JSON.stringify(spec)], process.env]
    : [PY, [path.join(root, 'bench', 'torch_mlp.py'), JSON.stringify(spec)], torchEnv]
  const r = spawnSync(cmd, argv, { env, encoding: 'utf8', timeout: 600_000 })
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '))
  if (!line) throw new Error(`${engine} ${v.name} failed:\n${r.stderr}`)
  const o = JSON.parse(line.slice(7))
  return { perSecond: o.samples / o.seconds, cpuPerSample: (o.cpuSeconds ?? o.cpu_seconds) / o.samples }
}

const engines = haveTorch ? ['kana', 'torch'] : ['kana']
if (!haveTorch) console.error('PyTorch (Debian python3-torch) is not installed: kana-native only')
const results = new Map() // `${engine}|${variant}` → [{ perSecond, cpuPerSample }]
const started = Date.now()
for (let rep = 0; rep < reps; rep++) {
  const all = [...VARIANTS, ...AUG_VARIANTS.map((v) => ({ ...v, name: `aug|${v.name}`, workload: 'augment', data: real, offset: 0, n: 128, steps: 50, warmup: 5 }))]
  for (const [i, v] of all.entries()) {
    const order = (rep + i) % 2 === 0 ? engines : [...engines].reverse()
    for (const e of order) {
      if (e === 'torch' && v.kanaOnly) continue
      const key = `${e}|${v.name}`
      results.set(key, [...(results.get(key) ?? []), run(e, v)])
    }
  }
  console.error(`repetition ${rep + 1}/${reps} done, ${((Date.now() - started) / 1000).toFixed(0)} s`)
}
fs.rmSync(dir, { recursive: true, force: true })

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
const med = (e, v, k) => (results.has(`${e}|${v.name}`) ? median(results.get(`${e}|${v.name}`).map((r) => r[k])) : NaN)
const k = (x) => (x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0))
const pct = (x) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)}%`
const head = ['variant', 'kana-native samples/s', 'cost vs relu', 'CPU µs/sample', ...(haveTorch ? ['PyTorch samples/s', 'cost vs relu', 'CPU µs/sample', 'kana / PyTorch'] : [])]
const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`]
for (const v of VARIANTS) {
  const cells = [v.name]
  for (const e of engines) {
    const s = med(e, v, 'perSecond')
    if (Number.isNaN(s)) cells.push('—', '—', '—')
    else cells.push(k(s), pct(med(e, VARIANTS[0], 'perSecond') / s - 1), (med(e, v, 'cpuPerSample') * 1e6).toFixed(0))
  }
  if (haveTorch) cells.push(v.kanaOnly ? '—' : `${(med('kana', v, 'perSecond') / med('torch', v, 'perSecond')).toFixed(2)}×`)
  lines.push(`| ${cells.join(' | ')} |`)
}
// the augmentation alone: the median call's time per batch of 128, and its share of the same
// engine's batch-128 ReLU step (128 samples at the relu row's samples/s)
const augHead = ['augmentation of 128 real images', 'kana-native µs/batch (CPU)', 'share of a kana-native step: wall (CPU)', ...(haveTorch ? ['PyTorch µs/batch (CPU)', 'share of a PyTorch step: wall (CPU)'] : [])]
const augLines = [`| ${augHead.join(' | ')} |`, `|${augHead.map(() => '---').join('|')}|`]
for (const v of AUG_VARIANTS) {
  const cells = [v.name]
  for (const e of engines) {
    const perBatch = med(e, { name: `aug|${v.name}` }, 'perSecond')
    if (Number.isNaN(perBatch)) {
      cells.push('—', '—')
      continue
    }
    // µs per batch of 128, wall and CPU (all threads), against 128 samples of the relu row
    const [us, cpuUs] = [(128 / perBatch) * 1e6, med(e, { name: `aug|${v.name}` }, 'cpuPerSample') * 128e6]
    const [step, cpuStep] = [(128 / med(e, VARIANTS[0], 'perSecond')) * 1e6, med(e, VARIANTS[0], 'cpuPerSample') * 128e6]
    cells.push(`${us.toFixed(0)} (${cpuUs.toFixed(0)})`, `${((100 * us) / step).toFixed(1)}% (${((100 * cpuUs) / cpuStep).toFixed(1)}%) of ${(step / 1000).toFixed(1)} ms (${(cpuStep / 1000).toFixed(1)} ms)`)
  }
  augLines.push(`| ${cells.join(' | ')} |`)
}
console.log(`[784,1024,1024,10], Adam, batch 128, ${rows} rows, ${threads} threads, ${reps} repetitions (medians); load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`)
console.log(lines.join('\n'))
console.log('')
console.log(augLines.join('\n'))

#!/usr/bin/env node
// Accuracy side by side: kana-native vs PyTorch, same data split, same recipes. Not a test.
//
//   node bench/recipes.mjs [--seeds 1,2,3] [--recipes r5,m3,m0,modern] [--out bench-results/recipes]
//                          [--images X.npy] [--labels y.npy] [--threads 2]
//   node bench/recipes.mjs --recipes modern          (issue F2's benchmark: the modern recipe, 3 seeds)
//   node bench/recipes.mjs --check-augment           (only the augmentation parity check, below)
//   node bench/recipes.mjs --recipes modern --seeds 1,2,3 --same-draws   (PyTorch with kana-native's draws, below)
//
// For every seed the course data (../shared/data/kmnist by default) is split 60/20/20 with
// kana-native's own stratifiedSplit — exactly what train() does with that seed — and the three
// parts are written as .npy files to a temporary folder. kana-native's train() is then given the
// original files and the seed (it re-creates the identical split; this script checks that it did,
// sample by sample), and bench/torch_recipes.py trains the PyTorch equivalent on the .npy parts.
// Both run one after the other, never at the same time, each with 2 threads; the engine that goes
// first alternates from seed to seed. PyTorch runs at its best (../shared/docs/BENCHMARKS.md:
// OpenBLAS with its own pool off, OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset in its environment so
// OpenBLAS picks its AVX-512 kernels, torch.set_num_threads(threads)).
//
// Times: "training seconds" is the wall time of the training loop — every epoch with its batches
// (augmentation included), optimiser steps and validation pass — measured alike in both: from the
// data being in memory (kana-native: train()'s onData; PyTorch: the .npy parts loaded, the model
// built) to the end of the last epoch (kana-native: its last onEpoch). Loading, splitting and the
// final test evaluation are outside it (the total, with them, is in recipes.json as `seconds`), and
// so is process start. CPU seconds (all threads) of the same span are recorded too.
//
// Before the modern recipe (and alone with --check-augment) the augmentation is checked to be the
// same transform in both: 16 real images augmented by the engine (augmentBatch, random parameters,
// which this script re-derives from the engine's hash) and 4 with fixed parameters (the TypeScript
// reference, which the tests hold to the engine), then the same images and parameters through
// torch_recipes.py's affine_grid + grid_sample; the run stops if they differ beyond rounding.
//
// --same-draws (modern recipe only): PyTorch trains with kana-native's random draws for the seed
// instead of its own — the engine's initial weights (exported with getWeights), its per-epoch
// permutation, dropout masks and augmented batches (re-derived in Python by bench/kana_draws.py,
// keyed by the engine's optimiser step) — so the two runs differ only in float rounding. Before
// each seed's training a streams check (checkStreams) proves every stream against the engine and
// stops the run if one differs; kana-native then trains first and its weights after some epochs
// (DRIFT_EPOCHS) are PyTorch's yardstick: how far the two trajectories have drifted apart, and how
// many test images the two final models classify alike. recipes.md then holds that table instead
// of the times (which mean nothing here: PyTorch re-derives the draws as it goes).
// KANA_KEEP_TMP=1 keeps the temporary folder (splits, draws, the engine's weights) for a look.
//
// Writes recipes.json (every run plus the summary) and recipes.md (the table) into --out.
// Needs `npm run build` (dist/ and the .node addon) and PyTorch for Debian's /usr/bin/python3.

import { createRequire } from 'node:module'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { augmentBatch } = require('../index.js') // first: index.js loads the addon for dist/
const { stratifiedSplit, gather } = require('../dist/data/split.js')
const { loadImages, loadLabels } = require('../dist/data/readers.js')
const { train } = require('../dist/training/train.js')
const { PRESETS } = require('../dist/training/presets.js')
const { sample: referenceSample } = require('../dist/engine/augment.js')
const { dropoutKey, mix32 } = require('../dist/engine/reference.js')
const { MLP, Dataset } = require('../index.js')
const { resolveConfig } = require('../dist/training/train.js')
const { fitOptions, modelOptions } = require('../dist/training/sources.js')
const { epochLr } = require('../dist/training/run.js')
const { augmentOf } = require('../dist/engine/augment.js')

const PY = '/usr/bin/python3'
const SPLIT = { train: 0.6, validation: 0.2, test: 0.2 }

// The study's recipes, in kana-native's option names. bench/torch_recipes.py holds the same table.
const RECIPES = {
  r5: { hidden: [128], optimizer: 'adam', lr: 1e-3, batchSize: 64, l2: 0, epochs: 5, earlyStopping: false, restoreBest: false },
  m3: { hidden: [512], optimizer: 'adam', lr: 1e-3, batchSize: 32, l2: 1e-3, epochs: 200, patience: 20, restoreBest: true },
  m0: { hidden: [100, 80], optimizer: 'gd', lr: 0.1, l2: 0, epochs: 500, earlyStopping: false, restoreBest: false },
  modern: { ...PRESETS.modern },
}
const DESCRIBE = {
  r5: '784-128-10, Adam 1e-3, batch 64, no L2, 5 epochs',
  m3: '784-512-10, Adam 1e-3, batch 32, L2 1e-3, ≤200 epochs, early stopping (patience 20) + restore best',
  m0: '784-100-80-10, full-batch GD lr 0.1, no L2, 500 epochs',
  modern: '784-1024-1024-10, dropout 0.3, label smoothing 0.1, AdamW (wd 1e-2), one-cycle to 2e-3 (per epoch), batch 128, 60 epochs, last weights, random affine augmentation (rotate ±12°, scale ±0.1, shear ±0.15, shift ±1.7 px) — `--preset modern`',
}
// What the PyTorch side must have used (it echoes its recipe back) for kana-native's resolved
// configuration: a drift between the two tables stops the run instead of comparing other recipes.
const SAME = {
  dropout: (c) => (c.dropout ?? 0), labelSmoothing: (c) => c.labelSmoothing ?? 0, weightDecay: (c) => (c.optimizer === 'adamw' ? c.weightDecay : undefined),
  batchSize: (c) => (c.optimizer === 'gd' ? null : c.batchSize), epochs: (c) => c.epochs, lr: (c) => c.lr, optimizer: (c) => c.optimizer,
  augment: (c) => (c.rotate || c.scale || c.shear || c.shift ? { rotate: c.rotate, scale: c.scale, shear: c.shear, shift: c.shift } : undefined),
  schedule: (c) => (c.schedule === 'one-cycle' ? { name: 'one-cycle', pctStart: c.pctStart, divFactor: c.divFactor, finalDivFactor: c.finalDivFactor } : c.schedule === 'constant' ? undefined : c.schedule),
}
const torchSide = (spec) => ({
  dropout: spec.dropout ?? 0, labelSmoothing: spec.labelSmoothing ?? 0, weightDecay: spec.weightDecay, batchSize: spec.batchSize, epochs: spec.epochs,
  lr: spec.lr, optimizer: spec.optimizer, augment: spec.augment, schedule: spec.schedule,
})

function parseArgs(argv) {
  const o = {
    seeds: [1, 2, 3], recipes: ['r5', 'm3', 'm0'], out: 'bench-results/recipes', threads: 2, checkAugment: false, sameDraws: false,
    images: path.resolve(root, '../shared/data/kmnist/X_images.npy'),
    labels: path.resolve(root, '../shared/data/kmnist/y_images.npy'),
  }
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s)
    const val = () => inline ?? argv[++i]
    switch (flag) {
      case '--seeds': o.seeds = val().split(',').map((s) => Number(s.trim())); break
      case '--recipes': o.recipes = val().split(',').map((s) => s.trim()); break
      case '--out': o.out = val(); break
      case '--images': o.images = path.resolve(val()); break
      case '--labels': o.labels = path.resolve(val()); break
      case '--threads': o.threads = Number(val()); break
      case '--check-augment': o.checkAugment = true; break
      case '--same-draws': o.sameDraws = true; break
      case '-h': case '--help':
        console.log('node bench/recipes.mjs [--seeds 1,2,3] [--recipes r5,m3,m0,modern] [--out bench-results/recipes] [--images X.npy] [--labels y.npy] [--threads 2] [--check-augment] [--same-draws]')
        process.exit(0)
      default: throw new Error(`unknown argument ${argv[i]}`)
    }
  }
  if (!o.seeds.length || o.seeds.some((s) => !Number.isSafeInteger(s))) throw new Error(`--seeds must be integers, got ${o.seeds}`)
  for (const r of o.recipes) if (!RECIPES[r]) throw new Error(`unknown recipe ${r} (known: ${Object.keys(RECIPES).join(', ')})`)
  if (!(Number.isInteger(o.threads) && o.threads > 0)) throw new Error(`--threads must be a positive integer`)
  if (o.sameDraws && o.recipes.some((r) => r !== 'modern')) throw new Error(`--same-draws is for the modern recipe only (--recipes modern), got --recipes ${o.recipes.join(',')}`)
  return o
}

/** A minimal .npy (format 1.0) writer: C order, little-endian, header padded to 64 bytes. */
function writeNpy(file, typed, shape) {
  const descr = typed instanceof Uint8Array ? '|u1' : typed instanceof BigInt64Array ? '<i8' : typed instanceof Float32Array ? '<f4' : null
  if (!descr) throw new Error(`writeNpy: unsupported array ${typed.constructor.name}`)
  const count = shape.reduce((a, b) => a * b, 1)
  if (count !== typed.length) throw new Error(`writeNpy: shape ${shape} does not hold ${typed.length} values`)
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeStr}, }`
  const pad = 64 - ((10 + header.length + 1) % 64)
  header += ' '.repeat(pad % 64) + '\n'
  const pre = Buffer.alloc(10)
  pre.write('\x93NUMPY', 0, 'latin1')
  pre[6] = 1
  pre[7] = 0
  pre.writeUInt16LE(header.length, 8)
  writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength)]))
}

const sameBytes = (a, b) => a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length
const pct = (x) => (100 * x).toFixed(2)

// PyTorch at its best (BENCHMARKS.md), in the child's environment only
const torchEnv = (threads) => {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: String(threads) }
  delete env.OPENBLAS_CORETYPE
  delete env.OPENBLAS_L2_SIZE
  return env
}

/** The machine's load now: the CPU pressure line "some avg10 avg60 avg300" and the load averages. */
function load() {
  let psi = null
  try {
    const m = readFileSync('/proc/pressure/cpu', 'utf8').match(/^some avg10=([\d.]+) avg60=([\d.]+) avg300=([\d.]+)/m)
    if (m) psi = { avg10: Number(m[1]), avg60: Number(m[2]), avg300: Number(m[3]) }
  } catch {}
  return { at: new Date().toISOString(), loadavg: loadavg().map((x) => +x.toFixed(2)), cpuPressure: psi }
}
const cpuSeconds = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/**
 * The augmentation parity check (see the file comment): throws when PyTorch's transform of the
 * same images with the same parameters is not kana-native's to rounding. Returns the differences.
 */
function checkAugment(img, features, aug, dir) {
  const side = Math.round(Math.sqrt(features))
  const drawn = 16
  const seed = 12345
  const step = 77
  const n = drawn + 4
  // real images, spread over the set
  const images = new Uint8Array(n * features)
  for (let r = 0; r < n; r++) {
    const i = Math.floor((r * (img.images.length / features - 1)) / (n - 1))
    images.set(img.images.subarray(i * features, (i + 1) * features), r * features)
  }
  // the engine's own random draw for rows 0..drawn-1 (augment.rs: key, kr, u(k), the parameters)
  const engine = augmentBatch(images.subarray(0, drawn * features), drawn, aug, seed, step)
  const key = dropoutKey(seed, step, 0x61756731)
  const u = (kr, k) => (2 * mix32((kr ^ k) >>> 0) + 1) / 4294967296 - 1
  const params = []
  for (let r = 0; r < drawn; r++) {
    const kr = mix32((key ^ r) >>> 0)
    params.push({ theta: (aug.rotate * u(kr, 0) * Math.PI) / 180, s: 1 + aug.scale * u(kr, 1), h: aug.shear * u(kr, 2), tx: aug.shift * u(kr, 3), ty: aug.shift * u(kr, 4) })
  }
  // fixed parameters, at and beyond the ranges' ends
  const deg = Math.PI / 180
  params.push({ theta: 12 * deg, s: 1.1, h: 0.15, tx: 1.7, ty: -1.7 }, { theta: -12 * deg, s: 0.9, h: -0.15, tx: -1.7, ty: 1.7 },
    { theta: 30 * deg, s: 1, h: 0, tx: 0, ty: 0 }, { theta: 0, s: 1, h: 0, tx: 0.5, ty: 0.25 })
  const kana = new Float32Array(n * features)
  kana.set(engine)
  let enginevsRef = 0
  for (let r = 0; r < n; r++) {
    const ref = referenceSample(images.subarray(r * features, (r + 1) * features), side, params[r])
    if (r < drawn) for (let j = 0; j < features; j++) enginevsRef = Math.max(enginevsRef, Math.abs(ref[j] - engine[r * features + j]))
    else kana.set(ref, r * features)
  }
  // the re-derived parameters are the engine's: its images are the reference's with them
  if (!(enginevsRef < 1e-6)) throw new Error(`augmentation check: the engine's images differ from the reference's with the re-derived parameters by ${enginevsRef}`)
  mkdirSync(dir, { recursive: true })
  writeNpy(path.join(dir, 'images.npy'), images, [n, features])
  writeNpy(path.join(dir, 'kana.npy'), kana, [n, features])
  writeFileSync(path.join(dir, 'params.json'), JSON.stringify(params))
  const p = spawnSync(PY, [path.join(root, 'bench/torch_recipes.py'), '--check-augment', dir], { encoding: 'utf8', env: torchEnv(1) })
  if (p.status !== 0) throw new Error(`torch_recipes.py --check-augment failed (${p.status ?? p.signal}): ${p.stderr}`)
  const r = { ...JSON.parse(p.stdout.trim().split('\n').pop()), engineVsReference: enginevsRef, seed, step, aug }
  // f64: both are exact bilinear maps, so only the engine's f32 output rounding is left (≤ 2⁻²⁴);
  // f32 (the training path): PyTorch's grid coordinates in float32 (~1e-6 px)
  if (!(r.maxAbsF64 < 1e-6 && r.maxAbsF32 < 1e-4)) throw new Error(`augmentation check: PyTorch's transform differs from kana-native's: ${JSON.stringify(r)}`)
  console.error(`augmentation check: ${n} real images (${drawn} with the engine's random parameters, 4 fixed): |PyTorch − kana-native| ≤ ${r.maxAbsF64.toExponential(1)} (float64), ${r.maxAbsF32.toExponential(1)} (float32, the training path); mean |change| by the transform ${r.meanAbsChange.toFixed(3)}`)
  return r
}

/** A minimal .npy reader for what torch_recipes.py writes back (C order, little-endian int64). */
function readNpyInt64(file) {
  const buf = readFileSync(file)
  const len = buf.readUInt16LE(8)
  const header = buf.toString('latin1', 10, 10 + len)
  if (!/'descr': '<i8'/.test(header) || /'fortran_order': True/.test(header)) throw new Error(`${file}: not a C-order int64 .npy (${header.trim()})`)
  const body = buf.subarray(10 + len)
  return Array.from(new BigInt64Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)), Number)
}

const flatWeights = (model) => {
  const ws = model.getWeights()
  const out = new Float32Array(ws.reduce((a, w) => a + w.length, 0))
  let at = 0
  for (const w of ws) {
    out.set(w, at)
    at += w.length
  }
  return out
}

/** Rows `idx` of a split part as their own Dataset (one mini-batch). */
function rowsOf(part, idx, features) {
  const images = new Uint8Array(idx.length * features)
  idx.forEach((i, r) => images.set(part.images.subarray(i * features, (i + 1) * features), r * features))
  return { images, labels: Int32Array.from(idx, (i) => part.labels[i]) }
}

function runPy(args, threads) {
  const p = spawnSync(PY, [path.join(root, 'bench/torch_recipes.py'), ...args, '--threads', String(threads)], { encoding: 'utf8', maxBuffer: 16 << 20, env: torchEnv(threads) })
  if (p.status !== 0) throw new Error(`torch_recipes.py ${args.join(' ')} failed (${p.status ?? p.signal}): ${p.error?.message ?? ''}${p.stderr}`)
  return JSON.parse(p.stdout.trim().split('\n').pop())
}

// The modern recipe's levers one at a time and together (torch_recipes.py LEVERS holds the same,
// and its control 'shifted': all levers with the masks and augmented batches of the next step).
const LEVERS = {
  plain: (c) => ({ ...c, dropout: 0, labelSmoothing: 0, rotate: 0, scale: 0, shear: 0, shift: 0 }),
  dropout: (c) => ({ ...c, labelSmoothing: 0, rotate: 0, scale: 0, shear: 0, shift: 0 }),
  smoothing: (c) => ({ ...c, dropout: 0, rotate: 0, scale: 0, shear: 0, shift: 0 }),
  augment: (c) => ({ ...c, dropout: 0, labelSmoothing: 0 }),
  all: (c) => c,
}
// The check's optimisers (torch_recipes.py CHECK_OPTIMIZERS): the recipe's AdamW at epoch 1's rate,
// and plain SGD at 0.1, whose update is the gradient itself.
const SGD_LR = 0.1
const CHECK_STEPS = [1, 2, 5, 10]
// Epochs after which kana-native's weights are kept for PyTorch to measure the drift against.
const DRIFT_EPOCHS = [1, 2, 5, 10, 20, 30, 40, 50, 60]
// Bounds of ‖W_torch − W_kana‖ / ‖W_kana − W_before‖ with the same draws. One SGD step from the
// engine's own weights: float rounding alone (summation order) gives ~1e-6 — the median bound —
// and a step where rounding puts a unit on the other side of a ReLU kink (its derivative jumps
// 0 ↔ 1: a whole term of one sample's gradient) a few 1e-3 — the max bound. A whole epoch: those
// kinks then grow as the two trajectories part (more so under AdamW, whose first steps are
// ≈ lr·sign(g): a small gradient element's sign flipped by rounding moves it by 2·lr), so its
// bound only tells a wrong stream — the controls 'shifted', every mask and augmented batch taken
// from the next step, are O(1) — from rounding.
const TOLERANCE = { stepMedian: 1e-4, stepMax: 3e-2, epoch: 0.3, control: 0.3 }

/**
 * --same-draws, before training seed `seed`: writes kana-native's initial weights and generator
 * state into `dd` for torch_recipes.py and proves, failing loudly, that PyTorch then trains with
 * the engine's draws (the file comment). Returns what was measured.
 */
async function checkStreams(seed, dir, dd, parts, features, classes, threads) {
  mkdirSync(dd, { recursive: true })
  const config = resolveConfig({ ...RECIPES.modern, seed, threads, split: SPLIT }, features, classes)
  const model = (c) => new MLP({ layers: c.layers, seed, threads, ...modelOptions({ ...c, hidden: c.layers.slice(1, -1) }) })
  const lr = epochLr({ ...config, hidden: config.layers.slice(1, -1) }, 0)
  const fit = (c, opt) => ({
    ...(opt === 'sgd' ? fitOptions({ ...c, optimizer: 'sgd', momentum: 0, hidden: c.layers.slice(1, -1) }, SGD_LR) : fitOptions({ ...c, hidden: c.layers.slice(1, -1) }, lr)),
    epochs: 1,
  })
  const m0 = model(config)
  const w0 = flatWeights(m0)
  const rngState = m0.getTrainingState().rng
  m0.free()
  writeNpy(path.join(dd, 'w0.npy'), w0, [w0.length])
  writeFileSync(path.join(dd, 'draws.json'), JSON.stringify({ seed, layers: config.layers, rngState, lr }))
  const py = ['--dir', dir, '--seed', String(seed)]

  // 1. initial weights and the generator's state after them, re-derived in Python
  const init = runPy([...py, '--draws', dd], threads)
  if (init.weights !== w0.length || init.initMismatched !== 0 || !init.biasesZero || init.rngStateAfterInit !== rngState) {
    throw new Error(`streams check, seed ${seed}: the initialisation re-derived in Python is not the engine's: ${JSON.stringify(init)}`)
  }
  // 2. the engine's own epoch 1, for every set of levers and both optimisers; AdamW with all levers
  // also replayed batch by batch in Python's permutation of epoch 1, which must give the very same
  // weights (bit for bit)
  const train = new Dataset(parts.train.images, parts.train.labels, features)
  const n = parts.train.labels.length
  const batch = config.batchSize
  const steps = Math.ceil(n / batch)
  const order = readNpyInt64(path.join(dd, 'order-1.npy'))
  if (order.length !== n || [...order].sort((a, b) => a - b).some((v, i) => v !== i)) throw new Error(`streams check, seed ${seed}: order-1.npy is not a permutation of 0..${n - 1}`)
  const engine = {}
  for (const opt of ['adamw', 'sgd']) {
    for (const [name, lever] of Object.entries(LEVERS)) {
      const c = lever(config)
      const m = model(c)
      await m.fit(train, fit(c, opt))
      const w = flatWeights(m)
      if (m.steps !== steps) throw new Error(`streams check: the engine took ${m.steps} steps in epoch 1, expected ${steps}`)
      m.free()
      engine[`${opt}-${name}`] = w
      writeNpy(path.join(dd, `engine-${opt}-${name}.npy`), w, [w.length])
    }
  }
  for (const opt of ['adamw', 'sgd']) {
    const replay = model(config)
    for (let s = 0; s < steps; s++) {
      const b = rowsOf(parts.train, order.slice(s * batch, (s + 1) * batch), features)
      await replay.fit(new Dataset(b.images, b.labels, features), { ...fit(config, opt), batchSize: b.labels.length })
      if (opt === 'sgd' || CHECK_STEPS.includes(s + 1)) writeNpy(path.join(dd, `engine-${opt}-all-step-${s + 1}.npy`), flatWeights(replay), [w0.length])
    }
    const replayed = flatWeights(replay)
    replay.free()
    if (!sameBytes(replayed, engine[`${opt}-all`])) throw new Error(`streams check, seed ${seed}: the engine's epoch 1 (${opt}) is not its replay in Python's permutation: the batch orders differ`)
  }
  // 3. the augmented batches of epoch 1's first and last steps, as the engine makes them
  const aug = augmentOf(config)
  for (const s of [0, steps - 1]) {
    const b = rowsOf(parts.train, order.slice(s * batch, (s + 1) * batch), features)
    const a = augmentBatch(b.images, b.labels.length, aug, seed, s)
    writeNpy(path.join(dd, `aug-step-${s}.npy`), a, [a.length])
  }
  // 4. PyTorch with the same draws: epoch 1 per optimiser and set of levers, against the engine's
  const r = runPy([...py, '--recipe', 'modern', '--check-streams', dd], threads)
  const bad = Object.entries(r.augment).filter(([, a]) => !(a.maxAbs <= 1e-6)).map(([s, a]) => `augmented batch of step ${s}: max |Δ| ${a.maxAbs}`)
  for (const [k, l] of Object.entries(r.levers)) {
    const control = k.endsWith('-shifted')
    const ok = l.steps === steps && (control ? l.relToChange > TOLERANCE.control : l.relToChange < TOLERANCE.epoch)
    if (!ok) bad.push(`${k}: ‖Δ‖/‖change‖ ${l.relToChange} after ${l.steps} steps${control ? ' (the control with shifted draws should differ)' : ''}`)
  }
  const o = r.oneStep
  if (!(o.steps === steps && o.median < TOLERANCE.stepMedian && o.max < TOLERANCE.stepMax)) bad.push(`one SGD step from the engine's weights: median ${o.median}, max ${o.max} over ${o.steps} steps`)
  if (!(r.oneStepShifted.median > TOLERANCE.control)) bad.push(`the control (one step with the next step's draws) differs by only ${r.oneStepShifted.median}`)
  if (bad.length) console.error(JSON.stringify(r))
  if (bad.length) throw new Error(`streams check, seed ${seed}: PyTorch with kana-native's draws does not train as the engine: ${bad.join('; ')}`)
  const result = { seed, layers: config.layers, lr, init, replayBitIdentical: true, ...r }
  const lv = (opt) => Object.entries(r.levers).filter(([k]) => k.startsWith(opt)).map(([k, l]) => `${k.slice(opt.length + 1)} ${l.relToChange.toExponential(1)}`).join(', ')
  const am = Object.values(r.augment).map((a) => `${a.mismatched}/${a.rows * features}`).join(', ')
  console.error(`streams check, seed ${seed}: initial weights bit-identical (${w0.length}); epoch-1 order bit-identical (replay); augmented values differing ${am}; one SGD step (all levers) from the engine's weights, ‖Δ‖/‖step‖ median ${o.median.toExponential(1)}, max ${o.max.toExponential(1)} (${o.over1e3 ?? o['over1e-3']} of ${o.steps} steps > 1e-3; control with the next step's draws: median ${r.oneStepShifted.median.toFixed(2)}); epoch 1, ‖W_torch − W_kana‖/‖W_kana − W0‖: SGD ${lv('sgd')}; AdamW ${lv('adamw')} (all levers after steps ${CHECK_STEPS.join(', ')}: ${Object.values(r.levers['adamw-all'].relToChangeAtStep).map((x) => x.toExponential(1)).join(', ')})`)
  return result
}

/** PyTorch, from the .npy parts: one recipe and seed in a child process. */
function runTorch(name, seed, dir, parts, opts, loads, extra = []) {
  const before = load()
  let torch
  try {
    torch = runPy(['--dir', dir, '--recipe', name, '--seed', String(seed), ...extra], opts.threads)
  } finally {
    loads.push(load())
  }
  if (torch.samples.train !== parts.train.labels.length || torch.samples.test !== parts.test.labels.length) throw new Error('PyTorch saw a different split size')
  torch.load = { before, after: loads.at(-1) }
  if (torch.sameDraws) {
    const d = torch.drift.map((x) => `${x.epoch}: ${x.rel.toExponential(1)}`).join(', ')
    console.error(`  ${name} pytorch (kana-native's draws)  acc ${pct(torch.testAccuracy)}%  loss ${torch.testLoss.toFixed(4)}  test predictions alike ${pct(torch.testAgreement)}%  ‖W_torch − W_kana‖/‖W_kana‖ after epoch ${d}`)
    return torch
  }
  console.error(`  ${name} pytorch      acc ${pct(torch.testAccuracy)}%  loss ${torch.testLoss.toFixed(4)}  epochs ${torch.epochs} (best ${torch.bestEpoch})  training ${torch.trainSeconds.toFixed(1)} s (CPU ${torch.trainCpuSeconds.toFixed(1)} s)  total ${torch.seconds.toFixed(1)} s`)
  return torch
}

/** recipes.md for --same-draws: accuracy per seed, how far the weights part, the streams check. No times (the draws are re-derived in Python on the way, so they say nothing). */
function sameDrawsMd(opts, runs, lab, streamChecks, loads) {
  const md = []
  const torchVersion = runs.find((r) => r.torch)?.torch ?? ''
  const k = (seed) => runs.find((r) => r.seed === seed && r.engine === 'kana-native')
  const t = (seed) => runs.find((r) => r.seed === seed && r.engine === 'pytorch')
  const drift = (seed, e) => t(seed).drift.find((d) => d.epoch === e)?.rel
  const epochs = DRIFT_EPOCHS.filter((e) => opts.seeds.every((s) => drift(s, e) !== undefined))
  md.push(`**Same draws** (\`--same-draws\`): kana-native and PyTorch ${torchVersion} train the modern recipe on the same stratified 60/20/20 split of ${lab.labels.length} KMNIST images with kana-native's random draws for the seed — its initial weights, batch order, dropout masks and augmented batches, each checked against the engine before training (below) — so they differ only in float rounding (seeds ${opts.seeds.join(', ')}; ${opts.threads} threads each).`)
  md.push('')
  md.push(`| Seed | kana-native | PyTorch, kana-native's draws | kana-native − PyTorch | test images classified alike | ‖W_torch − W_kana‖ / ‖W_kana‖ after epoch ${epochs.join(', ')} |`)
  md.push('|---|---|---|---|---|---|')
  for (const seed of opts.seeds) {
    md.push(`| ${seed} | ${pct(k(seed).testAccuracy)}% | ${pct(t(seed).testAccuracy)}% | ${((k(seed).testAccuracy - t(seed).testAccuracy) * 100).toFixed(2)} | ${pct(t(seed).testAgreement)}% | ${epochs.map((e) => drift(seed, e).toExponential(1)).join(', ')} |`)
  }
  const ka = mean(opts.seeds.map((s) => k(s).testAccuracy))
  const ta = mean(opts.seeds.map((s) => t(s).testAccuracy))
  md.push(`| mean | ${pct(ka)}% | ${pct(ta)}% | ${((ka - ta) * 100).toFixed(2)} | ${pct(mean(opts.seeds.map((s) => t(s).testAgreement)))}% | ${epochs.map((e) => mean(opts.seeds.map((s) => drift(s, e))).toExponential(1)).join(', ')} |`)
  md.push('')
  md.push(`Recipe: **modern** ${DESCRIBE.modern}.`)
  md.push('')
  md.push('The streams check, per seed, before training (the run stops if any part fails): the initial weights re-derived in Python (SplitMix64, Box–Muller) equal the engine\'s bit for bit, and so does the generator\'s state after them; the engine\'s own epoch 1 equals, bit for bit, its replay batch by batch in the permutation re-derived in Python (so the batch orders are the same); the augmented batches of epoch 1\'s first and last steps re-derived in Python equal the engine\'s bit for bit; then PyTorch with these draws against the engine, ‖W_torch − W_kana‖ / ‖W_kana − W_before‖ (relative to the engine\'s change of the weights): one SGD step (lr 0.1, every lever on) from the engine\'s own weights, each of the 38 steps of epoch 1 alone, and the whole epoch 1 with each lever alone, under SGD and under the recipe\'s AdamW at epoch 1\'s rate; the control "shifted" takes every dropout mask and augmented batch from the next step.')
  md.push('')
  md.push('| Seed | one step: median (max; steps > 1e-3) | control, one step: median | epoch 1, SGD: plain, dropout, smoothing, augment, all (control) | epoch 1, AdamW: plain, dropout, smoothing, augment, all (control) | AdamW, all levers, after steps 1, 2, 5, 10 |')
  md.push('|---|---|---|---|---|---|')
  const e = (x) => x.toExponential(1)
  for (const c of streamChecks) {
    const lv = (opt) => ['plain', 'dropout', 'smoothing', 'augment', 'all'].map((n) => e(c.levers[`${opt}-${n}`].relToChange)).join(', ') + ` (${e(c.levers[`${opt}-shifted`].relToChange)})`
    md.push(`| ${c.seed} | ${e(c.oneStep.median)} (${e(c.oneStep.max)}; ${c.oneStep['over1e-3']} of ${c.oneStep.steps}) | ${c.oneStepShifted.median.toFixed(2)} | ${lv('sgd')} | ${lv('adamw')} | ${Object.values(c.levers['adamw-all'].relToChangeAtStep).map(e).join(', ')} |`)
  }
  md.push('')
  md.push('One step from the same weights agrees to float rounding (~1e-6), except the odd step where rounding puts one hidden unit of one sample on the other side of the ReLU kink (its derivative jumps between 0 and 1): a few 1e-3. Over many steps those differences grow — training is chaotic — which is what the drift columns show; the accuracy difference per seed is then the spread of two runs that part by rounding alone.')
  const psi = loads.map((l) => l.cpuPressure?.avg60).filter((x) => x !== undefined)
  const la = loads.map((l) => l.loadavg[0])
  md.push('')
  md.push(`Machine load during the run: 1-minute load average ${Math.min(...la).toFixed(2)}–${Math.max(...la).toFixed(2)} on ${availableParallelism()} cores; CPU pressure avg60 ${psi.length ? `${Math.min(...psi).toFixed(1)}–${Math.max(...psi).toFixed(1)}%` : 'n/a'} (accuracy does not depend on it).`)
  return md.join('\n')
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  const wallStart = performance.now()
  const img = await loadImages(opts.images)
  const lab = await loadLabels(opts.labels)
  const features = img.rows * img.cols
  const tmp = mkdtempSync(path.join(tmpdir(), 'kana-recipes-'))
  const runs = []
  let augmentCheck = null
  const streamChecks = []
  const loads = [load()]
  try {
    if (opts.checkAugment || opts.recipes.includes('modern')) {
      const m = RECIPES.modern
      augmentCheck = checkAugment(img, features, { rotate: m.rotate ?? 12, scale: m.scale ?? 0.1, shear: m.shear ?? 0.15, shift: m.shift ?? 1.7 }, path.join(tmp, 'augment-check'))
      if (opts.checkAugment) {
        console.log(JSON.stringify(augmentCheck))
        return
      }
    }
    for (const [si, seed] of opts.seeds.entries()) {
      const dir = path.join(tmp, `seed-${seed}`)
      mkdirSync(dir)
      const s = stratifiedSplit(lab.labels, SPLIT, seed)
      const parts = {}
      for (const part of ['train', 'validation', 'test']) {
        const g = gather(img.images, features, lab.labels, s[part])
        parts[part] = g
        writeNpy(path.join(dir, `${part}_images.npy`), g.images, [g.labels.length, features])
        writeNpy(path.join(dir, `${part}_labels.npy`), BigInt64Array.from(g.labels, BigInt), [g.labels.length])
      }
      console.error(`seed ${seed}: split ${parts.train.labels.length}/${parts.validation.labels.length}/${parts.test.labels.length} written to ${dir}`)
      const draws = path.join(dir, 'draws')
      // (classes: the labels' max + 1, as train() infers them; the layers are compared with its run below)
      if (opts.sameDraws) streamChecks.push(await checkStreams(seed, dir, draws, parts, features, 1 + Math.max(...lab.labels), opts.threads))

      for (const name of opts.recipes) {
       // the engine that goes first alternates from seed to seed; with --same-draws kana-native
       // goes first, its weights after some epochs being PyTorch's yardstick of the drift
       for (const engine of opts.sameDraws || si % 2 === 0 ? ['kana-native', 'pytorch'] : ['pytorch', 'kana-native']) {
        if (engine === 'pytorch') {
          runs.push(runTorch(name, seed, dir, parts, opts, loads, opts.sameDraws ? ['--same-draws', draws] : []))
          continue
        }
        const recipe = RECIPES[name]
        // kana-native, from the original files and the seed; the training span as in the file comment
        let t0, c0, t1, c1
        const before = load()
        const r = await train({
          images: opts.images, labels: opts.labels, seed, threads: opts.threads, split: SPLIT, ...recipe,
          onData: () => { [t0, c0] = [performance.now(), cpuSeconds()] },
          onEpoch: (rec, { model }) => {
            [t1, c1] = [performance.now(), cpuSeconds()]
            if (opts.sameDraws && DRIFT_EPOCHS.includes(rec.epoch)) {
              const w = flatWeights(model)
              writeNpy(path.join(draws, `kana-epoch-${rec.epoch}.npy`), w, [w.length])
            }
          },
        })
        loads.push(load())
        for (const part of ['train', 'validation', 'test']) {
          if (!sameBytes(r.inputs[part].labels, parts[part].labels) || !sameBytes(r.inputs[part].images, parts[part].images)) {
            throw new Error(`seed ${seed}: kana-native's ${part} split differs from the one written for PyTorch`)
          }
        }
        const kana = {
          engine: 'kana-native', recipe: name, seed,
          testAccuracy: r.metrics.test.accuracy, testLoss: r.metrics.test.loss,
          valAccuracy: r.metrics.validation.accuracy, valLoss: r.metrics.validation.loss,
          epochs: r.history.length, bestEpoch: r.bestEpoch, stopReason: r.stopReason, seconds: r.seconds,
          trainSeconds: (t1 - t0) / 1000, trainCpuSeconds: c1 - c0, lrs: r.history.map((h) => h.lr),
          config: Object.fromEntries(Object.entries(SAME).map(([k, f]) => [k, f(r.config)])), load: { before, after: loads.at(-1) },
          steps: r.model.steps, rngStateAtEnd: r.model.getTrainingState().rng,
        }
        if (opts.sameDraws && JSON.stringify(r.config.layers) !== JSON.stringify(streamChecks.at(-1).layers)) throw new Error(`seed ${seed}: kana-native trained ${r.config.layers}, the streams were checked for ${streamChecks.at(-1).layers}`)
        r.model.dispose?.()
        runs.push(kana)
        console.error(`  ${name} kana-native  acc ${pct(kana.testAccuracy)}%  loss ${kana.testLoss.toFixed(4)}  epochs ${kana.epochs} (best ${kana.bestEpoch})  training ${kana.trainSeconds.toFixed(1)} s (CPU ${kana.trainCpuSeconds.toFixed(1)} s)  total ${kana.seconds.toFixed(1)} s`)
       }
        // the two sides' recipes and per-epoch rates must agree
        const [k, t] = ['kana-native', 'pytorch'].map((e) => runs.findLast((x) => x.engine === e && x.recipe === name && x.seed === seed))
        const want = JSON.stringify(k.config)
        const got = JSON.stringify(torchSide(t.recipeSpec))
        if (want !== got) throw new Error(`${name}: PyTorch's recipe ${got} is not kana-native's ${want}`)
        const m = Math.min(k.lrs.length, t.lrs.length)
        const worst = Math.max(...k.lrs.slice(0, m).map((lr, i) => Math.abs(lr - t.lrs[i]) / lr))
        if (!(worst < 1e-9)) throw new Error(`${name}: PyTorch's per-epoch learning rates differ from kana-native's (relative ${worst})`)
        // with the same draws: the same number of steps, and the same shuffles (the generator's end state)
        if (opts.sameDraws && (t.steps !== k.steps || t.rngStateAtEnd !== k.rngStateAtEnd)) {
          throw new Error(`${name}, seed ${seed}: PyTorch took ${t.steps} steps ending in generator state ${t.rngStateAtEnd}, kana-native ${k.steps} and ${k.rngStateAtEnd}`)
        }
      }
    }
  } finally {
    if (!process.env.KANA_KEEP_TMP) rmSync(tmp, { recursive: true, force: true })
  }

  const summary = []
  for (const name of opts.recipes) {
    for (const engine of ['kana-native', 'pytorch']) {
      const rs = runs.filter((r) => r.recipe === name && r.engine === engine)
      const acc = rs.map((r) => r.testAccuracy)
      summary.push({
        recipe: name, engine, seeds: rs.map((r) => r.seed),
        testAccuracyMean: mean(acc), testAccuracyMin: Math.min(...acc), testAccuracyMax: Math.max(...acc),
        testLossMean: mean(rs.map((r) => r.testLoss)),
        epochsMean: mean(rs.map((r) => r.epochs)), bestEpochMean: mean(rs.map((r) => r.bestEpoch)),
        secondsMean: mean(rs.map((r) => r.seconds)), trainSecondsMean: mean(rs.map((r) => r.trainSeconds)),
        trainCpuSecondsMean: mean(rs.map((r) => r.trainCpuSeconds)),
      })
    }
  }
  const gaps = opts.recipes.map((name) => {
    const k = runs.filter((r) => r.recipe === name && r.engine === 'kana-native')
    const t = runs.filter((r) => r.recipe === name && r.engine === 'pytorch')
    const perSeed = k.map((kr) => kr.testAccuracy - t.find((tr) => tr.seed === kr.seed).testAccuracy)
    // how many times shorter kana-native's training is than PyTorch's, per seed and of the means
    const ratios = k.map((kr) => t.find((tr) => tr.seed === kr.seed).trainSeconds / kr.trainSeconds)
    return {
      recipe: name, kanaMinusTorchPoints: 100 * mean(perSeed), perSeedPoints: perSeed.map((d) => 100 * d),
      speedup: mean(t.map((r) => r.trainSeconds)) / mean(k.map((r) => r.trainSeconds)), perSeedSpeedup: ratios,
    }
  })
  const wallSeconds = (performance.now() - wallStart) / 1000

  const md = []
  md.push(`Test accuracy of kana-native and PyTorch ${runs.find((r) => r.torch)?.torch ?? ''} on the same stratified 60/20/20 split of ${lab.labels.length} KMNIST images (seeds ${opts.seeds.join(', ')}; ${opts.threads} threads each).`)
  md.push('')
  md.push('| Recipe | Engine | Test accuracy, mean (range) | Test loss, mean | Epochs run, mean | Training seconds, mean (CPU) |')
  md.push('|---|---|---|---|---|---|')
  for (const s of summary) {
    md.push(`| ${s.recipe} | ${s.engine} | ${pct(s.testAccuracyMean)}% (${pct(s.testAccuracyMin)}–${pct(s.testAccuracyMax)}) | ${s.testLossMean.toFixed(4)} | ${+s.epochsMean.toFixed(1)} | ${s.trainSecondsMean.toFixed(1)} (${s.trainCpuSecondsMean.toFixed(1)}) |`)
  }
  md.push('')
  md.push('Per seed (test accuracy, training seconds (CPU seconds in recipes.json); which engine ran first):')
  md.push('')
  md.push('| Recipe | Seed | kana-native | PyTorch | kana-native − PyTorch | PyTorch / kana-native time | load: 1-min average, CPU pressure avg60 (before → after) |')
  md.push('|---|---|---|---|---|---|---|')
  const loadCell = (r) => `${r.load.before.loadavg[0]}→${r.load.after.loadavg[0]}, ${r.load.before.cpuPressure?.avg60 ?? '?'}→${r.load.after.cpuPressure?.avg60 ?? '?'}%`
  for (const name of opts.recipes) {
    for (const seed of opts.seeds) {
      const k = runs.find((r) => r.recipe === name && r.seed === seed && r.engine === 'kana-native')
      const t = runs.find((r) => r.recipe === name && r.seed === seed && r.engine === 'pytorch')
      const first = runs.indexOf(k) < runs.indexOf(t) ? 'kana-native' : 'PyTorch'
      md.push(`| ${name} | ${seed} (${first} first) | ${pct(k.testAccuracy)}%, ${k.trainSeconds.toFixed(1)} s | ${pct(t.testAccuracy)}%, ${t.trainSeconds.toFixed(1)} s | ${((k.testAccuracy - t.testAccuracy) * 100).toFixed(2)} | ${(t.trainSeconds / k.trainSeconds).toFixed(2)}× | kana-native ${loadCell(k)}; PyTorch ${loadCell(t)} |`)
    }
    const g = gaps.find((x) => x.recipe === name)
    const [ks, ts] = ['kana-native', 'pytorch'].map((e) => summary.find((x) => x.recipe === name && x.engine === e))
    md.push(`| ${name} | mean | ${pct(ks.testAccuracyMean)}%, ${ks.trainSecondsMean.toFixed(1)} s | ${pct(ts.testAccuracyMean)}%, ${ts.trainSecondsMean.toFixed(1)} s | ${g.kanaMinusTorchPoints.toFixed(2)} | ${g.speedup.toFixed(2)}× | |`)
  }
  md.push('')
  md.push('Recipes: ' + opts.recipes.map((n) => `**${n}** ${DESCRIBE[n]}`).join('; ') + '.')
  md.push('')
  md.push('kana-native − PyTorch test accuracy (points, per seed): ' + gaps.map((g) => `${g.recipe} ${g.kanaMinusTorchPoints >= 0 ? '+' : ''}${g.kanaMinusTorchPoints.toFixed(2)} (${g.perSeedPoints.map((d) => d.toFixed(2)).join(', ')})`).join('; ') + '.')
  md.push('')
  md.push(`Same split, same architecture, He init, optimiser hyper-parameters, per-epoch learning rates (checked), early-stopping rule and augmentation transform (checked); different random initial weights, batch orders, dropout masks and augmentation draws (each engine has its own generator), so per-seed differences of a point or so are noise. Training seconds: the training loop (every epoch: augmentation, steps, validation pass), from the data in memory to the end of the last epoch, alike in both; loading, splitting and the final evaluation are outside (with them: recipes.json \`seconds\`). PyTorch ${runs.find((r) => r.torch)?.torch ?? ''} with OpenBLAS AVX-512 kernels, OPENBLAS_NUM_THREADS=1, torch.set_num_threads(${opts.threads}) (BENCHMARKS.md "best").`)
  const psi = loads.map((l) => l.cpuPressure?.avg60).filter((x) => x !== undefined)
  const la = loads.map((l) => l.loadavg[0])
  md.push('')
  md.push(`Machine load during the run (sampled before and after every run): 1-minute load average ${Math.min(...la).toFixed(2)}–${Math.max(...la).toFixed(2)} on ${availableParallelism()} cores; CPU pressure (/proc/pressure/cpu "some" avg60) ${psi.length ? `${Math.min(...psi).toFixed(1)}–${Math.max(...psi).toFixed(1)}%` : 'n/a'}.`)
  mkdirSync(path.resolve(opts.out), { recursive: true })
  writeFileSync(path.join(opts.out, 'recipes.json'), JSON.stringify({
    date: new Date().toISOString(), node: process.version, data: { images: opts.images, labels: opts.labels, split: SPLIT },
    seeds: opts.seeds, threads: opts.threads, recipes: Object.fromEntries(opts.recipes.map((n) => [n, RECIPES[n]])),
    mode: opts.sameDraws ? 'same-draws' : 'independent draws', summary, gaps, runs, wallSeconds, loads, augmentCheck, streamChecks,
  }, null, 2) + '\n')
  const table = opts.sameDraws ? sameDrawsMd(opts, runs, lab, streamChecks, loads) : md.join('\n')
  writeFileSync(path.join(opts.out, 'recipes.md'), table + '\n')
  console.log(table)
  console.log(`\nwall time ${wallSeconds.toFixed(1)} s; written to ${path.join(opts.out, 'recipes.{md,json}')}`)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

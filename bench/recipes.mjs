#!/usr/bin/env node
// Accuracy side by side: kana-native vs PyTorch, same data split, same recipes. Not a test.
//
//   node bench/recipes.mjs [--seeds 1,2,3] [--recipes r5,m3,m0] [--out bench-results/recipes]
//                          [--images X.npy] [--labels y.npy] [--threads 2]
//
// For every seed the course data (../shared/data/kmnist by default) is split 60/20/20 with
// kana-native's own stratifiedSplit — exactly what train() does with that seed — and the three
// parts are written as .npy files to a temporary folder. kana-native's train() is then given the
// original files and the seed (it re-creates the identical split; this script checks that it did,
// sample by sample), and bench/torch_recipes.py trains the PyTorch equivalent on the .npy parts.
// Both run one after the other, never at the same time, each with 2 threads.
//
// Writes recipes.json (every run plus the summary) and recipes.md (the table) into --out.
// Needs `npm run build` (dist/ and the .node addon) and PyTorch for Debian's /usr/bin/python3.

import { createRequire } from 'node:module'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { stratifiedSplit, gather } = require('../dist/data/split.js')
const { loadImages, loadLabels } = require('../dist/data/readers.js')
const { train } = require('../dist/training/train.js')

const PY = '/usr/bin/python3'
const SPLIT = { train: 0.6, validation: 0.2, test: 0.2 }

// The study's recipes, in kana-native's option names. bench/torch_recipes.py holds the same table.
const RECIPES = {
  r5: { hidden: [128], optimizer: 'adam', lr: 1e-3, batchSize: 64, l2: 0, epochs: 5, earlyStopping: false, restoreBest: false },
  m3: { hidden: [512], optimizer: 'adam', lr: 1e-3, batchSize: 32, l2: 1e-3, epochs: 200, patience: 20, restoreBest: true },
  m0: { hidden: [100, 80], optimizer: 'gd', lr: 0.1, l2: 0, epochs: 500, earlyStopping: false, restoreBest: false },
}
const DESCRIBE = {
  r5: '784-128-10, Adam 1e-3, batch 64, no L2, 5 epochs',
  m3: '784-512-10, Adam 1e-3, batch 32, L2 1e-3, ≤200 epochs, early stopping (patience 20) + restore best',
  m0: '784-100-80-10, full-batch GD lr 0.1, no L2, 500 epochs',
}

function parseArgs(argv) {
  const o = {
    seeds: [1, 2, 3], recipes: ['r5', 'm3', 'm0'], out: 'bench-results/recipes', threads: 2,
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
      case '-h': case '--help':
        console.log('node bench/recipes.mjs [--seeds 1,2,3] [--recipes r5,m3,m0] [--out bench-results/recipes] [--images X.npy] [--labels y.npy] [--threads 2]')
        process.exit(0)
      default: throw new Error(`unknown argument ${argv[i]}`)
    }
  }
  if (!o.seeds.length || o.seeds.some((s) => !Number.isSafeInteger(s))) throw new Error(`--seeds must be integers, got ${o.seeds}`)
  for (const r of o.recipes) if (!RECIPES[r]) throw new Error(`unknown recipe ${r} (known: ${Object.keys(RECIPES).join(', ')})`)
  if (!(Number.isInteger(o.threads) && o.threads > 0)) throw new Error(`--threads must be a positive integer`)
  return o
}

/** A minimal .npy (format 1.0) writer: C order, little-endian, header padded to 64 bytes. */
function writeNpy(file, typed, shape) {
  const descr = typed instanceof Uint8Array ? '|u1' : typed instanceof BigInt64Array ? '<i8' : null
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

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  const wallStart = performance.now()
  const img = await loadImages(opts.images)
  const lab = await loadLabels(opts.labels)
  const features = img.rows * img.cols
  const tmp = mkdtempSync(path.join(tmpdir(), 'kana-recipes-'))
  const runs = []
  try {
    for (const seed of opts.seeds) {
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

      for (const name of opts.recipes) {
        const recipe = RECIPES[name]
        // kana-native, from the original files and the seed
        const r = await train({ images: opts.images, labels: opts.labels, seed, threads: opts.threads, split: SPLIT, ...recipe })
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
        }
        r.model.dispose?.()
        runs.push(kana)
        console.error(`  ${name} kana-native  acc ${pct(kana.testAccuracy)}%  loss ${kana.testLoss.toFixed(4)}  epochs ${kana.epochs} (best ${kana.bestEpoch})  ${kana.seconds.toFixed(1)} s`)

        // PyTorch, from the .npy parts
        const p = spawnSync(PY, [path.join(root, 'bench/torch_recipes.py'), '--dir', dir, '--recipe', name, '--seed', String(seed), '--threads', String(opts.threads)], {
          encoding: 'utf8', maxBuffer: 16 << 20,
          // OpenBLAS's own pool off so torch's 2 threads are the only ones (as scripts/bench.mjs "best")
          env: { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: String(opts.threads) },
        })
        if (p.status !== 0) throw new Error(`torch_recipes.py failed (${p.status ?? p.signal}): ${p.error?.message ?? ''}${p.stderr}`)
        const torch = JSON.parse(p.stdout.trim().split('\n').pop())
        if (torch.samples.train !== parts.train.labels.length || torch.samples.test !== parts.test.labels.length) throw new Error('PyTorch saw a different split size')
        runs.push(torch)
        console.error(`  ${name} pytorch      acc ${pct(torch.testAccuracy)}%  loss ${torch.testLoss.toFixed(4)}  epochs ${torch.epochs} (best ${torch.bestEpoch})  ${torch.seconds.toFixed(1)} s`)
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true })
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
        secondsMean: mean(rs.map((r) => r.seconds)),
      })
    }
  }
  const gaps = opts.recipes.map((name) => {
    const k = runs.filter((r) => r.recipe === name && r.engine === 'kana-native')
    const t = runs.filter((r) => r.recipe === name && r.engine === 'pytorch')
    const perSeed = k.map((kr) => kr.testAccuracy - t.find((tr) => tr.seed === kr.seed).testAccuracy)
    return { recipe: name, kanaMinusTorchPoints: 100 * mean(perSeed), perSeedPoints: perSeed.map((d) => 100 * d) }
  })
  const wallSeconds = (performance.now() - wallStart) / 1000

  const md = []
  md.push(`Test accuracy of kana-native and PyTorch ${runs.find((r) => r.torch)?.torch ?? ''} on the same stratified 60/20/20 split of ${lab.labels.length} KMNIST images (seeds ${opts.seeds.join(', ')}; ${opts.threads} threads each).`)
  md.push('')
  md.push('| Recipe | Engine | Test accuracy, mean (range) | Test loss, mean | Epochs run, mean | Seconds, mean |')
  md.push('|---|---|---|---|---|---|')
  for (const s of summary) {
    md.push(`| ${s.recipe} | ${s.engine} | ${pct(s.testAccuracyMean)}% (${pct(s.testAccuracyMin)}–${pct(s.testAccuracyMax)}) | ${s.testLossMean.toFixed(4)} | ${+s.epochsMean.toFixed(1)} | ${s.secondsMean.toFixed(1)} |`)
  }
  md.push('')
  md.push('Recipes: ' + opts.recipes.map((n) => `**${n}** ${DESCRIBE[n]}`).join('; ') + '.')
  md.push('')
  md.push('kana-native − PyTorch test accuracy (points, per seed): ' + gaps.map((g) => `${g.recipe} ${g.kanaMinusTorchPoints >= 0 ? '+' : ''}${g.kanaMinusTorchPoints.toFixed(2)} (${g.perSeedPoints.map((d) => d.toFixed(2)).join(', ')})`).join('; ') + '.')
  md.push('')
  md.push(`Same split, same architecture, He init, Adam/GD hyper-parameters and early-stopping rule; different random initial weights and batch orders (each engine has its own generator), so per-seed differences of a point or so are noise. kana-native seconds include loading and splitting the data; PyTorch seconds include loading the .npy parts.`)
  const table = md.join('\n')

  mkdirSync(path.resolve(opts.out), { recursive: true })
  writeFileSync(path.join(opts.out, 'recipes.md'), table + '\n')
  writeFileSync(path.join(opts.out, 'recipes.json'), JSON.stringify({
    date: new Date().toISOString(), node: process.version, data: { images: opts.images, labels: opts.labels, split: SPLIT },
    seeds: opts.seeds, threads: opts.threads, recipes: Object.fromEntries(opts.recipes.map((n) => [n, RECIPES[n]])),
    summary, gaps, runs, wallSeconds,
  }, null, 2) + '\n')
  console.log(table)
  console.log(`\nwall time ${wallSeconds.toFixed(1)} s; written to ${path.join(opts.out, 'recipes.{md,json}')}`)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

#!/usr/bin/env node
// What each F1 layer costs: [784,1024,1024,10], Adam, batch 128, one training epoch over --rows
// synthetic rows, 2 threads, kana-native and PyTorch (at its best: BENCHMARKS.md) running the same
// layers side by side — default ReLU, leaky-relu, SiLU, GELU, dropout 0.2, batch norm, and GELU +
// dropout + batch norm. A benchmark, not a test. Each measurement is a fresh child process
// (bench/kana_child.cjs, bench/torch_mlp.py), engines and variants alternate within a repetition,
// and the table gives medians of wall-clock samples/s and of CPU seconds per sample (all threads),
// each variant's cost relative to the same engine's ReLU row, and kana-native / PyTorch.
//
//   node bench/layers.mjs [--reps 3] [--rows 8192] [--threads 2]
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
const { values: args } = parseArgs({ options: { reps: { type: 'string', default: '3' }, rows: { type: 'string', default: '8192' }, threads: { type: 'string', default: '2' } } })
const reps = Number(args.reps)
const rows = Number(args.rows)
const threads = Number(args.threads)

const VARIANTS = [
  { name: 'relu (default)' },
  { name: 'leaky-relu', activation: 'leaky-relu' },
  { name: 'silu', activation: 'silu' },
  { name: 'gelu', activation: 'gelu' },
  { name: 'dropout 0.2', dropout: 0.2 },
  { name: 'batch norm', batchNorm: true },
  { name: 'gelu + dropout 0.2 + batch norm', activation: 'gelu', dropout: 0.2, batchNorm: true },
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

const PY = '/usr/bin/python3'
const torchEnv = { ...process.env, OPENBLAS_NUM_THREADS: '1' }
delete torchEnv.OPENBLAS_CORETYPE // BENCHMARKS.md "at its best", in this child's environment only
delete torchEnv.OPENBLAS_L2_SIZE
const haveTorch = fs.existsSync(PY) && spawnSync(PY, ['-c', 'import torch'], { env: torchEnv }).status === 0

function run(engine, v) {
  const spec = { workload: 'train', data, labels, features: 784, offset: 0, n: rows, layers: [784, 1024, 1024, 10], batch: 128, threads, lr: 1e-3, seed: 1, warmup: 8, ...v }
  delete spec.name
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
  for (const [i, v] of VARIANTS.entries()) {
    const order = (rep + i) % 2 === 0 ? engines : [...engines].reverse()
    for (const e of order) {
      const key = `${e}|${v.name}`
      results.set(key, [...(results.get(key) ?? []), run(e, v)])
    }
  }
  console.error(`repetition ${rep + 1}/${reps} done, ${((Date.now() - started) / 1000).toFixed(0)} s`)
}
fs.rmSync(dir, { recursive: true, force: true })

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
const med = (e, v, k) => median(results.get(`${e}|${v.name}`).map((r) => r[k]))
const k = (x) => (x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0))
const pct = (x) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)}%`
const head = ['variant', 'kana-native samples/s', 'cost vs relu', 'CPU µs/sample', ...(haveTorch ? ['PyTorch samples/s', 'cost vs relu', 'CPU µs/sample', 'kana / PyTorch'] : [])]
const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`]
for (const v of VARIANTS) {
  const cells = [v.name]
  for (const e of engines) {
    const s = med(e, v, 'perSecond')
    cells.push(k(s), pct(med(e, VARIANTS[0], 'perSecond') / s - 1), (med(e, v, 'cpuPerSample') * 1e6).toFixed(0))
  }
  if (haveTorch) cells.push(`${(med('kana', v, 'perSecond') / med('torch', v, 'perSecond')).toFixed(2)}×`)
  lines.push(`| ${cells.join(' | ')} |`)
}
console.log(`[784,1024,1024,10], Adam, batch 128, ${rows} rows, ${threads} threads, ${reps} repetitions (medians); load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`)
console.log(lines.join('\n'))

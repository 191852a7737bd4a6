#!/usr/bin/env node
// `npm run bench` — kana-native against its peers, side by side. A benchmark, not a test: it never
// fails on a slow result, it reports (exit status ≠ 0 only when kana-native itself cannot run).
//
// What it measures (see ../shared/docs/BENCHMARKS.md for the peers, the FLOP accounting and how to
// get PyTorch at its best):
//   1. training [784,512,49], Adam lr 1e-3, batch 32 / 128 / 512, one epoch over --samples rows,
//      2 threads; kana-native also on 1 thread at batch 512 (the 1→2 scaling figure);
//   2. full-batch gradient descent [784,100,80,49] over 162,655 rows (K49's training split): s/step;
//   3. inference predict_proba [784,512,49] on 38,547 rows (K49's test split);
//   4. a K49-sized kana-native epoch (232,365 rows, batch 512) with its peak RSS, vs u8 data +
//      model + optimiser state;
//   and the machine's FMA peak (bench/fma.c, compiled here with gcc -O3 -march=native), 1 and 2
//   threads, so "% of peak" refers to this run on this machine.
//
// Engines (each measurement runs in a fresh child process; engines alternate within every
// repetition, in an order rotated each repetition; the table shows the median over repetitions):
//   kana      kana-native, 2 threads (and 1 thread at batch 512)        bench/kana_child.cjs
//   torch     PyTorch 1.13 from Debian (/usr/bin/python3), three configs bench/torch_mlp.py
//               best: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset, torch 2 threads, OpenBLAS 1
//                     (BENCHMARKS.md's "at its best"; the targets compare against this one)
//               user: environment as is, torch 2 threads, OPENBLAS_NUM_THREADS=2
//               t1:   as best but torch on 1 thread — a reference row: on a busy machine
//                     PyTorch's 2 OpenMP threads can collapse, and 1 thread is then faster
//   tfjs      TensorFlow.js 4, pure-JS 'cpu' and 'wasm' backends: few steps, subset inference
//                                                                        bench/tfjs_child.cjs
// All engines read the same seeded synthetic uint8 data (K49's shape: 784 pixels, 49 classes),
// generated once per run into a temporary directory; the K49-sized workload reads its rows as .npy
// files (written from the same bytes) through loadDataset, as a user would load K49.
//
// Flags:
//   --quick          1 repetition, 16,384 training rows, fewer steps/passes (≈ 2 minutes on a
//                    quiet 2-core machine, 4–5 on a busy one)
//   --reps N         repetitions (default 3)
//   --max-minutes M  no new repetition starts if the previous one (TF.js aside) says it would end
//                    after M minutes (default 7; keeps the default run under ~8 minutes on 2 cores
//                    even when the machine is busy — it then does fewer repetitions, and says so)
//   --only LIST      engines, comma-separated: kana, torch, torch-best, torch-user, torch-t1,
//                    tfjs, tfjs-cpu, tfjs-wasm (default all); the FMA peak is always measured
//   --samples N      training rows per epoch for the batch 32/128/512 workloads (default 49,152)
//   --tfjs-reps N    repetitions for the (slow) TF.js backends (default 1)
//   --torch-cap S    stop a PyTorch training epoch after S seconds and report the samples it did
//                    (default 8; --quick 4) — keeps a pathological configuration from eating the run
//   --quiet-wait S   before each measurement wait up to S seconds for other load on the machine
//                    to drop below 25% (default 2, at most 20 s in all; 0 = don't wait)
//   --nice=N         run every measurement at this scheduling priority (e.g. --nice=-10; a negative N
//                    needs root; write it with "=", or parseArgs takes -10 for an option): on a
//                    machine shared with other work it takes CPU from that work — but only from
//                    work in the same cgroup; it did not help on the shared 2-core dev machine
//                    (default: unchanged)
//   --out DIR        where results go (default bench-results/, git-ignored)
//   --keep-data      keep the synthetic data files (their directory is printed)
// Output: a table on stdout, and bench-results/bench-<time>.{md,json} (+ latest.{md,json}).

import { spawnSync, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const t0 = Date.now()

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------
const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    reps: { type: 'string' },
    only: { type: 'string' },
    samples: { type: 'string' },
    'tfjs-reps': { type: 'string' },
    'torch-cap': { type: 'string' },
    'quiet-wait': { type: 'string' },
    'max-minutes': { type: 'string' },
    nice: { type: 'string' },
    out: { type: 'string', default: path.join(root, 'bench-results') },
    'keep-data': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (opt.help) {
  // the header comment above is the manual
  const src = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n')
  console.log(src.slice(1, src.findIndex((l) => l.startsWith('import'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'))
  process.exit(0)
}
const quick = opt.quick
const REPS = Number(opt.reps ?? (quick ? 1 : 3))
const TRAIN_N = Number(opt.samples ?? (quick ? 16384 : 49152))
const TFJS_REPS = Math.min(REPS, Number(opt['tfjs-reps'] ?? 1))
const TORCH_CAP = Number(opt['torch-cap'] ?? (quick ? 4 : 8))
const QUIET_WAIT = Number(opt['quiet-wait'] ?? 2)
const MAX_MINUTES = Number(opt['max-minutes'] ?? (quick ? 1e9 : 7))
if (!(MAX_MINUTES > 0)) throw new Error('--max-minutes must be > 0')
const GD_STEPS = quick ? 1 : 2 // timed full-batch steps per measurement (after 1 warm-up step)
const INFER_PASSES = quick ? 2 : 3 // timed inference passes per measurement (median)
const THREADS = 2
if (opt.nice != null) os.setPriority(0, Number(opt.nice)) // children inherit it
for (const [k, v] of Object.entries({ reps: REPS, samples: TRAIN_N })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer`)
}

// ---------------------------------------------------------------------------------------------
// Shapes, sizes and FLOP accounting (BENCHMARKS.md: real GEMM work, not the "3× forward" rule)
// ---------------------------------------------------------------------------------------------
const F = 784
const K = 49
const K49_TRAIN = 232365 // all of K49's training images
const K49_TEST = 38547
const GD_N = 162655 // K49 training split used for full-batch GD (70%)
const L_MAIN = [784, 512, 49]
const L_GD = [784, 100, 80, 49]

/** forward FLOP per sample: 2·Σ in·out */
const fwdFlop = (L) => L.slice(1).reduce((s, o, i) => s + 2 * L[i] * o, 0)
/** training FLOP per sample: forward + weight gradients + input gradients of every layer but the
 *  first (no gradient w.r.t. the pixels). [784,512,49] → 1.756 MFLOP. Bias, activation, softmax and
 *  optimiser work are not counted. */
const trainFlop = (L) => 2 * fwdFlop(L) + L.slice(2).reduce((s, o, i) => s + 2 * L[i + 1] * o, 0)

// ---------------------------------------------------------------------------------------------
// Which engines
// ---------------------------------------------------------------------------------------------
const ENGINES = {
  kana: { label: 'kana-native, 2 threads', family: 'kana', threads: 2 },
  'kana-t1': { label: 'kana-native, 1 thread', family: 'kana', threads: 1 },
  'torch-best': { label: 'PyTorch best (torch 2 thr, OpenBLAS 1 thr, CORETYPE/L2 unset)', family: 'torch', threads: 2 },
  'torch-user': { label: 'PyTorch as installed (torch 2 thr, OpenBLAS 2 thr, env as is)', family: 'torch', threads: 2 },
  'torch-t1': { label: 'PyTorch 1 thread (torch 1 thr, OpenBLAS 1 thr, CORETYPE/L2 unset)', family: 'torch', threads: 1 },
  'tfjs-wasm': { label: 'TF.js wasm (SIMD, 1 thread)', family: 'tfjs', threads: 1 },
  'tfjs-cpu': { label: 'TF.js cpu (pure JS, 1 thread)', family: 'tfjs', threads: 1 },
}
const wanted = new Set()
for (const w of (opt.only ?? 'kana,torch,tfjs').split(',').map((s) => s.trim()).filter(Boolean)) {
  const hit = Object.keys(ENGINES).filter((e) => e === w || ENGINES[e].family === w)
  if (!hit.length) throw new Error(`--only: unknown engine "${w}" (${['kana', 'torch', 'tfjs', ...Object.keys(ENGINES)].join(', ')})`)
  hit.forEach((e) => wanted.add(e))
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------
const log = (...a) => console.error(...a) // progress on stderr; the table goes to stdout
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
const median = (a) => {
  const s = [...a].sort((x, y) => x - y)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const fmtN = (x) =>
  x == null || !Number.isFinite(x) ? '–' : x >= 1e5 ? `${(x / 1e3).toFixed(0)}k` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(x >= 100 ? 0 : 1)
const fmtX = (x) => (x == null || !Number.isFinite(x) ? '–' : `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}×`)
const MB = 1e6 // decimal megabytes throughout (the u8 K49 images are 182.2 MB)
const pct = (v) => (v == null ? '–' : `${(100 * v).toFixed(0)}%`)

/** Aggregate CPU time counters (jiffies) from /proc/stat. */
function cpuTimes() {
  try {
    const v = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    const idle = v[3] + (v[4] || 0)
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0)
    return { idle, total, steal: v[7] || 0 }
  } catch {
    return null
  }
}
/** Microseconds some task has waited for a CPU (Linux PSI), or null. */
function psiSome() {
  try {
    return Number(fs.readFileSync('/proc/pressure/cpu', 'utf8').match(/^some .*total=(\d+)/m)[1])
  } catch {
    return null
  }
}
/** Fraction of the machine busy over `ms` (no child of ours runs while this is measured). */
function busyFraction(ms) {
  const a = cpuTimes()
  sleep(ms)
  const b = cpuTimes()
  if (!a || !b || b.total === a.total) return null
  return 1 - (b.idle - a.idle) / (b.total - a.total)
}

/**
 * Run one child; returns its parsed RESULT plus bookkeeping (wall time, CPU pressure during the
 * run, the load seen just before it). A failure returns { error }.
 */
let quietBudget = 20 // seconds of waiting for a lull, in all
function runChild(cmd, args, env, timeoutS) {
  // the quiet gate: other processes (builds, tests) share this machine; wait a little for a lull
  let background = busyFraction(250)
  for (let waited = 0; background != null && background > 0.25 && waited < QUIET_WAIT && quietBudget > 0; waited += 0.75) {
    sleep(500)
    quietBudget -= 0.75
    background = busyFraction(250)
  }
  const psi0 = psiSome()
  const c0 = cpuTimes()
  const w0 = performance.now()
  const r = spawnSync(cmd, args, {
    cwd: root,
    env,
    encoding: 'utf8',
    timeout: timeoutS * 1000,
    maxBuffer: 64 << 20,
  })
  const wall = (performance.now() - w0) / 1000
  const psi1 = psiSome()
  const c1 = cpuTimes()
  const line = (r.stdout || '').split('\n').find((l) => l.startsWith('RESULT '))
  if (r.status !== 0 || !line) {
    const why = r.error ? r.error.message : `exit ${r.status ?? r.signal}`
    return { error: `${why}: ${(r.stderr || r.stdout || '').trim().split('\n').slice(-3).join(' | ')}` }
  }
  const res = JSON.parse(line.slice(7))
  res.wall = wall
  res.background = background
  // share of the run during which some task waited for a CPU (contention, ours included)
  res.pressure = psi0 != null && psi1 != null ? (psi1 - psi0) / 1e6 / wall : null
  res.steal = c0 && c1 && c1.total > c0.total ? (c1.steal - c0.steal) / (c1.total - c0.total) : null
  return res
}

// ---------------------------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------------------------
const cpuinfo = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : ''
const cpuModel = (cpuinfo.match(/^model name\s*:\s*(.*)$/m) || [])[1] || os.cpus()[0]?.model || 'unknown'
const flags = new Set(((cpuinfo.match(/^flags\s*:\s*(.*)$/m) || [])[1] || '').split(/\s+/))
const isaFound = flags.has('avx512f') ? 'AVX-512' : flags.has('avx2') && flags.has('fma') ? 'AVX2+FMA (no AVX-512)' : 'no AVX2/FMA'
const cores = os.availableParallelism()

let kanaCpu = null
try {
  kanaCpu = require(path.join(root, 'index.js')).native.cpuFeatures()
} catch (e) {
  log(`kana-native cannot be loaded (${e.message.split('\n')[0]}); run \`npm run build\``)
  process.exit(1)
}
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
let gitRev = null
try {
  gitRev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
  const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).trim()
  if (dirty) gitRev += ' (uncommitted changes)'
} catch {}

const notes = [] // things the reader should know, gathered as we go

// PyTorch: Debian's package installs for /usr/bin/python3, not the pyenv python3 on PATH
const PY = '/usr/bin/python3'
const torchEnv = {
  // "as a user gets it": the environment as it is, torch on 2 threads, OpenBLAS 2 threads
  'torch-user': { ...process.env, OPENBLAS_NUM_THREADS: '2' },
  // "at its best" (BENCHMARKS.md): let OpenBLAS pick its own kernels, 1 BLAS thread under torch's 2
  'torch-best': (() => {
    const e = { ...process.env, OPENBLAS_NUM_THREADS: '1' }
    delete e.OPENBLAS_CORETYPE
    delete e.OPENBLAS_L2_SIZE
    return e
  })(),
}
torchEnv['torch-t1'] = torchEnv['torch-best'] // same environment, torch.set_num_threads(1)
// one 'info' child checks that PyTorch is there (version, BLAS); every measurement reports the BLAS
// it actually loaded too, and the header shows what each configuration got
const torchInfo = {}
const TORCH = ['torch-best', 'torch-user', 'torch-t1']
if (TORCH.some((e) => wanted.has(e))) {
  const e = TORCH.find((t) => wanted.has(t))
  const r = fs.existsSync(PY)
    ? runChild(PY, [path.join(root, 'bench/torch_mlp.py'), JSON.stringify({ workload: 'info', threads: ENGINES[e].threads, offset: 0, n: 0 })], torchEnv[e], 120)
    : { error: `${PY} not found` }
  if (r.error) {
    notes.push(
      `PyTorch was not measured: ${r.error.slice(0, 200)}. Install it with \`apt-get install -y python3-torch libopenblas0-pthread\` (it goes to ${PY}).`,
    )
    TORCH.forEach((t) => wanted.delete(t))
  } else torchInfo[e] = r
}
for (const e of ['tfjs-cpu', 'tfjs-wasm']) {
  if (!wanted.has(e)) continue
  try {
    require.resolve('@tensorflow/tfjs', { paths: [root] })
    require.resolve('@tensorflow/tfjs-backend-wasm', { paths: [root] })
  } catch {
    notes.push('TF.js was not measured: @tensorflow/tfjs / @tensorflow/tfjs-backend-wasm are not installed (npm install).')
    wanted.delete('tfjs-cpu')
    wanted.delete('tfjs-wasm')
  }
}
const tfjsVersion = (() => {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, 'node_modules/@tensorflow/tfjs/package.json'), 'utf8')).version
  } catch {
    return null
  }
})()

// ---------------------------------------------------------------------------------------------
// Synthetic data, K49's shape: 232,365 training rows + 38,547 test rows of 784 u8 pixels.
// Recipe (seeded mulberry32, seed 20261127): 49 class prototypes, each pixel "on" with p = 0.3 at a
// level 96..255; a sample copies its class's prototype with ±40 noise on the "on" pixels and 3%
// speckle elsewhere (so the data is learnable and, like K49, mostly zeros). Every engine reads these
// exact bytes (raw u8 images, int32 labels) from the temp files.
// ---------------------------------------------------------------------------------------------
/** The project's mulberry32 (src/split.ts), as whole 32-bit numbers: its floats are exactly u32 / 2^32. */
function mulberry32(seed) {
  const next = require(path.join(root, 'dist', 'data', 'split.js')).mulberry32(seed)
  return () => next() * 4294967296
}
const ROWS = K49_TRAIN + K49_TEST
const TEST_OFF = K49_TRAIN
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kana-bench-'))
const DATA = path.join(dataDir, 'images.u8')
const LABELS = path.join(dataDir, 'labels.i32')
{
  const g0 = performance.now()
  const rnd = mulberry32(20261127)
  const proto = new Uint8Array(K * F)
  for (let i = 0; i < proto.length; i++) proto[i] = rnd() % 100 < 30 ? 96 + (rnd() % 160) : 0
  const labels = new Int32Array(ROWS)
  const fd = fs.openSync(DATA, 'w')
  const CHUNK = 8192
  const buf = new Uint8Array(CHUNK * F)
  for (let r0 = 0; r0 < ROWS; r0 += CHUNK) {
    const rows = Math.min(CHUNK, ROWS - r0)
    for (let r = 0; r < rows; r++) {
      const c = rnd() % K
      labels[r0 + r] = c
      const p = c * F
      const o = r * F
      for (let j = 0; j < F; j++) {
        const x = rnd()
        const v = proto[p + j]
        buf[o + j] = v ? Math.max(0, Math.min(255, v + ((x & 0xff) % 81) - 40)) : (x >>> 8) % 100 < 3 ? x >>> 24 : 0
      }
    }
    fs.writeSync(fd, buf, 0, rows * F)
  }
  fs.closeSync(fd)
  fs.writeFileSync(LABELS, new Uint8Array(labels.buffer))
  log(`synthetic data: ${ROWS} rows (${((ROWS * F) / MB).toFixed(0)} MB) in ${dataDir}, ${((performance.now() - g0) / 1000).toFixed(1)} s`)
}

/** A .npy version 1.0 header for a C-order array (NumPy's layout: padded with spaces to a multiple of 64, ending in a newline). */
function npyHeader(descr, shape) {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`
  const len = Math.ceil((10 + dict.length + 1) / 64) * 64 - 10
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, len & 0xff, len >> 8])
  return Buffer.concat([pre, Buffer.from(dict.padEnd(len - 1) + '\n', 'latin1')])
}
// The K49-sized workload loads its data as a user would, from .npy files (kana-native's loadDataset):
// the same bytes as rows 0..K49_TRAIN of the raw files, behind a .npy header.
const K49_IMAGES = path.join(dataDir, 'k49-train-imgs.npy')
const K49_LABELS = path.join(dataDir, 'k49-train-labels.npy')
if (wanted.has('kana')) {
  const fd = fs.openSync(K49_IMAGES, 'w')
  fs.writeSync(fd, npyHeader('|u1', [K49_TRAIN, F]))
  const src = fs.openSync(DATA, 'r')
  const buf = new Uint8Array(8192 * F)
  for (let at = 0; at < K49_TRAIN * F; ) {
    const got = fs.readSync(src, buf, 0, Math.min(buf.length, K49_TRAIN * F - at), at)
    fs.writeSync(fd, buf, 0, got)
    at += got
  }
  fs.closeSync(src)
  fs.closeSync(fd)
  const lab = Buffer.alloc(K49_TRAIN * 4)
  const lf = fs.openSync(LABELS, 'r')
  fs.readSync(lf, lab, 0, lab.length, 0)
  fs.closeSync(lf)
  fs.writeFileSync(K49_LABELS, Buffer.concat([npyHeader('<i4', [K49_TRAIN]), lab]))
}

// ---------------------------------------------------------------------------------------------
// The FMA peak: compile bench/fma.c for this CPU, run it on 1 and 2 threads before every workload
// of every repetition; "peak" = the best seen in the run (a ceiling: on a shared machine most runs
// fall below it)
// ---------------------------------------------------------------------------------------------
const fmaBin = path.join(dataDir, 'fma')
let fmaError = null
try {
  execFileSync('gcc', ['-O3', '-march=native', '-pthread', '-o', fmaBin, path.join(root, 'bench/fma.c')], { stdio: 'pipe' })
} catch (e) {
  fmaError = `could not compile bench/fma.c: ${String(e.stderr || e.message).trim().split('\n')[0]}`
  notes.push(`FMA peak not measured (${fmaError}); "% of peak" is left blank.`)
}
const fmaRuns = { 1: [], 2: [] }
let fmaIsa = null
function measurePeak() {
  if (fmaError) return
  for (const t of [1, THREADS]) {
    const r = runChild(fmaBin, [String(t), '0.15'], process.env, 60)
    if (r.error) continue
    fmaIsa = r.isa
    fmaRuns[t].push(r.gflops)
  }
}
const peak = (t) => (fmaRuns[t]?.length ? Math.max(...fmaRuns[t]) : null)

// ---------------------------------------------------------------------------------------------
// Workloads × engines
// ---------------------------------------------------------------------------------------------
const common = { data: DATA, labels: LABELS, features: F, seed: 1 }
const TFJS_STEPS = { 32: quick ? 10 : 20, 128: quick ? 3 : 6, 512: quick ? 1 : 2 }
const TFJS_INFER_N = { 'tfjs-cpu': quick ? 256 : 1024, 'tfjs-wasm': quick ? 1024 : 4096 }

const WORKLOADS = [
  ...[32, 128, 512].map((b) => ({
    id: `train-b${b}`,
    title: `Training [784,512,49], Adam, batch ${b}`,
    flop: trainFlop(L_MAIN),
    engines: ['kana', ...(b === 512 ? ['kana-t1'] : []), 'torch-best', 'torch-user', 'torch-t1', 'tfjs-wasm', 'tfjs-cpu'],
    spec: (e) => {
      const s = { ...common, workload: 'train', layers: L_MAIN, batch: b, lr: 1e-3, offset: 0, n: TRAIN_N, threads: ENGINES[e].threads }
      // PyTorch warms up on 4096 rows like kana-native (but for 2 s at most)
      if (ENGINES[e].family === 'torch') Object.assign(s, { warmup: Math.ceil(4096 / b), warmup_seconds: 2, max_seconds: TORCH_CAP })
      if (ENGINES[e].family === 'tfjs') Object.assign(s, { steps: TFJS_STEPS[b] })
      return s
    },
  })),
  {
    id: 'gd',
    title: `Full-batch GD [784,100,80,49], ${GD_N.toLocaleString('en')} samples (time/step)`,
    flop: trainFlop(L_GD),
    engines: ['kana', 'torch-best', 'torch-user', 'torch-t1'],
    spec: (e) => ({ ...common, workload: 'gd', layers: L_GD, lr: 0.1, offset: 0, n: GD_N, steps: GD_STEPS, warmup: 1, threads: ENGINES[e].threads }),
  },
  {
    id: 'infer',
    title: `Inference predict_proba [784,512,49], ${K49_TEST.toLocaleString('en')} samples`,
    flop: fwdFlop(L_MAIN),
    engines: ['kana', 'torch-best', 'torch-user', 'torch-t1', 'tfjs-wasm', 'tfjs-cpu'],
    spec: (e) => ({
      ...common,
      workload: 'infer',
      layers: L_MAIN,
      offset: TEST_OFF,
      n: ENGINES[e].family === 'tfjs' ? TFJS_INFER_N[e] : K49_TEST,
      steps: INFER_PASSES,
      warmup: 1,
      threads: ENGINES[e].threads,
    }),
  },
  {
    id: 'k49',
    title: `K49-sized epoch [784,512,49], Adam, batch 512, ${K49_TRAIN.toLocaleString('en')} samples (+ peak RSS)`,
    flop: trainFlop(L_MAIN),
    engines: ['kana'],
    spec: (e) => ({ ...common, workload: 'k49', images: K49_IMAGES, imageLabels: K49_LABELS, layers: L_MAIN, batch: 512, lr: 1e-3, offset: 0, n: K49_TRAIN, threads: ENGINES[e].threads }),
  },
]

function command(e, spec) {
  const fam = ENGINES[e].family
  if (fam === 'kana') return [process.execPath, ['--expose-gc', path.join(root, 'bench/kana_child.cjs'), JSON.stringify(spec)], process.env]
  if (fam === 'torch') return [PY, [path.join(root, 'bench/torch_mlp.py'), JSON.stringify(spec)], torchEnv[e]]
  const backend = e === 'tfjs-cpu' ? 'cpu' : 'wasm'
  return [process.execPath, [path.join(root, 'bench/tfjs_child.cjs'), JSON.stringify({ ...spec, backend })], process.env]
}

// results[workload][engine] = [{ sps, seconds, …child fields }, …] (one per repetition)
const results = Object.fromEntries(WORKLOADS.map((w) => [w.id, {}]))
const failures = []

let repsDone = 0
let repStart = Date.now()
let tfjsMs = 0 // TF.js time in the previous repetition (only the first TFJS_REPS have TF.js)
for (let rep = 0; rep < REPS; rep++) {
  // the time budget: a repetition lasts about as long as the previous one did (TF.js aside, unless
  // the next one has TF.js too)
  const lastRep = rep > 0 ? Date.now() - repStart - (rep < TFJS_REPS ? 0 : tfjsMs) : 0
  tfjsMs = 0
  if (rep > 0 && Date.now() + lastRep - t0 > MAX_MINUTES * 60e3) {
    notes.push(`Stopped after ${rep} of ${REPS} repetitions: another would end after the ${MAX_MINUTES}-minute budget (--max-minutes).`)
    log(`  time budget: stopping after ${rep} repetition(s)`)
    break
  }
  repStart = Date.now()
  repsDone = rep + 1
  log(`— repetition ${rep + 1}/${REPS} —`)
  for (const w of WORKLOADS) {
    measurePeak()
    const list = w.engines.filter((e) => wanted.has(e) && (ENGINES[e].family !== 'tfjs' || rep < TFJS_REPS))
    // alternate: rotate the engine order every repetition
    const order = list.map((_, i) => list[(i + rep) % list.length])
    for (const e of order) {
      const spec = w.spec(e)
      const [cmd, args, env] = command(e, spec)
      const m0 = Date.now()
      const r = runChild(cmd, args, env, 300)
      if (ENGINES[e].family === 'tfjs') tfjsMs += Date.now() - m0
      if (r.error) {
        failures.push(`${w.id} / ${e}: ${r.error}`)
        log(`  ${w.id.padEnd(10)} ${e.padEnd(11)} FAILED ${r.error.slice(0, 300)}`)
        continue
      }
      r.sps = r.samples / r.seconds
      if (ENGINES[e].family === 'torch' && r.blas) torchInfo[e] ??= r
      ;(results[w.id][e] ??= []).push(r)
      const extra = w.id === 'gd' ? ` ${r.seconds.toFixed(3)} s/step` : w.id === 'k49' ? ` ${r.seconds.toFixed(2)} s/epoch` : ''
      log(
        `  ${w.id.padEnd(10)} ${e.padEnd(11)} ${fmtN(r.sps).padStart(7)} samples/s${extra}` +
          `  (${((r.sps * w.flop) / 1e9).toFixed(1)} GFLOP/s; wall ${r.wall.toFixed(1)} s; cpu pressure ${r.pressure == null ? '?' : (100 * r.pressure).toFixed(0) + '%'}${r.capped ? '; time-capped' : ''})`,
      )
    }
  }
}
measurePeak() // once more at the end: the peak is the best of all of them
log(`FMA peak: 1 thread ${fmtN(peak(1))} GFLOP/s, ${THREADS} threads ${fmtN(peak(THREADS))} GFLOP/s (${fmaIsa ?? '?'})`)

// ---------------------------------------------------------------------------------------------
// Aggregate
// ---------------------------------------------------------------------------------------------
const rows = []
const stat = {} // stat[w][e] = { med, min, max, … }
for (const w of WORKLOADS) {
  stat[w.id] = {}
  for (const e of Object.keys(ENGINES)) {
    const rs = results[w.id][e]
    if (!rs?.length) continue
    const sps = rs.map((r) => r.sps)
    stat[w.id][e] = {
      med: median(sps),
      min: Math.min(...sps),
      max: Math.max(...sps),
      n: rs.length,
      secMed: median(rs.map((r) => r.seconds)),
      pressure: rs.every((r) => r.pressure != null) ? median(rs.map((r) => r.pressure)) : null,
      capped: rs.some((r) => r.capped),
      samples: rs[0].samples,
      steps: rs[0].steps,
    }
  }
}
const ratio = (w, e, ref) => (stat[w]?.[e] && stat[w]?.[ref] ? stat[w][e].med / stat[w][ref].med : null)

for (const w of WORKLOADS) {
  for (const e of Object.keys(ENGINES)) {
    const s = stat[w.id][e]
    if (!s) continue
    const gflops = (s.med * w.flop) / 1e9
    const pk = peak(ENGINES[e].threads)
    const bits = []
    if (w.id === 'gd') bits.push(`${s.secMed.toFixed(3)} s/step`)
    if (w.id === 'k49') bits.push(`${s.secMed.toFixed(2)} s/epoch`)
    if (ENGINES[e].family === 'tfjs') bits.push(w.id === 'infer' ? `${s.samples} rows only` : `${s.steps} step${s.steps > 1 ? "s" : ""} only`)
    if (s.capped) bits.push(`time-capped at ${TORCH_CAP} s`)
    if (ENGINES[e].threads === 1) bits.push('% of 1-core peak')
    rows.push({
      workload: w.id,
      title: w.title,
      engine: e,
      label: ENGINES[e].label,
      samplesPerSec: { median: s.med, min: s.min, max: s.max, reps: s.n },
      gflops,
      pctPeak: pk ? (100 * gflops) / pk : null,
      vsTorchBest: ratio(w.id, e, 'torch-best'),
      vsTorchUser: ratio(w.id, e, 'torch-user'),
      cpuPressure: s.pressure,
      note: bits.join('; '),
    })
  }
}

// ---------------------------------------------------------------------------------------------
// Targets from the project's issue I (performance round 2; same run, same data, same threads)
// ---------------------------------------------------------------------------------------------
const modelParams = L_MAIN.slice(1).reduce((s, o, i) => s + (L_MAIN[i] + 1) * o, 0)
const k49 = results.k49?.kana ?? []
const rss = (k) => (k49.length ? median(k49.map((r) => r.rss?.[k]).filter((v) => v != null)) : null)
const footprint = {
  images: K49_TRAIN * F,
  labels: K49_TRAIN * 4,
  model: modelParams * 4,
  optimizer: 2 * modelParams * 4, // Adam m and v
}
footprint.total = footprint.images + footprint.labels + footprint.model + footprint.optimizer
const rssLimit = 1.3 * footprint.total + 64 * MB
const twoPeak = peak(THREADS)
const minEpochSeconds = twoPeak ? (K49_TRAIN * trainFlop(L_MAIN)) / (twoPeak * 1e9) : null

/** the fastest PyTorch row of a workload, when it is not torch-best: a note for the targets */
function fastestTorchNote(w) {
  const best = TORCH.filter((e) => stat[w]?.[e]).sort((a, b) => stat[w][b].med - stat[w][a].med)[0]
  if (!best || best === 'torch-best' || !stat[w]?.kana) return ''
  return `fastest PyTorch row here is ${best} (${fmtN(stat[w][best].med)}/s): kana / it = ${fmtX(stat[w].kana.med / stat[w][best].med)}`
}
const targets = []
function target(name, required, value, fmt, ok, note = '') {
  targets.push({ name, required, value, shown: value == null ? 'n/a' : fmt(value), status: value == null ? 'not measured' : ok(value) ? 'met' : 'missed', note })
}
// issue I (round 2): ratios against the fastest PyTorch row of the workload where the issue says so
const fastestTorch = (w) => TORCH.filter((e) => stat[w]?.[e]).sort((a, b) => stat[w][b].med - stat[w][a].med)[0]
const vsFastestTorch = (w) => (fastestTorch(w) && stat[w]?.kana ? stat[w].kana.med / stat[w][fastestTorch(w)].med : null)
const fastestName = (w) => (fastestTorch(w) ? `fastest PyTorch row: ${fastestTorch(w)} (${fmtN(stat[w][fastestTorch(w)].med)}/s)` : '')
const pctTwoPeak = (w, layers) => (stat[w]?.kana && twoPeak ? (100 * stat[w].kana.med * trainFlop(layers)) / 1e9 / twoPeak : null)
const pctOf = (v) => `${v.toFixed(0)}%`
target('Training batch 32: kana / PyTorch-best', '≥ 4×', ratio('train-b32', 'kana', 'torch-best'), fmtX, (v) => v >= 4, fastestTorchNote('train-b32'))
target('Training batch 512: % of two-core FMA peak', '≥ 75%', pctTwoPeak('train-b512', L_MAIN), pctOf, (v) => v >= 75)
target(
  'Full-batch GD: kana / the fastest PyTorch row (s/step)',
  '≥ 2×',
  vsFastestTorch('gd'),
  fmtX,
  (v) => v >= 2,
  [stat.gd?.kana ? `kana ${stat.gd.kana.secMed.toFixed(3)} s/step` : '', fastestName('gd'), stat.gd?.['torch-best'] ? `vs PyTorch-best ${fmtX(ratio('gd', 'kana', 'torch-best'))}` : ''].filter(Boolean).join('; '),
)
target(
  'Inference: % of two-core FMA peak',
  '≥ 75%',
  stat.infer?.kana && twoPeak ? (100 * stat.infer.kana.med * fwdFlop(L_MAIN)) / 1e9 / twoPeak : null,
  pctOf,
  (v) => v >= 75,
)
target('Inference: kana / the fastest PyTorch row', '≥ 1.5×', vsFastestTorch('infer'), fmtX, (v) => v >= 1.5, [fastestName('infer'), stat.infer?.['torch-best'] ? `vs PyTorch-best ${fmtX(ratio('infer', 'kana', 'torch-best'))}` : ''].filter(Boolean).join('; '))
target(
  'K49 epoch (232,365 samples) at batch 512: time ÷ its physical minimum',
  '≤ 1.33× (75% of peak)',
  stat.k49?.kana?.secMed != null && minEpochSeconds ? stat.k49.kana.secMed / minEpochSeconds : null,
  fmtX,
  (v) => v <= 1.33,
  stat.k49?.kana?.secMed != null && minEpochSeconds ? `${stat.k49.kana.secMed.toFixed(2)} s; ${minEpochSeconds.toFixed(2)} s at 100% of this run's ${THREADS}-core peak` : '',
)
target(
  'Thread scaling 1→2 at batch 512',
  '≥ 1.7×',
  ratio('train-b512', 'kana', 'kana-t1'),
  fmtX,
  (v) => v >= 1.7,
  peak(1) && twoPeak ? `FMA peak itself scales ${(twoPeak / peak(1)).toFixed(2)}×` : '',
)
target(
  'Peak RSS, K49 training (epoch phase)',
  `≤ ${(rssLimit / MB).toFixed(0)} MB`,
  rss('trainingPeak'),
  (v) => `${(v / MB).toFixed(0)} MB`,
  (v) => v <= rssLimit,
  `1.3 × (u8 images ${(footprint.images / MB).toFixed(1)} + i32 labels ${(footprint.labels / MB).toFixed(1)} + model ${(footprint.model / MB).toFixed(1)} + Adam ${(footprint.optimizer / MB).toFixed(1)} MB) + 64 MB`,
)
target(
  'Peak RSS, whole process (incl. loading the .npy with loadDataset)',
  `≤ ${(rssLimit / MB).toFixed(0)} MB`,
  rss('wholeProcessPeak'),
  (v) => `${(v / MB).toFixed(0)} MB`,
  (v) => v <= rssLimit,
  rss('baseline') != null ? `node + addon before any data: ${(rss('baseline') / MB).toFixed(0)} MB; after load: ${(rss('afterLoad') / MB).toFixed(0)} MB` : '',
)

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------
const wallS = (Date.now() - t0) / 1000
const cmdLine = `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`
const tb = torchInfo['torch-best'] ?? torchInfo['torch-user'] ?? torchInfo['torch-t1']
const blasLine = (e) => {
  const b = torchInfo[e]?.blas
  if (!b) return null
  return b.openblas_core
    ? `${b.openblas_config} → kernels **${b.openblas_core}**, ${b.openblas_threads} BLAS thread(s)`
    : `${b.kind ?? ''} ${b.libs?.join(', ') ?? ''}`.trim()
}
const md = []
md.push(`# kana-native benchmark`, '')
{
  const pres = rows.map((r) => r.cpuPressure).filter((v) => v != null)
  if (pres.length && median(pres) > 0.2) {
    md.push(
      `> **The machine was busy with other work during this run** (median CPU pressure ${pct(median(pres))}: some task was waiting for a CPU that share of the time). ` +
        'Absolute numbers are depressed and noisy, 2-thread figures suffer most, and engines suffer unevenly, so ratios are distorted too. Rerun on a quiet machine before quoting.',
      '',
    )
  }
}
md.push(`- **Command:** \`${cmdLine}\` (${repsDone} repetition${repsDone > 1 ? 's' : ''}; wall time ${Math.floor(wallS / 60)} min ${(wallS % 60).toFixed(0)} s)`)
md.push(`- **Date:** ${new Date().toISOString()}`)
md.push(
  `- **Machine:** ${cpuModel}, ${cores} cores available (${os.cpus().length} online), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; ` +
    `**ISA found: ${isaFound}** (/proc/cpuinfo; kana-native cpuFeatures: ${Object.entries(kanaCpu).map(([k, v]) => `${k}=${v}`).join(' ')}); ${os.type()} ${os.release()}`,
)
md.push(
  `- **FMA peak** (bench/fma.c, ${fmaIsa ?? '?'}, 14 independent FMA chains, gcc -O3 -march=native; best of ${fmaRuns[1].length} runs): ` +
    `**1 core ${fmtN(peak(1))} GFLOP/s, ${THREADS} cores ${fmtN(twoPeak)} GFLOP/s** (medians ${fmtN(fmaRuns[1].length ? median(fmaRuns[1]) : null)} / ${fmtN(fmaRuns[THREADS].length ? median(fmaRuns[THREADS]) : null)})`,
)
md.push(
  `- **Software:** node ${process.version}; kana-native ${pkg.version}${gitRev ? ` (git ${gitRev})` : ''}` +
    (tb ? `; PyTorch ${tb.torch} (numpy ${tb.numpy}, CPU capability ${tb.cpu_capability})` : '; PyTorch not measured') +
    (tfjsVersion && (wanted.has('tfjs-cpu') || wanted.has('tfjs-wasm')) ? `; TF.js ${tfjsVersion}` : ''),
)
for (const e of TORCH) if (blasLine(e)) md.push(`- **BLAS under ${e}:** ${blasLine(e)}`)
md.push(
  `- **Settings:** training epochs over ${TRAIN_N.toLocaleString('en')} synthetic rows; GD ${GD_STEPS} timed step(s) (+1 warm-up) per measurement; ` +
    `inference ${INFER_PASSES} passes (median); TF.js ${TFJS_REPS} repetition(s), ${TFJS_STEPS[32]}/${TFJS_STEPS[128]}/${TFJS_STEPS[512]} steps at batch 32/128/512; ` +
    `PyTorch training capped at ${TORCH_CAP} s per epoch` +
    (opt.nice != null ? `; **scheduling priority nice ${opt.nice}**` : ''),
)
md.push('')
md.push('## Results', '')
md.push('samples/s: median over repetitions (min–max). GFLOP/s use the real GEMM FLOP count (training 1.756 MFLOP/sample for [784,512,49], 0.385 for [784,100,80,49]; inference 0.853). % of peak: of the FMA peak for the threads the engine uses. Ratios: samples/s over PyTorch-best / PyTorch-as-installed in this run. CPU pressure: median share of the run during which some task waited for a CPU (Linux PSI; other work on this shared machine shows here).', '')
md.push('| Workload | Engine / configuration | samples/s | GFLOP/s | % of peak | vs PyTorch-best | vs PyTorch as installed | CPU pressure | Notes |')
md.push('|---|---|---|---|---|---|---|---|---|')
let lastW = null
for (const r of rows) {
  const s = r.samplesPerSec
  const range = s.reps > 1 ? ` (${fmtN(s.min)}–${fmtN(s.max)})` : ''
  const name = r.engine.startsWith('kana') ? `**${r.label}**` : r.label
  md.push(
    `| ${r.workload === lastW ? '' : r.title} | ${name} | ${fmtN(s.median)}${range} | ${r.gflops.toFixed(1)} | ${r.pctPeak == null ? '–' : r.pctPeak.toFixed(0) + '%'} | ${fmtX(r.vsTorchBest)} | ${fmtX(r.vsTorchUser)} | ${pct(r.cpuPressure)} | ${r.note} |`,
  )
  lastW = r.workload
}
md.push('')
md.push('## Targets (project issue)', '')
md.push('| Target | Required | Measured | Status | Notes |', '|---|---|---|---|---|')
for (const t of targets) md.push(`| ${t.name} | ${t.required} | ${t.shown} | ${t.status === 'met' ? '**met**' : t.status} | ${t.note} |`)
md.push('')
md.push('## Notes', '')
notes.push(
  'Every measurement runs in a fresh child process after an untimed warm-up; engines alternate within each repetition (order rotated). PyTorch and TF.js convert the pixels to float32 ÷255 once before timing, kana-native converts u8 per batch inside the timed work.',
  'PyTorch "best" follows BENCHMARKS.md: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from that child\'s environment, torch.set_num_threads(2), OPENBLAS_NUM_THREADS=1. "As installed": the environment unchanged, torch.set_num_threads(2) (1.13 would use 1), OPENBLAS_NUM_THREADS=2. "1 thread": as best, with torch.set_num_threads(1) — shown because PyTorch\'s OpenMP threads spin at barriers and collapse when the machine is busy; the targets still compare against "best" (same threads as kana-native), and the target notes name the fastest PyTorch row when it is another one.',
  `TF.js is measured on a few steps only (${TFJS_STEPS[32]}/${TFJS_STEPS[128]}/${TFJS_STEPS[512]} at batch 32/128/512, 2 warm-up steps) and inference on a subset (${TFJS_INFER_N['tfjs-cpu']} rows cpu, ${TFJS_INFER_N['tfjs-wasm']} wasm); full-batch GD is not run on TF.js (a single step would take minutes). In Node the WASM backend has no multi-threading.`,
  'The FMA peak is the best of all FMA runs in this run (a ceiling); on a shared machine individual runs fall below it.',
  `Peak RSS: measured in the K49 child (VmHWM from /proc/self/status; /proc/self/clear_refs resets it after the Dataset is built, so "epoch phase" is the training alone; "whole process" also covers loading: \`loadDataset\` reads the .npy images into native memory in 4 MiB chunks, never whole in JavaScript). MB = 10⁶ bytes.`,
)
{
  const pres = rows.map((r) => r.cpuPressure).filter((v) => v != null)
  if (pres.length)
    notes.push(
      `CPU pressure during measurements: median ${pct(median(pres))}, max ${pct(Math.max(...pres))}` +
        (median(pres) > 0.2
          ? ' — the machine was busy with other work. Absolute numbers are depressed and noisy, and ratios are not safe either: engines degrade unevenly under contention (PyTorch on 2 OpenMP threads far more than on 1, or than kana-native).'
          : '.'),
    )
}
if (failures.length) notes.push(`Failed measurements: ${failures.join('; ')}`)
for (const n of notes) md.push(`- ${n}`)
md.push('')
const mdText = md.join('\n')

fs.mkdirSync(opt.out, { recursive: true })
const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19)
const json = {
  command: cmdLine,
  date: new Date().toISOString(),
  wallSeconds: wallS,
  machine: { cpuModel, cores, isaFound, flags: ['avx512f', 'avx2', 'fma'].filter((f) => flags.has(f)), kanaCpuFeatures: kanaCpu, memBytes: os.totalmem() },
  software: { node: process.version, kana: pkg.version, git: gitRev, torch: torchInfo, tfjs: tfjsVersion },
  settings: { reps: REPS, repsDone, trainSamples: TRAIN_N, tfjsReps: TFJS_REPS, tfjsSteps: TFJS_STEPS, tfjsInferRows: TFJS_INFER_N, gdSteps: GD_STEPS, inferPasses: INFER_PASSES, torchCapSeconds: TORCH_CAP, quick, only: [...wanted] },
  flopPerSample: { train_784_512_49: trainFlop(L_MAIN), train_784_100_80_49: trainFlop(L_GD), infer_784_512_49: fwdFlop(L_MAIN) },
  peak: { isa: fmaIsa, gflops1: peak(1), gflops2: twoPeak, runs: fmaRuns },
  rows,
  targets,
  rssFootprint: { ...footprint, limit: rssLimit },
  raw: results,
  notes,
}
for (const name of [`bench-${stamp}`, 'latest']) {
  fs.writeFileSync(path.join(opt.out, `${name}.md`), mdText)
  fs.writeFileSync(path.join(opt.out, `${name}.json`), JSON.stringify(json, null, 2))
}
console.log(mdText)
log(`written: ${path.relative(root, path.join(opt.out, `bench-${stamp}.md`))} and .json (also latest.md/.json)`)

if (opt['keep-data']) log(`data kept in ${dataDir}`)
else fs.rmSync(dataDir, { recursive: true, force: true })

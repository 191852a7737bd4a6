// The command line as a user meets it: in a course folder, on real KMNIST files.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { npy } from './helpers/npy'

const root = join(__dirname, '..')
const bin = join(root, 'bin', 'kana-native.js')
const shared = join(root, '..', 'shared', 'data')
const kmnist = join(shared, 'kmnist')
const hasData = existsSync(join(kmnist, 'X_images.npy'))
const real = hasData ? test.serial : test.skip

function cli(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** A course folder: X_images.npy and y_images.npy (real KMNIST) and a class map. */
function courseFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kana-cli-'))
  symlinkSync(join(kmnist, 'X_images.npy'), join(dir, 'X_images.npy'))
  symlinkSync(join(kmnist, 'y_images.npy'), join(dir, 'y_images.npy'))
  symlinkSync(join(kmnist, 'kmnist_classmap.csv'), join(dir, 'kmnist_classmap.csv'))
  return dir
}


real('train in a course folder with defaults-like settings leaves a complete run directory', (t) => {
  const dir = courseFolder()
  const r = cli(['train', '--epochs', '4', '--hidden', '64', '--seed', '1', '--out', 'run'], dir)
  t.is(r.code, 0, r.stderr)
  t.regex(r.stderr, /data: 4800 train \/ 1600 validation \/ 1600 test samples, 10 classes/)
  t.regex(r.stderr, /epoch 4\/4 /)
  for (const f of ['config.json', 'history.csv', 'history.json', 'metrics.json', 'model.safetensors', 'curves.png', 'curves.svg', 'confusion.png', 'class-distribution.png', 'samples.png']) {
    t.true(existsSync(join(dir, 'run', f)), `${f} written`)
  }
  const metrics = JSON.parse(readFileSync(join(dir, 'run', 'metrics.json'), 'utf8'))
  for (const split of ['train', 'validation', 'test']) {
    for (const k of ['accuracy', 'loss', 'balancedAccuracy', 'macroF1']) t.is(typeof metrics[split][k], 'number', `${split}.${k}`)
  }
  t.true(metrics.test.accuracy > 0.7, `test accuracy ${metrics.test.accuracy}`)
  const config = JSON.parse(readFileSync(join(dir, 'run', 'config.json'), 'utf8'))
  t.is(config.seed, 1)
  t.deepEqual(config.layers, [784, 64, 10])
  t.is(config.classNames[0], 'お') // kmnist_classmap.csv found next to the images
  const history = readFileSync(join(dir, 'run', 'history.csv'), 'utf8').trim().split('\n')
  t.is(history[0], 'epoch,lr,trainLoss,trainAccuracy,valLoss,valAccuracy,seconds')
  t.is(history.length, 5)
  t.true(readFileSync(join(dir, 'run', 'confusion.svg'), 'utf8').includes('お'), 'class names in the confusion matrix')

  // predict on the real course competition file (1000×784 float32) with the 10-class KMNIST model
  const p = cli(['predict', '--model', 'run/model.safetensors', '--images', join(shared, 'course2025', 'X_COMP.npy'), '--out', 'Apellido_Nombre_predicciones.csv', '--argmax'], dir)
  t.is(p.code, 0, p.stderr)
  const rows = readFileSync(join(dir, 'Apellido_Nombre_predicciones.csv'), 'utf8').trim().split('\n')
  t.is(rows.length, 1001)
  t.is(rows[0], [...Array.from({ length: 10 }, (_, k) => `Clase_${k}`), 'argmax'].join(','))
  for (const row of rows.slice(1)) {
    const v = row.split(',').map(Number)
    const probs = v.slice(0, 10)
    t.true(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) <= 1e-6)
    t.is(v[10], probs.indexOf(Math.max(...probs)))
  }

  // evaluate and inspect
  const e = cli(['evaluate', '--model', 'run/model.safetensors', '--images', 'X_images.npy', '--labels', 'y_images.npy', '--out', 'eval', '--json'], dir)
  t.is(e.code, 0, e.stderr)
  const ev = JSON.parse(e.stdout.trim())
  t.is(ev.samples, 8000)
  t.true(existsSync(join(dir, 'eval', 'confusion.png')))
  const i = cli(['inspect', '--out', 'inspect'], dir)
  t.is(i.code, 0, i.stderr)
  t.regex(i.stderr, /8000 samples, 784 features \(28×28\), 10 classes; 800–800 per class/)
  t.true(existsSync(join(dir, 'inspect', 'samples.png')))
})

real('a 49-class model predicts the real X_COMP.npy with 49 Clase_ columns', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kana-cli49-'))
  // synthetic 49-class data of the course's shape: class k has a bright band at row k % 28
  const n = 49 * 20
  const images = new Float32Array(n * 784)
  const labels = new BigInt64Array(n)
  for (let i = 0; i < n; i++) {
    const k = i % 49
    labels[i] = BigInt(k)
    for (let j = 0; j < 28; j++) images[i * 784 + (k % 28) * 28 + j] = 200 + (k >= 28 ? j : 0)
  }
  writeFileSync(join(dir, 'X_images.npy'), npy('<f4', [n, 784], images))
  writeFileSync(join(dir, 'y_images.npy'), npy('<i8', [n], labels))
  symlinkSync(join(shared, 'k49', 'k49_classmap.csv'), join(dir, 'k49_classmap.csv'))
  const r = cli(['train', '--epochs', '2', '--hidden', '32', '--seed', '2', '--out', 'run', '--quiet'], dir)
  t.is(r.code, 0, r.stderr)
  const p = cli(['predict', '-m', 'run/model.safetensors', '--images', join(shared, 'course2025', 'X_COMP.npy'), '-o', 'preds.csv'], dir)
  t.is(p.code, 0, p.stderr)
  const rows = readFileSync(join(dir, 'preds.csv'), 'utf8').trim().split('\n')
  t.is(rows.length, 1001)
  t.is(rows[0].split(',').length, 49)
  t.is(rows[0].split(',')[48], 'Clase_48')
  const names = cli(['predict', '-m', 'run/model.safetensors', '--images', join(shared, 'course2025', 'X_COMP.npy'), '-o', 'named.csv', '--columns', 'names'], dir)
  t.is(names.code, 0, names.stderr)
  t.true(readFileSync(join(dir, 'named.csv'), 'utf8').startsWith('あ,い,う'))
})

test('usage errors exit 2, data errors exit 1 with a message naming the problem', (t) => {
  const empty = mkdtempSync(join(tmpdir(), 'kana-cli-empty-'))
  const noData = cli(['train'], empty)
  t.is(noData.code, 1)
  t.regex(noData.stderr, /no data given and no X_images\.npy in .*--images X\.npy --labels y\.npy.*--dataset/s)
  const usage = cli(['train', '--optimizer', 'rmsprop'], empty)
  t.is(usage.code, 2)
  t.regex(usage.stderr, /Invalid values|Choices/)
  t.is(cli(['frobnicate'], empty).code, 2)
  t.is(cli([], empty).code, 2)
  const missing = cli(['predict', '--model', 'nope.safetensors', '--images', 'x.npy', '--out', 'p.csv'], empty)
  t.is(missing.code, 1)
  t.regex(missing.stderr, /nope\.safetensors/)
  writeFileSync(join(empty, 'X_images.npy'), 'this is not numpy')
  writeFileSync(join(empty, 'y_images.npy'), 'neither is this')
  const bad = cli(['train'], empty)
  t.is(bad.code, 1)
  t.regex(bad.stderr, /X_images\.npy/)
  const help = cli(['train', '--help'], empty)
  t.is(help.code, 0)
  t.regex(help.stdout, /--hidden.*--optimizer.*--schedule/s)
})

test('data errors name the file once (wrong shape, wrong dtype, corrupt file, images and labels that do not match)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kana-cli-once-'))
  // a tiny model of 28×28 inputs to predict and evaluate with
  const n = 40
  const images = new Uint8Array(n * 784).map((_, i) => (Math.floor(i / 784) % 2 ? 200 : 10))
  const labels = Int32Array.from({ length: n }, (_, i) => i % 2)
  writeFileSync(join(dir, 'X.npy'), npy('|u1', [n, 784], images))
  writeFileSync(join(dir, 'y.npy'), npy('<i4', [n], labels))
  const r = cli(['train', '--images', 'X.npy', '--labels', 'y.npy', '--hidden', '4', '--epochs', '1', '--seed', '1', '--threads', '1', '--out', 'run', '--quiet'], dir)
  t.is(r.code, 0, r.stderr)
  writeFileSync(join(dir, 'X32.npy'), npy('|u1', [2, 32, 32], new Uint8Array(2 * 1024)))
  writeFileSync(join(dir, 'X5.npy'), npy('|u1', [2, 5], new Uint8Array(10)))
  writeFileSync(join(dir, 'Xc.npy'), npy('<c8', [2], new Uint8Array(16)))
  writeFileSync(join(dir, 'Xt.npy'), npy('|u1', [n, 784], images).subarray(0, 500))
  writeFileSync(join(dir, 'y3.npy'), npy('<i4', [3], new Int32Array(3)))
  const cases: [string[], string[], RegExp][] = [
    [['predict', '-m', 'run/model.safetensors', '--images', 'X32.npy', '-o', 'p.csv'], ['X32.npy'], /images have 1024 pixels but the model takes 784/],
    [['evaluate', '-m', 'run/model.safetensors', '--images', 'X32.npy', '--labels', 'y.npy'], ['X32.npy', 'y.npy'], /X32\.npy: holds 2 images but .*y\.npy holds 40 labels/],
    [['evaluate', '-m', 'run/model.safetensors', '--images', 'X.npy', '--labels', 'y3.npy'], ['X.npy', 'y3.npy'], /holds 40 images but .*y3\.npy holds 3 labels/],
    [['train', '--images', 'X.npy', '--labels', 'y3.npy', '--out', 'r2'], ['X.npy', 'y3.npy'], /holds 40 images but .*y3\.npy holds 3 labels/],
    [['train', '--images', 'X5.npy', '--labels', 'y.npy', '--out', 'r2'], ['X5.npy'], /not a square image/],
    [['train', '--images', 'Xc.npy', '--labels', 'y.npy', '--out', 'r2'], ['Xc.npy'], /unsupported dtype '<c8'/],
    [['train', '--images', 'Xt.npy', '--labels', 'y.npy', '--out', 'r2'], ['Xt.npy'], /truncated/],
    [['inspect', '--images', 'X.npy', '--labels', 'y3.npy'], ['X.npy', 'y3.npy'], /holds 40 images/],
  ]
  for (const [args, files, re] of cases) {
    const e = cli(args, dir)
    t.is(e.code, 1, e.stderr)
    t.regex(e.stderr, re)
    for (const f of files) t.is(e.stderr.split(`/${f}`).length - 1, 1, `${f} named once in: ${e.stderr}`)
  }
})

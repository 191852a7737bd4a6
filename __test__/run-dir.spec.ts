// Run-directory safety (issue E): a run directory is never silently overwritten or mixed. One
// process at a time holds a directory (a lock file naming it); a finished run is replaced only
// when asked (overwrite), and then only the files kana-native wrote go; every setting and the
// split's sizes are checked before any training, and an empty test part is allowed.
import { cliIn } from './helpers/cli'
import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { claimRunDir, LOCK_FILE, RunDirError } from '../src/training/run-dir'
import { train, type TrainOptions } from '../src/training/train'
import { runExperiment } from '../src/experiment/experiment'
import { DataError } from '../src/data/readers'
import { learnable } from './helpers/learnable'
import { miniConfig, miniData } from './experiment-fixtures'

const tmp = mkdtempSync(join(tmpdir(), 'kana-run-dir-'))
test.after.always(() => rmSync(tmp, { recursive: true, force: true }))
let dirs = 0
const newDir = () => join(tmp, `d${++dirs}`)

const data = learnable(600, 64, 4, 1)
const base: TrainOptions = { data, hidden: [16], epochs: 3, seed: 1, threads: 1 }
const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'))
/** A lock as another process would have left it. */
const lockOf = (pid: number, host = hostname()) => JSON.stringify({ pid, hostname: host, startedAt: '2026-01-01T00:00:00.000Z', command: ['kana-native', 'train'], kind: 'run', token: 'elsewhere' })
/** A pid that is not running on this machine. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
  return Number(r.stdout)
}

test('claimRunDir: one holder at a time, named to the second; released, the directory is free again', async (t) => {
  const dir = newDir()
  const a = await claimRunDir(dir, { kind: 'run', command: ['kana-native', 'train', '--out', dir] })
  t.true(existsSync(join(dir, LOCK_FILE)))
  const lock = json(join(dir, LOCK_FILE))
  t.is(lock.pid, process.pid)
  t.is(lock.hostname, hostname())
  t.regex(lock.startedAt, /^\d{4}-\d\d-\d\dT/)
  const e = await t.throwsAsync(claimRunDir(dir, { kind: 'run' }), { instanceOf: RunDirError })
  t.is((e as RunDirError).code, 'ELOCKED')
  t.true(e!.message.includes(`is in use by another kana-native process: pid ${process.pid} on host ${hostname()}, since ${lock.startedAt} (kana-native train --out ${dir})`), e!.message)
  a.release()
  a.release() // idempotent
  t.false(existsSync(join(dir, LOCK_FILE)))
  const b = await claimRunDir(dir, { kind: 'run' })
  b.release()
  // a directory the claim created and nothing was written to is not left behind
  t.false(existsSync(dir))
})

test('claimRunDir: a stale lock (its process gone) is taken over with a warning; another host\'s lock is respected', async (t) => {
  const dir = newDir()
  mkdirSync(dir)
  const pid = deadPid()
  writeFileSync(join(dir, LOCK_FILE), lockOf(pid))
  const warnings: string[] = []
  const c = await claimRunDir(dir, { kind: 'run', onWarning: (m) => warnings.push(m) })
  t.is(json(join(dir, LOCK_FILE)).pid, process.pid)
  t.is(warnings.length, 1)
  t.regex(warnings[0], new RegExp(`taking over the stale lock of pid ${pid} on host .*: that process no longer runs`))
  c.release()
  t.deepEqual(readdirSync(dir), [], 'no stale lock left aside')

  writeFileSync(join(dir, LOCK_FILE), lockOf(pid, 'some-other-host'))
  const e = await t.throwsAsync(claimRunDir(dir, { kind: 'run', onWarning: (m) => warnings.push(m) }), { instanceOf: RunDirError })
  t.is((e as RunDirError).code, 'ELOCKED')
  t.regex(e!.message, new RegExp(`pid ${pid} on host some-other-host, since 2026-01-01T00:00:00.000Z.*cannot be checked from here.*delete ${join(dir, LOCK_FILE).replace(/[.]/g, '\\.')}`))
  t.is(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).hostname, 'some-other-host', 'left in place')
})

test('claimRunDir: a process killed by SIGINT/SIGTERM that nobody handles still removes its lock, then dies by the signal', async (t) => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const dir = newDir()
    const script = `require('${join(__dirname, '..', 'src', 'training', 'run-dir.ts').replace(/\\/g, '/')}').claimRunDir(${JSON.stringify(dir)}, { kind: 'run' }).then(() => { console.log('claimed'); setInterval(() => {}, 1000) })`
    const child = spawn(process.execPath, ['--import=tsx', '-e', script], { cwd: join(__dirname, '..') })
    await new Promise<void>((res, rej) => {
      child.stdout.on('data', (d) => String(d).includes('claimed') && res())
      child.on('close', () => rej(new Error('the child ended before claiming')))
    })
    t.true(existsSync(join(dir, LOCK_FILE)))
    child.kill(signal)
    const how = await new Promise<NodeJS.Signals | null>((res) => child.on('close', (_code, sig) => res(sig)))
    t.is(how, signal, 'the default action of the signal, as without the lock')
    t.false(existsSync(join(dir, LOCK_FILE)), `${signal}: lock removed`)
  }
})

test('train into a finished run directory is refused; overwrite replaces only the files kana-native writes', async (t) => {
  const dir = newDir()
  mkdirSync(dir)
  writeFileSync(join(dir, 'notes.txt'), 'mine') // unrelated files are fine
  const first = await train({ ...base, out: dir })
  const before = readFileSync(join(dir, 'model.safetensors'))
  const e = await t.throwsAsync(train({ ...base, seed: 2, out: dir }), { instanceOf: RunDirError })
  t.is((e as RunDirError).code, 'EFINISHED')
  t.regex(e!.message, /holds a finished run \(metrics\.json, model\.safetensors\); choose another directory, or pass `--overwrite`/)
  t.deepEqual(readFileSync(join(dir, 'model.safetensors')), before, 'the finished run is untouched')
  t.is(json(join(dir, 'config.json')).seed, 1)

  // overwrite: the earlier run's files go (also one the new run does not write), others stay
  writeFileSync(join(dir, 'report.html'), '<html>the old run</html>')
  const second = await train({ ...base, seed: 2, epochs: 2, split: { train: 0.8, validation: 0.2, test: 0 }, out: dir, overwrite: true })
  t.is(second.metrics.test, null)
  t.is(json(join(dir, 'config.json')).seed, 2)
  t.is(json(join(dir, 'metrics.json')).epochs, 2)
  t.false(existsSync(join(dir, 'report.html')))
  t.false(existsSync(join(dir, 'confusion.png')), 'the first run\'s test confusion matrix is gone with it')
  t.is(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'mine')
  t.false(existsSync(join(dir, LOCK_FILE)))
  t.truthy(first)

  // the files of a run that neither finished nor left a checkpoint are not mixed with a new run's
  const leftover = newDir()
  mkdirSync(leftover)
  writeFileSync(join(leftover, 'config.json'), '{}')
  const l = await t.throwsAsync(train({ ...base, out: leftover }), { instanceOf: RunDirError })
  t.regex(l!.message, /holds the files of an earlier run that did not finish and left no checkpoint \(config\.json\)/)
  // overwrite with resume makes no sense
  await t.throwsAsync(train({ resume: dir, overwrite: true }), { message: /overwrite and resume exclude each other/ })
})

test('two train() calls into one directory at once: the second fails at once, the first finishes', async (t) => {
  const dir = newDir()
  let second: Promise<unknown> | undefined
  const first = train({ ...base, epochs: 3, out: dir, onEpoch: (r) => { if (r.epoch === 1) second = train({ ...base, out: dir }).catch((e) => e) } })
  const r = await first
  t.is(r.history.length, 3)
  const e = (await second) as RunDirError
  t.is(e.code, 'ELOCKED')
  t.regex(e.message, new RegExp(`pid ${process.pid} on host .* \\(this process\\)`))
  t.is(json(join(dir, 'metrics.json')).epochs, 3)
})

test('an empty test part is allowed: no test metrics, "test": null in metrics.json', async (t) => {
  const dir = newDir()
  const r = await train({ ...base, split: { train: 0.8, validation: 0.2, test: 0 }, out: dir })
  t.is(r.metrics.test, null)
  t.is(r.inputs.test.labels.length, 0)
  t.is(typeof r.metrics.validation.accuracy, 'number')
  const m = json(join(dir, 'metrics.json'))
  t.is(m.test, null)
  t.is(typeof m.train.accuracy, 'number')
  t.false(existsSync(join(dir, 'confusion.png')))
  t.true(existsSync(join(dir, 'model.safetensors')))
})

test('an empty train or validation part, or a bad setting, is refused before any training and leaves no directory', async (t) => {
  for (const split of [{ train: 0.8, validation: 0, test: 0.2 }, { train: 0, validation: 0.5, test: 0.5 }]) {
    const dir = newDir()
    let epochs = 0
    const e = await t.throwsAsync(train({ ...base, split, out: dir, onEpoch: () => void epochs++ }), { instanceOf: DataError })
    t.is((e as DataError).code, 'ESPLIT')
    t.regex(e!.message, new RegExp(`the split ${split.train},${split.validation},${split.test} leaves the (train|validation) part empty`))
    t.is(epochs, 0)
    t.false(existsSync(dir), 'no run directory')
  }
  const dir = newDir()
  await t.throwsAsync(train({ ...base, out: dir, lr: -1 }), { message: /lr/ })
  await t.throwsAsync(train({ ...base, out: dir, checkpointEvery: -1 }), { message: /checkpointEvery must be a finite number/ })
  t.false(existsSync(dir))
})

test('experiment: a finished experiment directory is refused, overwrite replaces it; an empty test part is refused before training', async (t) => {
  const { images, labels } = await miniData()
  const inMemory = { images, labels }
  const small = { ...miniConfig, models: ['M0' as const], M0: { epochs: 2 }, report: false, inMemory }
  const dir = newDir()
  mkdirSync(dir)
  writeFileSync(join(dir, 'notes.txt'), 'mine')
  await runExperiment({ ...small, out: dir })
  t.true(existsSync(join(dir, 'experiment.json')))
  const e = await t.throwsAsync(runExperiment({ ...small, out: dir }), { instanceOf: RunDirError })
  t.regex(e!.message, /holds a finished experiment \(experiment\.json\); choose another directory, or pass `--overwrite`/)
  const lines: string[] = []
  await runExperiment({ ...small, M0: { epochs: 1 }, out: dir, overwrite: true, log: (l) => lines.push(l) })
  t.is(json(join(dir, 'experiment.json')).models[0].epochs, 1)
  t.is(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'mine')
  t.false(existsSync(join(dir, LOCK_FILE)))

  const empty = newDir()
  lines.length = 0
  // the comparison of models is made on the test part: an experiment needs all three
  await t.throwsAsync(runExperiment({ ...small, split: { train: 0.8, validation: 0.2, test: 0 }, out: empty, log: (l) => lines.push(l) }), { message: /split must give positive train, validation and test fractions/ })
  t.false(lines.some((l) => /^M0/.test(l)), 'no model trained')
  t.false(existsSync(empty))
})

// ---------------------------------------------------------------------------------------------
// The command line, two real processes

const root = join(__dirname, '..')
const kmnist = join(root, '..', 'shared', 'data', 'kmnist')
const real = existsSync(join(kmnist, 'X_images.npy')) ? test.serial : test.skip
const files = ['--images', join(kmnist, 'X_images.npy'), '--labels', join(kmnist, 'y_images.npy')]

const { cli, start } = cliIn(tmp)

real('CLI: a second train into a directory in use fails at once naming the first; the first finishes; a finished run is refused, --overwrite replaces it', async (t) => {
  const dir = join(tmp, 'cli-train')
  const settings = [...files, '--hidden', '128', '--no-early-stopping', '--seed', '1', '--threads', '1', '--plain']
  const first = start(['train', ...settings, '--epochs', '12', '--out', dir])
  await first.until(/^epoch 1\/12 /m)
  const second = cli(['train', ...settings, '--epochs', '2', '--out', dir])
  t.false(first.done(), 'the second process gave up while the first still ran')
  t.is(second.code, 1, second.stderr)
  t.regex(second.stderr, new RegExp(`kana-native: ${dir} is in use by another kana-native process: pid ${first.child.pid} on host ${hostname()}, since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\(.*train .*--out ${dir}\\)`))
  t.notRegex(second.stderr, /^epoch/m, 'the second trained nothing')
  t.is((await first.exit).code, 0, first.stderr())
  t.is(json(join(dir, 'metrics.json')).epochs, 12)
  t.false(existsSync(join(dir, LOCK_FILE)), 'released at the end')

  const again = cli(['train', ...settings, '--epochs', '2', '--out', dir])
  t.is(again.code, 1)
  t.regex(again.stderr, /holds a finished run \(metrics\.json, model\.safetensors\); choose another directory, or pass `--overwrite`/)
  t.is(json(join(dir, 'metrics.json')).epochs, 12, 'untouched')
  const over = cli(['train', ...settings, '--epochs', '2', '--out', dir, '--overwrite'])
  t.is(over.code, 0, over.stderr)
  t.is(json(join(dir, 'metrics.json')).epochs, 2)

  // a stale lock (a killed run's) is taken over with a warning
  writeFileSync(join(dir, LOCK_FILE), lockOf(deadPid()))
  const stale = cli(['train', ...settings, '--epochs', '1', '--out', dir, '--overwrite'])
  t.is(stale.code, 0, stale.stderr)
  t.regex(stale.stderr, /kana-native: warning: .* taking over the stale lock of pid \d+ on host .*: that process no longer runs/)
  t.false(existsSync(join(dir, LOCK_FILE)))
})

real('CLI: Ctrl-C releases the lock; --resume takes it, and a second --resume meanwhile is refused', async (t) => {
  const dir = join(tmp, 'cli-resume')
  const settings = [...files, '--hidden', '128', '--epochs', '12', '--no-early-stopping', '--seed', '1', '--threads', '1', '--plain']
  const run = start(['train', ...settings, '--out', dir])
  await run.until(/^epoch 1\/12 /m)
  run.child.kill('SIGINT')
  t.is((await run.exit).code, 130, run.stderr())
  t.false(existsSync(join(dir, LOCK_FILE)), 'released on interrupt')
  const resumed = start(['train', '--resume', dir, '--plain'])
  await resumed.until(/^epoch \d+\/12 /m)
  const other = cli(['train', '--resume', dir])
  t.is(other.code, 1)
  t.regex(other.stderr, new RegExp(`is in use by another kana-native process: pid ${resumed.child.pid} `))
  t.is((await resumed.exit).code, 0, resumed.stderr())
  t.false(existsSync(join(dir, LOCK_FILE)))

  // a second Ctrl-C quits at once (killed by it, or 130 if the checkpoint was already written): no lock left either way
  const twice = join(tmp, 'cli-twice')
  const run2 = start(['train', ...settings, '--out', twice])
  await run2.until(/^epoch 1\/12 /m)
  run2.child.kill('SIGINT')
  run2.child.kill('SIGINT')
  await run2.exit
  t.false(existsSync(join(twice, LOCK_FILE)), run2.stderr())
})

real('CLI: an empty test split trains and says so; an empty validation split fails before training', (t) => {
  const dir = join(tmp, 'cli-split')
  const settings = [...files, '--hidden', '16', '--epochs', '2', '--seed', '1', '--threads', '1', '--plain']
  const r = cli(['train', ...settings, '--split', '0.9,0.1,0', '--out', dir])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stderr, /data: 7200 train \/ 800 validation \/ 0 test samples/)
  t.regex(r.stderr, /no test metrics: the split's test part is empty \(metrics\.json has "test": null\)/)
  t.is(json(join(dir, 'metrics.json')).test, null)
  const v = cli(['train', ...settings, '--split', '0.9,0,0.1', '--out', join(tmp, 'cli-split-v')])
  t.is(v.code, 1)
  t.regex(v.stderr, /kana-native: the split 0\.9,0,0\.1 leaves the validation part empty \(7200 train \/ 0 validation \/ 800 test samples\)/)
  t.notRegex(v.stderr, /^epoch/m)
  t.false(existsSync(join(tmp, 'cli-split-v')))
})

real('CLI: experiment — a second process on the directory fails at once; a finished experiment is refused, --overwrite replaces it', async (t) => {
  const dir = join(tmp, 'cli-exp')
  const settings = [...files, '--models', 'M0', '--seed', '1', '--threads', '1', '--no-report', '--plain']
  const first = start(['experiment', ...settings, '--m0-epochs', '300', '--out', dir])
  await first.until(/^M0: /m)
  const second = cli(['experiment', ...settings, '--m0-epochs', '2', '--out', dir])
  t.false(first.done())
  t.is(second.code, 1, second.stderr)
  t.regex(second.stderr, new RegExp(`kana-native: ${dir} is in use by another kana-native process: pid ${first.child.pid} on host `))
  t.is((await first.exit).code, 0, first.stderr())
  const again = cli(['experiment', ...settings, '--m0-epochs', '2', '--out', dir])
  t.is(again.code, 1)
  t.regex(again.stderr, /holds a finished experiment \(experiment\.json\); choose another directory, or pass `--overwrite`/)
  const over = cli(['experiment', ...settings, '--m0-epochs', '2', '--out', dir, '--overwrite'])
  t.is(over.code, 0, over.stderr)
  t.is(json(join(dir, 'experiment.json')).models[0].epochs, 2)
  t.false(existsSync(join(dir, LOCK_FILE)))
})

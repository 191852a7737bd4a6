// Ctrl-C and kill -9 on the command line, on the real KMNIST files: SIGINT leaves a checkpoint,
// exits 130 and prints the resume command; `train --resume` then ends bit for bit where an
// uninterrupted run ends. SIGKILL at any moment (also while the checkpoint is being written)
// leaves no torn file in the run directory.
import { cliIn } from './helpers/cli'
import test from 'ava'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeModel } from '../src/output/model-file'
import { readCheckpoint } from '../src/training/checkpoint'

const root = join(__dirname, '..')
const kmnist = join(root, '..', 'shared', 'data', 'kmnist')
const hasData = existsSync(join(kmnist, 'X_images.npy'))
const real = hasData ? test.serial : test.skip
if (!hasData) test('KMNIST is absent', (t) => t.log(`skipped: no ${join(kmnist, 'X_images.npy')}`) || t.pass())

const tmp = mkdtempSync(join(tmpdir(), 'kana-resume-cli-'))
test.after.always(() => rmSync(tmp, { recursive: true, force: true }))

// Small, quick settings; the linear schedule makes every epoch's rate different.
const options = (epochs = 10) => ['--images', join(kmnist, 'X_images.npy'), '--labels', join(kmnist, 'y_images.npy'), '--hidden', '64', '--epochs', String(epochs),
  '--schedule', 'linear', '--patience', '4', '--seed', '3', '--threads', '2']
const settings = options()

const { cli, start } = cliIn(tmp)

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'))
const tensors = (dir: string) => decodeModel(readFileSync(join(dir, 'model.safetensors'))).weights
const noSeconds = (h: Record<string, unknown>[]) => h.map(({ seconds, ...r }) => r)
function metrics(dir: string) {
  const { seconds, ...m } = json(join(dir, 'metrics.json'))
  return m
}

let straight: string | undefined
/** The uninterrupted run, once. */
function uninterrupted(t: { is: (a: unknown, b: unknown, m?: string) => void }): string {
  if (!straight) {
    straight = join(tmp, 'straight')
    const r = cli(['train', ...settings, '--out', straight])
    t.is(r.code, 0, r.stderr)
  }
  return straight
}

function sameAsUninterrupted(t: any, dir: string) {
  const want = uninterrupted(t)
  t.deepEqual(tensors(dir), tensors(want), 'model.safetensors: bit-identical weights')
  t.deepEqual(noSeconds(json(join(dir, 'history.json'))), noSeconds(json(join(want, 'history.json'))), 'history apart from seconds')
  t.deepEqual(metrics(dir), metrics(want), 'metrics.json apart from seconds')
  const csv = (d: string) => readFileSync(join(d, 'history.csv'), 'utf8').trim().split('\n').map((l) => l.split(',').slice(0, -1).join(','))
  t.deepEqual(csv(dir), csv(want), 'history.csv apart from seconds')
  t.false(existsSync(join(dir, 'checkpoint')), 'the finished run has no checkpoint left')
}

real('Ctrl-C exits 130 with the resume command; --resume ends bit-identical to an uninterrupted run', async (t) => {
  const dir = join(tmp, 'interrupted')
  const run = start(['train', ...settings, '--out', dir])
  await run.until(/^epoch 2\/10 /m)
  await new Promise((res) => setTimeout(res, 30)) // into epoch 3, most likely
  run.child.kill('SIGINT')
  const { code } = await run.exit
  t.is(code, 130, run.stderr())
  t.regex(run.stderr(), /interrupt: stopping after the current batch and writing a checkpoint/)
  t.regex(run.stderr(), new RegExp(`interrupted in epoch \\d+/10 \\((step \\d+ of 150|its training done, validation pending)\\); checkpoint written to ${dir}/checkpoint\\nresume with:\\n  kana-native train --resume ${dir}\\n`))
  const ck = await readCheckpoint(dir)
  t.log(`interrupted in epoch ${ck.snapshot.progress.epoch + 1}, phase ${ck.snapshot.progress.phase}, step ${ck.snapshot.model.partialEpoch?.nextStep ?? '-'}`)
  t.false(existsSync(join(dir, 'model.safetensors')))

  // the printed command, as printed
  const command = run.stderr().match(/resume with:\n {2}kana-native (.*)\n/)![1].split(' ')
  const r = cli(command)
  t.is(r.code, 0, r.stderr)
  t.regex(r.stderr, new RegExp(`^resuming ${dir} at epoch ${ck.snapshot.progress.epoch + 1}/10 `, 'm'))
  t.notRegex(r.stderr, /warning/)
  sameAsUninterrupted(t, dir)
})

real('--resume refuses other settings and a finished run; other threads only warn', async (t) => {
  const dir = join(tmp, 'refusals')
  const run = start(['train', ...settings, '--out', dir])
  await run.until(/^epoch 1\/10 /m)
  run.child.kill('SIGTERM')
  t.is((await run.exit).code, 130, run.stderr())

  let r = cli(['train', '--resume', dir, '--lr', '0.01', '--hidden', '64'])
  t.is(r.code, 1)
  t.regex(r.stderr, /kana-native: cannot resume .* with other settings: lr 0\.01 \(the run has 0\.001\)\. A resumed run continues with its recorded configuration/)
  r = cli(['train', ...settings, '--out', dir])
  t.is(r.code, 1)
  t.regex(r.stderr, /holds the checkpoint of an interrupted run: continue it with `kana-native train --resume/)

  r = cli(['train', '--resume', dir, '--threads', '1', '--epochs', '10'])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stderr, /kana-native: warning: resuming .* with 1 threads; it ran with 2\. Bit-identical results are promised only with the same thread count/)
  r = cli(['train', '--resume', dir])
  t.is(r.code, 1)
  t.regex(r.stderr, /nothing to resume in .*: the run finished/)
})

real('killed outright, a run resumes from its last autosaved checkpoint, bit-identical to an uninterrupted run', async (t) => {
  const dir = join(tmp, 'autosaved')
  // an autosave after every epoch (each takes longer than 1 ms)
  const run = start(['train', ...settings, '--out', dir, '--checkpoint-every', '0.001'])
  await run.until(/^epoch 4\/10 /m)
  run.child.kill('SIGKILL')
  t.is((await run.exit).signal, 'SIGKILL')
  const ck = await readCheckpoint(dir)
  t.is(ck.snapshot.progress.phase, 'train')
  t.is(ck.snapshot.model.partialEpoch, null, 'autosaves are taken between epochs')
  // "epoch 4/10" is printed before that epoch's autosave: the one after epoch 3 is there for sure
  t.true(ck.snapshot.progress.epoch >= 3, `the checkpoint resumes at epoch ${ck.snapshot.progress.epoch + 1}`)
  t.log(`killed after epoch 4 was reported; the autosave resumes at epoch ${ck.snapshot.progress.epoch + 1}`)
  const r = cli(['train', '--resume', dir])
  t.is(r.code, 0, r.stderr)
  sameAsUninterrupted(t, dir)
  t.is(cli(['train', ...settings, '--out', join(tmp, 'bad'), '--checkpoint-every', '-1']).code, 1)
})

/** Every file in a run directory is absent or complete: parseable, with its end marker. */
async function checkNotTorn(t: any, dir: string, label: string) {
  if (!existsSync(dir)) return
  for (const f of readdirSync(dir)) {
    const path = join(dir, f)
    const what = `${label}: ${f}`
    if (f.startsWith('.') && f.endsWith('.tmp')) continue // a killed writer's temp file (never the real name)
    if (f === '.kana-native.lock') { // a killed run's lock, naming it (the next run takes it over)
      t.is(JSON.parse(readFileSync(path, 'utf8')).hostname, hostname(), what)
      continue
    }
    if (f === 'checkpoint') {
      if (existsSync(join(path, 'checkpoint.json'))) await t.notThrowsAsync(readCheckpoint(dir), `${what}: a complete checkpoint`)
      continue
    }
    const bytes = readFileSync(path)
    if (f.endsWith('.json')) t.notThrows(() => JSON.parse(bytes.toString('utf8')), what)
    else if (f === 'history.csv') {
      const lines = bytes.toString('utf8').split('\n')
      t.is(lines.pop(), '', `${what} ends with a newline`)
      t.true(lines.every((l) => l.split(',').length === 7), what)
    } else if (f.endsWith('.safetensors')) t.notThrows(() => decodeModel(bytes, f), what)
    else if (f.endsWith('.png')) {
      t.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], what)
      t.is(bytes.subarray(bytes.length - 8, bytes.length - 4).toString('latin1'), 'IEND', what)
    } else if (f.endsWith('.svg')) t.true(bytes.toString('utf8').trimEnd().endsWith('</svg>'), what)
    else t.fail(`${what}: unexpected file`)
  }
}

real('SIGKILL at any moment leaves no torn file; also while the checkpoint is written', async (t) => {
  // killed outright at moments spread over a short run, from its first epoch to its pictures
  for (const [i, delay] of [0, 300, 800].entries()) {
    const dir = join(tmp, `killed${i}`)
    const run = start(['train', ...options(3), '--out', dir])
    await run.until(/^epoch 1\/3 /m).catch(() => {})
    await new Promise((res) => setTimeout(res, delay))
    run.child.kill('SIGKILL')
    await run.exit
    await checkNotTorn(t, dir, `SIGKILL ${delay} ms after epoch 1`)
    t.false(existsSync(join(dir, 'checkpoint')), 'SIGKILL writes no checkpoint')
  }
  // Ctrl-C, then SIGKILL a moment later: the checkpoint is the whole new one or none
  let usable: string | undefined
  for (const [i, delay] of [0, 30, 80, 200].entries()) {
    const dir = join(tmp, `int-killed${i}`)
    const run = start(['train', ...settings, '--out', dir])
    await run.until(/^epoch 2\/10 /m)
    run.child.kill('SIGINT')
    await new Promise((res) => setTimeout(res, delay))
    run.child.kill('SIGKILL')
    await run.exit
    await checkNotTorn(t, dir, `SIGINT, then SIGKILL after ${delay} ms`)
    if (existsSync(join(dir, 'checkpoint', 'checkpoint.json'))) usable = dir
    else t.log(`killed ${delay} ms after SIGINT: no checkpoint yet`)
  }
  if (usable) {
    const r = cli(['train', '--resume', usable])
    t.is(r.code, 0, r.stderr)
    sameAsUninterrupted(t, usable)
  } else t.log('no kill came after a checkpoint was complete')
})

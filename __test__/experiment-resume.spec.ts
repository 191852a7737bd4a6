// An interrupted experiment resumes to exactly the result of an uninterrupted one: the miniature
// experiment (experiment-fixtures.ts) stopped at different moments — inside M0, inside the search,
// while the reference (M2) runs on its worker beside the architecture search, at arbitrary times,
// twice in a row — then resumed from its checkpoint, must give the same table, histories, trial
// logs, agreement figures and weights bit for bit (only wall-clock times differ). Also: a damaged
// checkpoint is refused, a new run into a directory with a checkpoint is refused, the CLI exits
// 130 on SIGINT with the resume command, which then finishes the experiment, and an experiment
// killed outright resumes from the checkpoint written after its last finished phase.
import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runExperiment, MODEL_IDS, type ExperimentInterruption, type ExperimentResult } from '../src/experiment/experiment'
import { loadModel } from '../src/output/model-file'
import { resolveModelConfig, Trial } from '../src/training/trial'
import { trialData } from '../src/training/sources'
import { hasKmnist, classmap, miniConfig, miniData, npy } from './experiment-fixtures'

const root = join(__dirname, '..')
const bin = join(root, 'bin', 'kana-native.js')
const VOLATILE = new Set(['seconds', 'referenceSeconds', 'at', 'createdAt', 'timings', 'dir'])

/** A deep copy without wall-clock fields and paths. */
function timeless(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(timeless)
  if (v instanceof Float32Array || v instanceof Float64Array) return Array.from(v)
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([k]) => !VOLATILE.has(k)).map(([k, x]) => [k, timeless(x)]))
  return v
}

/** Everything an experiment computes: the result (without times) and every model's weights. */
async function outcome(r: ExperimentResult) {
  const weights: Record<string, number[][]> = {}
  for (const id of MODEL_IDS) weights[id] = (await loadModel(join(r.dir, 'models', id, 'model.safetensors'))).weights.map((w) => Array.from(w))
  const { dir: _dir, reportPath: _report, ...rest } = r
  return { result: timeless(rest), weights }
}

/** Progress lines that say a piece of training was done, without their timings. */
const PROGRESS = /^(M0 epoch|M4 epoch|search trial|architecture trial|M2 \(reference\) epoch|M2 \(re-synchronised\) epoch|M5 candidate \d+ epoch|M5 trial)/
const progress = (lines: string[]) => lines.filter((l) => PROGRESS.test(l)).map((l) => l.replace(/\d+\.\d+s\b/g, 'Ts')).sort()

const setup = async () => ({ ...miniConfig, data: hasKmnist ? { classmap } : undefined, inMemory: await miniData(), report: false })

let baseline: Awaited<ReturnType<typeof outcome>> | undefined
let baselineProgress: string[] = []

test.before(async () => {
  const o = await setup()
  const lines: string[] = []
  baseline = await outcome(await runExperiment({ ...o, out: mkdtempSync(join(tmpdir(), 'kana-resume-base-')), log: (l) => lines.push(l) }))
  baselineProgress = progress(lines)
})

/** Runs the experiment, aborting it when `when` says so; returns the directory and the interruption. */
async function interrupted(dir: string, when: { line?: RegExp; afterMs?: number }, resume = false, lines: string[] = []): Promise<ExperimentInterruption | undefined> {
  const o = await setup()
  const ac = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const log = (l: string) => {
    lines.push(l)
    if (when.line?.test(l)) ac.abort()
    // timed stops count from the data's arrival (training is under a second here; files take longer)
    if (when.afterMs !== undefined && timer === undefined && /^data: /.test(l)) timer = setTimeout(() => ac.abort(), when.afterMs)
  }
  try {
    if (resume) await runExperiment({ inMemory: o.inMemory, report: false, resume: dir, signal: ac.signal, log })
    else await runExperiment({ ...o, out: dir, signal: ac.signal, log })
    return undefined // it finished before the abort came
  } catch (e) {
    if ((e as Error).name !== 'AbortError') throw e
    return (e as Error & { checkpoint: ExperimentInterruption }).checkpoint
  } finally {
    clearTimeout(timer)
  }
}

const cases: [string, { line?: RegExp; afterMs?: number }[]][] = [
  ['during M0 (after its first epoch)', [{ line: /^M0 epoch 1\// }]],
  ['in the search, between rungs', [{ line: /^search trial 2\/2/ }]],
  ['as the architecture search starts beside the reference', [{ line: /^M3: architecture search/ }]],
  ['while the reference trains alone', [{ line: /^M2 \(reference\) epoch 1\// }]],
  ['during M5 (after its second candidate\'s first epoch)', [{ line: /^M5 candidate 2 epoch 1\// }]],
  ['twice: 60 ms into the run, then 40 ms into the resumed run', [{ afterMs: 60 }, { afterMs: 40 }]],
  ['200 ms into the run', [{ afterMs: 200 }]],
]

for (const [name, stops] of cases) {
  test.serial(`interrupted ${name}, resumed: bit-identical to the uninterrupted experiment`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'kana-resume-'))
    let stopsTaken = 0
    const lines: string[] = []
    for (const [i, when] of stops.entries()) {
      const info = await interrupted(dir, when, i > 0, lines)
      if (!info) break
      stopsTaken++
      t.truthy(info.checkpoint, `a checkpoint was written (${info.error?.message ?? ''})`)
      t.true(existsSync(join(dir, 'checkpoint', 'experiment-checkpoint.json')))
      t.false(existsSync(join(dir, 'experiment.json')), 'an interrupted experiment has no experiment.json')
      const ix = JSON.parse(readFileSync(join(dir, 'checkpoint', 'experiment-checkpoint.json'), 'utf8'))
      type Progress = { progress: { epoch: number; phase: string; partial: { nextBatch: number } | null } }
      const where = (p: Progress['progress']) => `epoch ${p.epoch + 1} ${p.phase === 'validate' ? 'before validation' : `batch ${(p.partial?.nextBatch ?? 0) + 1}`}`
      const partial = Object.entries(ix.trials as Record<string, Progress>).filter(([, v]) => v.progress.partial || v.progress.phase === 'validate').map(([k, v]) => `${k} ${where(v.progress)}`)
      const ref = ix.reference?.state ? `; reference at ${where(ix.reference.state.progress)}` : ix.reference?.outcome ? '; reference finished' : ''
      t.log(`stop ${i + 1}: ${Object.keys(ix.trials).length} trials saved, stopped inside an epoch: ${partial.join(', ') || 'none'}${ref}`)
    }
    t.true(stopsTaken >= 1, 'the experiment was interrupted at least once')
    const o = await setup()
    const r = await runExperiment({ inMemory: o.inMemory, report: false, resume: dir, log: (l) => lines.push(l) })
    t.false(existsSync(join(dir, 'checkpoint')), 'the checkpoint is removed once the experiment is complete')
    const again = await outcome(r)
    t.deepEqual(again.result, baseline!.result)
    t.deepEqual(again.weights, baseline!.weights)
    // and nothing was trained twice: over all sessions, each piece of progress is reported once, as in one run
    t.deepEqual(progress(lines), baselineProgress)
    const written = JSON.parse(readFileSync(join(dir, 'experiment.json'), 'utf8'))
    t.is(written.resumed.interruptions, stopsTaken)
    t.log(`${stopsTaken} interruption(s); the resumed run took ${written.timings.total.toFixed(1)} s of ${written.seconds.toFixed(1)} s in all`)
  })
}

test.serial('a trial stopped between two mini-batches continues exactly from its snapshot', async (t) => {
  const o = await setup()
  const n = o.inMemory.labels.length
  const data = trialData(
    { images: o.inMemory.images.subarray(0, 400 * 784), labels: o.inMemory.labels.subarray(0, 400) },
    { images: o.inMemory.images.subarray(400 * 784, n * 784), labels: o.inMemory.labels.subarray(400, n) },
    784, 10,
  )
  const config = resolveModelConfig({ hidden: [24], optimizer: 'adam', lr: 2e-3, batchSize: 32, epochs: 3, patience: 5, seed: 11 })
  const whole = new Trial(config, data, { threads: 1 })
  await whole.advance(3)
  // stop after the 5th step of the second epoch
  const ac = new AbortController()
  const first = new Trial(config, data, { threads: 1, afterStep: (_m, epoch, batch) => { if (epoch === 1 && batch === 4) ac.abort() } })
  await t.throwsAsync(first.advance(3, ac.signal), { name: 'AbortError' })
  const snap = first.snapshot()
  t.deepEqual(snap.progress.partial && { epoch: snap.progress.epoch, nextBatch: snap.progress.partial.nextBatch }, { epoch: 1, nextBatch: 5 })
  t.is(snap.history.length, 1)
  first.release()
  const second = new Trial(config, data, { threads: 1 })
  second.restore(snap)
  await second.advance(3)
  t.deepEqual(timeless(second.history), timeless(whole.history))
  t.deepEqual(second.model.getWeights(), whole.model.getWeights())
  t.deepEqual(second.model.getTrainingState(), whole.model.getTrainingState())
  whole.release()
  second.release()
})

test.serial('a damaged checkpoint, different data, extra settings and a new run into a checkpointed directory are refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kana-resume-bad-'))
  t.truthy(await interrupted(dir, { line: /^search trial 1\/2/ }))
  const o = await setup()
  await t.throwsAsync(runExperiment({ ...o, out: dir }), { message: /holds the checkpoint of an interrupted experiment: continue it with `kana-native experiment --resume/ })
  await t.throwsAsync(runExperiment({ inMemory: o.inMemory, resume: dir, seed: 8 }), { message: /do not give seed/ })
  await t.throwsAsync(runExperiment({ inMemory: o.inMemory, resume: dir, out: join(dir, 'elsewhere') }), { message: /do not give another out/ })
  const other = { ...o.inMemory, images: o.inMemory.images.slice() }
  other.images[12345] ^= 1
  await t.throwsAsync(runExperiment({ inMemory: other, resume: dir, report: false }), { message: /the data differ from those the interrupted experiment/ })
  const cdir = join(dir, 'checkpoint')
  const tensors = readdirSync(cdir).find((f) => f.endsWith('.safetensors'))!
  const bytes = readFileSync(join(cdir, tensors))
  const flipped = Buffer.from(bytes)
  flipped[flipped.length - 3] ^= 0x40
  writeFileSync(join(cdir, tensors), flipped)
  await t.throwsAsync(runExperiment({ inMemory: o.inMemory, resume: dir, report: false }), { message: /is damaged: .* does not match its SHA-256/ })
  writeFileSync(join(cdir, tensors), bytes)
  writeFileSync(join(cdir, 'experiment-checkpoint.json'), readFileSync(join(cdir, 'experiment-checkpoint.json'), 'utf8').slice(0, 300))
  await t.throwsAsync(runExperiment({ inMemory: o.inMemory, resume: dir, report: false }), { message: /is damaged: experiment-checkpoint.json is not valid JSON/ })
  await t.throwsAsync(runExperiment({ inMemory: o.inMemory, resume: join(dir, 'nowhere') }), { message: /no such experiment directory/ })
})

const built = existsSync(join(root, 'dist', 'cli', 'experiment.js'))
;(built ? test.serial : test.skip)('kana-native experiment: SIGINT exits 130 with the resume command, --resume finishes it; after SIGKILL it resumes from the last phase', async (t) => {
  const o = await setup()
  const dir = mkdtempSync(join(tmpdir(), 'kana-resume-cli-'))
  writeFileSync(join(dir, 'X.npy'), npy('|u1', [600, 784], o.inMemory.images))
  writeFileSync(join(dir, 'y.npy'), npy('<i4', [600], o.inMemory.labels))
  writeFileSync(join(dir, 'exp.json'), JSON.stringify({ ...miniConfig, data: { images: 'X.npy', labels: 'y.npy' } }))
  const child = spawn(process.execPath, [bin, 'experiment', '--config', 'exp.json', '--out', 'exp', '--no-report'], { cwd: dir, env: { ...process.env, NO_COLOR: '1' } })
  let stderr = ''
  let sent = false
  child.stderr.on('data', (d) => {
    stderr += String(d)
    if (!sent && /search trial 1\/2/.test(stderr)) {
      sent = true
      child.kill('SIGINT')
    }
  })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  t.is(code, 130, stderr)
  t.regex(stderr, /checkpoint written to .*exp\/checkpoint\nresume with:\n {2}kana-native experiment --resume .*exp\n/)
  const cli = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } })
  const extra = cli(['experiment', '--resume', 'exp', '--seed', '3'])
  t.is(extra.status, 2)
  t.regex(extra.stderr, /--resume continues the experiment with the settings in its checkpoint; drop --seed/)
  const fresh = cli(['experiment', '--config', 'exp.json', '--out', 'exp'])
  t.is(fresh.status, 1)
  t.regex(fresh.stderr, /holds the checkpoint of an interrupted experiment/)
  const r = cli(['experiment', '--resume', 'exp', '--no-report', '--json'])
  t.is(r.status, 0, r.stderr)
  const result = JSON.parse(r.stdout.trim().split('\n').pop()!)
  t.is(result.type, 'result')
  t.deepEqual(result.table.map((row: { model: string }) => row.model), MODEL_IDS)
  const written = JSON.parse(readFileSync(join(dir, 'exp', 'experiment.json'), 'utf8'))
  t.is(written.resumed.interruptions, 1)
  // the same data from files as in memory: the same results as the uninterrupted run
  t.deepEqual(written.table.map((row: { testAccuracy: number }) => row.testAccuracy), (baseline!.result as ExperimentResult).table.map((row) => row.testAccuracy))

  // SIGKILL gives no chance to write a checkpoint: the one written after the last finished phase remains
  const killed = spawn(process.execPath, [bin, 'experiment', '--config', 'exp.json', '--out', 'killed', '--no-report'], { cwd: dir, env: { ...process.env, NO_COLOR: '1' } })
  let log = ''
  killed.stderr.on('data', (d) => {
    log += String(d)
    if (/^M3: architecture search/m.test(log)) killed.kill('SIGKILL')
  })
  t.is(await new Promise<string | null>((resolve) => killed.on('close', (_code, signal) => resolve(signal))), 'SIGKILL')
  const phase = JSON.parse(readFileSync(join(dir, 'killed', 'checkpoint', 'experiment-checkpoint.json'), 'utf8'))
  t.is(phase.reason, 'search', 'the checkpoint of the last phase done')
  const after = cli(['experiment', '--resume', 'killed', '--no-report', '--json'])
  t.is(after.status, 0, after.stderr)
  const table = JSON.parse(readFileSync(join(dir, 'killed', 'comparison.json'), 'utf8'))
  t.deepEqual(table.map((row: { testAccuracy: number; testLoss: number }) => [row.testAccuracy, row.testLoss]), (baseline!.result as ExperimentResult).table.map((row) => [row.testAccuracy, row.testLoss]))
})

// Interrupt and resume through the Node API: a run stopped by its AbortSignal at any point leaves
// a checkpoint, and `train({ resume })` continues it to bit for bit the result of an uninterrupted
// run; a checkpoint that does not fit (other data, other settings, damaged, missing) is refused.
import test, { type ExecutionContext } from 'ava'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { train, type TrainAbortError, type TrainOptions, type TrainResult } from '../src/training/train'
import { readCheckpoint, CheckpointError } from '../src/training/checkpoint'
import { decodeModel } from '../src/output/model-file'
import { npy } from './helpers/npy'
import { learnable as learnableData } from './helpers/learnable'

/** 30% of labels noise: learnable, then overfit. */
const learnableWithNoise = (n: number, features: number, classes: number, seed: number) => learnableData(n, features, classes, seed, 0.3)

const tmp = mkdtempSync(join(tmpdir(), 'kana-resume-'))
test.after.always(() => rmSync(tmp, { recursive: true, force: true }))
let runs = 0
const newDir = () => join(tmp, `run${++runs}`)



const data = learnableWithNoise(3000, 64, 5, 1)
// Early stopping with patience 2 ends this run at epoch 9 (best 7): the stopper's state and the best
// weights snapshot both matter after a resume.
const base: TrainOptions = { data, hidden: [32], lr: 3e-3, batchSize: 8, epochs: 12, patience: 2, l2: 1e-4, seed: 5, threads: 2, progressInterval: 1 }

const noSeconds = (h: TrainResult['history']) => h.map(({ seconds, ...r }) => r)
const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'))
const fileWeights = (dir: string) => decodeModel(readFileSync(join(dir, 'model.safetensors'))).weights
function metricsFile(dir: string) {
  const { seconds, ...m } = json(join(dir, 'metrics.json'))
  return m
}

let straight: Promise<{ result: TrainResult; dir: string }> | undefined
function uninterrupted() {
  straight ??= (async () => {
    const dir = newDir()
    return { result: await train({ ...base, out: dir }), dir }
  })()
  return straight
}

/** Runs with an abort fired by `arm`, checks the interruption, resumes (possibly again), and compares with the uninterrupted run. */
async function interruptAndResume(t: ExecutionContext, arm: (abort: () => void) => Partial<TrainOptions>, opts: { again?: (abort: () => void) => Partial<TrainOptions> } = {}) {
  const dir = newDir()
  const ac = new AbortController()
  const err = (await t.throwsAsync(train({ ...base, out: dir, signal: ac.signal, ...arm(() => ac.abort()) }), { name: 'AbortError' })) as TrainAbortError
  t.truthy(err.checkpoint, `a checkpoint is reported (${err.checkpointError?.message})`)
  t.is(err.checkpoint!.dir, join(dir, 'checkpoint'))
  t.true(existsSync(join(dir, 'checkpoint', 'checkpoint.json')))
  const ck = await readCheckpoint(dir)
  if (opts.again) {
    const ac2 = new AbortController()
    const err2 = (await t.throwsAsync(train({ resume: dir, data, signal: ac2.signal, progressInterval: 1, ...opts.again(() => ac2.abort()) }), { name: 'AbortError' })) as TrainAbortError
    t.truthy(err2.checkpoint)
    t.true(err2.checkpoint!.epoch > err.checkpoint!.epoch || err2.checkpoint!.step > err.checkpoint!.step, 'the second interruption is later')
    // only the newest checkpoint's tensor file remains
    t.is(readdirSync(join(dir, 'checkpoint')).filter((f) => f.endsWith('.safetensors')).length, 1)
  }
  const result = await train({ resume: dir, data })
  const want = (await uninterrupted()).result
  t.deepEqual(result.model.getWeights(), want.model.getWeights(), 'bit-identical final weights')
  t.deepEqual(noSeconds(result.history), noSeconds(want.history), 'identical history apart from seconds')
  t.deepEqual(result.metrics, want.metrics)
  t.is(result.stopReason, want.stopReason)
  t.is(result.bestEpoch, want.bestEpoch)
  t.is(result.weightsEpoch, want.weightsEpoch)
  const wantDir = (await uninterrupted()).dir
  t.deepEqual(fileWeights(dir), fileWeights(wantDir), 'model.safetensors tensors')
  t.deepEqual(noSeconds(json(join(dir, 'history.json'))), noSeconds(json(join(wantDir, 'history.json'))))
  t.deepEqual(metricsFile(dir), metricsFile(wantDir))
  t.false(existsSync(join(dir, 'checkpoint')), 'a finished run has no checkpoint left')
  return { ck, err }
}

test('the uninterrupted reference run stops early with a best epoch before its last', async (t) => {
  const { result } = await uninterrupted()
  t.is(result.stopReason, 'early-stopping')
  t.true(result.bestEpoch < result.history.length && result.bestEpoch >= 3, `best ${result.bestEpoch} of ${result.history.length}`)
})

// Where the interruptions land. An abort queued with setImmediate from onEpoch fires once the next
// epoch's fit has started (the loop reaches the engine without leaving the microtask queue), so the
// engine stops that epoch after a batch or a few. Progress reports come from a 1 ms timer, late
// on a busy machine; the last one of a fit comes after its last step, before the validation. A
// report at the start of a call can show the previous call's counters (the validation's few
// chunks), hence the checks that p.steps is an epoch's: 1800 training samples in batches of 8.
const STEPS = 225

test.serial('interrupted mid-epoch, resumed: bit-identical to an uninterrupted run', async (t) => {
  // The abort is sent just after epoch 3 and reaches the engine's worker a moment later: on a busy
  // machine the whole (short) epoch 4 may be done by then, and the checkpoint is then a
  // between-phases one, tested below. Up to three attempts to land inside the epoch.
  for (let attempt = 1; ; attempt++) {
    const tried = await t.try(async (tt) => {
      const { ck, err } = await interruptAndResume(tt, (abort) => ({ onEpoch: (r) => void (r.epoch === 3 && setImmediate(abort)) }))
      tt.is(ck.snapshot.progress.phase, 'train')
      tt.is(ck.snapshot.progress.epoch, 3)
      tt.truthy(ck.snapshot.model.partialEpoch, 'the unfinished epoch is in the checkpoint')
      tt.true(ck.snapshot.model.partialEpoch!.nextStep > 0 && ck.snapshot.model.partialEpoch!.nextStep < STEPS)
      tt.is(err.checkpoint!.step, ck.snapshot.model.partialEpoch!.nextStep)
      tt.is(ck.snapshot.history.length, ck.snapshot.progress.epoch)
      tt.truthy(ck.snapshot.best)
      tt.log(`attempt ${attempt}: interrupted in epoch ${ck.snapshot.progress.epoch + 1} after step ${ck.snapshot.model.partialEpoch!.nextStep} of ${STEPS}`)
    })
    if (tried.passed || attempt === 3) return tried.commit()
    tried.discard()
  }
})

test.serial('interrupted between epochs, resumed: bit-identical', async (t) => {
  const { ck } = await interruptAndResume(t, (abort) => ({ onEpoch: (r) => void (r.epoch === 4 && abort()) }))
  t.is(ck.snapshot.progress.phase, 'train')
  t.is(ck.snapshot.progress.epoch, 4)
  t.is(ck.snapshot.model.partialEpoch, null)
})

test.serial('interrupted after an epoch\'s training, before its validation, resumed: bit-identical', async (t) => {
  const { ck } = await interruptAndResume(t, (abort) => ({ onProgress: (p) => p.epoch === 6 && p.steps === STEPS && p.step === STEPS && abort() }))
  t.is(ck.snapshot.progress.phase, 'validate')
  t.is(ck.snapshot.progress.epoch, 5)
  t.truthy(ck.snapshot.progress.pendingFit)
})

test.serial('interrupted before the first epoch, resumed: bit-identical', async (t) => {
  const { ck } = await interruptAndResume(t, (abort) => ({ onData: () => abort() }))
  t.is(ck.snapshot.progress.epoch, 0)
  t.is(ck.snapshot.history.length, 0)
  t.is(ck.snapshot.best, undefined)
})

test.serial('interrupted twice (mid-epoch, then the resumed run between epochs), resumed: bit-identical', async (t) => {
  const { ck } = await interruptAndResume(t, (abort) => ({
    onProgress: (p) => p.epoch === 2 && p.steps === STEPS && p.step > 0 && p.step < STEPS / 2 && abort(),
    onEpoch: (r) => void (r.epoch === 2 && setImmediate(abort)), // when no report came in time
  }), {
    again: (abort) => ({ onEpoch: (r) => void (r.epoch === 7 && abort()) }),
  })
  t.log(`first interrupted in epoch ${ck.snapshot.progress.epoch + 1} after step ${ck.snapshot.model.partialEpoch?.nextStep} of ${STEPS}`)
})

test('a checkpoint that does not fit is refused, and stays usable', async (t) => {
  const dir = newDir()
  const ac = new AbortController()
  await t.throwsAsync(train({ ...base, out: dir, signal: ac.signal, onEpoch: (r) => void (r.epoch === 2 && ac.abort()) }), { name: 'AbortError' })

  const refused = async (opts: TrainOptions, code: string, message: RegExp) => {
    const e = await t.throwsAsync(train(opts), { instanceOf: CheckpointError, message })
    t.is((e as CheckpointError).code, code)
  }
  // the data were in memory: they must be given again, and be the same
  await refused({ resume: dir }, 'EDATA', /trained on arrays in memory; pass the same arrays as `data`/)
  const other = { ...data, labels: Int32Array.from(data.labels) }
  other.labels[7] = (other.labels[7] + 1) % 5
  await refused({ resume: dir, data: other }, 'EDATA', /the data \(split with the run's seed 5\) differ from what the run trained on/)
  // settings that define the run cannot change; equal ones may be repeated
  await refused({ resume: dir, data, lr: 1e-2 }, 'ECONFLICT', /lr 0\.01 \(the run has 0\.003\).*start a new run to change it/)
  await refused({ resume: dir, data, hidden: [64], seed: 6 }, 'ECONFLICT', /seed 6 \(the run has 5\); hidden 64 \(the run has 32\)/)
  await refused({ resume: dir, data, out: newDir() }, 'ECONFLICT', /resuming writes to the run's own directory/)
  // a new run cannot silently overwrite an interrupted one
  await refused({ ...base, out: dir }, 'ECONFLICT', /holds the checkpoint of an interrupted run: continue it with `kana-native train --resume/)
  // no checkpoint
  await refused({ resume: join(tmp, 'nowhere') }, 'ENOCHECKPOINT', /no such run directory/)
  const { dir: finished } = await uninterrupted()
  await refused({ resume: finished, data }, 'ENOCHECKPOINT', /the run finished \(metrics\.json is there\) and has no checkpoint/)

  // damaged: one flipped bit in the tensors, a truncated index
  const cdir = join(dir, 'checkpoint')
  const weightsFile = join(cdir, readdirSync(cdir).find((f) => f.startsWith('tensors.'))!)
  const good = readFileSync(weightsFile)
  const flipped = Buffer.from(good)
  flipped[flipped.length - 5] ^= 1
  writeFileSync(weightsFile, flipped)
  await refused({ resume: dir, data }, 'ECORRUPT', /is damaged: tensors\..*\.safetensors does not match its SHA-256/)
  writeFileSync(weightsFile, good)
  const index = join(cdir, 'checkpoint.json')
  const text = readFileSync(index, 'utf8')
  writeFileSync(index, text.slice(0, text.length >> 1))
  await refused({ resume: dir, data }, 'ECORRUPT', /checkpoint\.json is not valid JSON/)
  writeFileSync(index, text)

  // other threads: a warning, and the run continues
  const warnings: string[] = []
  const r = await train({ ...base, resume: dir, threads: 1, onWarning: (w) => warnings.push(w) })
  t.is(warnings.length, 1)
  t.regex(warnings[0], /with 1 threads; it ran with 2\. Bit-identical results are promised only with the same thread count/)
  const want = (await uninterrupted()).result
  t.log(`resumed with 1 thread instead of 2: weights ${JSON.stringify(r.model.getWeights()) === JSON.stringify(want.model.getWeights()) ? 'identical' : 'differ'}`)
  t.is(r.history.length, want.history.length)
})


test('data files that changed since the interruption are refused by size or content; moved ones are followed', async (t) => {
  const folder = newDir() + '-data'
  mkdirSync(folder)
  const n = 1500
  const images = join(folder, 'X.npy')
  const labels = join(folder, 'y.npy')
  writeFileSync(images, npy('|u1', [n, 8, 8], data.images.subarray(0, n * 64)))
  writeFileSync(labels, npy('<i4', [n], data.labels.subarray(0, n)))
  const dir = newDir()
  const ac = new AbortController()
  const opts: TrainOptions = { images, labels, hidden: [16], epochs: 3, seed: 2, threads: 2, progressInterval: 1 }
  await t.throwsAsync(train({ ...opts, out: dir, signal: ac.signal, onEpoch: (r) => void (r.epoch === 1 && ac.abort()) }), { name: 'AbortError' })

  const good = readFileSync(labels)
  const changed = Buffer.from(good)
  changed[changed.length - 1] ^= 1 // the last label's high byte: same size, other content
  writeFileSync(labels, changed)
  await t.throwsAsync(train({ resume: dir }), { instanceOf: CheckpointError, message: /y\.npy differs from the labels the run trained on .*, though of the same size/ })
  writeFileSync(labels, good.subarray(0, good.length - 4))
  await t.throwsAsync(train({ resume: dir }), { instanceOf: CheckpointError, message: new RegExp(`y\\.npy has ${good.length - 4} bytes, but the labels the run trained on .* had ${good.length}`) })
  writeFileSync(labels, good)
  // the folder moved: the recorded paths are gone; new ones are accepted after the same checks
  const moved = folder + '-moved'
  renameSync(folder, moved)
  await t.throwsAsync(train({ resume: dir }), { message: /X\.npy/ })
  const r = await train({ resume: dir, images: join(moved, 'X.npy'), labels: join(moved, 'y.npy') })
  const want = await train({ ...opts, images: join(moved, 'X.npy'), labels: join(moved, 'y.npy') })
  t.deepEqual(r.model.getWeights(), want.model.getWeights())
  t.deepEqual(noSeconds(r.history), noSeconds(want.history))
})

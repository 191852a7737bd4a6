// The run directory: everything a training run leaves behind, each file written atomically.
//   config.json       the resolved configuration (seed included) and where the data came from
//   history.csv/.json per-epoch train/validation loss and accuracy, learning rate, seconds
//   metrics.json      final metrics for train, validation and test
//   model.safetensors the weights, with architecture, normalisation, class names, config, metrics
//   curves.png/.svg, confusion.png/.svg (test), class-distribution.png/.svg, samples.png/.svg
//   .kana-native.lock while a process works in it (claimRunDir, below)
import { closeSync, existsSync, linkSync, lstatSync, openSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, writeSync } from 'node:fs'
import { mkdir, rm, rmdir } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { join, resolve, sep } from 'node:path'
import { CHECKPOINT_DIR, CHECKPOINT_INDEX, removeCheckpoint } from './checkpoint'
import { checkOwnedDir, writeFileAtomic } from '../output/atomic'
import { writeHistory } from './history'
import { saveModel } from '../output/model-file'
import { architectureMeta } from '../output/saved-model'
import { classDistribution, confusionHeatmap, lossCurves, sampleGrid } from '../output/plots'
import { writeRendered } from '../output/render'
import { pct } from '../output/format'
import type { Inputs } from '../data/inputs'
import type { ResolvedConfig, SplitMetrics, TrainResult } from './records'

export const MODEL_FILE = 'model.safetensors'

const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n'

/** Creates the directory and records the configuration before training starts. */
export async function startRunDir(dir: string, config: ResolvedConfig, inputs: Inputs, command?: string[]): Promise<void> {
  await mkdir(dir, { recursive: true })
  await writeFileAtomic(join(dir, 'config.json'), json({
    ...config,
    classNames: inputs.classNames,
    data: { ...inputs.source, features: inputs.features, classes: inputs.classes, samples: { train: inputs.train.labels.length, validation: inputs.validation.labels.length, test: inputs.test.labels.length } },
    command,
    node: process.version,
    createdAt: new Date().toISOString(),
  }))
}

function briefMetrics(m: SplitMetrics) {
  return { accuracy: m.accuracy, loss: m.loss, balancedAccuracy: m.balancedAccuracy, macroF1: m.macroF1, samples: m.samples }
}

/** The final files of a finished (or diverged) run; metrics.json's `test` is null when the test part is empty. */
export async function finishRunDir(dir: string, result: TrainResult): Promise<void> {
  const { model, config, inputs, history, metrics } = result
  await writeHistory(dir, history)
  await writeFileAtomic(join(dir, 'metrics.json'), json({
    stopReason: result.stopReason,
    divergence: result.divergence,
    epochs: history.length,
    bestEpoch: result.bestEpoch,
    weightsEpoch: result.weightsEpoch,
    seconds: result.seconds,
    train: metrics.train,
    validation: metrics.validation,
    test: metrics.test,
  }))
  // the architecture (activation, batch norm, dropout) and batch norm's state: what inference needs
  await saveModel(join(dir, MODEL_FILE), {
    ...architectureMeta(model),
    layers: config.layers,
    classNames: inputs.classNames,
    inputShape: inputs.features === 784 ? [28, 28] : undefined,
    seed: config.seed,
    training: { ...config, epochsRun: history.length, bestEpoch: result.bestEpoch, stopReason: result.stopReason },
    metrics: { train: briefMetrics(metrics.train), validation: briefMetrics(metrics.validation), test: metrics.test && briefMetrics(metrics.test) },
  }, model.getWeights(), model.getNormState())
  await writePictures(dir, result)
}

async function writePictures(dir: string, { inputs, history, metrics, bestEpoch }: TrainResult): Promise<void> {
  if (history.length > 0) await writeRendered(join(dir, 'curves'), await lossCurves(history, { title: 'Training and validation', bestEpoch }))
  // an empty test part (allowed) has no confusion matrix
  if (metrics.test) await writeRendered(join(dir, 'confusion'), await confusionHeatmap(metrics.test.confusion, inputs.classNames, { title: `Test confusion matrix (accuracy ${pct(metrics.test.accuracy, 1)})` }))
  const counts = new Array<number>(inputs.classes).fill(0)
  for (const part of [inputs.train, inputs.validation, inputs.test]) for (const y of part.labels) counts[y]++
  await writeRendered(join(dir, 'class-distribution'), await classDistribution(counts, inputs.classNames, { title: 'Samples per class' }))
  await writeRendered(join(dir, 'samples'), await sampleGrid(inputs.train.images, inputs.features, inputs.train.labels, inputs.classNames, { title: 'Training samples' }))
}

// ---------------------------------------------------------------------------------------------
// Claiming a run directory: one process at a time, and never over a finished run unasked.
//
// A lock file, created with O_EXCL (atomic on local file systems), names its holder: pid, host,
// start time, command. A second process fails at once, naming the holder. A lock whose process
// is gone (same host, pid not alive) is stale: taken over with a warning. A lock from another
// host cannot be checked from here and is respected; the message says how to remove it. A pid
// reused by an unrelated process makes a stale lock look alive: then the message's advice applies.
//
// What is refused without `overwrite`: a directory holding a finished run (train: metrics.json or
// model.safetensors; experiment: experiment.json), or the files of an earlier run that neither
// finished nor left a checkpoint (they would be mixed with the new run's). A directory holding a
// checkpoint is left to the caller, which points to --resume. An empty directory, or one holding
// only files kana-native does not write, is used as it is; `overwrite` removes only the files
// kana-native writes (RUN_FILES / EXPERIMENT_FILES), never anything else, and only once the new
// run is about to write (`clear()`), so a run refused by a later check has destroyed nothing.

export const LOCK_FILE = '.kana-native.lock'

export type RunDirKind = 'run' | 'experiment'

const pictures = (...names: string[]) => names.flatMap((n) => [`${n}.png`, `${n}.svg`])
/** Everything `train` writes into a run directory (besides the checkpoint folder). */
export const RUN_FILES = ['config.json', 'history.csv', 'history.json', 'metrics.json', MODEL_FILE, ...pictures('curves', 'confusion', 'class-distribution', 'samples'), 'report.html']
const EXPERIMENT_MODEL_FILES = ['config.json', 'history.csv', 'history.json', 'metrics.json', MODEL_FILE, ...pictures('curves', 'confusion')]
const SEARCH_FILES = ['trials.csv', 'trials.json', 'trials.md', ...pictures('lr-effect')]
/** Everything `runExperiment` writes into an experiment directory (besides the checkpoint folder), by subfolder. */
export const EXPERIMENT_FILES: Record<string, string[]> = {
  '.': ['experiment-config.json', 'experiment.json', 'comparison.md', 'comparison.csv', 'comparison.json', 'agreement.json', 'report.html',
    ...pictures('curves', 'curves-accuracy', 'curves-zoom', 'class-distribution', 'samples', 'agreement')],
  ...Object.fromEntries(['M0', 'M1', 'M2', 'M3', 'M4'].map((m) => [join('models', m), EXPERIMENT_MODEL_FILES])),
  models: [],
  search: SEARCH_FILES,
  architecture: SEARCH_FILES,
}
const FINISHED: Record<RunDirKind, string[]> = { run: ['metrics.json', MODEL_FILE], experiment: ['experiment.json'] }
const CHECKPOINT_INDEXES: Record<RunDirKind, string> = { run: CHECKPOINT_INDEX, experiment: 'experiment-checkpoint.json' }

export interface ClaimOptions {
  kind: RunDirKind
  /** Replace a finished (or abandoned) run's files; default false. */
  overwrite?: boolean
  /** Continuing the run in the directory from its checkpoint: only the lock is taken. */
  resume?: boolean
  /** Recorded in the lock file, shown to a second process. */
  command?: string[]
  /** A stale lock taken over. Default: process.emitWarning. */
  onWarning?: (message: string) => void
}

/** The claimed directory; `release()` (idempotent, synchronous) removes the lock. */
export interface RunDirClaim {
  dir: string
  /** With `overwrite`: removes the earlier run's files. Call right before the new run writes. */
  clear(): Promise<void>
  release(): void
}

export class RunDirError extends Error {
  /** 'ELOCKED' (another process holds the directory), 'EFINISHED' (a finished run), 'EEXIST' (an earlier run's files), 'ENOTDIR', 'ESYMLINK' (a folder of its own is a link), 'EOPTION'. */
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = 'RunDirError'
    this.code = code
  }
}

interface LockInfo {
  pid: number
  hostname: string
  startedAt: string
  command?: string[]
  kind: RunDirKind
  /** Tells this claim's lock from a later one, so release never removes someone else's. */
  token: string
}

/** Directories claimed by this process (a second train() into one of them is as wrong as a second process). */
const claimedHere = new Set<string>()

function readLock(path: string): LockInfo | 'unreadable' | 'absent' {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent'
    return 'unreadable'
  }
  try {
    const v = JSON.parse(text)
    return Number.isSafeInteger(v?.pid) && typeof v?.hostname === 'string' ? v : 'unreadable'
  } catch {
    return 'unreadable'
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' // alive, someone else's
  }
}

const describeHolder = (l: LockInfo) =>
  `pid ${l.pid} on host ${l.hostname}, since ${l.startedAt}${l.command?.length ? ` (${l.command.join(' ')})` : ''}`

/** Takes the lock of `dir` (creating the directory), checks what it holds, and returns the claim. */
export async function claimRunDir(dir: string, opts: ClaimOptions): Promise<RunDirClaim> {
  dir = resolve(dir)
  const warn = opts.onWarning ?? ((m: string) => process.emitWarning(m, 'KanaNativeWarning'))
  if (opts.overwrite && opts.resume) throw new RunDirError('EOPTION', `overwrite and resume exclude each other: resume continues the run in ${dir}, overwrite replaces it`)
  let created = false
  try {
    if (!statSync(dir).isDirectory()) throw new RunDirError('ENOTDIR', `${dir} exists and is not a directory; choose another ${opts.kind === 'run' ? 'run' : 'experiment'} directory`)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
    // nothing to resume there: the caller's checkpoint reader says so
    if (opts.resume) return { dir, clear: async () => {}, release: () => {} }
    await mkdir(dir, { recursive: true })
    created = true
  }
  const lockPath = join(dir, LOCK_FILE)
  const mine: LockInfo = { pid: process.pid, hostname: hostname(), startedAt: new Date().toISOString(), command: opts.command, kind: opts.kind, token: randomBytes(8).toString('hex') }
  const locked = (how: string) =>
    new RunDirError('ELOCKED', `${dir} is in use by another kana-native process: ${how}. Wait for it to finish, or choose another directory`)
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx') // O_CREAT | O_EXCL
      try {
        writeSync(fd, JSON.stringify(mine) + '\n')
      } finally {
        closeSync(fd)
      }
      break
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
    }
    if (attempt >= 3) throw locked(`its lock ${lockPath} keeps reappearing`)
    const held = readLock(lockPath)
    if (held === 'absent') continue // released meanwhile
    if (held === 'unreadable') {
      // A holder writes its lock right after creating it: an unreadable lock older than that is debris.
      let age = 0
      try { age = Date.now() - statSync(lockPath).mtimeMs } catch { continue }
      if (age < 5000) throw locked(`its lock ${lockPath} is being written`)
      warn(`${dir}: taking over the unreadable lock file ${lockPath} (left by a process that was killed)`)
    } else if (held.hostname !== hostname()) {
      throw locked(`${describeHolder(held)}. That host's processes cannot be checked from here (${hostname()}); if it no longer runs there, delete ${lockPath}`)
    } else if (held.pid === process.pid ? claimedHere.has(dir) : pidAlive(held.pid)) {
      throw locked(`${describeHolder(held)}${held.pid === process.pid ? ' (this process)' : ''}`)
    } else {
      warn(`${dir}: taking over the stale lock of ${describeHolder(held)}: that process no longer runs`)
    }
    // Move the stale lock aside, then make sure it is the one judged stale (not a fresh one that
    // replaced it meanwhile): only then is it removed.
    const aside = `${lockPath}.stale-${mine.token}`
    try { renameSync(lockPath, aside) } catch { continue }
    const moved = readLock(aside)
    const same = held === 'unreadable' ? moved === 'unreadable' : typeof moved === 'object' && moved.token === held.token && moved.pid === held.pid
    if (!same) {
      try { linkSync(aside, lockPath) } catch {} // put back a live lock taken by mistake
      rmSync(aside, { force: true })
      continue
    }
    rmSync(aside, { force: true })
  }
  claimedHere.add(dir)

  let released = false
  const release = () => {
    if (released) return
    released = true
    claimedHere.delete(dir)
    process.off('exit', release)
    for (const s of SIGNALS) process.off(s, onSignal)
    const held = readLock(lockPath)
    if (typeof held === 'object' && held.token === mine.token) rmSync(lockPath, { force: true })
    // a directory this claim created and nothing was written to is not left behind
    if (created) {
      try { rmdirSync(dir) } catch {}
    }
  }
  // A signal nobody else handles kills the process (Node's default): release first, then let it.
  // Prepended, so that a handler registered once (the CLI's first Ctrl-C) still counts at this point.
  const onSignal = (signal: NodeJS.Signals) => {
    if (process.listenerCount(signal) > 1) return // someone else handles it (and the run ends through its finally)
    release()
    process.kill(process.pid, signal)
  }
  process.on('exit', release)
  for (const s of SIGNALS) process.prependListener(s, onSignal)

  try {
    checkOwnedFolders(dir, opts.kind)
    await checkContents(dir, opts)
  } catch (e) {
    release()
    throw e
  }
  let cleared = false
  return {
    dir,
    release,
    async clear() {
      if (cleared || !opts.overwrite) return
      cleared = true
      await removeOwnFiles(dir, opts.kind)
    },
  }
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM']

/**
 * The folders kana-native makes inside a run or experiment directory must be real ones: a symbolic
 * link (checkpoint/ → elsewhere, models/ → elsewhere) would make this run write, overwrite and
 * clean up files outside the directory. Checked without following links, whatever the options.
 */
function checkOwnedFolders(dir: string, kind: RunDirKind): void {
  const subs = kind === 'run' ? [CHECKPOINT_DIR] : [CHECKPOINT_DIR, ...Object.keys(EXPERIMENT_FILES).filter((s) => s !== '.')]
  for (const sub of subs) {
    let st
    try { st = lstatSync(join(dir, sub)) } catch { continue } // absent (or its parent is): made when needed
    try {
      checkOwnedDir(join(dir, sub), st)
    } catch (e) {
      throw new RunDirError((e as NodeJS.ErrnoException).code ?? 'ENOTDIR', `cannot use ${dir}: ${(e as Error).message}`)
    }
  }
}

const existing = (dir: string, names: string[]) => names.filter((n) => existsSync(join(dir, n)))

async function checkContents(dir: string, opts: ClaimOptions): Promise<void> {
  if (opts.resume || opts.overwrite) return
  const flag = opts.kind === 'run' ? '`--overwrite` (train({ overwrite: true }))' : '`--overwrite` (runExperiment({ overwrite: true }))'
  const finished = existing(dir, FINISHED[opts.kind])
  if (finished.length > 0) {
    throw new RunDirError('EFINISHED', `${dir} holds a finished ${opts.kind} (${finished.join(', ')}); choose another directory, or pass ${flag} to replace it`)
  }
  if (existsSync(join(dir, CHECKPOINT_DIR, CHECKPOINT_INDEXES[opts.kind]))) return // the caller points to --resume
  const own = opts.kind === 'run' ? existing(dir, RUN_FILES) : Object.entries(EXPERIMENT_FILES).flatMap(([sub, names]) => existing(join(dir, sub), names).map((n) => join(sub, n)))
  if (own.length > 0) {
    throw new RunDirError('EEXIST', `${dir} holds the files of an earlier ${opts.kind} that did not finish and left no checkpoint (${own.slice(0, 4).join(', ')}${own.length > 4 ? ', …' : ''}); a new ${opts.kind} would mix with them. Choose another directory, or pass ${flag} to replace them`)
  }
}

/** Removes the files kana-native writes there, and the folders it made if they are then empty. */
async function removeOwnFiles(dir: string, kind: RunDirKind): Promise<void> {
  await removeCheckpoint(dir, CHECKPOINT_INDEXES[kind])
  const groups: [string, string[]][] = kind === 'run' ? [['.', RUN_FILES]] : Object.entries(EXPERIMENT_FILES)
  // deepest folders first, so that models/ is empty once models/M0 … are gone
  groups.sort((a, b) => b[0].split(sep).length - a[0].split(sep).length)
  for (const [sub, names] of groups) {
    for (const n of names) await rm(join(dir, sub, n), { force: true })
    if (sub !== '.') await rmdir(join(dir, sub)).catch(() => {})
  }
}

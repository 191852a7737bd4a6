// The study in one command: M0–M5 on the user's data, a hyper-parameter search, an architecture
// search, the engine checked against the pure-TypeScript reference, one comparison table.
//
//   M0  [784,100,80,K], full-batch gradient descent, lr 0.1, 500 epochs, no regularisation
//   M1  the best configuration of the hyper-parameter search (search.ts), by validation loss
//   M2  M1's configuration trained by the reference implementation (reference-trial.ts) from the
//       same initial weights (a fresh engine model's getWeights() with M1's seed), the same split
//       and the same mini-batches, for the longest prefix of epochs that fits a time budget
//   M3  the best architecture of a depth × width grid, M1's other settings
//   M4  a deliberately huge network without regularisation, to show overfitting
//   M5  the modern recipe (training/presets.ts `modern`: augmentation, dropout, label smoothing,
//       AdamW, one-cycle) or a variant of it: the best of a short list of candidates by validation
//       loss (config.ts DEFAULT_M5_CANDIDATES)
//
// Every model trains through trial.ts: mini-batch order generated in TypeScript from the seed, so
// the whole experiment is reproducible from the seed and the resolved configuration (written to
// experiment-config.json, which `--config` reads back), and the engine and the reference see the
// same batches. Selection (M1, M3, M5) looks at validation loss only. The test split is evaluated in
// one place, after every selection: once per model (plus once for the engine's copy of M2's
// prefix, for the agreement check), then once more per model under input noise (robustness.ts);
// experiment.json lists every test evaluation.
//
// Order of work, for a 2-core machine: M0 and the search use both cores; then the reference (M2)
// runs on a worker thread while the architecture search and M4 use the other core; then M5's
// candidates on both cores (after the reference, so that M2's budget is what it was); then the
// test evaluations, the noise table, the files and the report.
//
// This file is the outline (runExperiment, phases); each step is a file of its own:
//   study.ts       the study under way: its options and state; openStudy (settings, directory, data)
//   models.ts      the engine's models: M0, the search (M1), M3, M4, M5
//   m2.ts          M2 on a worker, its re-synchronised epochs, the engine's runs it is compared with
//   evaluation.ts  the test split, once per model, and the noise table
//   agreement.ts   engine against reference: the verdict and M2's notes
//   files.ts       the experiment directory's files (comparison.ts the table, records.ts the types)
import { join, resolve } from 'node:path'
import { claimRunDir, type RunDirClaim } from '../training/run-dir'
import { parseQueueUrl, redactSecrets } from '../queue/connection'
import { resolveExperiment, type ResolvedExperiment } from './config'
import { m1Of, openStudy, type ExperimentOptions, type Study } from './study'
import { architectureM3, searchM1, trainM0, trainM4, trainM5 } from './models'
import { agreementCopies, resyncReference, startReference, waitForReference } from './m2'
import { testSplitOnce } from './evaluation'
import { writeStudy } from './files'
import type { ExperimentInterruption, ExperimentResult } from './records'

export { MODEL_IDS, resolveExperiment, readExperimentConfig, configForFile, DEFAULT_M0, DEFAULT_M4, DEFAULT_M5_CANDIDATES, DEFAULT_NOISE, DEFAULT_REFERENCE_BUDGET, DEFAULT_SEARCH_CONCURRENCY } from './config'
export type { ModelId, SearchConfig, ArchitectureConfig, M5Config, NoiseLevels, ExperimentConfig, ResolvedExperiment } from './config'
export type { NoiseSummary } from './robustness'
export { comparisonMarkdown, comparisonCsv, studyMarkdown } from './comparison'
export type { ExperimentOptions } from './study'
export type { ModelResult, TableRow, Agreement, ExperimentInterruption, ExperimentResult, SearchSummary } from './records'

/**
 * Runs the study. Writes everything under `out` and returns the table and the details. Its phases,
 * in order: open (configuration, directory, data), M0, the search (M1), the reference (M2) on a
 * worker beside the architecture search (M3) and M4, the engine's copies for the agreement check,
 * M5's candidates, then — selection over — the test split once per model, and the files.
 */
export async function runExperiment(opts: ExperimentOptions = {}): Promise<ExperimentResult> {
  // settings first (a resumed experiment's come from its checkpoint), then the directory's lock
  const resolved = opts.resume === undefined ? resolveExperiment(opts) : undefined
  if (opts.queue !== undefined) {
    parseQueueUrl(opts.queue)
    if (opts.inMemory) throw new RangeError('a job queue needs data the workers can load: images and labels files (or a named data set), not arrays in memory (inMemory)')
  }
  // a queue's password must not reach the lock file, experiment.json or the report
  if (opts.command) opts = { ...opts, command: opts.command.map(redactSecrets) }
  const dir = resolve(opts.resume ?? opts.out ?? join('runs', `experiment-${stamp()}`))
  const claim = await claimRunDir(dir, { kind: 'experiment', overwrite: opts.overwrite, resume: opts.resume !== undefined, command: opts.command, onWarning: opts.log && ((m) => opts.log!(`warning: ${m}`)) })
  try {
    return await studyIn(opts, dir, claim, resolved)
  } finally {
    claim.release()
  }
}

async function studyIn(opts: ExperimentOptions, dir: string, claim: RunDirClaim, resolved?: ResolvedExperiment): Promise<ExperimentResult> {
  const x = await openStudy(opts, dir, claim, resolved)
  try {
    return await phases(x)
  } finally {
    await x.queue?.close()
  }
}

async function phases(x: Study): Promise<ExperimentResult> {
  try {
    if (x.wants('M0')) await trainM0(x)
    if (x.wants('M1') || x.wants('M2') || x.wants('M3')) await searchM1(x)
    x.clock.begin('parallel')
    startReference(x)
    if (x.wants('M3') && m1Of(x)) await architectureM3(x)
    if (x.wants('M4')) await trainM4(x)
    await resyncReference(x)
    await waitForReference(x)
    x.clock.end('parallel')
    await agreementCopies(x)
    if (x.wants('M5')) await trainM5(x)
  } catch (e) {
    await interrupted(x, e)
  }
  const { results, agreement, noise } = await testSplitOnce(x)
  return writeStudy(x, results, agreement, noise)
}

/**
 * An error out of the phases. Interrupted: every engine model is at rest between two mini-batches
 * (each trial awaited its batch, the search's pool waited for all of them); stop the reference the
 * same way, write one checkpoint of everything, and rethrow with where it is. Anything else: end
 * the workers and rethrow.
 */
async function interrupted(x: Study, e: unknown): Promise<never> {
  await x.resync?.terminate() // the epoch under way is recomputed on resume
  if ((e as Error)?.name !== 'AbortError') {
    await x.reference?.terminate()
    throw e
  }
  const info: ExperimentInterruption = { dir: x.dir }
  try {
    if (x.reference) {
      const r = await x.reference.interrupt()
      x.store.reference = r.outcome ? { outcome: { ...r.outcome, onWorker: x.reference.onWorker } } : { state: r.state }
    }
    info.checkpoint = await x.store.write(x.dir, x.checkpointHeader('interrupted'))
    x.log(`interrupted: checkpoint written to ${info.checkpoint}`)
  } catch (err) {
    info.error = err as Error
  }
  throw Object.assign(e as Error, { checkpoint: info })
}

/** The default directory's timestamp: 2026-01-31T12-00-00. */
function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)
}

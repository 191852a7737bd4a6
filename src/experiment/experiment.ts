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
// runs on a worker thread while the architecture search and M4 use the other core; then the test
// M5's candidates on both cores (after the reference, so that M2's budget is what it was); then
// the test evaluations, the noise table, the files and the report.
import { join, resolve } from 'node:path'
import { MLP } from '../engine/mlp'
import { type Inputs } from '../data/inputs'
import { claimRunDir, type RunDirClaim } from '../training/run-dir'
import { makeOutputDir, writeFileAtomic } from '../output/atomic'
import { historyCsv } from '../training/history'
import { saveModel, type ModelMeta } from '../output/model-file'
import { classDistribution, comparisonCurves, confusionHeatmap, lossCurves, sampleGrid, writeRendered, type HistoryRow } from '../output/plots'
import { type ModelConfig } from '../training/trial'
import { modelOptions, modelParams, setModelParams } from '../training/sources'
import {
  trialsCsv, trialsMarkdown,
  type SearchResult, type TrialLog } from './search'

import { removeExperimentCheckpoint } from './checkpoint'
import { agreementChart, lrEffectChart } from './plots'
import { robustness, writeRobustness, type NoiseSummary } from './robustness'
import { parseQueueUrl, redactSecrets } from '../queue/connection'
import { machineFacts } from '../engine/machine'
import { writeReport } from '../output/report'
import type { SplitMetrics } from '../training/records'
import {
  configForFile, resolveExperiment, MODEL_IDS,
  type ModelId, type NoiseLevels, type ResolvedExperiment } from './config'

import { agreementCopies, resyncReference, startReference, waitForReference } from './m2'
import { agreementOf, referenceNote } from './agreement'
import { architectureM3, searchM1, trainM0, trainM4, trainM5 } from './models'
import { comparisonCsv, comparisonMarkdown, comparisonTable, studyMarkdown } from './comparison'
import { m1Of, metricsOf, openStudy, type ExperimentOptions, type Study } from './study'
import { paramCount, pct, techniques } from './describe'
import { json, type Agreement, type ExperimentInterruption, type ExperimentResult, type ModelResult, type SearchSummary } from './records'

export { MODEL_IDS, resolveExperiment, readExperimentConfig, configForFile, DEFAULT_M0, DEFAULT_M4, DEFAULT_M5_CANDIDATES, DEFAULT_NOISE, DEFAULT_REFERENCE_BUDGET, DEFAULT_SEARCH_CONCURRENCY } from './config'
export type { ModelId, SearchConfig, ArchitectureConfig, M5Config, NoiseLevels, ExperimentConfig, ResolvedExperiment } from './config'
export type { NoiseSummary } from './robustness'
export { comparisonMarkdown, comparisonCsv, studyMarkdown } from './comparison'
export type { ExperimentOptions } from './study'
export type { ModelResult, TableRow, Agreement, ExperimentInterruption, ExperimentResult, SearchSummary } from './records'

// ---------------------------------------------------------------------------------------------

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)
}

/**
 * Runs the study. Writes everything under `out` and returns the table and the details. Its phases,
 * in order: open (configuration, directory, data), M0, the search (M1), the reference (M2) on a
 * worker beside the architecture search (M3) and M4, the engine's copies for the agreement check,
 * then — selection over — the test split once per model, and the files.
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

/** Selection is over: the test split, once per model (and for the agreement check's copies), then under input noise. */
async function testSplitOnce(x: Study): Promise<{ results: ModelResult[]; agreement?: Agreement; noise?: NoiseSummary }> {
  const { inputs, testSplit, refOut, reference, prefix, twins, cfg } = x
  const K = inputs.classes
  const m1 = m1Of(x)
  const results: ModelResult[] = []
  let agreement: Agreement | undefined
  // from here on the reference's worker may be waiting for the test split: end it whatever happens
  try {
    x.clock.begin('test')
    testSplit.unlock()
    const modelDir = (id: ModelId) => join(x.dir, 'models', id)
    for (const id of MODEL_IDS) {
      const f = x.finished.get(id)
      if (id === 'M2' || !f || !x.wants(id)) continue
      const t = f.trial!
      results.push({
        ...f.result,
        notes: f.result.notes ?? '',
        dir: modelDir(id),
        metrics: {
          train: metricsOf(await t.model.evaluate(x.data.trainSet), K, inputs.train.labels.length),
          validation: metricsOf(await t.model.evaluate(x.data.validationSet), K, inputs.validation.labels.length),
          test: await testSplit.evaluate(id, t.model, K),
        },
      })
    }
    if (refOut && reference && m1 && prefix) {
      testSplit.record('M2')
      const refTest = await reference.test(inputs.test)
      const prefixTest = await testSplit.evaluate(`M1 engine at M2's epoch ${refOut.weightsEpoch} (agreement check)`, prefix.trial.model, K)
      const twinTests: SplitMetrics[] = []
      for (const [k, tw] of twins.entries()) twinTests.push(await testSplit.evaluate(`M1 engine with rounding-size jitter ${k + 1} at M2's epoch (sensitivity)`, tw.trial.model, K))
      agreement = agreementOf(refOut, refTest, prefix, prefixTest, twins, twinTests, x.store.resync, m1, cfg.reference.budgetSeconds, reference.onWorker)
      const note = referenceNote(agreement, refOut, m1, cfg.reference.budgetSeconds)
      results.push({
        id: 'M2', engine: 'reference', config: m1.config, layers: m1.layers, parameters: paramCount(m1.layers), history: refOut.history,
        bestEpoch: refOut.bestEpoch, weightsEpoch: refOut.weightsEpoch, stoppedBy: refOut.stoppedBy, seconds: refOut.seconds,
        techniques: techniques(m1.config), notes: note, dir: modelDir('M2'),
        metrics: {
          validation: metricsOf(refOut.validation, K, inputs.validation.labels.length),
          test: metricsOf(refTest, K, inputs.test.labels.length),
        },
      })
      results.sort((a, b) => MODEL_IDS.indexOf(a.id) - MODEL_IDS.indexOf(b.id))
      x.log(`M2: ${note}`)
    }
  } finally {
    await reference?.terminate()
  }
  x.clock.end('test')
  const noise = cfg.noise && results.length > 0 ? await noiseTable(x, results) : undefined
  return { results, agreement, noise }
}

/**
 * Every model on the test split under input noise, seeded with the study's seed. M2's weights are
 * evaluated by the engine (its reference worker has ended): its clean row can differ from the
 * reference's own evaluation by float32 rounding.
 */
async function noiseTable(x: Study, results: ModelResult[]): Promise<NoiseSummary> {
  const { cfg, inputs, testSplit } = x
  x.clock.begin('noise')
  const nets: { model: string; net: MLP; note?: string }[] = []
  let m2: MLP | undefined
  try {
    for (const r of results) {
      if (r.id === 'M2') {
        m2 = new MLP({ layers: r.layers, seed: r.config.seed, threads: cfg.threads, ...modelOptions(r.config) })
        setModelParams(m2, x.refOut!.weights)
        nets.push({ model: r.id, net: m2, note: 'the reference\'s weights, evaluated by the engine' })
      } else nets.push({ model: r.id, net: x.finished.get(r.id)!.trial!.model })
      testSplit.record(`${r.id} under input noise`)
    }
    const kinds = Object.keys(cfg.noise as object).join(', ')
    x.log(`noise: every model on the test split under ${kinds} noise (seed ${cfg.seed})`)
    return await robustness(nets, inputs.test.images, inputs.test.labels, cfg.noise as NoiseLevels, cfg.seed)
  } finally {
    m2?.free()
    x.clock.end('noise')
  }
}

/** The table, every model's directory, the pictures, the searches, the agreement, experiment.json and the report. */
async function writeStudy(x: Study, results: ModelResult[], agreement: Agreement | undefined, noise: NoiseSummary | undefined): Promise<ExperimentResult> {
  const { dir, cfg, inputs, refOut, clock } = x
  clock.begin('files')
  const table = comparisonTable(results)
  for (const r of results) await writeModelDir(r, inputs, r.id === 'M2' ? refOut!.weights : modelParams(x.finished.get(r.id)!.trial!.model), cfg)
  await writeFileAtomic(join(dir, 'comparison.md'), comparisonMarkdown(table))
  await writeFileAtomic(join(dir, 'comparison.csv'), comparisonCsv(table))
  await writeFileAtomic(join(dir, 'comparison.json'), json(table))
  if (noise) await writeRobustness(dir, noise)
  await writeFileAtomic(join(dir, 'study.md'), studyMarkdown(table, noise))
  await writeDataPictures(dir, inputs)
  if (results.length > 0) {
    const runs = results.map((r) => ({ name: r.id, history: r.history as HistoryRow[] }))
    await writeRendered(join(dir, 'curves'), await comparisonCurves(runs, { title: 'Validation loss of every model', metric: 'valLoss' }))
    await writeRendered(join(dir, 'curves-accuracy'), await comparisonCurves(runs, { title: 'Validation accuracy of every model', metric: 'valAccuracy' }))
    const longest = Math.max(...results.map((r) => r.history.length))
    const others = results.filter((r) => r.history.length < longest)
    if (others.length > 0 && others.length < results.length) {
      const cut = Math.max(...others.map((r) => r.history.length))
      const zoom = results.map((r) => ({ name: r.id, history: r.history.slice(0, cut) as HistoryRow[] }))
      await writeRendered(join(dir, 'curves-zoom'), await comparisonCurves(zoom, { title: `Validation loss, first ${cut} epochs`, metric: 'valLoss' }))
    }
  }
  const searchSummary = x.search ? await writeSearch(join(dir, 'search'), x.search, 'Search: validation loss against learning rate') : undefined
  const archSummary = x.arch ? await writeSearch(join(dir, 'architecture'), x.arch) : undefined
  const m5Summary = x.m5 ? await writeSearch(join(dir, 'M5-candidates'), x.m5) : undefined
  if (agreement && refOut) {
    await writeFileAtomic(join(dir, 'agreement.json'), json(agreement))
    await writeRendered(join(dir, 'agreement'), await agreementChart(x.prefix!.trial.history, refOut.history, x.twins.map((tw) => tw.trial.history), { resync: x.store.resync }))
  }
  clock.end('files')
  const priorSeconds = x.loaded?.seconds ?? 0
  const interruptions = x.loaded?.interruptions ?? 0
  const seconds = priorSeconds + (performance.now() - clock.started) / 1000
  clock.timings.total = (performance.now() - clock.started) / 1000
  const result: ExperimentResult = { dir, config: cfg, models: results, table, search: searchSummary, architecture: archSummary, m5: m5Summary, agreement, noise, seconds, timings: clock.timings }
  await writeFileAtomic(join(dir, 'experiment.json'), json({
    kind: 'kana-native-experiment',
    version: 1,
    createdAt: new Date().toISOString(),
    command: x.opts.command,
    config: configForFile(cfg),
    data: dataSummary(inputs),
    machine: { ...x.machineAtStart, loadAverageAtEnd: machineFacts().loadAverage },
    timings: clock.timings,
    seconds,
    ...(x.loaded ? { resumed: { interruptions, secondsBefore: priorSeconds, note: 'finished after being interrupted and resumed from a checkpoint; timings are of the last session, seconds of all' } } : {}),
    table,
    models: results.map((r) => ({
      id: r.id, engine: r.engine, dir: `models/${r.id}`, layers: r.layers, parameters: r.parameters, config: r.config, techniques: r.techniques, notes: r.notes,
      epochs: r.history.length, bestEpoch: r.bestEpoch, weightsEpoch: r.weightsEpoch, stoppedBy: r.stoppedBy, seconds: r.seconds,
      test: brief(r.metrics.test), validation: brief(r.metrics.validation), train: r.metrics.train && brief(r.metrics.train),
    })),
    search: searchSummary,
    architecture: archSummary,
    m5: m5Summary,
    agreement,
    noise: noise && { ...noise, files: { csv: 'noise/robustness.csv', json: 'noise/robustness.json', markdown: 'noise/robustness.md', plots: noise.kinds.map((k) => `noise/${k.kind}.svg`) } },
    testEvaluations: x.testSplit.evaluations,
  }))
  // the experiment is complete: its checkpoint has nothing left to resume
  await removeExperimentCheckpoint(dir)
  if (x.opts.report ?? true) {
    result.reportPath = await writeReport(dir)
  }
  return result
}

function brief(m: SplitMetrics) {
  return { accuracy: m.accuracy, loss: m.loss, balancedAccuracy: m.balancedAccuracy, macroF1: m.macroF1, samples: m.samples }
}

export function dataSummary(inputs: Inputs) {
  const counts = new Array<number>(inputs.classes).fill(0)
  const perSplit: Record<string, number[]> = {}
  for (const [name, part] of [['train', inputs.train], ['validation', inputs.validation], ['test', inputs.test]] as const) {
    const c = new Array<number>(inputs.classes).fill(0)
    for (const y of part.labels) {
      c[y]++
      counts[y]++
    }
    perSplit[name] = c
  }
  return {
    source: inputs.source,
    features: inputs.features,
    classes: inputs.classes,
    classNames: inputs.classNames,
    samples: { train: inputs.train.labels.length, validation: inputs.validation.labels.length, test: inputs.test.labels.length },
    counts,
    perSplit,
  }
}

// ---------------------------------------------------------------------------------------------
// Files

/** A model file's architecture fields for configuration `c` (the engine's and the reference's models alike). */
function configArchitecture(c: ModelConfig, layers: number[]): Pick<ModelMeta, 'activation' | 'leakySlope' | 'batchNorm' | 'bnEps' | 'dropout'> {
  const hidden = layers.length - 2
  return {
    activation: c.activation,
    leakySlope: c.activation === 'leaky-relu' ? c.leakySlope : undefined,
    batchNorm: c.batchNorm,
    bnEps: c.batchNorm ? c.bnEps : undefined,
    dropout: Array.isArray(c.dropout) ? [...c.dropout] : new Array<number>(hidden).fill(c.dropout),
  }
}

/** `params`: the Run's layout, [W1, b1, …] then, with batch norm, the norm state (sources.ts modelParams). */
async function writeModelDir(r: ModelResult, inputs: Inputs, params: Float32Array[], cfg: ResolvedExperiment): Promise<void> {
  const n = 2 * (r.layers.length - 1)
  await makeOutputDir(r.dir, 2) // models/ and models/<id>: real folders, never links
  await writeFileAtomic(join(r.dir, 'config.json'), json({
    model: r.id, engine: r.engine, ...r.config, layers: r.layers, classNames: inputs.classNames,
    data: { ...inputs.source, features: inputs.features, classes: inputs.classes, samples: { train: inputs.train.labels.length, validation: inputs.validation.labels.length, test: inputs.test.labels.length }, splitSeed: cfg.seed },
    batchOrder: 'training/batches.ts epochOrder(seed, epoch): mini-batches generated in TypeScript',
    node: process.version,
  }))
  await writeFileAtomic(join(r.dir, 'history.csv'), historyCsv(r.history))
  await writeFileAtomic(join(r.dir, 'history.json'), json(r.history))
  await writeFileAtomic(join(r.dir, 'metrics.json'), json({
    stopReason: r.stoppedBy, epochs: r.history.length, bestEpoch: r.bestEpoch, weightsEpoch: r.weightsEpoch, seconds: r.seconds,
    train: r.metrics.train, validation: r.metrics.validation, test: r.metrics.test,
  }))
  await saveModel(join(r.dir, 'model.safetensors'), {
    ...configArchitecture(r.config, r.layers),
    layers: r.layers, classNames: inputs.classNames, inputShape: inputs.features === 784 ? [28, 28] : undefined, seed: r.config.seed,
    training: { ...r.config, engine: r.engine, epochsRun: r.history.length, bestEpoch: r.bestEpoch, stopReason: r.stoppedBy },
    metrics: { validation: brief(r.metrics.validation), test: brief(r.metrics.test) },
  }, params.slice(0, n), params.slice(n))
  if (r.history.length > 0) await writeRendered(join(r.dir, 'curves'), await lossCurves(r.history, { title: `${r.id}: training and validation`, bestEpoch: r.bestEpoch }))
  await writeRendered(join(r.dir, 'confusion'), await confusionHeatmap(r.metrics.test.confusion, inputs.classNames, { title: `${r.id}: test confusion matrix (accuracy ${pct(r.metrics.test.accuracy, 1)})` }))
}

async function writeDataPictures(dir: string, inputs: Inputs): Promise<void> {
  const counts = new Array<number>(inputs.classes).fill(0)
  for (const part of [inputs.train, inputs.validation, inputs.test]) for (const y of part.labels) counts[y]++
  await writeRendered(join(dir, 'class-distribution'), await classDistribution(counts, inputs.classNames, { title: 'Samples per class' }))
  await writeRendered(join(dir, 'samples'), await sampleGrid(inputs.train.images, inputs.features, inputs.train.labels, inputs.classNames, { title: 'Training samples' }))
}

async function writeSearch(dir: string, s: SearchResult, plotTitle?: string): Promise<SearchSummary> {
  await makeOutputDir(dir)
  await writeFileAtomic(join(dir, 'trials.csv'), trialsCsv(s.trials))
  await writeFileAtomic(join(dir, 'trials.json'), json(s.trials))
  await writeFileAtomic(join(dir, 'trials.md'), trialsMarkdown(s.trials))
  let plot: string | undefined
  if (plotTitle && s.trials.some((t) => Number.isFinite(t.valLoss))) {
    await writeRendered(join(dir, 'lr-effect'), await lrEffectChart(s.trials, { title: plotTitle }))
    plot = 'lr-effect.svg'
  }
  const b = s.trials.find((t) => t.selected) as TrialLog
  return {
    name: s.name, mode: s.mode, trials: s.trials.length, bestId: s.bestId, rungs: s.rungs, concurrency: s.concurrency, threads: s.threads,
    seconds: s.seconds, epochsTrained: s.epochsTrained, epochsWithoutHalving: s.epochsWithoutHalving,
    best: { config: b.config, valLoss: b.valLoss, valAccuracy: b.valAccuracy, bestEpoch: b.bestEpoch },
    files: { csv: 'trials.csv', json: 'trials.json', markdown: 'trials.md', plot },
  }
}

// The experiment directory's files, once the test split has been read: every model's directory
// (config, history, metrics, model file, pictures), the comparison table, the noise table, the
// data's pictures, the searches' trials, the agreement, experiment.json, and the report.
import { join } from 'node:path'
import { machineFacts } from '../engine/machine'
import type { Inputs } from '../data/inputs'
import { makeOutputDir, writeFileAtomic } from '../output/atomic'
import { saveModel, type ModelMeta } from '../output/model-file'
import { classDistribution, comparisonCurves, confusionHeatmap, lossCurves, sampleGrid, type HistoryRow } from '../output/plots'
import { writeRendered } from '../output/render'
import { writeReport } from '../output/report'
import type { ModelConfig } from '../training/trial'
import { modelParams } from '../training/sources'
import { historyCsv } from '../training/history'
import type { SplitMetrics } from '../training/records'
import { trialsCsv, trialsMarkdown, type SearchResult, type TrialLog } from './search'
import { removeExperimentCheckpoint } from './checkpoint'
import { agreementChart, lrEffectChart } from './plots'
import { writeRobustness, type NoiseSummary } from './robustness'
import { configForFile, type ResolvedExperiment } from './config'
import { comparisonCsv, comparisonMarkdown, comparisonTable, studyMarkdown } from './comparison'
import { pct } from '../output/format'
import type { Study } from './study'
import { json, type Agreement, type ExperimentResult, type ModelResult, type SearchSummary } from './records'

/** The table, every model's directory, the pictures, the searches, the agreement, experiment.json and the report. */
export async function writeStudy(x: Study, results: ModelResult[], agreement: Agreement | undefined, noise: NoiseSummary | undefined): Promise<ExperimentResult> {
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

// The run directory: everything a training run leaves behind, each file written atomically.
//   config.json       the resolved configuration (seed included) and where the data came from
//   history.csv/.json per-epoch train/validation loss and accuracy, learning rate, seconds
//   metrics.json      final metrics for train, validation and test
//   model.safetensors the weights, with architecture, normalisation, class names, config, metrics
//   curves.png/.svg, confusion.png/.svg (test), class-distribution.png/.svg, samples.png/.svg
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../output/atomic'
import { writeHistory } from './history'
import { saveModel } from '../output/model-file'
import { classDistribution, confusionHeatmap, lossCurves, sampleGrid, writeRendered } from '../output/plots'
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

/** The final files of a finished (or diverged) run. */
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
  await saveModel(join(dir, MODEL_FILE), {
    layers: config.layers,
    classNames: inputs.classNames,
    inputShape: inputs.features === 784 ? [28, 28] : undefined,
    seed: config.seed,
    training: { ...config, epochsRun: history.length, bestEpoch: result.bestEpoch, stopReason: result.stopReason },
    metrics: { train: briefMetrics(metrics.train), validation: briefMetrics(metrics.validation), test: briefMetrics(metrics.test) },
  }, model.getWeights())
  await writePictures(dir, result)
}

async function writePictures(dir: string, { inputs, history, metrics, bestEpoch }: TrainResult): Promise<void> {
  if (history.length > 0) await writeRendered(join(dir, 'curves'), await lossCurves(history, { title: 'Training and validation', bestEpoch }))
  await writeRendered(join(dir, 'confusion'), await confusionHeatmap(metrics.test.confusion, inputs.classNames, { title: `Test confusion matrix (accuracy ${(metrics.test.accuracy * 100).toFixed(1)}%)` }))
  const counts = new Array<number>(inputs.classes).fill(0)
  for (const part of [inputs.train, inputs.validation, inputs.test]) for (const y of part.labels) counts[y]++
  await writeRendered(join(dir, 'class-distribution'), await classDistribution(counts, inputs.classNames, { title: 'Samples per class' }))
  await writeRendered(join(dir, 'samples'), await sampleGrid(inputs.train.images, inputs.features, inputs.train.labels, inputs.classNames, { title: 'Training samples' }))
}

// `kana-native` on the command line: train, evaluate, predict, inspect.
// Exit codes: 0 ok, 1 failure (bad data, diverged run, …), 2 usage error, 130 interrupted.
import yargs, { type Argv } from 'yargs'
import { hideBin } from 'yargs/helpers'
import { SingleBar } from 'cli-progress'
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { train, type EpochRecord, type TrainAbortError, type TrainOptions } from '../training/train'
import { loadInputs } from '../data/inputs'
import { loadImages, loadLabels, DataError } from '../data/readers'
import { datasetOf, openImages } from '../data/dataset-file'
import { loadClassmap } from '../data/classmap'
import { loadTrainedModel } from '../output/saved-model'
import { loadEnsemble, type Ensemble } from '../output/ensemble'
import { evaluateNoise, noiseTable, parseNoiseSpec, writeNoise } from '../output/noise'
import { probabilitiesCsv } from '../output/csv'
import { writeFileAtomic } from '../output/atomic'
import { summarize } from '../output/metrics'
import { pct } from '../output/format'
import { classDistribution, confusionHeatmap, sampleGrid } from '../output/plots'
import { writeRendered } from '../output/render'
import { terminalProgress, type DatasetName } from '../data/datasets'
import { experimentCommand, experimentOptions, reportCommand, reportOptions } from './experiment'
import { workerCommand, workerOptions } from './worker'
import { defined, explicitOptions, interruptSignals, modelSettingsFrom, modelOptions, shellWord } from './args'
import { readTrainConfig, type TrainFile } from '../training/config'
import { PRESETS, PRESET_NAMES, type PresetName } from '../training/presets'
import { redactSecrets } from '../queue/connection'

type Out = { json: boolean; quiet: boolean; plain: boolean }

const fmt = (x: number, d = 4) => (Number.isFinite(x) ? x.toFixed(d) : String(x))

function parseList(s: string | number | undefined, name: string, parse: (x: string) => number): number[] | undefined {
  if (s === undefined) return undefined
  const parts = String(s).split(',').map((x) => x.trim()).filter(Boolean)
  const nums = parts.map(parse)
  if (nums.some((n) => !Number.isFinite(n))) throw new UsageError(`--${name} must be a comma-separated list of numbers, got "${s}"`)
  return nums
}

class UsageError extends Error {}

/** Console output that keeps out of the way of a progress bar and of --json. */
function log(out: Out, line: string) {
  if (!out.quiet && !out.json) process.stderr.write(line + '\n')
}

const dataOptions = (y: Argv) =>
  y
    .option('images', { type: 'string', describe: 'Images: .npy (N×784 or N×28×28, uint8 or float 0..255), .npz (arr_0) or IDX [default: ./X_images.npy]' })
    .option('labels', { type: 'string', describe: 'Labels: .npy/.npz/IDX of integer class indices [default: ./y_images.npy]' })
    .option('dataset', { choices: ['k49', 'kmnist', 'fashion-mnist'] as const, describe: 'A named data set instead of files (downloaded once into the cache)' })
    .option('cache-dir', { type: 'string', describe: 'Cache for named data sets [default: $KANA_NATIVE_CACHE or ~/.cache/kana-native]' })
    .option('classmap', { type: 'string', describe: 'Class names CSV (index,codepoint,char), e.g. k49_classmap.csv' })

const splitOptions = (y: Argv) =>
  y.option('split', { type: 'string', defaultDescription: '0.6,0.2,0.2', describe: 'train,validation,test fractions (stratified)' })

const outputOptions = (y: Argv) =>
  y
    .option('json', { type: 'boolean', default: false, describe: 'Machine-readable output: one JSON object per line on stdout' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only errors' })

function splitOption(s: string | undefined) {
  if (s === undefined) return undefined
  const f = parseList(s, 'split', Number)!
  if (f.length !== 3) throw new UsageError(`--split needs three fractions train,validation,test, got "${s}"`)
  return { train: f[0], validation: f[1], test: f[2] }
}

async function trainCommand(argv: Record<string, any>, out: Out): Promise<number> {
  // --config FILE, then the flags typed over it (an absent flag is undefined: there are no yargs
  // defaults, the schema's defaults apply in train())
  let file: TrainFile = {}
  if (argv.config !== undefined) {
    try {
      file = await readTrainConfig(resolve(argv.config))
    } catch (e) {
      throw new UsageError((e as Error).message)
    }
  }
  const typed = defined({
    images: argv.images, labels: argv.labels, dataset: argv.dataset as DatasetName | undefined, cacheDir: argv.cacheDir, classmap: argv.classmap,
    split: splitOption(argv.split), threads: argv.threads, checkpointEvery: argv.checkpointEvery,
    ...modelSettingsFrom(argv, (m) => new UsageError(m)),
  })
  // --preset: a named recipe under --config and the flags
  if (argv.preset !== undefined && argv.resume !== undefined) throw new UsageError('--preset cannot be used with --resume: a resumed run keeps its recorded settings')
  const preset = argv.preset === undefined ? {} : PRESETS[argv.preset as PresetName]
  file = { ...preset, ...file } as TrainFile
  // data named on the command line replaces the file's data source as a whole
  const fromFile = typed.images !== undefined || typed.labels !== undefined || typed.dataset !== undefined ? { ...file, images: undefined, labels: undefined, dataset: undefined } : file
  const ac = new AbortController()
  const onSignal = () => {
    bar?.stop()
    bar = undefined
    log(out, '\ninterrupt: stopping after the current batch and writing a checkpoint (interrupt again to quit at once, without one)')
    ac.abort()
  }
  for (const sig of interruptSignals()) process.once(sig, onSignal)
  const runDir = resolve(argv.resume ?? argv.out ?? join('runs', new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)))
  const tty = process.stderr.isTTY && !out.plain && !out.quiet && !out.json
  let bar: SingleBar | undefined
  const download = tty ? terminalProgress() : undefined
  const opts: TrainOptions = {
    ...fromFile, ...typed,
    out: runDir, overwrite: argv.overwrite, command: process.argv.slice(1), signal: ac.signal,
    onDownloadProgress: download,
    onWarning: (m) => {
      if (!out.quiet) process.stderr.write(`kana-native: warning: ${m}\n`)
    },
    onResume: (r) => {
      log(out, `resuming ${r.runDir} at epoch ${r.epoch}/${r.epochs} (${r.phase === 'validate' ? 'its training done, validation pending' : `step ${r.step} of ${r.steps}`})`)
    },
    onData: (inputs) => {
      log(out, `data: ${inputs.train.labels.length} train / ${inputs.validation.labels.length} validation / ${inputs.test.labels.length} test samples, ${inputs.classes} classes, ${inputs.features} features`)
    },
    onProgress: tty
      ? (p) => {
          if (!bar) {
            bar = new SingleBar({ format: 'epoch {epoch} |{bar}| {value}/{total} steps | loss {loss} acc {acc} | ETA {eta_formatted}', hideCursor: true, clearOnComplete: true, etaBuffer: 50 })
            bar.start(p.steps, 0, { epoch: p.epoch, loss: '…', acc: '…' })
          }
          bar.update(p.step, { epoch: p.epoch, loss: fmt(p.loss), acc: fmt(p.accuracy) })
        }
      : undefined,
    onEpoch: (r: EpochRecord, s) => {
      const line = `epoch ${r.epoch}/${s.epochs}  loss ${fmt(r.trainLoss)}  acc ${fmt(r.trainAccuracy)}  val_loss ${fmt(r.valLoss)}  val_acc ${fmt(r.valAccuracy)}  lr ${r.lr.toPrecision(3)}  ${r.seconds.toFixed(2)}s${s.bestEpoch === r.epoch ? '  *best' : ''}`
      if (bar) {
        bar.stop()
        bar = undefined
      }
      if (out.json) process.stdout.write(JSON.stringify({ type: 'epoch', ...r, bestEpoch: s.bestEpoch }) + '\n')
      else log(out, line)
    },
  }
  if (argv.resume !== undefined) {
    // checked against the checkpoint: only what was typed or is in --config (there are no yargs defaults)
    opts.resume = runDir
    opts.out = argv.out === undefined ? undefined : resolve(argv.out)
  }
  try {
    const result = await train(opts)
    const { test, validation, train: tr } = result.metrics
    if (out.json) {
      process.stdout.write(JSON.stringify({ type: 'result', runDir, stopReason: result.stopReason, divergence: result.divergence, bestEpoch: result.bestEpoch, seconds: result.seconds, train: brief(tr), validation: brief(validation), test: test && brief(test) }) + '\n')
    } else {
      const why = { completed: 'ran all epochs', 'early-stopping': `early stopping (patience ${result.config.patience})`, diverged: `diverged: ${result.divergence}` }[result.stopReason]
      log(out, `\n${why}; weights of epoch ${result.weightsEpoch} (best validation loss at epoch ${result.bestEpoch}), ${result.seconds.toFixed(1)}s`)
      log(out, table([['', 'accuracy', 'loss', 'balanced acc', 'macro-F1'], ...(['train', 'validation', 'test'] as const).flatMap((k) => { const m = result.metrics[k]; return m ? [[k, pct(m.accuracy), fmt(m.loss), pct(m.balancedAccuracy), pct(m.macroF1)]] : [] })]))
      if (!test) log(out, 'no test metrics: the split\'s test part is empty (metrics.json has "test": null)')
      log(out, `\nrun directory: ${runDir}\n  model.safetensors  metrics.json  history.csv  curves.png  confusion.png  class-distribution.png  samples.png`)
    }
    return result.stopReason === 'diverged' ? 1 : 0
  } catch (e) {
    bar?.stop()
    if ((e as Error).name === 'AbortError') {
      const { checkpoint: ck, checkpointError } = e as TrainAbortError
      if (ck) {
        const resume = `kana-native train --resume ${shellWord(ck.runDir)}`
        const where = ck.phase === 'validate' ? 'its training done, validation pending' : `step ${ck.step} of ${ck.steps}`
        if (out.json) process.stdout.write(JSON.stringify({ type: 'interrupted', runDir: ck.runDir, checkpoint: ck.dir, epoch: ck.epoch, phase: ck.phase, step: ck.step, steps: ck.steps, resume }) + '\n')
        // also with --quiet: without this line the work is as good as lost
        else process.stderr.write(`\ninterrupted in epoch ${ck.epoch}/${ck.epochs} (${where}); checkpoint written to ${ck.dir}\nresume with:\n  ${resume}\n`)
      } else {
        log(out, `\ninterrupted; the history so far is in ${runDir}${checkpointError ? ` (no checkpoint could be written: ${checkpointError.message})` : ''}`)
      }
      return 130
    }
    throw e
  } finally {
    download?.stop()
    for (const sig of interruptSignals()) process.off(sig, onSignal)
  }
}

function brief(m: { accuracy: number; loss: number; balancedAccuracy: number; macroF1: number }) {
  return { accuracy: m.accuracy, loss: m.loss, balancedAccuracy: m.balancedAccuracy, macroF1: m.macroF1 }
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)))
  return rows.map((r) => r.map((x, c) => (c === 0 ? x.padEnd(widths[c]) : x.padStart(widths[c]))).join('  ')).join('\n')
}

/** `--model a.safetensors[,b.safetensors,…]`: one model, or an ensemble averaging the models' probabilities. */
async function loadModels(arg: string, threads: number | undefined): Promise<{ model: Ensemble | Awaited<ReturnType<typeof loadTrainedModel>>['model']; classNames: string[]; ensemble: number }> {
  const paths = String(arg).split(',').map((p) => p.trim()).filter(Boolean).map((p) => resolve(p))
  if (paths.length === 0) throw new UsageError('--model needs a model file')
  if (paths.length === 1) {
    const { model, classNames } = await loadTrainedModel(paths[0], { threads })
    return { model, classNames, ensemble: 1 }
  }
  const e = await loadEnsemble(paths, { threads })
  return { model: e, classNames: e.classNames, ensemble: paths.length }
}

async function predictCommand(argv: Record<string, any>, out: Out): Promise<number> {
  const { model, classNames } = await loadModels(argv.model, argv.threads)
  // header checked first; the pixels then go from the file into native memory (no whole JS copy)
  const img = await openImages(resolve(argv.images))
  const { n, rows, cols } = img
  if (rows * cols !== model.inputs) {
    throw new DataError('ESHAPE', `images have ${rows * cols} pixels but the model takes ${model.inputs}`, resolve(argv.images))
  }
  const probs = await model.predictProba(await datasetOf(img, null))
  const columns = argv.columns === 'names' ? classNames : Array.from({ length: model.classes }, (_, k) => `${argv.columnPrefix}${k}`)
  const target = resolve(argv.out)
  await writeFileAtomic(target, probabilitiesCsv(probs, model.classes, { columns, argmax: argv.argmax }))
  if (out.json) process.stdout.write(JSON.stringify({ type: 'predictions', file: target, rows: n, classes: model.classes }) + '\n')
  else log(out, `wrote ${n} rows × ${model.classes} classes of probabilities to ${target}`)
  return 0
}

async function evaluateCommand(argv: Record<string, any>, out: Out): Promise<number> {
  let noise
  try {
    noise = argv.noise === undefined ? undefined : parseNoiseSpec(argv.noise)
  } catch (e) {
    throw new UsageError(`--noise: ${(e as Error).message}`)
  }
  if (argv.seed !== undefined && !(Number.isSafeInteger(argv.seed) && argv.seed >= 0)) throw new UsageError(`--seed must be an integer ≥ 0, got ${argv.seed}`)
  const { model, classNames, ensemble } = await loadModels(argv.model, argv.threads)
  const { images, n, rows, cols } = await loadImages(resolve(argv.images))
  const { labels, n: nl } = await loadLabels(resolve(argv.labels))
  if (n !== nl) throw new DataError('ESHAPE', `holds ${n} images but ${resolve(argv.labels)} holds ${nl} labels`, resolve(argv.images))
  if (rows * cols !== model.inputs) throw new DataError('ESHAPE', `images have ${rows * cols} pixels but the model takes ${model.inputs}`, resolve(argv.images))
  const ev = await model.evaluate(images, labels)
  const m = summarize(ev.confusion, model.classes, ev.loss)
  const robust = noise && (await evaluateNoise(model, images, labels, noise, argv.seed ?? 0))
  const names = argv.classmap ? await loadClassmap(resolve(argv.classmap)) : classNames
  if (argv.out) {
    const dir = resolve(argv.out)
    await mkdir(dir, { recursive: true })
    await writeFileAtomic(join(dir, 'metrics.json'), JSON.stringify({ ...m, samples: n, confusion: [...ev.confusion], classNames: names }, null, 2) + '\n')
    await writeRendered(join(dir, 'confusion'), await confusionHeatmap(ev.confusion, names, { title: `Confusion matrix (accuracy ${pct(m.accuracy)})` }))
    if (robust) await writeNoise(dir, robust)
  }
  if (out.json) {
    process.stdout.write(JSON.stringify({ type: 'evaluation', samples: n, ...(ensemble > 1 ? { models: ensemble } : {}), ...brief({ ...m, loss: ev.loss }) }) + '\n')
    if (robust) process.stdout.write(JSON.stringify({ type: 'noise', ...robust }) + '\n')
  } else {
    if (ensemble > 1) log(out, `ensemble of ${ensemble} models (mean of their probabilities)`)
    log(out, table([['samples', 'accuracy', 'loss', 'balanced acc', 'macro-F1'], [String(n), pct(m.accuracy), fmt(ev.loss), pct(m.balancedAccuracy), pct(m.macroF1)]]))
    log(out, '\n' + table([['class', 'precision', 'recall', 'F1', 'support'], ...m.perClass.map((c, k) => [names[k] ?? String(k), pct(c.precision), pct(c.recall), pct(c.f1), String(c.support)])]))
    if (robust) log(out, `\nunder ${robust.kind} noise (seed ${robust.seed}):\n` + table(noiseTable(robust)))
    if (argv.out) log(out, `\nwrote metrics.json and confusion.png${robust ? ', noise.json, noise.csv and noise.png' : ''} to ${resolve(argv.out)}`)
  }
  return 0
}

async function inspectCommand(argv: Record<string, any>, out: Out): Promise<number> {
  // everything in one part, so counts cover the whole set
  const inputs = await loadInputs({ images: argv.images, labels: argv.labels, dataset: argv.dataset, cacheDir: argv.cacheDir, classmap: argv.classmap, split: { train: 1, validation: 0, test: 0 }, seed: 0 })
  const all = inputs.train
  const counts = new Array<number>(inputs.classes).fill(0)
  for (const y of all.labels) counts[y]++
  const n = all.labels.length
  if (out.json) {
    process.stdout.write(JSON.stringify({ type: 'inspect', samples: n, features: inputs.features, classes: inputs.classes, counts, classNames: inputs.classNames }) + '\n')
  } else {
    log(out, `${n} samples, ${inputs.features} features (${Math.sqrt(inputs.features)}×${Math.sqrt(inputs.features)}), ${inputs.classes} classes; ${Math.min(...counts)}–${Math.max(...counts)} per class`)
    log(out, table([['class', 'name', 'count', 'share'], ...counts.map((c, k) => [String(k), inputs.classNames[k], String(c), pct(c / n)])]))
  }
  if (argv.out) {
    const dir = resolve(argv.out)
    await mkdir(dir, { recursive: true })
    await writeRendered(join(dir, 'class-distribution'), await classDistribution(counts, inputs.classNames, { title: 'Samples per class' }))
    await writeRendered(join(dir, 'samples'), await sampleGrid(all.images, inputs.features, all.labels, inputs.classNames, { title: 'Samples' }))
    log(out, `wrote class-distribution.png and samples.png to ${dir}`)
  }
  return 0
}

export function parser(args: string[]) {
  return yargs(args)
    .scriptName('kana-native')
    .usage('$0 <command> [options]\n\nTrain and use MLP classifiers for 28×28 handwritten characters (Kuzushiji, KMNIST, Fashion-MNIST).')
    .command('train', 'Train a model, evaluate it on train/validation/test, and write a run directory', (y) =>
      modelOptions(outputOptions(splitOptions(dataOptions(y))))
        .option('preset', { choices: PRESET_NAMES, describe: 'A named recipe under --config and the flags: m3 = the study\'s M3 (today\'s defaults); modern = [784,1024,1024,K], dropout 0.3, label smoothing 0.1, AdamW (wd 1e-2), one-cycle to 2e-3, batch 128, 60 epochs, --augment [default: m3]' })
        .option('config', { alias: 'c', type: 'string', describe: 'JSON file of model settings and data options (keys as in the Node API: hidden, lr, batchSize, …, images, labels, split {train, validation, test}, threads); flags given override it; unknown keys are an error' })
        .option('threads', { type: 'number', describe: 'Engine threads [default: all cores]' })
        .option('out', { alias: 'o', type: 'string', describe: 'Run directory [default: runs/<timestamp>]' })
        .option('resume', { type: 'string', describe: 'Continue the interrupted run in this run directory from its checkpoint, with its recorded settings and data' })
        .option('overwrite', { type: 'boolean', default: false, describe: 'Replace the finished run in --out (only the files kana-native writes there are removed)' })
        .option('checkpoint-every', { type: 'number', describe: 'Also write a checkpoint between epochs every this many seconds, for a run killed outright (0: only on Ctrl-C) [default: 60]' })
        .option('plain', { type: 'boolean', default: false, describe: 'One plain line per epoch even on a terminal (no progress bar)' })
        .example('$0 train', 'in a folder with X_images.npy and y_images.npy: train with the study\'s best recipe')
        .example('$0 train --images X.npy --labels y.npy --hidden 100,80 --optimizer gd --lr 0.1 --l2 0 --epochs 500 --no-early-stopping --no-restore-best', 'the study\'s M0')
        .example('$0 train --dataset kmnist --hidden 512 --schedule exponential --lr-min 1e-5 --seed 1 --out runs/m3', 'a named data set, downloaded once')
        .example('$0 train --preset modern --seed 1', 'F2\'s modern recipe (95.5% test accuracy on the 8k KMNIST course files)')
        .example('$0 train --resume runs/m3', 'continue a run interrupted with Ctrl-C (exit code 130), to the result it would have had'),
    )
    .command('predict', 'Write the softmax probabilities of a trained model as CSV', (y) =>
      outputOptions(y)
        .option('model', { alias: 'm', type: 'string', demandOption: true, describe: 'model.safetensors from a run directory; a,b,… for an ensemble (mean of the models\' probabilities)' })
        .option('images', { type: 'string', demandOption: true, describe: 'Images to classify (.npy/.npz/IDX; e.g. X_COMP.npy)' })
        .option('out', { alias: 'o', type: 'string', demandOption: true, describe: 'CSV file to write, e.g. Apellido_Nombre_predicciones.csv' })
        .option('column-prefix', { type: 'string', default: 'Clase_', describe: 'Header is <prefix>0 … <prefix>K-1' })
        .option('columns', { choices: ['index', 'names'] as const, default: 'index' as const, describe: '"names" uses the model\'s class names as the header instead' })
        .option('argmax', { type: 'boolean', default: false, describe: 'Append the most probable class index as a last column' })
        .option('threads', { type: 'number', describe: 'Engine threads [default: all cores]' })
        .example('$0 predict --model runs/m3/model.safetensors --images X_COMP.npy --out Apellido_Nombre_predicciones.csv', ''),
    )
    .command('evaluate', 'Metrics of a trained model on labelled data', (y) =>
      outputOptions(y)
        .option('model', { alias: 'm', type: 'string', demandOption: true, describe: 'model.safetensors; a,b,… for an ensemble (mean of the models\' probabilities)' })
        .option('noise', { type: 'string', describe: 'Also evaluate under input noise, the clean level first: gaussian:σ,… (σ in pixel units, 0..255), salt-pepper:p,… or occlusion:size,… (a size×size black square)' })
        .option('seed', { type: 'number', describe: 'Seed of the noise [default: 0]' })
        .option('images', { type: 'string', demandOption: true, describe: 'Images (.npy/.npz/IDX)' })
        .option('labels', { type: 'string', demandOption: true, describe: 'Labels (.npy/.npz/IDX)' })
        .option('classmap', { type: 'string', describe: 'Class names CSV [default: the names stored in the model]' })
        .option('out', { alias: 'o', type: 'string', describe: 'Directory for metrics.json and confusion.png' })
        .option('threads', { type: 'number', describe: 'Engine threads [default: all cores]' })
        .example('$0 evaluate --model runs/m3/model.safetensors --images X_test.npy --labels y_test.npy --out eval', '')
        .example('$0 evaluate --model a.safetensors,b.safetensors --images X_test.npy --labels y_test.npy --noise gaussian:16,32,64 --out eval', 'an ensemble of two, and its accuracy under Gaussian noise'),
    )
    .command('inspect', 'Describe a data set: counts, class distribution, sample grid', (y) =>
      outputOptions(dataOptions(y)).option('out', { alias: 'o', type: 'string', describe: 'Directory for class-distribution.png and samples.png' })
        .example('$0 inspect --images X_images.npy --labels y_images.npy --classmap k49_classmap.csv --out inspect', ''),
    )
    .command('experiment', 'The study in one command: M0–M5, a hyper-parameter search, the engine checked against the reference, a comparison table and a report', (y) =>
      outputOptions(dataOptions(experimentOptions(y)))
        .example('$0 experiment --seed 1', 'in a folder with X_images.npy and y_images.npy: M0–M5 with the default search, report in runs/experiment-<timestamp>/report.html')
        .example('$0 experiment --config exp.json --out runs/exp1', 'settings from a JSON file (flags override it)')
        .example('$0 experiment --models M0,M1,M2 --trials 6 --reference-budget 120', 'fewer models, a smaller search, a shorter reference run'),
    )
    .command('worker', 'Train trial jobs of `experiment --queue` runs: connect to the queue and take jobs until Ctrl-C', (y) =>
      outputOptions(workerOptions(y))
        .example('$0 worker --queue redis://:PASSWORD@10.0.0.5:6379 --concurrency 2 --threads 1', 'two trials at a time, one engine thread each'),
    )
    .command('report <dir>', 'Write one self-contained HTML report of an experiment or train run directory', (y) =>
      outputOptions(reportOptions(y)).example('$0 report runs/experiment-2026-01-01T10-00-00', '').example('$0 report runs/m3 --out m3.html', 'a single train run'),
    )
    .demandCommand(1, 'name a command: train, predict, evaluate, inspect, experiment, worker or report')
    .recommendCommands()
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail(false)
}

export async function main(args: string[] = hideBin(process.argv)): Promise<number> {
  let argv: Record<string, any>
  try {
    argv = await parser(args).parseAsync()
  } catch (e) {
    process.stderr.write(`kana-native: ${redactSecrets((e as Error).message)}\nRun \`kana-native --help\` for usage.\n`)
    return 2
  }
  if (argv.help || argv.version) return 0
  const out: Out = { json: !!argv.json, quiet: !!argv.quiet, plain: !!argv.plain || !process.stderr.isTTY }
  const command = String(argv._[0])
  try {
    switch (command) {
      case 'train': return await trainCommand(argv, out)
      case 'predict': return await predictCommand(argv, out)
      case 'evaluate': return await evaluateCommand(argv, out)
      case 'inspect': return await inspectCommand(argv, out)
      case 'experiment': return await experimentCommand(argv, out, (m) => new UsageError(m), explicitOptions(args))
      case 'report': return await reportCommand(argv, out)
      case 'worker': return await workerCommand(argv, out, (m) => new UsageError(m))
      default: throw new UsageError(`unknown command ${command}`)
    }
  } catch (e) {
    const err = e as Error
    process.stderr.write(`kana-native: ${redactSecrets(err.message)}\n`)
    if (process.env.KANA_DEBUG) process.stderr.write(`${redactSecrets(String(err.stack))}\n`)
    return err instanceof UsageError ? 2 : 1
  }
}

// The `experiment` and `report` commands of the CLI (registered in cli.ts).
import type { Argv } from 'yargs'
import { dirname, join, resolve } from 'node:path'
import { comparisonMarkdown, readExperimentConfig, resolveExperiment, runExperiment, MODEL_IDS, type ExperimentConfig, type ExperimentInterruption, type ExperimentOptions, type ModelId } from '../experiment/experiment'
import { writeReport } from '../output/report'
import { searchConfigs } from '../experiment/search'
import { defined, fieldFromArgv, fieldOption, interruptSignals, shellWord } from './args'

type Out = { json: boolean; quiet: boolean; plain: boolean }
type Usage = (message: string) => Error

export const experimentOptions = (y: Argv) =>
  y
    .option('config', { alias: 'c', type: 'string', describe: 'JSON configuration (see README); flags given on the command line override it' })
    .option('split', { type: 'string', describe: 'train,validation,test fractions (stratified) [default: 0.6,0.2,0.2]' })
    .option('seed', { type: 'number', describe: 'Seed for the split, every initial weight and every batch order [default: random, recorded]' })
    .option('models', { type: 'string', describe: `Which models, e.g. M0,M1,M2 [default: ${MODEL_IDS.join(',')}]` })
    .option('threads', { type: 'number', describe: 'Engine threads [default: all cores]' })
    .option('search', { choices: ['random', 'grid'] as const, describe: 'Hyper-parameter search for M1 [default: random]' })
    .option('trials', { type: 'number', describe: 'Random search: trials; grid: the most points allowed [default: 12 random]' })
    .option('search-epochs', { type: 'number', describe: 'Maximum epochs of each trial, and of M1 and M3 [default: 30]' })
    .option('halving', { type: 'boolean', describe: 'Successive halving in the searches (--no-halving trains every trial to its end) [default: on]' })
    .option('min-epochs', { type: 'number', describe: 'Successive halving: epochs of the first rung [default: 3]' })
    .option('eta', { type: 'number', describe: 'Successive halving: keep the best 1/η at each rung [default: 3]' })
    .option('concurrency', { type: 'number', describe: 'Search trials trained side by side [default: 2]' })
    .option('trial-threads', { type: 'number', describe: 'Engine threads of each search trial [default: threads / concurrency]' })
    .option('depths', { type: 'string', describe: 'Architecture search (M3): hidden-layer counts [default: 1,2]' })
    .option('widths', { type: 'string', describe: 'Architecture search (M3): layer widths [default: 128,256,512,1024]' })
    // model settings of M0 and M4: typed and parsed as the schema's fields (train's --epochs, --hidden)
    .option('m0-epochs', fieldOption('epochs', 'M0 epochs [default: 500]'))
    .option('m4-hidden', fieldOption('hidden', 'M4 hidden widths [default: 1024,1024]'))
    .option('m4-epochs', fieldOption('epochs', 'M4 epochs [default: 30]'))
    .option('noise', { type: 'boolean', describe: 'Every model on the test split under input noise, the levels of the config file\'s `noise` (--no-noise to skip) [default: on]' })
    .option('reference-budget', { type: 'number', describe: 'Seconds the pure-TypeScript reference (M2) may train [default: 480]' })
    .option('out', { alias: 'o', type: 'string', describe: 'Experiment directory [default: runs/experiment-<timestamp>]' })
    .option('resume', { type: 'string', describe: 'Continue the interrupted experiment in this directory from its checkpoint, with its recorded settings and data' })
    .option('overwrite', { type: 'boolean', describe: 'Replace the finished experiment in --out (only the files kana-native writes there are removed)' })
    .option('report', { type: 'boolean', describe: 'Write report.html at the end (--no-report to skip) [default: on]' })
    .option('plain', { type: 'boolean', default: false, describe: 'Plain progress lines' })
    .option('queue', { type: 'string', describe: 'Train the searches\' trials, M0, M4 and M5\'s candidates as jobs on this queue: redis://[user:password@]host:port[/db] or rediss:// (TLS), served by `kana-native worker`s; the password may come from $KANA_NATIVE_REDIS_PASSWORD instead' })

export const reportOptions = (y: Argv) =>
  y
    .positional('dir', { type: 'string', describe: 'An experiment directory or a train run directory' })
    .option('out', { alias: 'o', type: 'string', describe: 'HTML file to write [default: DIR/report.html]' })

function list(s: unknown, name: string, usage: Usage): number[] | undefined {
  if (s === undefined) return undefined
  const xs = String(s).split(',').map((x) => x.trim()).filter(Boolean).map(Number)
  if (xs.length === 0 || xs.some((x) => !Number.isFinite(x))) throw usage(`--${name} must be a comma-separated list of numbers, got "${s}"`)
  return xs
}


/** The configuration file, with the command line's flags laid over it. */
export async function experimentConfigFrom(argv: Record<string, any>, usage: Usage): Promise<ExperimentConfig> {
  let file: ExperimentConfig = {}
  if (argv.config) {
    const path = resolve(argv.config)
    try {
      file = await readExperimentConfig(path)
    } catch (e) {
      throw usage((e as Error).message)
    }
    // data paths in the file are relative to the file
    if (file.data) {
      const d = { ...file.data }
      for (const k of ['images', 'labels', 'classmap', 'cacheDir'] as const) if (typeof d[k] === 'string') d[k] = resolve(dirname(path), d[k]!)
      file = { ...file, data: d }
    }
  }
  const cliData = defined({ images: argv.images, labels: argv.labels, dataset: argv.dataset })
  const data = Object.keys(cliData).length > 0
    ? { ...cliData, ...defined({ classmap: argv.classmap ?? file.data?.classmap, cacheDir: argv.cacheDir ?? file.data?.cacheDir }) }
    : { ...file.data, ...defined({ classmap: argv.classmap, cacheDir: argv.cacheDir }) }
  let split = file.split
  if (argv.split !== undefined) {
    const f = list(argv.split, 'split', usage)!
    if (f.length !== 3) throw usage(`--split needs three fractions train,validation,test, got "${argv.split}"`)
    split = { train: f[0], validation: f[1], test: f[2] }
  }
  let models = file.models
  if (argv.models !== undefined) {
    models = String(argv.models).split(',').map((m) => m.trim().toUpperCase()).filter(Boolean) as ModelId[]
    const bad = models.filter((m) => !MODEL_IDS.includes(m))
    if (bad.length) throw usage(`--models: unknown ${bad.join(', ')}; choose from ${MODEL_IDS.join(', ')}`)
  }
  const fs = file.search ?? {}
  let halving = fs.halving
  if (argv.halving === false) halving = false
  else if (argv.minEpochs !== undefined || argv.eta !== undefined || argv.halving === true) {
    halving = { ...(fs.halving || {}), ...defined({ minEpochs: argv.minEpochs, eta: argv.eta }) }
  }
  const fa = file.architecture ?? {}
  const m0 = { epochs: fieldFromArgv(argv, 'epochs', 'm0-epochs', usage) as number | undefined }
  const m4 = { hidden: fieldFromArgv(argv, 'hidden', 'm4-hidden', usage) as number[] | undefined, epochs: fieldFromArgv(argv, 'epochs', 'm4-epochs', usage) as number | undefined }
  return {
    ...file,
    ...defined({ seed: argv.seed, threads: argv.threads }),
    split,
    data,
    models,
    M0: { ...file.M0, ...defined(m0) },
    M4: { ...file.M4, ...defined(m4) },
    search: { ...fs, ...defined({ mode: argv.search, trials: argv.trials, epochs: argv.searchEpochs, concurrency: argv.concurrency, threads: argv.trialThreads }), halving },
    architecture: { ...fa, ...defined({ depths: list(argv.depths, 'depths', usage), widths: list(argv.widths, 'widths', usage) }), halving: argv.halving === false ? false : fa.halving },
    reference: { ...file.reference, ...defined({ budgetSeconds: argv.referenceBudget }) },
    ...(argv.noise === false ? { noise: false as const } : {}),
  }
}

/** Options that only say how to show the run, allowed next to --resume. */
const DISPLAY_OPTIONS = new Set(['resume', 'report', 'plain', 'json', 'quiet', 'queue'])

export async function experimentCommand(argv: Record<string, any>, out: Out, usage: Usage, typed: Set<string> = new Set()): Promise<number> {
  let config: ExperimentConfig = {}
  if (argv.resume !== undefined) {
    const extra = [...typed].filter((k) => !DISPLAY_OPTIONS.has(k))
    if (extra.length) throw usage(`--resume continues the experiment with the settings in its checkpoint; drop ${extra.map((k) => `--${k}`).join(', ')}`)
  } else {
    config = await experimentConfigFrom(argv, usage)
    try {
      // every setting checked before minutes of training; the seed drawn now is the one recorded
      const resolved = resolveExperiment(config)
      searchConfigs(resolved.search, resolved.seed)
      config.seed = resolved.seed
    } catch (e) {
      if (e instanceof RangeError) throw usage(e.message)
      throw e
    }
  }
  const ac = new AbortController()
  const onSignal = () => {
    if (!out.quiet && !out.json) process.stderr.write('\ninterrupt: stopping every model after its current batch and writing a checkpoint (interrupt again to quit at once, without one)\n')
    ac.abort()
  }
  for (const sig of interruptSignals()) process.once(sig, onSignal)
  const say = (line: string) => {
    if (out.json) process.stdout.write(JSON.stringify({ type: 'log', message: line }) + '\n')
    else if (!out.quiet) process.stderr.write(line + '\n')
  }
  const dir = resolve(argv.resume ?? argv.out ?? join('runs', `experiment-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}`))
  try {
    const common: ExperimentOptions = { command: process.argv.slice(1), report: argv.report, signal: ac.signal, log: say, ...(argv.queue !== undefined ? { queue: String(argv.queue) } : {}) }
    const r = await runExperiment(argv.resume !== undefined ? { ...common, resume: dir } : { ...config, ...common, out: dir, overwrite: argv.overwrite })
    if (out.json) {
      process.stdout.write(JSON.stringify({ type: 'result', dir: r.dir, report: r.reportPath, seconds: r.seconds, table: r.table, agreement: r.agreement && { epochsCompared: r.agreement.epochsCompared, maxTrainLossRelDiffFirst10: r.agreement.maxTrainLossRelDiffFirst10, testAccuracyDiffPoints: r.agreement.testAccuracyDiffPoints, pass: r.agreement.pass } }) + '\n')
    } else if (!out.quiet) {
      process.stderr.write(`\n${comparisonMarkdown(r.table)}\nexperiment directory: ${r.dir} (${(r.seconds / 60).toFixed(1)} min)\n${r.reportPath ? `report: ${r.reportPath}\n` : ''}`)
    }
    const a = r.agreement
    if (a && a.verdict !== 'agree') {
      const gap = `training loss up to ${(a.maxTrainLossRelDiffFirst10 * 100).toPrecision(3)}% apart over epochs 1–${Math.min(10, a.epochsCompared)}, test accuracy ${a.testAccuracyDiffPoints.toFixed(2)} points`
      if (a.verdict === 'disagree') {
        process.stderr.write(`kana-native: M1 and M2 disagree (${gap}) by more than rounding explains; see ${join(r.dir, 'agreement.json')}\n`)
        return 1
      }
      if (!out.quiet) process.stderr.write(`kana-native: note: run freely from the same initial weights, M1 and M2 are outside the 1% criterion (${gap}); re-run epoch by epoch from the engine's state they agree within ${(a.resync.maxTrainLossRelDiff * 100).toPrecision(2)}%, and the engine drifts as far from twins of itself whose weights are jittered by one float32 rounding per step (${(a.sensitivity.maxTrainLossRelDiffFirst10 * 100).toPrecision(3)}%, ${a.sensitivity.testAccuracyDiffPoints.toFixed(2)} points): this configuration amplifies rounding; see ${join(r.dir, 'agreement.json')}\n`)
    }
    return 0
  } catch (e) {
    if ((e as Error).name === 'AbortError') {
      const ck = (e as Error & { checkpoint?: ExperimentInterruption }).checkpoint
      const resume = `kana-native experiment --resume ${shellWord(dir)}`
      if (out.json) process.stdout.write(JSON.stringify({ type: 'interrupted', dir, checkpoint: ck?.checkpoint, resume: ck?.checkpoint ? resume : undefined, error: ck?.error?.message }) + '\n')
      else if (ck?.checkpoint) process.stderr.write(`\ninterrupted; checkpoint written to ${ck.checkpoint}\nresume with:\n  ${resume}\n`)
      else process.stderr.write(`\ninterrupted; what was written so far is in ${dir}${ck?.error ? ` (no checkpoint could be written: ${ck.error.message})` : ''}\n`)
      return 130
    }
    throw e
  } finally {
    for (const sig of interruptSignals()) process.off(sig, onSignal)
  }
}

export async function reportCommand(argv: Record<string, any>, out: Out): Promise<number> {
  const path = await writeReport(argv.dir, { out: argv.out })
  if (out.json) process.stdout.write(JSON.stringify({ type: 'report', file: path }) + '\n')
  else if (!out.quiet) process.stderr.write(`wrote ${path}\n`)
  return 0
}

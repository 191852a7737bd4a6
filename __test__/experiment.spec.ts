// `runExperiment` / `kana-native experiment` end to end in miniature: 600 images (real KMNIST when
// ../shared/data is present), 2–3 epochs per model, a 2-trial search; the table, the files, the
// M1/M2 agreement, the test-split discipline, reproducibility from the written configuration, and
// the CLI with a --config file.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readExperimentConfig, runExperiment, resolveExperiment, MODEL_IDS, type ExperimentResult } from '../src/experiment/experiment'
import { rungsFor, searchConfigs, DEFAULT_RANDOM_SPACE } from '../src/experiment/search'
import { epochOrder } from '../src/training/batches'
import { decodeModel } from '../src/output/model-file'
import { classmap, hasKmnist, miniConfig, miniData, npy } from './experiment-fixtures'

const root = join(__dirname, '..')
const bin = join(root, 'bin', 'kana-native.js')

test('successive-halving rungs, search configurations and batch orders are what the seed says', (t) => {
  t.deepEqual(rungsFor(30, { minEpochs: 3, eta: 3 }), [3, 9, 27, 30])
  t.deepEqual(rungsFor(30, false), [30])
  t.deepEqual(rungsFor(2, { minEpochs: 3, eta: 3 }), [2])
  const opts = { mode: 'random' as const, trials: 12, epochs: 30, space: DEFAULT_RANDOM_SPACE }
  const a = searchConfigs(opts, 1)
  t.deepEqual(a, searchConfigs(opts, 1), 'same seed, same trials')
  t.notDeepEqual(a.map((c) => c.lr), searchConfigs(opts, 2).map((c) => c.lr))
  for (const c of a) {
    const lrs = DEFAULT_RANDOM_SPACE.lr[c.optimizer]!
    t.true(c.lr >= Math.min(...lrs) * 0.99 && c.lr <= Math.max(...lrs) * 1.01, `lr ${c.lr} in ${c.optimizer}'s range`)
    t.is(c.epochs, 30)
  }
  t.is(searchConfigs({ ...opts, mode: 'grid', trials: 0, space: { ...DEFAULT_RANDOM_SPACE, optimizer: ['adam'], batchSize: [32], hidden: [[64]], l2: [0], schedule: ['constant'], patience: [5] } }, 1).length, 2)
  t.throws(() => searchConfigs({ ...opts, mode: 'grid', trials: 5 }, 1), { message: /grid has \d+ points, more than trials = 5/ })
  const o = epochOrder(3, 0, 100)
  t.deepEqual([...o].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i), 'a permutation')
  t.deepEqual(o, epochOrder(3, 0, 100))
  t.notDeepEqual(o, epochOrder(3, 1, 100))
  t.throws(() => resolveExperiment({ models: ['M9' as never] }), { message: /unknown model "M9"/ })
})

let first: ExperimentResult | undefined

test.serial('a miniature experiment: M0–M4, search, agreement, files, table, test split read once per model', async (t) => {
  const data = await miniData()
  t.log(data.real ? '600 real KMNIST images' : `SYNTHETIC data: ${join(root, '..', 'shared', 'data', 'kmnist')} is absent`)
  const out = mkdtempSync(join(tmpdir(), 'kana-exp-'))
  const lines: string[] = []
  const started = performance.now()
  const r = await runExperiment({ ...miniConfig, data: hasKmnist ? { classmap } : undefined, inMemory: data, out, log: (l) => lines.push(l) })
  first = r
  t.log(`${((performance.now() - started) / 1000).toFixed(1)} s; ${out}`)

  // the table
  t.deepEqual(r.table.map((row) => row.model), MODEL_IDS)
  for (const row of r.table) {
    for (const k of ['testAccuracy', 'balancedAccuracy', 'macroF1'] as const) t.true(row[k] >= 0 && row[k] <= 1, `${row.model} ${k} ${row[k]}`)
    t.true(Number.isFinite(row.testLoss) && row.testLoss > 0)
    t.true(row.techniques.length > 10 && row.notes.length > 10, `${row.model} has techniques and notes`)
    t.true(row.seconds >= 0)
  }
  t.regex(r.table[0].techniques, /^\[784,100,80,10\] full-batch GD lr 0\.1, no L2, 3 epochs, no early stopping/)
  t.regex(r.table[4].techniques, /^\[784,256,256,10\] Adam/)
  t.regex(r.table[2].notes, /pure-TypeScript reference/)
  // M1 holds the search's best configuration, M2 the same configuration
  t.deepEqual(r.models[1].config, r.search!.best.config)
  t.deepEqual(r.models[2].config, r.models[1].config)
  t.deepEqual(r.models[2].layers, r.models[1].layers)

  // the agreement: same batches, same start → the same numbers to float precision
  const a = r.agreement!
  t.true(a.pass.trainLoss && a.pass.testAccuracy, JSON.stringify(a.pass))
  t.is(a.verdict, 'agree')
  t.is(a.sensitivity.trainLossRelDiff.length, 3)
  t.is(a.atEpoch, r.models[2].weightsEpoch)
  t.is(a.epochsCompared, 3)
  t.true(a.maxTrainLossRelDiffFirst10 < 1e-4, `training loss ${a.maxTrainLossRelDiffFirst10}`)
  t.true(a.testAccuracyDiffPoints <= 0.5)
  t.true(a.maxAbsWeightDiff < 1e-3, `max |Δw| ${a.maxAbsWeightDiff}`)
  t.true(a.prefixMatchesM1, 'the engine prefix repeats M1 bit for bit')
  t.true(a.referenceOnWorker)
  // re-synchronised: each epoch from the engine's state, on its own
  t.deepEqual(a.resync.epochs, [1, 2, 3])
  t.true(a.resync.pass && a.resync.maxTrainLossRelDiff < 1e-4, `re-synchronised ${a.resync.maxTrainLossRelDiff}`)
  t.is(a.resync.engineLoss[0], a.engine.trainLoss[0], 'epoch 1 starts from the same state in both comparisons')
  t.true(a.resync.maxAbsWeightDiff.every((d) => d > 0 && d < 1e-3), `weights after each epoch ${a.resync.maxAbsWeightDiff}`)

  // files
  for (const f of ['experiment.json', 'experiment-config.json', 'comparison.md', 'comparison.csv', 'comparison.json', 'curves.svg', 'curves.png', 'curves-accuracy.svg', 'class-distribution.svg', 'samples.svg',
    'search/trials.csv', 'search/trials.json', 'search/trials.md', 'search/lr-effect.svg', 'search/lr-effect.png', 'architecture/trials.csv', 'agreement.json', 'agreement.svg', 'report.html']) {
    t.true(existsSync(join(out, f)), `${f} written`)
  }
  for (const m of MODEL_IDS) {
    for (const f of ['config.json', 'history.csv', 'history.json', 'metrics.json', 'model.safetensors', 'curves.svg', 'confusion.svg', 'confusion.png']) t.true(existsSync(join(out, 'models', m, f)), `models/${m}/${f}`)
  }
  const md = readFileSync(join(out, 'comparison.md'), 'utf8').trim().split('\n')
  t.is(md[0], '| model | test accuracy | test loss | balanced accuracy | macro-F1 | techniques | notes | training s |')
  t.is(md.length, 2 + 5)
  const csv = readFileSync(join(out, 'comparison.csv'), 'utf8').trim().split('\n')
  t.is(csv[0], 'model,testAccuracy,testLoss,balancedAccuracy,macroF1,techniques,notes,seconds')
  t.is(csv.length, 6)
  const trials = readFileSync(join(out, 'search', 'trials.csv'), 'utf8').trim().split('\n')
  t.is(trials[0], 'id,optimizer,lr,batchSize,hidden,l2,schedule,patience,epochs,bestEpoch,valLoss,valAccuracy,stoppedBy,seconds,selected')
  t.is(trials.length, 3)
  const trialsJson = JSON.parse(readFileSync(join(out, 'search', 'trials.json'), 'utf8'))
  t.is(trialsJson.filter((x: { selected: boolean }) => x.selected).length, 1)
  const selected = trialsJson.find((x: { selected: boolean }) => x.selected)
  t.is(selected.valLoss, Math.min(...trialsJson.map((x: { valLoss: number }) => x.valLoss)), 'selected by validation loss')
  // successive halving at 1/2/3 epochs with η 2: one of the two trials was dropped after 1 epoch, unless it stopped by itself
  t.deepEqual(r.search!.rungs, [1, 2, 3])
  t.true(trialsJson.some((x: { stoppedBy: string; epochs: number }) => x.stoppedBy === 'halving@1' && x.epochs === 1))

  // the test split: once per model, after selection
  const exp = JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8'))
  const evals: string[] = exp.testEvaluations.map((e: { model: string }) => e.model)
  t.deepEqual(evals.filter((e) => /^M\d$/.test(e)).sort(), ['M0', 'M1', 'M2', 'M3', 'M4'])
  t.is(evals.length, 8, 'plus, for the agreement check, the engine at M2\'s epoch and its two jittered twins')
  t.is(a.sensitivity.twins, 2)
  t.is(new Set(evals).size, evals.length)
  t.true(lines.findIndex((l) => l.startsWith('M4:')) < lines.length, 'progress was logged')
  t.is(exp.machine.node, process.version)
  t.truthy(exp.machine.cpuFeatures.arch)
  t.true(exp.seconds > 0 && exp.timings.total > 0)
  if (hasKmnist) t.is(exp.data.classNames[0], 'お')
})

test.serial('the M1/M2 agreement holds when the search picks gelu + dropout + batch norm + AdamW + label smoothing + cosine with warm-up', async (t) => {
  const data = await miniData()
  const out = mkdtempSync(join(tmpdir(), 'kana-exp-f1-'))
  const r = await runExperiment({
    ...miniConfig, models: ['M1', 'M2'], data: hasKmnist ? { classmap } : undefined, inMemory: data, out, log: () => {},
    search: {
      mode: 'grid', trials: 1, epochs: 3, halving: false,
      space: {
        optimizer: ['adamw'], lr: { adamw: [1e-3] }, batchSize: [32], hidden: [[32]], l2: [1e-3], schedule: ['cosine'], patience: [10],
        activation: ['gelu'], dropout: [0.2], batchNorm: [true], labelSmoothing: [0.1], weightDecay: [0.01], warmupEpochs: [1],
      },
    },
  })
  const c = r.models.find((m) => m.id === 'M1')!.config
  t.like(c, { optimizer: 'adamw', activation: 'gelu', dropout: 0.2, batchNorm: true, labelSmoothing: 0.1, weightDecay: 0.01, schedule: 'cosine', warmupEpochs: 1 })
  const row = r.table.find((x) => x.model === 'M1')!
  t.regex(row.techniques, /AdamW lr 0\.001, wd 0\.01, cosine schedule to 1e-5, warm-up 1, batch 32, L2 0\.001, gelu, dropout 0\.2, batch norm, label smoothing 0\.1/)
  t.deepEqual(r.models.find((m) => m.id === 'M2')!.config, c)
  const a = r.agreement!
  t.is(a.verdict, 'agree', JSON.stringify({ pass: a.pass, loss: a.maxTrainLossRelDiffFirst10, acc: a.testAccuracyDiffPoints }))
  t.is(a.epochsCompared, 3)
  t.true(a.maxTrainLossRelDiffFirst10 < 1e-4, `training loss ${a.maxTrainLossRelDiffFirst10}`)
  t.true(a.testAccuracyDiffPoints <= 0.5)
  t.true(a.prefixMatchesM1, 'the engine prefix repeats M1 bit for bit')
  t.true(a.resync.pass && a.resync.maxTrainLossRelDiff < 1e-4, `re-synchronised ${a.resync.maxTrainLossRelDiff}`)
  t.is(a.resync.engineLoss[0], a.engine.trainLoss[0], 'epoch 1 starts from the same state in both comparisons')
  // the model files of both: batch norm's state, the architecture
  for (const m of ['M1', 'M2']) {
    const file = decodeModel(readFileSync(join(out, 'models', m, 'model.safetensors')))
    t.is(file.meta.activation, 'gelu', m)
    t.true(file.meta.batchNorm, m)
    t.is(file.norm.length, 4, m)
  }
  t.regex(readFileSync(join(out, 'comparison.md'), 'utf8'), /gelu, dropout 0\.2, batch norm, label smoothing 0\.1/)
  const trials = readFileSync(join(out, 'search', 'trials.csv'), 'utf8').trim().split('\n')
  t.is(trials[0], 'id,optimizer,lr,batchSize,hidden,l2,schedule,patience,epochs,bestEpoch,valLoss,valAccuracy,stoppedBy,seconds,selected,levers')
  t.regex(trials[1], /,gelu; dropout 0\.2; batch norm; label smoothing 0\.1; wd 0\.01; warm-up 1$/)
})

test.serial('the written experiment-config.json reproduces the experiment exactly', async (t) => {
  if (!first) return t.fail('the first experiment did not run')
  const data = await miniData()
  const cfg = await readExperimentConfig(join(first.dir, 'experiment-config.json'))
  t.is(cfg.seed, 7)
  // M0 and M1 (the search) are enough to show it and keep the test short
  const again = await runExperiment({ ...cfg, models: ['M0', 'M1'], inMemory: data, out: mkdtempSync(join(tmpdir(), 'kana-exp-')), report: false })
  t.deepEqual(again.table.map((row) => row.model), ['M0', 'M1'])
  for (const [i, row] of again.table.entries()) {
    const was = first.table[i]
    t.is(row.model, was.model)
    t.is(row.testAccuracy, was.testAccuracy, `${row.model} test accuracy`)
    t.is(row.testLoss, was.testLoss, `${row.model} test loss`)
  }
  t.deepEqual(again.models.map((m) => m.history.map((h) => h.valLoss)), first.models.slice(0, 2).map((m) => m.history.map((h) => h.valLoss)))
  t.deepEqual(again.search!.best.config, first.search!.best.config)
})

const built = existsSync(join(root, 'dist', 'cli', 'experiment.js'))
;(built ? test.serial : test.skip)('kana-native experiment with --config and flags, then kana-native report; usage errors exit 2', async (t) => {
  const data = await miniData()
  const dir = mkdtempSync(join(tmpdir(), 'kana-exp-cli-'))
  writeFileSync(join(dir, 'X.npy'), npy('|u1', [600, 784], data.images))
  writeFileSync(join(dir, 'y.npy'), npy('<i4', [600], data.labels))
  writeFileSync(join(dir, 'exp.json'), JSON.stringify({ ...miniConfig, data: { images: 'X.npy', labels: 'y.npy' }, models: ['M0', 'M1', 'M2'] }))
  const cli = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } })
  // flags override the file: M0 runs 2 epochs instead of 3, no report
  const r = cli(['experiment', '--config', 'exp.json', '--m0-epochs', '2', '--out', 'exp', '--no-report'])
  t.is(r.status, 0, r.stderr)
  t.regex(r.stderr, /\| M0 \| .*2 epochs, no early stopping/)
  t.regex(r.stderr, /\| M2 \| .*pure-TypeScript reference/)
  t.notRegex(r.stderr, /\| M3 \|/)
  t.false(existsSync(join(dir, 'exp', 'report.html')))
  const written = JSON.parse(readFileSync(join(dir, 'exp', 'experiment-config.json'), 'utf8'))
  t.is(written.M0.epochs, 2)
  t.is(written.data.images, join(dir, 'X.npy'), 'data paths resolved against the config file')
  const rep = cli(['report', 'exp', '--json'])
  t.is(rep.status, 0, rep.stderr)
  t.is(JSON.parse(rep.stdout).file, join(dir, 'exp', 'report.html'))
  t.true(existsSync(join(dir, 'exp', 'report.html')))

  writeFileSync(join(dir, 'bad.json'), '{"seed": 1, "serach": {}}')
  const bad = cli(['experiment', '--config', 'bad.json'])
  t.is(bad.status, 2)
  t.regex(bad.stderr, /unknown key "serach"/)
  const badModels = cli(['experiment', '--models', 'M0,M7'])
  t.is(badModels.status, 2)
  t.regex(badModels.stderr, /--models: unknown M7/)
  const notDir = cli(['report', 'nowhere'])
  t.is(notDir.status, 1)
  t.regex(notDir.stderr, /nowhere: no such directory/)
})

// `runExperiment` / `kana-native experiment` end to end in miniature: 600 images (real KMNIST when
// ../shared/data is present), 2–3 epochs per model, a 2-trial search; the table, the files, the
// M1/M2 agreement, the test-split discipline, reproducibility from the written configuration, and
// the CLI with a --config file.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readExperimentConfig, runExperiment, resolveExperiment, MODEL_IDS, DEFAULT_M5_CANDIDATES, DEFAULT_NOISE, type ExperimentResult } from '../src/experiment/experiment'
import { PRESETS } from '../src/training/presets'
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

test.serial('a miniature experiment: M0–M5, search, agreement, noise table, files, table, test split read once per model', async (t) => {
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
  t.regex(r.table[5].techniques, /^\[784,32,10\] AdamW lr 0\.002, wd 0\.01, one-cycle schedule .*batch 64, no L2, dropout 0\.1, label smoothing 0\.1, augmentation \(rotate ±12°, scale ±0\.1, shear ±0\.15, shift ±1\.7 px\), 3 epochs, no early stopping$/)
  t.regex(r.table[5].notes, /^best of 2 modern candidates \(candidate 2\), val loss \d\.\d{4}$/)
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
    'search/trials.csv', 'search/trials.json', 'search/trials.md', 'search/lr-effect.svg', 'search/lr-effect.png', 'architecture/trials.csv', 'agreement.json', 'agreement.svg', 'report.html',
    'M5-candidates/trials.csv', 'M5-candidates/trials.md', 'study.md', 'noise/robustness.csv', 'noise/robustness.json', 'noise/robustness.md', 'noise/gaussian.svg', 'noise/salt-pepper.png', 'noise/occlusion.svg']) {
    t.true(existsSync(join(out, f)), `${f} written`)
  }
  for (const m of MODEL_IDS) {
    for (const f of ['config.json', 'history.csv', 'history.json', 'metrics.json', 'model.safetensors', 'curves.svg', 'confusion.svg', 'confusion.png']) t.true(existsSync(join(out, 'models', m, f)), `models/${m}/${f}`)
  }
  const md = readFileSync(join(out, 'comparison.md'), 'utf8').trim().split('\n')
  t.is(md[0], '| model | test accuracy | test loss | balanced accuracy | macro-F1 | techniques | notes | training s |')
  t.is(md.length, 2 + 6)
  const csv = readFileSync(join(out, 'comparison.csv'), 'utf8').trim().split('\n')
  t.is(csv[0], 'model,testAccuracy,testLoss,balancedAccuracy,macroF1,techniques,notes,seconds')
  t.is(csv.length, 7)
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
  t.deepEqual(evals.filter((e) => /^M\d$/.test(e)).sort(), ['M0', 'M1', 'M2', 'M3', 'M4', 'M5'])
  t.deepEqual(evals.filter((e) => / under input noise$/.test(e)), MODEL_IDS.map((m) => `${m} under input noise`), 'then once more per model, under noise, after every clean evaluation')
  t.is(evals.indexOf('M0 under input noise'), 9)
  t.is(evals.length, 8 + 1 + 6, 'plus, for the agreement check, the engine at M2\'s epoch and its two jittered twins')
  t.is(a.sensitivity.twins, 2)
  t.is(new Set(evals).size, evals.length)
  t.true(lines.findIndex((l) => l.startsWith('M4:')) < lines.length, 'progress was logged')
  t.is(exp.machine.node, process.version)
  t.truthy(exp.machine.cpuFeatures.arch)
  t.true(exp.seconds > 0 && exp.timings.total > 0)
  if (hasKmnist) t.is(exp.data.classNames[0], 'お')

  // M5: the candidate with the lowest validation loss of the weights it keeps (its last epoch's)
  const m5 = r.m5!
  const cands = JSON.parse(readFileSync(join(out, 'M5-candidates', 'trials.json'), 'utf8'))
  t.is(cands.length, 2)
  t.deepEqual(cands.map((c: { epochs: number }) => c.epochs), [3, 3], 'no halving: every candidate ran to its end')
  t.is(cands[0].config.lr, 1e-6)
  t.true(cands[1].valLoss < cands[0].valLoss - 0.1, `the learning candidate is clearly better: ${cands[1].valLoss} < ${cands[0].valLoss}`)
  t.is(m5.bestId, 2)
  t.deepEqual(cands.map((c: { selected: boolean }) => c.selected), [false, true])
  const m5model = r.models.find((m) => m.id === 'M5')!
  t.deepEqual(m5model.config, cands[1].config)
  t.is(m5model.history[m5model.history.length - 1].valLoss, cands[1].valLoss, 'scored by the last epoch, whose weights M5 keeps')
  t.is(m5model.weightsEpoch, 3)
  t.is(m5model.metrics.validation.loss, cands[1].valLoss, 'the saved model is the scored one')

  // the noise table: every model, three kinds, clean level first and equal to the test evaluation
  const nz = r.noise!
  t.deepEqual(nz.kinds, [{ kind: 'gaussian', levels: [25.5, 51, 76.5] }, { kind: 'salt-pepper', levels: [0.05, 0.1, 0.2] }, { kind: 'occlusion', levels: [7, 10, 14] }])
  t.is(nz.seed, 7)
  t.is(nz.samples, r.models[0].metrics.test.samples)
  t.deepEqual(nz.models.map((m) => m.model), MODEL_IDS)
  for (const m of nz.models) {
    const clean = r.models.find((x) => x.id === m.model)!.metrics.test
    for (const b of m.byKind) {
      t.deepEqual(b.rows.map((x) => x.level), [0, ...nz.kinds.find((k) => k.kind === b.kind)!.levels])
      if (m.model === 'M2') t.true(Math.abs(b.rows[0].accuracy - clean.accuracy) <= 1 / clean.samples + 1e-12, 'the engine with M2\'s weights, to one sample')
      else {
        t.is(b.rows[0].accuracy, clean.accuracy, `${m.model} ${b.kind}: level 0 is the clean test accuracy`)
        t.is(b.rows[0].loss, clean.loss)
      }
      t.true(b.rows.slice(1).some((x) => x.accuracy !== b.rows[0].accuracy || x.loss !== b.rows[0].loss), `${m.model} ${b.kind}: noise changes something`)
    }
  }
  const ncsv = readFileSync(join(out, 'noise', 'robustness.csv'), 'utf8').trim().split('\n')
  t.is(ncsv[0], 'model,kind,level,accuracy,loss')
  t.is(ncsv.length, 1 + 6 * 3 * 4)
  t.is(ncsv[1], `M0,gaussian,0,${r.models[0].metrics.test.accuracy},${r.models[0].metrics.test.loss}`)
  const study = readFileSync(join(out, 'study.md'), 'utf8')
  t.true(study.includes(readFileSync(join(out, 'comparison.md'), 'utf8')), 'study.md holds the comparison table')
  t.regex(study, /\| model \| clean \| gaussian σ 25\.5 \| gaussian σ 51 \| gaussian σ 76\.5 \| salt-pepper p 0\.05 \| salt-pepper p 0\.1 \| salt-pepper p 0\.2 \| occlusion 7×7 \| occlusion 10×10 \| occlusion 14×14 \|/)
  t.regex(study, new RegExp(`\\| M5 \\| ${(r.models[5].metrics.test.accuracy * 100).toFixed(2)}% \\|`))
  t.is(exp.noise.files.csv, 'noise/robustness.csv')
})

test.serial('the M1/M2 agreement holds when the search picks gelu + dropout + batch norm + AdamW + label smoothing + cosine with warm-up', async (t) => {
  const data = await miniData()
  const out = mkdtempSync(join(tmpdir(), 'kana-exp-f1-'))
  const r = await runExperiment({
    ...miniConfig, models: ['M1', 'M2'], noise: false, data: hasKmnist ? { classmap } : undefined, inMemory: data, out, log: () => {},
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
  // models without M5 skip it (its candidates are never trained), and noise: false skips the noise table
  t.deepEqual(r.table.map((x) => x.model), ['M1', 'M2'])
  t.is(r.m5, undefined)
  t.false(existsSync(join(out, 'models', 'M5')) || existsSync(join(out, 'M5-candidates')))
  t.is(r.noise, undefined)
  t.false(existsSync(join(out, 'noise')))
  const exp = JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8'))
  t.false(exp.testEvaluations.some((e: { model: string }) => /noise/.test(e.model)))
  t.is(exp.config.noise, false)
  t.notRegex(readFileSync(join(out, 'study.md'), 'utf8'), /noise/)
})

test('a bad M5 candidate or noise level is refused before any work, the message naming it', async (t) => {
  const out = join(mkdtempSync(join(tmpdir(), 'kana-exp-bad-')), 'never')
  const bad = async (cfg: object, message: RegExp) => {
    await t.throwsAsync(runExperiment({ ...miniConfig, ...cfg, inMemory: await miniData(), out, report: false }), { message })
    t.false(existsSync(out), 'nothing was written')
  }
  await bad({ M5: { candidates: [{}, { dropout: 2 }] } }, /^M5\.candidates\[1\]\.dropout must /)
  await bad({ M5: { candidates: [{ lr: 1e-3 }, { optimzer: 'adam' }] } }, /^unknown key "optimzer" in M5\.candidates\[1\]; known: hidden, optimizer/)
  await bad({ M5: { candidates: [] } }, /^M5\.candidates must be a non-empty list of model settings/)
  await bad({ M5: { base: { hidden: [32] }, candidates: [{ batchNorm: true, batchSize: 1, optimizer: 'adam' }] } }, /^M5\.candidates\[0\]: batchSize must be ≥ 2 with batchNorm/)
  await bad({ M5: { concurrency: 0 } }, /^M5\.concurrency must be an integer ≥ 1/)
  await bad({ noise: { gaussian: [25.5, -1] } }, /^noise\.gaussian: gaussian noise level must be a standard deviation in pixel units \(0\.\.255 scale\), ≥ 0, got -1$/)
  await bad({ noise: { speckle: [1] } }, /^unknown key "speckle" in noise; known: gaussian, salt-pepper, occlusion$/)
  await bad({ noise: {} }, /^noise must be false or levels per kind/)
  await bad({ noise: true }, /^noise must be false or levels per kind/)
  // the same for an experiment file
  const dir = mkdtempSync(join(tmpdir(), 'kana-exp-badfile-'))
  writeFileSync(join(dir, 'exp.json'), JSON.stringify({ M5: { candidates: [{ hidden: [0] }] } }))
  await t.throwsAsync(readExperimentConfig(join(dir, 'exp.json')), { message: /exp\.json: M5\.candidates\[0\]\.hidden must be a list of positive integer widths/ })
  // the defaults: the modern preset and the measured variant, with the study's seed
  const c = resolveExperiment({ seed: 3 })
  t.is(c.M5.candidates.length, DEFAULT_M5_CANDIDATES.length)
  t.like(c.M5.candidates[0], { ...PRESETS.modern, seed: 3 })
  t.deepEqual(c.noise, DEFAULT_NOISE)
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
  // the noise table too: the same seed, the same corruption, the same numbers
  t.deepEqual(again.noise, { ...first.noise!, models: first.noise!.models.slice(0, 2) })
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

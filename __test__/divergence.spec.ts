// A run whose loss or weights become NaN/Infinity stops, says in which epoch and that the learning
// rate is the likely cause, and keeps and saves the best weights it had (stopReason 'diverged').
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { train, type TrainOptions } from '../src/training/train'
import { decodeModel } from '../src/output/model-file'
import { loadInputs } from '../src/data/inputs'
import { loadTrainedModel } from '../src/output/saved-model'
import { Dataset } from '../src/engine/mlp'
import { learnable as learnableData } from './helpers/learnable'

const tmp = mkdtempSync(join(tmpdir(), 'kana-diverge-'))
test.after.always(() => rmSync(tmp, { recursive: true, force: true }))



const data = learnableData(2000, 64, 5, 3)
const base: TrainOptions = { data, hidden: [32], lr: 3e-3, batchSize: 16, epochs: 10, earlyStopping: false, l2: 0, seed: 1, threads: 2 }

// No configuration makes this small ReLU/softmax net blow up on cue after good epochs (they die
// rather than diverge), so the blow-up is injected: after epoch 4, every weight is set to 1e30
// (setWeights refuses NaN, not huge values); the first batch of epoch 5 then overflows to NaN.
for (const restoreBest of [true, false]) {
  test(`diverging after good epochs keeps and saves the best weights (restoreBest ${restoreBest})`, async (t) => {
    const out = join(tmp, `injected-${restoreBest}`)
    let bestWeights: Float32Array[] | undefined
    const r = await train({
      ...base, restoreBest, out,
      onEpoch: (rec, s) => {
        if (rec.epoch === s.bestEpoch) bestWeights = s.model.getWeights()
        if (rec.epoch === 4) s.model.setWeights(s.model.getWeights().map((w) => w.map(() => 1e30)))
      },
    })
    t.is(r.stopReason, 'diverged')
    t.regex(r.divergence!, /^epoch 5: training diverged at step 1 of \d+: the loss became (NaN|-?inf); the learning rate \(0\.003\) is probably too high$/)
    t.is(r.history.length, 4)
    t.true(r.history.every((h, i) => i === 0 || h.valLoss < r.history[0].valLoss), 'the epochs before were good ones')
    t.true(r.bestEpoch >= 2 && r.bestEpoch <= 4)
    t.is(r.weightsEpoch, r.bestEpoch)
    t.deepEqual(r.model.getWeights(), bestWeights, 'the model holds the best epoch\'s weights')
    t.true(Number.isFinite(r.metrics.test.loss))
    t.is(r.metrics.validation.loss, r.history[r.bestEpoch - 1].valLoss)

    const file = decodeModel(readFileSync(join(out, 'model.safetensors')))
    t.deepEqual(file.weights, bestWeights, 'model.safetensors holds the best epoch\'s weights')
    t.is(file.meta.training?.stopReason, 'diverged')
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'))
    t.is(metrics.stopReason, 'diverged')
    t.is(metrics.divergence, r.divergence)
    t.is(metrics.bestEpoch, r.bestEpoch)
    t.is(metrics.weightsEpoch, r.bestEpoch)
    t.is(JSON.parse(readFileSync(join(out, 'history.json'), 'utf8')).length, 4)
  })
}

test('diverging in the first epoch is an error that says to lower the learning rate', async (t) => {
  const e = await t.throwsAsync(train({ ...base, optimizer: 'sgd', lr: 1e30 }))
  t.is((e as NodeJS.ErrnoException).code, 'KANA_DIVERGED')
  t.regex(e!.message, /^training diverged before any usable epoch \(epoch 1: training diverged at step \d+ of \d+: the loss became .*; the learning rate \(1e30\) is probably too high\); lower the learning rate$/)
})

const kmnist = join(__dirname, '..', '..', 'shared', 'data', 'kmnist')
const real = existsSync(join(kmnist, 'X_images.npy')) ? test : test.skip

// A real divergence on real data: full-batch gradient descent with lr·λ = 4 > 2 multiplies the
// weights by about −3 every epoch (w ← w − lr·(g + λw)), so they grow until the validation loss
// overflows — whatever the rounding, a matter of arithmetic, not of luck.
real('the CLI on KMNIST: a diverging run exits 1, names the epoch and the learning rate, saves the best epoch', async (t) => {
  const out = join(tmp, 'cli')
  const images = join(kmnist, 'X_images.npy')
  const labels = join(kmnist, 'y_images.npy')
  const r = spawnSync(process.execPath, [join(__dirname, '..', 'bin', 'kana-native.js'), 'train', '--images', images, '--labels', labels,
    '--hidden', '32', '--optimizer', 'gd', '--lr', '2', '--l2', '2', '--epochs', '100', '--no-early-stopping', '--seed', '1', '--threads', '2', '--out', out], { encoding: 'utf8' })
  t.is(r.status, 1, r.stderr)
  const m = r.stderr.match(/\ndiverged: epoch (\d+): the validation loss became (NaN|Infinity); the learning rate \(2\) is probably too high; weights of epoch (\d+) \(best validation loss at epoch (\d+)\)/)
  t.truthy(m, r.stderr)
  const [diverged, kept, best] = [Number(m![1]), Number(m![3]), Number(m![4])]
  t.log(`diverged in epoch ${diverged}; kept epoch ${kept}`)
  t.is(kept, best)
  const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'))
  t.is(metrics.stopReason, 'diverged')
  t.is(metrics.weightsEpoch, best)
  t.regex(metrics.divergence, new RegExp(`^epoch ${diverged}: `))
  const history = JSON.parse(readFileSync(join(out, 'history.json'), 'utf8'))
  t.is(history.length, diverged)
  // the saved model is the best epoch's: it reproduces that epoch's validation loss exactly
  const { model, meta } = await loadTrainedModel(join(out, 'model.safetensors'), { threads: 2 })
  t.is(meta.training?.stopReason, 'diverged')
  const inputs = await loadInputs({ images, labels, seed: 1 })
  const ev = await model.evaluate(new Dataset(inputs.validation.images, inputs.validation.labels, 784))
  t.is(ev.loss, history[best - 1].valLoss)
})

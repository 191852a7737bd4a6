// The study's recipes on real data (8,000 KMNIST images, stratified 60/20/20), through train().
import test from 'ava'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { train } from '../src/training/train'

const kmnist = join(__dirname, '..', '..', 'shared', 'data', 'kmnist')
const real = existsSync(join(kmnist, 'X_images.npy')) ? test.serial : test.skip
const files = { images: join(kmnist, 'X_images.npy'), labels: join(kmnist, 'y_images.npy') }

real("the seed's M3 recipe reaches ≥ 0.87 test accuracy with early stopping and restored best weights", async (t) => {
  // [784,512,10], Adam lr 1e-3, batch 32, L2 1e-3, up to 200 epochs, patience 20, restore best
  const r = await train({ ...files, hidden: [512], optimizer: 'adam', lr: 1e-3, batchSize: 32, l2: 1e-3, epochs: 200, patience: 20, restoreBest: true, seed: 1, threads: 2 })
  t.log(`stopped by ${r.stopReason} after ${r.history.length} epochs (best ${r.bestEpoch}) in ${r.seconds.toFixed(1)} s; test accuracy ${r.metrics.test.accuracy.toFixed(4)}, loss ${r.metrics.test.loss.toFixed(4)}, balanced ${r.metrics.test.balancedAccuracy.toFixed(4)}, macro-F1 ${r.metrics.test.macroF1.toFixed(4)}`)
  t.is(r.stopReason, 'early-stopping')
  t.is(r.weightsEpoch, r.bestEpoch)
  t.is(r.history.length, r.bestEpoch + 20)
  // restoring the best weights: the final validation loss is the best epoch's
  t.true(Math.abs(r.metrics.validation.loss - r.history[r.bestEpoch - 1].valLoss) < 1e-6)
  t.true(r.metrics.test.accuracy >= 0.87, `test accuracy ${r.metrics.test.accuracy}`)
})

real('an exponential schedule reaches lr_min at T and full-batch GD learns (M0-style, shortened)', async (t) => {
  const r = await train({ ...files, hidden: [100, 80], optimizer: 'gd', lr: 0.1, l2: 0, epochs: 60, earlyStopping: false, schedule: 'exponential', lrMin: 0.01, seed: 2, threads: 2 })
  t.is(r.history.length, 60)
  t.true(Math.abs(r.history[0].lr - 0.1) < 1e-12)
  // η_t = η0·(η_min/η0)^(t/T): at t = T−1 = 59 it is 0.1·0.1^(59/60)
  t.true(Math.abs(r.history[59].lr - 0.1 * 0.1 ** (59 / 60)) < 1e-12)
  t.true(r.history[59].trainLoss < r.history[0].trainLoss * 0.75, `loss ${r.history[0].trainLoss} → ${r.history[59].trainLoss}`)
  t.true(r.metrics.test.accuracy > 0.5)
})

real('a run that diverges in its very first epoch has no usable weights: an error naming the epoch and the learning rate', async (t) => {
  const err = await t.throwsAsync(train({ ...files, hidden: [64], optimizer: 'sgd', lr: 1e6, batchSize: 64, epochs: 5, seed: 3, threads: 2 }))
  t.regex(err!.message, /diverged.*epoch 1.*learning rate/s)
})

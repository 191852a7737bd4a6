// Learning real data: 8,000 real Kuzushiji-MNIST images from ../shared/data/kmnist.
import test from 'ava'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { Dataset, MLP, loadImages, loadLabels, stratifiedSplit } from '../index'
import { gather } from '../src/data/split'

const dir = join(__dirname, '..', '..', 'shared', 'data', 'kmnist')
const present = existsSync(join(dir, 'X_images.npy'))
const maybe = present ? test : test.skip
if (!present) test('real KMNIST data', (t) => t.log(`SKIPPED: ${dir} is absent`) || t.pass())

maybe('[784,128,10] Adam lr 1e-3, batch 64, 5 epochs reaches ≥ 0.78 test accuracy on a stratified 60/20/20 split', async (t) => {
  const { images } = await loadImages(join(dir, 'X_images.npy'))
  const { labels } = await loadLabels(join(dir, 'y_images.npy'))
  const split = stratifiedSplit(labels, { train: 0.6, validation: 0.2, test: 0.2 }, 1)
  const part = (idx: Int32Array) => {
    const g = gather(images, 784, labels, idx)
    return new Dataset(g.images, g.labels)
  }
  const [train, validation, testSet] = [part(split.train), part(split.validation), part(split.test)]
  t.is(train.length + validation.length + testSet.length, 8000)
  const model = new MLP({ layers: [784, 128, 10], seed: 1, threads: 2 })
  const history: number[] = []
  await model.fit(train, { epochs: 5, optimizer: 'adam', lr: 1e-3, batchSize: 64, onEpoch: (e) => void history.push(e.loss) })
  const val = await model.evaluate(validation)
  const ev = await model.evaluate(testSet)
  t.log(`train loss by epoch ${history.map((l) => l.toFixed(3)).join(' ')}; validation acc ${val.accuracy.toFixed(4)}; test acc ${ev.accuracy.toFixed(4)}, loss ${ev.loss.toFixed(4)}`)
  t.true(history[4] < history[0], 'the training loss falls')
  t.true(ev.accuracy >= 0.78, `test accuracy ${ev.accuracy}`)
})

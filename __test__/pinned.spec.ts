// Pinned results: the same seed and threads give exactly these weights and numbers. The values
// were first recorded on main before the training loop was rewritten as one resumable run (issue
// E) and held through it; they were refreshed once since, when the GEMM moved to kana-native's own
// kernels (issue I: another summation order, so other roundings; M2, the float64 reference, kept
// its hash). Any change in what a run computes — batch order, schedule, early stopping,
// restore-best, the experiment's phases — fails here. The AVX-512 and AVX2 kernels give the same
// bits (KANA_GEMM=avx2 gives these hashes too). Refresh them only for a change that means to alter results,
// and say so in its commit (`KANA_PRINT_PINS=1 npx ava __test__/pinned.spec.ts` prints them).
import test from 'ava'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadTrainedModel, runExperiment, train } from '../src/index'
import { classmap, hasKmnist, miniConfig, miniData } from './experiment-fixtures'

const kmnist = join(__dirname, '..', '..', 'shared', 'data', 'kmnist')
const real = existsSync(join(kmnist, 'X_images.npy')) ? test.serial : test.skip
const print = process.env.KANA_PRINT_PINS === '1'

function weightsHash(weights: Float32Array[]): string {
  const h = createHash('sha256')
  for (const w of weights) h.update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength))
  return h.digest('hex').slice(0, 16)
}

const historyText = (history: { epoch: number; lr: number; trainLoss: number; trainAccuracy: number; valLoss: number; valAccuracy: number }[]) =>
  history.map((r) => [r.epoch, r.lr, r.trainLoss, r.trainAccuracy, r.valLoss, r.valAccuracy].join(' ')).join('\n')
const textHash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16)

const PINS = {
  m3: { weights: 'e2a638c52f865008', history: 'f45098a566a9c5dd', epochs: 75, bestEpoch: 55, testAccuracy: 0.883125, testLoss: 0.396502318456769 },
  mini: {
    M0: { weights: '86347e83284fa513', history: 'f3d5b33a45179c7e', testAccuracy: 0.225, testLoss: 2.136477532982826 },
    M1: { weights: 'f85196a02191d3a7', history: '5a8aa548775ad7d6', testAccuracy: 0.20833333333333334, testLoss: 2.1689224342505136 },
    M2: { weights: '5fd39dd080cacd08', history: '6cd625e1c57f78c7', testAccuracy: 0.20833333333333334, testLoss: 2.1689224207376316 },
    M3: { weights: 'f85196a02191d3a7', history: '5a8aa548775ad7d6', testAccuracy: 0.20833333333333334, testLoss: 2.1689224342505136 },
    M4: { weights: '7643762d0170b1a2', history: '6162eef97910f82c', testAccuracy: 0.55, testLoss: 1.2585893243551254 },
    // added with M5 (issue F2), M0–M4 unchanged: the miniature modern recipe with augmentation, AdamW, one-cycle
    M5: { weights: 'fb4ad785cfa96397', history: '902ea8be81935d69', testAccuracy: 0.275, testLoss: 2.075890080134074 },
  } as Record<string, { weights: string; history: string; testAccuracy: number; testLoss: number }>,
}

real('train with the M3 recipe (seed 1, 2 threads): the pinned weights, history and metrics', async (t) => {
  const r = await train({ images: join(kmnist, 'X_images.npy'), labels: join(kmnist, 'y_images.npy'), seed: 1, threads: 2 })
  const got = {
    weights: weightsHash(r.model.getWeights()), history: textHash(historyText(r.history)), epochs: r.history.length,
    bestEpoch: r.bestEpoch, testAccuracy: r.metrics.test.accuracy, testLoss: r.metrics.test.loss,
  }
  if (print) t.log(JSON.stringify(got))
  t.deepEqual(got, PINS.m3)
})

;(hasKmnist ? test.serial : test.skip)('the miniature experiment (seed 7, 2 threads): the pinned weights, histories and test metrics of M0–M5', async (t) => {
  const data = await miniData()
  const out = mkdtempSync(join(tmpdir(), 'kana-pin-'))
  const r = await runExperiment({ ...miniConfig, data: { classmap }, inMemory: data, out, report: false })
  const got: typeof PINS.mini = {}
  for (const m of r.models) {
    const { model } = await loadTrainedModel(join(m.dir, 'model.safetensors'))
    got[m.id] = { weights: weightsHash(model.getWeights()), history: textHash(historyText(m.history)), testAccuracy: m.metrics.test.accuracy, testLoss: m.metrics.test.loss }
    model.free()
  }
  if (print) t.log(JSON.stringify(got))
  t.deepEqual(got, PINS.mini)
})

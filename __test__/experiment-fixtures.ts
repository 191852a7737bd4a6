// Shared by experiment.spec.ts and report.spec.ts: a miniature data set, a miniature experiment
// configuration, a .npy writer, and a headless Chromium (Debian's) driven by playwright-core.
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadImages, loadLabels } from '../src/data/readers'
import type { ExperimentConfig } from '../src/experiment/experiment'
import { npy } from './helpers/npy'
import { findChromium } from './helpers/chromium'

export const kmnist = join(__dirname, '..', '..', 'shared', 'data', 'kmnist')
export const hasKmnist = existsSync(join(kmnist, 'X_images.npy'))
export const classmap = join(kmnist, 'kmnist_classmap.csv')

/** 600 real KMNIST images (60 per class, the first of each class in file order), or synthetic ones when the files are absent. */
export async function miniData(): Promise<{ images: Uint8Array; labels: Int32Array; real: boolean }> {
  const n = 600
  const images = new Uint8Array(n * 784)
  const labels = new Int32Array(n)
  if (hasKmnist) {
    const all = await loadImages(join(kmnist, 'X_images.npy'))
    const lab = await loadLabels(join(kmnist, 'y_images.npy'))
    const per = new Array<number>(10).fill(0)
    let k = 0
    for (let i = 0; i < lab.labels.length && k < n; i++) {
      const y = lab.labels[i]
      if (per[y]++ >= 60) continue
      images.set(all.images.subarray(i * 784, (i + 1) * 784), k * 784)
      labels[k++] = y
    }
    return { images, labels, real: true }
  }
  // synthetic: class y lights up a 7×7 block of its own plus noise (seeded)
  let s = 12345
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32)
  for (let i = 0; i < n; i++) {
    const y = i % 10
    labels[i] = y
    for (let p = 0; p < 784; p++) {
      const r = Math.floor(p / 28)
      const c = p % 28
      const on = Math.floor(r / 7) === y % 4 && Math.floor(c / 7) === Math.floor(y / 4) + (y >= 8 ? 1 : 0)
      images[i * 784 + p] = Math.min(255, Math.floor(rand() * 90) + (on ? 160 : 0))
    }
  }
  return { images, labels, real: false }
}

/**
 * Every model, 2–3 epochs, a 2-trial search, a 2-network architecture grid, two M5 candidates
 * over a miniature modern recipe (the first with a learning rate too small to learn: the second is
 * the one validation loss must select).
 */
export const miniConfig: ExperimentConfig = {
  seed: 7,
  threads: 2,
  M0: { epochs: 3 },
  M4: { hidden: [256, 256], epochs: 3 },
  search: { trials: 2, epochs: 3, halving: { minEpochs: 1, eta: 2 }, space: { hidden: [[32]], batchSize: [32, 64] } },
  architecture: { depths: [1], widths: [16, 32] },
  reference: { budgetSeconds: 30 },
  M5: {
    base: { hidden: [32], optimizer: 'adamw', weightDecay: 1e-2, l2: 0, schedule: 'one-cycle', lr: 2e-3, batchSize: 64, epochs: 3, dropout: 0.1, labelSmoothing: 0.1, augment: true, earlyStopping: false, restoreBest: false },
    candidates: [{ lr: 1e-6 }, {}],
  },
}


export const CHROMIUM = findChromium()
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/** Debian's Chromium (elsewhere the browser findChromium finds) through playwright-core, with a fresh user-data directory; null when it is not installed. */
export async function launchChromium(viewport = { width: 1280, height: 1000 }) {
  if (!existsSync(CHROMIUM)) return null
  const { chromium } = await import('playwright-core')
  const userData = mkdtempSync(join(tmpdir(), 'kana-chromium-'))
  return chromium.launchPersistentContext(userData, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport })
}

export { npy }

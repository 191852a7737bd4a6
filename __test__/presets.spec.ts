// `kana-native train --preset m3|modern` (issue F2): the recipes resolve to valid configurations.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { PRESETS } from '../src/training/presets'
import { resolveModelConfig, defaultModelConfig } from '../src/training/config'

const bin = join(__dirname, '..', 'bin', 'kana-native.js')

test('m3 is today\'s defaults; modern is F2\'s recipe, a valid configuration', (t) => {
  const { seed: _, ...m3 } = resolveModelConfig({ ...PRESETS.m3, seed: 1 })
  t.deepEqual(m3, defaultModelConfig())
  t.like(resolveModelConfig({ ...PRESETS.modern, seed: 1 }), {
    hidden: [1024, 1024], dropout: 0.3, labelSmoothing: 0.1, optimizer: 'adamw', weightDecay: 1e-2, l2: 0, schedule: 'one-cycle',
    lr: 2e-3, batchSize: 128, epochs: 60, earlyStopping: false, restoreBest: false, augment: true, rotate: 12, scale: 0.1, shear: 0.15, shift: 1.7, elastic: 'off',
  })
})

test('--preset: unknown names and --resume are usage errors', (t) => {
  const bad = spawnSync(process.execPath, [bin, 'train', '--preset', 'fast'], { encoding: 'utf8' })
  t.is(bad.status, 2)
  t.regex(bad.stderr, /preset/)
  const resume = spawnSync(process.execPath, [bin, 'train', '--preset', 'modern', '--resume', '/nonexistent'], { encoding: 'utf8' })
  t.is(resume.status, 2)
  t.regex(resume.stderr, /--preset cannot be used with --resume/)
})

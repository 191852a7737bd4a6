// Named recipes for `kana-native train --preset NAME` (issue F2), a starting point under --config
// and the flags (preset < --config file < flags). Node API: `train({ ...PRESETS.modern, … })`.
//
// * m3 — the study's M3, exactly today's defaults (the default: the study's results and the pinned
//   runs stay what they were, and a student reproducing the course gets the course's recipe).
// * modern — F2's measured PyTorch recipe: [784,1024,1024,K], dropout 0.3, label smoothing 0.1,
//   AdamW (weight decay 1e-2, no L2), one-cycle to a peak of 2e-3, batch 128, 60 epochs, random
//   affine augmentation (rotate 12°, scale 0.1, shear 0.15, shift 1.7 px); all 60 epochs run (the
//   one-cycle schedule is planned over them) and the last epoch's weights are kept, as PyTorch's run did.
import type { ModelConfig } from './config'

export const PRESETS = {
  m3: {},
  modern: {
    hidden: [1024, 1024], dropout: 0.3, labelSmoothing: 0.1, optimizer: 'adamw', weightDecay: 1e-2, l2: 0,
    schedule: 'one-cycle', lr: 2e-3, batchSize: 128, epochs: 60, earlyStopping: false, restoreBest: false, augment: true,
  },
} as const satisfies Record<string, Partial<ModelConfig>>

export type PresetName = keyof typeof PRESETS
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[]

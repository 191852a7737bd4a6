// A model in words, as the comparison table, the models' notes and the progress lines give it:
// its techniques (optimizer, schedule, levers, stopping), its architecture, its rates for people
// (percentages: output/format.ts).
import type { ModelConfig } from '../training/trial'

const OPT_NAMES = { gd: 'full-batch GD', sgd: 'mini-batch SGD', adam: 'Adam', adamw: 'AdamW' } as const

/** A learning rate or λ for people: 0.1, 0.00316, 7.77e-6. */
export const short = (x: number): string => (x !== 0 && Math.abs(x) < 1e-3 ? x.toExponential(2).replace(/\.?0+e/, 'e') : String(Number(x.toPrecision(3))))

export function techniques(c: ModelConfig): string {
  const parts = [`${OPT_NAMES[c.optimizer]} lr ${short(c.lr)}`]
  // the F1 levers, each only when used (the study's recipes read as before)
  if (c.optimizer === 'adamw') parts.push(`wd ${short(c.weightDecay)}`)
  if (c.momentum > 0) parts.push(`${c.nesterov ? 'Nesterov ' : ''}momentum ${short(c.momentum)}`)
  if (c.schedule === 'one-cycle') parts.push(`one-cycle schedule (pct ${short(c.pctStart)}, div ${short(c.divFactor)}, final div ${short(c.finalDivFactor)})`)
  else if (c.schedule !== 'constant') parts.push(`${c.schedule} schedule to ${short(c.lrMin)}`)
  if (c.warmupEpochs > 0) parts.push(`warm-up ${c.warmupEpochs}`)
  if (c.optimizer !== 'gd') parts.push(`batch ${c.batchSize}`)
  parts.push(c.l2 > 0 ? `L2 ${short(c.l2)}` : 'no L2')
  if (c.activation !== 'relu') parts.push(c.activation === 'leaky-relu' ? `leaky-relu ${short(c.leakySlope)}` : c.activation)
  const rates = Array.isArray(c.dropout) ? c.dropout : [c.dropout]
  if (rates.some((p) => p > 0)) parts.push(`dropout ${rates.map(short).join('/')}`)
  if (c.batchNorm) parts.push('batch norm')
  if (c.labelSmoothing > 0) parts.push(`label smoothing ${short(c.labelSmoothing)}`)
  if (c.clipNorm !== undefined) parts.push(`clip norm ${short(c.clipNorm)}`)
  const aug = [c.rotate > 0 && `rotate ±${short(c.rotate)}°`, c.scale > 0 && `scale ±${short(c.scale)}`, c.shear > 0 && `shear ±${short(c.shear)}`, c.shift > 0 && `shift ±${short(c.shift)} px`, c.elastic !== 'off' && `elastic α ${short(c.elastic[0])}, σ ${short(c.elastic[1])}`].filter(Boolean)
  if (aug.length) parts.push(`augmentation (${aug.join(', ')})`)
  parts.push(c.earlyStopping ? `early stopping (patience ${c.patience})` : `${c.epochs} epochs, no early stopping`)
  if (c.restoreBest) parts.push('best weights restored')
  return parts.join(', ')
}

/** An architecture for people: [784,100,80,10]. */
export const archLabel = (layers: number[]): string => `[${layers.join(',')}]`

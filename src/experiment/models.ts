// The phases that train and select the engine's models, each a step of the study's outline
// (experiment.ts): M0 the baseline, M1 the hyper-parameter search's best, M3 the best
// architecture, M4 the overfitting network, M5 the best modern candidate. Each takes the study,
// trains through its store (so a checkpoint restores its trials), records a finished model and
// writes the checkpoint. M2, the reference, is in m2.ts.
import { layersOf, type ModelConfig, type Trial, type TrialOptions } from '../training/trial'
import { describeConfig, hiddenLabel, runTrials, searchConfigs } from './search'
import { archLabel, techniques } from './describe'
import { parameterCount } from '../engine/mlp'
import { pct } from '../output/format'
import { epochLogger, fromTrial, m1Of, type Study } from './study'

/**
 * runTrials' hooks for a phase's trials, keyed `<key>/<i>` (1-based): made by the study's store,
 * so that a checkpoint restores them, and advanced through the job queue when there is one.
 */
function phaseTrials(x: Study, key: string, count: number, onEpoch?: (i: number) => TrialOptions['onEpoch']) {
  return {
    makeTrial: (i: number, c: ModelConfig, threads: number) => x.store.trial(`${key}/${i + 1}`, c, x.data, onEpoch ? { threads, onEpoch: onEpoch(i) } : { threads }),
    advance: (t: Trial, until: number, i: number) => x.advance(`${key}/${i + 1}`, t, until),
    inFlight: x.queue && count,
  }
}

/** The search's selected trial trained to its end (halving may have stopped it at a rung), finished. */
async function finished(x: Study, key: string, r: { bestId: number; best: Trial }): Promise<Trial> {
  await x.advance(`${key}/${r.bestId}`, r.best, r.best.config.epochs)
  r.best.finish()
  return r.best
}

/** M0: the study's baseline, full-batch gradient descent. */
export async function trainM0(x: Study): Promise<void> {
  const { cfg, inputs } = x
  x.clock.begin('M0')
  x.log(`M0: ${archLabel(layersOf(cfg.M0, inputs.features, inputs.classes))} ${techniques(cfg.M0)}`)
  const t = x.store.trial('M0', cfg.M0, x.data, { threads: cfg.threads, onEpoch: epochLogger(x.log, 'M0', 50) })
  await x.advance('M0', t, cfg.M0.epochs)
  t.finish()
  x.finished.set('M0', { trial: t, result: { ...fromTrial('M0', t), notes: `the study's baseline: ${parameterCount(t.layers).toLocaleString('en-US')} parameters, one gradient step per epoch on all ${inputs.train.labels.length} training images` } })
  x.clock.end('M0')
  await x.phaseDone('M0')
}

/** The hyper-parameter search (successive halving); its best trial, trained to its end, is M1. */
export async function searchM1(x: Study): Promise<void> {
  const { cfg, log } = x
  x.clock.begin('search')
  const s = cfg.search
  const configs = searchConfigs({ ...s }, cfg.seed)
  log(`search: ${s.mode}, ${configs.length} trials, up to ${s.epochs} epochs each, ${s.halving ? `successive halving (r0 ${s.halving.minEpochs}, η ${s.halving.eta})` : 'no halving'}, ${s.concurrency} at a time × ${s.threads} thread${s.threads === 1 ? '' : 's'}`)
  const search = await runTrials('search', s.mode, configs, x.data, {
    epochs: s.epochs, halving: s.halving, concurrency: s.concurrency, threads: s.threads, signal: x.opts.signal, log,
    ...phaseTrials(x, 'search', configs.length),
  })
  x.search = search
  const best = await finished(x, 'search', search)
  log(`search: selected trial ${search.bestId} (${describeConfig(best.config)}), best val_loss ${best.bestValLoss.toFixed(4)} at epoch ${best.bestEpoch}; ${search.epochsTrained} epochs trained instead of up to ${search.epochsWithoutHalving}, ${search.seconds.toFixed(1)}s`)
  x.finished.set('M1', {
    trial: best,
    result: { ...fromTrial('M1', best), notes: `${configs.length === 1 ? `the only ${s.mode}-search trial` : `best of ${configs.length} ${s.mode}-search trials (trial ${search.bestId}; successive halving ${search.rungs.length > 1 ? `at ${search.rungs.join('/')} epochs` : 'off'})`}, val loss ${best.bestValLoss.toFixed(4)}` },
  })
  x.clock.end('search')
  await x.phaseDone('search')
}

/** M3: the best architecture of a depth × width grid, M1's other settings (successive halving). */
export async function architectureM3(x: Study): Promise<void> {
  const { cfg, log } = x
  const m1 = m1Of(x)!
  x.clock.begin('M3')
  const a = cfg.architecture
  const configs: ModelConfig[] = []
  for (const d of a.depths) for (const w of a.widths) configs.push({ ...m1.config, hidden: Array<number>(d).fill(w) })
  const beside = x.reference !== undefined
  log(`M3: architecture search over depth ${a.depths.join('/')} × width ${a.widths.join('/')} (${configs.length} networks) with M1's other settings, ${a.halving ? `successive halving (r0 ${a.halving.minEpochs}, η ${a.halving.eta})` : 'no halving'}, ${beside ? a.concurrency : cfg.search.concurrency} at a time × ${beside ? x.sideThreads : cfg.search.threads} thread(s)`)
  const arch = await runTrials('architecture', 'architecture', configs, x.data, {
    epochs: m1.config.epochs, halving: a.halving,
    concurrency: beside ? a.concurrency : cfg.search.concurrency, threads: beside ? x.sideThreads : cfg.search.threads,
    signal: x.opts.signal, log,
    ...phaseTrials(x, 'architecture', configs.length),
  })
  x.arch = arch
  const best = await finished(x, 'architecture', arch)
  const sameAsM1 = hiddenLabel(best.config.hidden) === hiddenLabel(m1.config.hidden)
  log(`M3: selected ${archLabel(best.layers)}, best val_loss ${best.bestValLoss.toFixed(4)} at epoch ${best.bestEpoch}${sameAsM1 ? ' (M1\'s architecture again)' : ''}`)
  x.finished.set('M3', {
    trial: best,
    result: { ...fromTrial('M3', best), notes: `best of ${configs.length} architectures (depth ${a.depths.join('/')} × width ${a.widths.join('/')}), M1's other settings; val loss ${best.bestValLoss.toFixed(4)}${sameAsM1 ? '; same architecture as M1' : ''}` },
  })
  x.clock.end('M3')
  await x.phaseDone('M3')
}

/** M4: a deliberately huge network without regularisation, to show overfitting. */
export async function trainM4(x: Study): Promise<void> {
  const { cfg, inputs } = x
  x.clock.begin('M4')
  const layers = layersOf(cfg.M4, inputs.features, inputs.classes)
  x.log(`M4: ${archLabel(layers)} (${parameterCount(layers).toLocaleString('en-US')} parameters) ${techniques(cfg.M4)}, ${x.sideThreads} thread(s)`)
  const t = x.store.trial('M4', cfg.M4, x.data, { threads: x.sideThreads, onEpoch: epochLogger(x.log, 'M4', 5) })
  await x.advance('M4', t, cfg.M4.epochs)
  t.finish()
  const h = t.history
  const last = h[h.length - 1]
  const ratio = last.valLoss / t.bestValLoss
  x.finished.set('M4', {
    trial: t,
    result: { ...fromTrial('M4', t), notes: `${parameterCount(t.layers).toLocaleString('en-US')} parameters for ${inputs.train.labels.length} training images; validation loss lowest at epoch ${t.bestEpoch} (${t.bestValLoss.toFixed(3)}), ${ratio.toFixed(1)}× that at epoch ${last.epoch}; final train accuracy ${pct(last.trainAccuracy)}` },
  })
  x.clock.end('M4')
  await x.phaseDone('M4')
}

/**
 * M5: the modern candidates trained side by side to their ends (no successive halving: their
 * one-cycle schedules are planned over all their epochs, so an early rung would compare them at
 * their peak learning rates), the lowest validation loss of the weights each keeps selected.
 */
export async function trainM5(x: Study): Promise<void> {
  const { cfg, log } = x
  const m = cfg.M5
  x.clock.begin('M5')
  const n = m.candidates.length
  log(`M5: ${n} modern candidate${n === 1 ? '' : 's'}, ${m.concurrency} at a time × ${m.threads} thread(s): ${m.candidates.map((c, i) => `${i + 1}) ${techniques(c)}`).join('; ')}`)
  const r = await runTrials('M5', 'candidates', m.candidates, x.data, {
    epochs: Math.max(...m.candidates.map((c) => c.epochs)), halving: false, concurrency: m.concurrency, threads: m.threads, signal: x.opts.signal, log,
    ...phaseTrials(x, 'M5', n, (i) => epochLogger(log, `M5 candidate ${i + 1}`, 10)),
    score: keptScore,
  })
  x.m5 = r
  const best = await finished(x, 'M5', r) // (every candidate already ran to its end)
  const v = keptScore(best)
  log(`M5: selected candidate ${r.bestId} (${techniques(best.config)}), val_loss ${v.valLoss.toFixed(4)} with the weights of epoch ${best.weightsEpoch}`)
  x.finished.set('M5', {
    trial: best,
    result: { ...fromTrial('M5', best), notes: `${n === 1 ? 'the only modern candidate' : `best of ${n} modern candidates (candidate ${r.bestId})`}, val loss ${v.valLoss.toFixed(4)}` },
  })
  x.clock.end('M5')
  await x.phaseDone('M5')
}

/** The validation loss and accuracy of the epoch whose weights a trial keeps (its best with restoreBest, else its last). */
function keptScore(t: Trial): { valLoss: number; valAccuracy: number } {
  const h = t.config.restoreBest ? t.history[t.bestEpoch - 1] : t.history[t.history.length - 1]
  const valLoss = h && Number.isFinite(h.valLoss) ? h.valLoss : Infinity
  return { valLoss, valAccuracy: h?.valAccuracy ?? NaN }
}

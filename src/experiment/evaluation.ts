// Selection is over: the test split, opened once (study.ts TestSplit), each model evaluated on it
// once, then the agreement check judged (agreement.ts) and every model evaluated again under input noise.
// Nothing before this point reads the test split.
import { join } from 'node:path'
import { MLP, parameterCount } from '../engine/mlp'
import { modelOptions, setModelParams } from '../training/sources'
import type { SplitMetrics } from '../training/records'
import { robustness, type NoiseSummary } from './robustness'
import { MODEL_IDS, type ModelId, type NoiseLevels } from './config'
import { agreementOf, referenceNote } from './agreement'
import { techniques } from './describe'
import { m1Of, metricsOf, type Study } from './study'
import type { Agreement, ModelResult } from './records'

/** Selection is over: the test split, once per model (and for the agreement check's copies), then under input noise. */
export async function testSplitOnce(x: Study): Promise<{ results: ModelResult[]; agreement?: Agreement; noise?: NoiseSummary }> {
  const { inputs, testSplit, refOut, reference, prefix, twins, cfg } = x
  const K = inputs.classes
  const m1 = m1Of(x)
  const results: ModelResult[] = []
  let agreement: Agreement | undefined
  // from here on the reference's worker may be waiting for the test split: end it whatever happens
  try {
    x.clock.begin('test')
    testSplit.unlock()
    const modelDir = (id: ModelId) => join(x.dir, 'models', id)
    for (const id of MODEL_IDS) {
      const f = x.finished.get(id)
      if (id === 'M2' || !f || !x.wants(id)) continue
      const t = f.trial!
      results.push({
        ...f.result,
        notes: f.result.notes ?? '',
        dir: modelDir(id),
        metrics: {
          train: metricsOf(await t.model.evaluate(x.data.trainSet), K, inputs.train.labels.length),
          validation: metricsOf(await t.model.evaluate(x.data.validationSet), K, inputs.validation.labels.length),
          test: await testSplit.evaluate(id, t.model, K),
        },
      })
    }
    if (refOut && reference && m1 && prefix) {
      testSplit.record('M2')
      const refTest = await reference.test(inputs.test)
      const prefixTest = await testSplit.evaluate(`M1 engine at M2's epoch ${refOut.weightsEpoch} (agreement check)`, prefix.trial.model, K)
      const twinTests: SplitMetrics[] = []
      for (const [k, tw] of twins.entries()) twinTests.push(await testSplit.evaluate(`M1 engine with rounding-size jitter ${k + 1} at M2's epoch (sensitivity)`, tw.trial.model, K))
      agreement = agreementOf(refOut, refTest, prefix, prefixTest, twins, twinTests, x.store.resync, m1, cfg.reference.budgetSeconds, reference.onWorker)
      const note = referenceNote(agreement, refOut, m1, cfg.reference.budgetSeconds)
      results.push({
        id: 'M2', engine: 'reference', config: m1.config, layers: m1.layers, parameters: parameterCount(m1.layers), history: refOut.history,
        bestEpoch: refOut.bestEpoch, weightsEpoch: refOut.weightsEpoch, stoppedBy: refOut.stoppedBy, seconds: refOut.seconds,
        techniques: techniques(m1.config), notes: note, dir: modelDir('M2'),
        metrics: {
          validation: metricsOf(refOut.validation, K, inputs.validation.labels.length),
          test: metricsOf(refTest, K, inputs.test.labels.length),
        },
      })
      results.sort((a, b) => MODEL_IDS.indexOf(a.id) - MODEL_IDS.indexOf(b.id))
      x.log(`M2: ${note}`)
    }
  } finally {
    await reference?.terminate()
  }
  x.clock.end('test')
  const noise = cfg.noise && results.length > 0 ? await everyModelUnderNoise(x, results) : undefined
  return { results, agreement, noise }
}

/**
 * Every model on the test split under input noise, seeded with the study's seed. M2's weights are
 * evaluated by the engine (its reference worker has ended): its clean row can differ from the
 * reference's own evaluation by float32 rounding.
 */
async function everyModelUnderNoise(x: Study, results: ModelResult[]): Promise<NoiseSummary> {
  const { cfg, inputs, testSplit } = x
  x.clock.begin('noise')
  const nets: { model: string; net: MLP; note?: string }[] = []
  let m2: MLP | undefined
  try {
    for (const r of results) {
      if (r.id === 'M2') {
        m2 = new MLP({ layers: r.layers, seed: r.config.seed, threads: cfg.threads, ...modelOptions(r.config) })
        setModelParams(m2, x.refOut!.weights)
        nets.push({ model: r.id, net: m2, note: 'the reference\'s weights, evaluated by the engine' })
      } else nets.push({ model: r.id, net: x.finished.get(r.id)!.trial!.model })
      testSplit.record(`${r.id} under input noise`)
    }
    const kinds = Object.keys(cfg.noise as object).join(', ')
    x.log(`noise: every model on the test split under ${kinds} noise (seed ${cfg.seed})`)
    return await robustness(nets, inputs.test.images, inputs.test.labels, cfg.noise as NoiseLevels, cfg.seed)
  } finally {
    m2?.free()
    x.clock.end('noise')
  }
}

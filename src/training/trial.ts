// A Trial: a Run (run.ts) of the engine on fixed, already-split data, fed the TypeScript-generated
// batch order (sources.ts engineBatches) — the unit of the experiment and of its searches. It owns
// its model: it can be released (a trial dropped by the search keeps only its record) and
// snapshotted/restored whole (experiment checkpoints). The test split never enters a Trial:
// selection sees validation only.
import { MLP } from '../engine/mlp'
import { Run, type EpochHook } from './run'
import { engineBatches, modelOptions, setModelParams, type AfterStep, type TrialData } from './sources'
import { CheckpointError, type RunSnapshot } from './checkpoint'
import { checkModelConfig, type ModelConfig } from './config'

export { checkModelConfig, resolveModelConfig, type ModelConfig } from './config'

/** Layer sizes of a configuration on data with `features` inputs and `classes` classes. */
export const layersOf = (c: ModelConfig, features: number, classes: number): number[] => [features, ...c.hidden, classes]

export interface TrialOptions {
  threads: number
  /** Start from these weights instead of the seed's initialisation (layout of MLP.getWeights(), then, with batch norm, of getNormState()). */
  initialWeights?: Float32Array[]
  /** Called after every epoch. */
  onEpoch?: EpochHook<Float32Array>
  /** Called after every optimiser step, e.g. to disturb the weights on purpose. */
  afterStep?: AfterStep
  /** Keep a copy of the weights after this (1-based) epoch, as `kept`. */
  keepEpoch?: number
}

export class Trial extends Run<Float32Array> {
  readonly model: MLP
  readonly layers: number[]
  /** The model was freed (a trial dropped by the search): it keeps only its record. */
  released = false
  /** The state came from a snapshot (restore()). */
  private restored = false

  constructor(config: ModelConfig, data: TrialData, opts: TrialOptions) {
    checkModelConfig(config)
    const layers = layersOf(config, data.features, data.classes)
    const model = new MLP({ layers, seed: config.seed, threads: opts.threads, ...modelOptions(config) })
    if (opts.initialWeights) setModelParams(model, opts.initialWeights)
    super(config, engineBatches(model, config, data, opts.afterStep), { keepEpoch: opts.keepEpoch, hooks: { onEpoch: opts.onEpoch ? [opts.onEpoch] : [] } })
    this.model = model
    this.layers = layers
  }

  override async advance(untilEpoch: number, signal?: AbortSignal): Promise<void> {
    if (this.released && !this.done && this.epochsRun < untilEpoch) {
      // only a checkpoint that does not belong to this configuration can lead here
      throw this.restored
        ? new CheckpointError('ECONFLICT', 'the checkpoint has a trial dropped by the search that this experiment would train on: it was written for another configuration')
        : new Error('internal error: a released trial was advanced')
    }
    await super.advance(untilEpoch, signal)
  }

  /** Ends the run (restore-best); a run that diverged before any usable epoch is an error. */
  override finish(): void {
    if (this.finished) return
    super.finish()
    if (!this.usable) throw this.divergedError()
  }

  /** Frees the model: the trial keeps its record (history, scores) but can no longer train. */
  release(): void {
    if (this.released) return
    this.released = true
    this.best = undefined
    this.model.free()
  }

  /** The trial's whole state, tensors copied (see RunSnapshot). Call only between advances. */
  snapshot(): RunSnapshot {
    const s: RunSnapshot = { ...this.state(), released: this.released }
    if (!this.released) {
      const { step, rng, m, v, partialEpoch } = this.model.getTrainingState()
      // every mini-batch is a whole engine epoch of its own, so the engine never holds half of one
      if (partialEpoch) throw new Error('internal error: the engine holds an unfinished epoch between trial batches')
      s.model = { weights: this.model.getWeights(), norm: this.model.getNormState(), step, rng, m, v, partialEpoch: null }
    }
    return s
  }

  /** Puts this (new) trial into the state of `s`, which must come from a trial of the same configuration. */
  override restore(s: RunSnapshot): void {
    this.restored = true
    super.restore({ ...s, best: s.best?.map((w) => w.slice()), kept: s.kept?.map((w) => w.slice()) })
    if (s.released) {
      this.release()
      return
    }
    if (!s.model) throw new Error('internal error: a trial snapshot without its weights')
    if (s.model.rng === null) throw new Error('a trial snapshot without its generator state')
    this.model.setWeights(s.model.weights)
    this.model.setNormState(s.model.norm ?? [])
    this.model.setTrainingState({ step: s.model.step, rng: s.model.rng, m: s.model.m, v: s.model.v, partialEpoch: null })
  }
}

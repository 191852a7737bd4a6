// One training run: the epoch loop, the only one in kana-native. `train()`, every trial of the
// searches, M0–M4 and the pure-TypeScript reference (M2) all advance a Run.
//
// A Run knows nothing of where its batches come from: an EpochSource trains one epoch at a given
// learning rate (the engine shuffling on its own, the engine fed batches in an order generated in
// TypeScript, or the reference fed the same batches — sources.ts) and evaluates the validation
// split. What happens around an epoch is a fixed, awaited order, the same for every driver:
//
//   before:  stop policies may end the run before the epoch starts (the reference's time budget)
//   train:   source.trainEpoch(t, lr(config, t)) — an abort between two mini-batches leaves the
//            epoch's position in the run (PartialEpoch) or in the source (the engine's own epoch)
//   validate
//   record:  the epoch's row joins the history; early stopping notes an improvement and the run
//            keeps that epoch's weights (restore-best)
//   history: the history hook (files of a run directory)
//   user:    onEpoch hooks (progress lines, the CLI, the experiment's logger, keeping an epoch)
//   stop:    divergence (a non-finite validation loss), then early stopping, then the last epoch
//   checkpoint: the checkpointer's time trigger (train's autosave)
//
// The learning rate is a pure function of (configuration, epoch) (schedule.ts). Resuming is
// restoring the run's state (restore()), then running it: nothing in the loop knows whether it was
// resumed. Successive halving advances a run to a rung (advance(untilEpoch)), compares, and
// advances the survivors further.
import { EarlyStopping, type EarlyStoppingState } from './early-stopping'
import { learningRate } from './schedule'
import { abortError } from '../engine/abort'
import { scheduleOf, type ModelConfig } from './config'
import type { EpochRecord, StopReason } from './records'

/** Why a run ended: the run's own reasons, and 'budget' (a stop policy: the reference's time budget). */
export type RunStop = StopReason | 'budget'

/** What one epoch's training reports: the sample-weighted mean of its batches' pre-update loss and accuracy. */
export interface EpochFit {
  loss: number
  accuracy: number
}

/** Where an epoch fed batch by batch stood when an abort stopped it between two mini-batches. */
export interface PartialEpoch {
  /** Index of the next mini-batch to train. */
  nextBatch: number
  /** Sample-weighted loss sum and correct count of the batches done. */
  loss: number
  correct: number
}

/** Thrown by a source when an abort stops an epoch; `partial` is null when the source keeps the position itself. */
export class EpochInterrupted extends Error {
  constructor(readonly partial: PartialEpoch | null, readonly reason?: unknown) {
    super('epoch interrupted')
  }
}

/** Thrown by a source when an epoch has to be given up half-way (the reference over its time budget). */
export class EpochAbandoned extends Error {
  constructor(readonly stop: RunStop) {
    super('epoch abandoned')
  }
}

/**
 * One epoch's training steps and the validation pass, over whatever model. Weights are the type
 * the model keeps (Float32Array for the engine, Float64Array for the reference).
 */
export interface EpochSource<W> {
  /** Trains 0-based epoch `t` at rate `lr`, continuing `from` when an earlier call was interrupted. */
  trainEpoch(t: number, lr: number, signal: AbortSignal | undefined, from: PartialEpoch | null): Promise<EpochFit>
  validate(signal?: AbortSignal): Promise<EpochFit>
  getWeights(): W[]
  setWeights(weights: W[]): void
}

/** Called after an epoch's record (the history hook and user hooks). */
export type EpochHook<W> = (record: EpochRecord, run: Run<W>) => void | Promise<void>

/** Decides, before epoch `t` starts, whether the run ends instead. */
export type StartPolicy<W> = (run: Run<W>, t: number) => RunStop | null

/** Writes a checkpoint of the run; `when` says why (train: autosave between epochs, or the interruption). */
export interface Checkpointer {
  /** Seconds between autosaves at the end of an epoch; 0: none. */
  every: number
  save(when: 'autosave' | 'interrupted'): Promise<unknown>
}

export interface RunHooks<W> {
  before?: StartPolicy<W>[]
  history?: EpochHook<W>
  onEpoch?: EpochHook<W>[]
  checkpoint?: Checkpointer
}

/** The loop's progress counters: with the components' states, everything a checkpoint holds. */
export interface RunProgress {
  /** 0-based epoch under way (the number of epochs in the history). */
  epoch: number
  /** 'train': the epoch's steps are (partly) to do; 'validate': they are done (`pendingFit`), validation is not. */
  phase: 'train' | 'validate'
  partial: PartialEpoch | null
  pendingFit: EpochFit | null
  /** Seconds spent in the unfinished epoch, and in the whole run (over every session). */
  epochSeconds: number
  seconds: number
}

/** Everything of a Run but its source's model: the loop's counters and each component's state. */
export interface RunState<W> {
  progress: RunProgress
  history: EpochRecord[]
  stopReason: RunStop | null
  divergence?: string
  finished: boolean
  weightsEpoch: number
  earlyStopping: EarlyStoppingState
  /** Weights of the best validation epoch so far (restore-best), and of the epoch kept on request. */
  best?: W[]
  kept?: W[]
}

export interface RunOptions<W> {
  hooks?: RunHooks<W>
  /** Keep a copy of the weights after this (1-based) epoch, as `kept` (the agreement check's). */
  keepEpoch?: number
}

/** Learning rate of (0-based) epoch t of configuration c: a pure function of the two (schedule.ts). */
export const epochLr = (c: ModelConfig, t: number): number => learningRate(scheduleOf(c), t)

const FRESH: RunProgress = { epoch: 0, phase: 'train', partial: null, pendingFit: null, epochSeconds: 0, seconds: 0 }

/** A resumable training run of `config` over `source`. */
export class Run<W> {
  readonly history: EpochRecord[] = []
  stopReason: RunStop | null = null
  divergence?: string
  /** finish() has run; then `weightsEpoch` is the 1-based epoch whose weights the model holds. */
  finished = false
  weightsEpoch = 0
  /** The best epoch's weights were put back by finish(). */
  restoredBest = false
  kept: W[] | undefined
  protected progress: RunProgress = { ...FRESH }
  protected best: W[] | undefined
  protected stopper: EarlyStopping
  readonly hooks: RunHooks<W>
  private readonly keepEpoch?: number

  constructor(readonly config: ModelConfig, readonly source: EpochSource<W>, opts: RunOptions<W> = {}) {
    this.hooks = opts.hooks ?? {}
    this.keepEpoch = opts.keepEpoch
    this.stopper = new EarlyStopping({ patience: config.earlyStopping ? config.patience : Number.MAX_SAFE_INTEGER, minDelta: config.minDelta, restoreBest: config.restoreBest })
  }

  get epochsRun(): number {
    return this.history.length
  }

  get done(): boolean {
    return this.stopReason !== null
  }

  /** Wall seconds spent training and validating, over every session (not time spent waiting between advances). */
  get seconds(): number {
    return this.progress.seconds
  }

  /** 1-based epoch of the lowest validation loss so far (0 before any). */
  get bestEpoch(): number {
    return this.stopper.bestEpoch + 1
  }

  /** Lowest validation loss so far (Infinity before any finite one): the selection criterion. */
  get bestValLoss(): number {
    return this.stopper.bestLoss
  }

  get bestValAccuracy(): number {
    return this.bestEpoch > 0 ? this.history[this.bestEpoch - 1].valAccuracy : NaN
  }

  /** Where the unfinished epoch stands (for messages: interrupted in epoch …, step …). */
  get position(): Readonly<RunProgress> {
    return this.progress
  }

  /** Learning rate of (0-based) epoch t. */
  lr(t: number): number {
    return epochLr(this.config, t)
  }

  /**
   * Runs epochs until `untilEpoch` have run or the run stops. An abort through `signal` stops it
   * between two mini-batches (or before validation) and rejects with an AbortError, after the
   * checkpointer (if any) has saved the run; the next advance() continues exactly there.
   */
  async advance(untilEpoch: number, signal?: AbortSignal): Promise<void> {
    const c = this.config
    while (!this.done && this.history.length < untilEpoch) {
      const t = this.history.length
      const p = this.progress
      const startedAt = performance.now() - p.epochSeconds * 1000
      const spent = () => (performance.now() - startedAt) / 1000
      const earlier = p.seconds - p.epochSeconds // seconds of the epochs already done
      if (p.phase === 'train' && p.partial === null && p.epochSeconds === 0) {
        const stop = this.hooks.before?.map((policy) => policy(this, t)).find((s) => s !== null)
        if (stop) {
          this.stopReason = stop
          break
        }
      }
      const lr = this.lr(t)
      let fit: EpochFit
      let val: EpochFit
      try {
        fit = p.pendingFit ?? (await this.source.trainEpoch(t, lr, signal, p.partial))
        this.progress = { ...this.progress, phase: 'validate', partial: null, pendingFit: fit }
        if (signal?.aborted) throw abortError(signal.reason)
        val = await this.source.validate(signal)
      } catch (e) {
        if (e instanceof EpochInterrupted || (e as Error)?.name === 'AbortError') {
          if (e instanceof EpochInterrupted) this.progress = { ...this.progress, phase: 'train', partial: e.partial, pendingFit: null }
          this.progress.epochSeconds = spent()
          this.progress.seconds = earlier + spent()
          const err = abortError(e instanceof EpochInterrupted ? e.reason ?? signal?.reason : signal?.reason)
          await this.saveOnInterrupt(err)
          throw err
        }
        this.progress = { ...FRESH, epoch: t, seconds: earlier + spent() }
        if (e instanceof EpochAbandoned) {
          this.stopReason = e.stop
          break
        }
        if ((e as NodeJS.ErrnoException)?.code !== 'KANA_DIVERGED') throw e
        this.stopReason = 'diverged'
        this.divergence = `epoch ${t + 1}: ${(e as Error).message}`
        break
      }
      // record
      const record: EpochRecord = {
        epoch: t + 1, lr, trainLoss: fit.loss, trainAccuracy: fit.accuracy,
        valLoss: val.loss, valAccuracy: val.accuracy, seconds: spent(),
      }
      this.progress = { ...FRESH, epoch: t + 1, seconds: earlier + record.seconds }
      this.history.push(record)
      const { improved, stop } = this.stopper.update(t, val.loss)
      if (improved) this.best = this.source.getWeights()
      if (record.epoch === this.keepEpoch) this.kept = this.source.getWeights()
      // history, then the user's hooks
      await this.hooks.history?.(record, this)
      for (const hook of this.hooks.onEpoch ?? []) await hook(record, this)
      // the stop decision: divergence first, then early stopping, then the last epoch
      if (!Number.isFinite(val.loss)) {
        this.stopReason = 'diverged'
        this.divergence = `epoch ${t + 1}: the validation loss became ${val.loss}; the learning rate (${lr}) is probably too high`
      } else if (stop) this.stopReason = 'early-stopping'
      else if (this.history.length >= c.epochs) this.stopReason = 'completed'
      // the checkpoint: what a run killed outright resumes from
      const ck = this.hooks.checkpoint
      if (ck && ck.every > 0 && !this.done && performance.now() - this.lastSave >= ck.every * 1000) {
        await ck.save('autosave')
        this.lastSave = performance.now()
      }
    }
  }

  private lastSave = performance.now()

  private async saveOnInterrupt(err: Error & { checkpoint?: unknown; checkpointError?: Error }): Promise<void> {
    const ck = this.hooks.checkpoint
    if (!ck) return
    try {
      err.checkpoint = await ck.save('interrupted')
    } catch (ce) {
      err.checkpointError = ce as Error
    }
  }

  /**
   * Ends the run: puts back the best validation epoch's weights when configured (or after a
   * divergence, whose last weights are useless). Runs once. A run that diverged before any usable
   * epoch has no weights to end with: `usable` is false, and engine drivers refuse it.
   */
  finish(): void {
    if (this.finished) return
    this.finished = true
    this.weightsEpoch = this.history.length
    if (this.best && (this.config.restoreBest || this.stopReason === 'diverged')) {
      this.source.setWeights(this.best)
      this.weightsEpoch = this.bestEpoch
      this.restoredBest = true
    }
    this.stopReason ??= 'completed'
    this.best = undefined
  }

  /** After finish(): false for a run that diverged before any epoch improved (its weights are useless). */
  get usable(): boolean {
    return !(this.stopReason === 'diverged' && !this.restoredBest)
  }

  /** The error for an unusable run, with the divergence in words. */
  divergedError(): Error {
    return Object.assign(new Error(`training diverged before any usable epoch (${this.divergence}); lower the learning rate`), { code: 'KANA_DIVERGED' })
  }

  /** The run's state, tensors copied (not the source's model: its owner adds that). Call between advances. */
  state(): RunState<W> {
    const copy = (ws: W[] | undefined) => ws?.map((w) => (w as unknown as Float32Array).slice() as unknown as W)
    return {
      progress: { ...this.progress, partial: this.progress.partial && { ...this.progress.partial }, pendingFit: this.progress.pendingFit && { ...this.progress.pendingFit } },
      history: this.history.map((h) => ({ ...h })),
      stopReason: this.stopReason,
      divergence: this.divergence,
      finished: this.finished,
      weightsEpoch: this.weightsEpoch,
      earlyStopping: this.stopper.toJSON(),
      best: copy(this.best),
      kept: copy(this.kept),
    }
  }

  /** Puts the run into state `s` (from state() of a run of the same configuration). */
  restore(s: RunState<W>): void {
    this.history.splice(0, this.history.length, ...s.history.map((h) => ({ ...h })))
    this.progress = { ...s.progress }
    this.stopReason = s.stopReason
    this.divergence = s.divergence
    this.finished = s.finished
    this.weightsEpoch = s.weightsEpoch
    this.stopper = EarlyStopping.fromJSON(s.earlyStopping)
    this.best = s.best
    this.kept = s.kept
  }
}

// Early stopping on validation loss.
//
// An epoch improves when valLoss < bestLoss − minDelta; `wait` counts consecutive epochs that did
// not. Training should stop on a non-improving epoch once wait ≥ patience. An improving epoch
// never stops training, so patience 0 and patience 1 both stop on the first non-improving epoch
// (the Keras / Lightning convention). NaN and ±Infinity never improve: diverging is the caller's
// problem to detect, but it must not become the "best" model.
//
// The class holds no weights. `restoreBest` is only carried (and checkpointed) so the training
// loop knows whether to reload the snapshot it saved at `bestEpoch`.

export interface EarlyStoppingOptions {
  /** Non-improving epochs tolerated: integer ≥ 0. */
  patience: number
  /** Required improvement margin: finite, ≥ 0. Default 0. */
  minDelta?: number
  /** Whether the caller should restore the weights of `bestEpoch` on stop. Default true. */
  restoreBest?: boolean
}

/** JSON-safe checkpoint. bestLoss is null until an epoch improves (JSON cannot hold Infinity). */
export interface EarlyStoppingState {
  patience: number
  minDelta: number
  restoreBest: boolean
  bestEpoch: number
  bestLoss: number | null
  wait: number
}

export interface EarlyStoppingDecision {
  improved: boolean
  stop: boolean
}

export class EarlyStopping {
  readonly patience: number
  readonly minDelta: number
  readonly restoreBest: boolean
  private best = Infinity
  private bestAt = -1
  private waited = 0

  constructor(opts: EarlyStoppingOptions) {
    const { patience } = opts
    const minDelta = opts.minDelta ?? 0
    if (!Number.isInteger(patience) || patience < 0) {
      throw new RangeError(`patience must be an integer >= 0, got ${patience}`)
    }
    if (typeof minDelta !== 'number' || !Number.isFinite(minDelta) || minDelta < 0) {
      throw new RangeError(`minDelta must be a finite number >= 0, got ${minDelta}`)
    }
    this.patience = patience
    this.minDelta = minDelta
    this.restoreBest = opts.restoreBest ?? true
  }

  /** Epoch of the best loss so far; −1 before any epoch improved. */
  get bestEpoch(): number {
    return this.bestAt
  }

  /** Best loss so far; Infinity before any epoch improved. */
  get bestLoss(): number {
    return this.best
  }

  /** Consecutive non-improving epochs since the best one. */
  get wait(): number {
    return this.waited
  }

  update(epoch: number, valLoss: number): EarlyStoppingDecision {
    if (!Number.isInteger(epoch) || epoch < 0) {
      throw new RangeError(`epoch must be an integer >= 0, got ${epoch}`)
    }
    // Written so that NaN compares false; the isFinite guard also rejects −Infinity.
    const improved = Number.isFinite(valLoss) && valLoss < this.best - this.minDelta
    if (improved) {
      this.best = valLoss
      this.bestAt = epoch
      this.waited = 0
      return { improved, stop: false }
    }
    this.waited++
    return { improved, stop: this.waited >= this.patience }
  }

  toJSON(): EarlyStoppingState {
    return {
      patience: this.patience,
      minDelta: this.minDelta,
      restoreBest: this.restoreBest,
      bestEpoch: this.bestAt,
      bestLoss: this.bestAt < 0 ? null : this.best,
      wait: this.waited,
    }
  }

  static fromJSON(state: EarlyStoppingState): EarlyStopping {
    if (state === null || typeof state !== 'object') {
      throw new RangeError('state must be an object')
    }
    // Checkpoints store every field, so a missing one is corruption, not a request for a default.
    if (typeof state.minDelta !== 'number') {
      throw new RangeError(`minDelta must be a number, got ${String(state.minDelta)}`)
    }
    if (typeof state.restoreBest !== 'boolean') {
      throw new RangeError(`restoreBest must be a boolean, got ${String(state.restoreBest)}`)
    }
    const es = new EarlyStopping({
      patience: state.patience,
      minDelta: state.minDelta,
      restoreBest: state.restoreBest,
    })
    const { bestEpoch, bestLoss, wait } = state
    if (!Number.isInteger(bestEpoch) || bestEpoch < -1) {
      throw new RangeError(`bestEpoch must be an integer >= -1, got ${bestEpoch}`)
    }
    if (bestEpoch === -1 ? bestLoss !== null : typeof bestLoss !== 'number' || !Number.isFinite(bestLoss)) {
      throw new RangeError(`bestLoss must be null iff bestEpoch is -1, else finite; got ${bestLoss}`)
    }
    if (!Number.isInteger(wait) || wait < 0) {
      throw new RangeError(`wait must be an integer >= 0, got ${wait}`)
    }
    es.best = bestLoss ?? Infinity
    es.bestAt = bestEpoch
    es.waited = wait
    return es
  }
}

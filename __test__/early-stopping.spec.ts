import test, { type ExecutionContext } from 'ava'
import fc from 'fast-check'

import { EarlyStopping, type EarlyStoppingOptions, type EarlyStoppingState } from '../src/training/early-stopping'

/** Feed losses from epoch 0; return the epoch at which stop first came back true (or −1). */
function run(es: EarlyStopping, losses: number[], from = 0): number {
  for (let e = from; e < losses.length; e++) {
    if (es.update(e, losses[e]).stop) return e
  }
  return -1
}

function expectRun(
  t: ExecutionContext,
  opts: EarlyStoppingOptions,
  losses: number[],
  want: { stopEpoch: number; bestEpoch: number; bestLoss: number; wait: number },
): void {
  const es = new EarlyStopping(opts)
  t.is(run(es, losses), want.stopEpoch, 'stop epoch')
  t.is(es.bestEpoch, want.bestEpoch, 'best epoch')
  t.is(es.bestLoss, want.bestLoss, 'best loss')
  t.is(es.wait, want.wait, 'wait')
}

test('fresh state', (t) => {
  const es = new EarlyStopping({ patience: 3 })
  t.is(es.bestEpoch, -1)
  t.is(es.bestLoss, Infinity)
  t.is(es.wait, 0)
  t.is(es.minDelta, 0)
  t.true(es.restoreBest)
  t.false(new EarlyStopping({ patience: 3, restoreBest: false }).restoreBest)
})

test('patience 2: stops on the second non-improving epoch; a tie is not an improvement', (t) => {
  // e0 1.0 best · e1 0.8 best · e2 0.85 wait 1 · e3 0.8 (= best, not <) wait 2 → stop.
  const es = new EarlyStopping({ patience: 2 })
  t.deepEqual(es.update(0, 1.0), { improved: true, stop: false })
  t.deepEqual(es.update(1, 0.8), { improved: true, stop: false })
  t.deepEqual(es.update(2, 0.85), { improved: false, stop: false })
  t.deepEqual(es.update(3, 0.8), { improved: false, stop: true })
  t.is(es.bestEpoch, 1)
  t.is(es.bestLoss, 0.8)
  t.is(es.wait, 2)
})

test('an improvement resets wait', (t) => {
  // e0 1.0 best · e1 0.9 best · e2 0.95 w1 · e3 0.85 best w0 · e4 0.9 w1 · e5 0.88 w2 → stop at 5.
  expectRun(t, { patience: 2 }, [1.0, 0.9, 0.95, 0.85, 0.9, 0.88, 0.7], {
    stopEpoch: 5,
    bestEpoch: 3,
    bestLoss: 0.85,
    wait: 2,
  })
})

test('minDelta: improvement must exceed the margin', (t) => {
  // minDelta 0.05, patience 2:
  // e0 1.0 best · e1 0.96 (needs < 0.95) w1 · e2 0.94 best w0 · e3 0.9 (needs < 0.89) w1 ·
  // e4 0.88 best w0 · e5 0.87 w1 · e6 0.86 w2 → stop at 6 with best 0.88 at epoch 4.
  const losses = [1.0, 0.96, 0.94, 0.9, 0.88, 0.87, 0.86]
  expectRun(t, { patience: 2, minDelta: 0.05 }, losses, { stopEpoch: 6, bestEpoch: 4, bestLoss: 0.88, wait: 2 })
  // Without the margin every epoch improves and training never stops.
  expectRun(t, { patience: 2 }, losses, { stopEpoch: -1, bestEpoch: 6, bestLoss: 0.86, wait: 0 })
})

test('minDelta: an improvement of exactly minDelta does not count', (t) => {
  // Dyadic values so the arithmetic is exact: 1 − 0.25 = 0.75, and 0.75 < 0.75 is false.
  const es = new EarlyStopping({ patience: 5, minDelta: 0.25 })
  es.update(0, 1)
  t.false(es.update(1, 0.75).improved)
  t.true(es.update(2, 0.5).improved)
  t.is(es.bestEpoch, 2)
})

test('patience 0 (and 1): stop on the first non-improving epoch, never on an improving one', (t) => {
  for (const patience of [0, 1]) {
    const es = new EarlyStopping({ patience })
    t.deepEqual(es.update(0, 1.0), { improved: true, stop: false })
    t.deepEqual(es.update(1, 0.9), { improved: true, stop: false })
    t.deepEqual(es.update(2, 0.9), { improved: false, stop: true })
    t.is(es.bestEpoch, 1)
  }
})

test('NaN and ±Infinity never improve', (t) => {
  // e0 1.0 best · e1 NaN w1 · e2 +Inf w2 · e3 −Inf w3 → stop (patience 3); best untouched.
  expectRun(t, { patience: 3 }, [1.0, Number.NaN, Infinity, -Infinity], {
    stopEpoch: 3,
    bestEpoch: 0,
    bestLoss: 1.0,
    wait: 3,
  })
  // A NaN first epoch leaves no best at all.
  expectRun(t, { patience: 1 }, [Number.NaN], { stopEpoch: 0, bestEpoch: -1, bestLoss: Infinity, wait: 1 })
  // A finite loss after NaNs still improves and resets wait.
  const es = new EarlyStopping({ patience: 3 })
  es.update(0, Number.NaN)
  es.update(1, Number.NaN)
  t.deepEqual(es.update(2, 5), { improved: true, stop: false })
  t.is(es.wait, 0)
})

test('JSON round-trip at every point gives identical decisions', (t) => {
  const losses = [2.0, 1.5, Number.NaN, 1.4, 1.45, 1.39, 1.41, 1.42, 1.43, 1.2]
  const opts = { patience: 3, minDelta: 0.02, restoreBest: false }
  const reference = new EarlyStopping(opts)
  const decisions = losses.map((l, e) => reference.update(e, l))
  for (let split = 0; split <= losses.length; split++) {
    const first = new EarlyStopping(opts)
    for (let e = 0; e < split; e++) first.update(e, losses[e])
    const state = JSON.parse(JSON.stringify(first)) as EarlyStoppingState
    const resumed = EarlyStopping.fromJSON(state)
    t.deepEqual(resumed.toJSON(), first.toJSON(), `split ${split}`)
    t.is(resumed.restoreBest, false)
    for (let e = split; e < losses.length; e++) {
      t.deepEqual(resumed.update(e, losses[e]), decisions[e], `split ${split}, epoch ${e}`)
    }
    t.deepEqual(resumed.toJSON(), reference.toJSON())
  }
})

test('toJSON before any improvement stores bestLoss as null', (t) => {
  const es = new EarlyStopping({ patience: 2 })
  es.update(0, Number.NaN)
  t.deepEqual(es.toJSON(), { patience: 2, minDelta: 0, restoreBest: true, bestEpoch: -1, bestLoss: null, wait: 1 })
  const back = EarlyStopping.fromJSON(JSON.parse(JSON.stringify(es)))
  t.is(back.bestLoss, Infinity)
  t.is(back.wait, 1)
})

test('validation', (t) => {
  for (const patience of [-1, 1.5, Number.NaN]) {
    t.throws(() => new EarlyStopping({ patience }), { instanceOf: RangeError, message: /^patience/ })
  }
  for (const minDelta of [-0.1, Number.NaN, Infinity]) {
    t.throws(() => new EarlyStopping({ patience: 1, minDelta }), { instanceOf: RangeError, message: /^minDelta/ })
  }
  const es = new EarlyStopping({ patience: 1 })
  for (const epoch of [-1, 0.5, Number.NaN]) {
    t.throws(() => es.update(epoch, 1), { instanceOf: RangeError, message: /^epoch/ })
  }
  const good: EarlyStoppingState = { patience: 2, minDelta: 0, restoreBest: true, bestEpoch: 3, bestLoss: 0.5, wait: 1 }
  t.notThrows(() => EarlyStopping.fromJSON(good))
  const bad: Array<[Partial<Record<keyof EarlyStoppingState, unknown>>, RegExp]> = [
    [{ patience: -1 }, /^patience/],
    [{ minDelta: undefined }, /^minDelta/],
    [{ restoreBest: 'yes' }, /^restoreBest/],
    [{ bestEpoch: -2 }, /^bestEpoch/],
    [{ bestLoss: null }, /^bestLoss/],
    [{ bestEpoch: -1 }, /^bestLoss/],
    [{ bestLoss: Number.NaN }, /^bestLoss/],
    [{ wait: -1 }, /^wait/],
  ]
  for (const [patch, message] of bad) {
    const state = { ...good, ...patch } as EarlyStoppingState
    t.throws(() => EarlyStopping.fromJSON(state), { instanceOf: RangeError, message }, JSON.stringify(patch))
  }
  t.throws(() => EarlyStopping.fromJSON(null as never), { instanceOf: RangeError })
})

test('matches a direct formulation: stop at the first e with no improvement and e − bestEpoch ≥ patience', (t) => {
  const loss = fc.oneof(
    { weight: 8, arbitrary: fc.double({ min: 0, max: 4, noNaN: true }) },
    { weight: 1, arbitrary: fc.constantFrom(Number.NaN, Infinity, -Infinity) },
  )
  fc.assert(
    fc.property(
      fc.array(loss, { maxLength: 40 }),
      fc.nat(6),
      fc.constantFrom(0, 0.01, 0.1),
      (losses, patience, minDelta) => {
        let best = Infinity
        let bestEpoch = -1
        let want = -1
        for (let e = 0; e < losses.length && want < 0; e++) {
          if (Number.isFinite(losses[e]) && losses[e] < best - minDelta) {
            best = losses[e]
            bestEpoch = e
          } else if (e - bestEpoch >= patience) {
            want = e
          }
        }
        const es = new EarlyStopping({ patience, minDelta })
        return run(es, losses) === want && es.bestEpoch === bestEpoch && (bestEpoch < 0 || es.bestLoss === best)
      },
    ),
    { seed: 20240501, numRuns: 500 },
  )
  t.pass()
})

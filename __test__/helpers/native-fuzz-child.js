'use strict'
// The native-boundary fuzzer, run in a child process by __test__/native-fuzz.spec.ts so that a
// native crash (a signal) or a hang shows up as a failed test naming the seed and the input
// instead of killing the test runner. Can be run by hand:
//
//   KANA_FUZZ_SEED=123 KANA_FUZZ_MS=20000 node --expose-gc __test__/helpers/native-fuzz-child.js
//
// It calls every function of the raw binding (`require('../../index.js').native`) with random and
// adversarial arguments (wrong types, missing arguments, NaN/±Inf/-0/huge/fractional numbers,
// giant and zero layer sizes, typed arrays of every kind, detached, shared, offset and resizable
// buffers, proxies and objects whose getters throw, free the model, detach buffers, start other
// calls or collect garbage, poisoned prototypes, handles of the wrong kind, freed and busy models,
// arrays of the wrong length, labels out of range, training states that lie) and checks:
//   * a call either returns well-formed output or throws a TypeError/RangeError/Error/AbortError
//     with a non-empty message (or lets the exception of a hostile getter through untouched);
//   * every Promise settles (a hang is a failure) and leaves the model usable;
//   * a set* call that succeeded did not read an array detached during the call (use after free);
//   * the process neither crashes nor hangs (that is the parent's check).
// Prints one JSON line at the end: { seed, runs, ms, slowest, calls, succeeded, outcomes, failure }.
//
// Environment: KANA_FUZZ_SEED, KANA_FUZZ_MS (time budget), KANA_FUZZ_RUNS (at most), KANA_FUZZ_LAST
// (file that holds the input being run: what a crash was doing), KANA_FUZZ_REPLAY (run one input,
// as printed), KANA_FUZZ_BINDING (another build's binding module, e.g. one built with ASan: see
// scripts/asan.mjs), KANA_FUZZ_SLOW=ms (print inputs slower than that), KANA_FUZZ_DEBUG=fn (print
// the errors fn throws).
const fc = require('fast-check')
const fs = require('node:fs')
const { native } = require(process.env.KANA_FUZZ_BINDING ?? '../../index.js')

const SEED = Number(process.env.KANA_FUZZ_SEED ?? 1)
const BUDGET_MS = Number(process.env.KANA_FUZZ_MS ?? 20000)
const MAX_RUNS = Number(process.env.KANA_FUZZ_RUNS ?? 1_000_000)
const LAST = process.env.KANA_FUZZ_LAST // the current input is written here before each run
const gc = typeof global.gc === 'function' ? global.gc : () => {}

const FUNCTIONS = [
  'createModel', 'freeModel', 'modelInfo', 'getWeights', 'setWeights', 'getTrainingState', 'setTrainingState',
  'cancel', 'progress', 'createPixels', 'writePixels', 'createDataset', 'datasetInfo', 'fitEpoch', 'evaluate', 'predictProba', 'cpuFeatures',
]
const MAX_WIDTH = 2 ** 20
const MAX_PARAMS = 2 ** 28
const ALLOWED_ERRORS = new Set(['TypeError', 'RangeError', 'Error', 'AbortError'])
const TYPES = [
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
  'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array',
]

/** What a hostile getter throws: must come out of the native call untouched. */
class Hostile extends Error {}
const HOSTILE_VALUE = Object.freeze({ hostile: true }) // thrown as is: not an Error at all

// ---------------------------------------------------------------------------------------------
// Descriptors: plain data (printable, shrinkable) turned into live values per run by build().

const ACTIONS = ['throw', 'throwValue', 'free', 'detach', 'shrink', 'gc', 'cancel', 'reenter', 'fit', 'nothing']
const action = fc.constantFrom(...ACTIONS)

const specialNumber = fc.constantFrom(
  0, -0, 1, -1, 0.5, 1.5, -2.5, NaN, Infinity, -Infinity, 2 ** 20, 2 ** 20 + 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1,
  2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 1e300, -1e300, Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON, 4096, 65536,
)
const anyNumber = fc.oneof(specialNumber, fc.integer({ min: -10, max: 100 }), fc.double())
const primitive = fc.oneof(
  fc.constant(undefined), fc.constant(null), fc.boolean(), anyNumber, fc.string({ maxLength: 8 }),
  fc.constantFrom('gd', 'sgd', 'adam', '0', '18446744073709551615', '18446744073709551616', '-1', ' 1', '1e3', 'a\u0000b', '\ud800'),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
)
const typedDesc = fc.record({
  k: fc.constant('typed'),
  type: fc.constantFrom(...TYPES),
  len: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom(0, 1, 784)),
  fill: fc.constantFrom('zero', 'seq', 'nan', 'big', 'neg'),
  mode: fc.constantFrom('plain', 'plain', 'plain', 'detached', 'shared', 'offset', 'resizable'),
})
const leaf = fc.oneof(
  { weight: 4, arbitrary: primitive.map((v) => ({ k: 'prim', v })) },
  { weight: 3, arbitrary: typedDesc },
  { weight: 1, arbitrary: fc.constantFrom('symbol', 'fn', 'date', 'regexp', 'boxed', 'arraybuffer', 'sab', 'dataview', 'map', 'promise', 'sparse', 'bigint').map((what) => ({ k: 'misc', what })) },
  { weight: 3, arbitrary: fc.constantFrom('model', 'freed', 'busy', 'dataset', 'unlabeled', 'otherDataset', 'freshModel', 'pixels', 'roomyPixels', 'takenPixels').map((which) => ({ k: 'handle', which })) },
)
const { value: anyDesc } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object'), tie('proxy')),
  array: fc.record({ k: fc.constant('array'), items: fc.array(tie('value'), { maxLength: 5 }), hostile: fc.option(fc.record({ index: fc.nat(6), action })) }),
  object: fc.record({
    k: fc.constant('object'),
    fields: fc.dictionary(fc.constantFrom('optimizer', 'lr', 'l2', 'batchSize', 'step', 'rng', 'm', 'v', 'partialEpoch', 'order', 'x'), tie('value'), { maxKeys: 4 }),
    hostile: fc.option(fc.record({ key: fc.constantFrom('optimizer', 'lr', 'batchSize', 'step', 'rng', 'm', 'v', 'partialEpoch'), action })),
    proto: fc.constantFrom('plain', 'plain', 'null', 'array'),
  }),
  proxy: fc.record({ k: fc.constant('proxy'), target: tie('value'), trap: action }),
}))

/** Mostly `valid`, sometimes `wild`: each field of a near-valid argument is valid ~90% of the time. */
const mostly = (valid, wild, ratio = 12) => fc.oneof({ weight: ratio, arbitrary: valid }, { weight: 1, arbitrary: wild })
const prim = (arb) => arb.map((v) => ({ k: 'prim', v }))
const wildNumber = fc.oneof(prim(specialNumber), anyDesc)
/** An integer in `[min, max]`, or now and then a special number or anything at all. */
const intish = (min, max) => mostly(prim(fc.integer({ min, max })), wildNumber)
const numberish = (valid) => mostly(prim(valid), wildNumber)
/** `arb`, or the field left out. */
const maybe = (arb, missing = 1) => fc.oneof({ weight: 12, arbitrary: arb }, { weight: missing, arbitrary: fc.constant({ k: 'missing' }) })
/** A hostile getter now and then; 'detach' weighs more, as it is what borrowed memory fears. */
const hostileAt = (keyArb, freq) => fc.option(fc.record({ key: keyArb, action: fc.oneof(fc.constant('detach'), action) }), { freq })

// The context every run starts from: a small model and data sets that fit it.
const ctxSpec = fc.record({
  f: fc.integer({ min: 1, max: 12 }),
  h: fc.integer({ min: 1, max: 8 }),
  // now and then far more classes than a K×K confusion matrix can hold in a typed array
  k: mostly(fc.integer({ min: 2, max: 5 }), fc.constant(70000), 80),
  n: fc.oneof(fc.integer({ min: 2, max: 40 }), fc.constantFrom(0, 1)),
  threads: fc.integer({ min: 1, max: 2 }),
  trained: fc.constantFrom('no', 'no', 'adam', 'partial'),
})

const layerSize = mostly(prim(fc.integer({ min: 1, max: 12 })), wildNumber, 16)
const layersDesc = mostly(
  fc.record({
    k: fc.constant('array'),
    items: mostly(fc.array(layerSize, { minLength: 2, maxLength: 4 }), fc.array(layerSize, { maxLength: 6 }), 8),
    hostile: fc.option(fc.record({ index: fc.nat(5), action }), { freq: 10 }),
  }),
  anyDesc, 8,
)
// the model's own parameters (or zeros of their shapes), or a mutation of them
const weightsDesc = mostly(
  fc.record({
    k: fc.constant('weights'), of: fc.constantFrom('model', 'model', 'zeros', 'zeros', 'state'),
    mutate: fc.option(fc.record({ index: fc.nat(7), how: fc.constantFrom('drop', 'extra', 'short', 'long', 'nan', 'inf', 'f64', 'u8', 'detached', 'shared', 'offset', 'resizable', 'value'), value: anyDesc }), { freq: 5 }),
    hostile: fc.option(fc.record({ index: fc.nat(4), action: fc.oneof(fc.constant('detach'), action) }), { freq: 4 }),
  }),
  anyDesc, 12,
)
const orderDesc = mostly(
  fc.record({ k: fc.constant('order'), how: fc.oneof({ weight: 6, arbitrary: fc.constant('perm') }, { weight: 1, arbitrary: fc.constantFrom('outOfRange', 'repeat', 'short', 'empty', 'i32', 'detached', 'shared', 'huge') }) }),
  anyDesc, 6,
)
const partialDesc = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ k: 'prim', v: null }) },
  // one a real abort could leave (needs n ≥ 2): step 1 of batches of 1
  { weight: 3, arbitrary: fc.record({
    k: fc.constant('object'), proto: fc.constant('plain'),
    fields: fc.record({ order: orderDesc, batchSize: intish(1, 1), nextStep: intish(1, 1), loss: numberish(fc.constantFrom(0, 0.5, 2)), correct: intish(0, 1) }),
    hostile: hostileAt(fc.constantFrom('order', 'batchSize', 'nextStep', 'loss', 'correct'), 4),
  }) },
  // lies of every sort
  { weight: 2, arbitrary: fc.record({
    k: fc.constant('object'), proto: fc.constant('plain'),
    fields: fc.record({ order: maybe(orderDesc), batchSize: maybe(intish(0, 50)), nextStep: maybe(intish(0, 50)), loss: maybe(numberish(fc.double({ min: -1, max: 100, noNaN: true }))), correct: maybe(intish(0, 60)) }),
    hostile: hostileAt(fc.constantFrom('order', 'batchSize', 'nextStep', 'loss', 'correct'), 4),
  }) },
  { weight: 1, arbitrary: anyDesc },
)
const moments = mostly(weightsDesc, fc.constant({ k: 'array', items: [], hostile: null }), 10)
const randomState = mostly(
  fc.record({
    k: fc.constant('object'), proto: fc.constantFrom('plain', 'plain', 'plain', 'null'),
    fields: fc.record({
      step: maybe(intish(0, 1000)),
      rng: maybe(mostly(prim(fc.constantFrom('0', '1', '12345', '18446744073709551615')), fc.oneof(prim(fc.constantFrom('18446744073709551616', '-1', '', '1.5', ' 7', '0x10')), anyDesc), 8)),
      m: maybe(moments),
      v: maybe(moments),
      partialEpoch: maybe(partialDesc, 4),
    }),
    // (the getters read last are where detaching what was read before matters)
    hostile: hostileAt(fc.constantFrom('v', 'partialEpoch', 'v', 'partialEpoch', 'm', 'step', 'rng'), 3),
  }),
  anyDesc, 8,
)
// the model's own training state (copied), with at most one field replaced or removed
const stateDesc = fc.oneof(
  { weight: 6, arbitrary: fc.record({
    k: fc.constant('state'),
    of: fc.constantFrom('model', 'model', 'other'),
    mutate: fc.option(fc.record({ key: fc.constantFrom('step', 'rng', 'm', 'v', 'partialEpoch'), value: fc.oneof(fc.constant({ k: 'missing' }), anyDesc, prim(specialNumber), weightsDesc, partialDesc) }), { freq: 3 }),
    hostile: hostileAt(fc.constantFrom('v', 'partialEpoch', 'v', 'partialEpoch', 'm', 'step', 'rng'), 3),
  }) },
  { weight: 3, arbitrary: randomState },
)
const optionsDesc = mostly(
  fc.record({
    k: fc.constant('object'), proto: fc.constantFrom('plain', 'plain', 'plain', 'null'),
    fields: fc.record({
      optimizer: maybe(mostly(prim(fc.constantFrom('gd', 'sgd', 'adam')), fc.oneof(prim(fc.constantFrom('Adam', '', 'gd\u0000')), anyDesc), 8)),
      lr: maybe(mostly(prim(fc.constantFrom(1e-3, 0.01, 0.1)), fc.oneof(prim(fc.constantFrom(1, 1e30, 1e-50, 3.4e38, 0)), wildNumber), 8)),
      l2: maybe(numberish(fc.constantFrom(0, 1e-3, 0.1)), 3),
      batchSize: maybe(intish(1, 50)),
      beta1: maybe(numberish(fc.constantFrom(0.9, 0.5)), 6),
      beta2: maybe(numberish(fc.constantFrom(0.999, 0.9)), 6),
      eps: maybe(numberish(fc.constantFrom(1e-8, 1e-3)), 6),
    }),
    hostile: hostileAt(fc.constantFrom('optimizer', 'lr', 'l2', 'batchSize', 'beta1', 'eps'), 5),
  }),
  anyDesc, 8,
)
const imagesDesc = mostly(
  fc.record({
    k: fc.constant('images'),
    rows: mostly(fc.constant('n'), fc.integer({ min: 0, max: 40 }), 8),
    extra: mostly(fc.constant(0), fc.constantFrom(1, -1), 8),
    features: mostly(fc.constant('f'), fc.constant('other'), 8),
    mode: mostly(fc.constant('plain'), fc.constantFrom('clamped', 'detached', 'shared', 'offset', 'resizable'), 3),
  }),
  anyDesc, 8,
)
const labelsDesc = fc.oneof(
  { weight: 10, arbitrary: fc.record({
    k: fc.constant('labels'),
    type: mostly(fc.constantFrom('Uint8Array', 'Int8Array', 'Uint16Array', 'Int16Array', 'Uint32Array', 'Int32Array'), fc.constantFrom('Float32Array', 'BigInt64Array', 'Float64Array'), 10),
    extra: mostly(fc.constant(0), fc.constantFrom(1, -1), 8),
    bad: mostly(fc.constant('none'), fc.constantFrom('tooBig', 'negative', 'max'), 4),
    mode: mostly(fc.constant('plain'), fc.constantFrom('detached', 'shared', 'offset', 'resizable'), 4),
  }) },
  { weight: 1, arbitrary: prim(fc.constantFrom(null, undefined)) },
  { weight: 1, arbitrary: anyDesc },
)
const handleDesc = (which) => mostly(fc.constant({ k: 'handle', which }), fc.oneof(fc.constantFrom('freed', 'busy', 'dataset', 'model', 'otherDataset', 'unlabeled', 'freshModel', 'pixels', 'roomyPixels', 'takenPixels').map((w) => ({ k: 'handle', which: w })), anyDesc), 10)
const model = handleDesc('model')
const dataset = handleDesc('dataset')

const argsFor = {
  createModel: fc.tuple(layersDesc, intish(0, 1e6), intish(1, 3)),
  freeModel: fc.tuple(model),
  modelInfo: fc.tuple(model),
  getWeights: fc.tuple(model),
  setWeights: fc.tuple(model, weightsDesc),
  getTrainingState: fc.tuple(model),
  setTrainingState: fc.tuple(model, stateDesc),
  cancel: fc.tuple(model),
  progress: fc.tuple(model),
  createPixels: fc.tuple(intish(0, 4096)),
  writePixels: fc.tuple(handleDesc('roomyPixels'), imagesDesc),
  // images: a Uint8Array, or a native pixel buffer (complete, with room left, or already taken)
  createDataset: fc.tuple(fc.oneof({ weight: 4, arbitrary: imagesDesc }, { weight: 1, arbitrary: fc.constantFrom('pixels', 'roomyPixels', 'takenPixels').map((which) => ({ k: 'handle', which })) }), labelsDesc, mostly(fc.constant({ k: 'features' }), intish(0, 20), 6)),
  datasetInfo: fc.tuple(dataset),
  fitEpoch: fc.tuple(model, dataset, optionsDesc),
  evaluate: fc.tuple(model, dataset),
  predictProba: fc.tuple(model, dataset),
  cpuFeatures: fc.tuple(),
}

const POISON_KEYS = ['loss', 'accuracy', 'steps', 'layers', 'threads', 'params', 'step', 'rng', 'm', 'v', 'partialEpoch', 'order', 'arch', 'length', 'features', 'labeled', 'confusion', '0', '1', 'name', 'code']
const scenario = fc.oneof(
  // one function, its arguments usually near-valid, sometimes anything
  { weight: 12, arbitrary: fc.constantFrom(...FUNCTIONS).chain((fn) => fc.record({
    fn: fc.constant(fn),
    args: argsFor[fn],
    ctx: ctxSpec,
    style: mostly(fc.constant('call'), fc.constantFrom('new', 'this', 'extra', 'fewer'), 8),
    poison: fc.option(fc.record({ on: fc.constantFrom('Object', 'Array'), key: fc.constantFrom(...POISON_KEYS), action }), { freq: 12 }),
    parallel: mostly(fc.constant(0), fc.constantFrom(1, 2), 6),
  })) },
  // one function, every argument anything at all
  { weight: 1, arbitrary: fc.record({
    fn: fc.constantFrom(...FUNCTIONS), args: fc.array(anyDesc, { maxLength: 4 }), ctx: ctxSpec,
    style: fc.constant('call'), poison: fc.constant(null), parallel: fc.constant(0),
  }) },
)

// ---------------------------------------------------------------------------------------------
// Building live values

function fill(a, how) {
  const big = a instanceof BigInt64Array || a instanceof BigUint64Array
  for (let i = 0; i < a.length; i++) {
    let x = how === 'seq' ? i : how === 'nan' ? NaN : how === 'big' ? 1e300 : how === 'neg' ? -1 - i : 0
    if (big) x = BigInt(Number.isFinite(x) ? Math.trunc(Math.max(-1e15, Math.min(1e15, x))) : 0)
    a[i] = x
  }
  return a
}

/** A typed array of `type` holding `values`, in a buffer of the given `mode`. */
function typed(ctx, type, values, mode) {
  const C = globalThis[type]
  const len = values.length
  const bytes = len * C.BYTES_PER_ELEMENT
  let buf, a
  if (mode === 'shared') {
    a = new C(new SharedArrayBuffer(bytes))
  } else if (mode === 'offset') {
    buf = new ArrayBuffer(bytes + 3 * C.BYTES_PER_ELEMENT)
    a = new C(buf, 3 * C.BYTES_PER_ELEMENT, len)
  } else if (mode === 'resizable') {
    buf = new ArrayBuffer(bytes, { maxByteLength: bytes + 64 })
    a = new C(buf) // length-tracking
    ctx.resizables.push(buf)
  } else {
    buf = new ArrayBuffer(bytes)
    a = new C(buf)
  }
  a.set(values)
  if (buf) ctx.buffers.push(buf)
  if (mode === 'detached') detach(buf)
  return a
}

function detach(buf) {
  try {
    structuredClone(buf, { transfer: [buf] })
  } catch {
    /* already detached */
  }
}

/** The buffers under `value` (a typed array, or an array of them). */
function buffersOf(value) {
  const views = ArrayBuffer.isView(value) ? [value] : Array.isArray(value) ? value.filter((x) => ArrayBuffer.isView(x)) : []
  return new Set(views.map((v) => v.buffer))
}

/** Does `what`; a getter's own `value` is spared by 'detach', so the call can read on with it. */
function act(what, ctx, value) {
  ctx.actions++
  if (ctx.actions > 20) return // a getter read again and again does its thing a bounded number of times
  switch (what) {
    case 'throw': throw new Hostile('thrown by a hostile getter')
    case 'throwValue': throw HOSTILE_VALUE
    case 'free': try { native.freeModel(ctx.model) } catch (e) { ctx.sideErrors.push(e) } break
    case 'detach': { const spare = buffersOf(value); ctx.buffers.filter((b) => !spare.has(b)).forEach(detach); gc(); break }
    case 'shrink': for (const b of ctx.resizables) try { b.resize(0) } catch { /* detached */ } break
    case 'gc': gc(); break
    case 'cancel': native.cancel(ctx.model); break
    case 'reenter': reenter(ctx); break
    case 'fit': try { track(ctx, native.fitEpoch(ctx.model, ctx.dataset, { optimizer: 'sgd', lr: 0.1, batchSize: 1 })) } catch (e) { ctx.sideErrors.push(e) } break
  }
}

/** Keeps a Promise to be awaited at the end of the run (handled now, so no unhandled rejection). */
function track(ctx, p) {
  p.catch(() => {})
  ctx.pending.push(p)
}

/** Calls the binding again from inside a getter/setter/trap (depth 1 only). */
function reenter(ctx) {
  if (ctx.depth > 0) return
  ctx.depth++
  const fns = [
    () => native.modelInfo(ctx.model), () => native.getWeights(ctx.model), () => native.getTrainingState(ctx.model),
    () => native.setWeights(ctx.model, native.getWeights(ctx.other)), () => native.freeModel(ctx.model),
    () => native.evaluate(ctx.model, ctx.dataset), () => native.predictProba(ctx.model, ctx.dataset), () => native.progress(ctx.model),
  ]
  try {
    const r = fns[ctx.reentries++ % fns.length]()
    if (r instanceof Promise) track(ctx, r)
  } catch (e) {
    ctx.sideErrors.push(e)
  } finally {
    ctx.depth--
  }
}

function withHostile(obj, key, action, ctx) {
  if (!action) return obj
  const value = obj[key]
  Object.defineProperty(obj, key, { configurable: true, enumerable: true, get() { act(action, ctx, value); return value } })
  return obj
}

function build(d, ctx) {
  switch (d.k) {
    case 'missing': return undefined
    case 'prim': return d.v
    case 'typed': {
      const C = globalThis[d.type]
      return typed(ctx, d.type, Array.from(fill(new C(d.len), d.fill)), d.mode)
    }
    case 'misc': switch (d.what) {
      case 'symbol': return Symbol('s')
      case 'fn': return function f() { return 1 }
      case 'date': return new Date(0)
      case 'regexp': return /x/
      case 'boxed': return Object(3)
      case 'arraybuffer': return new ArrayBuffer(8)
      case 'sab': return new SharedArrayBuffer(8)
      case 'dataview': return new DataView(new ArrayBuffer(8))
      case 'map': return new Map([[1, 2]])
      case 'promise': return Promise.resolve(1)
      case 'sparse': { const a = []; a.length = 2 ** 32 - 1; return a } // an empty array claiming 2^32 − 1 entries
      case 'bigint': return new BigUint64Array([2n ** 64n - 1n])
    } break
    case 'handle': switch (d.which) {
      case 'model': return ctx.model
      case 'freshModel': return ctx.other
      case 'freed': return ctx.freed
      case 'busy': act('fit', ctx); return ctx.model
      case 'dataset': return ctx.dataset
      case 'unlabeled': return ctx.unlabeled
      case 'otherDataset': return ctx.otherDataset
      case 'pixels': return ctx.pixels
      case 'roomyPixels': return ctx.roomyPixels
      case 'takenPixels': return ctx.takenPixels
    } break
    case 'array': {
      const a = d.items.map((x) => build(x, ctx))
      if (d.hostile) withHostile(a, d.hostile.index, d.hostile.action, ctx)
      return a
    }
    case 'object': {
      const o = d.proto === 'null' ? Object.create(null) : d.proto === 'array' ? [] : {}
      for (const [k, v] of Object.entries(d.fields)) if (v.k !== 'missing') o[k] = build(v, ctx)
      if (d.hostile) withHostile(o, d.hostile.key, d.hostile.action, ctx)
      return o
    }
    case 'proxy': {
      const t = build(d.target, ctx)
      if (t === null || (typeof t !== 'object' && typeof t !== 'function')) return t
      return new Proxy(t, { get(target, key) { act(d.trap, ctx); return Reflect.get(target, key) }, has(target, key) { act(d.trap, ctx); return Reflect.has(target, key) } })
    }
    case 'features': return ctx.spec.f
    case 'images': {
      const rows = d.rows === 'n' ? ctx.spec.n : d.rows
      const f = d.features === 'f' ? ctx.spec.f : ctx.spec.f + 1
      const values = Array.from({ length: Math.max(0, rows * f + d.extra) }, (_, i) => (i * 37) & 255)
      return typed(ctx, d.mode === 'clamped' ? 'Uint8ClampedArray' : 'Uint8Array', values, d.mode === 'clamped' ? 'plain' : d.mode)
    }
    case 'labels': {
      const n = Math.max(0, ctx.spec.n + d.extra)
      const bad = { none: null, tooBig: ctx.spec.k, negative: -1, max: 2 ** 31 - 1 }[d.bad]
      let values = Array.from({ length: n }, (_, i) => (i % ctx.spec.k))
      if (bad != null && n > 0) values[n - 1] = bad
      if (d.type === 'BigInt64Array') values = values.map(BigInt)
      return typed(ctx, d.type, values, d.mode)
    }
    case 'weights': {
      let arrays
      try {
        arrays = d.of === 'state' ? native.getTrainingState(ctx.model).m : native.getWeights(ctx.model)
        if (d.of === 'zeros') arrays = arrays.map((a) => new Float32Array(a.length))
      } catch (e) {
        ctx.sideErrors.push(e) // the model was freed or is busy: fall back to its known shapes
        arrays = ctx.shapes.map((n) => new Float32Array(n))
      }
      arrays = arrays.map((a) => typed(ctx, 'Float32Array', a, 'plain'))
      const m = d.mutate
      if (m) {
        const i = arrays.length ? m.index % arrays.length : 0
        const a = arrays[i]
        switch (m.how) {
          case 'drop': arrays.splice(i, 1); break
          case 'extra': arrays.push(new Float32Array(3)); break
          case 'short': if (a) arrays[i] = a.subarray(1); break
          case 'long': if (a) arrays[i] = new Float32Array(a.length + 1); break
          case 'nan': if (a && a.length) a[a.length - 1] = NaN; break
          case 'inf': if (a && a.length) a[0] = -Infinity; break
          case 'f64': if (a) arrays[i] = Float64Array.from(a); break
          case 'u8': if (a) arrays[i] = new Uint8Array(a.length); break
          case 'detached': case 'shared': case 'offset': case 'resizable': if (a) arrays[i] = typed(ctx, 'Float32Array', a, m.how); break
          case 'value': arrays[i] = build(m.value, ctx); break
        }
      }
      if (d.hostile) withHostile(arrays, d.hostile.index, d.hostile.action, ctx)
      for (let i = 0; i < arrays.length; i++) {
        const a = Object.getOwnPropertyDescriptor(arrays, i)?.value // (not through a hostile getter)
        if (a instanceof Float32Array && a.length > 0) ctx.consumed.push(a)
      }
      return arrays
    }
    case 'state': {
      let st
      try {
        st = native.getTrainingState(d.of === 'model' ? ctx.model : ctx.other)
      } catch (e) {
        ctx.sideErrors.push(e)
        st = { step: 0, rng: '1', m: [], v: [], partialEpoch: null }
      }
      const copy = (arrays) => arrays.map((a) => typed(ctx, 'Float32Array', a, 'plain'))
      const o = { step: st.step, rng: st.rng, m: copy(st.m), v: copy(st.v), partialEpoch: st.partialEpoch && { ...st.partialEpoch, order: typed(ctx, 'Uint32Array', st.partialEpoch.order, 'plain') } }
      for (const a of [...o.m, ...o.v]) if (a.length > 0) ctx.consumed.push(a)
      if (d.mutate) {
        if (d.mutate.value.k === 'missing') delete o[d.mutate.key]
        else o[d.mutate.key] = build(d.mutate.value, ctx)
      }
      return withHostile(o, d.hostile?.key, d.hostile?.action, ctx)
    }
    case 'order': {
      const n = ctx.spec.n
      const perm = Array.from({ length: n }, (_, i) => (i * 7 + 3) % Math.max(1, n)).map((x, i) => (n > 0 && gcd(7, n) === 1 ? x : i))
      switch (d.how) {
        case 'perm': return typed(ctx, 'Uint32Array', perm, 'plain')
        case 'outOfRange': return typed(ctx, 'Uint32Array', n ? [...perm.slice(1), 2 ** 32 - 1] : [5], 'plain')
        case 'repeat': return typed(ctx, 'Uint32Array', n > 1 ? [perm[0], ...perm.slice(0, -1)] : [0, 0], 'plain')
        case 'short': return typed(ctx, 'Uint32Array', perm.slice(1), 'plain')
        case 'empty': return new Uint32Array(0)
        case 'i32': return typed(ctx, 'Int32Array', perm, 'plain')
        case 'detached': case 'shared': return typed(ctx, 'Uint32Array', perm, d.how)
        case 'huge': return new Uint32Array(1 << 20).map((_, i) => i)
      }
    }
  }
  throw new Error(`fuzzer bug: unknown descriptor ${JSON.stringify(d)}`)
}

function gcd(a, b) { return b ? gcd(b, a % b) : a }

// ---------------------------------------------------------------------------------------------
// Checks

const outcomes = {}
const calls = {}
const succeeded = {}

function checkError(e, where) {
  if (e instanceof Hostile || e === HOSTILE_VALUE) return 'hostile'
  if (!(e instanceof Error)) throw new Error(`${where}: threw a non-Error ${String(e)}`)
  if (!ALLOWED_ERRORS.has(e.name)) throw new Error(`${where}: threw ${e.name}: ${e.message}`)
  if (typeof e.message !== 'string' || e.message.length === 0) throw new Error(`${where}: threw ${e.name} with an empty message`)
  if (/internal error|panic/i.test(e.message)) throw new Error(`${where}: a Rust panic reached JavaScript: ${e.message}`)
  return e.name
}

function assert(ok, what) {
  if (!ok) throw new Error(`ill-formed output: ${what}`)
}
const isInt = (x) => Number.isInteger(x) && x >= 0
const isModelInfo = (o) => o && Array.isArray(o.layers) && o.layers.length >= 2 && o.layers.every((x) => isInt(x) && x >= 1) && isInt(o.threads) && isInt(o.steps) && isInt(o.params)

function checkWeights(w, info) {
  assert(Array.isArray(w) && w.length === 2 * (info.layers.length - 1), 'getWeights: 2 arrays per layer')
  info.layers.slice(1).forEach((out, l) => {
    const inp = info.layers[l]
    assert(w[2 * l] instanceof Float32Array && w[2 * l].length === inp * out, `W${l + 1} length`)
    assert(w[2 * l + 1] instanceof Float32Array && w[2 * l + 1].length === out, `b${l + 1} length`)
  })
  for (const a of w) for (const x of a) assert(Number.isFinite(x), 'weights are finite')
}

function checkState(s, info) {
  assert(s && isInt(s.step) && typeof s.rng === 'string' && /^\d+$/.test(s.rng) && BigInt(s.rng) < 2n ** 64n, 'state: step and rng')
  for (const k of ['m', 'v']) assert(Array.isArray(s[k]) && (s[k].length === 0 || s[k].length === 2 * (info.layers.length - 1)) && s[k].every((a) => a instanceof Float32Array), `state.${k}`)
  const p = s.partialEpoch
  assert(p === null || (p.order instanceof Uint32Array && isInt(p.batchSize) && isInt(p.nextStep) && Number.isFinite(p.loss) && isInt(p.correct)), 'state.partialEpoch')
}

function checkOutput(fn, r, args, ctx, sc) {
  switch (fn) {
    case 'createModel': {
      const info = native.modelInfo(r)
      assert(isModelInfo(info), 'modelInfo of a new model')
      // (a hostile getter in the layers array would act again if read now)
      if (!sc.args[0].hostile) assert(JSON.stringify(info.layers) === JSON.stringify(args[0]), `createModel: layers ${info.layers} vs ${args[0]}`)
      const params = info.layers.slice(1).reduce((s, n, i) => s + info.layers[i] * n + n, 0)
      assert(info.params === params && info.steps === 0 && info.threads === args[2] && params <= MAX_PARAMS, 'createModel: params/steps/threads')
      ctx.created.push(r)
      return
    }
    case 'freeModel': case 'setWeights': case 'setTrainingState': case 'cancel':
      return assert(r === undefined, `${fn} returns undefined`)
    case 'modelInfo': return assert(isModelInfo(r), 'modelInfo')
    case 'getWeights': return checkWeights(r, native.modelInfo(args[0]))
    case 'getTrainingState': return checkState(r, native.modelInfo(args[0]))
    case 'progress': return assert(Array.isArray(r) && r.length === 4 && isInt(r[0]) && isInt(r[1]) && r.every((x) => typeof x === 'number'), 'progress')
    case 'createDataset': {
      const info = native.datasetInfo(r)
      // (a pixel buffer is adopted only when complete: the context's holds n × f bytes)
      const bytes = ArrayBuffer.isView(args[0]) ? args[0].length : ctx.spec.n * ctx.spec.f
      assert(isInt(info.length) && isInt(info.features) && info.features >= 1 && info.length * info.features === bytes && info.labeled === (args[1] != null), 'createDataset/datasetInfo')
      return
    }
    case 'createPixels': return assert(native.writePixels(r, new Uint8Array(Math.min(1, args[0]))) === Math.min(1, args[0]), 'createPixels: a fresh buffer takes a first byte')
    case 'writePixels': return assert(isInt(r) && r >= args[1].length && r <= 4096, `writePixels returned ${r}`)
    case 'datasetInfo': return assert(r && isInt(r.length) && isInt(r.features) && typeof r.labeled === 'boolean', 'datasetInfo')
    case 'fitEpoch': return assert(r && Number.isFinite(r.loss) && r.loss >= 0 && r.accuracy >= 0 && r.accuracy <= 1 && isInt(r.steps) && r.steps >= 1, `fitEpoch ${JSON.stringify(r)}`)
    case 'evaluate': {
      const { length: n } = native.datasetInfo(args[1])
      const k = native.modelInfo(args[0]).layers.at(-1)
      assert(r && r.loss >= 0 && r.accuracy >= 0 && r.accuracy <= 1 && r.confusion instanceof Uint32Array && r.confusion.length === k * k, 'evaluate')
      return assert(r.confusion.reduce((s, x) => s + x, 0) === n, 'evaluate: confusion counts every sample')
    }
    case 'predictProba': {
      const { length: n } = native.datasetInfo(args[1])
      const k = native.modelInfo(args[0]).layers.at(-1)
      assert(r instanceof Float32Array && r.length === n * k, 'predictProba: n × k')
      for (let i = 0; i < n; i++) {
        let s = 0
        for (let j = 0; j < k; j++) { const p = r[i * k + j]; assert(p >= 0 && p <= 1, 'probability in [0, 1]'); s += p }
        // (the engine's log-sum-exp adds K terms in f32: a row sums to 1 within about K·ε_f32)
        assert(Math.abs(s - 1) < 1e-4 + k * 1.2e-7, `row ${i} sums to ${s}`)
      }
      return
    }
    case 'cpuFeatures': return assert(r && typeof r.arch === 'string' && r.arch.length > 0, 'cpuFeatures')
  }
}

function settle(p, what) {
  let timer
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`HANG: ${what} did not settle within 20 s`)), 20000) })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

// ---------------------------------------------------------------------------------------------
// One run

async function makeContext(spec) {
  const { f, h, k, n, threads } = spec
  const ctx = { spec, buffers: [], resizables: [], pending: [], sideErrors: [], created: [], consumed: [], actions: 0, depth: 0, reentries: 0 }
  // the fuzzer's own arrays: a poisoned prototype setter leaves them alone
  for (const a of [ctx.buffers, ctx.resizables, ctx.pending, ctx.sideErrors, ctx.created]) harness.add(a)
  ctx.model = native.createModel([f, h, k], 1 + f * 31 + h, threads)
  ctx.other = native.createModel([f, h, k], 2, 1)
  ctx.freed = native.createModel([f, k], 3, 1)
  native.freeModel(ctx.freed)
  ctx.shapes = [f * h, h, h * k, k]
  const images = new Uint8Array(n * f).map((_, i) => (i * 53) & 255)
  const labels = new Int32Array(n).map((_, i) => i % k)
  ctx.dataset = native.createDataset(images, labels, f)
  ctx.unlabeled = native.createDataset(images, null, f)
  ctx.otherDataset = native.createDataset(new Uint8Array(3 * (f + 1)), new Uint8Array(3), f + 1)
  ctx.pixels = native.createPixels(n * f) // complete: the images again, written in two chunks
  native.writePixels(ctx.pixels, images.subarray(0, (n * f) >> 1))
  native.writePixels(ctx.pixels, images.subarray((n * f) >> 1))
  ctx.roomyPixels = native.createPixels(4096) // empty, with room for any chunk the fuzzer makes
  ctx.takenPixels = native.createPixels(f)
  native.writePixels(ctx.takenPixels, new Uint8Array(f))
  native.createDataset(ctx.takenPixels, null, f)
  if (n > 0 && spec.trained === 'adam') await native.fitEpoch(ctx.model, ctx.dataset, { optimizer: 'adam', lr: 1e-3, batchSize: 4 })
  if (n > 2 && spec.trained === 'partial') {
    const p = native.fitEpoch(ctx.model, ctx.dataset, { optimizer: 'adam', lr: 1e-3, batchSize: 1 })
    native.cancel(ctx.model) // stops after the first batch: leaves a partial epoch
    await p.catch(() => {})
  }
  return ctx
}

let runs = 0
async function run(sc) {
  runs++
  const t0 = performance.now()
  calls[sc.fn] = (calls[sc.fn] ?? 0) + 1
  if (LAST) fs.writeFileSync(LAST, `run ${runs} (seed ${SEED})\n${fc.stringify(sc)}\n`)
  const ctx = await makeContext(sc.ctx)
  // giant but valid layer sizes allocate gigabytes and take seconds: the fuzzer keeps the valid
  // ones below 4 M parameters and turns bigger ones into a width over the limit
  if (sc.fn === 'createModel' && sc.args[0]?.k === 'array') {
    const sizes = sc.args[0].items.map((d) => (d.k === 'prim' ? d.v : null))
    if (sizes.every((x) => Number.isInteger(x) && x >= 1 && x <= MAX_WIDTH)) {
      const params = sizes.slice(1).reduce((s, x, i) => s + sizes[i] * x + x, 0)
      if (params > 4e6 && params <= MAX_PARAMS) sc = { ...sc, args: [{ ...sc.args[0], items: [{ k: 'prim', v: MAX_WIDTH + 1 }, ...sc.args[0].items.slice(1)] }, ...sc.args.slice(1)] }
    }
  }
  const args = sc.args.map((d) => build(d, ctx))
  const poisoned = sc.poison && installPoison(sc.poison, ctx)
  let outcome
  try {
    const f = native[sc.fn]
    const invoke = () => {
      switch (sc.style) {
        case 'new': return Reflect.construct(f, args)
        case 'this': return f.apply({ weird: true }, args)
        case 'extra': return f(...args, 1, 'x', null)
        case 'fewer': return f(...args.slice(0, Math.max(0, args.length - 1)))
        default: return f(...args)
      }
    }
    let result
    try {
      result = invoke()
      // A set* call that succeeded read every array it was given: none may have been detached
      // during the call (by a getter), or the engine read freed memory.
      if (sc.fn === 'setWeights' || sc.fn === 'setTrainingState') {
        const gone = ctx.consumed.filter((a) => a.length === 0)
        if (gone.length) throw new Error(`USE AFTER FREE: ${sc.fn} succeeded although ${gone.length} of the arrays it read was detached during the call`)
      }
      for (let i = 0; i < sc.parallel; i++) { try { const r = invoke(); if (r instanceof Promise) track(ctx, r) } catch (e) { ctx.sideErrors.push(e) } }
      if (result instanceof Promise) result = await settle(result, sc.fn)
      outcome = 'ok'
    } catch (e) {
      if (/^(HANG|USE AFTER FREE)/.test(String(e?.message))) throw e
      outcome = checkError(e, sc.fn)
      if (process.env.KANA_FUZZ_DEBUG === sc.fn) console.error(String(e?.message ?? e).slice(0, 150))
    }
    // every Promise started along the way settles, with a result or an allowed error
    for (const p of ctx.pending) {
      try { await settle(p, 'a call started from a getter') } catch (e) { if (String(e?.message).startsWith('HANG')) throw e; checkError(e, 'a call started from a getter') }
    }
    for (const e of ctx.sideErrors) checkError(e, 'a call made from a getter')
    if (poisoned) poisoned()
    if (outcome === 'ok' && !poisoned && sc.style !== 'new') checkOutput(sc.fn, result, args, ctx, sc)
  } finally {
    if (poisoned) poisoned()
    // nothing is left busy: the model can be used (or freed) once every call settled
    try { native.modelInfo(ctx.model) } catch (e) { if (/busy/.test(e.message)) throw new Error(`the model is still busy after every call settled: ${e.message}`) }
    for (const m of [ctx.model, ctx.other, ...ctx.created]) native.freeModel(m)
  }
  outcomes[outcome] = (outcomes[outcome] ?? 0) + 1
  if (outcome === 'ok') succeeded[sc.fn] = (succeeded[sc.fn] ?? 0) + 1
  const ms = performance.now() - t0
  if (ms > slowest.ms) Object.assign(slowest, { ms: Math.round(ms), fn: sc.fn })
  if (process.env.KANA_FUZZ_SLOW && ms > Number(process.env.KANA_FUZZ_SLOW)) console.error(`slow run (${Math.round(ms)} ms): ${fc.stringify(sc)}`)
}
const slowest = { ms: 0 }

const harness = new WeakSet()
function installPoison({ on, key, action }, ctx) {
  const proto = on === 'Object' ? Object.prototype : Array.prototype
  if (Object.getOwnPropertyDescriptor(proto, key)) return null // never replace a real property (length, …)
  let removed = false
  Object.defineProperty(proto, key, { configurable: true, set(v) {
    Object.defineProperty(this, key, { value: v, writable: true, enumerable: true, configurable: true })
    // Node's own code stores into arrays between ticks: an index setter acts only on what the
    // addon stores by index (typed arrays: getWeights, getTrainingState)
    if (!harness.has(this) && (!/^\d+$/.test(key) || ArrayBuffer.isView(v))) act(action, ctx)
  } })
  return () => {
    if (!removed) delete proto[key]
    removed = true
  }
}

async function main() {
  const t0 = performance.now()
  process.on('unhandledRejection', (e) => { console.error(`unhandled rejection in run ${runs}:`, e); process.exit(3) })
  if (process.env.KANA_FUZZ_REPLAY) {
    // one input as the LAST file shows it (a JavaScript expression, as fast-check prints it)
    const sc = (0, eval)(`(${process.env.KANA_FUZZ_REPLAY})`)
    let failure = null
    await run(sc).catch((e) => { failure = e.message })
    console.log(JSON.stringify({ replayed: sc.fn, outcomes, failure }))
    process.exitCode = failure ? 1 : 0
    return
  }
  let failure = null
  try {
    await fc.assert(fc.asyncProperty(scenario, run), { seed: SEED, numRuns: MAX_RUNS, interruptAfterTimeLimit: BUDGET_MS, markInterruptAsFailure: false, endOnFailure: false })
  } catch (e) {
    failure = e.message
  }
  const summary = { seed: SEED, runs, ms: Math.round(performance.now() - t0), slowest, calls, succeeded, outcomes, failure }
  console.log(JSON.stringify(summary))
  process.exitCode = failure ? 1 : 0
}

main()

/**
 * A pure-TypeScript reference implementation of the native engine's math.
 *
 * Why this exists: the Rust engine is fast but opaque. This module is the
 * independent second implementation that validates it (the role PyTorch plays
 * in the study). It favours being obviously correct over being fast: every
 * quantity is computed in Float64 with plain loops, and each step follows the
 * textbook formula that the engine's contract states.
 *
 * The contract, in one place (the new layers follow /work/coord/CONVENTIONS.md, issue F1):
 *  - Sizes [n0, n1, ..., nL]. Layer l has W_l (n_{l-1} x n_l, row-major
 *    in x out: W[i*out + j] joins input i to output j) and bias b_l (n_l).
 *    A_0 = pixels / 255.
 *  - Hidden layer l (1 <= l < L):
 *      Z_l = A_{l-1} W_l + b_l
 *      batch norm (optional): Zhat = (Z - mu) / sqrt(var + eps), Z' = gamma Zhat + beta,
 *        in training mu/var are the batch's mean and *biased* variance per unit, in
 *        evaluation the running statistics; without batch norm Z' = Z
 *      A_l = act(Z'), act in relu | leaky-relu | silu | gelu (exact erf form)
 *      dropout (optional, training only): A_l = A_l * mask / (1 - p_l), with the
 *        hash mask below, identical to the engine's bit for bit.
 *    Output layer: softmax(Z_L) over K = nL classes.
 *  - Loss: mean cross-entropy, -log softmax(z)[y], via log-sum-exp. With label
 *    smoothing eps the training target is (1 - eps) onehot(y) + eps/K; the
 *    reported loss stays the plain cross-entropy.
 *  - L2 (lambda): objective = mean CE + (lambda/2) sum_l ||W_l||^2, weights
 *    only; the reported loss never includes the penalty.
 *  - Clipping (clipNorm c): the data-loss gradient over all parameters (W, b,
 *    gamma, beta) is scaled by min(1, c / (||g|| + 1e-6)) before lambda W is added.
 *  - SGD: theta <- theta - lr g, optionally with (Nesterov) momentum as in PyTorch.
 *    Adam: PyTorch's formula with the L2 term added to the gradient before the
 *    moments (coupled). AdamW: PyTorch's decoupled decay W <- W (1 - lr wd) on
 *    the weights W only, then the Adam update.
 *  - Parameter order (optimiser state, gradient norm): W_l, b_l, then gamma_l,
 *    beta_l for hidden layers with batch norm.
 */

// ------------------------------------------------------------ special functions --

// Cody's coefficients (CALERF, as published; each literal parses to the nearest double).
const ERF_A = [3.16112374387056560e0, 1.13864154151050156e2, 3.77485237685302021e2, 3.20937758913846947e3, 1.85777706184603153e-1];
const ERF_B = [2.36012909523441209e1, 2.44024637934444173e2, 1.28261652607737228e3, 2.84423683343917062e3];
const ERF_C = [5.64188496988670089e-1, 8.88314979438837594e0, 6.61191906371416295e1, 2.98635138197400131e2, 8.81952221241769090e2, 1.71204761263407058e3, 2.05107837782607147e3, 1.23033935479799725e3, 2.15311535474403846e-8];
const ERF_D = [1.57449261107098347e1, 1.17693950891312499e2, 5.37181101862009858e2, 1.62138957456669019e3, 3.29079923573345963e3, 4.36261909014324716e3, 3.43936767414372164e3, 1.23033935480374942e3];
const ERF_P = [3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2];
const ERF_Q = [2.56852019228982242e0, 1.87295284992346047e0, 5.27905102951428412e-1, 6.05183413124413191e-2, 2.33520497626869185e-3];

/**
 * The error function erf(x), double precision, after W. J. Cody, "Rational Chebyshev
 * approximations for the error function", Math. Comp. 23 (1969) 631-637 (the CALERF routine
 * of netlib's SPECFUN). Three rational approximations, each good to about 1e-16 relative:
 *   |x| <= 0.46875:      erf(x)  = x P1(x^2) / Q1(x^2)
 *   0.46875 < |x| <= 4:  erfc(x) = exp(-x^2) P2(x) / Q2(x)
 *   |x| > 4:             erfc(x) = exp(-x^2)/x (1/sqrt(pi) + P3(1/x^2) / (x^2 Q3(1/x^2)))
 * exp(-x^2) is formed as exp(-y^2) exp(-(x-y)(x+y)) with y = x rounded down to 1/16, which
 * keeps the rounding error of x^2 out of the exponent.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const y = Math.abs(x);
  if (y <= 0.46875) {
    const ysq = y > 1.11e-16 ? y * y : 0;
    let num = ERF_A[4] * ysq;
    let den = ysq;
    for (let i = 0; i < 3; i++) {
      num = (num + ERF_A[i]) * ysq;
      den = (den + ERF_B[i]) * ysq;
    }
    return (x * (num + ERF_A[3])) / (den + ERF_B[3]);
  }
  let erfc: number;
  if (y <= 4) {
    let num = ERF_C[8] * y;
    let den = y;
    for (let i = 0; i < 7; i++) {
      num = (num + ERF_C[i]) * y;
      den = (den + ERF_D[i]) * y;
    }
    erfc = (num + ERF_C[7]) / (den + ERF_D[7]);
  } else {
    if (y >= 6) return x > 0 ? 1 : -1; // erfc(6) = 2.2e-17: erf is 1 to double precision
    const ysq = 1 / (y * y);
    let num = ERF_P[5] * ysq;
    let den = ysq;
    for (let i = 0; i < 4; i++) {
      num = (num + ERF_P[i]) * ysq;
      den = (den + ERF_Q[i]) * ysq;
    }
    const r = (ysq * (num + ERF_P[4])) / (den + ERF_Q[4]);
    erfc = (5.6418958354775628695e-1 - r) / y; // 1/sqrt(pi) - r
  }
  const ySixteenth = Math.trunc(y * 16) / 16;
  const del = (y - ySixteenth) * (y + ySixteenth);
  erfc *= Math.exp(-ySixteenth * ySixteenth) * Math.exp(-del);
  const e = 0.5 - erfc + 0.5;
  return x < 0 ? -e : e;
}

/** The logistic function 1 / (1 + e^-x), without overflow for large |x|. */
function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

// ------------------------------------------------------------------ activations --

export type Activation = 'relu' | 'leaky-relu' | 'silu' | 'gelu';
export const ACTIVATIONS: readonly Activation[] = ['relu', 'leaky-relu', 'silu', 'gelu'];

const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 0.3989422804014327; // 1 / sqrt(2 pi)

/** act(x). leaky-relu: x > 0 ? x : alpha x; silu: x sigma(x); gelu: x Phi(x) = 0.5 x (1 + erf(x/sqrt 2)). */
export function activate(kind: Activation, alpha: number, x: number): number {
  switch (kind) {
    case 'relu':
      return x > 0 ? x : 0;
    case 'leaky-relu':
      return x > 0 ? x : alpha * x;
    case 'silu':
      return x * sigmoid(x);
    case 'gelu':
      return 0.5 * x * (1 + erf(x * INV_SQRT2));
  }
}

/**
 * act'(x). At the kink x = 0: relu' = 0, leaky-relu' = alpha (the convention's choice: the
 * derivative of the x <= 0 branch). silu' = sigma(x) (1 + x (1 - sigma(x))).
 * gelu' = Phi(x) + x phi(x), phi the standard normal density.
 */
export function activateGrad(kind: Activation, alpha: number, x: number): number {
  switch (kind) {
    case 'relu':
      return x > 0 ? 1 : 0;
    case 'leaky-relu':
      return x > 0 ? 1 : alpha;
    case 'silu': {
      const s = sigmoid(x);
      return s * (1 + x * (1 - s));
    }
    case 'gelu':
      return 0.5 * (1 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
  }
}

// ---------------------------------------------------------------- dropout masks --

/** The 32-bit finaliser of the convention (a murmur3-style avalanche), u32 in, u32 out. */
export function mix32(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The per-(seed, step, layer) key: mix32(mix32(mix32(mix32(seedHi ^ 0x9e3779b9) ^ seedLo) ^ step) ^ l),
 * seedLo/seedHi the low/high 32 bits of the model's seed, step the optimiser step counter before
 * the step (low 32 bits), l the 1-based hidden layer.
 */
export function dropoutKey(seed: number, step: number, layer: number): number {
  const seedLo = seed >>> 0; // ToUint32 is the integer modulo 2^32: the low 32 bits
  const seedHi = Math.floor(seed / 2 ** 32) >>> 0;
  let key = mix32(mix32(seedHi ^ 0x9e3779b9) ^ seedLo);
  key = mix32(key ^ (step >>> 0));
  return mix32(key ^ layer);
}

/**
 * Which units dropout keeps (1) or drops (0) for a rows x width activation matrix: unit j of
 * row r is kept iff mix32(key ^ (r*width + j)) >= floor(p 2^32), index taken modulo 2^32.
 */
export function dropoutMask(seed: number, step: number, layer: number, rows: number, width: number, p: number): Uint8Array {
  const key = dropoutKey(seed, step, layer);
  const threshold = Math.floor(p * 2 ** 32);
  const mask = new Uint8Array(rows * width);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < width; j++) {
      const index = (Math.imul(r, width) + j) >>> 0;
      mask[r * width + j] = mix32(key ^ index) >= threshold ? 1 : 0;
    }
  }
  return mask;
}

// ------------------------------------------------------------------------ types --

/** One layer's parameters, in exactly the engine's layout. */
export interface ReferenceLayer {
  weights: Float32Array;
  bias: Float32Array;
}

export type ReferenceOptimizer = 'sgd' | 'adam' | 'adamw';

/** Options for a single optimiser step. */
export interface StepOptions {
  /** 'sgd' also stands for full-batch GD: the batch is whatever the caller passes. */
  optimizer: ReferenceOptimizer;
  lr: number;
  l2?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Label smoothing eps in [0, 1); default 0. */
  labelSmoothing?: number;
  /** Clip the data-loss gradient to this global L2 norm (> 0); default none. */
  clipNorm?: number;
  /** AdamW's decoupled weight decay (optimizer 'adamw' only); default 1e-2. */
  weightDecay?: number;
  /** SGD momentum mu >= 0 (optimizer 'sgd' only); default 0 = plain SGD. */
  momentum?: number;
  /** Nesterov momentum (needs momentum > 0). */
  nesterov?: boolean;
}

/** Gradients of one layer, in the same layout as its parameters (gamma/beta with batch norm). */
export interface ReferenceGradient {
  weights: Float64Array;
  bias: Float64Array;
  gamma?: Float64Array;
  beta?: Float64Array;
}

/**
 * Initial parameters accepted by the constructor. `ReferenceLayer[]` fits;
 * Float64 arrays are accepted too so that finite-difference checks can
 * perturb a parameter by far less than Float32 can resolve.
 */
export interface ReferenceInit {
  weights: ArrayLike<number>;
  bias: ArrayLike<number>;
}

/** Optimiser state of one layer (gamma/beta present for hidden layers with batch norm). */
export interface ReferenceStateInit extends ReferenceInit {
  gamma?: ArrayLike<number>;
  beta?: ArrayLike<number>;
}

/** The model's architecture beyond the sizes (construction options, as the engine's MLP takes them). */
export interface ReferenceOptions {
  /** Hidden activation, default 'relu'. */
  activation?: Activation;
  /** Slope alpha of leaky-relu for x <= 0, default 0.01. */
  leakySlope?: number;
  /** Dropout rate after each hidden activation: one for all, or one per hidden layer; in [0, 1). Default 0. */
  dropout?: number | number[];
  /** Batch normalisation of every hidden layer before its activation. Default false. */
  batchNorm?: boolean;
  /** Running-statistics momentum m in [0, 1], default 0.1 (PyTorch). */
  bnMomentum?: number;
  /** eps in sqrt(var + eps), > 0, default 1e-5. */
  bnEps?: number;
  /** The model's seed: only the dropout masks depend on it. Default 0. */
  seed?: number;
}

interface Params {
  weights: Float64Array;
  bias: Float64Array;
}

/** Batch norm of one hidden layer: learned gamma/beta and the running statistics. */
interface Norm {
  gamma: Float64Array;
  beta: Float64Array;
  mean: Float64Array;
  variance: Float64Array;
}

/** Everything the backward pass needs from the forward pass. */
interface ForwardTrace {
  /** acts[l] = A_l, l = 0..L-1: the input to layer l+1 (A_0 = x; after dropout). */
  acts: Float64Array[];
  /** pre[l] = Z'_{l+1}, l = 0..L-1: the activation's input (after batch norm); the last is the logits. */
  pre: Float64Array[];
  /** Batch norm, hidden layers only: Zhat, 1/sqrt(var + eps) per unit, and the batch mean/variance. */
  hats: (Float64Array | null)[];
  invStd: (Float64Array | null)[];
  batchMean: (Float64Array | null)[];
  batchVar: (Float64Array | null)[];
  /** Dropout keep-masks, hidden layers only (null: no dropout on that layer / evaluation). */
  masks: (Uint8Array | null)[];
}

/** Index of the largest value in row r; ties go to the lowest index. */
function argmaxRow(z: Float64Array, r: number, k: number): number {
  let best = 0;
  for (let j = 1; j < k; j++) if (z[r * k + j] > z[r * k + best]) best = j;
  return best;
}

/**
 * Softmax pieces for row r: the row max and sum_j exp(z_j - max). Shifting by
 * the max keeps every exponent <= 0, so nothing overflows, and the largest
 * term is exactly 1, so the sum is >= 1 and its log is well conditioned.
 * Then softmax_j = exp(z_j - max) / sum and -log softmax_y = (max - z_y) + log(sum).
 */
function shiftedExpSum(z: Float64Array, r: number, k: number): { max: number; sum: number } {
  let max = -Infinity;
  for (let j = 0; j < k; j++) max = Math.max(max, z[r * k + j]);
  let sum = 0;
  for (let j = 0; j < k; j++) sum += Math.exp(z[r * k + j] - max);
  return { max, sum };
}

function checkRate(name: string, v: unknown, lo: number, hiOpen: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v >= hiOpen) {
    throw new RangeError(`${name} must be a number in [${lo}, ${hiOpen}), got ${String(v)}`);
  }
  return v;
}

export class ReferenceMLP {
  readonly layers: number[];
  readonly activation: Activation;
  readonly leakySlope: number;
  /** Dropout rate per hidden layer (length L-1). */
  readonly dropout: number[];
  readonly batchNorm: boolean;
  readonly bnMomentum: number;
  readonly bnEps: number;
  readonly seed: number;
  private readonly params: Params[];
  /** Per hidden layer with batch norm (empty without). */
  private readonly norms: Norm[];
  // Adam state, created on the first Adam step. One shared step counter t,
  // as in PyTorch, because every parameter is updated on every step.
  // m/v are in parameter order (see paramList).
  private adam: { t: number; m: Float64Array[]; v: Float64Array[] } | null = null;
  /** SGD momentum buffers in parameter order; null until the first momentum step (PyTorch: buf = g then). */
  private velocity: Float64Array[] | null = null;
  /** Optimiser steps taken: the dropout masks' `step`. */
  private stepCount = 0;

  constructor(layers: number[], init: ReadonlyArray<ReferenceInit>, options: ReferenceOptions = {}) {
    if (!Array.isArray(layers) || layers.length < 2) {
      throw new RangeError('layers must list at least an input and an output size');
    }
    layers.forEach((size, i) => {
      if (!Number.isInteger(size) || size < 1) {
        throw new RangeError(`layers[${i}] must be a positive integer, got ${size}`);
      }
    });
    const depth = layers.length - 1;
    if (init.length !== depth) {
      throw new RangeError(`expected ${depth} layers of parameters, got ${init.length}`);
    }
    this.layers = layers.slice();
    // Copy (and widen to Float64) so the caller's arrays are never aliased.
    this.params = init.map((layer, idx) => {
      const l = idx + 1; // layers are numbered from 1, as in the formulas
      const nIn = layers[idx];
      const nOut = layers[idx + 1];
      if (layer.weights.length !== nIn * nOut) {
        throw new RangeError(
          `layer ${l}: weights has length ${layer.weights.length}, expected ${nIn}x${nOut} = ${nIn * nOut}`,
        );
      }
      if (layer.bias.length !== nOut) {
        throw new RangeError(`layer ${l}: bias has length ${layer.bias.length}, expected ${nOut}`);
      }
      return { weights: Float64Array.from(layer.weights), bias: Float64Array.from(layer.bias) };
    });

    const activation = options.activation ?? 'relu';
    if (!ACTIVATIONS.includes(activation)) {
      throw new RangeError(`activation must be one of ${ACTIVATIONS.join(', ')}, got ${String(activation)}`);
    }
    this.activation = activation;
    const slope = options.leakySlope ?? 0.01;
    if (typeof slope !== 'number' || !Number.isFinite(slope) || slope < 0) throw new RangeError(`leakySlope must be a finite number >= 0, got ${String(slope)}`);
    this.leakySlope = slope;
    const hidden = depth - 1;
    const dropout = options.dropout ?? 0;
    if (Array.isArray(dropout)) {
      if (dropout.length !== hidden) throw new RangeError(`dropout lists ${dropout.length} rates, the model has ${hidden} hidden layers`);
      this.dropout = dropout.map((p, i) => checkRate(`dropout[${i}]`, p, 0, 1));
    } else {
      this.dropout = new Array<number>(hidden).fill(checkRate('dropout', dropout, 0, 1));
    }
    this.batchNorm = options.batchNorm ?? false;
    if (typeof this.batchNorm !== 'boolean') throw new RangeError(`batchNorm must be a boolean, got ${String(this.batchNorm)}`);
    this.bnMomentum = options.bnMomentum ?? 0.1;
    if (typeof this.bnMomentum !== 'number' || !(this.bnMomentum >= 0 && this.bnMomentum <= 1)) {
      throw new RangeError(`bnMomentum must be a number in [0, 1], got ${String(this.bnMomentum)}`);
    }
    this.bnEps = options.bnEps ?? 1e-5;
    if (typeof this.bnEps !== 'number' || !Number.isFinite(this.bnEps) || !(this.bnEps > 0)) {
      throw new RangeError(`bnEps must be a finite number > 0, got ${String(this.bnEps)}`);
    }
    this.seed = options.seed ?? 0;
    if (!Number.isSafeInteger(this.seed) || this.seed < 0) throw new RangeError(`seed must be a non-negative safe integer, got ${this.seed}`);
    // PyTorch's BatchNorm1d initial state: gamma 1, beta 0, running mean 0, running variance 1.
    this.norms = this.batchNorm
      ? layers.slice(1, depth).map((width) => ({
          gamma: new Float64Array(width).fill(1),
          beta: new Float64Array(width),
          mean: new Float64Array(width),
          variance: new Float64Array(width).fill(1),
        }))
      : [];
  }

  /** Number of classes K = nL. */
  private get classes(): number {
    return this.layers[this.layers.length - 1];
  }

  /** Optimiser steps taken so far (the dropout masks depend on it). */
  get steps(): number {
    return this.stepCount;
  }

  /** Sets the step counter, e.g. to continue from an engine model's `steps`. */
  setSteps(steps: number): void {
    if (!Number.isSafeInteger(steps) || steps < 0) throw new RangeError(`steps must be an integer >= 0, got ${steps}`);
    this.stepCount = steps;
  }

  /** Parameters as Float32Array copies, the engine's storage type. */
  getWeights(): ReferenceLayer[] {
    return this.params.map((p) => ({
      weights: Float32Array.from(p.weights),
      bias: Float32Array.from(p.bias),
    }));
  }

  /** Parameters as Float64Array copies: the reference's exact state. */
  getWeights64(): ReferenceGradient[] {
    return this.params.map((p) => ({ weights: p.weights.slice(), bias: p.bias.slice() }));
  }

  /** The engine's getNormState() layout: per hidden layer [gamma, beta, runningMean, runningVar], as f32. */
  getNormState(): Float32Array[] {
    return this.norms.flatMap((s) => [s.gamma, s.beta, s.mean, s.variance].map((a) => Float32Array.from(a)));
  }

  /** getNormState() in Float64, the exact state. */
  getNormState64(): Float64Array[] {
    return this.norms.flatMap((s) => [s.gamma, s.beta, s.mean, s.variance].map((a) => a.slice()));
  }

  /** Replaces gamma, beta and the running statistics (getNormState() layout; empty without batch norm). */
  setNormState(state: ReadonlyArray<ArrayLike<number>>): void {
    const expected = 4 * this.norms.length;
    if (state.length !== expected) {
      throw new RangeError(`norm state has ${state.length} arrays, expected ${expected} (gamma, beta, running mean, running variance per hidden layer${this.batchNorm ? '' : '; batch norm is off'})`);
    }
    const names = ['gamma', 'beta', 'running mean', 'running variance'];
    this.norms.forEach((s, h) => {
      for (let k = 0; k < 4; k++) {
        const a = state[4 * h + k];
        const what = `norm state: hidden layer ${h + 1} ${names[k]}`;
        if (a.length !== s.gamma.length) throw new RangeError(`${what} has length ${a.length}, expected ${s.gamma.length}`);
        for (let j = 0; j < a.length; j++) {
          if (!Number.isFinite(a[j]) || (k === 3 && !(a[j] > 0))) throw new RangeError(`${what}[${j}] = ${a[j]} must be finite${k === 3 ? ' and > 0' : ''}`);
        }
      }
    });
    this.norms.forEach((s, h) => {
      s.gamma.set(state[4 * h]);
      s.beta.set(state[4 * h + 1]);
      s.mean.set(state[4 * h + 2]);
      s.variance.set(state[4 * h + 3]);
    });
  }

  /**
   * Every trainable array in the optimiser's order: W_l, b_l, then gamma_l, beta_l for hidden
   * layers with batch norm. `weight` marks the W_l, the only ones L2 and AdamW's decay touch.
   */
  private paramList(): { value: Float64Array; weight: boolean }[] {
    const out: { value: Float64Array; weight: boolean }[] = [];
    this.params.forEach((p, idx) => {
      out.push({ value: p.weights, weight: true }, { value: p.bias, weight: false });
      if (idx < this.norms.length) out.push({ value: this.norms[idx].gamma, weight: false }, { value: this.norms[idx].beta, weight: false });
    });
    return out;
  }

  /** Per-layer gradients flattened into paramList() order. */
  private static flatGrads(grads: ReferenceGradient[]): Float64Array[] {
    return grads.flatMap((g) => (g.gamma ? [g.weights, g.bias, g.gamma, g.beta!] : [g.weights, g.bias]));
  }

  /** A flat list in paramList() order back to per-layer objects (copies). */
  private unflatten(flat: Float64Array[]): ReferenceGradient[] {
    let k = 0;
    return this.params.map((_, idx) => {
      const layer: ReferenceGradient = { weights: flat[k++].slice(), bias: flat[k++].slice() };
      if (idx < this.norms.length) {
        layer.gamma = flat[k++].slice();
        layer.beta = flat[k++].slice();
      }
      return layer;
    });
  }

  /** Per-layer objects (checked against this model's sizes) to a flat list in paramList() order. */
  private flatten(layers: ReadonlyArray<ReferenceStateInit>, what: string): Float64Array[] {
    if (layers.length !== this.params.length) throw new RangeError(`${what}: ${layers.length} layers, expected ${this.params.length}`);
    const out: Float64Array[] = [];
    layers.forEach((p, i) => {
      const arrays = i < this.norms.length ? [p.weights, p.bias, p.gamma, p.beta] : [p.weights, p.bias];
      const sizes = i < this.norms.length
        ? [this.params[i].weights.length, this.params[i].bias.length, this.norms[i].gamma.length, this.norms[i].beta.length]
        : [this.params[i].weights.length, this.params[i].bias.length];
      arrays.forEach((a, k) => {
        if (a === undefined || a.length !== sizes[k]) throw new RangeError(`${what}: layer ${i + 1} has the wrong size`);
        out.push(Float64Array.from(a));
      });
    });
    return out;
  }

  /** Adam's step count and moments, copied; null before the first Adam step. */
  getAdamState(): { t: number; m: ReferenceGradient[]; v: ReferenceGradient[] } | null {
    if (this.adam === null) return null;
    return { t: this.adam.t, m: this.unflatten(this.adam.m), v: this.unflatten(this.adam.v) };
  }

  /** Continues from a state getAdamState() returned (sizes checked). */
  setAdamState(state: { t: number; m: ReadonlyArray<ReferenceStateInit>; v: ReadonlyArray<ReferenceStateInit> } | null): void {
    if (state === null) {
      this.adam = null;
      return;
    }
    if (!Number.isInteger(state.t) || state.t < 0) throw new RangeError(`Adam step count must be an integer >= 0, got ${state.t}`);
    this.adam = { t: state.t, m: this.flatten(state.m, 'Adam m'), v: this.flatten(state.v, 'Adam v') };
  }

  /** SGD momentum buffers (per layer, copied); null before the first momentum step. */
  getMomentumState(): ReferenceGradient[] | null {
    return this.velocity === null ? null : this.unflatten(this.velocity);
  }

  setMomentumState(state: ReadonlyArray<ReferenceStateInit> | null): void {
    this.velocity = state === null ? null : this.flatten(state, 'momentum');
  }

  /** N x K softmax probabilities, row-major (evaluation mode: running statistics, no dropout). */
  forward(images: Uint8Array, n: number): Float64Array {
    this.checkImages(images, n, false);
    const k = this.classes;
    const logits = this.trace(images, n, false).pre[this.params.length - 1];
    const probs = new Float64Array(n * k);
    for (let r = 0; r < n; r++) {
      const { max, sum } = shiftedExpSum(logits, r, k);
      for (let j = 0; j < k; j++) probs[r * k + j] = Math.exp(logits[r * k + j] - max) / sum;
    }
    return probs;
  }

  /**
   * The training-mode pass on one batch (batch statistics, this step's dropout masks):
   * mean cross-entropy (without L2 or smoothing), accuracy, `objective` (the function the
   * gradients differentiate: mean smoothed cross-entropy + (lambda/2) sum ||W||^2) and its
   * gradient (grads include lambda W; gamma/beta gradients for batch-norm layers).
   */
  lossAndGradients(
    images: Uint8Array,
    labels: ArrayLike<number>,
    n: number,
    l2 = 0,
    options: { labelSmoothing?: number } = {},
  ): { loss: number; accuracy: number; objective: number; grads: ReferenceGradient[] } {
    const { loss, accuracy, objective, grads } = this.backprop(images, labels, n, l2, options.labelSmoothing ?? 0);
    return { loss, accuracy, objective, grads };
  }

  private backprop(images: Uint8Array, labels: ArrayLike<number>, n: number, l2: number, smoothing: number) {
    this.checkImages(images, n, true);
    this.checkLabels(labels, n);
    checkRate('labelSmoothing', smoothing, 0, 1);
    const k = this.classes;
    const depth = this.params.length;
    const tr = this.trace(images, n, true);
    const { acts, pre } = tr;
    const logits = pre[depth - 1];

    // Output layer: d(mean smoothed CE)/dZ_L = (softmax - target) / B, target =
    // (1 - eps) onehot(y) + eps/K (eps = 0: the plain one-hot). The 1/B lives here
    // so every later gradient is already a batch mean.
    let lossSum = 0;
    let smoothSum = 0;
    let correct = 0;
    let delta = new Float64Array(n * k);
    for (let r = 0; r < n; r++) {
      const y = labels[r];
      const { max, sum } = shiftedExpSum(logits, r, k);
      const logSum = Math.log(sum);
      lossSum += max - logits[r * k + y] + logSum; // -log softmax(z)[y]
      if (argmaxRow(logits, r, k) === y) correct++;
      for (let j = 0; j < k; j++) {
        const target = (1 - smoothing) * (j === y ? 1 : 0) + smoothing / k;
        smoothSum -= target * (logits[r * k + j] - max - logSum);
        const p = Math.exp(logits[r * k + j] - max) / sum;
        delta[r * k + j] = (p - target) / n;
      }
    }

    let penalty = 0;
    const grads: ReferenceGradient[] = new Array(depth);
    // gamma/beta gradients of hidden layer h are found while going back through layer h+1;
    // they join grads[h] when that entry is made.
    const normGrads: { gamma: Float64Array; beta: Float64Array }[] = [];
    for (let idx = depth - 1; idx >= 0; idx--) {
      const nIn = this.layers[idx];
      const nOut = this.layers[idx + 1];
      const a = acts[idx];
      const w = this.params[idx].weights;

      // gW = A_{l-1}^T delta_l ; gb = column sums of delta_l.
      const gW = new Float64Array(nIn * nOut);
      const gb = new Float64Array(nOut);
      for (let r = 0; r < n; r++) {
        for (let j = 0; j < nOut; j++) {
          const d = delta[r * nOut + j];
          gb[j] += d;
          for (let i = 0; i < nIn; i++) gW[i * nOut + j] += a[r * nIn + i] * d;
        }
      }
      // d/dW of (lambda/2)||W||^2 is lambda W; biases carry no penalty.
      if (l2 !== 0) {
        for (let q = 0; q < gW.length; q++) {
          gW[q] += l2 * w[q];
          penalty += 0.5 * l2 * w[q] * w[q];
        }
      }
      grads[idx] = { weights: gW, bias: gb };
      if (normGrads[idx] !== undefined) Object.assign(grads[idx], normGrads[idx]);

      if (idx > 0) {
        // Back through hidden layer idx (1-based l = idx): first dL/dA = delta_l W_l^T.
        const h = idx - 1;
        const width = nIn;
        const g = new Float64Array(n * width);
        for (let r = 0; r < n; r++) {
          for (let i = 0; i < width; i++) {
            let s = 0;
            for (let j = 0; j < nOut; j++) s += delta[r * nOut + j] * w[i * nOut + j];
            g[r * width + i] = s;
          }
        }
        // Dropout: A = act(Z') mask / (1 - p), so dL/dact = dL/dA mask / (1 - p).
        const mask = tr.masks[h];
        if (mask !== null) {
          const scale = 1 / (1 - this.dropout[h]);
          for (let q = 0; q < g.length; q++) g[q] = mask[q] ? g[q] * scale : 0;
        }
        // Activation: dL/dZ' = dL/dact act'(Z').
        const z = pre[h];
        for (let q = 0; q < g.length; q++) g[q] *= activateGrad(this.activation, this.leakySlope, z[q]);
        // Batch norm (training): Z' = gamma Zhat + beta, Zhat = (Z - mu)/s, s = sqrt(var + eps),
        // mu and var functions of the whole batch. Per unit, with G = dL/dZ' and
        // D = dL/dZhat = gamma G:
        //   dL/dbeta = sum_r G,  dL/dgamma = sum_r G Zhat,
        //   dL/dZ_r = (1 / (B s)) (B D_r - sum D - Zhat_r sum D Zhat).
        const hat = tr.hats[h];
        if (hat !== null) {
          const inv = tr.invStd[h]!;
          const gamma = this.norms[h].gamma;
          const gGamma = new Float64Array(width);
          const gBeta = new Float64Array(width);
          for (let i = 0; i < width; i++) {
            let sumD = 0;
            let sumDHat = 0;
            for (let r = 0; r < n; r++) {
              const G = g[r * width + i];
              gBeta[i] += G;
              gGamma[i] += G * hat[r * width + i];
              const D = gamma[i] * G;
              sumD += D;
              sumDHat += D * hat[r * width + i];
            }
            for (let r = 0; r < n; r++) {
              const D = gamma[i] * g[r * width + i];
              g[r * width + i] = (inv[i] / n) * (n * D - sumD - hat[r * width + i] * sumDHat);
            }
          }
          normGrads[h] = { gamma: gGamma, beta: gBeta };
        }
        delta = g;
      }
    }
    return { loss: lossSum / n, accuracy: correct / n, objective: smoothSum / n + penalty, grads, trace: tr };
  }

  /** One optimiser step on this batch; returns the pre-step loss and accuracy (plain CE, training mode). */
  step(
    images: Uint8Array,
    labels: ArrayLike<number>,
    n: number,
    opts: StepOptions,
  ): { loss: number; accuracy: number } {
    const l2 = opts.l2 ?? 0;
    const { lr, optimizer } = opts;
    if (!Number.isFinite(lr)) throw new RangeError(`lr must be finite, got ${lr}`);
    if (!['sgd', 'adam', 'adamw'].includes(optimizer)) throw new RangeError(`unknown optimizer ${String(optimizer)}`);
    const clipNorm = opts.clipNorm;
    if (clipNorm !== undefined && !(Number.isFinite(clipNorm) && clipNorm > 0)) throw new RangeError(`clipNorm must be a finite number > 0, got ${clipNorm}`);
    if (opts.weightDecay !== undefined && optimizer !== 'adamw') throw new RangeError(`weightDecay is AdamW's: it needs optimizer 'adamw', got '${optimizer}'`);
    const weightDecay = opts.weightDecay ?? 1e-2;
    if (!(Number.isFinite(weightDecay) && weightDecay >= 0)) throw new RangeError(`weightDecay must be a finite number >= 0, got ${weightDecay}`);
    const momentum = opts.momentum ?? 0;
    if (!(Number.isFinite(momentum) && momentum >= 0)) throw new RangeError(`momentum must be a finite number >= 0, got ${momentum}`);
    if (momentum !== 0 && optimizer !== 'sgd') throw new RangeError(`momentum is for optimizer 'sgd' (or gd), got '${optimizer}'`);
    if (opts.nesterov && momentum === 0) throw new RangeError('nesterov needs momentum > 0');

    // The gradient of the data loss alone (no L2): clipping measures that.
    const { loss, accuracy, grads, trace } = this.backprop(images, labels, n, 0, opts.labelSmoothing ?? 0);

    // Running statistics, PyTorch's: mean <- (1-m) mean + m mu_B; var <- (1-m) var + m var_B B/(B-1)
    // (the unbiased variance). A batch of one has no variance estimate: only the mean moves.
    this.norms.forEach((s, h) => {
      const mu = trace.batchMean[h]!;
      const vr = trace.batchVar[h]!;
      const m = this.bnMomentum;
      for (let j = 0; j < s.mean.length; j++) {
        s.mean[j] = (1 - m) * s.mean[j] + m * mu[j];
        if (n > 1) s.variance[j] = (1 - m) * s.variance[j] + m * vr[j] * (n / (n - 1));
      }
    });

    const list = this.paramList();
    const g = ReferenceMLP.flatGrads(grads);
    // Clipping by the global norm (PyTorch's clip_grad_norm_): scale = min(1, c / (||g|| + 1e-6)).
    if (clipNorm !== undefined) {
      let sq = 0;
      for (const a of g) for (let q = 0; q < a.length; q++) sq += a[q] * a[q];
      const scale = Math.min(1, clipNorm / (Math.sqrt(sq) + 1e-6));
      if (scale < 1) for (const a of g) for (let q = 0; q < a.length; q++) a[q] *= scale;
    }
    // Then L2 joins the (possibly scaled) gradient: d/dW (lambda/2)||W||^2 = lambda W, weights only.
    if (l2 !== 0) {
      list.forEach((p, k) => {
        if (p.weight) for (let q = 0; q < p.value.length; q++) g[k][q] += l2 * p.value[q];
      });
    }

    if (optimizer === 'sgd') {
      if (momentum === 0) {
        list.forEach((p, k) => {
          for (let q = 0; q < p.value.length; q++) p.value[q] -= lr * g[k][q];
        });
      } else {
        // PyTorch SGD, dampening 0: buf <- mu buf + g (buf = g on the first step);
        // direction d = g + mu buf with Nesterov, buf without; theta <- theta - lr d.
        const first = this.velocity === null;
        if (first) this.velocity = g.map((a) => new Float64Array(a.length));
        const buf = this.velocity!;
        list.forEach((p, k) => {
          for (let q = 0; q < p.value.length; q++) {
            buf[k][q] = first ? g[k][q] : momentum * buf[k][q] + g[k][q];
            const d = opts.nesterov ? g[k][q] + momentum * buf[k][q] : buf[k][q];
            p.value[q] -= lr * d;
          }
        });
      }
    } else {
      const beta1 = opts.beta1 ?? 0.9;
      const beta2 = opts.beta2 ?? 0.999;
      const eps = opts.eps ?? 1e-8;
      if (this.adam === null) {
        this.adam = { t: 0, m: g.map((a) => new Float64Array(a.length)), v: g.map((a) => new Float64Array(a.length)) };
      }
      const state = this.adam;
      state.t += 1;
      // AdamW (PyTorch): the decay multiplies the weights before the Adam update, and is
      // decoupled from the moments; only the W_l decay (not biases, gamma, beta).
      if (optimizer === 'adamw') {
        list.forEach((p) => {
          if (p.weight) for (let q = 0; q < p.value.length; q++) p.value[q] *= 1 - lr * weightDecay;
        });
      }
      // Bias correction undoes the pull of the zero-initialised moments
      // towards 0 in the first steps; at t = 1 it makes m_hat = g, v_hat = g^2.
      const c1 = 1 - Math.pow(beta1, state.t);
      const c2 = 1 - Math.pow(beta2, state.t);
      list.forEach((p, k) => {
        const theta = p.value;
        const m = state.m[k];
        const v = state.v[k];
        const gk = g[k];
        for (let q = 0; q < theta.length; q++) {
          m[q] = beta1 * m[q] + (1 - beta1) * gk[q];
          v[q] = beta2 * v[q] + (1 - beta2) * gk[q] * gk[q];
          const mHat = m[q] / c1;
          const vHat = v[q] / c2;
          theta[q] -= (lr * mHat) / (Math.sqrt(vHat) + eps);
        }
      });
    }
    this.stepCount += 1;
    return { loss, accuracy };
  }

  /** Mean CE (no penalty), accuracy, and confusion[true*K + pred]; evaluation mode. */
  evaluate(
    images: Uint8Array,
    labels: ArrayLike<number>,
    n: number,
  ): { loss: number; accuracy: number; confusion: Uint32Array } {
    this.checkImages(images, n, true);
    this.checkLabels(labels, n);
    const k = this.classes;
    const logits = this.trace(images, n, false).pre[this.params.length - 1];
    const confusion = new Uint32Array(k * k);
    let lossSum = 0;
    let correct = 0;
    for (let r = 0; r < n; r++) {
      const y = labels[r];
      const pred = argmaxRow(logits, r, k);
      const { max, sum } = shiftedExpSum(logits, r, k);
      lossSum += max - logits[r * k + y] + Math.log(sum);
      if (pred === y) correct++;
      confusion[y * k + pred]++;
    }
    return { loss: lossSum / n, accuracy: correct / n, confusion };
  }

  /**
   * Forward pass keeping what backprop needs. `training`: batch statistics and dropout (this
   * step's masks); otherwise running statistics and no dropout.
   */
  private trace(images: Uint8Array, n: number, training: boolean): ForwardTrace {
    const n0 = this.layers[0];
    const x = new Float64Array(n * n0);
    for (let q = 0; q < x.length; q++) x[q] = images[q] / 255;
    const tr: ForwardTrace = { acts: [x], pre: [], hats: [], invStd: [], batchMean: [], batchVar: [], masks: [] };
    let a = x;
    this.params.forEach((p, idx) => {
      const nIn = this.layers[idx];
      const nOut = this.layers[idx + 1];
      const z = new Float64Array(n * nOut);
      for (let r = 0; r < n; r++) {
        for (let j = 0; j < nOut; j++) {
          let s = p.bias[j];
          for (let i = 0; i < nIn; i++) s += a[r * nIn + i] * p.weights[i * nOut + j];
          z[r * nOut + j] = s;
        }
      }
      if (idx === this.params.length - 1) {
        tr.pre.push(z); // the logits
        return;
      }
      // Batch norm, in place: z becomes Z' = gamma Zhat + beta.
      if (this.batchNorm) {
        const s = this.norms[idx];
        const mean = new Float64Array(nOut);
        const variance = new Float64Array(nOut);
        if (training) {
          // Two passes: the mean, then the mean squared deviation (biased variance, / B).
          for (let j = 0; j < nOut; j++) {
            let sum = 0;
            for (let r = 0; r < n; r++) sum += z[r * nOut + j];
            mean[j] = sum / n;
            let sq = 0;
            for (let r = 0; r < n; r++) sq += (z[r * nOut + j] - mean[j]) ** 2;
            variance[j] = sq / n;
          }
        } else {
          mean.set(s.mean);
          variance.set(s.variance);
        }
        const inv = variance.map((v) => 1 / Math.sqrt(v + this.bnEps));
        const hat = new Float64Array(n * nOut);
        for (let r = 0; r < n; r++) {
          for (let j = 0; j < nOut; j++) {
            hat[r * nOut + j] = (z[r * nOut + j] - mean[j]) * inv[j];
            z[r * nOut + j] = s.gamma[j] * hat[r * nOut + j] + s.beta[j];
          }
        }
        tr.hats.push(hat);
        tr.invStd.push(inv);
        tr.batchMean.push(mean);
        tr.batchVar.push(variance);
      } else {
        tr.hats.push(null);
        tr.invStd.push(null);
        tr.batchMean.push(null);
        tr.batchVar.push(null);
      }
      tr.pre.push(z);
      a = z.map((v) => activate(this.activation, this.leakySlope, v));
      const p_ = this.dropout[idx];
      if (training && p_ > 0) {
        // Inverted dropout: kept units are scaled by 1/(1-p) so the expected activation is unchanged.
        const mask = dropoutMask(this.seed, this.stepCount, idx + 1, n, nOut, p_);
        const scale = 1 / (1 - p_);
        for (let q = 0; q < a.length; q++) a[q] = mask[q] ? a[q] * scale : 0;
        tr.masks.push(mask);
      } else {
        tr.masks.push(null);
      }
      tr.acts.push(a);
    });
    return tr;
  }

  private checkImages(images: Uint8Array, n: number, needRows: boolean): void {
    if (!Number.isInteger(n) || n < (needRows ? 1 : 0)) {
      throw new RangeError(`n must be an integer >= ${needRows ? 1 : 0}, got ${n}`);
    }
    const expected = n * this.layers[0];
    if (images.length !== expected) {
      throw new RangeError(
        `images has length ${images.length}, expected n x n0 = ${n}x${this.layers[0]} = ${expected}`,
      );
    }
  }

  private checkLabels(labels: ArrayLike<number>, n: number): void {
    if (labels.length !== n) {
      throw new RangeError(`labels has length ${labels.length}, expected n = ${n}`);
    }
    const k = this.classes;
    for (let r = 0; r < n; r++) {
      const y = labels[r];
      if (!Number.isInteger(y) || y < 0 || y >= k) {
        throw new RangeError(`labels[${r}] = ${y} is not a class in 0..${k - 1}`);
      }
    }
  }
}

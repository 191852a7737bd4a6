/**
 * A pure-TypeScript reference implementation of the native engine's math.
 *
 * Why this exists: the Rust engine is fast but opaque. This module is the
 * independent second implementation that validates it (the role PyTorch plays
 * in the study). It favours being obviously correct over being fast: every
 * quantity is computed in Float64 with plain loops, and each step follows the
 * textbook formula that the engine's contract states.
 *
 * The contract, in one place:
 *  - Sizes [n0, n1, ..., nL]. Layer l has W_l (n_{l-1} x n_l, row-major
 *    in x out: W[i*out + j] joins input i to output j) and bias b_l (n_l).
 *  - Z_l = A_{l-1} W_l + b_l; A_l = ReLU(Z_l) for hidden layers; the output
 *    is softmax(Z_L) over K = nL classes. A_0 = pixels / 255.
 *  - Loss: mean cross-entropy, -log softmax(z)[y], via log-sum-exp.
 *  - L2 (lambda): objective = mean CE + (lambda/2) sum_l ||W_l||^2, weights
 *    only; the reported loss never includes the penalty.
 *  - SGD: theta <- theta - lr g. Adam: PyTorch's formula with the L2 term
 *    added to the gradient before the moments (coupled, not AdamW).
 */

/** One layer's parameters, in exactly the engine's layout. */
export interface ReferenceLayer {
  weights: Float32Array;
  bias: Float32Array;
}

/** Options for a single optimiser step. */
export interface StepOptions {
  optimizer: 'sgd' | 'adam';
  lr: number;
  l2?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

/** Gradients of one layer, in the same layout as its parameters. */
export interface ReferenceGradient {
  weights: Float64Array;
  bias: Float64Array;
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

interface Params {
  weights: Float64Array;
  bias: Float64Array;
}

/** Everything the backward pass needs from the forward pass. */
interface ForwardTrace {
  /** acts[l] = A_l, l = 0..L-1: the input to layer l+1 (A_0 = x). */
  acts: Float64Array[];
  /** zs[l] = Z_{l+1}, l = 0..L-1: pre-activations; the last is the logits. */
  zs: Float64Array[];
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

export class ReferenceMLP {
  readonly layers: number[];
  private readonly params: Params[];
  // Adam state, created on the first Adam step. One shared step counter t,
  // as in PyTorch, because every parameter is updated on every step.
  private adam: { t: number; m: Params[]; v: Params[] } | null = null;

  constructor(layers: number[], init: ReadonlyArray<ReferenceInit>) {
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
  }

  /** Number of classes K = nL. */
  private get classes(): number {
    return this.layers[this.layers.length - 1];
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

  /** Adam's step count and moments, copied; null before the first Adam step. */
  getAdamState(): { t: number; m: ReferenceGradient[]; v: ReferenceGradient[] } | null {
    if (this.adam === null) return null;
    const copy = (ps: Params[]) => ps.map((p) => ({ weights: p.weights.slice(), bias: p.bias.slice() }));
    return { t: this.adam.t, m: copy(this.adam.m), v: copy(this.adam.v) };
  }

  /** Continues from a state getAdamState() returned (sizes checked). */
  setAdamState(state: { t: number; m: ReadonlyArray<ReferenceInit>; v: ReadonlyArray<ReferenceInit> } | null): void {
    if (state === null) {
      this.adam = null;
      return;
    }
    if (!Number.isInteger(state.t) || state.t < 0) throw new RangeError(`Adam step count must be an integer >= 0, got ${state.t}`);
    const copy = (ps: ReadonlyArray<ReferenceInit>, what: string): Params[] => {
      if (ps.length !== this.params.length) throw new RangeError(`Adam ${what}: ${ps.length} layers, expected ${this.params.length}`);
      return ps.map((p, i) => {
        if (p.weights.length !== this.params[i].weights.length || p.bias.length !== this.params[i].bias.length) {
          throw new RangeError(`Adam ${what}: layer ${i + 1} has the wrong size`);
        }
        return { weights: Float64Array.from(p.weights), bias: Float64Array.from(p.bias) };
      });
    };
    this.adam = { t: state.t, m: copy(state.m, 'm'), v: copy(state.v, 'v') };
  }

  /** N x K softmax probabilities, row-major. */
  forward(images: Uint8Array, n: number): Float64Array {
    this.checkImages(images, n, false);
    const k = this.classes;
    const logits = this.trace(images, n).zs[this.params.length - 1];
    const probs = new Float64Array(n * k);
    for (let r = 0; r < n; r++) {
      const { max, sum } = shiftedExpSum(logits, r, k);
      for (let j = 0; j < k; j++) probs[r * k + j] = Math.exp(logits[r * k + j] - max) / sum;
    }
    return probs;
  }

  /**
   * Mean cross-entropy (without the L2 penalty), accuracy, and the gradient of
   * the full objective (with the penalty, i.e. grads include lambda W).
   */
  lossAndGradients(
    images: Uint8Array,
    labels: ArrayLike<number>,
    n: number,
    l2 = 0,
  ): { loss: number; accuracy: number; grads: ReferenceGradient[] } {
    this.checkImages(images, n, true);
    this.checkLabels(labels, n);
    const k = this.classes;
    const depth = this.params.length;
    const { acts, zs } = this.trace(images, n);
    const logits = zs[depth - 1];

    // Output layer: d(mean CE)/dZ_L = (softmax - onehot) / B. The 1/B lives
    // here so every later gradient is already a batch mean.
    let lossSum = 0;
    let correct = 0;
    let delta = new Float64Array(n * k);
    for (let r = 0; r < n; r++) {
      const y = labels[r];
      const { max, sum } = shiftedExpSum(logits, r, k);
      lossSum += max - logits[r * k + y] + Math.log(sum); // -log softmax(z)[y]
      if (argmaxRow(logits, r, k) === y) correct++;
      for (let j = 0; j < k; j++) {
        const p = Math.exp(logits[r * k + j] - max) / sum;
        delta[r * k + j] = (p - (j === y ? 1 : 0)) / n;
      }
    }

    const grads: ReferenceGradient[] = new Array(depth);
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
      if (l2 !== 0) for (let q = 0; q < gW.length; q++) gW[q] += l2 * w[q];
      grads[idx] = { weights: gW, bias: gb };

      // delta_{l-1} = (delta_l W_l^T) masked by ReLU'(Z_{l-1}). The derivative
      // at exactly 0 is taken as 0 (the mask is Z > 0, strictly).
      if (idx > 0) {
        const zPrev = zs[idx - 1];
        const prev = new Float64Array(n * nIn);
        for (let r = 0; r < n; r++) {
          for (let i = 0; i < nIn; i++) {
            if (!(zPrev[r * nIn + i] > 0)) continue;
            let s = 0;
            for (let j = 0; j < nOut; j++) s += delta[r * nOut + j] * w[i * nOut + j];
            prev[r * nIn + i] = s;
          }
        }
        delta = prev;
      }
    }
    return { loss: lossSum / n, accuracy: correct / n, grads };
  }

  /** One optimiser step on this batch; returns the pre-step loss and accuracy. */
  step(
    images: Uint8Array,
    labels: ArrayLike<number>,
    n: number,
    opts: StepOptions,
  ): { loss: number; accuracy: number } {
    const l2 = opts.l2 ?? 0;
    const { lr } = opts;
    if (!Number.isFinite(lr)) throw new RangeError(`lr must be finite, got ${lr}`);
    const { loss, accuracy, grads } = this.lossAndGradients(images, labels, n, l2);

    if (opts.optimizer === 'sgd') {
      this.params.forEach((p, idx) => {
        const g = grads[idx];
        for (let q = 0; q < p.weights.length; q++) p.weights[q] -= lr * g.weights[q];
        for (let q = 0; q < p.bias.length; q++) p.bias[q] -= lr * g.bias[q];
      });
    } else if (opts.optimizer === 'adam') {
      const beta1 = opts.beta1 ?? 0.9;
      const beta2 = opts.beta2 ?? 0.999;
      const eps = opts.eps ?? 1e-8;
      if (this.adam === null) {
        const zeros = (): Params[] =>
          this.params.map((p) => ({
            weights: new Float64Array(p.weights.length),
            bias: new Float64Array(p.bias.length),
          }));
        this.adam = { t: 0, m: zeros(), v: zeros() };
      }
      const state = this.adam;
      state.t += 1;
      // Bias correction undoes the pull of the zero-initialised moments
      // towards 0 in the first steps; at t = 1 it makes m_hat = g, v_hat = g^2.
      const c1 = 1 - Math.pow(beta1, state.t);
      const c2 = 1 - Math.pow(beta2, state.t);
      const update = (theta: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array): void => {
        for (let q = 0; q < theta.length; q++) {
          m[q] = beta1 * m[q] + (1 - beta1) * g[q];
          v[q] = beta2 * v[q] + (1 - beta2) * g[q] * g[q];
          const mHat = m[q] / c1;
          const vHat = v[q] / c2;
          theta[q] -= (lr * mHat) / (Math.sqrt(vHat) + eps);
        }
      };
      this.params.forEach((p, idx) => {
        update(p.weights, grads[idx].weights, state.m[idx].weights, state.v[idx].weights);
        update(p.bias, grads[idx].bias, state.m[idx].bias, state.v[idx].bias);
      });
    } else {
      throw new RangeError(`unknown optimizer ${String((opts as { optimizer: unknown }).optimizer)}`);
    }
    return { loss, accuracy };
  }

  /** Mean CE (no penalty), accuracy, and confusion[true*K + pred]. */
  evaluate(
    images: Uint8Array,
    labels: ArrayLike<number>,
    n: number,
  ): { loss: number; accuracy: number; confusion: Uint32Array } {
    this.checkImages(images, n, true);
    this.checkLabels(labels, n);
    const k = this.classes;
    const logits = this.trace(images, n).zs[this.params.length - 1];
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

  /** Forward pass keeping every layer's input and pre-activation. */
  private trace(images: Uint8Array, n: number): ForwardTrace {
    const n0 = this.layers[0];
    const x = new Float64Array(n * n0);
    for (let q = 0; q < x.length; q++) x[q] = images[q] / 255;
    const acts: Float64Array[] = [x];
    const zs: Float64Array[] = [];
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
      zs.push(z);
      if (idx < this.params.length - 1) {
        a = z.map((v) => (v > 0 ? v : 0)); // ReLU on hidden layers only
        acts.push(a);
      }
    });
    return { acts, zs };
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

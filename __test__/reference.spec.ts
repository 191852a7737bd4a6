import test from 'ava';
import type { ExecutionContext } from 'ava';

import { ReferenceMLP } from '../src/engine/reference';
import { mulberry32 } from '../src/data/split'
import { close, closeArray } from './helpers/close'
import type { ReferenceInit } from '../src/engine/reference';

// ---------------------------------------------------------------- helpers --

/** Random Float64 parameters for the given sizes. */
function randomInit(sizes: number[], rand: () => number): { weights: Float64Array; bias: Float64Array }[] {
  const init = [];
  for (let l = 1; l < sizes.length; l++) {
    const weights = new Float64Array(sizes[l - 1] * sizes[l]).map(() => 2 * rand() - 1);
    const bias = new Float64Array(sizes[l]).map(() => rand() - 0.5);
    init.push({ weights, bias });
  }
  return init;
}

/**
 * Hidden pre-activations of one sample, computed independently of the module,
 * used only to keep the finite-difference check away from ReLU kinks.
 */
function hiddenPreActivations(sizes: number[], init: ReferenceInit[], pixels: ArrayLike<number>): number[] {
  const out: number[] = [];
  let a = Array.from(pixels, (p) => p / 255);
  for (let l = 1; l < sizes.length - 1; l++) {
    const { weights: w, bias: b } = init[l - 1];
    const z: number[] = [];
    for (let j = 0; j < sizes[l]; j++) {
      let s = b[j];
      for (let i = 0; i < sizes[l - 1]; i++) s += a[i] * w[i * sizes[l] + j];
      z.push(s);
    }
    out.push(...z);
    a = z.map((v) => Math.max(v, 0));
  }
  return out;
}

// ------------------------------------------------ 1. a hand-computed case --

// Layers [2, 2, 2], one sample, label 1. All weights are dyadic so Float32
// storage is exact and the arithmetic below is the whole story.
//
//   pixels (255, 51)  ->  x = (1, 0.2)
//   W1 = [[0.5, -0.5],    b1 = (0.125, -0.125)     (rows = inputs)
//         [1.0, 0.25]]
//   W2 = [[1.0, -1.0],    b2 = (0, 0.25)
//         [0.5,  2.0]]
const handLayers = [2, 2, 2];
function handInit(): { weights: Float32Array; bias: Float32Array }[] {
  return [
    { weights: Float32Array.of(0.5, -0.5, 1.0, 0.25), bias: Float32Array.of(0.125, -0.125) },
    { weights: Float32Array.of(1.0, -1.0, 0.5, 2.0), bias: Float32Array.of(0, 0.25) },
  ];
}
const handPixels = Uint8Array.of(255, 51);
const handLabel = [1];

// Forward:
//   Z1 = (1*0.5 + 0.2*1.0 + 0.125, 1*(-0.5) + 0.2*0.25 - 0.125) = (0.825, -0.575)
//   A1 = ReLU(Z1) = (0.825, 0)
//   Z2 = (0.825*1 + 0*0.5 + 0, 0.825*(-1) + 0*2 + 0.25)           = (0.825, -0.575)
//   z0 - z1 = 1.4, so softmax = (q, 1 - q) with
//   q = 1 / (1 + e^-1.4) = 1 / 1.2465969639416065 = 0.8021838885585817
//   1 - q = 0.1978161114414183
//   loss = -log(1 - q) = log(1 + e^1.4) = 1.4 + log(1.2465969639416065) = 1.620417409918451
const q = 0.8021838885585817;

test('hand case: forward probabilities and loss', (t) => {
  const net = new ReferenceMLP(handLayers, handInit());
  closeArray(t, net.forward(handPixels, 1), [q, 1 - q], 1e-9, 'softmax');
  const { loss, accuracy } = net.lossAndGradients(handPixels, handLabel, 1);
  close(t, loss, 1.620417409918451, 1e-9, 'loss');
  t.is(accuracy, 0); // argmax is class 0, the label is 1
});

// Backward (B = 1):
//   delta2 = softmax - onehot(1) = (q, q - 1) = (q, -q)
//   gW2 = A1^T delta2 = [[0.825q, -0.825q], [0, 0]];  gb2 = (q, -q)
//   delta2 W2^T = (q*1 + (-q)(-1), q*0.5 + (-q)*2) = (2q, -1.5q)
//   mask 1[Z1 > 0] = (1, 0)  ->  delta1 = (2q, 0)
//   gW1 = x^T delta1 = [[2q, 0], [0.4q, 0]];  gb1 = (2q, 0)
test('hand case: gradients', (t) => {
  const net = new ReferenceMLP(handLayers, handInit());
  const { grads } = net.lossAndGradients(handPixels, handLabel, 1);
  closeArray(t, grads[0].weights, [2 * q, 0, 0.4 * q, 0], 1e-9, 'gW1');
  closeArray(t, grads[0].bias, [2 * q, 0], 1e-9, 'gb1');
  closeArray(t, grads[1].weights, [0.825 * q, -0.825 * q, 0, 0], 1e-9, 'gW2');
  closeArray(t, grads[1].bias, [q, -q], 1e-9, 'gb2');
});

// SGD, lr = 0.5:  theta - 0.5 g
//   W1 = (0.5 - q, -0.5, 1 - 0.2q, 0.25) = (-0.3021838885585817, -0.5, 0.8395632222882836, 0.25)
//   b1 = (0.125 - q, -0.125)               = (-0.6771838885585817, -0.125)
//   W2 = (1 - 0.4125q, -1 + 0.4125q, 0.5, 2) = (0.6690991459695851, -0.6690991459695851, 0.5, 2)
//   b2 = (-0.5q, 0.25 + 0.5q)              = (-0.40109194427929085, 0.6510919442792908)
test('hand case: one SGD step with lr 0.5 gives the exact new weights', (t) => {
  const net = new ReferenceMLP(handLayers, handInit());
  const pre = net.step(handPixels, handLabel, 1, { optimizer: 'sgd', lr: 0.5 });
  close(t, pre.loss, 1.620417409918451, 1e-9, 'pre-step loss');
  t.is(pre.accuracy, 0);

  const expected = [
    { weights: [-0.3021838885585817, -0.5, 0.8395632222882836, 0.25], bias: [-0.6771838885585817, -0.125] },
    { weights: [0.6690991459695851, -0.6690991459695851, 0.5, 2], bias: [-0.40109194427929085, 0.6510919442792908] },
  ];
  const w64 = net.getWeights64();
  const w32 = net.getWeights();
  expected.forEach((e, l) => {
    closeArray(t, w64[l].weights, e.weights, 1e-9, `W${l + 1}`);
    closeArray(t, w64[l].bias, e.bias, 1e-9, `b${l + 1}`);
    // The Float32 view is the Float64 state rounded once, nothing more.
    t.true(w32[l].weights instanceof Float32Array && w32[l].bias instanceof Float32Array);
    t.deepEqual(Array.from(w32[l].weights), e.weights.map(Math.fround), `W${l + 1} as f32`);
    t.deepEqual(Array.from(w32[l].bias), e.bias.map(Math.fround), `b${l + 1} as f32`);
  });
});

test('hand case: SGD with L2 subtracts lr * lambda * W from weights only', (t) => {
  const lambda = 0.1;
  const net = new ReferenceMLP(handLayers, handInit());
  net.step(handPixels, handLabel, 1, { optimizer: 'sgd', lr: 0.5, l2: lambda });
  const w = net.getWeights64();
  // W1[0] = 0.5 - 0.5 * (2q + 0.1 * 0.5); W1[3] = 0.25 - 0.5 * (0 + 0.1 * 0.25)
  closeArray(t, w[0].weights, [0.5 - 0.5 * (2 * q + 0.05), -0.5 + 0.025, 1 - 0.5 * (0.4 * q + 0.1), 0.25 - 0.0125], 1e-9, 'W1');
  closeArray(t, w[0].bias, [0.125 - q, -0.125], 1e-9, 'b1 (no penalty)');
  closeArray(t, w[1].weights, [1 - 0.5 * (0.825 * q + 0.1), -1 + 0.5 * (0.825 * q + 0.1), 0.5 - 0.025, 2 - 0.1], 1e-9, 'W2');
  closeArray(t, w[1].bias, [-0.5 * q, 0.25 + 0.5 * q], 1e-9, 'b2 (no penalty)');
  // The reported loss never includes the penalty.
  const fresh = new ReferenceMLP(handLayers, handInit());
  close(t, fresh.lossAndGradients(handPixels, handLabel, 1, lambda).loss, 1.620417409918451, 1e-12, 'loss without penalty');
});

// ------------------------------------------------------------------ 2. Adam --

// [3, 2, 2]; hidden unit 1 is dead for every sample (bias -4, |weights| < 1),
// so its incoming weights, its bias and its outgoing row have zero gradient.
const adamLayers = [3, 2, 2];
function adamInit(): ReferenceInit[] {
  return [
    { weights: Float32Array.of(0.5, 0.25, -0.75, -0.5, 1.0, 0.125), bias: Float32Array.of(0.25, -4) },
    { weights: Float32Array.of(1.5, -0.5, -1.0, 0.75), bias: Float32Array.of(0.125, -0.25) },
  ];
}
const adamPixels = Uint8Array.of(200, 10, 90, 30, 250, 120);
const adamLabels = [1, 0];

function flatten(layers: { weights: ArrayLike<number>; bias: ArrayLike<number> }[]): number[] {
  return layers.flatMap((l) => [...Array.from(l.weights), ...Array.from(l.bias)]);
}

test('Adam step 1 moves each parameter by lr * g / (|g| + eps)', (t) => {
  const lr = 0.01;
  const eps = 1e-8;
  const net = new ReferenceMLP(adamLayers, adamInit());
  const theta0 = flatten(net.getWeights64());
  const g = flatten(net.lossAndGradients(adamPixels, adamLabels, 2).grads);
  net.step(adamPixels, adamLabels, 2, { optimizer: 'adam', lr });
  const theta1 = flatten(net.getWeights64());

  let zero = 0;
  for (let i = 0; i < g.length; i++) {
    if (g[i] === 0) {
      zero++;
      t.is(theta1[i], theta0[i], `param ${i} has zero gradient and must not move`);
    } else {
      // Bias correction at t = 1: m_hat = 0.1 g / 0.1 = g, v_hat = g^2, so
      // the move is lr * sign(g) * |g| / (|g| + eps), a hair under lr.
      close(t, theta0[i] - theta1[i], (lr * Math.sign(g[i]) * Math.abs(g[i])) / (Math.abs(g[i]) + eps), 1e-15, `param ${i}`);
    }
  }
  t.is(zero, 3 + 1 + 2, 'dead unit: 3 incoming weights, its bias, its 2 outgoing weights');
});

test('Adam honours custom beta1, beta2, eps at step 1', (t) => {
  const net = new ReferenceMLP(adamLayers, adamInit());
  const theta0 = flatten(net.getWeights64());
  const g = flatten(net.lossAndGradients(adamPixels, adamLabels, 2).grads);
  net.step(adamPixels, adamLabels, 2, { optimizer: 'adam', lr: 0.1, beta1: 0.5, beta2: 0.75, eps: 0.5 });
  const theta1 = flatten(net.getWeights64());
  // Still m_hat = g and v_hat = g^2 whatever the betas, so the move is
  // 0.1 * g / (|g| + 0.5): a large eps visibly damps small gradients.
  for (let i = 0; i < g.length; i++) {
    close(t, theta0[i] - theta1[i], (0.1 * g[i]) / (Math.abs(g[i]) + 0.5), 1e-15, `param ${i}`);
  }
});

test('Adam step 2 (with coupled L2) matches a hand-rolled computation', (t) => {
  const lr = 0.01;
  const lambda = 0.01;
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const net = new ReferenceMLP(adamLayers, adamInit());

  // Step 1 without L2; record its gradient.
  const g1 = flatten(net.lossAndGradients(adamPixels, adamLabels, 2).grads);
  net.step(adamPixels, adamLabels, 2, { optimizer: 'adam', lr });
  const theta1 = flatten(net.getWeights64());

  // Step 2 with L2: the gradient fed to the moments includes lambda * W.
  const g2 = flatten(net.lossAndGradients(adamPixels, adamLabels, 2, lambda).grads);
  net.step(adamPixels, adamLabels, 2, { optimizer: 'adam', lr, l2: lambda });
  const theta2 = flatten(net.getWeights64());

  for (let i = 0; i < theta1.length; i++) {
    const m1 = (1 - b1) * g1[i];
    const v1 = (1 - b2) * g1[i] * g1[i];
    const m2 = b1 * m1 + (1 - b1) * g2[i];
    const v2 = b2 * v1 + (1 - b2) * g2[i] * g2[i];
    const mHat = m2 / (1 - b1 * b1); // 1 - 0.81  = 0.19
    const vHat = v2 / (1 - b2 * b2); // 1 - 0.998001 = 0.001999
    close(t, theta2[i], theta1[i] - (lr * mHat) / (Math.sqrt(vHat) + eps), 1e-12, `param ${i}`);
  }
  // The dead unit's incoming weights had g1 = 0 and now move only through
  // lambda * W: proof that L2 is coupled (it entered the moments).
  const w1 = net.getWeights64()[0].weights;
  const w1Before = adamInit()[0].weights;
  for (const i of [1, 3, 5]) t.not(w1[i], w1Before[i], `dead-unit weight ${i} moved under L2`);
  // Biases carry no penalty: with and without lambda their gradients agree.
  const with2 = net.lossAndGradients(adamPixels, adamLabels, 2, lambda).grads;
  const without = net.lossAndGradients(adamPixels, adamLabels, 2).grads;
  with2.forEach((g, l) => t.deepEqual(Array.from(g.bias), Array.from(without[l].bias)));
});

// ----------------------------------------------- 3. finite-difference check --

test('central finite differences agree with backprop on [5,4,3,3] with L2 0.01', (t) => {
  const sizes = [5, 4, 3, 3];
  const lambda = 0.01;
  const h = 1e-5;
  const n = 4;
  let worst = 0;
  let checked = 0;

  for (const seed of [1, 2, 3, 7, 42, 2024]) {
    const rand = mulberry32(seed);
    const init = randomInit(sizes, rand);

    // Draw samples, rejecting any with a hidden pre-activation within 1e-3 of
    // a ReLU kink: a +-h nudge must not flip a unit on or off.
    const pixels = new Uint8Array(n * sizes[0]);
    const labels: number[] = [];
    for (let r = 0; r < n; r++) {
      let tries = 0;
      for (;;) {
        const sample = Array.from({ length: sizes[0] }, () => Math.floor(rand() * 256));
        if (hiddenPreActivations(sizes, init, sample).every((z) => Math.abs(z) > 1e-3)) {
          pixels.set(sample, r * sizes[0]);
          break;
        }
        if (++tries > 1000) throw new Error('could not draw a kink-free sample');
      }
      labels.push(Math.floor(rand() * sizes[sizes.length - 1]));
    }

    // The objective backprop differentiates: mean CE + (lambda/2) sum ||W||^2.
    const objective = (params: typeof init): number => {
      const ce = new ReferenceMLP(sizes, params).evaluate(pixels, labels, n).loss;
      let sq = 0;
      for (const p of params) for (const w of p.weights) sq += w * w;
      return ce + (lambda / 2) * sq;
    };

    const { grads } = new ReferenceMLP(sizes, init).lossAndGradients(pixels, labels, n, lambda);
    for (let l = 0; l < init.length; l++) {
      for (const key of ['weights', 'bias'] as const) {
        for (let i = 0; i < init[l][key].length; i++) {
          const plus = init.map((p) => ({ weights: p.weights.slice(), bias: p.bias.slice() }));
          const minus = init.map((p) => ({ weights: p.weights.slice(), bias: p.bias.slice() }));
          plus[l][key][i] += h;
          minus[l][key][i] -= h;
          const numeric = (objective(plus) - objective(minus)) / (2 * h);
          const analytic = grads[l][key][i];
          const scale = Math.max(Math.abs(numeric), Math.abs(analytic));
          // A unit dead for every sample has an exactly-zero bias gradient
          // both ways; anything else is compared relatively.
          const rel = scale === 0 ? 0 : Math.abs(numeric - analytic) / scale;
          t.true(rel < 1e-6, `seed ${seed} layer ${l + 1} ${key}[${i}]: numeric ${numeric} analytic ${analytic} rel ${rel}`);
          worst = Math.max(worst, rel);
          checked++;
        }
      }
    }
  }
  t.is(checked, 6 * (20 + 4 + 12 + 3 + 9 + 3));
  t.log(`checked ${checked} partial derivatives, worst relative error ${worst.toExponential(2)}`);
});

// ------------------------------------------------- 4. softmax stability ----

test('logits around 1000 (and -1000) give a finite, exact loss', (t) => {
  // A single linear layer [2, 3]: zero weights, so the logits are the biases.
  for (const base of [1000, -1000, 30000]) {
    const net = new ReferenceMLP([2, 3], [{ weights: new Float32Array(6), bias: Float32Array.of(base, base + 1, base - 1) }]);
    const pixels = Uint8Array.of(17, 240, 0, 255, 128, 128);
    const labels = [0, 1, 2];
    const lse = Math.log(1 + Math.E + 1 / Math.E); // log(e^0 + e^1 + e^-1), shifted by base
    const expectLoss = (lse - 0 + (lse - 1) + (lse + 1)) / 3;
    const { loss, grads } = net.lossAndGradients(pixels, labels, 3);
    t.true(Number.isFinite(loss), `base ${base}: loss ${loss}`);
    close(t, loss, expectLoss, 1e-9, `base ${base} loss`);
    t.true(grads.every((g) => [...g.weights, ...g.bias].every(Number.isFinite)));
    const probs = net.forward(pixels, 3);
    for (let r = 0; r < 3; r++) {
      close(t, probs[r * 3] + probs[r * 3 + 1] + probs[r * 3 + 2], 1, 1e-12, `row ${r} sums to 1`);
    }
    close(t, probs[1], Math.E / (1 + Math.E + 1 / Math.E), 1e-12, 'p(class 1)');
  }
  // A wrong label 10000 logits below the winner costs 10000, not Infinity.
  const far = new ReferenceMLP([1, 2], [{ weights: new Float32Array(2), bias: Float32Array.of(10000, 0) }]);
  close(t, far.evaluate(Uint8Array.of(0), [1], 1).loss, 10000, 1e-9, 'far loss');
});

// -------------------------------------------------- 5. shape validation ----

test('constructor rejects bad shapes with a RangeError naming the layer', (t) => {
  const good = handInit();
  t.throws(() => new ReferenceMLP([2], []), { instanceOf: RangeError });
  t.throws(() => new ReferenceMLP([2, 0, 2], good), { instanceOf: RangeError, message: /layers\[1\]/ });
  t.throws(() => new ReferenceMLP([2, 2.5, 2], good), { instanceOf: RangeError, message: /layers\[1\]/ });
  t.throws(() => new ReferenceMLP([2, 2, 2], [good[0]]), { instanceOf: RangeError, message: /expected 2 layers/ });
  t.throws(() => new ReferenceMLP([2, 2, 2], [good[0], { weights: new Float32Array(3), bias: good[1].bias }]), {
    instanceOf: RangeError,
    message: /layer 2: weights has length 3, expected 2x2 = 4/,
  });
  t.throws(() => new ReferenceMLP([2, 2, 2], [{ weights: good[0].weights, bias: new Float32Array(3) }, good[1]]), {
    instanceOf: RangeError,
    message: /layer 1: bias has length 3, expected 2/,
  });
  // Sizes that transpose the matrix (in x out vs out x in) only match by
  // length when square, so [3, 2] with a 2x3 buffer is fine but [3, 2] with
  // a wrong count is not.
  t.throws(() => new ReferenceMLP([3, 2], [{ weights: new Float32Array(5), bias: new Float32Array(2) }]), {
    instanceOf: RangeError,
    message: /layer 1: weights/,
  });
});

test('methods reject bad inputs with a RangeError', (t) => {
  const net = new ReferenceMLP(handLayers, handInit());
  t.throws(() => net.forward(Uint8Array.of(1, 2, 3), 1), { instanceOf: RangeError, message: /images has length 3/ });
  t.throws(() => net.forward(handPixels, 1.5), { instanceOf: RangeError, message: /n must be/ });
  t.throws(() => net.lossAndGradients(handPixels, [2], 1), { instanceOf: RangeError, message: /labels\[0\] = 2/ });
  t.throws(() => net.lossAndGradients(handPixels, [0, 1], 1), { instanceOf: RangeError, message: /labels has length 2/ });
  t.throws(() => net.evaluate(new Uint8Array(0), [], 0), { instanceOf: RangeError, message: /n must be/ });
  t.throws(() => net.step(handPixels, [-1], 1, { optimizer: 'sgd', lr: 0.1 }), { instanceOf: RangeError });
  t.throws(() => net.step(handPixels, [0], 1, { optimizer: 'rmsprop' as 'sgd', lr: 0.1 }), {
    instanceOf: RangeError,
    message: /unknown optimizer/,
  });
  t.is(net.forward(new Uint8Array(0), 0).length, 0);
});

// ------------------------------------------------------------ odds & ends --

test('evaluate: loss/accuracy match lossAndGradients, confusion is true x pred', (t) => {
  const sizes = [6, 5, 4];
  const rand = mulberry32(99);
  const net = new ReferenceMLP(sizes, randomInit(sizes, rand));
  const n = 50;
  const pixels = Uint8Array.from({ length: n * 6 }, () => Math.floor(rand() * 256));
  const labels = Array.from({ length: n }, () => Math.floor(rand() * 4));
  const ev = net.evaluate(pixels, labels, n);
  const lg = net.lossAndGradients(pixels, labels, n);
  t.is(ev.loss, lg.loss);
  t.is(ev.accuracy, lg.accuracy);

  const probs = net.forward(pixels, n);
  const expected = new Uint32Array(16);
  let ce = 0;
  for (let r = 0; r < n; r++) {
    const row = Array.from(probs.subarray(r * 4, r * 4 + 4));
    expected[labels[r] * 4 + row.indexOf(Math.max(...row))]++;
    ce -= Math.log(row[labels[r]]);
  }
  t.deepEqual(Array.from(ev.confusion), Array.from(expected));
  close(t, ev.loss, ce / n, 1e-12, 'loss vs -log p');
  const diag = [0, 5, 10, 15].reduce((s, i) => s + ev.confusion[i], 0);
  t.is(ev.accuracy, diag / n);
});

test('copies: init arrays and getWeights results are never aliased', (t) => {
  const init = handInit();
  const net = new ReferenceMLP(handLayers, init);
  init[0].weights[0] = 99;
  const w = net.getWeights();
  t.is(w[0].weights[0], 0.5);
  w[0].weights[0] = -99;
  t.is(net.getWeights()[0].weights[0], 0.5);
  t.deepEqual(net.layers, handLayers);
  t.not(net.layers, handLayers);
});

test('a few hundred SGD and Adam steps fit a small random batch', (t) => {
  const sizes = [8, 16, 3];
  for (const optimizer of ['sgd', 'adam'] as const) {
    const rand = mulberry32(5);
    const init = randomInit(sizes, rand).map((p) => ({ weights: p.weights.map((w) => w * 0.5), bias: p.bias }));
    const net = new ReferenceMLP(sizes, init);
    const n = 12;
    const pixels = Uint8Array.from({ length: n * 8 }, () => Math.floor(rand() * 256));
    const labels = Array.from({ length: n }, (_, i) => i % 3);
    const first = net.evaluate(pixels, labels, n).loss;
    for (let s = 0; s < 400; s++) net.step(pixels, labels, n, { optimizer, lr: optimizer === 'sgd' ? 0.5 : 0.02 });
    const last = net.evaluate(pixels, labels, n);
    t.true(last.loss < first / 4, `${optimizer}: ${first} -> ${last.loss}`);
    t.is(last.accuracy, 1, optimizer);
  }
});

test('argmax ties go to the lowest class index', (t) => {
  // All-zero parameters: every logit is 0, every class ties, prediction is 0.
  const net = new ReferenceMLP([2, 3], [{ weights: new Float32Array(6), bias: new Float32Array(3) }]);
  const ev = net.evaluate(Uint8Array.of(1, 2, 3, 4, 5, 6), [0, 1, 2], 3);
  t.deepEqual(Array.from(ev.confusion), [1, 0, 0, 1, 0, 0, 1, 0, 0]);
  t.is(ev.accuracy, 1 / 3);
  close(t, ev.loss, Math.log(3), 1e-15, 'uniform loss');
});

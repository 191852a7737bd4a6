// The reference's F1 levers (activations, dropout, batch norm, label smoothing, clipping, AdamW,
// momentum): hand-computed cases and central finite differences in Float64, one lever at a time
// and all together. The conventions are /work/coord/CONVENTIONS.md's.
import test from 'ava';
import type { ExecutionContext } from 'ava';

import {
  ReferenceMLP,
  activate,
  activateGrad,
  dropoutKey,
  dropoutMask,
  erf,
  mix32,
  type Activation,
  type ReferenceInit,
  type ReferenceOptions,
} from '../src/engine/reference';
import { mulberry32 } from '../src/data/split'
import { close, closeArray } from './helpers/close'

// ---------------------------------------------------------------- helpers --

function randomInit(sizes: number[], rand: () => number): { weights: Float64Array; bias: Float64Array }[] {
  const init = [];
  for (let l = 1; l < sizes.length; l++) {
    init.push({
      weights: new Float64Array(sizes[l - 1] * sizes[l]).map(() => 2 * rand() - 1),
      bias: new Float64Array(sizes[l]).map(() => rand() - 0.5),
    });
  }
  return init;
}

const sigma = (x: number) => 1 / (1 + Math.exp(-x));

// ------------------------------------------------------------------- erf --

// Values of erf at doubles x, from mpmath at 40 digits rounded to the nearest double; the
// points straddle Cody's interval boundaries 0.46875 and 4 and reach the tail.
const ERF_TABLE: Array<[number, number]> = [
  [0, 0], [1e-10, 1.1283791670955126e-10], [0.1, 0.1124629160182849], [0.3, 0.3286267594591274],
  [0.46875, 0.49261347321793797], [0.46875000000000006, 0.492613473217938], [0.5, 0.5204998778130465],
  [0.75, 0.7111556336535151], [1, 0.8427007929497149], [1.5, 0.9661051464753108], [2, 0.9953222650189527],
  [2.5, 0.999593047982555], [3, 0.9999779095030014], [3.5, 0.9999992569016276], [4, 0.9999999845827421],
  [4.000000000000001, 0.9999999845827421], [4.5, 0.9999999998033839], [5, 0.9999999999984626],
  [5.5, 0.9999999999999927], [5.9, 0.9999999999999999], [6, 1], [27, 1],
  [-0.2, -0.22270258921047847], [-1.7, -0.9837904585907745], [-4.2, -0.9999999971445058],
  [0.7071067811865476, 0.682689492137086],
];

test('erf matches 40-digit values to 1e-15 relative across all three of Cody\'s intervals', (t) => {
  let worst = 0;
  for (const [x, want] of ERF_TABLE) {
    const got = erf(x);
    const rel = want === 0 ? Math.abs(got) : Math.abs(got - want) / Math.abs(want);
    worst = Math.max(worst, rel);
    t.true(rel <= 1e-15, `erf(${x}) = ${got}, want ${want} (rel ${rel})`);
    t.is(erf(-x), -got, `erf is odd at ${x}`);
  }
  t.is(erf(Infinity), 1);
  t.is(erf(-Infinity), -1);
  t.true(Number.isNaN(erf(NaN)));
  t.log(`worst relative error ${worst.toExponential(2)}`);
});

test('erf is monotone and its derivative is 2/sqrt(pi) exp(-x^2) (central differences)', (t) => {
  let prev = -1;
  for (let x = -6; x <= 6; x += 0.01) {
    const v = erf(x);
    t.true(v >= prev, `erf decreased at ${x}`);
    prev = v;
    const h = 1e-6;
    const numeric = (erf(x + h) - erf(x - h)) / (2 * h);
    close(t, numeric, (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x), 1e-9, `erf'(${x})`);
  }
});

// ----------------------------------------------------------- activations --

test('activations: hand values, and the derivatives at the kink', (t) => {
  t.is(activate('relu', 0.01, -2), 0);
  t.is(activate('relu', 0.01, 1.5), 1.5);
  t.is(activate('leaky-relu', 0.01, -2), -0.02);
  t.is(activate('leaky-relu', 0.2, 3), 3);
  close(t, activate('silu', 0, 1), 0.7310585786300049, 1e-16, 'silu(1) = sigma(1)');
  close(t, activate('silu', 0, -1), -0.2689414213699951, 1e-16, 'silu(-1)');
  // gelu(x) = x Phi(x): Phi(1) = 0.8413447460685429, Phi(-1) = 0.15865525393145707.
  close(t, activate('gelu', 0, 1), 0.8413447460685429, 1e-15, 'gelu(1)');
  close(t, activate('gelu', 0, -1), -0.15865525393145707, 1e-15, 'gelu(-1)');
  close(t, activate('gelu', 0, 2), 2 * 0.9772498680518208, 1e-15, 'gelu(2)');
  // Large |x| do not overflow.
  t.is(activate('silu', 0, -800), -0);
  t.is(activate('silu', 0, 800), 800);
  t.is(activate('gelu', 0, -40), -0);
  // f'(0): relu 0, leaky alpha, silu 1/2, gelu 1/2.
  t.is(activateGrad('relu', 0.01, 0), 0);
  t.is(activateGrad('leaky-relu', 0.03, 0), 0.03);
  t.is(activateGrad('silu', 0, 0), 0.5);
  t.is(activateGrad('gelu', 0, 0), 0.5);
});

test('activation derivatives agree with central differences away from the kink', (t) => {
  for (const kind of ['relu', 'leaky-relu', 'silu', 'gelu'] as Activation[]) {
    for (let x = -7.05; x <= 7; x += 0.1) {
      const h = 1e-6;
      const numeric = (activate(kind, 0.07, x + h) - activate(kind, 0.07, x - h)) / (2 * h);
      close(t, activateGrad(kind, 0.07, x), numeric, 1e-8, `${kind}'(${x})`);
    }
  }
});

// ------------------------------------------------------------- dropout --

// Expected values from an independent Python implementation (arbitrary-precision ints masked
// with & 0xffffffff): mix32 of 0, 1, 2, 2^32-1, 0x9e3779b9; keys for (seed, step, layer).
test('mix32 and the dropout key reproduce the convention bit for bit', (t) => {
  t.deepEqual([0, 1, 2, 0xffffffff, 0x9e3779b9].map(mix32), [0, 1753845952, 3507691905, 1734902346, 33350994]);
  t.is(dropoutKey(0, 0, 1), 726357435);
  t.is(dropoutKey(7, 0, 1), 621080849);
  t.is(dropoutKey(2 ** 40 + 5, 3, 2), 2001625148); // seedHi = 256, seedLo = 5
  t.is(dropoutKey(2 ** 47 - 1, 2 ** 32 + 9, 1), 95705704); // step: low 32 bits only
  // seed 7, step 0, layer 1, 3 x 4, p = 0.5 (threshold 2^31).
  t.deepEqual(Array.from(dropoutMask(7, 0, 1, 3, 4, 0.5)), [1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1]);
  // seed 12345, step 2, layer 2, 2 x 5, p = 0.3 (threshold floor(0.3 2^32) = 1288490188).
  t.deepEqual(Array.from(dropoutMask(12345, 2, 2, 2, 5, 0.3)), [1, 1, 1, 1, 1, 0, 0, 1, 1, 1]);
});

test('dropout masks keep about 1 - p, and change with the seed, the step and the layer', (t) => {
  const m = dropoutMask(3, 0, 1, 200, 100, 0.3);
  const kept = m.reduce((s, v) => s + v, 0) / m.length;
  t.true(Math.abs(kept - 0.7) < 0.01, `kept ${kept}`);
  const differs = (a: Uint8Array, b: Uint8Array) => a.some((v, i) => v !== b[i]);
  t.true(differs(m, dropoutMask(4, 0, 1, 200, 100, 0.3)));
  t.true(differs(m, dropoutMask(3, 1, 1, 200, 100, 0.3)));
  t.true(differs(m, dropoutMask(3, 0, 2, 200, 100, 0.3)));
  t.deepEqual(m, dropoutMask(3, 0, 1, 200, 100, 0.3));
  t.true(dropoutMask(3, 0, 1, 10, 10, 0).every((v) => v === 1));
});

test('dropout in training: the kept units scaled by 1/(1-p), masks advance with the step; off in evaluation', (t) => {
  const sizes = [3, 4, 2];
  const init = randomInit(sizes, mulberry32(8));
  const pixels = Uint8Array.of(10, 200, 30, 250, 0, 128);
  const labels = [1, 0];
  const p = 0.5;
  const net = new ReferenceMLP(sizes, init, { dropout: p, seed: 7 });
  const plain = new ReferenceMLP(sizes, init);
  // Independent forward with the hand-listed mask of seed 7, step 0, layer 1 (rows 2, width 4).
  const mask = [1, 1, 1, 0, 1, 0, 0, 0];
  let loss = 0;
  for (let r = 0; r < 2; r++) {
    const a: number[] = [];
    for (let j = 0; j < 4; j++) {
      let z = init[0].bias[j];
      for (let i = 0; i < 3; i++) z += (pixels[r * 3 + i] / 255) * init[0].weights[i * 4 + j];
      a.push(mask[r * 4 + j] ? Math.max(z, 0) / (1 - p) : 0);
    }
    const logits = [0, 1].map((k) => init[1].bias[k] + a.reduce((s, v, j) => s + v * init[1].weights[j * 2 + k], 0));
    const lse = Math.log(Math.exp(logits[0]) + Math.exp(logits[1]));
    loss += lse - logits[labels[r]];
  }
  close(t, net.lossAndGradients(pixels, labels, 2).loss, loss / 2, 1e-12, 'training loss with the mask');
  // Evaluation and prediction ignore dropout.
  t.deepEqual(net.evaluate(pixels, labels, 2), plain.evaluate(pixels, labels, 2));
  t.deepEqual(net.forward(pixels, 2), plain.forward(pixels, 2));
  // The step counter moves the mask: after one step (lr 0) the loss differs.
  t.is(net.steps, 0);
  net.step(pixels, labels, 2, { optimizer: 'sgd', lr: 0 });
  t.is(net.steps, 1);
  t.not(net.lossAndGradients(pixels, labels, 2).loss, loss / 2);
  net.setSteps(0);
  close(t, net.lossAndGradients(pixels, labels, 2).loss, loss / 2, 1e-12, 'back at step 0');
});

// ---------------------------------------------------------- batch norm --

// Layers [1, 1, 2]; W1 = 2, b1 = 1, W2 = (1, -1), b2 = 0; pixels (0, 255) -> x = (0, 1),
// labels (0, 1). Hidden z = (1, 3): batch mean 2, biased variance ((1-2)^2 + (3-2)^2)/2 = 1,
// s = sqrt(1 + 1e-5), zhat = (-1/s, 1/s); gamma 1, beta 0; relu -> a = (0, 1/s).
const bnInit = (): ReferenceInit[] => [
  { weights: [2], bias: [1] },
  { weights: [1, -1], bias: [0, 0] },
];
const bnPixels = Uint8Array.of(0, 255);
const bnLabels = [0, 1];

test('batch norm hand case: training loss and every gradient', (t) => {
  const net = new ReferenceMLP([1, 1, 2], bnInit(), { batchNorm: true });
  const s = Math.sqrt(1 + 1e-5);
  const sg = sigma(2 / s); // softmax of row 1's logits (1/s, -1/s), class 0
  // Row 0: logits (0, 0), loss ln 2. Row 1: -log softmax_1 = log(1 + e^{2/s}).
  const { loss, grads } = net.lossAndGradients(bnPixels, bnLabels, 2);
  close(t, loss, (Math.LN2 + Math.log(1 + Math.exp(2 / s))) / 2, 1e-14, 'loss');
  // delta2 = ((-0.25, 0.25), (sg/2, -sg/2)); gW2 = a^T delta2; gb2 = column sums.
  closeArray(t, grads[1].weights, [sg / (2 * s), -sg / (2 * s)], 1e-14, 'gW2');
  closeArray(t, grads[1].bias, [-0.25 + sg / 2, 0.25 - sg / 2], 1e-14, 'gb2');
  // dL/da = delta2 W2^T = (-0.5, sg); relu' = (0, 1) -> G = (0, sg).
  // dbeta = sum G = sg; dgamma = sum G zhat = sg/s.
  closeArray(t, grads[0].beta!, [sg], 1e-14, 'dbeta');
  closeArray(t, grads[0].gamma!, [sg / s], 1e-14, 'dgamma');
  // dz_r = (1/(B s)) (B D_r - sum D - zhat_r sum D zhat), D = G:
  //   dz_0 = (sg/(2s)) (1/s^2 - 1), dz_1 = (sg/(2s)) (1 - 1/s^2) = -dz_0.
  // gW1 = sum x_r dz_r = dz_1; gb1 = dz_0 + dz_1 = 0 (a bias before batch norm cannot matter).
  const dz1 = (sg / (2 * s)) * (1 - 1 / (s * s));
  closeArray(t, grads[0].weights, [dz1], 1e-15, 'gW1 (a difference of nearly equal terms: 1e-11 relative)');
  close(t, grads[0].bias[0], 0, 1e-17, 'gb1');
  t.true(dz1 > 4e-6 && dz1 < 5e-6, `gW1 is ${dz1}: tiny but not zero (the eps)`);
});

test('batch norm: running statistics after N steps equal the hand recurrence; evaluation uses them', (t) => {
  // lr 0 keeps the parameters, so every step sees the same batch statistics: mean 2, unbiased
  // variance 1 * B/(B-1) = 2. mean_N = 2 (1 - 0.9^N); var_N = 0.9 var + 0.1 2 = 2 - 0.9^N.
  const net = new ReferenceMLP([1, 1, 2], bnInit(), { batchNorm: true });
  for (let n = 1; n <= 3; n++) {
    net.step(bnPixels, bnLabels, 2, { optimizer: 'sgd', lr: 0 });
    const [gamma, beta, mean, variance] = net.getNormState64();
    t.deepEqual([...gamma, ...beta], [1, 0]);
    close(t, mean[0], 2 * (1 - 0.9 ** n), 1e-15, `running mean after ${n}`);
    close(t, variance[0], 2 - 0.9 ** n, 1e-15, `running variance after ${n}`);
  }
  // Evaluation: zhat = (z - 0.542) / sqrt(1.271 + 1e-5) for z = (1, 3), both > 0, so the
  // logits of row r are (a_r, -a_r) and p(class 0) = sigma(2 a_r).
  const probs = net.forward(bnPixels, 2);
  const a = [1, 3].map((z) => (z - 0.542) / Math.sqrt(1.271 + 1e-5));
  closeArray(t, probs, [sigma(2 * a[0]), 1 - sigma(2 * a[0]), sigma(2 * a[1]), 1 - sigma(2 * a[1])], 1e-14, 'eval probabilities');
  const ev = net.evaluate(bnPixels, bnLabels, 2);
  close(t, ev.loss, (-Math.log(sigma(2 * a[0])) - Math.log(1 - sigma(2 * a[1]))) / 2, 1e-14, 'eval loss');
  // Training mode uses the batch's statistics instead: a different loss.
  const s = Math.sqrt(1 + 1e-5);
  close(t, net.lossAndGradients(bnPixels, bnLabels, 2).loss, (Math.LN2 + Math.log(1 + Math.exp(2 / s))) / 2, 1e-14, 'training loss');
  // Custom momentum and eps.
  const net2 = new ReferenceMLP([1, 1, 2], bnInit(), { batchNorm: true, bnMomentum: 0.5, bnEps: 0.25 });
  net2.step(bnPixels, bnLabels, 2, { optimizer: 'sgd', lr: 0 });
  closeArray(t, net2.getNormState64()[2], [1], 1e-15, 'mean with m = 0.5');
  closeArray(t, net2.getNormState64()[3], [1.5], 1e-15, 'variance with m = 0.5');
  close(t, net2.lossAndGradients(bnPixels, bnLabels, 2).loss, (Math.LN2 + Math.log(1 + Math.exp(2 / Math.sqrt(1.25)))) / 2, 1e-14, 'eps 0.25');
});

test('batch norm with a batch of one: the layer outputs beta, only the running mean moves', (t) => {
  const net = new ReferenceMLP([1, 1, 2], bnInit(), { batchNorm: true });
  net.setNormState([[1.5], [0.5], [0], [1]]);
  // z = 3 is the batch mean: zhat = 0, z' = beta = 0.5, a = 0.5, logits (0.5, -0.5).
  const { loss } = net.lossAndGradients(Uint8Array.of(255), [1], 1);
  close(t, loss, Math.log(1 + Math.exp(1)), 1e-14, 'loss of logits (0.5, -0.5), label 1');
  net.step(Uint8Array.of(255), [1], 1, { optimizer: 'sgd', lr: 0 });
  const [, , mean, variance] = net.getNormState64();
  closeArray(t, mean, [0.3], 1e-15, 'mean 0.9 0 + 0.1 3');
  closeArray(t, variance, [1], 0, 'variance untouched');
});

test('norm state: layout, f32 view, validation', (t) => {
  const sizes = [3, 4, 5, 2];
  const net = new ReferenceMLP(sizes, randomInit(sizes, mulberry32(1)), { batchNorm: true });
  const st = net.getNormState();
  t.is(st.length, 8);
  t.true(st.every((a) => a instanceof Float32Array));
  t.deepEqual(st.map((a) => a.length), [4, 4, 4, 4, 5, 5, 5, 5]);
  t.deepEqual(Array.from(st[0]), [1, 1, 1, 1]);
  t.deepEqual(Array.from(st[3]), [1, 1, 1, 1]);
  t.deepEqual(Array.from(st[6]), [0, 0, 0, 0, 0]);
  t.deepEqual(new ReferenceMLP(sizes, randomInit(sizes, mulberry32(1))).getNormState(), []);
  t.throws(() => net.setNormState(st.slice(0, 4)), { instanceOf: RangeError, message: /norm state has 4 arrays, expected 8/ });
  const bad = st.map((a) => a.slice());
  bad[7][2] = 0;
  t.throws(() => net.setNormState(bad), { instanceOf: RangeError, message: /hidden layer 2 running variance\[2\] = 0 must be finite and > 0/ });
  bad[7][2] = 1;
  bad[0][0] = NaN;
  t.throws(() => net.setNormState(bad), { instanceOf: RangeError, message: /hidden layer 1 gamma\[0\] = NaN/ });
  bad[0] = new Float32Array(3);
  t.throws(() => net.setNormState(bad), { instanceOf: RangeError, message: /hidden layer 1 gamma has length 3, expected 4/ });
});

// ------------------------------------------------------- label smoothing --

test('label smoothing: output delta is (softmax - ((1-eps) onehot + eps/K)) / B; reported loss stays plain', (t) => {
  // One linear layer [2, 3], zero weights: the logits are the biases (0, 1, -1) for every row.
  const net = new ReferenceMLP([2, 3], [{ weights: new Float64Array(6), bias: [0, 1, -1] }]);
  const pixels = Uint8Array.of(0, 0, 0, 0);
  const labels = [1, 2];
  const z = [0, 1, -1];
  const sum = z.reduce((s, v) => s + Math.exp(v), 0);
  const p = z.map((v) => Math.exp(v) / sum);
  const eps = 0.3;
  const target = (y: number) => [0, 1, 2].map((j) => (j === y ? 0.7 : 0) + 0.1);
  const { loss, objective, grads } = net.lossAndGradients(pixels, labels, 2, 0, { labelSmoothing: eps });
  // gb = sum over rows of (p - t_r) / 2.
  const t1 = target(1);
  const t2 = target(2);
  closeArray(t, grads[0].bias, [0, 1, 2].map((j) => (p[j] - t1[j] + p[j] - t2[j]) / 2), 1e-15, 'gb');
  close(t, loss, (-Math.log(p[1]) - Math.log(p[2])) / 2, 1e-15, 'plain CE');
  const smooth = (y: number) => -target(y).reduce((s, tj, j) => s + tj * Math.log(p[j]), 0);
  close(t, objective, (smooth(1) + smooth(2)) / 2, 1e-15, 'smoothed objective');
  t.throws(() => net.lossAndGradients(pixels, labels, 2, 0, { labelSmoothing: 1 }), { instanceOf: RangeError, message: /labelSmoothing must be a number in \[0, 1\)/ });
  t.throws(() => net.step(pixels, labels, 2, { optimizer: 'sgd', lr: 0.1, labelSmoothing: -0.1 }), { instanceOf: RangeError, message: /labelSmoothing/ });
});

// -------------------------------------------------------------- clipping --

test('clipping: a gradient of known norm sqrt(1/2) is scaled by c/(norm + 1e-6); L2 is added after', (t) => {
  // [1, 2], input pixel 0: the weight gradient is 0, the bias gradient softmax(0,0) - onehot(0)
  // = (-0.5, 0.5), norm sqrt(0.5).
  const make = () => new ReferenceMLP([1, 2], [{ weights: [0.5, -0.25], bias: [0, 0] }]);
  const scale = 0.1 / (Math.SQRT1_2 + 1e-6);
  const net = make();
  net.step(Uint8Array.of(0), [0], 1, { optimizer: 'sgd', lr: 1, l2: 0.2, clipNorm: 0.1 });
  const [w] = net.getWeights64();
  closeArray(t, w.bias, [0.5 * scale, -0.5 * scale], 1e-16, 'clipped bias step');
  // W moved by lr lambda W only, unscaled: L2 joins after the clip.
  closeArray(t, w.weights, [0.5 * 0.8, -0.25 * 0.8], 1e-16, 'L2 step');
  // A norm below c is left alone (min(1, .)).
  const loose = make();
  loose.step(Uint8Array.of(0), [0], 1, { optimizer: 'sgd', lr: 1, clipNorm: 10 });
  closeArray(t, loose.getWeights64()[0].bias, [0.5, -0.5], 0, 'unclipped');
  t.throws(() => make().step(Uint8Array.of(0), [0], 1, { optimizer: 'sgd', lr: 1, clipNorm: 0 }), { instanceOf: RangeError, message: /clipNorm must be a finite number > 0/ });
});

test('clipping: the global norm counts gamma and beta, and every parameter moves by -lr c g/(||g|| + 1e-6)', (t) => {
  const sizes = [4, 3, 3, 2];
  const init = randomInit(sizes, mulberry32(21));
  const rand = mulberry32(22);
  const pixels = Uint8Array.from({ length: 5 * 4 }, () => Math.floor(rand() * 256));
  const labels = [0, 1, 1, 0, 1];
  const opts: ReferenceOptions = { batchNorm: true, activation: 'silu' };
  const net = new ReferenceMLP(sizes, init, opts);
  net.setNormState([[1.2, 0.8, 1], [0.1, -0.2, 0.3], [0, 0, 0], [1, 1, 1], [0.9, 1.1, 1.3], [0, 0.5, -0.5], [0, 0, 0], [1, 1, 1]]);
  const { grads } = net.lossAndGradients(pixels, labels, 5);
  const flat = grads.flatMap((g) => [g.weights, g.bias, ...(g.gamma ? [g.gamma, g.beta!] : [])]);
  const norm = Math.sqrt(flat.reduce((s, a) => s + a.reduce((u, v) => u + v * v, 0), 0));
  const before = [...net.getWeights64().flatMap((l) => [...l.weights, ...l.bias]), ...net.getNormState64().flatMap((a) => [...a])];
  const c = 1e-3;
  net.step(pixels, labels, 5, { optimizer: 'sgd', lr: 2, clipNorm: c });
  const after = [...net.getWeights64().flatMap((l) => [...l.weights, ...l.bias]), ...net.getNormState64().flatMap((a) => [...a])];
  const f = (2 * c) / (norm + 1e-6);
  const gWb = grads.flatMap((g) => [...g.weights, ...g.bias]);
  gWb.forEach((g, i) => close(t, after[i], before[i] - f * g, 1e-15, `W/b ${i}`));
  // Norm state: [gamma, beta, mean, var] per hidden layer; gamma/beta moved by the same factor.
  const norm64 = net.getNormState64();
  const beforeNorm = [[1.2, 0.8, 1], [0.1, -0.2, 0.3], [0.9, 1.1, 1.3], [0, 0.5, -0.5]];
  closeArray(t, norm64[0], beforeNorm[0].map((v, j) => v - f * grads[0].gamma![j]), 1e-15, 'gamma1');
  closeArray(t, norm64[1], beforeNorm[1].map((v, j) => v - f * grads[0].beta![j]), 1e-15, 'beta1');
  closeArray(t, norm64[4], beforeNorm[2].map((v, j) => v - f * grads[1].gamma![j]), 1e-15, 'gamma2');
  closeArray(t, norm64[5], beforeNorm[3].map((v, j) => v - f * grads[1].beta![j]), 1e-15, 'beta2');
  t.true(norm > 1e-2, `the gradient norm ${norm} is well above c`);
});

// ------------------------------------------------------ AdamW, momentum --

const optLayers = [3, 2, 2];
function optInit(): ReferenceInit[] {
  return [
    { weights: Float32Array.of(0.5, 0.25, -0.75, -0.5, 1.0, 0.125), bias: Float32Array.of(0.25, 0.5) },
    { weights: Float32Array.of(1.5, -0.5, -1.0, 0.75), bias: Float32Array.of(0.125, -0.25) },
  ];
}
const optPixels = Uint8Array.of(200, 10, 90, 30, 250, 120);
const optLabels = [1, 0];
const flatW = (ls: { weights: ArrayLike<number>; bias: ArrayLike<number> }[]) => ls.map((l) => ({ w: Array.from(l.weights), b: Array.from(l.bias) }));

test('AdamW step 1: W <- W (1 - lr wd) - lr g/(|g| + eps); biases are not decayed', (t) => {
  const lr = 0.01;
  const wd = 0.1;
  const net = new ReferenceMLP(optLayers, optInit());
  const before = flatW(net.getWeights64());
  const g = flatW(net.lossAndGradients(optPixels, optLabels, 2).grads);
  net.step(optPixels, optLabels, 2, { optimizer: 'adamw', lr, weightDecay: wd });
  const after = flatW(net.getWeights64());
  const move = (x: number) => (lr * x) / (Math.abs(x) + 1e-8);
  before.forEach((l, k) => {
    closeArray(t, after[k].w, l.w.map((w, i) => w * (1 - lr * wd) - move(g[k].w[i])), 1e-15, `W${k + 1}`);
    closeArray(t, after[k].b, l.b.map((b, i) => b - move(g[k].b[i])), 1e-15, `b${k + 1}`);
  });
  // Default weight decay 1e-2; weightDecay with another optimizer is refused.
  const d = new ReferenceMLP(optLayers, optInit());
  d.step(optPixels, optLabels, 2, { optimizer: 'adamw', lr });
  close(t, d.getWeights64()[0].weights[0], 0.5 * (1 - lr * 1e-2) - move(g[0].w[0]), 1e-15, 'default decay');
  t.throws(() => d.step(optPixels, optLabels, 2, { optimizer: 'adam', lr, weightDecay: 0.1 }), { instanceOf: RangeError, message: /weightDecay is AdamW's/ });
});

test('AdamW step 2 with coupled L2 as well: decay outside the moments, lambda W inside', (t) => {
  const [lr, wd, l2, b1, b2] = [0.01, 0.05, 0.02, 0.9, 0.999];
  const net = new ReferenceMLP(optLayers, optInit());
  const g1 = flatW(net.lossAndGradients(optPixels, optLabels, 2, l2).grads);
  net.step(optPixels, optLabels, 2, { optimizer: 'adamw', lr, weightDecay: wd, l2 });
  const th1 = flatW(net.getWeights64());
  const g2 = flatW(net.lossAndGradients(optPixels, optLabels, 2, l2).grads);
  net.step(optPixels, optLabels, 2, { optimizer: 'adamw', lr, weightDecay: wd, l2 });
  const th2 = flatW(net.getWeights64());
  th1.forEach((l, k) => {
    for (const key of ['w', 'b'] as const) {
      l[key].forEach((x, i) => {
        const m = b1 * (1 - b1) * g1[k][key][i] + (1 - b1) * g2[k][key][i];
        const v = b2 * (1 - b2) * g1[k][key][i] ** 2 + (1 - b2) * g2[k][key][i] ** 2;
        const decayed = key === 'w' ? x * (1 - lr * wd) : x;
        close(t, th2[k][key][i], decayed - (lr * (m / (1 - b1 ** 2))) / (Math.sqrt(v / (1 - b2 ** 2)) + 1e-8), 1e-14, `${key}${k + 1}[${i}]`);
      });
    }
  });
});

test('SGD momentum and Nesterov: three steps by hand (PyTorch, dampening 0, buf = g at the first step)', (t) => {
  const [lr, mu, l2] = [0.2, 0.9, 0.01];
  for (const nesterov of [false, true]) {
    const net = new ReferenceMLP(optLayers, optInit());
    let theta = flatW(net.getWeights64()).flatMap((l) => [...l.w, ...l.b]);
    let buf: number[] | null = null;
    for (let s = 0; s < 3; s++) {
      // g includes lambda W (the L2 term).
      const g = flatW(net.lossAndGradients(optPixels, optLabels, 2, l2).grads).flatMap((l) => [...l.w, ...l.b]);
      net.step(optPixels, optLabels, 2, { optimizer: 'sgd', lr, l2, momentum: mu, nesterov });
      const b: number[] = buf === null ? g.slice() : buf.map((v, i) => mu * v + g[i]);
      buf = b;
      theta = theta.map((x, i) => x - lr * (nesterov ? g[i] + mu * b[i] : b[i]));
      const got = flatW(net.getWeights64()).flatMap((l) => [...l.w, ...l.b]);
      closeArray(t, got, theta, 1e-14, `nesterov ${nesterov} step ${s + 1}`);
    }
    const state = net.getMomentumState()!;
    closeArray(t, state.flatMap((l) => [...l.weights, ...l.bias]), buf!, 1e-14, 'momentum buffer');
  }
  // momentum 0 is plain SGD, bit for bit.
  const a = new ReferenceMLP(optLayers, optInit());
  const b = new ReferenceMLP(optLayers, optInit());
  for (let s = 0; s < 3; s++) {
    a.step(optPixels, optLabels, 2, { optimizer: 'sgd', lr, l2 });
    b.step(optPixels, optLabels, 2, { optimizer: 'sgd', lr, l2, momentum: 0 });
  }
  t.deepEqual(a.getWeights64(), b.getWeights64());
  t.is(b.getMomentumState(), null);
  t.throws(() => b.step(optPixels, optLabels, 2, { optimizer: 'sgd', lr, nesterov: true }), { instanceOf: RangeError, message: /nesterov needs momentum > 0/ });
  t.throws(() => b.step(optPixels, optLabels, 2, { optimizer: 'adam', lr, momentum: 0.9 }), { instanceOf: RangeError, message: /momentum is for optimizer 'sgd'/ });
  t.throws(() => b.step(optPixels, optLabels, 2, { optimizer: 'sgd', lr, momentum: -0.1 }), { instanceOf: RangeError, message: /momentum must be/ });
});

test('Adam state covers gamma and beta, in the order W, b, gamma, beta', (t) => {
  const sizes = [3, 2, 2];
  const net = new ReferenceMLP(sizes, optInit(), { batchNorm: true });
  const g = net.lossAndGradients(optPixels, optLabels, 2).grads;
  net.step(optPixels, optLabels, 2, { optimizer: 'adam', lr: 0.01 });
  const st = net.getAdamState()!;
  t.is(st.t, 1);
  closeArray(t, st.m[0].gamma!, g[0].gamma!.map((x) => 0.1 * x), 1e-16, 'm gamma');
  closeArray(t, st.v[0].beta!, g[0].beta!.map((x) => 0.001 * x * x), 1e-18, 'v beta');
  t.is(st.m[1].gamma, undefined);
  // gamma moved by lr sign(g) at step 1 (|g| >> eps).
  const [gamma] = net.getNormState64();
  closeArray(t, gamma, g[0].gamma!.map((x) => 1 - (0.01 * x) / (Math.abs(x) + 1e-8)), 1e-15, 'gamma after step 1');
  const copy = new ReferenceMLP(sizes, optInit(), { batchNorm: true });
  copy.setAdamState(st);
  t.deepEqual(copy.getAdamState(), st);
  t.throws(() => copy.setAdamState({ t: 1, m: st.m.map((l) => ({ weights: l.weights, bias: l.bias })), v: st.v }), { instanceOf: RangeError, message: /Adam m: layer 1 has the wrong size/ });
});

// --------------------------------------------------- finite differences --

interface FdCase {
  name: string;
  sizes: number[];
  options: ReferenceOptions;
  l2?: number;
  labelSmoothing?: number;
  /** gamma, beta per hidden layer (batch norm only); running stats do not enter training. */
  norm?: boolean;
  n: number;
  seeds: number[];
}

/**
 * Central differences of `objective` (training mode: batch statistics, the step's dropout
 * masks, smoothed CE + L2) against backprop for every W, b, gamma, beta.
 */
function checkFiniteDifferences(t: ExecutionContext, c: FdCase): void {
  const h = 1e-5;
  let worst = 0;
  let checked = 0;
  for (const seed of c.seeds) {
    const rand = mulberry32(seed);
    const init = randomInit(c.sizes, rand);
    const pixels = Uint8Array.from({ length: c.n * c.sizes[0] }, () => Math.floor(rand() * 256));
    const labels = Array.from({ length: c.n }, () => Math.floor(rand() * c.sizes[c.sizes.length - 1]));
    const hiddenWidths = c.sizes.slice(1, -1);
    const norm: Float64Array[] = c.norm
      ? hiddenWidths.flatMap((w) => [
          new Float64Array(w).map(() => 0.5 + rand()),
          new Float64Array(w).map(() => rand() - 0.5),
          new Float64Array(w),
          new Float64Array(w).fill(1),
        ])
      : [];
    const objective = (params: typeof init, ns: Float64Array[]): number => {
      const net = new ReferenceMLP(c.sizes, params, c.options);
      if (c.norm) net.setNormState(ns);
      return net.lossAndGradients(pixels, labels, c.n, c.l2 ?? 0, { labelSmoothing: c.labelSmoothing }).objective;
    };
    const net = new ReferenceMLP(c.sizes, init, c.options);
    if (c.norm) net.setNormState(norm);
    const { grads } = net.lossAndGradients(pixels, labels, c.n, c.l2 ?? 0, { labelSmoothing: c.labelSmoothing });
    const compare = (numeric: number, analytic: number, what: string) => {
      const err = Math.abs(numeric - analytic);
      // Relative 1e-6, with an absolute floor for gradients that vanish (the bias before batch norm).
      t.true(err <= 1e-6 * Math.max(Math.abs(numeric), Math.abs(analytic)) + 1e-9, `${c.name} seed ${seed} ${what}: numeric ${numeric} analytic ${analytic}`);
      if (Math.abs(analytic) > 1e-6) worst = Math.max(worst, err / Math.abs(analytic));
      checked++;
    };
    for (let l = 0; l < init.length; l++) {
      for (const key of ['weights', 'bias'] as const) {
        for (let i = 0; i < init[l][key].length; i++) {
          const plus = init.map((p) => ({ weights: p.weights.slice(), bias: p.bias.slice() }));
          const minus = init.map((p) => ({ weights: p.weights.slice(), bias: p.bias.slice() }));
          plus[l][key][i] += h;
          minus[l][key][i] -= h;
          compare((objective(plus, norm) - objective(minus, norm)) / (2 * h), grads[l][key][i], `layer ${l + 1} ${key}[${i}]`);
        }
      }
    }
    if (c.norm) {
      hiddenWidths.forEach((w, hl) => {
        for (const [k, key] of [[0, 'gamma'], [1, 'beta']] as const) {
          for (let j = 0; j < w; j++) {
            const plus = norm.map((a) => a.slice());
            const minus = norm.map((a) => a.slice());
            plus[4 * hl + k][j] += h;
            minus[4 * hl + k][j] -= h;
            compare((objective(init, plus) - objective(init, minus)) / (2 * h), grads[hl][key]![j], `hidden ${hl + 1} ${key}[${j}]`);
          }
        }
      });
    }
  }
  t.log(`${c.name}: ${checked} partial derivatives, worst relative error ${worst.toExponential(2)}`);
  t.true(checked > 0);
}

const FD_CASES: FdCase[] = [
  { name: 'leaky-relu', sizes: [5, 4, 3, 3], options: { activation: 'leaky-relu', leakySlope: 0.1 }, n: 4, seeds: [1, 2, 3] },
  { name: 'silu', sizes: [5, 4, 3, 3], options: { activation: 'silu' }, n: 4, seeds: [1, 2, 3] },
  { name: 'gelu', sizes: [5, 4, 3, 3], options: { activation: 'gelu' }, n: 4, seeds: [1, 2, 3] },
  { name: 'batch norm (relu)', sizes: [5, 4, 3, 3], options: { batchNorm: true }, norm: true, n: 6, seeds: [4, 5, 6] },
  { name: 'batch norm (gelu, eps 0.01)', sizes: [5, 4, 3, 3], options: { batchNorm: true, activation: 'gelu', bnEps: 0.01 }, norm: true, n: 5, seeds: [7, 8] },
  { name: 'label smoothing 0.2', sizes: [5, 4, 3, 3], options: {}, labelSmoothing: 0.2, n: 4, seeds: [9, 10] },
  { name: 'dropout 0.4 (fixed mask)', sizes: [5, 6, 5, 3], options: { dropout: 0.4, seed: 99 }, n: 4, seeds: [11, 12] },
  { name: 'dropout per layer [0.5, 0.2], silu', sizes: [5, 6, 5, 3], options: { dropout: [0.5, 0.2], seed: 2 ** 40 + 3, activation: 'silu' }, n: 4, seeds: [13] },
  {
    name: 'all levers: gelu + batch norm + dropout + smoothing + L2', sizes: [5, 6, 4, 3],
    options: { activation: 'gelu', batchNorm: true, dropout: [0.3, 0.25], seed: 5 }, norm: true, l2: 0.01, labelSmoothing: 0.1, n: 6, seeds: [14, 15],
  },
];

for (const c of FD_CASES) {
  test(`central finite differences agree with backprop: ${c.name}`, (t) => checkFiniteDifferences(t, c));
}

// ----------------------------------------------------------- validation --

test('construction options are validated, naming the setting', (t) => {
  const sizes = [3, 2, 2];
  const init = optInit();
  const bad: Array<[ReferenceOptions, RegExp]> = [
    [{ activation: 'tanh' as Activation }, /activation must be one of relu, leaky-relu, silu, gelu/],
    [{ leakySlope: NaN }, /leakySlope must be a finite number >= 0/],
    [{ leakySlope: -0.5 }, /leakySlope must be a finite number >= 0/],
    [{ dropout: 1 }, /dropout must be a number in \[0, 1\)/],
    [{ dropout: -0.1 }, /dropout must be/],
    [{ dropout: [0.1, 0.2] }, /dropout lists 2 rates, the model has 1 hidden layers/],
    [{ dropout: [1.5] }, /dropout\[0\] must be/],
    [{ bnMomentum: -0.1 }, /bnMomentum must be a number in \[0, 1\]/],
    [{ bnMomentum: 1.5 }, /bnMomentum/],
    [{ bnEps: 0 }, /bnEps must be a finite number > 0/],
    [{ seed: -1 }, /seed must be/],
  ];
  for (const [opts, message] of bad) t.throws(() => new ReferenceMLP(sizes, init, opts), { instanceOf: RangeError, message }, JSON.stringify(opts));
});

test('defaults are today\'s model: relu, no dropout, no batch norm; options leave evaluation unchanged when inert', (t) => {
  const net = new ReferenceMLP(optLayers, optInit());
  t.is(net.activation, 'relu');
  t.deepEqual(net.dropout, [0]);
  t.false(net.batchNorm);
  const explicit = new ReferenceMLP(optLayers, optInit(), { activation: 'relu', dropout: 0, batchNorm: false, seed: 123 });
  for (let s = 0; s < 3; s++) {
    net.step(optPixels, optLabels, 2, { optimizer: 'adam', lr: 0.01, l2: 0.001 });
    explicit.step(optPixels, optLabels, 2, { optimizer: 'adam', lr: 0.01, l2: 0.001, labelSmoothing: 0 });
  }
  t.deepEqual(net.getWeights64(), explicit.getWeights64());
});

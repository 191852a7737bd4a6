//! The new layers and optimisers (issue F1) against independent arithmetic: a naive f64
//! implementation of the conventions (activations, batch norm, the dropout hash, label smoothing)
//! whose central differences the engine's gradients must match, and optimiser steps by hand.

use kana_core::mlp::{TrainPass, Workspace};
use kana_core::{Activation, Control, Dataset, EpochOptions, NetConfig, Optimizer, Rng, Trainer};

// ---------------------------------------------------------------------------------------------
// A naive f64 network, written from CONVENTIONS.md without looking at the engine's code paths.

fn mix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846ca68b);
    h ^= h >> 16;
    h
}

/// erf in f64: Maclaurin series below 3, the continued fraction of erfc above (both to ~1e-14).
fn erf64(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 3.0 {
        let (mut term, mut sum, mut n) = (a, a, 0.0);
        while term.abs() > 1e-18 {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let mut t = a;
        for k in (1..=80).rev() {
            t = a + (k as f64 / 2.0) / t;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * t)
    };
    r.copysign(x)
}

#[derive(Clone)]
struct Naive {
    sizes: Vec<usize>,
    /// per layer, row-major in×out
    w: Vec<Vec<f64>>,
    b: Vec<Vec<f64>>,
    gamma: Vec<Vec<f64>>,
    beta: Vec<Vec<f64>>,
    mean: Vec<Vec<f64>>,
    var: Vec<Vec<f64>>,
    act: Activation,
    dropout: Vec<f64>,
    bn: bool,
    eps: f64,
    seed: u64,
    step: u64,
}

impl Naive {
    fn from(t: &Trainer) -> Self {
        let net = &t.net;
        let f = |a: &[f32]| a.iter().map(|&v| v as f64).collect::<Vec<_>>();
        Naive {
            sizes: net.sizes.clone(),
            w: net.layers.iter().map(|l| f(l.w.as_slice().unwrap())).collect(),
            b: net.layers.iter().map(|l| f(l.b.as_slice().unwrap())).collect(),
            gamma: net.norms.iter().map(|n| f(n.gamma.as_slice().unwrap())).collect(),
            beta: net.norms.iter().map(|n| f(n.beta.as_slice().unwrap())).collect(),
            mean: net.running.iter().map(|r| f(r.mean.as_slice().unwrap())).collect(),
            var: net.running.iter().map(|r| f(r.var.as_slice().unwrap())).collect(),
            act: net.config.activation,
            dropout: net.config.dropout.clone(),
            bn: net.config.batch_norm,
            eps: net.config.bn_eps,
            seed: t.seed,
            step: t.optimizer_state.step,
        }
    }

    fn act(&self, x: f64) -> f64 {
        match self.act {
            Activation::Relu => x.max(0.0),
            Activation::LeakyRelu { slope } => if x > 0.0 { x } else { slope as f64 * x },
            Activation::Silu => x / (1.0 + (-x).exp()),
            Activation::Gelu => 0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2)),
        }
    }

    /// Parameter tensors in the engine's order: W, b (γ, β) per layer.
    fn tensor_mut(&mut self, i: usize) -> &mut Vec<f64> {
        let hidden = self.sizes.len() - 2;
        if self.bn && i < 4 * hidden {
            let l = i / 4;
            match i % 4 { 0 => &mut self.w[l], 1 => &mut self.b[l], 2 => &mut self.gamma[l], _ => &mut self.beta[l] }
        } else {
            let j = if self.bn { i - 2 * hidden } else { i };
            if j % 2 == 0 { &mut self.w[j / 2] } else { &mut self.b[j / 2] }
        }
    }

    fn tensors(&self) -> usize {
        2 * (self.sizes.len() - 1) + if self.bn { 2 * (self.sizes.len() - 2) } else { 0 }
    }

    /// (mean smoothed cross-entropy, mean plain cross-entropy, logits, sign pattern of Z')
    fn run(&self, data: &Dataset, train: bool, smoothing: f64) -> (f64, f64, Vec<Vec<f64>>, Vec<bool>) {
        let n = data.len();
        let mut a: Vec<Vec<f64>> = data.pixels().chunks(self.sizes[0]).map(|r| r.iter().map(|&p| p as f64 / 255.0).collect()).collect();
        let mut pattern = Vec::new();
        let layers = self.sizes.len() - 1;
        for l in 0..layers {
            let (inp, out) = (self.sizes[l], self.sizes[l + 1]);
            let mut z: Vec<Vec<f64>> = (0..n).map(|r| (0..out).map(|j| (0..inp).map(|i| a[r][i] * self.w[l][i * out + j]).sum::<f64>() + self.b[l][j]).collect()).collect();
            if l == layers - 1 {
                a = z;
                break;
            }
            if self.bn {
                for j in 0..out {
                    let (mu, var) = if train {
                        let mu = (0..n).map(|r| z[r][j]).sum::<f64>() / n as f64;
                        (mu, (0..n).map(|r| (z[r][j] - mu).powi(2)).sum::<f64>() / n as f64)
                    } else {
                        (self.mean[l][j], self.var[l][j])
                    };
                    for row in z.iter_mut() {
                        row[j] = self.gamma[l][j] * (row[j] - mu) / (var + self.eps).sqrt() + self.beta[l][j];
                    }
                }
            }
            let p = self.dropout[l];
            let key = {
                let (lo, hi) = (self.seed as u32, (self.seed >> 32) as u32);
                let k = mix32(mix32(hi ^ 0x9e3779b9) ^ lo);
                let k = mix32(k ^ self.step as u32);
                mix32(k ^ (l as u32 + 1))
            };
            let threshold = (p * 4294967296.0).floor() as u32;
            for (r, row) in z.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    pattern.push(*v > 0.0);
                    *v = self.act(*v);
                    if train && p > 0.0 {
                        let keep = mix32(key ^ (r * out + j) as u32) >= threshold;
                        *v *= if keep { 1.0 / (1.0 - p) } else { 0.0 };
                    }
                }
            }
            a = z;
        }
        let labels = data.labels().unwrap();
        let k = *self.sizes.last().unwrap() as f64;
        let (mut obj, mut ce) = (0.0, 0.0);
        for (z, &y) in a.iter().zip(labels) {
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            ce += lse - z[y as usize];
            obj += lse - (1.0 - smoothing) * z[y as usize] - smoothing / k * z.iter().sum::<f64>();
        }
        (obj / n as f64, ce / n as f64, a, pattern)
    }
}

fn random_data(n: usize, features: usize, classes: u32, rng: &mut Rng) -> Dataset {
    let pixels = (0..n * features).map(|_| rng.below(256) as u8).collect();
    let labels = (0..n).map(|_| rng.below(classes as usize) as u32).collect();
    Dataset::new(pixels, Some(labels), features).unwrap()
}

fn config(sizes: &[usize], act: Activation, dropout: f64, bn: bool) -> NetConfig {
    NetConfig { activation: act, dropout: vec![dropout; sizes.len() - 2], batch_norm: bn, ..NetConfig::plain(sizes) }
}

/// A trainer with non-trivial biases, γ and β (so that every term of the gradient matters).
fn trainer(sizes: &[usize], cfg: NetConfig, seed: u64) -> Trainer {
    let mut t = Trainer::with_config(sizes, cfg, seed, 2).unwrap();
    let mut rng = Rng::new(seed ^ 0xabc);
    for layer in &mut t.net.layers {
        layer.b.iter_mut().for_each(|b| *b = (rng.normal() * 0.1) as f32);
    }
    for norm in &mut t.net.norms {
        norm.gamma.iter_mut().for_each(|g| *g = (1.0 + rng.normal() * 0.2) as f32);
        norm.beta.iter_mut().for_each(|b| *b = (rng.normal() * 0.2) as f32);
    }
    t
}

/// The engine's gradient against central differences (h = 1e-6, in f64) of the naive objective.
/// Error measure: |engine − numeric| / max(|numeric|, 1e-2·G), G the largest |numeric| of all
/// parameters (the engine computes in f32, so gradients far below the typical size only have an
/// absolute accuracy). Parameters whose perturbation flips a ReLU/leaky-ReLU kink are skipped.
/// Returns the worst error.
fn gradient_check(t: &mut Trainer, data: &Dataset, smoothing: f32, what: &str) -> f64 {
    gradient_check_every(t, data, smoothing, what, 1)
}

/// As [`gradient_check`], on every `stride`-th parameter of each tensor (for large data sets).
fn gradient_check_every(t: &mut Trainer, data: &Dataset, smoothing: f32, what: &str, stride: usize) -> f64 {
    let opts = EpochOptions { label_smoothing: smoothing, ..Default::default() };
    let (analytic, engine_ce) = t.gradients(data, &opts).unwrap();
    let naive = Naive::from(t);
    let (_, ce, _, pattern) = naive.run(data, true, smoothing as f64);
    assert!((engine_ce - ce).abs() < 1e-5 * (1.0 + ce), "{what}: training loss {engine_ce} vs naive {ce}");
    let h = 1e-6;
    let mut numeric = Vec::new();
    let mut skipped = 0;
    for i in 0..naive.tensors() {
        let mut row = Vec::new();
        for k in 0..analytic[i].len() {
            if k % stride != 0 {
                row.push(None);
                continue;
            }
            let mut up = naive.clone();
            up.tensor_mut(i)[k] += h;
            let mut down = naive.clone();
            down.tensor_mut(i)[k] -= h;
            let (ju, _, _, pu) = up.run(data, true, smoothing as f64);
            let (jd, _, _, pd) = down.run(data, true, smoothing as f64);
            let kinked = matches!(naive.act, Activation::Relu | Activation::LeakyRelu { .. }) && (pu != pattern || pd != pattern);
            if kinked {
                skipped += 1;
            }
            row.push(if kinked { None } else { Some((ju - jd) / (2.0 * h)) });
        }
        numeric.push(row);
    }
    let scale = numeric.iter().flatten().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    let (mut worst, mut checked) = (0.0f64, 0);
    for (i, row) in numeric.iter().enumerate() {
        for (k, num) in row.iter().enumerate() {
            let Some(num) = *num else { continue };
            let a = analytic[i][k] as f64;
            let err = (a - num).abs() / num.abs().max(1e-2 * scale);
            assert!(err < 1e-3, "{what}: tensor {i}[{k}] engine {a} vs numeric {num} (error {err:.2e})");
            worst = worst.max(err);
            checked += 1;
        }
    }
    assert!(checked > 10 * skipped, "{what}: {checked} checked, {skipped} on kinks");
    eprintln!("gradient check {what}: {checked} parameters, {skipped} skipped on kinks, worst error {worst:.2e}");
    worst
}

const ACTS: [Activation; 4] = [Activation::Relu, Activation::LeakyRelu { slope: 0.1 }, Activation::Silu, Activation::Gelu];

#[test]
fn gradients_of_every_activation_match_central_differences() {
    let mut rng = Rng::new(21);
    let data = random_data(9, 6, 3, &mut rng);
    let sizes = [6, 5, 4, 3];
    for act in ACTS {
        let mut t = trainer(&sizes, config(&sizes, act, 0.0, false), 3);
        gradient_check(&mut t, &data, 0.0, act.name());
    }
}

#[test]
fn gradients_with_batch_norm_match_central_differences() {
    let mut rng = Rng::new(22);
    let data = random_data(10, 6, 3, &mut rng);
    let sizes = [6, 5, 4, 3];
    for act in ACTS {
        let mut t = trainer(&sizes, config(&sizes, act, 0.0, true), 4);
        gradient_check(&mut t, &data, 0.0, &format!("batch norm + {}", act.name()));
    }
}

#[test]
fn gradients_with_label_smoothing_match_central_differences() {
    let mut rng = Rng::new(23);
    let data = random_data(8, 6, 4, &mut rng);
    let sizes = [6, 5, 4];
    let mut t = trainer(&sizes, config(&sizes, Activation::Silu, 0.0, false), 5);
    gradient_check(&mut t, &data, 0.2, "label smoothing 0.2");
    let mut t = trainer(&[6, 4], config(&[6, 4], Activation::Relu, 0.0, false), 5);
    gradient_check(&mut t, &data, 0.5, "label smoothing 0.5, no hidden layer");
}

#[test]
fn gradients_with_dropout_and_a_known_mask_match_central_differences() {
    // The mask is fixed by (seed, step): set both, and the naive network rebuilds the mask from
    // the conventions' hash. A wrong hash, key, index or scale fails here.
    let mut rng = Rng::new(24);
    let data = random_data(9, 6, 3, &mut rng);
    let sizes = [6, 8, 7, 3];
    for (act, bn) in [(Activation::Relu, false), (Activation::Gelu, false), (Activation::LeakyRelu { slope: 0.05 }, true), (Activation::Silu, true)] {
        let mut t = trainer(&sizes, NetConfig { dropout: vec![0.3, 0.5], ..config(&sizes, act, 0.0, bn) }, 6);
        t.seed = 0x1234_5678_9abc_def0; // both halves of the seed enter the key
        t.optimizer_state.step = 7;
        gradient_check(&mut t, &data, 0.1, &format!("dropout [0.3, 0.5] + {}{}", act.name(), if bn { " + batch norm" } else { "" }));
    }
}

#[test]
fn full_batches_beyond_one_chunk_use_batch_rows_for_masks_and_whole_batch_statistics() {
    // 4,500 rows: without batch norm the engine pushes them through in chunks of 2,048, so the
    // dropout mask must be indexed by the row in the batch, not in the chunk; with batch norm the
    // statistics must be the whole batch's. Both against the naive whole-batch objective.
    let mut rng = Rng::new(25);
    let data = random_data(4500, 5, 3, &mut rng);
    // 16 hidden units: 2,048 × 16 elements per chunk, enough for the element-wise passes to be
    // cut over the two threads too
    let sizes = [5, 16, 3];
    for bn in [false, true] {
        let mut t = trainer(&sizes, NetConfig { dropout: vec![0.4], ..config(&sizes, Activation::Gelu, 0.0, bn) }, 7);
        t.optimizer_state.step = 3;
        gradient_check_every(&mut t, &data, 0.0, &format!("4,500 rows, dropout{}", if bn { " + batch norm" } else { "" }), 5);
    }
    // the plain-ReLU path with dropout (masks read back from the activations), chunked too
    let mut t = trainer(&sizes, config(&sizes, Activation::Relu, 0.25, false), 8);
    gradient_check_every(&mut t, &data, 0.0, "4,500 rows, relu + dropout", 5);
}

// ---------------------------------------------------------------------------------------------
// Optimisers by hand, on the [2, 2] network of gradients.rs: W = [[0.5, −0.5], [0.25, 0]],
// b = [0.1, −0.1], one sample x = [1, 0.2] with label 0.

fn tiny() -> (Trainer, Dataset) {
    let mut t = Trainer::new(&[2, 2], 0, 1).unwrap();
    t.set_params(&[&[0.5, -0.5, 0.25, 0.0], &[0.1, -0.1]]).unwrap();
    (t, Dataset::new(vec![255, 51], Some(vec![0]), 2).unwrap())
}

/// (∂W, ∂b) of the cross-entropy with targets smoothed by ε: δ = p − t, t = (1−ε)·onehot(0) + ε/2.
fn tiny_gradient(p: &[f64; 6], eps: f64) -> [f64; 6] {
    let x = [1.0, 0.2];
    let z0 = x[0] * p[0] + x[1] * p[2] + p[4];
    let z1 = x[0] * p[1] + x[1] * p[3] + p[5];
    let p1 = 1.0 / (1.0 + (z0 - z1).exp());
    let d = [(1.0 - p1) - (1.0 - eps + eps / 2.0), p1 - eps / 2.0];
    [x[0] * d[0], x[0] * d[1], x[1] * d[0], x[1] * d[1], d[0], d[1]]
}

const TINY: [f64; 6] = [0.5, -0.5, 0.25, 0.0, 0.1, -0.1];

fn tiny_params(t: &Trainer) -> [f64; 6] {
    let p = t.params();
    [p[0][0] as f64, p[0][1] as f64, p[0][2] as f64, p[0][3] as f64, p[1][0] as f64, p[1][1] as f64]
}

fn assert_close(got: [f64; 6], want: [f64; 6], what: &str) {
    for i in 0..6 {
        assert!((got[i] - want[i]).abs() < 1e-6, "{what}: parameter {i} is {} but by hand {}", got[i], want[i]);
    }
}

fn opts(optimizer: Optimizer, lr: f32, l2: f32) -> EpochOptions {
    EpochOptions { optimizer, lr, l2, batch_size: 1, ..Default::default() }
}

#[test]
fn three_momentum_and_nesterov_steps_by_hand() {
    for nesterov in [false, true] {
        let (mut t, data) = tiny();
        let (lr, l2, mu) = (0.5f64, 0.1f64, 0.9f64);
        let o = opts(Optimizer::Momentum { momentum: 0.9, nesterov }, 0.5, 0.1);
        let (mut p, mut buf) = (TINY, [0.0f64; 6]);
        for step in 0..3 {
            let g0 = tiny_gradient(&p, 0.0);
            for i in 0..6 {
                let g = g0[i] + if i < 4 { l2 * p[i] } else { 0.0 };
                buf[i] = if step == 0 { g } else { mu * buf[i] + g };
                let d = if nesterov { g + mu * buf[i] } else { buf[i] };
                p[i] -= lr * d;
            }
            t.epoch(&data, &o, &Control::default()).unwrap();
            assert_close(tiny_params(&t), p, &format!("nesterov {nesterov} step {}", step + 1));
        }
        // the buffer is the state's m, laid out like the weights; v stays empty
        let st = &t.optimizer_state;
        assert_eq!((st.m.len(), st.v.len(), st.step), (2, 0, 3));
        for i in 0..6 {
            let m = if i < 4 { st.m[0][i] } else { st.m[1][i - 4] } as f64;
            assert!((m - buf[i]).abs() < 1e-6, "buffer {i}: {m} vs {}", buf[i]);
        }
    }
}

#[test]
fn two_adamw_steps_by_hand() {
    let (mut t, data) = tiny();
    let (lr, wd, b1, b2, eps) = (0.01f64, 0.2f64, 0.9f64, 0.999f64, 1e-8f64);
    let o = opts(Optimizer::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.2 }, 0.01, 0.0);
    let (mut p, mut m, mut v) = (TINY, [0.0; 6], [0.0; 6]);
    for step in 1..=2 {
        let g = tiny_gradient(&p, 0.0);
        for i in 0..6 {
            if i < 4 {
                p[i] *= 1.0 - lr * wd; // decoupled, weights only
            }
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let (mh, vh) = (m[i] / (1.0 - b1.powi(step)), v[i] / (1.0 - b2.powi(step)));
            p[i] -= lr * mh / (vh.sqrt() + eps);
        }
        t.epoch(&data, &o, &Control::default()).unwrap();
        assert_close(tiny_params(&t), p, &format!("AdamW step {step}"));
    }
    // weight decay 0 is exactly Adam
    let (mut a, _) = tiny();
    let (mut w, _) = tiny();
    for _ in 0..3 {
        a.epoch(&data, &opts(Optimizer::ADAM_DEFAULT, 0.01, 0.0), &Control::default()).unwrap();
        w.epoch(&data, &opts(Optimizer::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }, 0.01, 0.0), &Control::default()).unwrap();
    }
    assert_eq!(a.params(), w.params());
}

#[test]
fn clipping_scales_a_gradient_of_known_norm() {
    let g = tiny_gradient(&TINY, 0.0);
    let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
    // ‖g‖ by hand: ∂W = xᵀδ with x = [1, 0.2], δ = [−p₁, p₁], ∂b = δ: ‖g‖ = |p₁|·√(2·(1 + 0.04) + 2)
    let p1 = 1.0 / (1.0 + 1.25f64.exp());
    assert!((norm - p1 * (2.0 * 1.04 + 2.0f64).sqrt()).abs() < 1e-15);
    for (clip, l2) in [(0.1f64, 0.0f64), (0.05, 0.3), (10.0, 0.0)] {
        let (mut t, data) = tiny();
        let o = EpochOptions { clip_norm: Some(clip as f32), ..opts(Optimizer::Sgd, 1.0, l2 as f32) };
        t.epoch(&data, &o, &Control::default()).unwrap();
        let s = (clip / (norm + 1e-6)).min(1.0);
        // clipping sees the data gradient only; L2 is added afterwards by the optimiser
        let want: Vec<f64> = (0..6).map(|i| TINY[i] - (g[i] * s + if i < 4 { l2 * TINY[i] } else { 0.0 })).collect();
        assert_close(tiny_params(&t), want.try_into().unwrap(), &format!("clip {clip}, l2 {l2}"));
        let moved = (0..6).map(|i| (tiny_params(&t)[i] - TINY[i] + if i < 4 { l2 * TINY[i] } else { 0.0 }).powi(2)).sum::<f64>().sqrt();
        assert!((moved - norm.min(clip)).abs() < 1e-5 * (1.0 + norm), "the step's norm {moved} vs min(‖g‖, c) {}", norm.min(clip));
    }
}

#[test]
fn one_label_smoothed_step_by_hand_and_the_reported_loss_stays_plain() {
    let (mut t, data) = tiny();
    let o = EpochOptions { label_smoothing: 0.2, ..opts(Optimizer::Sgd, 0.5, 0.0) };
    let stats = t.epoch(&data, &o, &Control::default()).unwrap();
    let p1 = 1.0 / (1.0 + 1.25f64.exp());
    assert!((stats.loss - (-(1.0 - p1).ln())).abs() < 1e-6, "reported loss {} is not the plain cross-entropy", stats.loss);
    let g = tiny_gradient(&TINY, 0.2);
    assert_close(tiny_params(&t), std::array::from_fn(|i| TINY[i] - 0.5 * g[i]), "smoothed step");
}

// ---------------------------------------------------------------------------------------------
// Batch norm's running statistics and evaluation

/// The hidden layer's batch mean and biased variance of rows `rows` (naive, from the current weights).
fn batch_stats(t: &Trainer, data: &Dataset, rows: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let naive = Naive::from(t);
    let (inp, out) = (naive.sizes[0], naive.sizes[1]);
    let z: Vec<Vec<f64>> = rows
        .iter()
        .map(|&r| {
            let x = &data.pixels()[r * inp..(r + 1) * inp];
            (0..out).map(|j| (0..inp).map(|i| x[i] as f64 / 255.0 * naive.w[0][i * out + j]).sum::<f64>() + naive.b[0][j]).collect()
        })
        .collect();
    let n = rows.len() as f64;
    let mean: Vec<f64> = (0..out).map(|j| z.iter().map(|r| r[j]).sum::<f64>() / n).collect();
    let var = (0..out).map(|j| z.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n).collect();
    (mean, var)
}

#[test]
fn running_statistics_after_several_steps_equal_a_hand_computation() {
    let mut rng = Rng::new(31);
    let data = random_data(6, 4, 3, &mut rng);
    let sizes = [4, 3, 3];
    let cfg = NetConfig { bn_momentum: 0.3, ..config(&sizes, Activation::Relu, 0.0, true) };
    let mut t = trainer(&sizes, cfg, 9);
    let (mut mean, mut var) = (vec![0.0f64; 3], vec![1.0f64; 3]);
    let o = EpochOptions { optimizer: Optimizer::ADAM_DEFAULT, lr: 0.05, batch_size: usize::MAX, ..Default::default() };
    for _ in 0..4 {
        // full batch: every row, whatever the order
        let (mu, s2) = batch_stats(&t, &data, &(0..6).collect::<Vec<_>>());
        for j in 0..3 {
            mean[j] = 0.7 * mean[j] + 0.3 * mu[j];
            var[j] = 0.7 * var[j] + 0.3 * s2[j] * 6.0 / 5.0;
        }
        t.epoch(&data, &o, &Control::default()).unwrap();
    }
    let run = &t.net.running[0];
    for j in 0..3 {
        assert!((run.mean[j] as f64 - mean[j]).abs() < 1e-5 && (run.var[j] as f64 - var[j]).abs() < 1e-5, "unit {j}: running {} {} vs hand {} {}", run.mean[j], run.var[j], mean[j], var[j]);
    }
}

#[test]
fn a_last_batch_of_one_sample_updates_the_running_mean_but_not_the_variance() {
    // 3 identical rows in batches of 2: the first batch has σ² = 0, the second (one row) must
    // leave the variance alone (B/(B−1) is undefined) and still move the mean.
    let data = Dataset::new([10u8, 200, 30, 10, 200, 30, 10, 200, 30].to_vec(), Some(vec![0, 1, 2]), 3).unwrap();
    let sizes = [3, 2, 3];
    let mut t = trainer(&sizes, config(&sizes, Activation::Relu, 0.0, true), 10);
    let o = EpochOptions { optimizer: Optimizer::Sgd, lr: 0.5, batch_size: 2, ..Default::default() };
    // stop after the first batch to read the weights the second batch starts from
    let control = Control::default();
    control.cancel();
    let (mu1, _) = batch_stats(&t, &data, &[0]);
    assert!(t.epoch(&data, &o, &control).is_err());
    let (mu2, _) = batch_stats(&t, &data, &[0]);
    t.epoch(&data, &o, &Control::default()).unwrap();
    let run = &t.net.running[0];
    for j in 0..2 {
        let mean = 0.9 * (0.9 * 0.0 + 0.1 * mu1[j]) + 0.1 * mu2[j];
        assert!((run.mean[j] as f64 - mean).abs() < 1e-6, "mean {} vs {mean}", run.mean[j]);
        assert!((run.var[j] as f64 - 0.9).abs() < 1e-6, "var {} vs 0.9 (one update with σ² = 0)", run.var[j]);
    }
    // batchSize 1 itself is refused up front
    let e = t.epoch(&data, &EpochOptions { batch_size: 1, ..o }, &Control::default()).unwrap_err();
    assert!(e.message.starts_with("batchSize 1 cannot be used with batch norm"), "{e:?}");
}

#[test]
fn evaluation_uses_the_running_statistics_not_the_batch() {
    let mut rng = Rng::new(32);
    let data = random_data(40, 6, 4, &mut rng);
    let sizes = [6, 5, 4];
    let mut t = trainer(&sizes, NetConfig { dropout: vec![0.5], ..config(&sizes, Activation::Gelu, 0.0, true) }, 11);
    let o = EpochOptions { optimizer: Optimizer::ADAM_DEFAULT, lr: 0.01, batch_size: 8, ..Default::default() };
    t.epoch(&data, &o, &Control::default()).unwrap();
    // one sample alone and the same sample among 39 others: the same probabilities, bit for bit
    let one = Dataset::new(data.pixels()[..6].to_vec(), Some(vec![data.labels().unwrap()[0]]), 6).unwrap();
    let alone = t.predict_proba(&one, &Control::default()).unwrap();
    let among = t.predict_proba(&data, &Control::default()).unwrap();
    // (equal up to rounding: a different row count may take another GEMM path; batch statistics
    // in place of the running ones would move them by far more)
    for j in 0..4 {
        assert!((alone[j] - among[j]).abs() < 1e-6, "class {j}: alone {} vs among others {}", alone[j], among[j]);
    }
    // and they are the naive network's in evaluation mode (running statistics, no dropout)
    let (_, ce, logits, _) = Naive::from(&t).run(&data, false, 0.0);
    let ev = t.evaluate(&data, &Control::default()).unwrap();
    assert!((ev.loss - ce).abs() < 1e-5, "evaluate {} vs naive {ce}", ev.loss);
    for (r, z) in logits.iter().enumerate() {
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
        for j in 0..4 {
            assert!((among[r * 4 + j] as f64 - (z[j] - m).exp() / s).abs() < 1e-5);
        }
    }
    // evaluation is deterministic: dropout is off
    assert_eq!(t.evaluate(&data, &Control::default()).unwrap(), ev);
}

// ---------------------------------------------------------------------------------------------
// Dropout masks, threads, resume

#[test]
fn dropout_keeps_about_one_minus_p_and_is_off_in_evaluation() {
    let mut rng = Rng::new(33);
    let data = random_data(512, 10, 3, &mut rng);
    let sizes = [10, 200, 3];
    for p in [0.2, 0.6] {
        // GELU is 0 only at 0, so a zero activation is a dropped unit
        let t = trainer(&sizes, config(&sizes, Activation::Gelu, p, false), 12);
        let mut ws = Workspace::for_net(&t.net, 512, true).unwrap();
        data.gather(&(0..512).collect::<Vec<_>>(), ws.x.view_mut());
        let masks = [Some(kana_core::dropout::Mask::new(t.seed, 0, 1, p))];
        t.net.forward_train(&mut ws, 512, &TrainPass { masks: &masks, row0: 0, label_smoothing: 0.0 });
        let dropped = ws.acts[0].iter().filter(|&&a| a == 0.0).count() as f64 / ws.acts[0].len() as f64;
        // 102,400 units: the binomial standard deviation is below 0.0016; 5σ
        assert!((dropped - p).abs() < 0.008, "p {p}: dropped {dropped}");
    }
}

fn train_run(threads: usize, cfg: &NetConfig, optimizer: Optimizer, data: &Dataset) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let sizes = [64, 96, 48, 10];
    let mut t = Trainer::with_config(&sizes, cfg.clone(), 11, threads).unwrap();
    // batches of 500 × 96 units: large enough for the element-wise passes to run in parallel
    let o = EpochOptions { optimizer, lr: 1e-2, l2: 1e-4, batch_size: 500, label_smoothing: 0.1, clip_norm: Some(1.0), augment: None };
    for _ in 0..2 {
        t.epoch(data, &o, &Control::default()).unwrap();
    }
    (t.params().iter().map(|p| p.to_vec()).collect(), t.norm_state().iter().map(|p| p.to_vec()).collect())
}

#[test]
fn every_lever_at_once_gives_identical_results_on_one_and_two_threads() {
    let mut rng = Rng::new(5);
    let data = random_data(3000, 64, 10, &mut rng);
    let sizes = [64, 96, 48, 10];
    let cfg = NetConfig { dropout: vec![0.3, 0.1], ..config(&sizes, Activation::Silu, 0.0, true) };
    for opt in [Optimizer::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }, Optimizer::Momentum { momentum: 0.9, nesterov: true }] {
        let one = train_run(1, &cfg, opt, &data);
        assert_eq!(one, train_run(2, &cfg, opt, &data), "{opt:?}");
        assert_eq!(one, train_run(1, &cfg, opt, &data), "{opt:?}: same seed, same result");
    }
    // the seed drives the masks: another seed, other weights (same init is not possible, so
    // compare against a model that differs only by dropout being off)
    let no_drop = NetConfig { dropout: vec![0.0, 0.0], ..cfg.clone() };
    let opt = Optimizer::ADAM_DEFAULT;
    assert_ne!(train_run(1, &cfg, opt, &data).0, train_run(1, &no_drop, opt, &data).0);
}

#[test]
fn a_resumed_run_with_batch_norm_dropout_and_momentum_continues_bit_identically() {
    let mut rng = Rng::new(6);
    let data = random_data(700, 16, 5, &mut rng);
    let sizes = [16, 20, 12, 5];
    let cfg = NetConfig { dropout: vec![0.2, 0.4], ..config(&sizes, Activation::LeakyRelu { slope: 0.02 }, 0.0, true) };
    for optimizer in [Optimizer::Momentum { momentum: 0.8, nesterov: false }, Optimizer::AdamW { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.05 }] {
        let o = EpochOptions { optimizer, lr: 0.02, l2: 0.0, batch_size: 64, label_smoothing: 0.05, clip_norm: Some(2.0), augment: None };
        let mut whole = Trainer::with_config(&sizes, cfg.clone(), 77, 2).unwrap();
        let mut first = Trainer::with_config(&sizes, cfg.clone(), 77, 2).unwrap();
        for _ in 0..3 {
            whole.epoch(&data, &o, &Control::default()).unwrap();
        }
        first.epoch(&data, &o, &Control::default()).unwrap();
        // everything a checkpoint holds, copied into a fresh model made from the same seed
        let mut resumed = Trainer::with_config(&sizes, cfg.clone(), 77, 1).unwrap();
        resumed.set_params(&first.params()).unwrap();
        resumed.set_norm_state(&first.norm_state()).unwrap();
        let st = &first.optimizer_state;
        let (m, v): (Vec<&[f32]>, Vec<&[f32]>) = (st.m.iter().map(|x| &x[..]).collect(), st.v.iter().map(|x| &x[..]).collect());
        resumed.set_training_state(st.step, &m, &v, first.rng.state(), None).unwrap();
        for _ in 0..2 {
            resumed.epoch(&data, &o, &Control::default()).unwrap();
        }
        assert_eq!(whole.params(), resumed.params(), "{optimizer:?}");
        assert_eq!(whole.norm_state(), resumed.norm_state(), "{optimizer:?}");
        assert_eq!(whole.optimizer_state, resumed.optimizer_state, "{optimizer:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Bad values

#[test]
fn bad_settings_are_refused_with_messages_naming_them() {
    let sizes = [4, 3, 3, 2];
    let with = |f: &dyn Fn(&mut NetConfig)| {
        let mut c = NetConfig::plain(&sizes);
        f(&mut c);
        Trainer::with_config(&sizes, c, 1, 1).err().map(|e| e.message).unwrap_or_default()
    };
    assert_eq!(with(&|c| c.dropout = vec![0.1, 1.0]), "dropout[1] must be in [0, 1), got 1");
    assert_eq!(with(&|c| c.dropout = vec![-0.1, 0.0]), "dropout[0] must be in [0, 1), got -0.1");
    assert!(with(&|c| c.dropout = vec![0.1]).starts_with("dropout must give one rate per hidden layer (2)"));
    assert_eq!(with(&|c| c.bn_momentum = 1.0), "bnMomentum must be in [0, 1), got 1");
    assert!(with(&|c| c.bn_eps = 0.0).starts_with("bnEps must be a positive"));
    assert!(with(&|c| c.activation = Activation::LeakyRelu { slope: f32::NAN }).starts_with("leakySlope must be"));
    let mut t = Trainer::with_config(&sizes, NetConfig { batch_norm: true, ..NetConfig::plain(&sizes) }, 1, 1).unwrap();
    let data = Dataset::new(vec![1; 8], Some(vec![0, 1]), 4).unwrap();
    let fit = |t: &mut Trainer, o: EpochOptions| t.epoch(&data, &o, &Control::default()).unwrap_err().message;
    let base = EpochOptions { batch_size: 2, ..Default::default() };
    assert_eq!(fit(&mut t, EpochOptions { label_smoothing: 1.0, ..base }), "labelSmoothing must be in [0, 1), got 1");
    assert_eq!(fit(&mut t, EpochOptions { label_smoothing: -0.1, ..base }), "labelSmoothing must be in [0, 1), got -0.1");
    assert_eq!(fit(&mut t, EpochOptions { clip_norm: Some(0.0), ..base }), "clipNorm must be a positive finite number, got 0");
    assert!(fit(&mut t, EpochOptions { optimizer: Optimizer::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: -1.0 }, ..base }).starts_with("weightDecay must be"));
    assert!(fit(&mut t, EpochOptions { optimizer: Optimizer::Momentum { momentum: 1.0, nesterov: false }, ..base }).starts_with("momentum must be"));
    assert!(fit(&mut t, EpochOptions { batch_size: 1, ..base }).starts_with("batchSize 1 cannot be used with batch norm"));
    // norm state: count, lengths, finiteness, positive variances; nothing changes on error
    let good: Vec<Vec<f32>> = t.norm_state().iter().map(|a| a.to_vec()).collect();
    let set = |t: &mut Trainer, f: &dyn Fn(&mut Vec<Vec<f32>>)| {
        let mut s = good.clone();
        f(&mut s);
        t.set_norm_state(&s.iter().map(|a| &a[..]).collect::<Vec<_>>()).unwrap_err().message
    };
    assert!(set(&mut t, &|s| { s.pop(); }).starts_with("norm state must hold 8 arrays"));
    assert_eq!(set(&mut t, &|s| s[5].push(1.0)), "norm state: layer 2 beta must have 3 values, got 4");
    assert_eq!(set(&mut t, &|s| s[2][1] = f32::INFINITY), "norm state: layer 1 runningMean[1] is inf, values must be finite");
    assert_eq!(set(&mut t, &|s| s[7][0] = 0.0), "norm state: layer 2 runningVar[0] is 0, variances must be > 0");
    assert_eq!(t.norm_state().iter().map(|a| a.to_vec()).collect::<Vec<_>>(), good);
    let mut plain = Trainer::new(&sizes, 1, 1).unwrap();
    assert!(plain.norm_state().is_empty());
    assert!(plain.set_norm_state(&[&[1.0]]).unwrap_err().message.contains("the model has no batch norm"));
    // training state with batch norm: W, b, γ, β per hidden layer
    let zeros: Vec<Vec<f32>> = (0..t.net.tensor_count()).map(|i| vec![0.0; t.net.tensor(i).len()]).collect();
    let refs: Vec<&[f32]> = zeros.iter().map(|a| &a[..]).collect();
    assert!(t.set_training_state(1, &refs, &refs, 0, None).is_ok());
    let e = t.set_training_state(1, &refs[..6], &[], 0, None).unwrap_err().message;
    assert!(e.starts_with("m must be empty or hold 10 arrays"), "{e}");
    let mut short = zeros.clone();
    short[2].pop();
    let e = t.set_training_state(1, &short.iter().map(|a| &a[..]).collect::<Vec<_>>(), &[], 0, None).unwrap_err().message;
    assert_eq!(e, "m: layer 1 γ must have 3 values, got 2");
    // a momentum buffer cannot seed Adam
    t.set_training_state(1, &refs, &[], 0, None).unwrap();
    assert!(fit(&mut t, EpochOptions { optimizer: Optimizer::ADAM_DEFAULT, ..base }).contains("momentum buffer"));
}

#[test]
fn batch_norm_without_hidden_layers_does_nothing() {
    let data = Dataset::new(vec![10, 20, 30, 40, 50, 60], Some(vec![0, 1, 0]), 2).unwrap();
    let o = EpochOptions { optimizer: Optimizer::Sgd, lr: 0.1, batch_size: 1, ..Default::default() };
    let mut with = Trainer::with_config(&[2, 2], NetConfig { batch_norm: true, ..NetConfig::plain(&[2, 2]) }, 3, 1).unwrap();
    let mut without = Trainer::new(&[2, 2], 3, 1).unwrap();
    with.epoch(&data, &o, &Control::default()).unwrap();
    without.epoch(&data, &o, &Control::default()).unwrap();
    assert_eq!(with.params(), without.params());
    assert!(with.norm_state().is_empty());
}

//! The engine against independent arithmetic: finite differences for every parameter, and
//! optimiser steps computed by hand on a case small enough to write down.

use kana_core::{Control, Dataset, EpochOptions, Optimizer, Rng, Trainer};

/// Objective as the optimiser sees it: mean cross-entropy + (λ/2)·Σ‖W‖² (in f64 for the differences).
fn objective(t: &mut Trainer, data: &Dataset, l2: f64) -> f64 {
    let ce = t.evaluate(data, &Control::default()).unwrap().loss;
    let penalty: f64 = t.net.layers.iter().map(|l| l.w.iter().map(|&w| (w as f64).powi(2)).sum::<f64>()).sum();
    ce + 0.5 * l2 * penalty
}

/// Hidden ReLU on/off pattern: finite differences across a kink are meaningless, so such
/// parameters are skipped (rare with random data; counted to make sure most are checked).
fn relu_pattern(t: &Trainer, data: &Dataset) -> Vec<bool> {
    let mut x: Vec<f32> = data.pixels().iter().map(|&p| p as f32 / 255.0).collect();
    let mut cols = t.net.inputs();
    let mut pattern = Vec::new();
    for layer in &t.net.layers[..t.net.layers.len() - 1] {
        let out = layer.w.ncols();
        let mut next = vec![0.0f32; data.len() * out];
        for r in 0..data.len() {
            for j in 0..out {
                let z: f32 = (0..cols).map(|i| x[r * cols + i] * layer.w[[i, j]]).sum::<f32>() + layer.b[j];
                pattern.push(z > 0.0);
                next[r * out + j] = z.max(0.0);
            }
        }
        x = next;
        cols = out;
    }
    pattern
}

fn random_data(n: usize, features: usize, classes: u32, rng: &mut Rng) -> Dataset {
    let pixels = (0..n * features).map(|_| rng.below(256) as u8).collect();
    let labels = (0..n).map(|_| rng.below(classes as usize) as u32).collect();
    Dataset::new(pixels, Some(labels), features).unwrap()
}

/// Analytic gradient (including λW) as one full-batch SGD step with lr = 1 sees it: g = θ − θ'.
fn engine_gradient(t: &Trainer, data: &Dataset, l2: f32) -> Vec<Vec<f64>> {
    let mut probe = Trainer::with_net(t.net.clone(), Rng::new(0), 1).unwrap();
    let before: Vec<Vec<f32>> = probe.params().iter().map(|p| p.to_vec()).collect();
    let opts = EpochOptions { optimizer: Optimizer::Sgd, lr: 1.0, l2, batch_size: usize::MAX, ..Default::default() };
    probe.epoch(data, &opts, &Control::default()).unwrap();
    before.iter().zip(probe.params()).map(|(b, a)| b.iter().zip(a).map(|(&b, &a)| b as f64 - a as f64).collect()).collect()
}

fn gradient_check(sizes: &[usize], n: usize, l2: f32, seed: u64) {
    let mut rng = Rng::new(seed);
    let data = random_data(n, sizes[0], *sizes.last().unwrap() as u32, &mut rng);
    let mut t = Trainer::new(sizes, seed, 2).unwrap();
    // Non-zero biases so that they matter too.
    for layer in &mut t.net.layers {
        layer.b.iter_mut().for_each(|b| *b = (rng.normal() * 0.1) as f32);
    }
    let analytic = engine_gradient(&t, &data, l2);
    let pattern = relu_pattern(&t, &data);
    let h = 1e-2f32;
    let (mut checked, mut skipped) = (0, 0);
    let mut worst = 0.0f64;
    for p in 0..analytic.len() {
        for i in 0..analytic[p].len() {
            fn get(t: &mut Trainer, p: usize) -> &mut [f32] {
                let l = &mut t.net.layers[p / 2];
                if p % 2 == 0 { l.w.as_slice_mut().unwrap() } else { l.b.as_slice_mut().unwrap() }
            }
            let orig = get(&mut t, p)[i];
            get(&mut t, p)[i] = orig + h;
            let (up, up_pattern) = (objective(&mut t, &data, l2 as f64), relu_pattern(&t, &data));
            get(&mut t, p)[i] = orig - h;
            let (down, down_pattern) = (objective(&mut t, &data, l2 as f64), relu_pattern(&t, &data));
            get(&mut t, p)[i] = orig;
            if up_pattern != pattern || down_pattern != pattern {
                skipped += 1;
                continue;
            }
            // the perturbation itself is rounded to f32: divide by the step actually taken
            let step = ((orig + h) as f64) - ((orig - h) as f64);
            let numeric = (up - down) / step;
            let a = analytic[p][i];
            let err = (numeric - a).abs() / (1e-3 + a.abs().max(numeric.abs()));
            worst = worst.max(err);
            assert!(err < 5e-3, "sizes {sizes:?} seed {seed}: param {p}[{i}] analytic {a} vs numeric {numeric}");
            checked += 1;
        }
    }
    assert!(checked > 5 * skipped, "too many parameters sat on ReLU kinks: {checked} checked, {skipped} skipped");
    eprintln!("gradient check {sizes:?} n={n} λ={l2} seed={seed}: {checked} checked, {skipped} skipped, worst relative error {worst:.2e}");
}

#[test]
fn gradients_match_finite_differences_on_several_seeds() {
    for seed in [1, 2, 3] {
        gradient_check(&[6, 5, 4, 3], 7, 0.05, seed);
    }
    gradient_check(&[10, 3], 5, 0.0, 4); // no hidden layer
}

#[test]
fn gradients_accumulated_over_chunks_equal_the_weighted_chunk_gradients() {
    // 4,500 rows do not fit one CHUNK_ROWS (2,048) chunk, so the full-batch gradient is summed
    // over three chunks; it must equal the size-weighted mean of the three parts' own gradients.
    let (f, k) = (12, 3);
    let mut rng = Rng::new(9);
    let all = random_data(4500, f, k, &mut rng);
    let t = Trainer::new(&[f, 6, k as usize], 9, 2).unwrap();
    let full = engine_gradient(&t, &all, 0.0);
    let mut mean = vec![vec![0.0; 0]; full.len()];
    for (start, rows) in [(0, 2048), (2048, 2048), (4096, 404)] {
        let part = Dataset::new(all.pixels()[start * f..(start + rows) * f].to_vec(), Some(all.labels().unwrap()[start..start + rows].to_vec()), f).unwrap();
        for (m, g) in mean.iter_mut().zip(engine_gradient(&t, &part, 0.0)) {
            m.resize(g.len(), 0.0);
            m.iter_mut().zip(g).for_each(|(m, g)| *m += g * rows as f64 / 4500.0);
        }
    }
    for (p, (a, b)) in full.iter().zip(&mean).enumerate() {
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            assert!((a - b).abs() <= 1e-6 + 1e-4 * b.abs(), "param {p}[{i}]: {a} vs {b}");
        }
    }
}

/// The [2, 2] network used for hand computation: W = [[0.5, −0.5], [0.25, 0]], b = [0.1, −0.1],
/// one sample with pixels [255, 51] → x = [1, 0.2], label 0.
fn tiny() -> (Trainer, Dataset) {
    let mut t = Trainer::new(&[2, 2], 0, 1).unwrap();
    t.set_params(&[&[0.5, -0.5, 0.25, 0.0], &[0.1, -0.1]]).unwrap();
    (t, Dataset::new(vec![255, 51], Some(vec![0]), 2).unwrap())
}

/// By hand: z = x·W + b = [1·0.5 + 0.2·0.25 + 0.1, 1·(−0.5) + 0.2·0 − 0.1] = [0.65, −0.6];
/// p₁ = 1/(1 + e^{1.25}), p₀ = 1 − p₁; δ = p − onehot(0) = [−p₁, p₁];
/// ∂W = xᵀδ = [[−p₁, p₁], [−0.2p₁, 0.2p₁]], ∂b = δ.
fn tiny_gradient(w: [f64; 4], b: [f64; 2]) -> ([f64; 4], [f64; 2]) {
    let x = [1.0, 0.2];
    let z0 = x[0] * w[0] + x[1] * w[2] + b[0];
    let z1 = x[0] * w[1] + x[1] * w[3] + b[1];
    let p1 = 1.0 / (1.0 + (z0 - z1).exp());
    let d = [-p1, p1];
    ([x[0] * d[0], x[0] * d[1], x[1] * d[0], x[1] * d[1]], d)
}

#[test]
fn one_sgd_step_by_hand() {
    let (mut t, data) = tiny();
    let (gw, gb) = tiny_gradient([0.5, -0.5, 0.25, 0.0], [0.1, -0.1]);
    let p1 = 1.0 / (1.0 + 1.25f64.exp());
    assert!((gw[0] + p1).abs() < 1e-15 && (gb[1] - p1).abs() < 1e-15); // the closed form above
    let (lr, l2) = (0.5, 0.1);
    let stats = t.epoch(&data, &EpochOptions { optimizer: Optimizer::Sgd, lr, l2, batch_size: 1, ..Default::default() }, &Control::default()).unwrap();
    assert!((stats.loss - (-(1.0 - p1).ln())).abs() < 1e-6, "loss {}", stats.loss);
    let w0 = [0.5, -0.5, 0.25, 0.0];
    let want_w: Vec<f64> = (0..4).map(|i| w0[i] - lr as f64 * (gw[i] + l2 as f64 * w0[i])).collect();
    let want_b = [0.1 - lr as f64 * gb[0], -0.1 - lr as f64 * gb[1]];
    let got = t.params();
    for i in 0..4 {
        assert!((got[0][i] as f64 - want_w[i]).abs() < 1e-6, "W[{i}] {} vs {}", got[0][i], want_w[i]);
    }
    for i in 0..2 {
        assert!((got[1][i] as f64 - want_b[i]).abs() < 1e-6, "b[{i}] {} vs {}", got[1][i], want_b[i]);
    }
}

#[test]
fn two_adam_steps_by_hand() {
    let (mut t, data) = tiny();
    let (lr, l2, b1, b2, eps) = (0.01f64, 0.1f64, 0.9f64, 0.999f64, 1e-8f64);
    let opts = EpochOptions { optimizer: Optimizer::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, lr: 0.01, l2: 0.1, batch_size: 1, ..Default::default() };
    let (mut w, mut b) = ([0.5, -0.5, 0.25, 0.0], [0.1, -0.1]);
    let (mut mw, mut vw, mut mb, mut vb) = ([0.0; 4], [0.0; 4], [0.0; 2], [0.0; 2]);
    for step in 1..=2 {
        let (gw, gb) = tiny_gradient(w, b);
        let update = |p: &mut f64, g: f64, m: &mut f64, v: &mut f64| {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            let (mh, vh) = (*m / (1.0 - b1.powi(step)), *v / (1.0 - b2.powi(step)));
            *p -= lr * mh / (vh.sqrt() + eps);
        };
        for i in 0..4 {
            let g = gw[i] + l2 * w[i];
            if step == 1 {
                // first step: m̂ = g and v̂ = g², so every weight moves by lr·g/(|g| + ε) ≈ lr·sign(g)
                let mut probe = w[i];
                update(&mut probe, g, &mut 0.0, &mut 0.0);
                assert!((w[i] - probe - lr * g / (g.abs() + eps)).abs() < 1e-12);
            }
            update(&mut w[i], g, &mut mw[i], &mut vw[i]);
        }
        for i in 0..2 {
            update(&mut b[i], gb[i], &mut mb[i], &mut vb[i]);
        }
        t.epoch(&data, &opts, &Control::default()).unwrap();
        let got = t.params();
        for i in 0..4 {
            assert!((got[0][i] as f64 - w[i]).abs() < 1e-6, "step {step} W[{i}] {} vs {}", got[0][i], w[i]);
        }
        for i in 0..2 {
            assert!((got[1][i] as f64 - b[i]).abs() < 1e-6, "step {step} b[{i}] {} vs {}", got[1][i], b[i]);
        }
    }
    assert_eq!(t.optimizer_state.step, 2);
}

#[test]
fn same_seed_gives_identical_weights_whatever_the_thread_count() {
    let mut rng = Rng::new(5);
    let data = random_data(3000, 64, 10, &mut rng);
    let opts = EpochOptions { optimizer: Optimizer::ADAM_DEFAULT, lr: 1e-3, l2: 1e-3, batch_size: 100, ..Default::default() };
    let run = |threads| {
        let mut t = Trainer::new(&[64, 256, 128, 10], 11, threads).unwrap();
        for _ in 0..2 {
            t.epoch(&data, &opts, &Control::default()).unwrap();
        }
        t.params().iter().map(|p| p.to_vec()).collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(2));
    assert_eq!(run(2), run(2));
}

/// Above Adam's parallel threshold (≥ 65,536 parameters, several 16k blocks in more than one
/// tensor, γ and β with batch norm): the one-region update and the held worker give the weights and
/// moments of one thread, on 2, 3 and 4 threads.
#[test]
fn large_networks_give_identical_weights_and_moments_whatever_the_thread_count() {
    use kana_core::{Activation, NetConfig};
    let mut rng = Rng::new(9);
    let data = random_data(600, 64, 10, &mut rng);
    let sizes = [64, 512, 128, 10];
    for (bn, opt) in [(false, Optimizer::ADAM_DEFAULT), (true, Optimizer::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 })] {
        let opts = EpochOptions { optimizer: opt, lr: 1e-3, l2: 1e-3, batch_size: 50, ..Default::default() };
        let config = NetConfig { activation: Activation::Gelu, dropout: vec![0.2, 0.0], batch_norm: bn, ..NetConfig::plain(&sizes) };
        let run = |threads| {
            let mut t = Trainer::with_config(&sizes, config.clone(), 4, threads).unwrap();
            assert!(t.net.num_params() >= 1 << 16);
            for _ in 0..2 {
                t.epoch(&data, &opts, &Control::default()).unwrap();
            }
            let st = &t.optimizer_state;
            (t.params().iter().map(|p| p.to_vec()).collect::<Vec<_>>(), st.m.clone(), st.v.clone())
        };
        let one = run(1);
        for threads in [2, 3, 4] {
            assert!(run(threads) == one, "batch norm {bn}: {threads} threads differ from 1");
        }
    }
}

#[test]
fn predictions_are_distributions_and_evaluation_counts_every_sample() {
    let mut rng = Rng::new(8);
    let data = random_data(5000, 30, 7, &mut rng);
    let mut t = Trainer::new(&[30, 20, 7], 3, 2).unwrap();
    let probs = t.predict_proba(&data, &Control::default()).unwrap();
    assert_eq!(probs.len(), 5000 * 7);
    for row in probs.chunks(7) {
        let s: f64 = row.iter().map(|&p| p as f64).sum();
        assert!((s - 1.0).abs() < 1e-6 && row.iter().all(|&p| (0.0..=1.0).contains(&p)));
    }
    let ev = t.evaluate(&data, &Control::default()).unwrap();
    assert_eq!(ev.confusion.iter().map(|&c| c as usize).sum::<usize>(), 5000);
    let diag: u32 = (0..7).map(|k| ev.confusion[k * 7 + k]).sum();
    assert!((ev.accuracy - diag as f64 / 5000.0).abs() < 1e-12);
    // loss equals the mean −log p of the probabilities predicted for the true labels
    let labels = data.labels().unwrap();
    let ce: f64 = probs.chunks(7).zip(labels).map(|(r, &y)| -(r[y as usize] as f64).ln()).sum::<f64>() / 5000.0;
    assert!((ce - ev.loss).abs() < 1e-5, "{ce} vs {}", ev.loss);
}

#[test]
fn learns_a_separable_problem() {
    // Two classes told apart by which half of the image is bright.
    let mut rng = Rng::new(1);
    let (n, f) = (400, 16);
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let y = (i % 2) as u32;
        for j in 0..f {
            let bright = (j < f / 2) == (y == 0);
            pixels.push(if bright { 150 + rng.below(100) as u8 } else { rng.below(100) as u8 });
        }
        labels.push(y);
    }
    let data = Dataset::new(pixels, Some(labels), f).unwrap();
    let mut t = Trainer::new(&[f, 8, 2], 1, 1).unwrap();
    let opts = EpochOptions { optimizer: Optimizer::Sgd, lr: 0.5, l2: 0.0, batch_size: 16, ..Default::default() };
    let first = t.epoch(&data, &opts, &Control::default()).unwrap();
    for _ in 0..10 {
        t.epoch(&data, &opts, &Control::default()).unwrap();
    }
    let ev = t.evaluate(&data, &Control::default()).unwrap();
    assert!(ev.accuracy > 0.99 && ev.loss < first.loss / 4.0, "{ev:?} after first epoch {first:?}");
}

#[test]
fn bad_arguments_get_specific_errors() {
    assert!(Trainer::new(&[784], 1, 1).err().unwrap().message.contains("at least an input and an output"));
    assert!(Trainer::new(&[784, 0, 10], 1, 1).err().unwrap().message.contains("layers[1]"));
    assert!(Trainer::new(&[4, 3], 1, 0).err().unwrap().message.contains("threads"));
    let mut t = Trainer::new(&[2, 3], 1, 1).unwrap();
    let data = Dataset::new(vec![1, 2, 3, 4], Some(vec![0, 3]), 2).unwrap();
    let opts = EpochOptions { optimizer: Optimizer::Sgd, lr: 0.1, l2: 0.0, batch_size: 1, ..Default::default() };
    assert_eq!(t.epoch(&data, &opts, &Control::default()).unwrap_err().message, "labels[1] = 3 is not a class index in 0..3");
    let ok = Dataset::new(vec![1, 2, 3, 4], Some(vec![0, 2]), 2).unwrap();
    let e = t.epoch(&ok, &EpochOptions { batch_size: 0, ..opts }, &Control::default()).unwrap_err();
    assert_eq!(e.message, "batchSize must be at least 1");
    let e = t.epoch(&ok, &EpochOptions { lr: f32::NAN, ..opts }, &Control::default()).unwrap_err();
    assert!(e.message.starts_with("lr must be"));
    assert!(t.set_params(&[&[0.0; 6], &[0.0, f32::NAN, 0.0]]).unwrap_err().message.contains("layer 1 b[1] is NaN"));
    assert!(t.set_params(&[&[0.0; 5], &[0.0; 3]]).unwrap_err().message.contains("layer 1 W must have 6 values"));
    assert!(Dataset::new(vec![1, 2, 3], None, 2).unwrap_err().message.contains("not a multiple"));
    let wide = Dataset::new(vec![1, 2, 3], Some(vec![0]), 3).unwrap();
    assert!(t.evaluate(&wide, &Control::default()).unwrap_err().message.contains("3 features per sample but the network takes 2"));
}

#[test]
fn divergence_is_reported_not_hidden() {
    let mut rng = Rng::new(2);
    let data = random_data(200, 20, 5, &mut rng);
    let mut t = Trainer::new(&[20, 50, 5], 1, 1).unwrap();
    let opts = EpochOptions { optimizer: Optimizer::Sgd, lr: 1e30, l2: 0.0, batch_size: 10, ..Default::default() };
    let e = t.epoch(&data, &opts, &Control::default()).unwrap_err();
    assert_eq!(e.kind, kana_core::ErrorKind::Diverged, "{e:?}");
    assert!(e.message.contains("learning rate"));
}

#[test]
fn cancel_stops_between_batches() {
    let mut rng = Rng::new(2);
    let data = random_data(1000, 20, 5, &mut rng);
    let mut t = Trainer::new(&[20, 5], 1, 1).unwrap();
    let control = Control::default();
    control.cancel();
    let opts = EpochOptions { optimizer: Optimizer::Sgd, lr: 0.1, l2: 0.0, batch_size: 10, ..Default::default() };
    assert_eq!(t.epoch(&data, &opts, &control).unwrap_err().kind, kana_core::ErrorKind::Aborted);
    assert_eq!(control.progress(), (1, 100), "exactly one batch ran");
}

#[test]
fn memory_that_cannot_be_had_is_an_error_not_an_abort() {
    // 2^50 floats (4 PiB) of workspace: the allocator refuses, and the error names the bytes.
    let e = kana_core::mlp::Workspace::new(&[1 << 20, 1 << 20], 1 << 30, true).unwrap_err();
    assert!(e.message.starts_with("cannot allocate") && e.message.contains("bytes"), "{e:?}");
    let e = kana_core::mlp::try_zeros(usize::MAX, 2).unwrap_err();
    assert!(e.message.contains("too large"), "{e:?}");
}

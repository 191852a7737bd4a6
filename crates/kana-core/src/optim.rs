//! Parameter updates. L2 is folded into the update (`g + λ·W`, weights only), so each parameter
//! is read and written once per step, in one pass.
//!
//! * Gradient descent (full batch or mini-batch): `θ ← θ − η·g`.
//! * With momentum μ (PyTorch's SGD, dampening 0): `buf ← μ·buf + g` (`buf = g` at the first step),
//!   `d = nesterov ? g + μ·buf : buf`, `θ ← θ − η·d`; `g` includes `λ·W`.
//! * Adam (Kingma & Ba), in PyTorch's arrangement: `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
//!   `θ ← θ − (η/(1−β1ᵗ))·m / (√v/√(1−β2ᵗ) + ε)` — algebraically `θ − η·m̂/(√v̂ + ε)`.
//! * AdamW (Loshchilov & Hutter, PyTorch's formula): first `W ← W·(1 − η·λw)` (weights only, not
//!   biases, γ or β), then the Adam update (with `λ·W` in the moments only if L2 is also set).
//!
//! Parameters are taken tensor by tensor in the one order of [`crate::mlp::slot`].

use crate::error::{Error, Result};
use crate::mlp::{Grads, Kind, Mlp};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    Sgd,
    Momentum { momentum: f32, nesterov: bool },
    Adam { beta1: f32, beta2: f32, eps: f32 },
    AdamW { beta1: f32, beta2: f32, eps: f32, weight_decay: f32 },
}

impl Optimizer {
    pub const ADAM_DEFAULT: Optimizer = Optimizer::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    pub const WEIGHT_DECAY_DEFAULT: f32 = 1e-2;

    pub fn validate(&self) -> Result<()> {
        match *self {
            Optimizer::Sgd => {}
            Optimizer::Momentum { momentum, nesterov: _ } => {
                if !(momentum > 0.0 && momentum < 1.0) {
                    return Err(Error::range(format!("momentum must be in (0, 1) (0 is plain SGD), got {momentum}")));
                }
            }
            Optimizer::Adam { beta1, beta2, eps } | Optimizer::AdamW { beta1, beta2, eps, .. } => {
                for (name, v) in [("beta1", beta1), ("beta2", beta2)] {
                    if !(0.0..1.0).contains(&v) {
                        return Err(Error::range(format!("{name} must be in [0, 1), got {v}")));
                    }
                }
                if !(eps > 0.0 && eps.is_finite()) {
                    return Err(Error::range(format!("eps must be a positive finite number, got {eps}")));
                }
                if let Optimizer::AdamW { weight_decay, .. } = *self {
                    if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
                        return Err(Error::range(format!("weightDecay must be a finite number ≥ 0, got {weight_decay}")));
                    }
                }
            }
        }
        Ok(())
    }

    /// Which of the state's arrays this optimiser uses: (m, v).
    pub fn uses_moments(&self) -> (bool, bool) {
        match self {
            Optimizer::Sgd => (false, false),
            Optimizer::Momentum { .. } => (true, false),
            Optimizer::Adam { .. } | Optimizer::AdamW { .. } => (true, true),
        }
    }
}

/// The step count and the optimiser's per-parameter arrays, flat, one per parameter tensor in the
/// order of [`crate::mlp::slot`]: Adam's moments `m`, `v`, or SGD's momentum buffer in `m` (with
/// `v` empty). Empty until an optimiser that uses them takes its first step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    pub step: u64,
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
}

impl OptimizerState {
    pub fn reset(&mut self) {
        *self = OptimizerState::default();
    }

    /// Zeroed arrays for what `opt` uses and the state does not hold yet.
    pub fn prepare(&mut self, net: &Mlp, opt: Optimizer) -> Result<()> {
        let (m, v) = opt.uses_moments();
        if v && self.v.is_empty() && !self.m.is_empty() {
            return Err(Error::range("the training state holds a momentum buffer (m without v), which Adam cannot continue from"));
        }
        if m && self.m.is_empty() {
            self.m = net.zero_tensors()?;
        }
        if v && self.v.is_empty() {
            self.v = net.zero_tensors()?;
        }
        Ok(())
    }
}

/// Below this many parameters a step runs on one thread; above, it is cut into blocks for rayon.
const PARALLEL_MIN_PARAMS: usize = 1 << 16;
const BLOCK: usize = 1 << 14;

/// Global L2 norm of all gradients, `√Σ g²` over every tensor (summed in f64, in blocks of a fixed
/// size whose partial sums are added in order: the same on any number of threads).
pub fn grad_norm(grads: &Grads) -> f64 {
    let parallel = rayon::current_num_threads() > 1;
    let mut total = 0.0f64;
    for i in 0..grads.count() {
        let g = grads.tensor(i);
        let sq = |c: &[f32]| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>();
        total += if parallel && g.len() >= PARALLEL_MIN_PARAMS {
            g.par_chunks(BLOCK).map(sq).collect::<Vec<_>>().into_iter().sum::<f64>()
        } else {
            g.chunks(BLOCK).map(sq).sum::<f64>()
        };
    }
    total.sqrt()
}

/// Clipping by global norm (PyTorch's `clip_grad_norm_`): with `total` the norm of all gradients,
/// every gradient is multiplied by `min(1, c/(total + 1e-6))`. Returns `total`.
pub fn clip(grads: &mut Grads, max_norm: f32) -> f64 {
    let total = grad_norm(grads);
    let scale = (max_norm as f64 / (total + 1e-6)).min(1.0);
    if scale < 1.0 {
        let s = scale as f32;
        for i in 0..grads.count() {
            grads.tensor_mut(i).iter_mut().for_each(|g| *g *= s);
        }
    }
    total
}

/// One update of every parameter of `net` from the gradients `grads`. Parameters are independent,
/// so the update is cut into blocks spread over the current rayon pool; the result does not
/// depend on how it is cut. The state must have been [`OptimizerState::prepare`]d.
pub fn step(net: &mut Mlp, grads: &Grads, opt: Optimizer, state: &mut OptimizerState, lr: f32, l2: f32) {
    state.step += 1;
    let parallel = net.num_params() >= PARALLEL_MIN_PARAMS && rayon::current_num_threads() > 1;
    let tensors = net.tensor_count();
    match opt {
        Optimizer::Sgd => {
            for i in 0..tensors {
                let l2 = if net.kind(i) == Kind::Weight { l2 } else { 0.0 };
                blocks(parallel, net.tensor_mut(i), grads.tensor(i), |p, g| sgd(p, g, lr, l2));
            }
        }
        Optimizer::Momentum { momentum, nesterov } => {
            assert_eq!(state.m.len(), tensors, "momentum buffer prepared");
            for i in 0..tensors {
                let l2 = if net.kind(i) == Kind::Weight { l2 } else { 0.0 };
                let (p, g, buf) = (net.tensor_mut(i), grads.tensor(i), &mut state.m[i][..]);
                if parallel {
                    p.par_chunks_mut(BLOCK).zip(g.par_chunks(BLOCK)).zip(buf.par_chunks_mut(BLOCK))
                        .for_each(|((p, g), b)| sgd_momentum(p, g, b, lr, l2, momentum, nesterov));
                } else {
                    sgd_momentum(p, g, buf, lr, l2, momentum, nesterov);
                }
            }
        }
        Optimizer::Adam { beta1, beta2, eps } | Optimizer::AdamW { beta1, beta2, eps, .. } => {
            assert!(state.m.len() == tensors && state.v.len() == tensors, "Adam's moments prepared");
            let weight_decay = if let Optimizer::AdamW { weight_decay, .. } = opt { weight_decay } else { 0.0 };
            let t = state.step as i32;
            let hp = AdamStep {
                lr: lr / (1.0 - (beta1 as f64).powi(t)) as f32,
                inv_sqrt_bc2: 1.0 / (1.0 - (beta2 as f64).powi(t)).sqrt() as f32,
                beta1,
                beta2,
                eps,
            };
            // decoupled decay; ×1 (exact) for Adam and for everything but weights
            let terms = |kind: Kind| if kind == Kind::Weight { (l2, 1.0 - lr * weight_decay) } else { (0.0, 1.0) };
            if parallel {
                // Every tensor's fixed blocks in one parallel region (one fork/join per step, not
                // one per tensor); each block is updated by the same loop as on one thread.
                let kinds: Vec<Kind> = (0..tensors).map(|i| net.kind(i)).collect();
                let mut work = Vec::with_capacity(net.num_params() / BLOCK + 2 * tensors);
                for ((((i, p), m), v), kind) in params_mut(net).into_iter().enumerate().zip(&mut state.m).zip(&mut state.v).zip(kinds) {
                    let (l2, decay) = terms(kind);
                    let blocks = p.chunks_mut(BLOCK).zip(grads.tensor(i).chunks(BLOCK)).zip(m.chunks_mut(BLOCK)).zip(v.chunks_mut(BLOCK));
                    work.extend(blocks.map(|(((p, g), m), v)| (p, g, m, v, l2, decay)));
                }
                work.into_par_iter().with_max_len(1).for_each(|(p, g, m, v, l2, decay)| adam(p, g, m, v, &hp, l2, decay));
            } else {
                for i in 0..tensors {
                    let (l2, decay) = terms(net.kind(i));
                    adam(net.tensor_mut(i), grads.tensor(i), &mut state.m[i][..], &mut state.v[i][..], &hp, l2, decay);
                }
            }
        }
    }
}

/// Every parameter tensor of `net`, mutably and all at once, in the order of [`crate::mlp::slot`].
fn params_mut(net: &mut Mlp) -> Vec<&mut [f32]> {
    let (layers, bn) = (net.layers.len(), net.config.batch_norm);
    let mut out: Vec<Option<&mut [f32]>> = (0..net.tensor_count()).map(|_| None).collect();
    let count = out.len();
    let index = |l: usize, kind: Kind| (0..count).find(|&i| crate::mlp::slot(layers, bn, i) == (l, kind)).expect("every tensor has a slot");
    for (l, layer) in net.layers.iter_mut().enumerate() {
        out[index(l, Kind::Weight)] = layer.w.as_slice_mut();
        out[index(l, Kind::Bias)] = layer.b.as_slice_mut();
    }
    for (l, norm) in net.norms.iter_mut().enumerate() {
        out[index(l, Kind::Gamma)] = norm.gamma.as_slice_mut();
        out[index(l, Kind::Beta)] = norm.beta.as_slice_mut();
    }
    out.into_iter().map(|t| t.expect("parameters are contiguous")).collect()
}

/// Runs `f` over matching blocks of `p` and `g`, in parallel when asked.
fn blocks(parallel: bool, p: &mut [f32], g: &[f32], f: impl Fn(&mut [f32], &[f32]) + Sync) {
    if parallel {
        p.par_chunks_mut(BLOCK).zip(g.par_chunks(BLOCK)).for_each(|(p, g)| f(p, g));
    } else {
        f(p, g);
    }
}

fn sgd(p: &mut [f32], g: &[f32], lr: f32, l2: f32) {
    for (p, &g) in p.iter_mut().zip(g) {
        *p -= lr * (g + l2 * *p);
    }
}

fn sgd_momentum(p: &mut [f32], g: &[f32], buf: &mut [f32], lr: f32, l2: f32, momentum: f32, nesterov: bool) {
    for ((p, &g), b) in p.iter_mut().zip(g).zip(buf) {
        let g = g + l2 * *p;
        *b = momentum * *b + g;
        let d = if nesterov { g + momentum * *b } else { *b };
        *p -= lr * d;
    }
}

struct AdamStep {
    /// η / (1 − β1ᵗ)
    lr: f32,
    /// 1 / √(1 − β2ᵗ)
    inv_sqrt_bc2: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
}

/// Adam over one block. The same loop is compiled three times — for AVX-512, for AVX2 and for the
/// baseline — and the widest the processor supports is picked at run time, so the shipped binary
/// needs no `target-cpu` flag. (Same operations in the same order: identical results on all three.)
fn adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], hp: &AdamStep, l2: f32, decay: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor supports AVX-512F (checked just above).
            return unsafe { adam_avx512(p, g, m, v, hp, l2, decay) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor supports AVX2 (checked just above).
            return unsafe { adam_avx2(p, g, m, v, hp, l2, decay) };
        }
    }
    adam_loop(p, g, m, v, hp, l2, decay)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn adam_avx512(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], hp: &AdamStep, l2: f32, decay: f32) {
    adam_loop(p, g, m, v, hp, l2, decay)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn adam_avx2(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], hp: &AdamStep, l2: f32, decay: f32) {
    adam_loop(p, g, m, v, hp, l2, decay)
}

#[inline(always)]
fn adam_loop(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], hp: &AdamStep, l2: f32, decay: f32) {
    let n = p.len().min(g.len()).min(m.len()).min(v.len());
    let (p, g, m, v) = (&mut p[..n], &g[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        // An L2 term, if also set, is part of the loss: its gradient λ·W is taken at the pre-step
        // weight (as PyTorch's backward would), then AdamW's decay, then Adam's update
        let g = g[i] + l2 * p[i];
        p[i] *= decay;
        m[i] = hp.beta1 * m[i] + (1.0 - hp.beta1) * g;
        v[i] = hp.beta2 * v[i] + (1.0 - hp.beta2) * g * g;
        p[i] -= hp.lr * m[i] / (v[i].sqrt() * hp.inv_sqrt_bc2 + hp.eps);
    }
}

//! Parameter updates. L2 is folded into the update (`g + λ·W`, weights only), so each parameter
//! is read and written once per step, in one pass.
//!
//! * Gradient descent (full batch or mini-batch): `θ ← θ − η·g`.
//! * Adam (Kingma & Ba), in PyTorch's arrangement: `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
//!   `θ ← θ − (η/(1−β1ᵗ))·m / (√v/√(1−β2ᵗ) + ε)` — algebraically `θ − η·m̂/(√v̂ + ε)`.

use crate::error::{Error, Result};
use crate::mlp::{Layer, Mlp};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    Sgd,
    Adam { beta1: f32, beta2: f32, eps: f32 },
}

impl Optimizer {
    pub const ADAM_DEFAULT: Optimizer = Optimizer::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

    pub fn validate(&self) -> Result<()> {
        if let Optimizer::Adam { beta1, beta2, eps } = *self {
            for (name, v) in [("beta1", beta1), ("beta2", beta2)] {
                if !(0.0..1.0).contains(&v) {
                    return Err(Error::range(format!("{name} must be in [0, 1), got {v}")));
                }
            }
            if !(eps > 0.0 && eps.is_finite()) {
                return Err(Error::range(format!("eps must be a positive finite number, got {eps}")));
            }
        }
        Ok(())
    }
}

/// Adam's moments and step count; empty until the first Adam step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    pub step: u64,
    pub m: Vec<Layer>,
    pub v: Vec<Layer>,
}

impl OptimizerState {
    pub fn reset(&mut self) {
        *self = OptimizerState::default();
    }
}

/// Below this many parameters a step runs on one thread; above, it is cut into blocks for rayon.
const PARALLEL_MIN_PARAMS: usize = 1 << 16;
const BLOCK: usize = 1 << 14;

/// One update of every parameter of `net` from the gradients `grads`. Parameters are independent,
/// so the update is cut into blocks spread over the current rayon pool; the result does not
/// depend on how it is cut.
pub fn step(net: &mut Mlp, grads: &[Layer], opt: Optimizer, state: &mut OptimizerState, lr: f32, l2: f32) {
    state.step += 1;
    let parallel = net.num_params() >= PARALLEL_MIN_PARAMS && rayon::current_num_threads() > 1;
    match opt {
        Optimizer::Sgd => {
            for (p, g) in net.layers.iter_mut().zip(grads) {
                for (p, g, l2) in [(p.w.as_slice_mut().unwrap(), g.w.as_slice().unwrap(), l2), (p.b.as_slice_mut().unwrap(), g.b.as_slice().unwrap(), 0.0)] {
                    blocks(parallel, p, g, |p, g| sgd(p, g, lr, l2));
                }
            }
        }
        Optimizer::Adam { beta1, beta2, eps } => {
            if state.m.is_empty() {
                // Trainer allocates the moments (fallibly) before its first step; this is for
                // other callers
                state.m = net.zeros_like().expect("memory for Adam's moments");
                state.v = net.zeros_like().expect("memory for Adam's moments");
            }
            let t = state.step as i32;
            let hp = AdamStep {
                lr: lr / (1.0 - (beta1 as f64).powi(t)) as f32,
                inv_sqrt_bc2: 1.0 / (1.0 - (beta2 as f64).powi(t)).sqrt() as f32,
                beta1,
                beta2,
                eps,
            };
            for (((p, g), m), v) in net.layers.iter_mut().zip(grads).zip(&mut state.m).zip(&mut state.v) {
                let w = (p.w.as_slice_mut().unwrap(), g.w.as_slice().unwrap(), m.w.as_slice_mut().unwrap(), v.w.as_slice_mut().unwrap());
                let b = (p.b.as_slice_mut().unwrap(), g.b.as_slice().unwrap(), m.b.as_slice_mut().unwrap(), v.b.as_slice_mut().unwrap());
                for ((p, g, m, v), l2) in [(w, l2), (b, 0.0)] {
                    if parallel {
                        p.par_chunks_mut(BLOCK).zip(g.par_chunks(BLOCK)).zip(m.par_chunks_mut(BLOCK)).zip(v.par_chunks_mut(BLOCK))
                            .for_each(|(((p, g), m), v)| adam(p, g, m, v, &hp, l2));
                    } else {
                        adam(p, g, m, v, &hp, l2);
                    }
                }
            }
        }
    }
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
fn adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], hp: &AdamStep, l2: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor supports AVX-512F (checked just above).
            return unsafe { adam_avx512(p, g, m, v, hp, l2) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor supports AVX2 (checked just above).
            return unsafe { adam_avx2(p, g, m, v, hp, l2) };
        }
    }
    adam_loop(p, g, m, v, hp, l2)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn adam_avx512(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], hp: &AdamStep, l2: f32) {
    adam_loop(p, g, m, v, hp, l2)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn adam_avx2(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], hp: &AdamStep, l2: f32) {
    adam_loop(p, g, m, v, hp, l2)
}

#[inline(always)]
fn adam_loop(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], hp: &AdamStep, l2: f32) {
    let n = p.len().min(g.len()).min(m.len()).min(v.len());
    let (p, g, m, v) = (&mut p[..n], &g[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        let g = g[i] + l2 * p[i];
        m[i] = hp.beta1 * m[i] + (1.0 - hp.beta1) * g;
        v[i] = hp.beta2 * v[i] + (1.0 - hp.beta2) * g * g;
        p[i] -= hp.lr * m[i] / (v[i].sqrt() * hp.inv_sqrt_bc2 + hp.eps);
    }
}

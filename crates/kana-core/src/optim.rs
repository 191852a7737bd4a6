//! Parameter updates. L2 is folded into the update (`g + λ·W`, weights only), so each parameter
//! is read and written once per step, in one pass.
//!
//! * Gradient descent (full batch or mini-batch): `θ ← θ − η·g`.
//! * Adam (Kingma & Ba), in PyTorch's arrangement: `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
//!   `θ ← θ − (η/(1−β1ᵗ))·m / (√v/√(1−β2ᵗ) + ε)` — algebraically `θ − η·m̂/(√v̂ + ε)`.

use crate::error::{Error, Result};
use crate::mlp::{Layer, Mlp};

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

/// One update of every parameter of `net` from the gradients `grads`.
pub fn step(net: &mut Mlp, grads: &[Layer], opt: Optimizer, state: &mut OptimizerState, lr: f32, l2: f32) {
    state.step += 1;
    match opt {
        Optimizer::Sgd => {
            for (p, g) in net.layers.iter_mut().zip(grads) {
                sgd(p.w.as_slice_mut().unwrap(), g.w.as_slice().unwrap(), lr, l2);
                sgd(p.b.as_slice_mut().unwrap(), g.b.as_slice().unwrap(), lr, 0.0);
            }
        }
        Optimizer::Adam { beta1, beta2, eps } => {
            if state.m.is_empty() {
                state.m = net.zeros_like();
                state.v = net.zeros_like();
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
                adam(w.0, w.1, w.2, w.3, &hp, l2);
                let b = (p.b.as_slice_mut().unwrap(), g.b.as_slice().unwrap(), m.b.as_slice_mut().unwrap(), v.b.as_slice_mut().unwrap());
                adam(b.0, b.1, b.2, b.3, &hp, 0.0);
            }
        }
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

fn adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], hp: &AdamStep, l2: f32) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = g + l2 * *p;
        *m = hp.beta1 * *m + (1.0 - hp.beta1) * g;
        *v = hp.beta2 * *v + (1.0 - hp.beta2) * g * g;
        *p -= hp.lr * *m / (v.sqrt() * hp.inv_sqrt_bc2 + hp.eps);
    }
}

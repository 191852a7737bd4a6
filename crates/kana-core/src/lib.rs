//! kana-core: the numerics of kana-native, in plain Rust with no Node in it.
//!
//! A multilayer perceptron classifier read top to bottom:
//!
//! * [`rng`]: a seeded generator, so a run is reproducible from one `u64`.
//! * [`gemm`]: the one heavy operation, `C = αA·B + βC` (and `gemm_bias`, with the layer's bias and
//!   ReLU fused in), through our own register-blocked AVX-512 / AVX2+FMA kernels chosen at run
//!   time, or matrixmultiply's portable kernels elsewhere, split over rayon threads.
//! * [`act`]: the hidden activations (ReLU, leaky ReLU, SiLU, GELU) and an f32 erf.
//! * [`dropout`]: the seeded, thread-independent dropout mask.
//! * [`mlp`]: dense layers, activation, batch norm, dropout, softmax fused with cross-entropy, He
//!   initialisation, and the forward/backward passes over preallocated workspaces.
//! * [`optim`]: gradient descent (with momentum, Nesterov), Adam and AdamW, with L2 on the
//!   weights, and clipping by global norm.
//! * [`data`]: the training set, held once as `u8` pixels and normalised per batch.
//! * [`train`]: the epoch loop, evaluation and prediction, cancellable between batches.
//!
//! Conventions (shared with the TypeScript reference implementation, `src/reference.ts`):
//! * Layer `l` maps `n_{l-1}` inputs to `n_l` outputs with `W_l` stored row-major `in × out`
//!   (`W[i*out + j]` joins input `i` to output `j`), so `Z_l = A_{l-1}·W_l + b_l`.
//! * Pixels `p ∈ 0..=255` enter as `p / 255`.
//! * Loss: mean cross-entropy over the batch. L2 with λ adds `(λ/2)·Σ‖W_l‖²` to the objective
//!   (weights only, not biases), i.e. `λ·W` to each weight gradient — PyTorch's `weight_decay`.
//!   Reported losses are the cross-entropy alone, without the penalty.
//! * Optional hidden-layer options (issue F1, `NetConfig`): activation relu / leaky-relu / silu /
//!   gelu (exact erf form); batch norm before the activation (PyTorch's BatchNorm1d); inverted
//!   dropout after it, with a mask hashed from (seed, step, layer, row, unit). Training options
//!   (`EpochOptions`): label smoothing in the gradient only, clipping by global norm before the
//!   optimiser, AdamW, SGD with momentum / Nesterov. With none of them the arithmetic is exactly
//!   the original network's.

pub mod act;
pub mod data;
pub mod dropout;
pub mod error;
pub mod gemm;
pub mod mlp;
pub mod optim;
pub mod rng;
pub mod train;

pub use data::Dataset;
pub use error::{Error, ErrorKind};
pub use act::Activation;
pub use mlp::{Mlp, NetConfig};
pub use optim::{Optimizer, OptimizerState};
pub use rng::Rng;
pub use train::{Control, EpochOptions, EpochStats, Evaluation, PartialEpoch, Trainer};

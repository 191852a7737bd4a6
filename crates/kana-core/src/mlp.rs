//! The network: dense layers with ReLU between them and softmax + cross-entropy at the end.
//!
//! Forward, for a batch `X` (rows = samples):  `Z_l = A_{l-1}·W_l + b_l`, `A_l = ReLU(Z_l)`,
//! except the last layer whose `Z_L` are the logits and `P = softmax(Z_L)`.
//! Loss: `mean_i −log P[i, y_i] = mean_i (logsumexp(Z_L[i]) − Z_L[i, y_i])`, computed from the
//! logits so that it stays finite however confident the network is; its gradient with respect to
//! the logits is `(P − Y)/B`.
//! Backward: `∂W_l = A_{l-1}ᵀ·δ_l`, `∂b_l = Σ_rows δ_l`, `δ_{l-1} = (δ_l·W_lᵀ) ⊙ 1[Z_{l-1} > 0]`.
//! (`Z > 0` exactly when `A = ReLU(Z) > 0`, so the activations double as the ReLU mask.)

use crate::error::{Error, Result};
use crate::gemm::gemm;
use crate::rng::Rng;
use ndarray::{s, Array1, Array2, ArrayView2, Zip};

/// One dense layer's parameters (also used for gradients and optimiser moments of the same shape).
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// `in × out`, row-major.
    pub w: Array2<f32>,
    pub b: Array1<f32>,
}

impl Layer {
    pub fn zeros(inputs: usize, outputs: usize) -> Result<Self> {
        Ok(Layer { w: try_zeros(inputs, outputs)?, b: Array1::from(try_zeroed_vec(outputs)?) })
    }
}

/// `n` zeros, or an error naming the bytes when the memory cannot be had (the allocator would
/// otherwise abort the whole process, Node included).
pub fn try_zeroed_vec<T: Copy + Default>(n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::range(format!("cannot allocate {} bytes of memory", n.saturating_mul(std::mem::size_of::<T>()))))?;
    v.resize(n, T::default());
    Ok(v)
}

/// A zeroed `rows × cols` matrix, allocated fallibly (see [`try_zeroed_vec`]).
pub fn try_zeros(rows: usize, cols: usize) -> Result<Array2<f32>> {
    let n = rows.checked_mul(cols).ok_or_else(|| Error::range(format!("a {rows} × {cols} matrix is too large")))?;
    Ok(Array2::from_shape_vec((rows, cols), try_zeroed_vec(n)?).expect("length is rows × cols"))
}

#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// `[inputs, hidden…, classes]`.
    pub sizes: Vec<usize>,
    pub layers: Vec<Layer>,
}

/// Largest layer width we accept: far beyond any sensible MLP, small enough that sizes never overflow.
pub const MAX_WIDTH: usize = 1 << 20;
/// Largest parameter count we accept (1.07 G parameters = 4 GiB of f32 weights).
pub const MAX_PARAMS: usize = 1 << 28;

pub fn check_sizes(sizes: &[usize]) -> Result<()> {
    if sizes.len() < 2 {
        return Err(Error::range(format!("layers must list at least an input and an output size, got {} size(s)", sizes.len())));
    }
    for (i, &n) in sizes.iter().enumerate() {
        if n == 0 || n > MAX_WIDTH {
            return Err(Error::range(format!("layers[{i}] must be an integer in 1..={MAX_WIDTH}, got {n}")));
        }
    }
    if *sizes.last().unwrap() < 2 {
        return Err(Error::range("the output layer needs at least 2 classes"));
    }
    // checked: a long list of wide layers must not wrap around to a small count
    let params = sizes.windows(2).try_fold(0usize, |acc, p| p[0].checked_mul(p[1])?.checked_add(p[1])?.checked_add(acc)).unwrap_or(usize::MAX);
    if params > MAX_PARAMS {
        return Err(Error::range(format!("layers {sizes:?} give {params} parameters, more than the limit of {MAX_PARAMS}")));
    }
    Ok(())
}

/// Layers of the given sizes from flat arrays `[W_1, b_1, W_2, b_2, …]`, each checked for its
/// length and for finite values; errors name `what` (e.g. "weights"), the layer and the index.
pub fn layers_from_slices(sizes: &[usize], arrays: &[&[f32]], what: &str) -> Result<Vec<Layer>> {
    let expected = 2 * (sizes.len() - 1);
    if arrays.len() != expected {
        return Err(Error::range(format!("{what} must hold {expected} arrays (W and b for each of {} layers), got {}", expected / 2, arrays.len())));
    }
    sizes
        .windows(2)
        .enumerate()
        .map(|(l, pair)| {
            let (w, b) = (arrays[2 * l], arrays[2 * l + 1]);
            for (name, arr, len) in [("W", w, pair[0] * pair[1]), ("b", b, pair[1])] {
                if arr.len() != len {
                    return Err(Error::range(format!("{what}: layer {} {name} must have {len} values, got {}", l + 1, arr.len())));
                }
                if let Some(i) = arr.iter().position(|v| !v.is_finite()) {
                    return Err(Error::range(format!("{what}: layer {} {name}[{i}] is {}, values must be finite", l + 1, arr[i])));
                }
            }
            let w = Array2::from_shape_vec((pair[0], pair[1]), w.to_vec()).expect("length checked");
            Ok(Layer { w, b: Array1::from(b.to_vec()) })
        })
        .collect()
}

impl Mlp {
    /// He initialisation: `W_l ~ N(0, 2/n_{l-1})`, zero biases. The weights are drawn layer by
    /// layer, row by row, from `rng`, so a seed fixes them completely.
    pub fn new(sizes: &[usize], rng: &mut Rng) -> Result<Self> {
        check_sizes(sizes)?;
        let layers = sizes
            .windows(2)
            .map(|p| {
                let std = (2.0 / p[0] as f64).sqrt();
                let mut layer = Layer::zeros(p[0], p[1])?;
                // row by row, in memory order
                layer.w.iter_mut().for_each(|w| *w = (rng.normal() * std) as f32);
                Ok(layer)
            })
            .collect::<Result<_>>()?;
        Ok(Mlp { sizes: sizes.to_vec(), layers })
    }

    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    pub fn classes(&self) -> usize {
        *self.sizes.last().unwrap()
    }

    pub fn num_params(&self) -> usize {
        self.layers.iter().map(|l| l.w.len() + l.b.len()).sum()
    }

    /// Zeroed tensors of the same shapes (gradients, optimiser moments).
    pub fn zeros_like(&self) -> Result<Vec<Layer>> {
        self.sizes.windows(2).map(|p| Layer::zeros(p[0], p[1])).collect()
    }

    /// Forward pass over the first `rows` rows of `ws.x`; leaves the hidden activations in
    /// `ws.acts` and the logits in `ws.acts[L-1]`.
    pub fn forward(&self, ws: &mut Workspace, rows: usize) {
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let (before, after) = ws.acts.split_at_mut(l);
            let input = if l == 0 { ws.x.slice(s![..rows, ..]) } else { before[l - 1].slice(s![..rows, ..]) };
            let mut z = after[0].slice_mut(s![..rows, ..]);
            gemm(1.0, input, layer.w.view(), 0.0, z.view_mut());
            if l < last {
                // bias and ReLU in one pass over Z
                for mut row in z.rows_mut() {
                    Zip::from(&mut row).and(&layer.b).for_each(|z, &b| *z = (*z + b).max(0.0));
                }
            } else {
                for mut row in z.rows_mut() {
                    Zip::from(&mut row).and(&layer.b).for_each(|z, &b| *z += b);
                }
            }
        }
    }

    /// Backward pass for rows `..rows` after [`Mlp::forward`], for labels `y` of those rows.
    /// Adds `scale ·` (the gradient of the summed cross-entropy) into `grads` when `accumulate`,
    /// or overwrites them otherwise; with `scale = 1/B` over a batch of `B` rows, `grads` end up
    /// holding the gradient of the mean loss. Returns (Σ cross-entropy, number correct).
    pub fn backward(&self, ws: &mut Workspace, rows: usize, y: &[u32], scale: f32, grads: &mut [Layer], accumulate: bool) -> (f64, usize) {
        let last = self.layers.len() - 1;
        let classes = self.classes();
        // Output layer, one pass per row: loss, hit, and δ = (P − Y)·scale.
        let (mut loss, mut correct) = (0.0f64, 0usize);
        {
            let logits = ws.acts[last].slice(s![..rows, ..]);
            let mut delta = ws.deltas[last].slice_mut(s![..rows, ..]);
            for ((z, mut d), &label) in logits.rows().into_iter().zip(delta.rows_mut()).zip(y) {
                let (z, label) = (z.as_slice().expect("workspace rows are contiguous"), label as usize);
                debug_assert!(label < classes);
                let lse = log_sum_exp(z);
                loss += (lse - z[label]) as f64;
                correct += (argmax(z) == label) as usize;
                Zip::from(&mut d).and(z).for_each(|d, &z| *d = (z - lse).exp() * scale);
                d[label] -= scale;
            }
        }
        let beta = if accumulate { 1.0 } else { 0.0 };
        for l in (0..=last).rev() {
            let input = if l == 0 { ws.x.slice(s![..rows, ..]) } else { ws.acts[l - 1].slice(s![..rows, ..]) };
            let (lower, upper) = ws.deltas.split_at_mut(l);
            let delta = upper[0].slice(s![..rows, ..]);
            let g = &mut grads[l];
            gemm(1.0, input.t(), delta, beta, g.w.view_mut());
            // ∂b = Σ_rows δ, summed in place (no temporary)
            if !accumulate {
                g.b.fill(0.0);
            }
            for row in delta.rows() {
                g.b += &row;
            }
            if l > 0 {
                // δ_{l-1} = (δ_l·W_lᵀ) ⊙ 1[A_{l-1} > 0]
                let mut prev = lower[l - 1].slice_mut(s![..rows, ..]);
                gemm(1.0, delta, self.layers[l].w.t(), 0.0, prev.view_mut());
                Zip::from(&mut prev).and(&input).for_each(|d, &a| if a <= 0.0 { *d = 0.0 });
            }
        }
        (loss, correct)
    }
}

/// `ln Σ exp(z)`, stably: with `m = max z`, `m + ln Σ exp(z − m)` has every `exp` ≤ 1, so large
/// logits cannot overflow, and the sum is ≥ 1, so its logarithm is finite.
pub fn log_sum_exp(z: &[f32]) -> f32 {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // the sum in f64, so that rows of many classes still normalise to 1 within f32 precision
    max + (z.iter().map(|&v| (v - max).exp() as f64).sum::<f64>().ln() as f32)
}

/// Logits to probabilities in place: `exp(z − logsumexp(z))`.
pub fn softmax_in_place(z: &mut [f32]) {
    let lse = log_sum_exp(z);
    z.iter_mut().for_each(|v| *v = (*v - lse).exp());
}

/// Index of the largest value (the first on ties); NaN never wins.
pub fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in xs.iter().enumerate() {
        if v > xs[best] {
            best = i;
        }
    }
    best
}

/// Preallocated buffers for up to `capacity` rows, so a training step allocates nothing.
#[derive(Debug)]
pub struct Workspace {
    pub capacity: usize,
    /// normalised inputs, `capacity × inputs`
    pub x: Array2<f32>,
    /// activations of each layer (the last holds probabilities), `capacity × n_l`
    pub acts: Vec<Array2<f32>>,
    /// gradients of the loss with respect to each layer's pre-activation, `capacity × n_l`
    pub deltas: Vec<Array2<f32>>,
}

impl Workspace {
    pub fn new(sizes: &[usize], capacity: usize, with_deltas: bool) -> Result<Self> {
        let acts = sizes[1..].iter().map(|&n| try_zeros(capacity, n)).collect::<Result<_>>()?;
        let deltas = if with_deltas { sizes[1..].iter().map(|&n| try_zeros(capacity, n)).collect::<Result<_>>()? } else { Vec::new() };
        Ok(Workspace { capacity, x: try_zeros(capacity, sizes[0])?, acts, deltas })
    }

    /// The logits left by the last forward pass.
    pub fn logits(&self, rows: usize) -> ArrayView2<'_, f32> {
        self.acts.last().unwrap().slice(s![..rows, ..])
    }
}

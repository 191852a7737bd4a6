//! The network: dense layers with an activation between them and softmax + cross-entropy at the end.
//!
//! Forward, for a batch `X` (rows = samples), hidden layer `l`: `Z_l = A_{l-1}·W_l + b_l`; with batch
//! norm `Ẑ = (Z − μ_B)/√(σ²_B + ε)`, `Z' = γ⊙Ẑ + β` (batch mean and biased variance per unit in
//! training, the running statistics otherwise); `A_l = f(Z')`; with dropout in training
//! `A_l ⊙= mask/(1 − p)`. The last layer's `Z_L` are the logits and `P = softmax(Z_L)`.
//! Loss: `mean_i −log P[i, y_i] = mean_i (logsumexp(Z_L[i]) − Z_L[i, y_i])`, computed from the
//! logits so that it stays finite however confident the network is; its gradient with respect to
//! the logits is `(P − T)/B`, `T` the (optionally smoothed) one-hot targets.
//! Backward: `∂W_l = A_{l-1}ᵀ·δ_l`, `∂b_l = Σ_rows δ_l`, `∂A_{l-1} = δ_l·W_lᵀ`, then back through
//! dropout, the activation and batch norm to `δ_{l-1}`.
//! With plain ReLU, `Z > 0` exactly when `A = ReLU(Z) > 0` (also after dropout's positive scaling),
//! so the activations double as the mask and no pre-activations are kept.

use crate::act::{pass, Activation};
use crate::dropout::{self, Mask};
use crate::error::{Error, Result};
use crate::gemm::{gemm, gemm_bias};
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

/// Batch norm's learned scale and shift of one hidden layer (also their gradients and moments).
#[derive(Clone, Debug, PartialEq)]
pub struct Affine {
    pub gamma: Array1<f32>,
    pub beta: Array1<f32>,
}

/// Batch norm's running statistics of one hidden layer (PyTorch's: unbiased variance).
#[derive(Clone, Debug, PartialEq)]
pub struct Running {
    pub mean: Array1<f32>,
    pub var: Array1<f32>,
}

/// The architecture besides the sizes: how hidden layers transform and regularise.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    pub activation: Activation,
    /// Dropout rate of each hidden layer (`sizes.len() − 2` entries), each in [0, 1).
    pub dropout: Vec<f64>,
    pub batch_norm: bool,
    /// Weight of the batch in the running statistics, in [0, 1).
    pub bn_momentum: f64,
    /// Added to the variance, > 0.
    pub bn_eps: f64,
}

impl NetConfig {
    pub const BN_MOMENTUM_DEFAULT: f64 = 0.1;
    pub const BN_EPS_DEFAULT: f64 = 1e-5;

    /// ReLU, no dropout, no batch norm: the network as it always was.
    pub fn plain(sizes: &[usize]) -> Self {
        NetConfig {
            activation: Activation::Relu,
            dropout: vec![0.0; sizes.len().saturating_sub(2)],
            batch_norm: false,
            bn_momentum: Self::BN_MOMENTUM_DEFAULT,
            bn_eps: Self::BN_EPS_DEFAULT,
        }
    }

    pub fn validate(&self, sizes: &[usize]) -> Result<()> {
        self.activation.validate()?;
        let hidden = sizes.len().saturating_sub(2);
        if self.dropout.len() != hidden {
            return Err(Error::range(format!("dropout must give one rate per hidden layer ({hidden}), got {}", self.dropout.len())));
        }
        for (i, &p) in self.dropout.iter().enumerate() {
            dropout::check_rate(p, &if hidden == 1 { "dropout".to_string() } else { format!("dropout[{i}]") })?;
        }
        if !(0.0..1.0).contains(&self.bn_momentum) {
            return Err(Error::range(format!("bnMomentum must be in [0, 1), got {}", self.bn_momentum)));
        }
        if !(self.bn_eps > 0.0 && self.bn_eps.is_finite()) {
            return Err(Error::range(format!("bnEps must be a positive finite number, got {}", self.bn_eps)));
        }
        Ok(())
    }

    /// Whether hidden layer `h` (0-based) is plain ReLU with nothing else, in training or not.
    fn plain_layer(&self, h: usize, training: bool) -> bool {
        self.activation == Activation::Relu && !self.batch_norm && !(training && self.dropout[h] > 0.0)
    }

    /// Whether hidden layers keep a copy of their pre-activation (or of Ẑ) for the backward pass.
    fn keeps_pre(&self) -> bool {
        self.batch_norm || self.activation != Activation::Relu
    }
}

/// What a parameter tensor is: decides L2 and weight decay (weights only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Weight,
    Bias,
    Gamma,
    Beta,
}

/// The parameter tensors in their one order (optimiser state, gradient norm, training state):
/// for each layer `W_l, b_l`, then for hidden layers with batch norm `γ_l, β_l`.
/// Tensor `i` is `(layer, kind)`.
pub fn slot(layers: usize, batch_norm: bool, i: usize) -> (usize, Kind) {
    const PLAIN: [Kind; 2] = [Kind::Weight, Kind::Bias];
    const NORMED: [Kind; 4] = [Kind::Weight, Kind::Bias, Kind::Gamma, Kind::Beta];
    let hidden = layers - 1;
    if batch_norm && i < 4 * hidden {
        (i / 4, NORMED[i % 4])
    } else {
        let j = if batch_norm { i - 4 * hidden + 2 * hidden } else { i };
        (j / 2, PLAIN[j % 2])
    }
}

pub fn tensor_count(layers: usize, batch_norm: bool) -> usize {
    2 * layers + if batch_norm { 2 * (layers - 1) } else { 0 }
}

pub fn tensor<'a>(layers: &'a [Layer], norms: &'a [Affine], i: usize) -> &'a [f32] {
    let (l, kind) = slot(layers.len(), !norms.is_empty(), i);
    match kind {
        Kind::Weight => layers[l].w.as_slice(),
        Kind::Bias => layers[l].b.as_slice(),
        Kind::Gamma => norms[l].gamma.as_slice(),
        Kind::Beta => norms[l].beta.as_slice(),
    }
    .expect("parameters are contiguous")
}

pub fn tensor_mut<'a>(layers: &'a mut [Layer], norms: &'a mut [Affine], i: usize) -> &'a mut [f32] {
    let (l, kind) = slot(layers.len(), !norms.is_empty(), i);
    match kind {
        Kind::Weight => layers[l].w.as_slice_mut(),
        Kind::Bias => layers[l].b.as_slice_mut(),
        Kind::Gamma => norms[l].gamma.as_slice_mut(),
        Kind::Beta => norms[l].beta.as_slice_mut(),
    }
    .expect("parameters are contiguous")
}

/// Gradients of every parameter, shaped like them.
#[derive(Clone, Debug, PartialEq)]
pub struct Grads {
    pub layers: Vec<Layer>,
    /// γ and β of each hidden layer with batch norm (empty without).
    pub norms: Vec<Affine>,
}

impl Grads {
    pub fn count(&self) -> usize {
        tensor_count(self.layers.len(), !self.norms.is_empty())
    }
    pub fn tensor(&self, i: usize) -> &[f32] {
        tensor(&self.layers, &self.norms, i)
    }
    pub fn tensor_mut(&mut self, i: usize) -> &mut [f32] {
        tensor_mut(&mut self.layers, &mut self.norms, i)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// `[inputs, hidden…, classes]`.
    pub sizes: Vec<usize>,
    pub config: NetConfig,
    pub layers: Vec<Layer>,
    /// γ and β of each hidden layer with batch norm (empty without).
    pub norms: Vec<Affine>,
    /// Running mean and variance of each hidden layer with batch norm (empty without).
    pub running: Vec<Running>,
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

fn ones(n: usize) -> Result<Array1<f32>> {
    let mut v = try_zeroed_vec::<f32>(n)?;
    v.fill(1.0);
    Ok(Array1::from(v))
}

fn zeros1(n: usize) -> Result<Array1<f32>> {
    Ok(Array1::from(try_zeroed_vec::<f32>(n)?))
}

/// One hidden layer's dropout mask for one step (`None`: no dropout there).
pub type Masks = [Option<Mask>];

/// What the forward and backward passes of a training batch need besides the data.
#[derive(Clone, Copy, Debug)]
pub struct TrainPass<'a> {
    /// per hidden layer
    pub masks: &'a Masks,
    /// index of the chunk's first row within its batch (dropout masks are per batch row)
    pub row0: usize,
    /// ε of label smoothing
    pub label_smoothing: f32,
}

impl Mlp {
    /// He initialisation: `W_l ~ N(0, 2/n_{l-1})`, zero biases. The weights are drawn layer by
    /// layer, row by row, from `rng`, so a seed fixes them completely.
    pub fn new(sizes: &[usize], rng: &mut Rng) -> Result<Self> {
        check_sizes(sizes)?;
        Self::with_config(sizes, NetConfig::plain(sizes), rng)
    }

    /// As [`Mlp::new`], with the given activation, dropout and batch norm (γ = 1, β = 0, running
    /// mean 0 and variance 1; the generator draws only the weights, so they do not depend on the config).
    pub fn with_config(sizes: &[usize], config: NetConfig, rng: &mut Rng) -> Result<Self> {
        check_sizes(sizes)?;
        config.validate(sizes)?;
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
        let hidden = &sizes[1..sizes.len() - 1];
        let (norms, running) = if config.batch_norm {
            (
                hidden.iter().map(|&n| Ok(Affine { gamma: ones(n)?, beta: zeros1(n)? })).collect::<Result<_>>()?,
                hidden.iter().map(|&n| Ok(Running { mean: zeros1(n)?, var: ones(n)? })).collect::<Result<_>>()?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Mlp { sizes: sizes.to_vec(), config, layers, norms, running })
    }

    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    pub fn classes(&self) -> usize {
        *self.sizes.last().unwrap()
    }

    /// Weights and biases (γ, β not counted: `getWeights` holds exactly these).
    pub fn num_params(&self) -> usize {
        self.layers.iter().map(|l| l.w.len() + l.b.len()).sum()
    }

    /// Whether some layer is batch-normalised (batch norm on a network without hidden layers does nothing).
    pub fn has_batch_norm(&self) -> bool {
        !self.norms.is_empty()
    }

    /// Number of parameter tensors (see [`slot`]).
    pub fn tensor_count(&self) -> usize {
        tensor_count(self.layers.len(), self.config.batch_norm)
    }

    pub fn kind(&self, i: usize) -> Kind {
        slot(self.layers.len(), self.config.batch_norm, i).1
    }

    pub fn tensor(&self, i: usize) -> &[f32] {
        tensor(&self.layers, &self.norms, i)
    }

    pub fn tensor_mut(&mut self, i: usize) -> &mut [f32] {
        tensor_mut(&mut self.layers, &mut self.norms, i)
    }

    /// Total length of all parameter tensors (weights, biases, γ, β).
    pub fn tensor_len(&self) -> usize {
        (0..self.tensor_count()).map(|i| self.tensor(i).len()).sum()
    }

    /// Zeroed tensors of the same shapes as the weights and biases.
    pub fn zeros_like(&self) -> Result<Vec<Layer>> {
        self.sizes.windows(2).map(|p| Layer::zeros(p[0], p[1])).collect()
    }

    /// Zeroed gradients of every parameter.
    pub fn zero_grads(&self) -> Result<Grads> {
        let norms = if self.config.batch_norm {
            self.sizes[1..self.sizes.len() - 1].iter().map(|&n| Ok(Affine { gamma: zeros1(n)?, beta: zeros1(n)? })).collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(Grads { layers: self.zeros_like()?, norms })
    }

    /// Zeroed flat tensors in the parameter order (optimiser moments).
    pub fn zero_tensors(&self) -> Result<Vec<Vec<f32>>> {
        (0..self.tensor_count()).map(|i| try_zeroed_vec(self.tensor(i).len())).collect()
    }

    /// Forward pass in evaluation mode (running statistics, no dropout) over the first `rows` rows
    /// of `ws.x`; leaves the hidden activations in `ws.acts` and the logits in `ws.acts[L-1]`.
    pub fn forward(&self, ws: &mut Workspace, rows: usize) {
        self.forward_pass(ws, rows, None)
    }

    /// Forward pass in training mode: batch statistics (left in `ws.stats`), dropout masks.
    /// With batch norm the rows must be the whole batch.
    pub fn forward_train(&self, ws: &mut Workspace, rows: usize, pass: &TrainPass) {
        self.forward_pass(ws, rows, Some(pass))
    }

    fn forward_pass(&self, ws: &mut Workspace, rows: usize, train: Option<&TrainPass>) {
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let (before, after) = ws.acts.split_at_mut(l);
            let input = if l == 0 { ws.x.slice(s![..rows, ..]) } else { before[l - 1].slice(s![..rows, ..]) };
            let mut z = after[0].slice_mut(s![..rows, ..]);
            // Z = A·W + b, and ReLU for a plain layer, applied to each tile in registers
            let relu = l != last && self.config.plain_layer(l, train.is_some());
            gemm_bias(input, layer.w.view(), layer.b.view(), relu, z.view_mut());
            if l == last || relu {
                continue;
            }
            let mask = train.and_then(|t| t.masks[l].map(|m| (m, t.row0)));
            let pre = if train.is_some() && self.config.keeps_pre() { Some(&mut ws.pre[l]) } else { None };
            let hidden = Hidden { act: self.config.activation, mask, eps: self.config.bn_eps };
            match (self.config.batch_norm, train.is_some()) {
                (false, _) => hidden.activate(z.view_mut(), pre, None),
                (true, true) => hidden.batch_norm_train(z.view_mut(), &self.norms[l], pre.expect("batch norm keeps Ẑ"), &mut ws.stats[l]),
                (true, false) => hidden.batch_norm_eval(z.view_mut(), &self.norms[l], &self.running[l], &mut ws.stats[l]),
            }
        }
    }

    /// Backward pass for rows `..rows` after [`Mlp::forward_train`] with the same `pass`, for labels
    /// `y` of those rows. Adds `scale ·` (the gradient of the summed training loss) into `grads`
    /// when `accumulate`, or overwrites them otherwise; with `scale = 1/B` over a batch of `B` rows,
    /// `grads` end up holding the gradient of the mean loss. Returns (Σ cross-entropy, number
    /// correct) — the plain cross-entropy, also with label smoothing.
    pub fn backward(&self, ws: &mut Workspace, rows: usize, y: &[u32], scale: f32, grads: &mut Grads, accumulate: bool, pass: &TrainPass) -> (f64, usize) {
        let last = self.layers.len() - 1;
        let classes = self.classes();
        let eps = pass.label_smoothing;
        // Output layer, one pass per row: loss, hit, and δ = (P − T)·scale.
        let (mut loss, mut correct) = (0.0f64, 0usize);
        {
            let logits = ws.acts[last].slice(s![..rows, ..]);
            let mut delta = ws.deltas[last].slice_mut(s![..rows, ..]);
            // T = (1 − ε)·onehot + ε/K
            let (off, on) = (eps / classes as f32 * scale, (1.0 - eps) * scale);
            for ((z, mut d), &label) in logits.rows().into_iter().zip(delta.rows_mut()).zip(y) {
                let (z, label) = (z.as_slice().expect("workspace rows are contiguous"), label as usize);
                debug_assert!(label < classes);
                let lse = log_sum_exp(z);
                loss += (lse - z[label]) as f64;
                correct += (argmax(z) == label) as usize;
                if eps == 0.0 {
                    Zip::from(&mut d).and(z).for_each(|d, &z| *d = (z - lse).exp() * scale);
                    d[label] -= scale;
                } else {
                    Zip::from(&mut d).and(z).for_each(|d, &z| *d = (z - lse).exp() * scale - off);
                    d[label] -= on;
                }
            }
        }
        assert!(!(accumulate && self.has_batch_norm()), "batch norm needs the whole batch in one pass");
        let beta = if accumulate { 1.0 } else { 0.0 };
        for l in (0..=last).rev() {
            let input = if l == 0 { ws.x.slice(s![..rows, ..]) } else { ws.acts[l - 1].slice(s![..rows, ..]) };
            let (lower, upper) = ws.deltas.split_at_mut(l);
            let delta = upper[0].slice(s![..rows, ..]);
            let g = &mut grads.layers[l];
            let norm_grads = &mut grads.norms;
            // ∂W beside (∂b, then ∂A below): independent work, one fork/join for both threads
            rayon::join(
                || gemm(1.0, input.t(), delta, beta, g.w.view_mut()),
                || {
                    // ∂b = Σ_rows δ, summed in place in row order, by blocks of columns
                    {
                        let d = delta.to_slice().expect("workspace rows are contiguous");
                        let width = delta.ncols();
                        by_cols(g.b.as_slice_mut().unwrap(), &mut [(); 0][..], width, rows, |j0, b, _| {
                            if !accumulate {
                                b.fill(0.0);
                            }
                            for r in 0..rows {
                                let dr = &d[r * width + j0..r * width + j0 + b.len()];
                                for (b, &v) in b.iter_mut().zip(dr) {
                                    *b += v;
                                }
                            }
                        });
                    }
                    if l == 0 {
                        return;
                    }
                    // ∂A_{l-1} = δ_l·W_lᵀ, then back through dropout, the activation and batch norm
                    let h = l - 1;
                    let mut prev = lower[h].slice_mut(s![..rows, ..]);
                    gemm(1.0, delta, self.layers[l].w.t(), 0.0, prev.view_mut());
                    let mask = pass.masks[h].map(|m| (m, pass.row0));
                    if self.config.activation == Activation::Relu {
                        // A > 0 exactly where the unit is kept and Z' > 0; kept units were scaled by s
                        let width = prev.ncols();
                        let (d, a) = (prev.as_slice_mut().expect("workspace rows are contiguous"), input.to_slice().expect("workspace rows are contiguous"));
                        if self.config.plain_layer(h, true) {
                            by_rows_ro(d, a, width, |_, d, a| d.iter_mut().zip(a).for_each(|(d, &a)| if a <= 0.0 { *d = 0.0 }));
                            return;
                        }
                        let s = mask.map_or(1.0, |(m, _)| m.scale);
                        by_rows_ro(d, a, width, |_, d, a| d.iter_mut().zip(a).for_each(|(d, &a)| *d = if a > 0.0 { *d * s } else { 0.0 }));
                    } else {
                        let pre = ws.pre[h].slice(s![..rows, ..]);
                        let norm = if self.config.batch_norm { Some(&self.norms[h]) } else { None };
                        activation_backward(self.config.activation, prev.view_mut(), pre, norm, mask);
                    }
                    if self.config.batch_norm {
                        let stats = &ws.stats[h];
                        batch_norm_backward(prev.view_mut(), ws.pre[h].slice(s![..rows, ..]), &self.norms[h], &stats.invstd, &mut norm_grads[h]);
                    }
                },
            );
        }
        (loss, correct)
    }

    /// Folds the batch statistics of the last training forward pass (over `rows` samples) into
    /// the running statistics: mean ← (1−m)·mean + m·μ_B, var ← (1−m)·var + m·σ²_B·B/(B−1); with
    /// one sample the variance is left alone (B/(B−1) is undefined).
    pub fn update_running(&mut self, ws: &Workspace, rows: usize) {
        let m = self.config.bn_momentum;
        for (run, st) in self.running.iter_mut().zip(&ws.stats) {
            Zip::from(&mut run.mean).and(&st.mean).for_each(|r, &mu| *r = ((1.0 - m) * *r as f64 + m * mu) as f32);
            if rows > 1 {
                let unbias = rows as f64 / (rows - 1) as f64;
                Zip::from(&mut run.var).and(&st.var).for_each(|r, &v| *r = ((1.0 - m) * *r as f64 + m * v * unbias) as f32);
            }
        }
    }
}

/// One hidden layer's forward work after `Z = A·W + b`.
struct Hidden {
    act: Activation,
    /// dropout mask and the batch row of the first row here
    mask: Option<(Mask, usize)>,
    eps: f64,
}

impl Hidden {
    /// Training: batch mean and biased variance per unit (in f64, rows in order, so independent of
    /// threads), then `Ẑ` kept in `pre`, `Z' = γ⊙Ẑ + β` and `A = f(Z')·mask` in one pass.
    fn batch_norm_train(&self, z: ndarray::ArrayViewMut2<f32>, norm: &Affine, pre: &mut Array2<f32>, stats: &mut BatchStats) {
        column_stats(z.view(), stats);
        Zip::from(&stats.var).and(&mut stats.invstd).and(&stats.mean).and(&mut stats.mean32).for_each(|&v, inv, &mu, m32| {
            *inv = (1.0 / (v + self.eps).sqrt()) as f32;
            *m32 = mu as f32;
        });
        let n = pass::Norm { mean: slice1(&stats.mean32), invstd: slice1(&stats.invstd), gamma: slice1(&norm.gamma), beta: slice1(&norm.beta) };
        self.activate(z, Some(pre), Some(n));
    }

    /// Evaluation: the running statistics in place of the batch's.
    fn batch_norm_eval(&self, z: ndarray::ArrayViewMut2<f32>, norm: &Affine, run: &Running, stats: &mut BatchStats) {
        Zip::from(&mut stats.invstd).and(&run.var).for_each(|inv, &v| *inv = (1.0 / (v as f64 + self.eps).sqrt()) as f32);
        let n = pass::Norm { mean: slice1(&run.mean), invstd: slice1(&stats.invstd), gamma: slice1(&norm.gamma), beta: slice1(&norm.beta) };
        self.activate(z, None, Some(n));
    }

    /// `A = f(Z')` (times the dropout factor in training), `Z` or `Ẑ` kept in `pre` if given, by
    /// blocks of rows on the rayon pool.
    fn activate(&self, mut z: ndarray::ArrayViewMut2<f32>, pre: Option<&mut Array2<f32>>, norm: Option<pass::Norm>) {
        let (rows, width) = z.dim();
        let z = z.as_slice_mut().expect("workspace rows are contiguous");
        let (act, mask) = (self.act, self.mask);
        let at = |r0: usize| mask.map(|(m, row0)| (m, row0 + r0));
        match pre {
            None => by_rows(z, &mut [], width, |r0, z, _| pass::forward(act, z, None, width, norm, at(r0))),
            Some(pre) => {
                let pre = &mut pre.as_slice_mut().expect("workspace is contiguous")[..rows * width];
                by_rows(z, pre, width, |r0, z, pre| pass::forward(act, z, Some(pre), width, norm, at(r0)))
            }
        }
    }
}

fn slice1<T>(a: &Array1<T>) -> &[T] {
    a.as_slice().expect("vectors are contiguous")
}

/// Batch mean and biased variance of each column of `z` (f64, summed over the rows in order), by
/// blocks of columns on the rayon pool: each column's sums are the same whatever the split.
fn column_stats(z: ArrayView2<f32>, stats: &mut BatchStats) {
    let (rows, width) = z.dim();
    let z = z.to_slice().expect("workspace rows are contiguous");
    let mean = stats.mean.as_slice_mut().unwrap();
    let var = stats.var.as_slice_mut().unwrap();
    by_cols(mean, var, width, rows, |j0, mean, var| {
        let w = mean.len();
        mean.fill(0.0);
        for r in 0..rows {
            let zr = &z[r * width + j0..r * width + j0 + w];
            for j in 0..w {
                mean[j] += zr[j] as f64;
            }
        }
        mean.iter_mut().for_each(|s| *s /= rows as f64);
        var.fill(0.0);
        for r in 0..rows {
            let zr = &z[r * width + j0..r * width + j0 + w];
            for j in 0..w {
                var[j] += (zr[j] as f64 - mean[j]).powi(2);
            }
        }
        var.iter_mut().for_each(|v| *v /= rows as f64);
    });
}

/// Runs `f(first column, a[cols], b[cols])` over blocks of columns (`a` and `b` hold one value
/// per column; `b` may be empty), in parallel when the `rows × width` pass behind it is large enough. For passes
/// that reduce over rows: a column's result does not depend on the cut.
fn by_cols<T: Send, U: Send>(a: &mut [T], b: &mut [U], width: usize, rows: usize, f: impl Fn(usize, &mut [T], &mut [U]) + Sync) {
    use rayon::prelude::*;
    let threads = rayon::current_num_threads();
    if threads <= 1 || rows * width < PARALLEL_MIN_ELEMS || width < 32 {
        return f(0, a, b);
    }
    // multiples of 16 columns (whole cache lines of f32)
    let per = width.div_ceil(threads * 2).div_ceil(16) * 16;
    if b.is_empty() {
        a.par_chunks_mut(per).enumerate().for_each(|(i, a)| f(i * per, a, &mut []));
    } else {
        a.par_chunks_mut(per).zip(b.par_chunks_mut(per)).enumerate().for_each(|(i, (a, b))| f(i * per, a, b));
    }
}

/// `∂Z' = ∂A ⊙ mask·s ⊙ f'(Z')` in place of `∂A`, for a non-ReLU activation. `pre` holds `Z'`, or
/// `Ẑ` with batch norm (then `Z' = γ⊙Ẑ + β`, recomputed with the forward pass's operations).
fn activation_backward(act: Activation, mut d: ndarray::ArrayViewMut2<f32>, pre: ArrayView2<f32>, norm: Option<&Affine>, mask: Option<(Mask, usize)>) {
    let width = d.ncols();
    let d = d.as_slice_mut().expect("workspace rows are contiguous");
    let pre = pre.to_slice().expect("workspace rows are contiguous");
    let norm = norm.map(|n| pass::Norm { mean: &[], invstd: &[], gamma: slice1(&n.gamma), beta: slice1(&n.beta) });
    by_rows_ro(d, pre, width, |r0, d, pre| pass::backward(act, d, pre, width, norm, mask.map(|(m, row0)| (m, row0 + r0))))
}

/// Below this many elements an element-wise pass runs on one thread.
const PARALLEL_MIN_ELEMS: usize = 1 << 15;

/// Rows per block of a parallel pass over `len` elements of rows `width` wide (about four blocks
/// per thread), or `None` when the pass should run on one thread.
fn rows_per_block(len: usize, width: usize) -> Option<usize> {
    let threads = rayon::current_num_threads();
    if threads <= 1 || len < PARALLEL_MIN_ELEMS {
        return None;
    }
    Some((len / width.max(1)).div_ceil(threads * 4).max(1))
}

/// Runs `f(first row, rows of a, the same rows of b)` over blocks of whole rows of `a` (and of `b`,
/// unless it is empty), in parallel on the current rayon pool when the pass is large enough.
/// Each element is computed on its own, so the result does not depend on the cut.
fn by_rows(a: &mut [f32], b: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync) {
    use rayon::prelude::*;
    let Some(per) = rows_per_block(a.len(), width) else { return f(0, a, b) };
    let block = per * width;
    if b.is_empty() {
        a.par_chunks_mut(block).enumerate().for_each(|(i, a)| f(i * per, a, &mut []));
    } else {
        a.par_chunks_mut(block).zip(b.par_chunks_mut(block)).enumerate().for_each(|(i, (a, b))| f(i * per, a, b));
    }
}

/// [`by_rows`] with `b` read only.
fn by_rows_ro(a: &mut [f32], b: &[f32], width: usize, f: impl Fn(usize, &mut [f32], &[f32]) + Sync) {
    use rayon::prelude::*;
    let Some(per) = rows_per_block(a.len(), width) else { return f(0, a, b) };
    let block = per * width;
    a.par_chunks_mut(block).zip(b.par_chunks(block)).enumerate().for_each(|(i, (a, b))| f(i * per, a, b));
}

/// Batch norm backward over the whole batch, `d` = `∂Z'` in, `∂Z` out:
/// `∂β = Σ_r ∂Z'`, `∂γ = Σ_r ∂Z'⊙Ẑ`, `∂Z = γ·invstd·(∂Z' − ∂β/B − Ẑ⊙∂γ/B)` (the batch's `1/B` is
/// already in `d`, so these sums are the gradients of the mean loss). Sums in f64, rows in order.
fn batch_norm_backward(mut d: ndarray::ArrayViewMut2<f32>, xhat: ArrayView2<f32>, norm: &Affine, invstd: &Array1<f32>, g: &mut Affine) {
    let (rows, width) = d.dim();
    let d = d.as_slice_mut().expect("workspace rows are contiguous");
    let xhat = xhat.to_slice().expect("workspace rows are contiguous");
    {
        let d: &[f32] = d;
        by_cols(g.beta.as_slice_mut().unwrap(), g.gamma.as_slice_mut().unwrap(), width, rows, |j0, gb, gg| {
            let w = gb.len();
            let (mut sb, mut sg) = (vec![0.0f64; w], vec![0.0f64; w]);
            for r in 0..rows {
                let (dr, xr) = (&d[r * width + j0..r * width + j0 + w], &xhat[r * width + j0..r * width + j0 + w]);
                for j in 0..w {
                    sb[j] += dr[j] as f64;
                    sg[j] += dr[j] as f64 * xr[j] as f64;
                }
            }
            for j in 0..w {
                gb[j] = sb[j] as f32;
                gg[j] = sg[j] as f32;
            }
        });
    }
    let inv_b = 1.0 / rows as f32;
    let (gb, gg, gamma, invstd) = (slice1(&g.beta), slice1(&g.gamma), slice1(&norm.gamma), slice1(invstd));
    by_rows_ro(d, xhat, width, |_, d, xhat| {
        for (dr, xr) in d.chunks_exact_mut(width).zip(xhat.chunks_exact(width)) {
            for j in 0..width {
                let (mb, mg) = (gb[j] * inv_b, gg[j] * inv_b);
                dr[j] = gamma[j] * invstd[j] * (dr[j] - mb - xr[j] * mg);
            }
        }
    });
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

/// [`softmax_in_place`] on each row of `z` (`classes` wide), by blocks of rows on the rayon pool.
pub fn softmax_rows(z: &mut [f32], classes: usize) {
    by_rows(z, &mut [], classes, |_, z, _| z.chunks_exact_mut(classes).for_each(softmax_in_place));
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

/// A hidden layer's batch statistics from the last training pass (and scratch for evaluation).
#[derive(Debug)]
pub struct BatchStats {
    pub mean: Array1<f64>,
    /// biased variance
    pub var: Array1<f64>,
    pub mean32: Array1<f32>,
    pub invstd: Array1<f32>,
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
    /// per hidden layer, in training when needed: the pre-activation `Z` (non-ReLU activation) or
    /// `Ẑ` (batch norm); empty otherwise
    pub pre: Vec<Array2<f32>>,
    /// per hidden layer with batch norm
    pub stats: Vec<BatchStats>,
}

impl Workspace {
    pub fn new(sizes: &[usize], capacity: usize, with_deltas: bool) -> Result<Self> {
        let acts = sizes[1..].iter().map(|&n| try_zeros(capacity, n)).collect::<Result<_>>()?;
        let deltas = if with_deltas { sizes[1..].iter().map(|&n| try_zeros(capacity, n)).collect::<Result<_>>()? } else { Vec::new() };
        Ok(Workspace { capacity, x: try_zeros(capacity, sizes[0])?, acts, deltas, pre: Vec::new(), stats: Vec::new() })
    }

    /// Buffers for `net`: training (deltas, and pre-activations where the config needs them) or evaluation.
    pub fn for_net(net: &Mlp, capacity: usize, training: bool) -> Result<Self> {
        let mut ws = Workspace::new(&net.sizes, capacity, training)?;
        let hidden = &net.sizes[1..net.sizes.len() - 1];
        if training && net.config.keeps_pre() {
            ws.pre = hidden.iter().map(|&n| try_zeros(capacity, n)).collect::<Result<_>>()?;
        }
        if net.config.batch_norm {
            ws.stats = hidden
                .iter()
                .map(|&n| {
                    Ok(BatchStats {
                        mean: Array1::from(try_zeroed_vec(n)?),
                        var: Array1::from(try_zeroed_vec(n)?),
                        mean32: zeros1(n)?,
                        invstd: zeros1(n)?,
                    })
                })
                .collect::<Result<_>>()?;
        }
        Ok(ws)
    }

    /// f32 values a workspace for `net` holds per row (for memory checks before allocating).
    pub fn floats_per_row(net: &Mlp, training: bool) -> usize {
        let widths: usize = net.sizes.iter().sum();
        let hidden: usize = net.sizes[1..net.sizes.len() - 1].iter().sum();
        let pre = if training && net.config.keeps_pre() { hidden } else { 0 };
        if training { 2 * widths + pre } else { widths }
    }

    /// The logits left by the last forward pass.
    pub fn logits(&self, rows: usize) -> ArrayView2<'_, f32> {
        self.acts.last().unwrap().slice(s![..rows, ..])
    }
}

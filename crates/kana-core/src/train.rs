//! The loops: one training epoch, evaluation and prediction, each a single call that owns its
//! thread pool, reuses its buffers, reports progress and stops between batches when asked.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::augment::{self, Augment};
use crate::dropout::Mask;
use crate::mlp::{argmax, check_sizes, layers_from_slices, log_sum_exp, softmax_rows, try_zeroed_vec, Grads, Mlp, NetConfig, TrainPass, Workspace};
use crate::optim::{self, Optimizer, OptimizerState};
use crate::rng::Rng;
use ndarray::{s, Array2};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Rows pushed through the network at once. A batch larger than this (full-batch gradient descent)
/// is processed in chunks whose gradients are summed, so memory does not grow with the data set.
/// With batch norm a batch is never cut (its statistics are over the whole batch), so the
/// workspace holds the whole batch — for full-batch gradient descent, the whole data set.
pub const CHUNK_ROWS: usize = 2048;

/// Shared between the caller and a running loop: a cancel flag checked between batches, and a
/// progress counter (steps done of total) that another thread may read at any time.
#[derive(Debug, Default)]
pub struct Control {
    cancel: AtomicBool,
    pub(crate) done: AtomicU64,
    total: AtomicU64,
    /// running mean loss and accuracy of the current epoch (f64 bits), for progress displays
    loss: AtomicU64,
    accuracy: AtomicU64,
}

impl Control {
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
    /// Ready for a new operation: no cancel request, no progress (so a progress read before the
    /// worker starts does not show the previous call's counters).
    pub fn reset(&self) {
        self.cancel.store(false, Ordering::Relaxed);
        self.begin(0);
    }
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
    /// (steps done, steps in the current call)
    pub fn progress(&self) -> (u64, u64) {
        (self.done.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed))
    }
    /// Running mean loss and accuracy of the epoch in progress (NaN outside training).
    pub fn running(&self) -> (f64, f64) {
        (f64::from_bits(self.loss.load(Ordering::Relaxed)), f64::from_bits(self.accuracy.load(Ordering::Relaxed)))
    }
    fn begin(&self, total: usize) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total as u64, Ordering::Relaxed);
        self.report(f64::NAN, f64::NAN);
    }
    fn report(&self, loss: f64, accuracy: f64) {
        self.loss.store(loss.to_bits(), Ordering::Relaxed);
        self.accuracy.store(accuracy.to_bits(), Ordering::Relaxed);
    }
    fn tick(&self) -> Result<()> {
        self.done.fetch_add(1, Ordering::Relaxed);
        if self.is_cancelled() { Err(Error::aborted()) } else { Ok(()) }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochOptions {
    pub optimizer: Optimizer,
    pub lr: f32,
    pub l2: f32,
    /// Samples per step; `usize::MAX` (or anything ≥ the data set) means full-batch gradient descent.
    pub batch_size: usize,
    /// ε in [0, 1): targets `(1 − ε)·onehot + ε/K` in the training gradient (reported losses stay
    /// the plain cross-entropy).
    pub label_smoothing: f32,
    /// Clip the gradients to this global L2 norm before the step (`None`: no clipping).
    pub clip_norm: Option<f32>,
    /// Random affine / elastic augmentation of every training batch (`None`: the images as they are).
    pub augment: Option<Augment>,
}

impl Default for EpochOptions {
    /// Plain SGD, lr 0.1, full batch, none of the extras.
    fn default() -> Self {
        EpochOptions { optimizer: Optimizer::Sgd, lr: 0.1, l2: 0.0, batch_size: usize::MAX, label_smoothing: 0.0, clip_norm: None, augment: None }
    }
}

impl EpochOptions {
    pub fn validate(&self) -> Result<()> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::range(format!("lr must be a positive finite number, got {}", self.lr)));
        }
        if !(self.l2 >= 0.0 && self.l2.is_finite()) {
            return Err(Error::range(format!("l2 must be a finite number ≥ 0, got {}", self.l2)));
        }
        if self.batch_size == 0 {
            return Err(Error::range("batchSize must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(Error::range(format!("labelSmoothing must be in [0, 1), got {}", self.label_smoothing)));
        }
        if let Some(c) = self.clip_norm {
            if !(c > 0.0 && c.is_finite()) {
                return Err(Error::range(format!("clipNorm must be a positive finite number, got {c}")));
            }
        }
        if let Some(a) = &self.augment {
            a.validate()?;
        }
        self.optimizer.validate()
    }
}

/// Mean cross-entropy and accuracy over the epoch's batches, each measured before its update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    pub loss: f64,
    pub accuracy: f64,
    pub steps: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    /// `classes × classes`, row = true class, column = predicted class.
    pub confusion: Vec<u32>,
}

/// A network with everything needed to train it: optimiser state, generator, buffers, threads.
pub struct Trainer {
    pub net: Mlp,
    pub optimizer_state: OptimizerState,
    pub rng: Rng,
    /// The seed the model was created with: it keys the dropout masks.
    pub seed: u64,
    threads: usize,
    pool: rayon::ThreadPool,
    grads: Grads,
    /// this step's dropout mask of each hidden layer
    masks: Vec<Option<Mask>>,
    train_ws: Option<Workspace>,
    eval_ws: Option<Workspace>,
    order: Vec<u32>,
    labels: Vec<u32>,
    /// An epoch stopped part-way, to be continued by the next call to [`Trainer::epoch`].
    pub partial: Option<PartialEpoch>,
}

/// Where an aborted epoch stopped: its permutation, the next step, and the sums so far.
#[derive(Clone, Debug, PartialEq)]
pub struct PartialEpoch {
    pub order: Vec<u32>,
    pub batch_size: usize,
    pub next_step: usize,
    pub loss: f64,
    pub correct: usize,
}

impl PartialEpoch {
    /// What can be checked without its data set: the order is a permutation of `0..order.len()`,
    /// the step lies inside the epoch, the sums fit the samples seen. (Whether it fits the data
    /// and batch size of the next epoch is decided then, in [`Trainer::epoch`].)
    pub fn validate(&self) -> Result<()> {
        let n = self.order.len();
        let mut seen = vec![0u64; n.div_ceil(64)];
        for (i, &x) in self.order.iter().enumerate() {
            let x = x as usize;
            if x >= n || seen[x / 64] & (1 << (x % 64)) != 0 {
                let what = if x >= n { "out of range" } else { "repeated" };
                return Err(Error::range(format!("state.partialEpoch.order must be a permutation of 0..{n}, but order[{i}] = {x} is {what}")));
            }
            seen[x / 64] |= 1 << (x % 64);
        }
        if self.batch_size == 0 {
            return Err(Error::range("state.partialEpoch.batchSize must be at least 1"));
        }
        let samples = self.next_step.saturating_mul(self.batch_size).min(n);
        if self.next_step == 0 || samples >= n {
            return Err(Error::range(format!(
                "state.partialEpoch.nextStep must lie inside the epoch (1..{}), got {}",
                n.div_ceil(self.batch_size),
                self.next_step
            )));
        }
        if self.loss < 0.0 || self.correct > samples {
            return Err(Error::range(format!(
                "state.partialEpoch: loss {} and correct {} cannot be the sums over {samples} samples",
                self.loss, self.correct
            )));
        }
        Ok(())
    }
}

impl Trainer {
    /// A He-initialised network; `seed` fixes the weights and every later shuffle.
    pub fn new(sizes: &[usize], seed: u64, threads: usize) -> Result<Self> {
        check_sizes(sizes)?;
        Self::with_config(sizes, NetConfig::plain(sizes), seed, threads)
    }

    /// As [`Trainer::new`], with the given activation, dropout and batch norm.
    pub fn with_config(sizes: &[usize], config: NetConfig, seed: u64, threads: usize) -> Result<Self> {
        check_sizes(sizes)?;
        let mut rng = Rng::new(seed);
        let net = Mlp::with_config(sizes, config, &mut rng)?;
        let mut t = Self::with_net(net, rng, threads)?;
        t.seed = seed;
        Ok(t)
    }

    pub fn with_net(net: Mlp, rng: Rng, threads: usize) -> Result<Self> {
        if threads == 0 || threads > 1024 {
            return Err(Error::range(format!("threads must be in 1..=1024, got {threads}")));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("kana-worker-{i}"))
            .build()
            .map_err(|e| Error::other(format!("could not start {threads} worker threads: {e}")))?;
        let grads = net.zero_grads()?;
        let masks = vec![None; net.sizes.len() - 2];
        Ok(Trainer { net, optimizer_state: OptimizerState::default(), rng, seed: 0, threads, pool, grads, masks, train_ws: None, eval_ws: None, order: Vec::new(), labels: Vec::new(), partial: None })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    fn check_data(&self, data: &Dataset) -> Result<()> {
        if data.features() != self.net.inputs() {
            return Err(Error::range(format!("images have {} features per sample but the network takes {}", data.features(), self.net.inputs())));
        }
        if data.is_empty() {
            return Err(Error::range("the data set is empty"));
        }
        Ok(())
    }

    /// One pass over `data`: shuffled mini-batches (or the whole set as one batch), one optimiser
    /// step per batch.
    pub fn epoch(&mut self, data: &Dataset, opts: &EpochOptions, control: &Control) -> Result<EpochStats> {
        self.check_options(opts)?;
        self.check_data(data)?;
        if opts.augment.is_some() {
            Augment::side(data.features())?;
        }
        let labels = data.labels_for(self.net.classes())?;
        let n = data.len();
        let batch = opts.batch_size.min(n);
        let chunk = self.chunk_rows(batch);
        self.prepare_train_ws(chunk)?;
        self.optimizer_state.prepare(&self.net, opts.optimizer)?;
        // An epoch stopped part-way (abort) is continued where it stopped, with its permutation and
        // running sums, so an interrupted and resumed run takes exactly the steps of an
        // uninterrupted one. Otherwise: a fresh permutation every epoch (as PyTorch's shuffling
        // DataLoader does); a full batch needs none.
        let (first_step, mut loss, mut correct) = match self.partial.take() {
            Some(p) if p.order.len() == n && p.batch_size == batch && p.validate().is_ok() => {
                self.order = p.order;
                (p.next_step, p.loss, p.correct)
            }
            _ => {
                self.order.clear();
                self.order.extend(0..n as u32);
                if batch < n {
                    self.rng.shuffle(&mut self.order);
                }
                (0, 0.0, 0)
            }
        };
        let steps = n.div_ceil(batch);
        control.begin(steps);
        control.done.store(first_step as u64, Ordering::Relaxed);
        let Trainer { net, optimizer_state, pool, grads, masks, train_ws, order, labels: ybuf, seed, .. } = self;
        let ws = train_ws.as_mut().unwrap();
        let mut stopped_after = None;
        let outcome = pool.install(|| with_workers_held(batch <= HOLD_MAX_BATCH, || -> Result<()> {
            for (s, idx) in order.chunks(batch).enumerate().skip(first_step) {
                set_masks(masks, net, *seed, optimizer_state.step);
                let aug = opts.augment.as_ref().map(|a| (a, *seed, optimizer_state.step));
                let (batch_loss, batch_correct) = batch_gradients(net, ws, data, labels, idx, chunk, masks, opts.label_smoothing, aug, ybuf, grads);
                if !batch_loss.is_finite() {
                    return Err(Error::diverged(format!(
                        "training diverged at step {} of {steps}: the loss became {}; the learning rate ({:?}) is probably too high",
                        s + 1, batch_loss, opts.lr
                    )));
                }
                loss += batch_loss;
                correct += batch_correct;
                let seen = (s * batch + idx.len()) as f64;
                control.report(loss / seen, correct as f64 / seen);
                if net.has_batch_norm() {
                    net.update_running(ws, idx.len());
                }
                if let Some(c) = opts.clip_norm {
                    optim::clip(grads, c);
                }
                optim::step(net, grads, opts.optimizer, optimizer_state, opts.lr, opts.l2);
                if s + 1 < steps && control.tick().is_err() {
                    stopped_after = Some(s + 1);
                    return Err(Error::aborted());
                }
            }
            control.tick().ok();
            Ok(())
        }));
        if let Some(next_step) = stopped_after {
            self.partial = Some(PartialEpoch { order: std::mem::take(&mut self.order), batch_size: batch, next_step, loss, correct });
        }
        outcome?;
        Ok(EpochStats { loss: loss / n as f64, accuracy: correct as f64 / n as f64, steps })
    }

    /// The options on their own and against this network (batch norm refuses batches of 1).
    pub fn check_options(&self, opts: &EpochOptions) -> Result<()> {
        opts.validate()?;
        if self.net.has_batch_norm() && opts.batch_size == 1 {
            return Err(Error::range("batchSize 1 cannot be used with batch norm (a batch of one sample has no variance)"));
        }
        Ok(())
    }

    /// Rows pushed through at once for batches of `batch`: the whole batch with batch norm.
    pub fn chunk_rows(&self, batch: usize) -> usize {
        if self.net.has_batch_norm() { batch } else { batch.min(CHUNK_ROWS) }
    }

    fn prepare_train_ws(&mut self, chunk: usize) -> Result<()> {
        if self.train_ws.as_ref().map(|w| w.capacity) != Some(chunk) {
            self.train_ws = None; // release the old one before allocating
            self.train_ws = Some(Workspace::for_net(&self.net, chunk, true)?);
            self.labels = try_zeroed_vec(chunk)?;
        }
        Ok(())
    }

    /// The gradient of the training loss over all of `data` as one batch, rows in order, at the
    /// current state (dropout masks of the current step, batch statistics of this batch, label
    /// smoothing from `opts`), before clipping and without the L2 term; nothing is updated.
    /// Tensors in the order of [`crate::mlp::slot`]. Returns (gradients, mean cross-entropy).
    /// For tests and diagnostics.
    pub fn gradients(&mut self, data: &Dataset, opts: &EpochOptions) -> Result<(Vec<Vec<f32>>, f64)> {
        opts.validate()?;
        self.check_data(data)?;
        if opts.augment.is_some() {
            Augment::side(data.features())?;
        }
        let labels = data.labels_for(self.net.classes())?;
        let n = data.len();
        let chunk = self.chunk_rows(n);
        self.prepare_train_ws(chunk)?;
        let idx: Vec<u32> = (0..n as u32).collect();
        let Trainer { net, optimizer_state, pool, grads, masks, train_ws, labels: ybuf, seed, .. } = self;
        let ws = train_ws.as_mut().unwrap();
        let (loss, _) = pool.install(|| {
            set_masks(masks, net, *seed, optimizer_state.step);
            let aug = opts.augment.as_ref().map(|a| (a, *seed, optimizer_state.step));
            batch_gradients(net, ws, data, labels, &idx, chunk, masks, opts.label_smoothing, aug, ybuf, grads)
        });
        Ok(((0..grads.count()).map(|i| grads.tensor(i).to_vec()).collect(), loss / n as f64))
    }

    /// Runs the network over `data` in order, `CHUNK_ROWS` at a time, handing each chunk's logits
    /// (and the index of its first row) to `visit`.
    fn for_each_logits(&mut self, data: &Dataset, control: &Control, mut visit: impl FnMut(usize, &mut Array2<f32>, usize) + Send) -> Result<()> {
        self.check_data(data)?;
        let n = data.len();
        let chunk = n.min(CHUNK_ROWS);
        if self.eval_ws.as_ref().map(|w| w.capacity) != Some(chunk) {
            self.eval_ws = None;
            self.eval_ws = Some(Workspace::for_net(&self.net, chunk, false)?);
        }
        control.begin(n.div_ceil(chunk));
        let Trainer { net, pool, eval_ws, .. } = self;
        let ws = eval_ws.as_mut().unwrap();
        pool.install(|| -> Result<()> {
            for start in (0..n).step_by(chunk) {
                let rows = chunk.min(n - start);
                data.gather_range(start, rows, ws.x.slice_mut(s![..rows, ..]));
                net.forward(ws, rows);
                visit(start, ws.acts.last_mut().unwrap(), rows);
                control.tick()?;
            }
            Ok(())
        })
    }

    /// Mean cross-entropy, accuracy and confusion matrix over a labelled data set.
    pub fn evaluate(&mut self, data: &Dataset, control: &Control) -> Result<Evaluation> {
        let k = self.net.classes();
        let labels = data.labels_for(k)?;
        let mut confusion = try_zeroed_vec::<u32>(k.saturating_mul(k))?;
        let (mut loss, mut correct) = (0.0f64, 0usize);
        self.for_each_logits(data, control, |start, logits, rows| {
            for (r, z) in logits.rows().into_iter().take(rows).enumerate() {
                let z = z.as_slice().unwrap();
                let y = labels[start + r] as usize;
                let pred = argmax(z);
                loss += (log_sum_exp(z) - z[y]) as f64;
                correct += (pred == y) as usize;
                confusion[y * k + pred] += 1;
            }
        })?;
        let n = data.len() as f64;
        Ok(Evaluation { loss: loss / n, accuracy: correct as f64 / n, confusion })
    }

    /// Softmax probabilities, `n × classes` row-major.
    pub fn predict_proba(&mut self, data: &Dataset, control: &Control) -> Result<Vec<f32>> {
        let k = self.net.classes();
        let mut out = try_zeroed_vec::<f32>(data.len().saturating_mul(k))?;
        self.for_each_logits(data, control, |start, logits, rows| {
            let z = &mut logits.as_slice_mut().expect("workspace is contiguous")[..rows * k];
            softmax_rows(z, k);
            out[start * k..(start + rows) * k].copy_from_slice(z);
        })?;
        Ok(out)
    }

    /// Replaces every weight and bias (`[W_1, b_1, W_2, b_2, …]` in the layout of [`Layer`]),
    /// after checking every length and that every value is finite. Optimiser state is kept.
    pub fn set_params(&mut self, params: &[&[f32]]) -> Result<()> {
        self.net.layers = layers_from_slices(&self.net.sizes, params, "weights")?;
        Ok(())
    }

    /// Restores what besides the weights decides the rest of a run (for checkpoints): Adam's step
    /// count and moments (`m`, `v` laid out like the weights, or both empty before any Adam step)
    /// and the shuffling generator's state.
    /// `partial` is an epoch stopped part-way (see [`PartialEpoch`]); it is used by the next epoch
    /// only if it fits the data and batch size of that call.
    pub fn set_training_state(&mut self, step: u64, m: &[&[f32]], v: &[&[f32]], rng_state: u64, partial: Option<PartialEpoch>) -> Result<()> {
        if m.is_empty() && !v.is_empty() {
            return Err(Error::range("state.v is given without state.m"));
        }
        let (m, v) = (self.tensors_from_slices(m, "m")?, self.tensors_from_slices(v, "v")?);
        if let Some(p) = &partial {
            p.validate()?;
        }
        self.optimizer_state = OptimizerState { step, m, v };
        self.rng = Rng::new(rng_state);
        self.partial = partial;
        Ok(())
    }

    /// `[W_1, b_1, W_2, b_2, …]`, each row-major.
    pub fn params(&self) -> Vec<&[f32]> {
        self.net.layers.iter().flat_map(|l| [l.w.as_slice().unwrap(), l.b.as_slice().unwrap()]).collect()
    }

    /// Optimiser arrays laid out like the parameter tensors (see [`crate::mlp::slot`]): empty, or
    /// one array of the right length per tensor, every value finite.
    fn tensors_from_slices(&self, arrays: &[&[f32]], what: &str) -> Result<Vec<Vec<f32>>> {
        if arrays.is_empty() {
            return Ok(Vec::new());
        }
        let count = self.net.tensor_count();
        let layout = if self.net.config.batch_norm { "W, b (and γ, β for hidden layers) per layer" } else { "W and b for each layer" };
        if arrays.len() != count {
            return Err(Error::range(format!("{what} must be empty or hold {count} arrays ({layout}), got {}", arrays.len())));
        }
        let mut out = Vec::with_capacity(count);
        for (i, a) in arrays.iter().enumerate() {
            let len = self.net.tensor(i).len();
            let (l, kind) = crate::mlp::slot(self.net.layers.len(), self.net.config.batch_norm, i);
            let name = match kind { crate::mlp::Kind::Weight => "W", crate::mlp::Kind::Bias => "b", crate::mlp::Kind::Gamma => "γ", crate::mlp::Kind::Beta => "β" };
            if a.len() != len {
                return Err(Error::range(format!("{what}: layer {} {name} must have {len} values, got {}", l + 1, a.len())));
            }
            if let Some(j) = a.iter().position(|v| !v.is_finite()) {
                return Err(Error::range(format!("{what}: layer {} {name}[{j}] is {}, values must be finite", l + 1, a[j])));
            }
            let mut v = try_zeroed_vec(len)?;
            v.copy_from_slice(a);
            out.push(v);
        }
        Ok(out)
    }

    /// Batch norm's tensors, for each hidden layer `[γ, β, running mean, running variance]`
    /// (empty without batch norm).
    pub fn norm_state(&self) -> Vec<&[f32]> {
        self.net
            .norms
            .iter()
            .zip(&self.net.running)
            .flat_map(|(a, r)| [a.gamma.as_slice().unwrap(), a.beta.as_slice().unwrap(), r.mean.as_slice().unwrap(), r.var.as_slice().unwrap()])
            .collect()
    }

    /// Replaces batch norm's tensors (layout of [`Trainer::norm_state`]) after checking every
    /// length, that every value is finite and every variance positive; nothing changes on error.
    pub fn set_norm_state(&mut self, arrays: &[&[f32]]) -> Result<()> {
        let hidden = &self.net.sizes[1..self.net.sizes.len() - 1];
        let expected = 4 * self.net.norms.len();
        if arrays.len() != expected {
            let why = if self.net.has_batch_norm() { format!("γ, β, running mean and variance for each of {} hidden layers", hidden.len()) } else { "the model has no batch norm".to_string() };
            return Err(Error::range(format!("norm state must hold {expected} arrays ({why}), got {}", arrays.len())));
        }
        for (i, a) in arrays.iter().enumerate() {
            let (h, which) = (i / 4, ["gamma", "beta", "runningMean", "runningVar"][i % 4]);
            let n = hidden[h];
            if a.len() != n {
                return Err(Error::range(format!("norm state: layer {} {which} must have {n} values, got {}", h + 1, a.len())));
            }
            if let Some(j) = a.iter().position(|v| !v.is_finite()) {
                return Err(Error::range(format!("norm state: layer {} {which}[{j}] is {}, values must be finite", h + 1, a[j])));
            }
            if which == "runningVar" {
                if let Some(j) = a.iter().position(|&v| v <= 0.0) {
                    return Err(Error::range(format!("norm state: layer {} runningVar[{j}] is {}, variances must be > 0", h + 1, a[j])));
                }
            }
        }
        for (h, (norm, run)) in self.net.norms.iter_mut().zip(&mut self.net.running).enumerate() {
            norm.gamma.as_slice_mut().unwrap().copy_from_slice(arrays[4 * h]);
            norm.beta.as_slice_mut().unwrap().copy_from_slice(arrays[4 * h + 1]);
            run.mean.as_slice_mut().unwrap().copy_from_slice(arrays[4 * h + 2]);
            run.var.as_slice_mut().unwrap().copy_from_slice(arrays[4 * h + 3]);
        }
        Ok(())
    }

    /// Bytes of workspace an epoch (`training`) or an evaluation over `n` rows would allocate, for
    /// checks before starting.
    pub fn workspace_bytes(&self, batch_size: usize, n: usize, training: bool) -> u128 {
        let rows = if training { self.chunk_rows(batch_size.min(n)) } else { n.min(CHUNK_ROWS) };
        rows as u128 * Workspace::floats_per_row(&self.net, training) as u128 * 4
    }
}

/// Runs `f` on this pool thread while one other worker of the pool keeps looking for work
/// (stealing the halves of `f`'s splits) until `f` returns. Without it, rayon's idle worker goes
/// to sleep after a few dozen `sched_yield`s — sooner than a batch-32 step's serial stretches —
/// and each of the step's parallel regions then waits for it to be woken. The holding worker
/// yields its core whenever there is nothing to steal, so on a busy machine others still run.
/// Results do not depend on it: which thread runs a piece never changes what the piece computes.
fn with_workers_held<R: Send>(hold: bool, f: impl FnOnce() -> R + Send) -> R {
    if !hold || rayon::current_num_threads() < 2 || !hold_enabled() {
        return f();
    }
    let done = AtomicBool::new(false);
    let me = rayon::current_thread_index();
    let (r, ()) = rayon::join(
        || {
            // set even if f panics, so the helper ends and join can propagate the panic
            struct Done<'a>(&'a AtomicBool);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Release);
                }
            }
            let _done = Done(&done);
            f()
        },
        || {
            // Exactly one helper job exists; if this thread ends up running it (join takes it
            // back when nobody stole it), f is already finished or this must not wait for it.
            if rayon::current_thread_index() == me {
                return;
            }
            while !done.load(Ordering::Acquire) {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::thread::yield_now();
                }
            }
        },
    );
    r
}

/// Batches up to this size hold a worker: their steps are short and cut into small regions. At
/// batch 512, on a machine giving this process about one core, holding cost 3–8% of the wall
/// (the helper competes for the core), so larger batches leave rayon's own idling alone.
const HOLD_MAX_BATCH: usize = 64;

/// `KANA_HOLD_WORKER=0` turns the holding off (a measuring switch; results are the same).
fn hold_enabled() -> bool {
    static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V.get_or_init(|| std::env::var("KANA_HOLD_WORKER").map_or(true, |s| s != "0"))
}

/// This step's dropout masks (none where the rate is 0).
fn set_masks(masks: &mut [Option<Mask>], net: &Mlp, seed: u64, step: u64) {
    for (h, (m, &p)) in masks.iter_mut().zip(&net.config.dropout).enumerate() {
        *m = if p > 0.0 { Some(Mask::new(seed, step, h + 1, p)) } else { None };
    }
}

/// Forward and backward over one batch (`idx` rows of `data`), in chunks of `chunk` rows whose
/// gradients are summed into `grads`. Returns (Σ cross-entropy, number correct).
#[allow(clippy::too_many_arguments)]
fn batch_gradients(
    net: &Mlp,
    ws: &mut Workspace,
    data: &Dataset,
    labels: &[u32],
    idx: &[u32],
    chunk: usize,
    masks: &[Option<Mask>],
    label_smoothing: f32,
    augment: Option<(&Augment, u64, u64)>,
    ybuf: &mut [u32],
    grads: &mut Grads,
) -> (f64, usize) {
    let scale = 1.0 / idx.len() as f32;
    let (mut loss, mut correct) = (0.0, 0);
    for (c, cidx) in idx.chunks(chunk).enumerate() {
        let rows = cidx.len();
        match augment {
            // (the data's features were checked to be square when the epoch began)
            Some((a, seed, step)) => {
                let out = ws.x.as_slice_mut().expect("workspace is contiguous");
                augment::gather(data.pixels(), data.features(), cidx, c * chunk, a, seed, step, out).expect("square images");
            }
            None => data.gather(cidx, ws.x.slice_mut(s![..rows, ..])),
        }
        for (y, &i) in ybuf.iter_mut().zip(cidx) {
            *y = labels[i as usize];
        }
        let pass = TrainPass { masks, row0: c * chunk, label_smoothing };
        net.forward_train(ws, rows, &pass);
        let (l, k) = net.backward(ws, rows, &ybuf[..rows], scale, grads, c > 0, &pass);
        loss += l;
        correct += k;
    }
    (loss, correct)
}

//! The Node-API binding of kana-core: argument checking and marshalling only, no numerics.
//!
//! Models and data sets live in Rust and reach JavaScript as opaque externals. A model sits in a
//! mutex-guarded slot; an asynchronous call *takes* it out for the duration of the work and puts
//! it back when done, so a second call on a busy model, or any call on a freed one, gets a clear
//! error instead of racing. The TypeScript layer (`src/mlp.ts`) wraps these functions in classes.

mod js;
mod napi;

use js::{call, error, range_error, spawn, type_error, Env, JsError, JsResult, Task, TypedArray};
use kana_core::{Activation, Augment, Control, Elastic, Dataset, EpochOptions, EpochStats, Evaluation, NetConfig, Optimizer, Trainer};
use napi::*;
use std::ffi::c_void;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

// ---------------------------------------------------------------------------------------------
// Handles: a tag first, so an external of the wrong kind is recognised before it is used.

/// The longest JavaScript array read (layer sizes, per-layer arrays). Besides bounding the work, it
/// keeps kana-core's parameter count from wrapping around (it is not checked in a release build):
/// 2^24 − 15 sizes of 2^20 and a last of 16 gave 2^64 + 16 = "16 parameters" and then a 4.4 TB
/// allocation; 2^21 sizes of at most 2^20 give at most 2^61.
const MAX_ARRAYS: u32 = 1 << 21;

const MODEL_TAG: u64 = u64::from_le_bytes(*b"kanaMODL");
const DATASET_TAG: u64 = u64::from_le_bytes(*b"kanaDATA");
const PIXELS_TAG: u64 = u64::from_le_bytes(*b"kanaPIXL");

#[repr(C)]
struct Handle<T> {
    tag: u64,
    inner: Arc<T>,
}

fn new_handle<T: 'static>(env: Env, tag: u64, inner: Arc<T>) -> JsResult<napi_value> {
    env.external(Handle { tag, inner })
}

fn get_handle<T>(env: Env, v: napi_value, name: &str, tag: u64) -> JsResult<Arc<T>> {
    let what = match tag {
        MODEL_TAG => "model",
        DATASET_TAG => "dataset",
        _ => "pixel buffer",
    };
    let p = env.get_external(v, name).map_err(|_| type_error(format!("{name} must be a kana-native {what} handle")))?;
    // SAFETY: every external this addon creates starts with a u64 tag (#[repr(C)] Handle).
    if p.is_null() || unsafe { *(p as *const u64) } != tag {
        return Err(type_error(format!("{name} must be a kana-native {what} handle")));
    }
    Ok(unsafe { &*(p as *const Handle<T>) }.inner.clone())
}

enum Slot {
    Ready(Box<Trainer>),
    Busy(&'static str),
    Freed,
}

struct ModelCell {
    slot: Mutex<Slot>,
    control: Control,
}

impl ModelCell {
    /// The slot, locked. Only the JavaScript thread ever locks it, so a slot that is already locked
    /// means JavaScript re-entered this addon while one of its calls held the lock (a getter or a
    /// setter on a prototype, run by a Node-API call): an error, where blocking would deadlock.
    fn lock(&self, op: &str) -> JsResult<MutexGuard<'_, Slot>> {
        match self.slot.try_lock() {
            Ok(guard) => Ok(guard),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(error(format!("cannot {op}: the model is in use by a call that re-entered JavaScript"))),
        }
    }

    /// Takes the trainer out for an asynchronous operation `op`.
    fn take(&self, op: &'static str) -> JsResult<Box<Trainer>> {
        let mut slot = self.lock(op)?;
        match std::mem::replace(&mut *slot, Slot::Busy(op)) {
            Slot::Ready(t) => Ok(t),
            other => {
                let e = Self::unavailable(&other, op);
                *slot = other;
                Err(e)
            }
        }
    }

    fn put_back(&self, trainer: Box<Trainer>) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Slot::Ready(trainer);
    }

    /// Synchronous access, refused while an asynchronous operation holds the model.
    fn with<R>(&self, op: &'static str, f: impl FnOnce(&mut Trainer) -> JsResult<R>) -> JsResult<R> {
        let mut slot = self.lock(op)?;
        match &mut *slot {
            Slot::Ready(t) => f(t),
            other => Err(Self::unavailable(other, op)),
        }
    }

    fn unavailable(slot: &Slot, op: &str) -> JsError {
        match slot {
            Slot::Busy(running) => error(format!("cannot {op}: the model is busy with {running}; await it (or abort it) first")),
            Slot::Freed => error(format!("cannot {op}: the model was freed")),
            Slot::Ready(_) => unreachable!(),
        }
    }
}

fn model(env: Env, v: napi_value) -> JsResult<Arc<ModelCell>> {
    get_handle(env, v, "model", MODEL_TAG)
}

fn dataset(env: Env, v: napi_value) -> JsResult<Arc<Dataset>> {
    get_handle(env, v, "dataset", DATASET_TAG)
}

// ---------------------------------------------------------------------------------------------
// Models

/// The architecture options of createModel: { activation, leakySlope, dropout, batchNorm,
/// bnMomentum, bnEps }, all optional (undefined or null: ReLU, no dropout, no batch norm).
fn net_config(env: Env, o: napi_value, sizes: &[usize]) -> JsResult<NetConfig> {
    let mut config = NetConfig::plain(sizes);
    if matches!(env.type_of(o)?, NAPI_UNDEFINED | NAPI_NULL) {
        return Ok(config);
    }
    env.expect_object(o, "options")?;
    let num = |k: &str| -> JsResult<Option<f64>> { env.get_field(o, k)?.map(|v| env.get_number(v, &format!("options.{k}"))).transpose() };
    let activation = env.get_field(o, "activation")?.map(|v| env.get_string(v, "options.activation")).transpose()?;
    config.activation = Activation::parse(activation.as_deref().unwrap_or("relu"), num("leakySlope")?)?;
    let hidden = sizes.len() - 2;
    if let Some(v) = env.get_field(o, "dropout")? {
        let mut is_array = false;
        check_status(unsafe { napi_is_array(env.0, v, &mut is_array) })?;
        config.dropout = if is_array {
            let items = env.get_array(v, "options.dropout", MAX_ARRAYS)?;
            if items.len() != hidden {
                return Err(range_error(format!("dropout must list one rate per hidden layer ({hidden}), got {}", items.len())));
            }
            items.iter().enumerate().map(|(i, &x)| env.get_number(x, &format!("options.dropout[{i}]"))).collect::<JsResult<_>>()?
        } else {
            let p = env.get_number(v, "options.dropout")?;
            kana_core::dropout::check_rate(p, "dropout")?;
            vec![p; hidden]
        };
    }
    if let Some(v) = env.get_field(o, "batchNorm")? {
        config.batch_norm = env.get_bool(v, "options.batchNorm")?;
    }
    for (k, slot) in [("bnMomentum", &mut config.bn_momentum), ("bnEps", &mut config.bn_eps)] {
        if let Some(x) = num(k)? {
            if !config.batch_norm {
                return Err(range_error(format!("{k} is only used with batchNorm: true")));
            }
            *slot = x;
        }
    }
    config.validate(sizes)?;
    Ok(config)
}

fn check_status(status: napi_status) -> JsResult<()> {
    if status == NAPI_OK { Ok(()) } else { Err(JsError::Pending) }
}

/// createModel(layers: number[], seed: number, threads: number, options?): Model
unsafe extern "C" fn create_model(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [layers, seed, threads, options]| {
        let sizes = env
            .get_array(layers, "layers", MAX_ARRAYS)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| env.get_integer(v, &format!("layers[{i}]"), 1.0, kana_core::mlp::MAX_WIDTH as f64).map(|x| x as usize))
            .collect::<JsResult<Vec<_>>>()?;
        let seed = env.get_integer(seed, "seed", 0.0, 9_007_199_254_740_991.0)? as u64;
        let threads = env.get_integer(threads, "threads", 1.0, 1024.0)? as usize;
        kana_core::mlp::check_sizes(&sizes)?;
        let config = net_config(env, options, &sizes)?;
        let params: usize = sizes.windows(2).map(|p| p[0] * p[1] + p[1]).sum();
        // The engine allocates infallibly (a failure aborts the process): ask first for the
        // parameters four times over (weights, gradients, Adam's two moments), released at once.
        let mut probe: Vec<f32> = Vec::new();
        if probe.try_reserve_exact(params * 4).is_err() {
            return Err(range_error(format!("layers {sizes:?}: cannot allocate the {} bytes of native memory that {params} parameters need (weights, gradients and Adam's two moments)", params * 16)));
        }
        drop(probe);
        let trainer = Trainer::with_config(&sizes, config, seed, threads)?;
        let cell = ModelCell { slot: Mutex::new(Slot::Ready(Box::new(trainer))), control: Control::default() };
        new_handle(env, MODEL_TAG, Arc::new(cell))
    })
}

/// freeModel(model): releases the weights now instead of at garbage collection.
unsafe extern "C" fn free_model(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [m]| {
        let cell = model(env, m)?;
        let mut slot = cell.lock("free the model")?;
        if let Slot::Busy(op) = &*slot {
            return Err(error(format!("cannot free the model while it is busy with {op}; await it (or abort it) first")));
        }
        *slot = Slot::Freed;
        env.undefined()
    })
}

/// modelInfo(model): { layers, threads, steps, params, activation, leakySlope, dropout, batchNorm,
/// bnMomentum, bnEps }
unsafe extern "C" fn model_info(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [m]| {
        model(env, m)?.with("read the model", |t| {
            let layers = t.net.sizes.iter().map(|&n| env.number(n as f64)).collect::<JsResult<Vec<_>>>()?;
            let c = &t.net.config;
            let dropout = c.dropout.iter().map(|&p| env.number(p)).collect::<JsResult<Vec<_>>>()?;
            let slope = match c.activation {
                Activation::LeakyRelu { slope } => env.number(slope as f64)?,
                _ => env.undefined()?,
            };
            env.object(&[
                ("layers", env.array(&layers)?),
                ("threads", env.number(t.threads() as f64)?),
                ("steps", env.number(t.optimizer_state.step as f64)?),
                ("params", env.number(t.net.num_params() as f64)?),
                ("activation", env.string(c.activation.name())?),
                ("leakySlope", slope),
                ("dropout", env.array(&dropout)?),
                ("batchNorm", env.boolean(c.batch_norm)?),
                ("bnMomentum", env.number(c.bn_momentum)?),
                ("bnEps", env.number(c.bn_eps)?),
            ])
        })
    })
}

/// getWeights(model): Float32Array[] = [W1, b1, W2, b2, …], W row-major in×out.
unsafe extern "C" fn get_weights(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [m]| {
        model(env, m)?.with("read the weights", |t| {
            let arrays = t.params().into_iter().map(|p| env.f32_array(p)).collect::<JsResult<Vec<_>>>()?;
            env.array(&arrays)
        })
    })
}

/// Copies of Float32Arrays whose `napi_value`s were read earlier. Reading values (array elements,
/// object fields) may run JavaScript (getters, proxies), and JavaScript can detach or shrink a
/// buffer: so every value is read first and the contents copied last, with no JavaScript running
/// in between. Copied, never borrowed: a SharedArrayBuffer's elements can change under a borrow
/// (another thread), so the checks (finiteness, shapes) run on the copies, which are what is used.
fn f32_copies(env: Env, items: &[napi_value], name: &str) -> JsResult<Vec<Vec<f32>>> {
    items
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let what = format!("{name}[{i}]");
            match env.get_typed_array(a, &what)? {
                TypedArray::F32(s) => s.copy(&what),
                _ => Err(type_error(format!("{what} must be a Float32Array"))),
            }
        })
        .collect()
}

fn slices(v: &[Vec<f32>]) -> Vec<&[f32]> {
    v.iter().map(|x| x.as_slice()).collect()
}

/// setWeights(model, Float32Array[]): replaces all weights after checking shapes and finiteness.
unsafe extern "C" fn set_weights(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [m, arrays]| {
        let cell = model(env, m)?;
        let items = env.get_array(arrays, "weights", MAX_ARRAYS)?;
        let arrays = f32_copies(env, &items, "weights")?;
        cell.with("set the weights", |t| Ok(t.set_params(&slices(&arrays))?))?;
        env.undefined()
    })
}

/// getNormState(model): Float32Array[] = [γ1, β1, runningMean1, runningVar1, …] per hidden layer
/// (empty without batch norm).
unsafe extern "C" fn get_norm_state(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [m]| {
        model(env, m)?.with("read the norm state", |t| {
            let arrays = t.norm_state().into_iter().map(|p| env.f32_array(p)).collect::<JsResult<Vec<_>>>()?;
            env.array(&arrays)
        })
    })
}

/// setNormState(model, Float32Array[]): replaces batch norm's γ, β and running statistics after
/// checking shapes, finiteness and positive variances.
unsafe extern "C" fn set_norm_state(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [m, arrays]| {
        let cell = model(env, m)?;
        let items = env.get_array(arrays, "normState", MAX_ARRAYS)?;
        let arrays = f32_copies(env, &items, "normState")?;
        cell.with("set the norm state", |t| Ok(t.set_norm_state(&slices(&arrays))?))?;
        env.undefined()
    })
}

/// getTrainingState(model): { step, rng, m, v } — everything besides the weights that decides
/// the rest of a run (Adam's moments, its step count, the shuffling generator), for checkpoints.
unsafe extern "C" fn get_training_state(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [m]| {
        model(env, m)?.with("read the training state", |t| {
            let st = &t.optimizer_state;
            // one array per parameter tensor: W, b (then γ, β with batch norm) for each layer
            let moments = |ts: &[Vec<f32>]| -> JsResult<napi_value> {
                let arrays = ts.iter().map(|p| env.f32_array(p)).collect::<JsResult<Vec<_>>>()?;
                env.array(&arrays)
            };
            let partial = match &t.partial {
                None => env.null()?,
                Some(p) => env.object(&[
                    ("order", env.u32_array(&p.order)?),
                    ("batchSize", env.number(p.batch_size as f64)?),
                    ("nextStep", env.number(p.next_step as f64)?),
                    ("loss", env.number(p.loss)?),
                    ("correct", env.number(p.correct as f64)?),
                ])?,
            };
            env.object(&[
                ("step", env.number(st.step as f64)?),
                // a u64 does not fit a JS number exactly: decimal string
                ("rng", env.string(&t.rng.state().to_string())?),
                ("m", moments(&st.m)?),
                ("v", moments(&st.v)?),
                ("partialEpoch", partial),
            ])
        })
    })
}

/// setTrainingState(model, { step, rng, m, v, partialEpoch })
unsafe extern "C" fn set_training_state(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [m, state]| {
        let cell = model(env, m)?;
        env.expect_object(state, "state")?;
        // Every value is read (running any getters) before the moments are copied: see f32_copies.
        let field = |k: &str| env.get_field(state, k)?.ok_or_else(|| type_error(format!("state.{k} is missing")));
        let step = env.get_integer(field("step")?, "state.step", 0.0, 9_007_199_254_740_991.0)? as u64;
        let rng: u64 = env.get_string(field("rng")?, "state.rng")?.parse().map_err(|_| range_error("state.rng must be a decimal 64-bit unsigned integer"))?;
        let (m_items, v_items) = (env.get_array(field("m")?, "state.m", MAX_ARRAYS)?, env.get_array(field("v")?, "state.v", MAX_ARRAYS)?);
        let partial = match env.get_field(state, "partialEpoch")? {
            Some(p) if env.type_of(p)? != NAPI_NULL => {
                env.expect_object(p, "state.partialEpoch")?;
                let get = |k: &str| env.get_field(p, k)?.ok_or_else(|| type_error(format!("state.partialEpoch.{k} is missing")));
                let order = get("order")?;
                let int = |k: &str| -> JsResult<f64> { env.get_integer(get(k)?, &format!("state.partialEpoch.{k}"), 0.0, 9_007_199_254_740_991.0) };
                let (batch_size, next_step) = (int("batchSize")? as usize, int("nextStep")? as usize);
                let loss = env.get_number(get("loss")?, "state.partialEpoch.loss")?;
                let correct = int("correct")? as usize;
                // the last getter has run: the order is copied right away
                let order = match env.get_typed_array(order, "state.partialEpoch.order")? {
                    TypedArray::U32(s) => s.copy("state.partialEpoch.order")?,
                    _ => return Err(type_error("state.partialEpoch.order must be a Uint32Array")),
                };
                Some(kana_core::PartialEpoch { order, batch_size, next_step, loss, correct })
            }
            _ => None,
        };
        let (mv, vv) = (f32_copies(env, &m_items, "state.m")?, f32_copies(env, &v_items, "state.v")?);
        cell.with("set the training state", |t| Ok(t.set_training_state(step, &slices(&mv), &slices(&vv), rng, partial)?))?;
        env.undefined()
    })
}

/// cancel(model): asks the running operation to stop after its current batch.
unsafe extern "C" fn cancel(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [m]| {
        model(env, m)?.control.cancel();
        env.undefined()
    })
}

/// progress(model): [steps done, steps in the running (or last) operation, running mean loss,
/// running accuracy] (the last two NaN outside training)
unsafe extern "C" fn progress(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [m]| {
        let cell = model(env, m)?;
        let ((done, total), (loss, accuracy)) = (cell.control.progress(), cell.control.running());
        env.array(&[env.number(done as f64)?, env.number(total as f64)?, env.number(loss)?, env.number(accuracy)?])
    })
}

// ---------------------------------------------------------------------------------------------
// Data sets

/// A pixel buffer in native memory, filled from JavaScript chunk by chunk (`writePixels`) and then
/// adopted, without a copy, by `createDataset`: images read from a file never need to exist whole
/// in JavaScript memory. Each chunk is copied in (no Rust reference into JavaScript memory, which
/// another thread may write when it is a SharedArrayBuffer); once adopted the buffer is empty and
/// further writes are errors.
struct Pixels {
    /// `None` once a data set has taken the pixels.
    buf: Mutex<Option<Vec<u8>>>,
    length: usize,
}

/// The most pixels a buffer may hold: 2^40 bytes (a TB) is far beyond any data set this engine
/// trains on, and keeps the byte counts exact in a JavaScript number.
const MAX_PIXELS: f64 = (1u64 << 40) as f64;

fn pixels(env: Env, v: napi_value) -> JsResult<Arc<Pixels>> {
    get_handle(env, v, "pixels", PIXELS_TAG)
}

impl Pixels {
    fn lock(&self) -> MutexGuard<'_, Option<Vec<u8>>> {
        // a panic while holding the lock cannot leave the vector inconsistent (append is one memcpy)
        self.buf.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// createPixels(length: number): a pixel buffer of `length` bytes, empty, to fill with writePixels.
/// The memory is reserved (fallibly: a RangeError naming the bytes) but only committed as written.
unsafe extern "C" fn create_pixels(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [length]| {
        let length = env.get_integer(length, "length", 0.0, MAX_PIXELS)? as usize;
        let mut buf = Vec::new();
        buf.try_reserve_exact(length)
            .map_err(|_| range_error(format!("pixels: cannot allocate {length} bytes of native memory")))?;
        new_handle(env, PIXELS_TAG, Arc::new(Pixels { buf: Mutex::new(Some(buf)), length }))
    })
}

/// writePixels(pixels, chunk: Uint8Array): appends a copy of `chunk`; returns the bytes written so far.
unsafe extern "C" fn write_pixels(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [p, chunk]| {
        let p = pixels(env, p)?;
        let chunk = match env.get_typed_array(chunk, "chunk")? {
            TypedArray::U8(s) => s,
            _ => return Err(type_error("chunk must be a Uint8Array of pixel values 0..255")),
        };
        // (no JavaScript runs between reading where the elements lie and copying them)
        let mut guard = p.lock();
        let buf = guard.as_mut().ok_or_else(|| error("pixels: this buffer was already taken by a data set"))?;
        if chunk.len() > p.length - buf.len() {
            return Err(range_error(format!(
                "chunk: {} bytes do not fit: {} of the buffer's {} bytes are written",
                chunk.len(),
                buf.len(),
                p.length
            )));
        }
        chunk.append_to(buf);
        env.number(buf.len() as f64)
    })
}

/// createDataset(images: Uint8Array | pixels, labels: Uint8Array | Int32Array | … | null, features: number)
/// A Uint8Array is copied into native memory once; a pixel buffer (createPixels), completely
/// written, is adopted without a copy and left empty. Memory that cannot be had is a RangeError
/// naming the bytes, not an abort.
unsafe extern "C" fn create_dataset(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [images, labels, features]| {
        // (no JavaScript runs between reading where the elements lie and copying them)
        let features = env.get_integer(features, "features", 1.0, (1u64 << 32) as f64)? as usize;
        let buffer = if env.type_of(images)? == NAPI_EXTERNAL {
            Some(pixels(env, images).map_err(|_| type_error("images must be a Uint8Array of pixel values 0..255 or a kana-native pixel buffer"))?)
        } else {
            None
        };
        let copied = match buffer {
            Some(_) => None,
            None => match env.get_typed_array(images, "images")? {
                TypedArray::U8(s) => Some(s.copy("images")?),
                _ => return Err(type_error("images must be a Uint8Array of pixel values 0..255")),
            },
        };
        let labels = match env.type_of(labels)? {
            NAPI_UNDEFINED | NAPI_NULL => None,
            _ => Some(label_vec(env.get_typed_array(labels, "labels")?)?),
        };
        let pixels = match (copied, buffer) {
            (Some(v), _) => v,
            (None, Some(p)) => {
                let mut guard = p.lock();
                let written = guard.as_ref().ok_or_else(|| error("images: this pixel buffer was already taken by a data set"))?.len();
                if written != p.length {
                    return Err(range_error(format!("images: only {written} of the pixel buffer's {} bytes are written", p.length)));
                }
                // every check first, so a refused call leaves the buffer to its owner
                Dataset::check_shape(written, labels.as_ref().map(|l| l.len()), features)?;
                guard.take().expect("checked above")
            }
            (None, None) => unreachable!(),
        };
        let bytes = pixels.len() + labels.as_ref().map_or(0, |l| l.len() * 4);
        let data = Dataset::new(pixels, labels, features)?;
        env.external_sized(Handle { tag: DATASET_TAG, inner: Arc::new(data) }, bytes)
    })
}

fn label_vec(labels: TypedArray) -> JsResult<Vec<u32>> {
    // copied first (see Raw::copy), then checked and converted
    fn convert<T: Copy + Into<i64>>(raw: js::Raw<T>) -> JsResult<Vec<u32>> {
        let xs = raw.copy("labels")?;
        let mut out = Vec::new();
        out.try_reserve_exact(xs.len())
            .map_err(|_| range_error(format!("labels: cannot allocate {} bytes of native memory for {} labels", xs.len() as u128 * 4, xs.len())))?;
        for (i, &x) in xs.iter().enumerate() {
            let x: i64 = x.into();
            out.push(u32::try_from(x).map_err(|_| range_error(format!("labels[{i}] = {x} is not a class index (must be ≥ 0)")))?);
        }
        Ok(out)
    }
    match labels {
        TypedArray::U8(s) => convert(s),
        TypedArray::I8(s) => convert(s),
        TypedArray::U16(s) => convert(s),
        TypedArray::I16(s) => convert(s),
        TypedArray::U32(s) => convert(s),
        TypedArray::I32(s) => convert(s),
        _ => Err(type_error("labels must be an integer typed array (Uint8Array, Int32Array, …) of class indices")),
    }
}

/// datasetInfo(dataset): { length, features, labeled }
unsafe extern "C" fn dataset_info(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [d]| {
        let d = dataset(env, d)?;
        env.object(&[
            ("length", env.number(d.len() as f64)?),
            ("features", env.number(d.features() as f64)?),
            ("labeled", env.boolean(d.labels().is_some())?),
        ])
    })
}

// ---------------------------------------------------------------------------------------------
// Asynchronous work on a model

enum Op {
    Epoch(EpochOptions),
    Evaluate,
    Predict,
}

enum Outcome {
    Epoch(EpochStats),
    Evaluation(Evaluation),
    Probabilities(Vec<f32>),
}

struct ModelTask {
    cell: Arc<ModelCell>,
    trainer: Option<Box<Trainer>>,
    data: Arc<Dataset>,
    op: Op,
}

impl Task for ModelTask {
    type Output = Outcome;

    fn run(&mut self) -> Result<Outcome, kana_core::Error> {
        let t = self.trainer.as_mut().expect("trainer taken for this task");
        let control = &self.cell.control;
        Ok(match &self.op {
            Op::Epoch(o) => Outcome::Epoch(t.epoch(&self.data, o, control)?),
            Op::Evaluate => Outcome::Evaluation(t.evaluate(&self.data, control)?),
            Op::Predict => Outcome::Probabilities(t.predict_proba(&self.data, control)?),
        })
    }

    fn finish(mut self, env: Env, outcome: Result<Outcome, JsError>) -> JsResult<napi_value> {
        self.cell.put_back(self.trainer.take().expect("trainer taken for this task"));
        match outcome? {
            Outcome::Epoch(s) => env.object(&[
                ("loss", env.number(s.loss)?),
                ("accuracy", env.number(s.accuracy)?),
                ("steps", env.number(s.steps as f64)?),
            ]),
            Outcome::Evaluation(e) => env.object(&[
                ("loss", env.number(e.loss)?),
                ("accuracy", env.number(e.accuracy)?),
                ("confusion", env.u32_array(&e.confusion)?),
            ]),
            Outcome::Probabilities(p) => env.f32_array(&p),
        }
    }
}

fn start(env: Env, m: napi_value, d: napi_value, op: Op, name: &'static str) -> JsResult<napi_value> {
    let cell = model(env, m)?;
    let data = dataset(env, d)?;
    let trainer = cell.take(name)?;
    let checked = match &op {
        Op::Epoch(o) => trainer.check_options(o).map_err(JsError::from),
        _ => Ok(()),
    };
    if let Err(e) = checked.and_then(|_| check_memory(&trainer, &data, &op)) {
        cell.put_back(trainer);
        return Err(e);
    }
    cell.control.reset();
    spawn(env, name, ModelTask { cell, trainer: Some(trainer), data, op })
}

/// The most elements a typed array may hold (V8's `TypedArray::kMaxLength` on 64-bit).
const MAX_TYPED_ARRAY: u128 = 1 << 32;

/// Refuses, with a RangeError naming the figure, an operation whose buffers cannot be had: its
/// result (a K×K confusion matrix, N×K probabilities) must fit a typed array, and the engine's
/// workspaces plus the result (built natively, then copied to JavaScript) must be allocatable
/// now. The engine allocates infallibly (a failure aborts the process): this asks first, with a
/// reservation that is released at once.
fn check_memory(t: &Trainer, data: &Dataset, op: &Op) -> JsResult<()> {
    let (n, k) = (data.len() as u128, t.net.classes() as u128);
    let widths: u128 = t.net.sizes.iter().map(|&w| w as u128).sum();
    let chunk = |batch: u128| batch.min(n).min(kana_core::train::CHUNK_ROWS as u128);
    // (3 × widths per row also covers the pre-activations that non-ReLU activations and batch norm keep)
    let train_rows = |batch: usize| t.chunk_rows(batch.min(data.len())) as u128;
    let (result, workspace) = match op {
        Op::Epoch(o) => (None, train_rows(o.batch_size) * widths * 3),
        Op::Evaluate => (Some(("evaluate: the confusion matrix", k * k, format!("{k} × {k} classes"))), chunk(n) * widths * 2),
        Op::Predict => (Some(("predictProba: the probabilities", n * k, format!("{n} rows × {k} classes"))), chunk(n) * widths * 2),
    };
    let mut bytes = workspace * 4;
    if let Some((what, values, shape)) = result {
        if values > MAX_TYPED_ARRAY {
            return Err(range_error(format!("{what} ({shape}) would hold {values} values, more than a typed array can (2^32)")));
        }
        bytes += values * 4 * 2;
    }
    let mut probe: Vec<u8> = Vec::new();
    if usize::try_from(bytes).map_or(true, |b| probe.try_reserve_exact(b).is_err()) {
        let (what, rows) = match op {
            Op::Epoch(o) => ("an epoch of training", train_rows(o.batch_size)),
            Op::Evaluate => ("evaluate", chunk(n)),
            Op::Predict => ("predictProba", chunk(n)),
        };
        let result = if matches!(op, Op::Epoch(_)) { "" } else { " and the result, in native memory and as its JavaScript copy" };
        return Err(range_error(format!("{what}: cannot allocate the {bytes} bytes of native memory it needs (workspaces for {rows} rows of {widths} units{result})")));
    }
    Ok(())
}

fn epoch_options(env: Env, o: napi_value) -> JsResult<EpochOptions> {
    env.expect_object(o, "options")?;
    let num = |k: &str| -> JsResult<Option<f64>> { env.get_field(o, k)?.map(|v| env.get_number(v, &format!("options.{k}"))).transpose() };
    let optimizer = match env.get_field(o, "optimizer")? {
        Some(v) => env.get_string(v, "options.optimizer")?,
        None => return Err(type_error("options.optimizer must be 'gd', 'sgd', 'adam' or 'adamw'")),
    };
    let batch_size = match (optimizer.as_str(), env.get_field(o, "batchSize")?) {
        ("gd", _) => usize::MAX,
        (_, Some(v)) => env.get_integer(v, "options.batchSize", 0.0, 9_007_199_254_740_991.0)? as usize,
        (_, None) => return Err(type_error(format!("options.batchSize is required for optimizer '{optimizer}'"))),
    };
    let sgd = matches!(optimizer.as_str(), "gd" | "sgd");
    let momentum = num("momentum")?;
    let nesterov = env.get_field(o, "nesterov")?.map(|v| env.get_bool(v, "options.nesterov")).transpose()?;
    let weight_decay = num("weightDecay")?;
    if momentum.is_some() && !sgd {
        return Err(range_error(format!("momentum is only used by optimizers 'gd' and 'sgd', not '{optimizer}'")));
    }
    if nesterov.is_some() && !sgd {
        return Err(range_error(format!("nesterov is only used by optimizers 'gd' and 'sgd', not '{optimizer}'")));
    }
    if weight_decay.is_some() && optimizer != "adamw" {
        return Err(range_error(format!("weightDecay is only used by optimizer 'adamw', not '{optimizer}' (use l2 for an L2 penalty)")));
    }
    let (beta1, beta2, eps) = (num("beta1")?.unwrap_or(0.9) as f32, num("beta2")?.unwrap_or(0.999) as f32, num("eps")?.unwrap_or(1e-8) as f32);
    let optimizer = match optimizer.as_str() {
        "gd" | "sgd" => {
            let momentum = momentum.unwrap_or(0.0);
            if !(0.0..1.0).contains(&momentum) {
                return Err(range_error(format!("momentum must be in [0, 1), got {momentum}")));
            }
            let nesterov = nesterov.unwrap_or(false);
            if nesterov && momentum == 0.0 {
                return Err(range_error("nesterov needs a momentum > 0"));
            }
            // momentum 0 is exactly today's SGD
            if momentum == 0.0 { Optimizer::Sgd } else { Optimizer::Momentum { momentum: momentum as f32, nesterov } }
        }
        "adam" => Optimizer::Adam { beta1, beta2, eps },
        "adamw" => Optimizer::AdamW { beta1, beta2, eps, weight_decay: weight_decay.map_or(Optimizer::WEIGHT_DECAY_DEFAULT, |w| w as f32) },
        other => return Err(range_error(format!("options.optimizer must be 'gd', 'sgd', 'adam' or 'adamw', got '{other}'"))),
    };
    let lr = num("lr")?.ok_or_else(|| type_error("options.lr is required"))? as f32;
    let l2 = num("l2")?.unwrap_or(0.0) as f32;
    let label_smoothing = num("labelSmoothing")?.unwrap_or(0.0);
    if !(0.0..1.0).contains(&label_smoothing) {
        return Err(range_error(format!("labelSmoothing must be in [0, 1), got {label_smoothing}")));
    }
    let clip_norm = num("clipNorm")?;
    if let Some(c) = clip_norm {
        if c <= 0.0 {
            return Err(range_error(format!("clipNorm must be a positive finite number, got {c}")));
        }
    }
    let augment = match env.get_field(o, "augment")? {
        Some(v) if !matches!(env.type_of(v)?, NAPI_NULL) => Some(augment_options(env, v, "options.augment")?),
        _ => None,
    };
    let opts = EpochOptions { optimizer, lr, l2, batch_size, label_smoothing: label_smoothing as f32, clip_norm: clip_norm.map(|c| c as f32), augment };
    opts.validate()?;
    Ok(opts)
}

/// { rotate, scale, shear, shift, elastic: { alpha, sigma } | null }, each range optional (0).
fn augment_options(env: Env, o: napi_value, name: &str) -> JsResult<Augment> {
    env.expect_object(o, name)?;
    let num = |o: napi_value, k: &str, what: &str| -> JsResult<Option<f64>> { env.get_field(o, k)?.map(|v| env.get_number(v, &format!("{what}.{k}"))).transpose() };
    let mut a = Augment::default();
    for (k, slot) in [("rotate", &mut a.rotate), ("scale", &mut a.scale), ("shear", &mut a.shear), ("shift", &mut a.shift)] {
        if let Some(x) = num(o, k, name)? {
            *slot = x;
        }
    }
    if let Some(e) = env.get_field(o, "elastic")? {
        if !matches!(env.type_of(e)?, NAPI_NULL) {
            let what = format!("{name}.elastic");
            env.expect_object(e, &what)?;
            let alpha = num(e, "alpha", &what)?.ok_or_else(|| type_error(format!("{what}.alpha is required")))?;
            let sigma = num(e, "sigma", &what)?.ok_or_else(|| type_error(format!("{what}.sigma is required")))?;
            a.elastic = Some(Elastic { alpha, sigma });
        }
    }
    a.validate()?;
    Ok(a)
}

/// augmentBatch(images: Uint8Array, n, options, seed, step): Float32Array — the n images as the
/// training step `step` of a model with this seed would see them (pixels ÷ 255). For tests.
unsafe extern "C" fn augment_batch(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [images, n, options, seed, step]| {
        let aug = augment_options(env, options, "options")?;
        let n = env.get_integer(n, "n", 1.0, (1u64 << 32) as f64)? as usize;
        let seed = env.get_integer(seed, "seed", 0.0, 9_007_199_254_740_991.0)? as u64;
        let step = env.get_integer(step, "step", 0.0, 9_007_199_254_740_991.0)? as u64;
        // (no JavaScript runs between this borrow and the copy)
        let pixels = match env.get_typed_array(images, "images")? {
            TypedArray::U8(s) => s.copy("images")?,
            _ => return Err(type_error("images must be a Uint8Array of pixel values 0..255")),
        };
        if pixels.len() % n != 0 {
            return Err(range_error(format!("images has {} bytes, not n = {n} samples of equal size", pixels.len())));
        }
        Augment::side(pixels.len() / n)?;
        let out = kana_core::augment::augment_batch(&pixels, n, &aug, seed, step)?;
        env.f32_array(&out)
    })
}

/// fitEpoch(model, dataset, options): Promise<{ loss, accuracy, steps }>
unsafe extern "C" fn fit_epoch(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [m, d, o]| {
        let opts = epoch_options(env, o)?;
        start(env, m, d, Op::Epoch(opts), "an epoch of training")
    })
}

/// evaluate(model, dataset): Promise<{ loss, accuracy, confusion: Uint32Array }>
unsafe extern "C" fn evaluate(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [m, d]| start(env, m, d, Op::Evaluate, "an evaluation"))
}

/// predictProba(model, dataset): Promise<Float32Array> (n × classes)
unsafe extern "C" fn predict_proba(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [m, d]| start(env, m, d, Op::Predict, "a prediction"))
}

// ---------------------------------------------------------------------------------------------
// Diagnostics

/// cpuFeatures(): what the GEMM kernel can use on this processor (detected at run time).
unsafe extern "C" fn cpu_features(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, []: [napi_value; 0]| {
        #[cfg(target_arch = "x86_64")]
        let flags = [
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
        ];
        #[cfg(not(target_arch = "x86_64"))]
        let flags: [(&str, bool); 0] = [];
        let mut fields = vec![("arch", env.string(std::env::consts::ARCH)?)];
        for (k, v) in flags {
            fields.push((k, env.boolean(v)?));
        }
        env.object(&fields)
    })
}

struct PanicTask;
impl Task for PanicTask {
    type Output = ();
    fn run(&mut self) -> Result<(), kana_core::Error> {
        // inside rayon, as a real fault in the engine would be
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| panic!("deliberate panic in a worker thread (test hook)"))
    }
    fn finish(self, env: Env, outcome: Result<(), JsError>) -> JsResult<napi_value> {
        outcome?;
        env.undefined()
    }
}

/// debugPanic('sync' | 'async'): panics on purpose, to prove a panic becomes a JS error.
unsafe extern "C" fn debug_panic(env: napi_env, info: napi_callback_info) -> napi_value {
    call(env, info, |env, [mode]| match env.get_string(mode, "mode")?.as_str() {
        "sync" => panic!("deliberate panic on the JavaScript thread (test hook)"),
        "async" => spawn(env, "debugPanic", PanicTask),
        other => Err(range_error(format!("mode must be 'sync' or 'async', got '{other}'"))),
    })
}

// ---------------------------------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    let functions: [(&str, napi_callback); 21] = [
        ("createModel", create_model),
        ("freeModel", free_model),
        ("modelInfo", model_info),
        ("getWeights", get_weights),
        ("setWeights", set_weights),
        ("getNormState", get_norm_state),
        ("setNormState", set_norm_state),
        ("getTrainingState", get_training_state),
        ("setTrainingState", set_training_state),
        ("cancel", cancel),
        ("progress", progress),
        ("createPixels", create_pixels),
        ("writePixels", write_pixels),
        ("createDataset", create_dataset),
        ("datasetInfo", dataset_info),
        ("fitEpoch", fit_epoch),
        ("evaluate", evaluate),
        ("predictProba", predict_proba),
        ("augmentBatch", augment_batch),
        ("cpuFeatures", cpu_features),
        ("debugPanic", debug_panic),
    ];
    for (name, f) in &functions {
        let mut func = std::ptr::null_mut();
        if napi_create_function(env, name.as_ptr().cast(), name.len(), *f, std::ptr::null_mut::<c_void>(), &mut func) != NAPI_OK
            || Env(env).set(exports, name, func).is_err()
        {
            return std::ptr::null_mut();
        }
    }
    exports
}

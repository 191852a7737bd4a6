//! A small safe layer over the raw Node-API calls in `napi.rs`: reading arguments with errors that
//! name them, building results, throwing the right JavaScript error class, and running work off
//! the JavaScript thread behind a Promise. Everything here runs on the JavaScript thread, except
//! the `execute` half of [`spawn`].

use crate::napi::*;
use kana_core::ErrorKind;
use std::ffi::{c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

/// An error on its way to JavaScript.
#[derive(Debug)]
pub enum JsError {
    /// `TypeError`, `RangeError` or `Error` (with an optional `code` and `name`).
    Throw { kind: ErrorKind, message: String },
    /// A JavaScript exception is already pending (e.g. a getter threw): leave it to propagate.
    Pending,
}

pub type JsResult<T> = Result<T, JsError>;

pub fn type_error(message: impl Into<String>) -> JsError {
    JsError::Throw { kind: ErrorKind::Type, message: message.into() }
}
pub fn range_error(message: impl Into<String>) -> JsError {
    JsError::Throw { kind: ErrorKind::Range, message: message.into() }
}
pub fn error(message: impl Into<String>) -> JsError {
    JsError::Throw { kind: ErrorKind::Other, message: message.into() }
}

impl From<kana_core::Error> for JsError {
    fn from(e: kana_core::Error) -> Self {
        JsError::Throw { kind: e.kind, message: e.message }
    }
}

/// The environment of the current call. `Copy`, so helpers can take it by value.
#[derive(Clone, Copy)]
pub struct Env(pub napi_env);

/// Turns a Node-API status into a Result; `napi_pending_exception` passes the JS exception on.
fn check(status: napi_status, what: &str) -> JsResult<()> {
    match status {
        NAPI_OK => Ok(()),
        NAPI_PENDING_EXCEPTION => Err(JsError::Pending),
        s => Err(error(format!("Node-API call {what} failed with status {s}"))),
    }
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap()
}

impl Env {
    pub fn undefined(self) -> JsResult<napi_value> {
        let mut v = ptr::null_mut();
        check(unsafe { napi_get_undefined(self.0, &mut v) }, "get_undefined")?;
        Ok(v)
    }

    pub fn null(self) -> JsResult<napi_value> {
        let mut v = ptr::null_mut();
        check(unsafe { napi_get_null(self.0, &mut v) }, "get_null")?;
        Ok(v)
    }

    pub fn number(self, x: f64) -> JsResult<napi_value> {
        let mut v = ptr::null_mut();
        check(unsafe { napi_create_double(self.0, x, &mut v) }, "create_double")?;
        Ok(v)
    }

    pub fn boolean(self, b: bool) -> JsResult<napi_value> {
        let mut v = ptr::null_mut();
        check(unsafe { napi_get_boolean(self.0, b, &mut v) }, "get_boolean")?;
        Ok(v)
    }

    pub fn string(self, s: &str) -> JsResult<napi_value> {
        let mut v = ptr::null_mut();
        check(unsafe { napi_create_string_utf8(self.0, s.as_ptr().cast(), s.len(), &mut v) }, "create_string_utf8")?;
        Ok(v)
    }

    pub fn object(self, fields: &[(&str, napi_value)]) -> JsResult<napi_value> {
        let mut o = ptr::null_mut();
        check(unsafe { napi_create_object(self.0, &mut o) }, "create_object")?;
        for (k, v) in fields {
            self.set(o, k, *v)?;
        }
        Ok(o)
    }

    pub fn set(self, object: napi_value, key: &str, value: napi_value) -> JsResult<()> {
        check(unsafe { napi_set_named_property(self.0, object, cstring(key).as_ptr(), value) }, "set_named_property")
    }

    pub fn array(self, items: &[napi_value]) -> JsResult<napi_value> {
        let mut a = ptr::null_mut();
        check(unsafe { napi_create_array_with_length(self.0, items.len(), &mut a) }, "create_array")?;
        for (i, v) in items.iter().enumerate() {
            check(unsafe { napi_set_element(self.0, a, i as u32, *v) }, "set_element")?;
        }
        Ok(a)
    }

    /// A new typed array holding a copy of `data` (`kind` must match `T`'s element type).
    fn typed_array<T: Copy>(self, kind: napi_typedarray_type, data: &[T]) -> JsResult<napi_value> {
        let bytes = std::mem::size_of_val(data);
        let (mut buf, mut base) = (ptr::null_mut(), ptr::null_mut::<c_void>());
        check(unsafe { napi_create_arraybuffer(self.0, bytes, &mut base, &mut buf) }, "create_arraybuffer")?;
        if bytes > 0 {
            // SAFETY: `base` points to a fresh, exclusively owned buffer of `bytes` bytes.
            unsafe { ptr::copy_nonoverlapping(data.as_ptr().cast::<u8>(), base.cast::<u8>(), bytes) };
        }
        let mut arr = ptr::null_mut();
        check(unsafe { napi_create_typedarray(self.0, kind, data.len(), buf, 0, &mut arr) }, "create_typedarray")?;
        Ok(arr)
    }

    pub fn f32_array(self, data: &[f32]) -> JsResult<napi_value> {
        self.typed_array(NAPI_FLOAT32_ARRAY, data)
    }

    pub fn u32_array(self, data: &[u32]) -> JsResult<napi_value> {
        self.typed_array(NAPI_UINT32_ARRAY, data)
    }

    pub fn type_of(self, v: napi_value) -> JsResult<napi_valuetype> {
        let mut t = 0;
        check(unsafe { napi_typeof(self.0, v, &mut t) }, "typeof")?;
        Ok(t)
    }

    /// A finite number (`name` appears in the error).
    pub fn get_number(self, v: napi_value, name: &str) -> JsResult<f64> {
        if self.type_of(v)? != NAPI_NUMBER {
            return Err(type_error(format!("{name} must be a number")));
        }
        let mut x = 0.0;
        check(unsafe { napi_get_value_double(self.0, v, &mut x) }, "get_value_double")?;
        if !x.is_finite() {
            return Err(range_error(format!("{name} must be a finite number, got {x}")));
        }
        Ok(x)
    }

    /// An integer in `min..=max`.
    pub fn get_integer(self, v: napi_value, name: &str, min: f64, max: f64) -> JsResult<f64> {
        let x = self.get_number(v, name)?;
        if x.fract() != 0.0 || x < min || x > max {
            return Err(range_error(format!("{name} must be an integer in {min}..={max}, got {x}")));
        }
        Ok(x)
    }

    pub fn get_bool(self, v: napi_value, name: &str) -> JsResult<bool> {
        if self.type_of(v)? != NAPI_BOOLEAN {
            return Err(type_error(format!("{name} must be a boolean")));
        }
        let mut b = false;
        check(unsafe { napi_get_value_bool(self.0, v, &mut b) }, "get_value_bool")?;
        Ok(b)
    }

    pub fn get_string(self, v: napi_value, name: &str) -> JsResult<String> {
        if self.type_of(v)? != NAPI_STRING {
            return Err(type_error(format!("{name} must be a string")));
        }
        let mut len = 0;
        check(unsafe { napi_get_value_string_utf8(self.0, v, ptr::null_mut(), 0, &mut len) }, "get_value_string_utf8")?;
        let mut buf = vec![0u8; len + 1];
        check(unsafe { napi_get_value_string_utf8(self.0, v, buf.as_mut_ptr().cast(), buf.len(), &mut len) }, "get_value_string_utf8")?;
        buf.truncate(len);
        String::from_utf8(buf).map_err(|_| type_error(format!("{name} is not valid UTF-8")))
    }

    /// `object[key]`, or `None` when it is `undefined`. `object` must be an object.
    pub fn get_field(self, object: napi_value, key: &str) -> JsResult<Option<napi_value>> {
        let mut v = ptr::null_mut();
        check(unsafe { napi_get_named_property(self.0, object, cstring(key).as_ptr(), &mut v) }, "get_named_property")?;
        Ok(if self.type_of(v)? == NAPI_UNDEFINED { None } else { Some(v) })
    }

    pub fn expect_object(self, v: napi_value, name: &str) -> JsResult<()> {
        if self.type_of(v)? != NAPI_OBJECT {
            return Err(type_error(format!("{name} must be an object")));
        }
        Ok(())
    }

    /// The elements of a JavaScript array of at most `max` entries (an empty array whose
    /// `length` is 2^32 − 1 would otherwise be read element by element for minutes).
    pub fn get_array(self, v: napi_value, name: &str, max: u32) -> JsResult<Vec<napi_value>> {
        let mut is = false;
        check(unsafe { napi_is_array(self.0, v, &mut is) }, "is_array")?;
        if !is {
            return Err(type_error(format!("{name} must be an array")));
        }
        let mut len = 0u32;
        check(unsafe { napi_get_array_length(self.0, v, &mut len) }, "get_array_length")?;
        if len > max {
            return Err(range_error(format!("{name} has {len} entries, more than {max}")));
        }
        (0..len)
            .map(|i| {
                let mut e = ptr::null_mut();
                check(unsafe { napi_get_element(self.0, v, i, &mut e) }, "get_element")?;
                Ok(e)
            })
            .collect()
    }

    /// The type of a typed array and where its elements lie. Nothing is borrowed: the buffer may be
    /// a SharedArrayBuffer that another thread writes while this one reads, and a Rust reference
    /// over memory that changes under it is undefined behaviour (a check could pass on one value
    /// and the copy take another). Callers copy the elements ([`Raw::copy`]) and check the copy.
    pub fn get_typed_array(self, v: napi_value, name: &str) -> JsResult<TypedArray> {
        let mut is = false;
        check(unsafe { napi_is_typedarray(self.0, v, &mut is) }, "is_typedarray")?;
        if !is {
            return Err(type_error(format!("{name} must be a typed array")));
        }
        let (mut kind, mut len, mut data) = (0, 0usize, ptr::null_mut::<c_void>());
        check(
            unsafe { napi_get_typedarray_info(self.0, v, &mut kind, &mut len, &mut data, ptr::null_mut(), ptr::null_mut()) },
            "get_typedarray_info",
        )?;
        // Node-API reports `len` elements of the given kind at `data` (null when empty or detached).
        fn slice<T>(data: *mut c_void, len: usize) -> Raw<T> {
            Raw { ptr: data.cast::<T>(), len: if data.is_null() { 0 } else { len } }
        }
        Ok({
            match kind {
                NAPI_UINT8_ARRAY | NAPI_UINT8_CLAMPED_ARRAY => TypedArray::U8(slice(data, len)),
                NAPI_INT8_ARRAY => TypedArray::I8(slice(data, len)),
                NAPI_INT16_ARRAY => TypedArray::I16(slice(data, len)),
                NAPI_UINT16_ARRAY => TypedArray::U16(slice(data, len)),
                NAPI_INT32_ARRAY => TypedArray::I32(slice(data, len)),
                NAPI_UINT32_ARRAY => TypedArray::U32(slice(data, len)),
                NAPI_FLOAT32_ARRAY => TypedArray::F32(slice(data, len)),
                NAPI_FLOAT64_ARRAY => TypedArray::F64,
                _ => TypedArray::Other,
            }
        })
    }

    /// Wraps `value` in a JavaScript external that drops it when garbage-collected.
    pub fn external<T: 'static>(self, value: T) -> JsResult<napi_value> {
        self.external_sized(value, 0)
    }

    /// Like [`Env::external`], and tells V8 that `bytes` of native memory hang on the object (a
    /// data set), so that it collects an unreachable one in time.
    pub fn external_sized<T: 'static>(self, value: T, bytes: usize) -> JsResult<napi_value> {
        unsafe extern "C" fn finalize<T>(env: napi_env, data: *mut c_void, hint: *mut c_void) {
            // SAFETY: `data` is the Box<T> leaked below, finalised exactly once by Node;
            // `hint` carries the byte count reported at creation.
            drop(unsafe { Box::from_raw(data.cast::<T>()) });
            if !hint.is_null() {
                let mut total = 0;
                unsafe { napi_adjust_external_memory(env, -(hint as usize as i64), &mut total) };
            }
        }
        let data = Box::into_raw(Box::new(value));
        let mut v = ptr::null_mut();
        let status = unsafe { napi_create_external(self.0, data.cast(), finalize::<T>, bytes as *mut c_void, &mut v) };
        if status != NAPI_OK {
            drop(unsafe { Box::from_raw(data) });
        }
        check(status, "create_external")?;
        if bytes > 0 {
            let mut total = 0;
            unsafe { napi_adjust_external_memory(self.0, bytes as i64, &mut total) };
        }
        Ok(v)
    }

    /// The raw pointer inside an external (callers check what it points to, see `Handle`).
    pub fn get_external(self, v: napi_value, name: &str) -> JsResult<*mut c_void> {
        if self.type_of(v)? != NAPI_EXTERNAL {
            return Err(type_error(format!("{name} must be a kana-native handle")));
        }
        let mut p = ptr::null_mut();
        check(unsafe { napi_get_value_external(self.0, v, &mut p) }, "get_value_external")?;
        Ok(p)
    }

    /// The JavaScript error object for `e`.
    pub fn make_error(self, kind: ErrorKind, message: &str) -> JsResult<napi_value> {
        let msg = self.string(message)?;
        let mut err = ptr::null_mut();
        let status = unsafe {
            match kind {
                ErrorKind::Type => napi_create_type_error(self.0, ptr::null_mut(), msg, &mut err),
                ErrorKind::Range => napi_create_range_error(self.0, ptr::null_mut(), msg, &mut err),
                _ => napi_create_error(self.0, ptr::null_mut(), msg, &mut err),
            }
        };
        check(status, "create_error")?;
        match kind {
            // What `AbortSignal` users test for: `err.name === 'AbortError'`.
            ErrorKind::Aborted => {
                self.set(err, "name", self.string("AbortError")?)?;
                self.set(err, "code", self.string("ABORT_ERR")?)?;
            }
            ErrorKind::Diverged => self.set(err, "code", self.string("KANA_DIVERGED")?)?,
            _ => {}
        }
        Ok(err)
    }

    fn throw(self, e: JsError) {
        if let JsError::Throw { kind, message } = e {
            let mut pending = false;
            unsafe { napi_is_exception_pending(self.0, &mut pending) };
            if !pending {
                if let Ok(err) = self.make_error(kind, &message) {
                    unsafe { napi_throw(self.0, err) };
                }
            }
        }
    }
}

pub enum TypedArray {
    U8(Raw<u8>),
    I8(Raw<i8>),
    I16(Raw<i16>),
    U16(Raw<u16>),
    I32(Raw<i32>),
    U32(Raw<u32>),
    F32(Raw<f32>),
    F64,
    Other,
}

/// The elements of a typed array, not borrowed (see [`Env::get_typed_array`]): valid to copy
/// while no JavaScript runs on this thread (nothing can detach or shrink the buffer meanwhile).
pub struct Raw<T> {
    ptr: *const T,
    len: usize,
}

impl<T: Copy> Raw<T> {
    /// A copy in native memory, or a RangeError naming the bytes when they cannot be had (instead
    /// of the process aborting on a failed allocation). The copy is made with one memcpy and no
    /// reference to the source: a value another thread writes meanwhile may be copied old or new,
    /// and whatever is copied is what the caller checks and uses.
    pub fn copy(&self, name: &str) -> JsResult<Vec<T>> {
        let mut v: Vec<T> = Vec::new();
        v.try_reserve_exact(self.len)
            .map_err(|_| range_error(format!("{name}: cannot allocate {} bytes of native memory for a copy", self.len as u128 * std::mem::size_of::<T>() as u128)))?;
        if self.len > 0 {
            // SAFETY: `ptr` holds `len` elements (Node-API's report; no JavaScript ran since), the
            // destination has room for them, and the two do not overlap; T is plain data.
            unsafe {
                ptr::copy_nonoverlapping(self.ptr, v.as_mut_ptr(), self.len);
                v.set_len(self.len);
            }
        }
        Ok(v)
    }
}

impl<T: Copy> Raw<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends a copy of the elements to `v`, which must already have room for them (the caller
    /// reserved its capacity fallibly). One memcpy, no reference to the source (see [`Raw::copy`]).
    pub fn append_to(&self, v: &mut Vec<T>) {
        assert!(v.capacity() - v.len() >= self.len, "append_to: no room reserved");
        if self.len > 0 {
            // SAFETY: as in `copy`; the destination is `v`'s spare capacity, at least `len` long.
            unsafe {
                ptr::copy_nonoverlapping(self.ptr, v.as_mut_ptr().add(v.len()), self.len);
                v.set_len(v.len() + self.len);
            }
        }
    }
}

/// Runs an exported function body: reads up to `N` arguments, catches panics and errors and turns
/// them into JavaScript exceptions. Returns what Node expects from a `napi_callback`.
pub fn call<const N: usize>(env: napi_env, info: napi_callback_info, body: impl FnOnce(Env, [napi_value; N]) -> JsResult<napi_value>) -> napi_value {
    let env = Env(env);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut argc = N;
        let mut argv = [ptr::null_mut(); N];
        check(unsafe { napi_get_cb_info(env.0, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) }, "get_cb_info")?;
        // Missing arguments read as `undefined`.
        for slot in argv.iter_mut().skip(argc.min(N)) {
            *slot = env.undefined()?;
        }
        body(env, argv)
    }));
    match outcome {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            env.throw(e);
            ptr::null_mut()
        }
        Err(panic) => {
            env.throw(error(format!("kana-native internal error (a Rust panic): {}", panic_message(&panic))));
            ptr::null_mut()
        }
    }
}

pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Work that runs on a libuv worker thread (never touching Node-API, so neither do the rayon
/// threads it starts) and then finishes on the JavaScript thread, settling a Promise.
pub trait Task: Send + 'static {
    type Output: Send + 'static;
    /// Off the JavaScript thread.
    fn run(&mut self) -> Result<Self::Output, kana_core::Error>;
    /// Back on the JavaScript thread, whatever happened (also after a panic in `run`):
    /// return borrowed resources, then build the resolution value.
    fn finish(self, env: Env, outcome: Result<Self::Output, JsError>) -> JsResult<napi_value>;
}

struct AsyncJob<T: Task> {
    task: Option<T>,
    outcome: Option<Result<T::Output, JsError>>,
    deferred: napi_deferred,
    work: napi_async_work,
}

/// Queues `task` and returns its Promise.
pub fn spawn<T: Task>(env: Env, name: &str, task: T) -> JsResult<napi_value> {
    unsafe extern "C" fn execute<T: Task>(_env: napi_env, data: *mut c_void) {
        // SAFETY: `data` is the AsyncJob<T> created below; only this thread touches it until `complete`.
        let job = unsafe { &mut *data.cast::<AsyncJob<T>>() };
        let task = job.task.as_mut().expect("task present until complete");
        job.outcome = Some(match catch_unwind(AssertUnwindSafe(|| task.run())) {
            Ok(r) => r.map_err(JsError::from),
            Err(panic) => Err(error(format!("kana-native internal error (a Rust panic): {}", panic_message(&panic)))),
        });
    }
    unsafe extern "C" fn complete<T: Task>(env: napi_env, status: napi_status, data: *mut c_void) {
        // SAFETY: the Box leaked in `spawn`, reclaimed exactly once here.
        let mut job = unsafe { Box::from_raw(data.cast::<AsyncJob<T>>()) };
        let env = Env(env);
        let outcome = match job.outcome.take() {
            Some(o) => o,
            None if status == NAPI_CANCELLED => Err(JsError::Throw { kind: ErrorKind::Aborted, message: "the operation was aborted".into() }),
            None => Err(error(format!("kana-native: background work failed to run (status {status})"))),
        };
        let task = job.task.take().expect("task present until complete");
        let settled = catch_unwind(AssertUnwindSafe(|| task.finish(env, outcome)))
            .unwrap_or_else(|panic| Err(error(format!("kana-native internal error (a Rust panic): {}", panic_message(&panic)))));
        // A JavaScript exception raised while building the result (a setter on a prototype that
        // throws; Node-API then reports a failed call, not always `napi_pending_exception`) must
        // become the rejection: left pending here, outside any JavaScript call, it would make
        // every later Node-API call fail, leave the Promise unsettled, and end the process as an
        // uncaught exception.
        let settled = match settled {
            Ok(v) => Ok(v),
            Err(JsError::Throw { kind, message }) => Err(env.make_error(kind, &message).ok()),
            Err(JsError::Pending) => Err(None),
        };
        let mut pending = false;
        unsafe { napi_is_exception_pending(env.0, &mut pending) };
        unsafe {
            match settled {
                _ if pending => {
                    let mut exc = ptr::null_mut();
                    if napi_get_and_clear_last_exception(env.0, &mut exc) != NAPI_OK || exc.is_null() {
                        exc = env.undefined().unwrap_or(ptr::null_mut());
                    }
                    napi_reject_deferred(env.0, job.deferred, exc)
                }
                Ok(v) => napi_resolve_deferred(env.0, job.deferred, v),
                Err(Some(err)) => napi_reject_deferred(env.0, job.deferred, err),
                Err(None) => napi_reject_deferred(env.0, job.deferred, env.undefined().unwrap_or(ptr::null_mut())),
            };
            napi_delete_async_work(env.0, job.work);
        }
    }

    let (mut deferred, mut promise) = (ptr::null_mut(), ptr::null_mut());
    check(unsafe { napi_create_promise(env.0, &mut deferred, &mut promise) }, "create_promise")?;
    let job = Box::into_raw(Box::new(AsyncJob { task: Some(task), outcome: None, deferred, work: ptr::null_mut() }));
    let resource_name = env.string(name)?;
    let mut work = ptr::null_mut();
    let status = unsafe { napi_create_async_work(env.0, ptr::null_mut(), resource_name, execute::<T>, complete::<T>, job.cast(), &mut work) };
    if status == NAPI_OK {
        unsafe { (*job).work = work };
        if unsafe { napi_queue_async_work(env.0, work) } == NAPI_OK {
            return Ok(promise);
        }
        unsafe { napi_delete_async_work(env.0, work) };
    }
    // Not queued: settle here so borrowed resources (a model) are handed back.
    let job = unsafe { Box::from_raw(job) };
    let task = job.task.expect("task present");
    let _ = task.finish(env, Err(error("kana-native: could not queue background work")));
    Err(error("kana-native: could not queue background work"))
}

//! The examples' CPU clock (shared by `#[path]`; not an example itself).

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}
extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CPU time of this process (all threads), seconds: on a shared machine it counts only the time
/// our threads actually ran, so per-CPU-second figures are steadier than per wall-second.
pub fn cpu_seconds() -> f64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: CLOCK_PROCESS_CPUTIME_ID = 2 on Linux; ts is a valid out-pointer.
    unsafe { clock_gettime(2, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

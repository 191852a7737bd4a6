//! The Adam step of a [784,512,49] network at batch 32 with its weight-gradient products, fused
//! and not (a measuring aid, not a test):
//! `cargo run --release --example fused_speed -p kana-core [threads] [rounds]`
//! Alternates, per round: the weight-gradient products alone (`gemm`), the Adam step alone
//! (`step`), both one after the other (the unfused path) and `step_fused`; prints the best and
//! median CPU time (all threads) of each over the rounds (µs per step, 200 steps per measurement).
use kana_core::gemm::gemm;
use kana_core::mlp::{Mlp, Workspace};
use kana_core::optim::{step, step_fused, Optimizer, OptimizerState};
use kana_core::rng::Rng;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}
extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}
/// CPU time of this process (all threads), seconds: steadier than wall time on a shared machine.
fn cpu_seconds() -> f64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: CLOCK_PROCESS_CPUTIME_ID = 2 on Linux; ts is a valid out-pointer.
    unsafe { clock_gettime(2, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

fn main() {
    let threads: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let rounds: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(7);
    let (sizes, rows) = (vec![784, 512, 49], 32);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let mut rng = Rng::new(1);
    let mut net = Mlp::new(&sizes, &mut rng).unwrap();
    let mut ws = Workspace::for_net(&net, rows, true).unwrap();
    for a in std::iter::once(&mut ws.x).chain(ws.acts.iter_mut()).chain(ws.deltas.iter_mut()) {
        a.iter_mut().for_each(|v| *v = (rng.normal() * 0.1) as f32);
    }
    let mut grads = net.zero_grads().unwrap();
    let mut state = OptimizerState::default();
    let opt = Optimizer::ADAM_DEFAULT;
    state.prepare(&net, opt).unwrap();
    let products = |net: &Mlp, ws: &Workspace, grads: &mut kana_core::mlp::Grads| {
        for l in 0..net.layers.len() {
            let input = if l == 0 { ws.x.view() } else { ws.acts[l - 1].view() };
            gemm(1.0, input.t(), ws.deltas[l].view(), 0.0, grads.layers[l].w.view_mut());
        }
    };
    let names = ["gemm", "step", "gemm+step", "step_fused"];
    let mut t = vec![Vec::new(); 4];
    pool.install(|| {
        for _ in 0..rounds {
            for (w, times) in t.iter_mut().enumerate() {
                let t0 = cpu_seconds();
                for _ in 0..200 {
                    match w {
                        0 => products(&net, &ws, &mut grads),
                        1 => step(&mut net, &grads, opt, &mut state, 1e-3, 0.0),
                        2 => {
                            products(&net, &ws, &mut grads);
                            step(&mut net, &grads, opt, &mut state, 1e-3, 0.0)
                        }
                        _ => step_fused(&mut net, &mut grads, &ws, rows, opt, &mut state, 1e-3, 0.0),
                    }
                }
                times.push((cpu_seconds() - t0) / 200.0 * 1e6);
            }
        }
    });
    for (name, mut times) in names.iter().zip(t) {
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{name:>11}, {threads} thread(s): best {:.1} µs, median {:.1} µs", times[0], times[times.len() / 2]);
    }
}

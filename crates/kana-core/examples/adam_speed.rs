//! Time of one Adam update of a [784,512,49] network (430k parameters), the optimiser part of
//! a small-batch training step (a measuring aid, not a test):
//! `cargo run --release --example adam_speed -p kana-core [threads] [sizes, e.g. 64,49]`
//! Prints the median over 7 runs (wall, and CPU time of all threads), and the bandwidth that
//! implies at 7 floats moved per parameter (read θ, g, m, v; write θ, m, v). Small sizes (whose
//! arrays stay in L1/L2) give the update's compute floor per parameter.
use kana_core::mlp::Mlp;
use kana_core::optim::{step, Optimizer, OptimizerState};
use kana_core::rng::Rng;
use std::time::Instant;

#[path = "common/cpu_time.rs"]
mod cpu_time;
use cpu_time::cpu_seconds;

fn main() {
    let threads: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let sizes = std::env::args().nth(2).map(|s| s.split(',').map(|x| x.parse().unwrap()).collect::<Vec<usize>>()).unwrap_or(vec![784, 512, 49]);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let mut net = Mlp::new(&sizes, &mut Rng::new(1)).unwrap();
    let mut grads = net.zero_grads().unwrap();
    grads.layers.iter_mut().for_each(|g| g.w.iter_mut().enumerate().for_each(|(i, v)| *v = ((i % 13) as f32 - 6.0) * 1e-3));
    let mut state = OptimizerState::default();
    state.prepare(&net, Optimizer::ADAM_DEFAULT).unwrap();
    let params = net.num_params();
    pool.install(|| {
        step(&mut net, &grads, Optimizer::ADAM_DEFAULT, &mut state, 1e-3, 0.0);
        // enough steps for ~0.2 s per run whatever the size (short runs dodge a loaded machine's
        // preemption and flatter small sizes)
        let steps = (80_000_000 / params).max(20);
        let mut cpu = Vec::new();
        let mut t: Vec<f64> = (0..7)
            .map(|_| {
                let (t0, c0) = (Instant::now(), cpu_seconds());
                for _ in 0..steps {
                    step(&mut net, &grads, Optimizer::ADAM_DEFAULT, &mut state, 1e-3, 0.0);
                }
                cpu.push((cpu_seconds() - c0) / steps as f64);
                t0.elapsed().as_secs_f64() / steps as f64
            })
            .collect();
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        cpu.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let gbs = |s: f64| 7.0 * 4.0 * params as f64 / s / 1e9;
        println!(
            "adam {sizes:?} {params} params, {threads} thread(s): {:.1} µs/step (best {:.1}, worst {:.1}), {:.1} GB/s; CPU {:.1} µs/step (best {:.1}) = {:.3} ns per parameter and CPU-second",
            t[3] * 1e6, t[0] * 1e6, t[6] * 1e6, gbs(t[3]), cpu[3] * 1e6, cpu[0] * 1e6, cpu[3] / params as f64 * 1e9
        );
    });
}

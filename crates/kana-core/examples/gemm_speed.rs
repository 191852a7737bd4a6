//! GEMM throughput on the shapes of a [784,512,49] training step and of inference (a measuring
//! aid, not a test):
//! `cargo run --release --example gemm_speed -p kana-core [threads] [peak GFLOP/s] [shape filter]`
//! (`KANA_GEMM=portable` or `avx2` measures the narrower implementations). With the FMA peak for
//! that many threads (`bench/fma.c`), each line also gives the share of it; the time is the median
//! of 7 timed runs, with the fastest and slowest.
use kana_core::gemm::{gemm, isa};
use ndarray::Array2;
use std::time::Instant;

#[path = "common/cpu_time.rs"]
mod cpu_time;
use cpu_time::cpu_seconds;

fn main() {
    let threads: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let peak: Option<f64> = std::env::args().nth(2).and_then(|s| s.parse().ok());
    // optional third argument: only the shapes whose name contains it (e.g. "infer")
    let only = std::env::args().nth(3).unwrap_or_default();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    println!("gemm: {:?}, {threads} thread(s){}", isa(), peak.map(|p| format!(", peak {p} GFLOP/s")).unwrap_or_default());
    for batch in [32usize, 512, 2048, 0] {
        // (name, m, k, n, a transposed?, b transposed?)
        let shapes: &[(&str, usize, usize, usize, bool, bool)] = if batch == 0 {
            // full-batch gradient descent [784,100,80,49], one chunk of 2048 rows
            &[
                ("gd fwd1 X·W1", 2048, 784, 100, false, false),
                ("gd gW1 Xᵀ·δ1", 784, 2048, 100, true, false),
                ("gd fwd2 A1·W2", 2048, 100, 80, false, false),
                ("gd gW2 A1ᵀ·δ2", 100, 2048, 80, true, false),
                ("gd δ1 δ2·W2ᵀ", 2048, 80, 100, false, true),
                ("gd fwd3 A2·W3", 2048, 80, 49, false, false),
                ("gd gW3 A2ᵀ·δ3", 80, 2048, 49, true, false),
                ("gd δ2 δ3·W3ᵀ", 2048, 49, 80, false, true),
            ]
        } else if batch == 2048 {
            &[("infer X·W1", batch, 784, 512, false, false), ("infer A1·W2", batch, 512, 49, false, false)]
        } else {
            &[
                ("fwd1  X·W1", batch, 784, 512, false, false),
                ("gW1   Xᵀ·δ1", 784, batch, 512, true, false),
                ("fwd2  A1·W2", batch, 512, 49, false, false),
                ("gW2   A1ᵀ·δ2", 512, batch, 49, true, false),
                ("δ1    δ2·W2ᵀ", batch, 49, 512, false, true),
            ]
        };
        for &(name, m, k, n, ta, tb) in shapes {
            if !name.contains(only.as_str()) {
                continue;
            }
            // small random values, not ones: denormals and exact sums would flatter nothing, but
            // keep the data realistic
            let fill = |r: usize, c: usize| Array2::from_shape_fn((r, c), |(i, j)| ((i * 7 + j * 13) % 17) as f32 * 0.01 - 0.08);
            let a = if ta { fill(k, m) } else { fill(m, k) };
            let b = if tb { fill(n, k) } else { fill(k, n) };
            let mut c = Array2::<f32>::zeros((m, n));
            let run = |c: &mut Array2<f32>| {
                let av = if ta { a.t() } else { a.view() };
                let bv = if tb { b.t() } else { b.view() };
                gemm(1.0, av, bv, 0.0, c.view_mut());
            };
            let flop = 2.0 * (m * k * n) as f64;
            let reps = (0.3e9 / flop).max(3.0) as usize;
            pool.install(|| {
                run(&mut c);
                let mut cpu = Vec::new();
                let mut times: Vec<f64> = (0..7)
                    .map(|_| {
                        let (t, c0) = (Instant::now(), cpu_seconds());
                        for _ in 0..reps {
                            run(&mut c);
                        }
                        cpu.push((cpu_seconds() - c0) / reps as f64 / threads as f64);
                        t.elapsed().as_secs_f64() / reps as f64
                    })
                    .collect();
                cpu.sort_by(|x, y| x.partial_cmp(y).unwrap());
                times.sort_by(|x, y| x.partial_cmp(y).unwrap());
                let g = |s: f64| flop / s / 1e9;
                let share = peak.map(|p| format!("  {:3.0}% of peak ({:.0}–{:.0}%)", 100.0 * g(times[3]) / p, 100.0 * g(times[6]) / p, 100.0 * g(times[0]) / p)).unwrap_or_default();
                println!("batch {batch:4} {name:14} {m:4}×{k:4}×{n:4}: {:8.1} µs {:6.1} GFLOP/s{share}; per CPU-second {:6.1} GFLOP/s{}", times[3] * 1e6, g(times[3]), g(cpu[3]), peak.map(|p| format!(" = {:3.0}%", 100.0 * g(cpu[3]) / p)).unwrap_or_default());
            });
        }
    }
}

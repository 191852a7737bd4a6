//! GEMM throughput on the shapes of a [784,512,49] training step (a measuring aid, not a test):
//! `cargo run --release --example gemm_speed -p kana-core [threads]`
use kana_core::gemm::gemm;
use ndarray::Array2;
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    for batch in [32usize, 512] {
        // (name, m, k, n, a transposed?, b transposed?)
        let shapes = [
            ("fwd1  X·W1", batch, 784, 512, false, false),
            ("gW1   Xᵀ·δ1", 784, batch, 512, true, false),
            ("fwd2  A1·W2", batch, 512, 49, false, false),
            ("gW2   A1ᵀ·δ2", 512, batch, 49, true, false),
            ("δ1    δ2·W2ᵀ", batch, 49, 512, false, true),
        ];
        for (name, m, k, n, ta, tb) in shapes {
            let a = if ta { Array2::<f32>::ones((k, m)) } else { Array2::<f32>::ones((m, k)) };
            let b = if tb { Array2::<f32>::ones((n, k)) } else { Array2::<f32>::ones((k, n)) };
            let mut c = Array2::<f32>::zeros((m, n));
            let run = |c: &mut Array2<f32>| {
                let av = if ta { a.t() } else { a.view() };
                let bv = if tb { b.t() } else { b.view() };
                gemm(1.0, av, bv, 0.0, c.view_mut());
            };
            let reps = (2e9 / (2.0 * (m * k * n) as f64)).max(3.0) as usize;
            pool.install(|| {
                run(&mut c);
                let t = Instant::now();
                for _ in 0..reps {
                    run(&mut c);
                }
                let s = t.elapsed().as_secs_f64() / reps as f64;
                println!("batch {batch:4} {name:14} {m:4}×{k:4}×{n:4}: {:7.1} µs {:6.1} GFLOP/s", s * 1e6, 2.0 * (m * k * n) as f64 / s / 1e9);
            });
        }
    }
}

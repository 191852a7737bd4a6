//! Time of whole training steps on synthetic K49-shaped data (a measuring aid, not a test):
//! `cargo run --release --example train_speed -p kana-core [workload] [threads] [reps]`
//! workload: `b32` ([784,512,49], Adam, batch 32, 16,384 rows; the default), `b512` (batch 512),
//! `gd` ([784,100,80,49], full-batch gradient descent over 162,655 rows, one step per rep).
//! Prints per repetition the wall and CPU time (all threads) per step, and a checksum of the
//! weights (the same for every build that computes the same numbers).
use kana_core::data::Dataset;
use kana_core::optim::Optimizer;
use kana_core::rng::Rng;
use kana_core::train::{Control, EpochOptions, Trainer};
use std::time::Instant;

#[path = "common/cpu_time.rs"]
mod cpu_time;
use cpu_time::cpu_seconds;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workload = args.get(1).map(String::as_str).unwrap_or("b32");
    if workload == "steps" {
        let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
        return steps(arg(2, 2), arg(3, 1000), arg(4, 4));
    }
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let (sizes, n, opts): (Vec<usize>, usize, EpochOptions) = match workload {
        "b32" | "b128" | "b512" => {
            let batch = workload[1..].parse().unwrap();
            (vec![784, 512, 49], 16_384, EpochOptions { optimizer: Optimizer::ADAM_DEFAULT, lr: 1e-3, batch_size: batch, ..Default::default() })
        }
        "gd" => (vec![784, 100, 80, 49], 162_655, EpochOptions { optimizer: Optimizer::Sgd, lr: 0.1, ..Default::default() }),
        w => panic!("unknown workload {w}"),
    };
    let mut rng = Rng::new(7);
    let pixels: Vec<u8> = (0..n * 784).map(|_| (rng.next_u64() >> 56) as u8).collect();
    let labels: Vec<u32> = (0..n).map(|_| (rng.next_u64() % 49) as u32).collect();
    let data = Dataset::new(pixels, Some(labels), 784).unwrap();
    let mut t = Trainer::new(&sizes, 1, threads).unwrap();
    let control = Control::default();
    t.epoch(&data, &opts, &control).unwrap(); // warm-up
    for _ in 0..reps {
        let (w0, c0) = (Instant::now(), cpu_seconds());
        let s = t.epoch(&data, &opts, &control).unwrap();
        let (wall, cpu) = (w0.elapsed().as_secs_f64(), cpu_seconds() - c0);
        let sum: f64 = t.params().iter().flat_map(|p| p.iter()).map(|&x| x as f64).sum();
        println!(
            "{workload} {threads}t: {:.1} µs/step wall, {:.1} µs/step CPU ({:.0} samples/s wall, {:.0} per CPU-second/{threads}), loss {:.6}, checksum {sum:.9e}",
            wall / s.steps as f64 * 1e6,
            cpu / s.steps as f64 * 1e6,
            n as f64 / wall,
            n as f64 / (cpu / threads as f64),
            s.loss
        );
    }
}

/// `steps [threads] [count] [k]`: `count` short epochs of `k` batch-32 steps each ([784,512,49],
/// Adam, a 32·k-row data set), each epoch timed on its own, per step. On a loaded machine the
/// fastest epochs are the ones during which both threads kept their cores, so the low
/// percentiles compare builds where the mean cannot. (Each epoch also pays one hand-over into
/// the trainer's pool, shared by its k steps.)
fn steps(threads: usize, count: usize, k: usize) {
    let mut rng = Rng::new(7);
    let pixels: Vec<u8> = (0..32 * k * 784).map(|_| (rng.next_u64() >> 56) as u8).collect();
    let labels: Vec<u32> = (0..32 * k).map(|_| (rng.next_u64() % 49) as u32).collect();
    let data = Dataset::new(pixels, Some(labels), 784).unwrap();
    let mut t = Trainer::new(&[784, 512, 49], 1, threads).unwrap();
    let opts = EpochOptions { optimizer: Optimizer::ADAM_DEFAULT, lr: 1e-3, batch_size: 32, ..Default::default() };
    let control = Control::default();
    for _ in 0..50 {
        t.epoch(&data, &opts, &control).unwrap(); // warm-up
    }
    let mut wall = Vec::with_capacity(count);
    let c0 = cpu_seconds();
    for _ in 0..count {
        let w0 = Instant::now();
        t.epoch(&data, &opts, &control).unwrap();
        wall.push(w0.elapsed().as_secs_f64() * 1e6 / k as f64);
    }
    let cpu = (cpu_seconds() - c0) / (count * k) as f64 * 1e6;
    wall.sort_by(f64::total_cmp);
    let q = |f: f64| wall[((count - 1) as f64 * f) as usize];
    let sum: f64 = t.params().iter().flat_map(|p| p.iter()).map(|&x| x as f64).sum();
    println!(
        "steps {threads}t ×{k}: wall µs min {:.0} p10 {:.0} p25 {:.0} median {:.0}, CPU {cpu:.0} µs/step, checksum {sum:.9e}",
        q(0.0), q(0.1), q(0.25), q(0.5)
    );
}

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

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}
extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}
fn cpu_seconds() -> f64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: CLOCK_PROCESS_CPUTIME_ID = 2 on Linux; ts is a valid out-pointer.
    unsafe { clock_gettime(2, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workload = args.get(1).map(String::as_str).unwrap_or("b32");
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

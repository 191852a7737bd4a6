//! `C ← α·A·B + β·C` in f32, the operation that holds nearly all of an MLP's arithmetic.
//!
//! matrixmultiply supplies the packed, cache-blocked SIMD kernel and picks AVX-512, AVX2+FMA,
//! SSE2 or a scalar fallback at run time; it accepts any row/column strides, so transposed views
//! (`a.t()`) cost nothing. We add the threading: the output is cut into blocks of rows (or of
//! columns when it is short and wide) and each block is one independent kernel call on the
//! current rayon pool. Every element of C is still computed by one call with the same inner-product
//! order, so results do not depend on the number of threads.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

/// Below this many multiply-adds a second thread costs more (wake-up, split) than it saves.
const PARALLEL_MIN_MACS: usize = 1 << 20;
/// Blocks are multiples of this many rows/columns so that every block keeps full kernel tiles
/// (the AVX2 kernel is 8×8, the AVX-512 one 16×16); finer would split tiles, coarser unbalances
/// the threads (784 rows in blocks of 32 split 416/368).
const BLOCK_ALIGN: usize = 16;

/// `c ← alpha·a·b + beta·c`. With `beta == 0`, `c` is write-only (its old contents, even NaN, are ignored).
pub fn gemm(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: ArrayViewMut2<f32>) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(k == k2 && c.dim() == (m, n), "gemm shapes: a {:?}, b {:?}, c {:?}", a.dim(), b.dim(), c.dim());
    let threads = rayon::current_num_threads();
    if threads <= 1 || m * n * k < PARALLEL_MIN_MACS {
        return kernel(alpha, a, b, beta, c);
    }
    // Cut the longer side of C into one block per thread (whole kernel tiles each), by recursive
    // halving with rayon::join: no allocation, and idle threads steal the halves.
    if m >= n {
        split_rows(alpha, a, b, beta, c, block(m, threads));
    } else {
        split_cols(alpha, a, b, beta, c, block(n, threads));
    }
}

fn split_rows(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: ArrayViewMut2<f32>, rows: usize) {
    let m = a.nrows();
    if m <= rows {
        return kernel(alpha, a, b, beta, c);
    }
    let mid = m.div_ceil(2 * rows) * rows; // a whole number of blocks on each side
    let (a0, a1) = a.split_at(Axis(0), mid);
    let (c0, c1) = c.split_at(Axis(0), mid);
    rayon::join(|| split_rows(alpha, a0, b, beta, c0, rows), || split_rows(alpha, a1, b, beta, c1, rows));
}

fn split_cols(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: ArrayViewMut2<f32>, cols: usize) {
    let n = b.ncols();
    if n <= cols {
        return kernel(alpha, a, b, beta, c);
    }
    let mid = n.div_ceil(2 * cols) * cols;
    let (b0, b1) = b.split_at(Axis(1), mid);
    let (c0, c1) = c.split_at(Axis(1), mid);
    rayon::join(|| split_cols(alpha, a, b0, beta, c0, cols), || split_cols(alpha, a, b1, beta, c1, cols));
}

/// Size of one thread's block: an even share, rounded up to whole kernel tiles.
fn block(len: usize, threads: usize) -> usize {
    let share = len.div_ceil(threads);
    share.div_ceil(BLOCK_ALIGN) * BLOCK_ALIGN
}

/// One single-threaded matrixmultiply call on strided views.
fn kernel(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, mut c: ArrayViewMut2<f32>) {
    let (m, k) = a.dim();
    let n = b.dim().1;
    if m == 0 || n == 0 {
        return;
    }
    let (sa, sb, sc) = (a.strides(), b.strides(), c.strides());
    let (sc0, sc1) = (sc[0], sc[1]);
    // SAFETY: the pointers and strides come from live ndarray views whose shapes were checked
    // above ((m×k)·(k×n) → m×n); `c` is a unique mutable view, so no other thread touches it.
    unsafe {
        matrixmultiply::sgemm(
            m, k, n, alpha,
            a.as_ptr(), sa[0], sa[1],
            b.as_ptr(), sb[0], sb[1],
            beta,
            c.as_mut_ptr(), sc0, sc1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use ndarray::Array2;

    fn random(m: usize, n: usize, rng: &mut Rng) -> Array2<f32> {
        Array2::from_shape_fn((m, n), |_| rng.normal() as f32)
    }

    fn naive(a: &ArrayView2<f32>, b: &ArrayView2<f32>) -> Array2<f64> {
        let (m, k) = a.dim();
        let n = b.dim().1;
        Array2::from_shape_fn((m, n), |(i, j)| (0..k).map(|p| a[[i, p]] as f64 * b[[p, j]] as f64).sum())
    }

    #[test]
    fn matches_naive_product_on_every_split_and_transpose() {
        let mut rng = Rng::new(1);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for &(m, k, n) in &[(1, 1, 1), (7, 5, 3), (300, 129, 65), (40, 200, 700), (513, 64, 257)] {
            let a = random(m, k, &mut rng);
            let bt = random(n, k, &mut rng); // use b = btᵀ to exercise strided input
            let want = naive(&a.view(), &bt.t());
            for threads in [1, 3] {
                let mut c = Array2::from_elem((m, n), f32::NAN); // beta = 0 must ignore NaN
                let mut run = || gemm(1.0, a.view(), bt.t(), 0.0, c.view_mut());
                if threads == 1 { run() } else { pool.install(run) }
                for ((i, j), &v) in c.indexed_iter() {
                    let w = want[[i, j]];
                    assert!((v as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()), "({m},{k},{n}) t{threads} [{i},{j}] {v} vs {w}");
                }
            }
        }
    }

    #[test]
    fn accumulates_with_beta_and_is_thread_count_independent() {
        let mut rng = Rng::new(2);
        let (a, b) = (random(600, 300, &mut rng), random(300, 200, &mut rng));
        let c0 = random(600, 200, &mut rng);
        let mut c1 = c0.clone();
        gemm(0.5, a.view(), b.view(), 2.0, c1.view_mut());
        let mut c2 = c0.clone();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| gemm(0.5, a.view(), b.view(), 2.0, c2.view_mut()));
        assert_eq!(c1, c2, "bit-identical across thread counts");
        let prod = naive(&a.view(), &b.view());
        for ((i, j), &v) in c1.indexed_iter() {
            let w = 0.5 * prod[[i, j]] + 2.0 * c0[[i, j]] as f64;
            assert!((v as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()));
        }
    }
}

//! `C ← α·A·B + β·C` in f32, the operation that holds nearly all of an MLP's arithmetic.
//!
//! On x86-64 with AVX-512F (or AVX2+FMA) our own register-blocked kernels do the work, chosen at
//! run time; elsewhere (aarch64, old x86) matrixmultiply's portable kernels do. Our kernels:
//!
//! * **Micro-kernel.** A tile of up to `MR` rows × `NR` columns of C lives in registers while the
//!   inner dimension runs: per step of k, one row of B (`NR` floats = 2 vectors) is loaded and each
//!   of the tile's rows broadcasts one element of A into two FMAs. AVX-512: 14 × 32 (28
//!   accumulators of the 32 zmm registers); AVX2: 6 × 16 (12 of the 16 ymm). Tiles shorter than
//!   `MR` rows use the same code instantiated for fewer rows (no wasted lanes); tiles narrower than
//!   `NR` columns compute on a zero-padded panel and copy the valid part out, with one vector per
//!   row instead of two when they are at most `NR / 2` wide, and on AVX-512 one 8-lane vector
//!   when at most 8 (n = 100 = 3 × 32 + 4, n = 80 = 2 × 32 + 16: full-batch GD's layers), so
//!   the last panel costs a half or a quarter of the FMAs.
//! * **Packing and blocking.** k is cut into blocks of at most `KC` (each block's B panel, `KC ×
//!   NR`, stays in L1 while a tile's A panel streams, and the B block `KC × NC` in L2). A panel of
//!   A is packed k-major once per (tile, k block) unless A is already laid out that way (a
//!   transposed view, as in `Xᵀ·δ`); B is packed once per (k block, column block) when enough row
//!   tiles reuse it, otherwise read in place (row-major B, few rows of A: `X·W` at batch 32).
//! * **Threads.** The output is cut into blocks of rows (or of whole `NR`-column panels when it is
//!   short and wide), one independent call per rayon thread.
//!
//! **Reproducibility.** Every element of C is one chain of FMAs over k in increasing order within a
//! k block, the k blocks depend on k alone, and each block's partial sum is added into C in order.
//! Nothing depends on the tile an element falls in, its row count, the packing, or the thread
//! split, so results are bit-identical for any number of threads (and between the AVX-512 and AVX2
//! kernels, which do the same FMAs). They differ from matrixmultiply's in the last bits (another
//! summation order).

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Axis};

/// Below this many multiply-adds a second thread costs more (wake-up, split) than it saves.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// [`PARALLEL_MIN_MACS`], or `KANA_GEMM_SPLIT_MIN` (a measuring switch, like `KANA_GEMM`: the
/// split never changes a result, only the speed).
fn parallel_min_macs() -> usize {
    use std::sync::OnceLock;
    static V: OnceLock<usize> = OnceLock::new();
    *V.get_or_init(|| std::env::var("KANA_GEMM_SPLIT_MIN").ok().and_then(|s| s.parse().ok()).unwrap_or(PARALLEL_MIN_MACS))
}

/// `c ← alpha·a·b + beta·c`. With `beta == 0`, `c` is write-only (its old contents, even NaN, are ignored).
pub fn gemm(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: ArrayViewMut2<f32>) {
    gemm_epi(alpha, a, b, beta, Epi { bias: None, relu: false }, c)
}

/// `c ← a·b + bias` (the bias added to every row), then `max(·, 0)` if `relu`: a dense layer's
/// forward pass in one sweep over C — the bias and activation are applied to each tile while it
/// is still in registers, on every thread. Bit for bit the same as `gemm(1, a, b, 0, c)` followed
/// by `c = (c + bias).max(0)` per element (`f32::max`: NaN + bias gives 0, as there).
pub fn gemm_bias(a: ArrayView2<f32>, b: ArrayView2<f32>, bias: ArrayView1<f32>, relu: bool, c: ArrayViewMut2<f32>) {
    assert!(bias.len() == b.ncols(), "gemm_bias: bias has {} values for {} columns", bias.len(), b.ncols());
    gemm_epi(1.0, a, b, 0.0, Epi { bias: Some(bias), relu }, c)
}

/// What is applied to C after the product: `+ bias` (per column) and ReLU.
#[derive(Clone, Copy)]
struct Epi<'a> {
    bias: Option<ArrayView1<'a, f32>>,
    relu: bool,
}

fn gemm_epi(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, epi: Epi, c: ArrayViewMut2<f32>) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(k == k2 && c.dim() == (m, n), "gemm shapes: a {:?}, b {:?}, c {:?}", a.dim(), b.dim(), c.dim());
    let threads = rayon::current_num_threads();
    if threads <= 1 || m * n * k < parallel_min_macs() {
        return kernel(alpha, a, b, beta, epi, c);
    }
    // Cut C into one block per thread, by recursive halving with rayon::join: no allocation, and
    // idle threads steal the halves. Column blocks (whole NR-wide panels) when there are enough
    // columns: each thread then packs only its share of B (row blocks would have every thread
    // pack all of it; A is read in place either way), or when C is wider than tall. Otherwise
    // row blocks, of any length (short tiles cost no more than their rows).
    if n >= threads * COL_SPLIT_MIN || n > m {
        split_cols(alpha, a, b, beta, epi, c, block(n, threads, COL_ALIGN));
    } else {
        split_rows(alpha, a, b, beta, epi, c, m.div_ceil(threads));
    }
}

/// Split by columns when every thread gets at least this many (4 AVX-512 panels).
const COL_SPLIT_MIN: usize = 128;

/// Column blocks are multiples of this (the widest panel, AVX-512's 32 = 2 × AVX2's 16), so that
/// splitting never adds a partial panel.
const COL_ALIGN: usize = 32;

fn split_rows(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, epi: Epi, c: ArrayViewMut2<f32>, rows: usize) {
    let m = a.nrows();
    if m <= rows {
        return kernel(alpha, a, b, beta, epi, c);
    }
    let mid = m.div_ceil(2 * rows) * rows; // a whole number of blocks on each side
    let (a0, a1) = a.split_at(Axis(0), mid);
    let (c0, c1) = c.split_at(Axis(0), mid);
    rayon::join(|| split_rows(alpha, a0, b, beta, epi, c0, rows), || split_rows(alpha, a1, b, beta, epi, c1, rows));
}

fn split_cols(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, epi: Epi, c: ArrayViewMut2<f32>, cols: usize) {
    let n = b.ncols();
    if n <= cols {
        return kernel(alpha, a, b, beta, epi, c);
    }
    let mid = n.div_ceil(2 * cols) * cols;
    let (b0, b1) = b.split_at(Axis(1), mid);
    let (c0, c1) = c.split_at(Axis(1), mid);
    let (e0, e1) = match epi.bias {
        Some(bias) => {
            let (x0, x1) = bias.split_at(Axis(0), mid);
            (Epi { bias: Some(x0), ..epi }, Epi { bias: Some(x1), ..epi })
        }
        None => (epi, epi),
    };
    rayon::join(|| split_cols(alpha, a, b0, beta, e0, c0, cols), || split_cols(alpha, a, b1, beta, e1, c1, cols));
}

/// Size of one thread's block: an even share, rounded up to a multiple of `align`.
fn block(len: usize, threads: usize, align: usize) -> usize {
    len.div_ceil(threads).div_ceil(align) * align
}

/// Which single-threaded implementation runs on this processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
    /// matrixmultiply's kernels (any processor)
    Portable,
}

/// The implementation [`gemm`] uses here (detected once; `KANA_GEMM=portable|avx2` forces a
/// narrower one, for measurements and tests).
pub fn isa() -> Isa {
    use std::sync::OnceLock;
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let forced = std::env::var("KANA_GEMM").ok();
        let best = detect();
        match forced.as_deref() {
            Some("portable") => Isa::Portable,
            Some("avx2") if best != Isa::Portable => Isa::Avx2,
            _ => best,
        }
    })
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        // (VL for the 8-lane tiles of narrow panels; every AVX-512 processor but Xeon Phi has it)
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// One single-threaded product on strided views.
fn kernel(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, epi: Epi, c: ArrayViewMut2<f32>) {
    kernel_with(isa(), alpha, a, b, beta, epi, c)
}

fn kernel_with(isa: Isa, alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, epi: Epi, mut c: ArrayViewMut2<f32>) {
    let (m, n) = (a.nrows(), b.ncols());
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if a.ncols() == 0 {
            // the empty sum: C ← β·C (and with β = 0, C ← 0 whatever it held)
            c.map_inplace(|v| *v = if beta == 0.0 { 0.0 } else { beta * *v });
            return epilogue(epi, c);
        }
        match isa {
            // SAFETY: `isa` comes from run-time detection (or a narrower choice), so the
            // processor has the instructions; the views' shapes were checked by `gemm`.
            Isa::Avx512 => return unsafe { x86::drive::<x86::Avx512>(alpha, &a, &b, beta, epi.bias.as_ref(), epi.relu, &mut c) },
            Isa::Avx2 => return unsafe { x86::drive::<x86::Avx2>(alpha, &a, &b, beta, epi.bias.as_ref(), epi.relu, &mut c) },
            Isa::Portable => {}
        }
    }
    let _ = isa;
    let (sa, sb, sc) = (a.strides(), b.strides(), c.strides());
    let (sc0, sc1) = (sc[0], sc[1]);
    // SAFETY: the pointers and strides come from live ndarray views whose shapes were checked
    // above ((m×k)·(k×n) → m×n); `c` is a unique mutable view, so no other thread touches it.
    unsafe {
        matrixmultiply::sgemm(
            m, a.ncols(), n, alpha,
            a.as_ptr(), sa[0], sa[1],
            b.as_ptr(), sb[0], sb[1],
            beta,
            c.as_mut_ptr(), sc0, sc1,
        );
    }
    epilogue(epi, c)
}

/// The epilogue as a separate pass (for the portable path), with the fused kernels' arithmetic.
fn epilogue(epi: Epi, mut c: ArrayViewMut2<f32>) {
    if let Some(bias) = epi.bias {
        for mut row in c.rows_mut() {
            ndarray::Zip::from(&mut row).and(&bias).for_each(|z, &b| *z = if epi.relu { (*z + b).max(0.0) } else { *z + b });
        }
    } else if epi.relu {
        c.map_inplace(|z| *z = z.max(0.0));
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};
    use std::arch::x86_64::*;
    use std::cell::RefCell;

    /// Largest k block: a B panel of KC × 32 floats (40 KB) streams through L1 with the A panel
    /// (KC × 14, 18 KB) resident; the B block KC × NC (640 KB) stays in the 1 MB L2.
    const KC: usize = 320;
    /// Widest column block whose packed B is kept (multiple of both kernels' NR).
    const NC: usize = 512;
    /// Pack B (rather than read it in place) when at least this many row tiles reuse each panel.
    const PACK_B_MIN_TILES: usize = 4;

    /// A register-blocked micro-kernel: `MR × NR` tile, `NR` = 2 vectors.
    pub trait Micro {
        const MR: usize;
        const NR: usize;
        /// Tile of `rows ≤ MR` rows: `acc = Σ_{p<kc} a[r·ars + p·lda] · b[p·ldb + j]`, then
        /// `c[r·ldc + j] = alpha·acc + beta·c` (`beta == 0`: c is not read), then `+ bias[j]`
        /// unless `bias` is null, then `max(·, 0)` if `relu`.
        ///
        /// # Safety
        /// The processor has the kernel's instructions; `a` holds `rows × kc` floats at those
        /// strides, `b` `kc` steps of `NR` floats at stride `ldb`, `c` `rows` rows of `NR`
        /// floats at stride `ldc`, `bias` (if not null) `NR` floats. Only the first `cols ≤ NR`
        /// columns are wanted: a ragged last panel of at most `NR / 2` columns is computed with one
        /// vector per row (half the FMAs), on AVX-512 one of at most 8 columns with one 8-lane
        /// vector (a quarter); the wanted columns get the same FMAs whatever the width, and C's
        /// columns past the computed width are left alone.
        #[allow(clippy::too_many_arguments)]
        unsafe fn tile(rows: usize, kc: usize, a: *const f32, ars: usize, lda: usize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, alpha: f32, beta: f32, bias: *const f32, relu: bool, cols: usize);
    }

    /// Generates the kernel body for a fixed row count `R`: two accumulator vectors per row (one
    /// if `$H`, half width: the second vector's work is left out at compile time).
    macro_rules! micro_body {
        ($R:expr, $S:expr, $H:expr, $kc:ident, $a:ident, $ars:ident, $lda:ident, $b:ident, $ldb:ident, $c:ident, $ldc:ident, $alpha:ident, $beta:ident, $bias:ident, $relu:ident,
         $W:expr, $zero:ident, $load:ident, $store:ident, $set1:ident, $fmadd:ident, $mul:ident, $add:ident, $max:ident) => {{
            let mut acc0 = [$zero(); $R];
            let mut acc1 = [$zero(); $R];
            let (mut a, mut b) = ($a, $b);
            for _ in 0..$kc {
                let b0 = $load(b);
                let b1 = if $H { $zero() } else { $load(b.add($W)) };
                for r in 0..$R {
                    // $S: rows of A `ars` apart (A read in place, row-major), else adjacent (packed)
                    let ar = $set1(*a.add(if $S { r * $ars } else { r }));
                    acc0[r] = $fmadd(ar, b0, acc0[r]);
                    if !$H {
                        acc1[r] = $fmadd(ar, b1, acc1[r]);
                    }
                }
                a = a.add($lda);
                b = b.add($ldb);
            }
            let alpha = $set1($alpha);
            let beta = $set1($beta);
            let zero = $zero();
            let has_bias = !$bias.is_null();
            let (bias0, bias1) = if has_bias { ($load($bias), if $H { zero } else { $load($bias.add($W)) }) } else { (zero, zero) };
            for r in 0..$R {
                let c = $c.add(r * $ldc);
                // alpha·acc + beta·c in one rounding (beta = 1: beta·c is exact)
                let (mut v0, mut v1) = if $beta == 0.0 {
                    ($mul(alpha, acc0[r]), $mul(alpha, acc1[r]))
                } else {
                    ($fmadd(alpha, acc0[r], $mul(beta, $load(c))), if $H { zero } else { $fmadd(alpha, acc1[r], $mul(beta, $load(c.add($W)))) })
                };
                if has_bias {
                    v0 = $add(v0, bias0);
                    v1 = $add(v1, bias1);
                }
                if $relu {
                    // max(v, 0) returns its second operand when v is NaN: 0, as f32::max does
                    v0 = $max(v0, zero);
                    v1 = $max(v1, zero);
                }
                $store(c, v0);
                if !$H {
                    $store(c.add($W), v1);
                }
            }
        }};
    }

    /// Dispatch on the row count to the fully unrolled instantiation.
    macro_rules! by_rows {
        ($rows:expr, $f:ident, $s:expr, $h:expr, $($arg:expr),*) => {
            match $rows {
                1 => $f::<1, $s, $h>($($arg),*), 2 => $f::<2, $s, $h>($($arg),*), 3 => $f::<3, $s, $h>($($arg),*),
                4 => $f::<4, $s, $h>($($arg),*), 5 => $f::<5, $s, $h>($($arg),*), 6 => $f::<6, $s, $h>($($arg),*),
                7 => $f::<7, $s, $h>($($arg),*), 8 => $f::<8, $s, $h>($($arg),*), 9 => $f::<9, $s, $h>($($arg),*),
                10 => $f::<10, $s, $h>($($arg),*), 11 => $f::<11, $s, $h>($($arg),*), 12 => $f::<12, $s, $h>($($arg),*),
                13 => $f::<13, $s, $h>($($arg),*), 14 => $f::<14, $s, $h>($($arg),*),
                _ => unreachable!("tile rows {}", $rows),
            }
        };
    }
    macro_rules! by_rows6 {
        ($rows:expr, $f:ident, $s:expr, $h:expr, $($arg:expr),*) => {
            match $rows {
                1 => $f::<1, $s, $h>($($arg),*), 2 => $f::<2, $s, $h>($($arg),*), 3 => $f::<3, $s, $h>($($arg),*),
                4 => $f::<4, $s, $h>($($arg),*), 5 => $f::<5, $s, $h>($($arg),*), 6 => $f::<6, $s, $h>($($arg),*),
                _ => unreachable!("tile rows {}", $rows),
            }
        };
    }

    pub struct Avx512;
    pub struct Avx2;

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile512<const R: usize, const S: bool, const H: bool>(kc: usize, a: *const f32, ars: usize, lda: usize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, alpha: f32, beta: f32, bias: *const f32, relu: bool) {
        micro_body!(R, S, H, kc, a, ars, lda, b, ldb, c, ldc, alpha, beta, bias, relu, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_mul_ps, _mm512_add_ps, _mm512_max_ps)
    }

    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile256<const R: usize, const S: bool, const H: bool>(kc: usize, a: *const f32, ars: usize, lda: usize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, alpha: f32, beta: f32, bias: *const f32, relu: bool) {
        micro_body!(R, S, H, kc, a, ars, lda, b, ldb, c, ldc, alpha, beta, bias, relu, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_mul_ps, _mm256_add_ps, _mm256_max_ps)
    }

    /// The 8-lane kernel inside the AVX-512 one, for the narrowest panels (≤ 8 columns): with
    /// AVX-512VL it has 32 vector registers, enough for 14 rows of accumulators.
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile256vl<const R: usize, const S: bool, const H: bool>(kc: usize, a: *const f32, ars: usize, lda: usize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, alpha: f32, beta: f32, bias: *const f32, relu: bool) {
        // H is always true here: one 8-lane vector per row (the macro's second vector unused)
        micro_body!(R, S, H, kc, a, ars, lda, b, ldb, c, ldc, alpha, beta, bias, relu, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_mul_ps, _mm256_add_ps, _mm256_max_ps)
    }

    impl Micro for Avx512 {
        const MR: usize = 14;
        const NR: usize = 32;
        unsafe fn tile(rows: usize, kc: usize, a: *const f32, ars: usize, lda: usize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, alpha: f32, beta: f32, bias: *const f32, relu: bool, cols: usize) {
            match (ars == 1, cols) {
                (true, 17..) => by_rows!(rows, tile512, false, false, kc, a, ars, lda, b, ldb, c, ldc, alpha, beta, bias, relu),
                (false, 17..) => by_rows!(rows, tile512, true, false, kc, a, ars, lda, b, ldb, c, ldc, alpha, beta, bias, relu),
                (true, 9..) => by_rows!(rows, tile512, false, true, kc, a, ars, lda, b, ldb, c, ldc, alpha, beta, bias, relu),
                (false, 9..) => by_rows!(rows, tile512, true, true, kc, a, ars, lda, b, ldb, c, ldc, alpha, beta, bias, relu),
                (true, _) => by_rows!(rows, tile256vl, false, true, kc, a, ars, lda, b, ldb, c, ldc, alpha, beta, bias, relu),
                (false, _) => by_rows!(rows, tile256vl, true, true, kc, a, ars, lda, b, ldb, c, ldc, alpha, beta, bias, relu),
            }
        }
    }

    impl Micro for Avx2 {
        const MR: usize = 6;
        const NR: usize = 16;
        unsafe fn tile(rows: usize, kc: usize, a: *const f32, ars: usize, lda: usize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, alpha: f32, beta: f32, bias: *const f32, relu: bool, cols: usize) {
            match (ars == 1, cols) {
                (true, 9..) => by_rows6!(rows, tile256, false, false, kc, a, ars, lda, b, ldb, c, ldc, alpha, beta, bias, relu),
                (false, 9..) => by_rows6!(rows, tile256, true, false, kc, a, ars, lda, b, ldb, c, ldc, alpha, beta, bias, relu),
                (true, _) => by_rows6!(rows, tile256, false, true, kc, a, ars, lda, b, ldb, c, ldc, alpha, beta, bias, relu),
                (false, _) => by_rows6!(rows, tile256, true, true, kc, a, ars, lda, b, ldb, c, ldc, alpha, beta, bias, relu),
            }
        }
    }

    /// 64-byte aligned storage for packed panels (whole cache lines, aligned vector loads).
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    struct Line([f32; 16]);

    thread_local! {
        /// Per-thread packing buffers, kept between calls so a training step allocates nothing.
        static BUFFERS: RefCell<[Vec<Line>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
    }

    fn floats(v: &mut Vec<Line>, n: usize) -> *mut f32 {
        let lines = n.div_ceil(16);
        if v.len() < lines {
            v.resize(lines, Line([0.0; 16]));
        }
        v.as_mut_ptr() as *mut f32
    }

    /// Row tiles of at most `mr` rows, as even as possible (m = 32, mr = 14 → 11, 11, 10).
    fn row_tiles(m: usize, mr: usize) -> impl Iterator<Item = (usize, usize)> {
        let t = m.div_ceil(mr);
        let (q, extra) = (m / t, m % t);
        (0..t).map(move |i| (i * q + i.min(extra), q + (i < extra) as usize))
    }

    /// The single-threaded product with kernel `K`.
    ///
    /// # Safety
    /// The processor supports `K`'s instructions; shapes are consistent (checked by the caller).
    pub unsafe fn drive<K: Micro>(alpha: f32, a: &ArrayView2<f32>, b: &ArrayView2<f32>, beta: f32, bias: Option<&ArrayView1<f32>>, relu: bool, c: &mut ArrayViewMut2<f32>) {
        BUFFERS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut bufs) => drive_with::<K>(alpha, a, b, beta, bias, relu, c, &mut bufs),
            // re-entered on this thread (cannot happen today: kernels never wait on rayon)
            Err(_) => drive_with::<K>(alpha, a, b, beta, bias, relu, c, &mut Default::default()),
        })
    }

    #[allow(clippy::too_many_arguments)]
    unsafe fn drive_with<K: Micro>(alpha: f32, a: &ArrayView2<f32>, b: &ArrayView2<f32>, beta: f32, bias: Option<&ArrayView1<f32>>, relu: bool, c: &mut ArrayViewMut2<f32>, bufs: &mut [Vec<Line>; 3]) {
        let [abuf, bbuf, biasbuf] = bufs;
        let (mr, nr) = (K::MR, K::NR);
        let (m, k) = a.dim();
        let n = b.dim().1;
        let (rsa, csa) = (a.strides()[0], a.strides()[1]);
        let (rsb, csb) = (b.strides()[0], b.strides()[1]);
        let (rsc, csc) = (c.strides()[0], c.strides()[1]);
        let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
        let kblocks = k.div_ceil(KC);
        let kc_max = k.div_ceil(kblocks);
        // A already k-major with unit row stride (a transposed view): its panels need no packing
        let a_direct = rsa == 1 && csa > 0;
        // row-major A read in place too: each k step broadcasts from `rows` row streams (L1
        // hits after the first panel); measured faster than packing, by 15 points of the peak
        // when few panels reuse a packed A (n = 49)
        let a_rows = !a_direct && csa == 1 && rsa > 0;
        let tiles = m.div_ceil(mr);
        // B in place: unit column stride, a positive row stride, and too few tiles to repay packing
        let b_direct = csb == 1 && rsb > 0 && tiles < PACK_B_MIN_TILES;
        let c_direct = csc == 1 && rsc >= 0;
        let pa = floats(abuf, mr * kc_max);
        let pb = floats(bbuf, kc_max * NC.min(n.div_ceil(nr) * nr));
        // the bias, contiguous and zero-padded to whole panels (so every panel reads NR values)
        let pbias = match bias {
            Some(bias) => {
                let p = floats(biasbuf, n.div_ceil(nr) * nr);
                for j in 0..n.div_ceil(nr) * nr {
                    *p.add(j) = if j < n { bias[j] } else { 0.0 };
                }
                p as *const f32
            }
            None => std::ptr::null(),
        };
        let mut ctile = [Line([0.0; 16]); 28]; // MR × NR = 14 × 32 floats at most
        let ct = ctile.as_mut_ptr() as *mut f32;
        debug_assert!(mr * nr <= 28 * 16);

        let mut jc = 0;
        while jc < n {
            let ncb = NC.min(n - jc);
            let panels = ncb.div_ceil(nr);
            for kb in 0..kblocks {
                let pc = kb * kc_max;
                let kc = kc_max.min(k - pc);
                let beta_k = if kb == 0 { beta } else { 1.0 };
                // the epilogue belongs to the last k block, when C holds the whole sum
                let last = kb + 1 == kblocks;
                let relu_k = relu && last;
                // B block (kc × ncb) as panels of nr columns, each kc × nr, zero-padded on the right
                if !b_direct {
                    for jp in 0..panels {
                        let j0 = jc + jp * nr;
                        pack_b(bp, rsb, csb, pc, kc, j0, nr.min(n - j0), nr, pb.add(jp * kc * nr));
                    }
                }
                let bias_at = |j0: usize| if last && !pbias.is_null() { pbias.add(j0) } else { std::ptr::null() };
                for (i0, rows) in row_tiles(m, mr) {
                    let (a_ptr, ars, lda) = if a_direct {
                        (ap.offset(i0 as isize + pc as isize * csa), 1, csa as usize)
                    } else if a_rows {
                        (ap.offset(i0 as isize * rsa + pc as isize), rsa as usize, 1)
                    } else {
                        pack_a(ap, rsa, csa, i0, rows, pc, kc, pa);
                        (pa as *const f32, 1, rows)
                    };
                    for jp in 0..panels {
                        let j0 = jc + jp * nr;
                        let cols = nr.min(n - j0);
                        let (b_ptr, ldb) = if b_direct && cols == nr {
                            (bp.offset(pc as isize * rsb + j0 as isize), rsb as usize)
                        } else if b_direct {
                            // the ragged last panel: pack it alone
                            pack_b(bp, rsb, csb, pc, kc, j0, cols, nr, pb);
                            (pb as *const f32, nr)
                        } else {
                            (pb.add(jp * kc * nr) as *const f32, nr)
                        };
                        let c0 = cp.offset(i0 as isize * rsc + j0 as isize * csc);
                        if c_direct && cols == nr {
                            K::tile(rows, kc, a_ptr, ars, lda, b_ptr, ldb, c0, rsc as usize, alpha, beta_k, bias_at(j0), relu_k, nr);
                        } else {
                            // narrow or strided C: compute on a local tile and copy the valid part
                            if beta_k != 0.0 {
                                for r in 0..rows {
                                    for j in 0..cols {
                                        *ct.add(r * nr + j) = *c0.offset(r as isize * rsc + j as isize * csc);
                                    }
                                }
                            }
                            // a ragged panel (n = 100 → 4 columns, n = 80 → 16) computes only as wide as it must
                            K::tile(rows, kc, a_ptr, ars, lda, b_ptr, ldb, ct, nr, alpha, beta_k, bias_at(j0), relu_k, cols);
                            for r in 0..rows {
                                for j in 0..cols {
                                    *c0.offset(r as isize * rsc + j as isize * csc) = *ct.add(r * nr + j);
                                }
                            }
                        }
                    }
                }
            }
            jc += ncb;
        }
    }

    /// A's rows `i0..i0+rows`, columns `pc..pc+kc`, k-major: `dst[p·rows + r] = A[i0+r, pc+p]`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn pack_a(a: *const f32, rsa: isize, csa: isize, i0: usize, rows: usize, pc: usize, kc: usize, dst: *mut f32) {
        if csa == 1 {
            // row-major A: `rows` read streams, one sequential write stream
            let mut src = [a; 16];
            for (r, s) in src.iter_mut().enumerate().take(rows) {
                *s = a.offset((i0 + r) as isize * rsa + pc as isize);
            }
            let mut d = dst;
            for p in 0..kc {
                for s in src.iter().take(rows) {
                    *d = *s.add(p);
                    d = d.add(1);
                }
            }
            return;
        }
        for r in 0..rows {
            let src = a.offset((i0 + r) as isize * rsa + pc as isize * csa);
            for p in 0..kc {
                *dst.add(p * rows + r) = *src.offset(p as isize * csa);
            }
        }
    }

    /// B's rows `pc..pc+kc`, columns `j0..j0+cols`, as one `kc × nr` panel (zero columns past `cols`).
    #[allow(clippy::too_many_arguments)]
    unsafe fn pack_b(b: *const f32, rsb: isize, csb: isize, pc: usize, kc: usize, j0: usize, cols: usize, nr: usize, dst: *mut f32) {
        let base = b.offset(pc as isize * rsb + j0 as isize * csb);
        if csb == 1 {
            // a whole panel row has a constant length: copied inline, not by a memmove call each
            macro_rules! rows_of {
                ($n:expr) => {
                    for p in 0..kc {
                        std::ptr::copy_nonoverlapping(base.offset(p as isize * rsb), dst.add(p * $n), $n);
                    }
                };
            }
            match (cols, nr) {
                (32, 32) => rows_of!(32),
                (16, 16) => rows_of!(16),
                _ => {
                    for p in 0..kc {
                        let (s, d) = (base.offset(p as isize * rsb), dst.add(p * nr));
                        std::ptr::copy_nonoverlapping(s, d, cols);
                        std::ptr::write_bytes(d.add(cols), 0, nr - cols);
                    }
                }
            }
        } else if rsb == 1 {
            // a transposed view (W·ᵀ, each column of B contiguous): 4 × 4 blocks transposed in SSE
            // registers (baseline x86-64), 4 sequential read streams at a time; k in blocks of 64
            // so that the panel rows being written (64 × nr floats) stay in L1
            const PB: usize = 64;
            let j4 = cols / 4 * 4;
            for p0 in (0..kc).step_by(PB) {
                let pe = (p0 + PB).min(kc);
                let p4 = p0 + (pe - p0) / 4 * 4;
                for j in (0..j4).step_by(4) {
                    let s: [*const f32; 4] = std::array::from_fn(|i| base.offset((j + i) as isize * csb));
                    let mut p = p0;
                    while p < p4 {
                        let [r0, r1, r2, r3] = s.map(|s| _mm_loadu_ps(s.add(p)));
                        let (t0, t1) = (_mm_unpacklo_ps(r0, r1), _mm_unpacklo_ps(r2, r3));
                        let (t2, t3) = (_mm_unpackhi_ps(r0, r1), _mm_unpackhi_ps(r2, r3));
                        let d = dst.add(p * nr + j);
                        _mm_storeu_ps(d, _mm_movelh_ps(t0, t1));
                        _mm_storeu_ps(d.add(nr), _mm_movehl_ps(t1, t0));
                        _mm_storeu_ps(d.add(2 * nr), _mm_movelh_ps(t2, t3));
                        _mm_storeu_ps(d.add(3 * nr), _mm_movehl_ps(t3, t2));
                        p += 4;
                    }
                    for p in p4..pe {
                        for (i, s) in s.iter().enumerate() {
                            *dst.add(p * nr + j + i) = *s.add(p);
                        }
                    }
                }
                for j in j4..cols {
                    let s = base.offset(j as isize * csb);
                    for p in p0..pe {
                        *dst.add(p * nr + j) = *s.add(p);
                    }
                }
            }
            for p in 0..kc {
                std::ptr::write_bytes(dst.add(p * nr + cols), 0, nr - cols);
            }
        } else {
            // no unit stride at all: element by element
            for j in 0..cols {
                let s = base.offset(j as isize * csb);
                for p in 0..kc {
                    *dst.add(p * nr + j) = *s.offset(p as isize * rsb);
                }
            }
            for p in 0..kc {
                std::ptr::write_bytes(dst.add(p * nr + cols), 0, nr - cols);
            }
        }
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

    /// Every implementation this processor has, on edge shapes (1, odd, not multiples of any
    /// tile, k = 1, k over several blocks), all four transpose combinations, a strided
    /// (column-major) C, and alpha/beta cases including beta = 0 over NaN.
    #[test]
    fn every_kernel_matches_naive_on_edge_shapes_transposes_and_scalars() {
        let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2, Isa::Portable].into_iter().filter(|&i| available(i)).collect();
        let mut rng = Rng::new(3);
        let shapes = [
            (1, 1, 1), (1, 7, 1), (2, 1, 33), (13, 1, 17), (14, 3, 32), (15, 2, 31), (29, 17, 64), (33, 49, 49),
            (4, 0, 5), (5, 321, 3), (3, 700, 65), (45, 650, 97), (1, 1000, 513), (70, 30, 530),
        ];
        let scalars = [(1.0f32, 0.0f32), (0.5, 0.0), (1.0, 1.0), (-2.0, 0.25)];
        for &(m, k, n) in &shapes {
            let (a, at) = (random(m, k, &mut rng), random(k, m, &mut rng));
            let (b, bt) = (random(k, n, &mut rng), random(n, k, &mut rng));
            let c0 = random(m, n, &mut rng);
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let av = if ta { at.t() } else { a.view() };
                let bv = if tb { bt.t() } else { b.view() };
                let prod = naive(&av, &bv);
                for &(alpha, beta) in &scalars {
                    for col_major_c in [false, true] {
                        let mut first: Option<Array2<f32>> = None;
                        for &isa in &isas {
                            let mut c = if beta == 0.0 { Array2::from_elem((m, n), f32::NAN) } else { c0.clone() };
                            let mut ct; // column-major storage of the same values
                            let cv = if col_major_c {
                                ct = c.t().to_owned();
                                ct.view_mut().reversed_axes()
                            } else {
                                c.view_mut()
                            };
                            let mut cv = cv;
                            kernel_with(isa, alpha, av, bv, beta, Epi { bias: None, relu: false }, cv.view_mut());
                            let got = cv.to_owned();
                            for ((i, j), &v) in got.indexed_iter() {
                                let w = alpha as f64 * prod[[i, j]] + if beta == 0.0 { 0.0 } else { beta as f64 * c0[[i, j]] as f64 };
                                let tol = 2e-5 * (1.0 + w.abs()) * (k as f64).sqrt().max(1.0);
                                assert!((v as f64 - w).abs() <= tol, "{isa:?} ({m},{k},{n}) ta{ta} tb{tb} α{alpha} β{beta} cm{col_major_c} [{i},{j}] {v} vs {w}");
                            }
                            // our two kernels do the same FMAs in the same order: identical results
                            if isa != Isa::Portable {
                                match &first {
                                    None => first = Some(got),
                                    Some(f) => assert_eq!(f, &got, "AVX-512 and AVX2 kernels agree bit for bit"),
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Views with no unit stride at all (every other row and column of a larger matrix): the
    /// packing paths for A and B and the strided-C path, on every kernel.
    #[test]
    fn views_without_a_unit_stride_are_packed_correctly() {
        use ndarray::s;
        let mut rng = Rng::new(5);
        for &(m, k, n) in &[(1, 1, 1), (17, 9, 40), (60, 333, 70)] {
            let (a2, b2) = (random(2 * m, 2 * k, &mut rng), random(2 * k, 2 * n, &mut rng));
            let (a, b) = (a2.slice(s![..;2, ..;2]), b2.slice(s![..;2, ..;2]));
            let prod = naive(&a, &b);
            for isa in [Isa::Avx512, Isa::Avx2, Isa::Portable].into_iter().filter(|&i| available(i)) {
                let mut c2 = Array2::from_elem((2 * m, 2 * n), f32::NAN);
                kernel_with(isa, 1.0, a, b, 0.0, Epi { bias: None, relu: false }, c2.slice_mut(s![..;2, ..;2]));
                for ((i, j), &v) in c2.indexed_iter() {
                    if i % 2 == 1 || j % 2 == 1 {
                        assert!(v.is_nan(), "{isa:?} wrote outside the view at [{i},{j}]");
                    } else {
                        let w = prod[[i / 2, j / 2]];
                        assert!((v as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()), "{isa:?} ({m},{k},{n}) [{i},{j}] {v} vs {w}");
                    }
                }
            }
        }
    }

    /// The fused epilogue equals the product followed by the separate bias(+ReLU) pass, bit for
    /// bit, on every kernel (k over several blocks, ragged panels, strided C) and thread split.
    #[test]
    fn gemm_bias_equals_gemm_then_bias_and_relu() {
        use ndarray::{s, Array1};
        let mut rng = Rng::new(6);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for &(m, k, n) in &[(1, 1, 1), (5, 3, 49), (33, 700, 70), (40, 300, 600), (300, 50, 96)] {
            let (a, b) = (random(m, k, &mut rng), random(k, n, &mut rng));
            let bias = Array1::from_shape_fn(n, |_| rng.normal() as f32);
            for relu in [false, true] {
                let mut want = Array2::zeros((m, n));
                gemm(1.0, a.view(), b.view(), 0.0, want.view_mut());
                for mut row in want.rows_mut() {
                    ndarray::Zip::from(&mut row).and(&bias).for_each(|z, &b| *z = if relu { (*z + b).max(0.0) } else { *z + b });
                }
                for isa in [Isa::Avx512, Isa::Avx2, Isa::Portable].into_iter().filter(|&i| available(i)) {
                    let mut c2 = Array2::from_elem((n, m), f32::NAN); // C stored column-major
                    kernel_with(isa, 1.0, a.view(), b.view(), 0.0, Epi { bias: Some(bias.view()), relu }, c2.view_mut().reversed_axes());
                    if isa == super::isa() {
                        assert_eq!(c2.t(), want, "{isa:?} ({m},{k},{n}) relu {relu}");
                    } else {
                        let mut plain = Array2::zeros((m, n));
                        kernel_with(isa, 1.0, a.view(), b.view(), 0.0, Epi { bias: None, relu: false }, plain.view_mut());
                        epilogue(Epi { bias: Some(bias.view()), relu }, plain.view_mut());
                        assert_eq!(c2.t(), plain, "{isa:?} ({m},{k},{n}) relu {relu}");
                    }
                }
                let mut c3 = Array2::from_elem((m, n), f32::NAN);
                pool.install(|| gemm_bias(a.view(), b.view(), bias.view(), relu, c3.view_mut()));
                assert_eq!(c3, want, "3 threads ({m},{k},{n}) relu {relu}");
                let _ = s![..];
            }
        }
    }

    /// The narrower tiles (a ragged last panel of ≤ NR/2 or, on AVX-512, ≤ 8 columns) give
    /// exactly the full tile's values in the wanted columns, for every row count, k over one or
    /// several steps, β = 0 and 1, bias and ReLU, and leave the rows past the tile alone.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn narrow_tiles_equal_the_full_tile_bit_for_bit() {
        use x86::Micro;
        fn check<K: Micro>() {
            let (mr, nr) = (K::MR, K::NR);
            let mut rng = Rng::new(7);
            for rows in 1..=mr {
                for kc in [1, 7, 300] {
                    let a: Vec<f32> = (0..kc * mr).map(|_| rng.normal() as f32).collect();
                    let b: Vec<f32> = (0..kc * nr).map(|_| rng.normal() as f32).collect();
                    let bias: Vec<f32> = (0..nr).map(|_| rng.normal() as f32).collect();
                    let c0: Vec<f32> = (0..mr * nr).map(|_| rng.normal() as f32).collect();
                    for (beta, with_bias, relu) in [(0.0, false, false), (1.0, false, false), (0.0, true, true), (1.0, true, false)] {
                        let bp = if with_bias { bias.as_ptr() } else { std::ptr::null() };
                        let mut full = c0.clone();
                        // SAFETY: run only when the processor has K's instructions; the buffers
                        // hold rows × kc of A (packed, ars 1, lda rows), kc × nr of B, mr × nr of C.
                        unsafe { K::tile(rows, kc, a.as_ptr(), 1, rows, b.as_ptr(), nr, full.as_mut_ptr(), nr, 0.75, beta, bp, relu, nr) };
                        for cols in [1, 4, nr / 4, nr / 4 + 1, nr / 2, nr / 2 + 1] {
                            let mut narrow = c0.clone();
                            // SAFETY: as above
                            unsafe { K::tile(rows, kc, a.as_ptr(), 1, rows, b.as_ptr(), nr, narrow.as_mut_ptr(), nr, 0.75, beta, bp, relu, cols) };
                            for r in 0..mr {
                                for j in 0..nr {
                                    let i = r * nr + j;
                                    if r >= rows {
                                        assert_eq!(narrow[i].to_bits(), c0[i].to_bits(), "row {r} past the tile written");
                                    } else if j < cols {
                                        assert_eq!(narrow[i].to_bits(), full[i].to_bits(), "rows {rows} kc {kc} cols {cols} β {beta} bias {with_bias} [{r},{j}]");
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if available(Isa::Avx512) {
            check::<x86::Avx512>();
        }
        if available(Isa::Avx2) {
            check::<x86::Avx2>();
        }
    }

    fn available(isa: Isa) -> bool {
        match (isa, detect()) {
            (Isa::Portable, _) => true,
            (Isa::Avx2, best) => best != Isa::Portable,
            (Isa::Avx512, best) => best == Isa::Avx512,
        }
    }

    /// Bit-identity across thread counts on the shapes of a training step, for each kernel.
    #[test]
    fn training_shapes_are_bit_identical_for_1_2_and_3_threads() {
        let mut rng = Rng::new(4);
        let pools: Vec<_> = [2, 3].iter().map(|&t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap()).collect();
        // (m, k, n, a transposed, b transposed): X·W1, Xᵀ·δ1, A1·W2, A1ᵀ·δ2, δ2·W2ᵀ
        for &(m, k, n, ta, tb) in &[(32, 784, 512, false, false), (784, 100, 512, true, false), (100, 512, 49, false, false), (512, 100, 49, true, false), (100, 49, 512, false, true), (2048, 50, 96, false, false)] {
            let a = if ta { random(k, m, &mut rng) } else { random(m, k, &mut rng) };
            let b = if tb { random(n, k, &mut rng) } else { random(k, n, &mut rng) };
            let av = if ta { a.t() } else { a.view() };
            let bv = if tb { b.t() } else { b.view() };
            let mut c1 = Array2::zeros((m, n));
            gemm(1.0, av, bv, 0.0, c1.view_mut());
            for pool in &pools {
                let mut c = Array2::from_elem((m, n), f32::NAN);
                pool.install(|| gemm(1.0, av, bv, 0.0, c.view_mut()));
                assert_eq!(c1, c, "({m},{k},{n}) on {} threads", pool.current_num_threads());
            }
        }
    }
}

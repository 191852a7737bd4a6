//! Hidden-layer activations and the error function GELU needs.
//!
//! * `relu`: `max(0, x)`, with `f'(0) = 0`.
//! * `leaky-relu`: `x > 0 ? x : α·x`, with `f'(0) = α`.
//! * `silu`: `x·σ(x)`, `f' = σ(x)·(1 + x·(1 − σ(x)))`.
//! * `gelu`: the exact form `x·Φ(x) = 0.5·x·(1 + erf(x/√2))` (PyTorch's default, not the tanh
//!   approximation), `f' = Φ(x) + x·φ(x)`.
//!
//! SiLU and GELU are evaluated in f64 and rounded once to f32, so they are as accurate as f32 allows
//! (within one ulp of the true value; see the tests against high-precision values). The evaluation
//! is branch-free with an own `exp`, so the layer passes ([`pass`]) run it in AVX-512 or AVX2
//! vectors (8 or 4 f64 lanes) with the same results as the scalar code.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    LeakyRelu { slope: f32 },
    Silu,
    Gelu,
}

impl Activation {
    pub const LEAKY_SLOPE_DEFAULT: f32 = 0.01;

    /// From the API's name; `slope` is used by 'leaky-relu' only.
    pub fn parse(name: &str, slope: Option<f64>) -> Result<Self> {
        if slope.is_some() && name != "leaky-relu" {
            return Err(Error::range(format!("leakySlope is only used by activation 'leaky-relu', not '{name}'")));
        }
        let act = match name {
            "relu" => Activation::Relu,
            "leaky-relu" => Activation::LeakyRelu { slope: slope.map_or(Self::LEAKY_SLOPE_DEFAULT, |s| s as f32) },
            "silu" => Activation::Silu,
            "gelu" => Activation::Gelu,
            other => return Err(Error::range(format!("activation must be 'relu', 'leaky-relu', 'silu' or 'gelu', got '{other}'"))),
        };
        act.validate()?;
        Ok(act)
    }

    pub fn validate(&self) -> Result<()> {
        if let Activation::LeakyRelu { slope } = *self {
            if !(slope >= 0.0 && slope.is_finite()) {
                return Err(Error::range(format!("leakySlope must be a finite number ≥ 0, got {slope}")));
            }
        }
        Ok(())
    }

    pub fn name(&self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky-relu",
            Activation::Silu => "silu",
            Activation::Gelu => "gelu",
        }
    }

    #[inline]
    pub fn apply(&self, x: f32) -> f32 {
        match *self {
            Activation::Relu => x.max(0.0),
            Activation::LeakyRelu { slope } => if x > 0.0 { x } else { slope * x },
            Activation::Silu => silu(x),
            Activation::Gelu => gelu(x),
        }
    }

    /// `f'(x)`.
    #[inline]
    pub fn derivative(&self, x: f32) -> f32 {
        match *self {
            Activation::Relu => if x > 0.0 { 1.0 } else { 0.0 },
            Activation::LeakyRelu { slope } => if x > 0.0 { 1.0 } else { slope },
            Activation::Silu => silu_derivative(x),
            Activation::Gelu => gelu_derivative(x),
        }
    }
}

// Every function below is branch-free f64 arithmetic (selects, no libm calls, no FMA), so the
// same source compiles to the scalar fallback and, through `vector`, to AVX-512 or AVX2 loops
// that LLVM vectorises, with bit-identical results on every path (IEEE operations lane by lane).

/// `e^a` for `a ≤ 0` (NaN stays NaN; below −700 it is e^−700, never 0 — callers only use it where
/// that rounds away): `2ⁿ·e^r`, `n = round(a/ln 2)`, `r = a − n·ln 2` (Cody–Waite,
/// fdlibm's split of ln 2), `e^r` by its Taylor series to r¹⁰ (|r| ≤ 0.347: truncation below
/// 3e-13 relative, far under the 1e-8 the callers need); `2ⁿ` built from its bits.
#[inline(always)]
fn exp_poly(a: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238_2e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // 1.5·2⁵²: adding it rounds to an integer held in the low mantissa bits
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    let a = if a < -700.0 { -700.0 } else { a };
    let k = a * std::f64::consts::LOG2_E + SHIFTER;
    let n = k - SHIFTER;
    let r = (a - n * LN2_HI) - n * LN2_LO;
    const C: [f64; 11] = [
        1.0, 1.0, 0.5, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0, 1.0 / 40_320.0, 1.0 / 362_880.0, 1.0 / 3_628_800.0,
    ];
    let mut p = C[10];
    for &c in C[..10].iter().rev() {
        p = p * r + c;
    }
    // n is an integer in [−1010, 1010]: its bits sit in k's low mantissa bits (two's complement)
    let bits = k.to_bits().wrapping_sub(SHIFTER.to_bits()).wrapping_add(1023) << 52;
    p * f64::from_bits(bits)
}

/// σ(x) and 1 − σ(x), each without cancellation: both only take `exp` of a non-positive number.
#[inline(always)]
fn sigmoid_pair(x: f64) -> (f64, f64) {
    let e = exp_poly(-x.abs());
    let (hi, lo) = (1.0 / (1.0 + e), e / (1.0 + e));
    if x >= 0.0 { (hi, lo) } else { (lo, hi) }
}

#[inline(always)]
pub fn silu(x: f32) -> f32 {
    let x = x as f64;
    (x * sigmoid_pair(x).0) as f32
}

#[inline(always)]
pub fn silu_derivative(x: f32) -> f32 {
    let x = x as f64;
    let (s, one_minus_s) = sigmoid_pair(x);
    (s * (1.0 + x * one_minus_s)) as f32
}

/// Φ's argument is clamped to ±20: Φ(20) is 1 and Φ(−20)·x rounds to 0 in f32 for any f32 x, and
/// the exponentials stay in f64's normal range.
#[inline(always)]
fn clamp20(x: f64) -> f64 {
    if x < -20.0 { -20.0 } else if x > 20.0 { 20.0 } else { x }
}

#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (x * normal_cdf(clamp20(x))) as f32
}

#[inline(always)]
pub fn gelu_derivative(x: f32) -> f32 {
    let x = x as f64;
    let c = clamp20(x);
    // φ(x) = exp(−x²/2)/√(2π)
    (normal_cdf(c) + x * exp_poly(-0.5 * c * c) * 0.398_942_280_401_432_7) as f32
}

/// Φ(x) = 0.5·(1 + erf(x/√2)) = 0.5·erfc(−x/√2), through erfc in the lower tail so that it keeps
/// its relative accuracy where Φ is tiny (GELU of a large negative input). Both forms are
/// computed and one selected (branch-free).
#[inline(always)]
fn normal_cdf(x: f64) -> f64 {
    let u = x * std::f64::consts::FRAC_1_SQRT_2;
    let a = u.abs();
    let small = 0.5 + 0.5 * erf_small(u);
    let tail = 0.5 * erfc_tail(a);
    if a < 0.5 { small } else if u > 0.0 { 1.0 - tail } else { tail }
}

/// erf(x) for |x| < 0.5: its Maclaurin series `2/√π Σ (−1)ⁿ x^{2n+1}/(n!(2n+1))` to n = 7; the
/// first term left out is below 4e-10 of the sum at |x| = 0.5.
#[inline(always)]
fn erf_small(x: f64) -> f64 {
    const C: [f64; 8] = [
        1.128_379_167_095_512_6,
        -0.376_126_389_031_837_54,
        0.112_837_916_709_551_26,
        -0.026_866_170_645_131_252,
        0.005_223_977_625_442_188,
        -0.000_854_832_702_345_085_2,
        0.000_120_553_329_817_896_64,
        -1.492_565_035_840_625e-5,
    ];
    let x2 = x * x;
    let mut p = C[7];
    for &c in C[..7].iter().rev() {
        p = p * x2 + c;
    }
    x * p
}

/// erfc(x) for x ≥ 0.5 as `t·exp(−x² + P(t))`, `t = 1/(1 + x/2)`, with P a degree-10 polynomial
/// fitted (least squares on Chebyshev nodes of t ∈ (0, 0.8], against 40-digit values) for this
/// project: |log error| < 7.8e-9 over the whole range, i.e. a relative error below 1e-8.
#[inline(always)]
fn erfc_tail(x: f64) -> f64 {
    const P: [f64; 11] = [
        -1.265_512_128_268_001_3,
        1.000_001_148_232_802_2,
        0.374_952_695_064_068_7,
        0.084_040_302_223_081_88,
        -0.090_460_941_846_655_33,
        -0.135_272_769_576_394_53,
        -0.044_438_046_182_996_384,
        -0.292_054_165_647_440_86,
        0.937_321_953_234_969_7,
        -0.793_569_144_550_667_6,
        0.225_157_906_325_966_44,
    ];
    let t = 1.0 / (1.0 + 0.5 * x);
    let mut p = P[10];
    for &c in P[..10].iter().rev() {
        p = p * t + c;
    }
    t * exp_poly(-x * x + p)
}

/// The error function in f32, computed in f64 and rounded once. The f64 evaluation's relative
/// error is below 1e-8 everywhere (f32's half-ulp is 6e-8), so the result is the correctly rounded
/// value or its neighbour: measured worst 0.554 ulp for erf, 0.62 ulp for erfc and GELU, over
/// 81,794 points of [−10, 10] and 40 tiny arguments against f64 `math.erf`/`math.erfc`; the unit
/// test checks ≤ 1 ulp at 215 points against 40-digit values.
pub fn erf(x: f32) -> f32 {
    let a = (x as f64).abs();
    let r = if a < 0.5 { erf_small(a) } else { 1.0 - erfc_tail(a) };
    (r.copysign(x as f64)) as f32
}

/// 1 − erf(x), accurate also where it is tiny (x large).
pub fn erfc(x: f32) -> f32 {
    let x = x as f64;
    (if x.abs() < 0.5 { 1.0 - erf_small(x) } else if x > 0.0 { erfc_tail(x) } else { 2.0 - erfc_tail(-x) }) as f32
}

/// The element-wise passes of a hidden layer over whole rows, vectorised: the functions above
/// inlined into loops compiled for AVX-512 or AVX2 (chosen once at run time, with the GEMM's
/// [`crate::gemm::isa`]), or plain scalar code elsewhere — the same arithmetic on every path, so
/// the results do not depend on the processor.
pub mod pass {
    use super::Activation;
    use crate::dropout::Mask;
    pub(super) use crate::gemm::{isa, Isa};

    /// Batch norm's per-unit statistics and affine map: `Z' = γ·(Z − μ)·invstd + β`.
    #[derive(Clone, Copy)]
    pub struct Norm<'a> {
        pub mean: &'a [f32],
        pub invstd: &'a [f32],
        pub gamma: &'a [f32],
        pub beta: &'a [f32],
    }

    /// Dropout of a block of rows: the layer's mask and the batch row of the block's first row.
    pub type RowMask = Option<(Mask, usize)>;

    trait Unit: Copy {
        fn f(self, x: f32) -> f32;
        fn df(self, x: f32) -> f32;
    }
    #[derive(Clone, Copy)]
    struct Relu;
    #[derive(Clone, Copy)]
    struct Leaky(f32);
    #[derive(Clone, Copy)]
    struct Silu;
    #[derive(Clone, Copy)]
    struct Gelu;
    impl Unit for Relu {
        #[inline(always)]
        fn f(self, x: f32) -> f32 { x.max(0.0) }
        #[inline(always)]
        fn df(self, x: f32) -> f32 { if x > 0.0 { 1.0 } else { 0.0 } }
    }
    impl Unit for Leaky {
        #[inline(always)]
        fn f(self, x: f32) -> f32 { if x > 0.0 { x } else { self.0 * x } }
        #[inline(always)]
        fn df(self, x: f32) -> f32 { if x > 0.0 { 1.0 } else { self.0 } }
    }
    impl Unit for Silu {
        #[inline(always)]
        fn f(self, x: f32) -> f32 { super::silu(x) }
        #[inline(always)]
        fn df(self, x: f32) -> f32 { super::silu_derivative(x) }
    }
    impl Unit for Gelu {
        #[inline(always)]
        fn f(self, x: f32) -> f32 { super::gelu(x) }
        #[inline(always)]
        fn df(self, x: f32) -> f32 { super::gelu_derivative(x) }
    }

    const NO_NORM: Norm<'static> = Norm { mean: &[], invstd: &[], gamma: &[], beta: &[] };
    const NO_MASK: Mask = Mask { key: 0, threshold: 0, scale: 1.0 };

    /// Forward over the rows of `z` (`width` wide, bias already added): with `norm`,
    /// `Ẑ = (Z − μ)·invstd` (kept in `pre` if given) and `Z' = γ·Ẑ + β`, else `Z' = Z` (kept in
    /// `pre` if given); then `A = f(Z')`, times the dropout factor with `mask`; `A` replaces `Z`.
    pub fn forward(act: Activation, z: &mut [f32], pre: Option<&mut [f32]>, width: usize, norm: Option<Norm>, mask: RowMask) {
        forward_on(isa(), act, z, pre, width, norm, mask)
    }

    pub(super) fn forward_on(isa: Isa, act: Activation, z: &mut [f32], pre: Option<&mut [f32]>, width: usize, norm: Option<Norm>, mask: RowMask) {
        match act {
            Activation::Relu => forward_as(isa, Relu, z, pre, width, norm, mask),
            Activation::LeakyRelu { slope } => forward_as(isa, Leaky(slope), z, pre, width, norm, mask),
            Activation::Silu => forward_as(isa, Silu, z, pre, width, norm, mask),
            Activation::Gelu => forward_as(isa, Gelu, z, pre, width, norm, mask),
        }
    }

    /// Backward over the rows of `d` (`∂A` in, `∂Z'` out): `d ← d·(keep·f'(Z'))`, `Z'` being `pre`,
    /// or `γ·pre + β` with `norm` (`pre` = Ẑ; only γ and β of `norm` are read).
    pub fn backward(act: Activation, d: &mut [f32], pre: &[f32], width: usize, norm: Option<Norm>, mask: RowMask) {
        backward_on(isa(), act, d, pre, width, norm, mask)
    }

    pub(super) fn backward_on(isa: Isa, act: Activation, d: &mut [f32], pre: &[f32], width: usize, norm: Option<Norm>, mask: RowMask) {
        match act {
            Activation::Relu => backward_as(isa, Relu, d, pre, width, norm, mask),
            Activation::LeakyRelu { slope } => backward_as(isa, Leaky(slope), d, pre, width, norm, mask),
            Activation::Silu => backward_as(isa, Silu, d, pre, width, norm, mask),
            Activation::Gelu => backward_as(isa, Gelu, d, pre, width, norm, mask),
        }
    }

    macro_rules! dispatch {
        ($isa:expr, $body:ident::<$($g:tt),*>($($arg:expr),*)) => {{
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn wide<U: Unit, const N: bool, const P: bool, const M: bool>(u: U, a: &mut [f32], b: &mut [f32], c: &[f32], w: usize, n: Norm, m: Mask, r0: usize) {
                    $body::<U, N, P, M>(u, a, b, c, w, n, m, r0)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn narrow<U: Unit, const N: bool, const P: bool, const M: bool>(u: U, a: &mut [f32], b: &mut [f32], c: &[f32], w: usize, n: Norm, m: Mask, r0: usize) {
                    $body::<U, N, P, M>(u, a, b, c, w, n, m, r0)
                }
                match $isa {
                    // SAFETY: `isa()` reports what the processor has (or a narrower choice)
                    Isa::Avx512 => return unsafe { wide::<$($g),*>($($arg),*) },
                    Isa::Avx2 => return unsafe { narrow::<$($g),*>($($arg),*) },
                    Isa::Portable => {}
                }
            }
            let _ = $isa;
            $body::<$($g),*>($($arg),*)
        }};
    }

    fn forward_as<U: Unit>(isa: Isa, u: U, z: &mut [f32], pre: Option<&mut [f32]>, width: usize, norm: Option<Norm>, mask: RowMask) {
        let (m, r0) = mask.unwrap_or((NO_MASK, 0));
        let n = norm.unwrap_or(NO_NORM);
        let mut none: [f32; 0] = [];
        macro_rules! go {
            ($N:expr, $P:expr, $M:expr, $pre:expr) => {
                dispatch!(isa, fwd_body::<U, $N, $P, $M>(u, z, $pre, &[], width, n, m, r0))
            };
        }
        match (norm.is_some(), pre, mask.is_some()) {
            (false, None, false) => go!(false, false, false, &mut none),
            (false, None, true) => go!(false, false, true, &mut none),
            (false, Some(p), false) => go!(false, true, false, p),
            (false, Some(p), true) => go!(false, true, true, p),
            (true, None, false) => go!(true, false, false, &mut none),
            (true, None, true) => go!(true, false, true, &mut none),
            (true, Some(p), false) => go!(true, true, false, p),
            (true, Some(p), true) => go!(true, true, true, p),
        }
    }

    fn backward_as<U: Unit>(isa: Isa, u: U, d: &mut [f32], pre: &[f32], width: usize, norm: Option<Norm>, mask: RowMask) {
        let (m, r0) = mask.unwrap_or((NO_MASK, 0));
        let n = norm.unwrap_or(NO_NORM);
        let mut none: [f32; 0] = [];
        macro_rules! go {
            ($N:expr, $M:expr) => {
                dispatch!(isa, bwd_body::<U, $N, false, $M>(u, d, &mut none, pre, width, n, m, r0))
            };
        }
        match (norm.is_some(), mask.is_some()) {
            (false, false) => go!(false, false),
            (false, true) => go!(false, true),
            (true, false) => go!(true, false),
            (true, true) => go!(true, true),
        }
    }

    /// `z` rows in place; `pre` (if `P`) receives Ẑ or Z. `_c` unused (one signature for both bodies).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn fwd_body<U: Unit, const N: bool, const P: bool, const M: bool>(u: U, z: &mut [f32], pre: &mut [f32], _c: &[f32], width: usize, n: Norm, m: Mask, row0: usize) {
        let rows = z.len() / width;
        for r in 0..rows {
            let zr = &mut z[r * width..(r + 1) * width];
            let pr: &mut [f32] = if P { &mut pre[r * width..(r + 1) * width] } else { &mut [] };
            let (mean, inv, gamma, beta) = if N { (&n.mean[..width], &n.invstd[..width], &n.gamma[..width], &n.beta[..width]) } else { (&[][..], &[][..], &[][..], &[][..]) };
            let base = (row0 + r).wrapping_mul(width);
            for j in 0..width {
                let mut x = zr[j];
                if N {
                    let xh = (x - mean[j]) * inv[j];
                    if P {
                        pr[j] = xh;
                    }
                    x = gamma[j] * xh + beta[j];
                } else if P {
                    pr[j] = x;
                }
                let mut y = u.f(x);
                if M {
                    y *= m.factor(base.wrapping_add(j));
                }
                zr[j] = y;
            }
        }
    }

    /// `d` rows in place, `pre` read. `_b` unused (one signature for both bodies).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn bwd_body<U: Unit, const N: bool, const P: bool, const M: bool>(u: U, d: &mut [f32], _b: &mut [f32], pre: &[f32], width: usize, n: Norm, m: Mask, row0: usize) {
        let rows = d.len() / width;
        for r in 0..rows {
            let dr = &mut d[r * width..(r + 1) * width];
            let pr = &pre[r * width..(r + 1) * width];
            let (gamma, beta) = if N { (&n.gamma[..width], &n.beta[..width]) } else { (&[][..], &[][..]) };
            let base = (row0 + r).wrapping_mul(width);
            for j in 0..width {
                let zp = if N { gamma[j] * pr[j] + beta[j] } else { pr[j] };
                let keep = if M { m.factor(base.wrapping_add(j)) } else { 1.0 };
                dr[j] *= keep * u.df(zp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite f32 of the same sign.
    fn ulps(a: f32, b: f64) -> f64 {
        let b32 = b as f32;
        let ulp = (f32::from_bits(b32.abs().to_bits() + 1) - b32.abs()) as f64;
        (a as f64 - b).abs() / ulp
    }

    // (x, erf(x), erfc(x)) to 17 significant digits, from mpmath at 40 digits.
    const TABLE: &[(f64, f64, f64)] = include!("erf_table.in");

    #[test]
    fn erf_and_erfc_within_one_ulp_of_high_precision_values() {
        let (mut worst_erf, mut worst_erfc) = (0.0f64, 0.0f64);
        for &(x, e, c) in TABLE {
            let x32 = x as f32;
            assert_eq!(x32 as f64, x, "table x must be an f32");
            let (ue, uc) = (ulps(erf(x32), e), ulps(erfc(x32), c));
            assert!(ue <= 1.0, "erf({x}) = {} vs {e}: {ue} ulp", erf(x32));
            assert!(uc <= 1.0, "erfc({x}) = {} vs {c}: {uc} ulp", erfc(x32));
            worst_erf = worst_erf.max(ue);
            worst_erfc = worst_erfc.max(uc);
        }
        eprintln!("erf: worst {worst_erf:.3} ulp, erfc: worst {worst_erfc:.3} ulp over {} points", TABLE.len());
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
        assert_eq!(erfc(20.0), 0.0);
    }

    #[test]
    fn derivatives_match_central_differences() {
        let acts = [Activation::Relu, Activation::LeakyRelu { slope: 0.1 }, Activation::Silu, Activation::Gelu];
        for act in acts {
            for i in -60..=60 {
                let x = i as f64 / 10.0 + 0.013; // off the kink at 0
                let h = 1e-3;
                let num = (act.apply((x + h) as f32) as f64 - act.apply((x - h) as f32) as f64) / (((x + h) as f32) as f64 - ((x - h) as f32) as f64);
                let d = act.derivative(x as f32) as f64;
                assert!((num - d).abs() < 2e-3 * (1.0 + d.abs()), "{act:?} at {x}: {d} vs {num}");
            }
        }
        assert_eq!(Activation::Relu.derivative(0.0), 0.0);
        assert_eq!(Activation::LeakyRelu { slope: 0.2 }.derivative(0.0), 0.2);
    }

    #[test]
    fn gelu_and_silu_known_values() {
        // 0.5·x·(1 + erf(x/√2)) and x/(1 + e^{−x}) at 40 digits
        for (x, g, s) in [
            (1.0f32, 0.841_344_746_068_542_95f64, 0.731_058_578_630_004_88f64),
            (-1.0, -0.158_655_253_931_457_05, -0.268_941_421_369_995_12),
            (-6.0, -5.919_525_870_226_188_8e-9, -0.014_835_738_939_808_646),
            (3.5, 3.499_185_798_223_375_7, 3.397_407_192_370_252_9),
            (-3.0, -0.004_049_694_094_890_283_6, -0.142_277_619_532_700_34),
            (0.3, 0.185_373_426_656_685_78, 0.172_332_755_043_497_69),
        ] {
            assert!(ulps(gelu(x), g) <= 1.0, "gelu({x}) = {} vs {g}", gelu(x));
            assert!(ulps(silu(x), s) <= 1.0, "silu({x}) = {} vs {s}", silu(x));
        }
    }

    /// The activations as they were computed before they were vectorised: the same series and
    /// fit, with the standard library's `exp`, in f64 (not rounded).
    mod libm {
        fn sigmoid(x: f64) -> f64 {
            if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { let e = x.exp(); e / (1.0 + e) }
        }
        fn erfc_tail(x: f64) -> f64 {
            const P: [f64; 11] = [
                -1.265_512_128_268_001_3, 1.000_001_148_232_802_2, 0.374_952_695_064_068_7, 0.084_040_302_223_081_88,
                -0.090_460_941_846_655_33, -0.135_272_769_576_394_53, -0.044_438_046_182_996_384, -0.292_054_165_647_440_86,
                0.937_321_953_234_969_7, -0.793_569_144_550_667_6, 0.225_157_906_325_966_44,
            ];
            let t = 1.0 / (1.0 + 0.5 * x);
            t * (-x * x + P.iter().rev().fold(0.0, |acc, &c| acc * t + c)).exp()
        }
        fn normal_cdf(x: f64) -> f64 {
            let u = x * std::f64::consts::FRAC_1_SQRT_2;
            if u.abs() < 0.5 { 0.5 + 0.5 * super::super::erf_small(u) } else if u > 0.0 { 1.0 - 0.5 * erfc_tail(u) } else { 0.5 * erfc_tail(-u) }
        }
        pub fn silu(x: f64) -> f64 { x * sigmoid(x) }
        pub fn silu_derivative(x: f64) -> f64 { let s = sigmoid(x); s * (1.0 + x * (1.0 - s)) }
        pub fn gelu(x: f64) -> f64 { x * normal_cdf(x) }
        pub fn gelu_derivative(x: f64) -> f64 { normal_cdf(x) + x * (-0.5 * x * x).exp() * 0.398_942_280_401_432_7 }
    }

    /// Inputs over the whole useful range and beyond: a fine grid of [−25, 25], powers of two
    /// down to subnormal and up to the largest f32, and their negatives.
    fn inputs() -> Vec<f32> {
        let mut xs: Vec<f32> = (-250_000..=250_000).map(|i| i as f32 * 1e-4).collect();
        for e in -149..=127 {
            let v = 2f32.powi(e);
            xs.extend([v, -v, v * 1.7, -v * 1.3]);
        }
        xs.extend([0.0, -0.0, f32::MAX, -f32::MAX, f32::MIN_POSITIVE, -f32::MIN_POSITIVE]);
        xs.retain(|x| x.is_finite());
        xs
    }

    #[test]
    fn own_exp_keeps_gelu_and_silu_within_one_ulp_of_the_libm_versions() {
        let mut worst = [0.0f64; 4];
        for x in inputs() {
            let xd = x as f64;
            for (i, (got, want)) in [(gelu(x), libm::gelu(xd)), (silu(x), libm::silu(xd))].into_iter().enumerate() {
                let u = ulps(got, want);
                assert!(u <= 1.0, "{} ({x}) = {got} vs {want}: {u} ulp", ["gelu", "silu"][i]);
                worst[i] = worst[i].max(u);
            }
            // derivatives: within one ulp, or within 4e-9 where they cross zero (the f64
            // evaluation is accurate to ~1e-8 of Φ, not of Φ + x·φ)
            for (i, (got, want)) in [(gelu_derivative(x), libm::gelu_derivative(xd)), (silu_derivative(x), libm::silu_derivative(xd))].into_iter().enumerate() {
                let u = ulps(got, want);
                assert!(u <= 1.0 || (got as f64 - want).abs() <= 4e-9, "{}' ({x}) = {got} vs {want}: {u} ulp", ["gelu", "silu"][i]);
                if (got as f64 - want).abs() > 4e-9 {
                    worst[2 + i] = worst[2 + i].max(u);
                }
            }
        }
        eprintln!("worst ulp vs the libm versions: gelu {:.3}, silu {:.3}, gelu' {:.3}, silu' {:.3}", worst[0], worst[1], worst[2], worst[3]);
        assert!(gelu(f32::NAN).is_nan() && silu(f32::NAN).is_nan() && gelu_derivative(f32::NAN).is_nan() && silu_derivative(f32::NAN).is_nan());
        assert_eq!((gelu(-30.0), gelu(30.0), silu(-200.0), silu(200.0)), (0.0, 30.0, 0.0, 200.0));
        assert_eq!((gelu_derivative(-30.0), gelu_derivative(30.0), silu_derivative(-200.0), silu_derivative(200.0)), (0.0, 1.0, 0.0, 1.0));
    }

    /// The vectorised passes (every instruction set this processor has) give exactly what the
    /// scalar functions give, for every combination of batch norm, kept pre-activation and
    /// dropout, on rows whose width is not a multiple of any vector.
    #[test]
    fn vectorised_passes_equal_the_scalar_functions_bit_for_bit() {
        use crate::dropout::Mask;
        use pass::{Isa, Norm};
        let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2, Isa::Portable].into_iter().filter(|&i| i == Isa::Portable || i == pass::isa() || (i == Isa::Avx2 && pass::isa() == Isa::Avx512)).collect();
        let mut rng = crate::rng::Rng::new(9);
        let (rows, width) = (7, 53);
        let n = rows * width;
        let mut z0: Vec<f32> = (0..n).map(|_| (rng.normal() * 4.0) as f32).collect();
        z0[3] = f32::NAN;
        z0[5] = -0.0;
        z0[8] = 40.0;
        z0[9] = -40.0;
        z0[10] = 1e-40;
        let col = |rng: &mut crate::rng::Rng, s: f64, o: f64| -> Vec<f32> { (0..width).map(|_| (rng.normal() * s + o) as f32).collect() };
        let (mean, invstd, gamma, beta) = (col(&mut rng, 1.0, 0.0), col(&mut rng, 0.2, 1.0), col(&mut rng, 0.3, 1.0), col(&mut rng, 0.5, 0.0));
        let norm = Norm { mean: &mean, invstd: &invstd, gamma: &gamma, beta: &beta };
        let mask = Mask::new(5, 3, 1, 0.3);
        let same = |a: &[f32], b: &[f32], what: &str| {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()), "{what} [{i}]: {x} vs {y}");
            }
        };
        for act in [Activation::Relu, Activation::LeakyRelu { slope: 0.05 }, Activation::Silu, Activation::Gelu] {
            for with_norm in [false, true] {
                for with_mask in [false, true] {
                    let row0 = 11;
                    // the scalar definition
                    let (mut want, mut want_pre, mut want_d) = (z0.clone(), vec![0.0f32; n], z0.clone());
                    for i in 0..n {
                        let (r, j) = (i / width, i % width);
                        let x = if with_norm { (z0[i] - mean[j]) * invstd[j] } else { z0[i] };
                        want_pre[i] = x;
                        let zp = if with_norm { gamma[j] * x + beta[j] } else { x };
                        let keep = if with_mask { mask.factor((row0 + r) * width + j) } else { 1.0 };
                        want[i] = if with_mask { act.apply(zp) * keep } else { act.apply(zp) };
                        // backward from ∂A = z0 with pre = want_pre
                        let zq = if with_norm { gamma[j] * want_pre[i] + beta[j] } else { want_pre[i] };
                        want_d[i] = z0[i] * (keep * act.derivative(zq));
                    }
                    for &isa in &isas {
                        let what = format!("{act:?} {isa:?} norm {with_norm} mask {with_mask}");
                        let (nm, mk) = (with_norm.then_some(norm), with_mask.then_some((mask, row0)));
                        let mut z = z0.clone();
                        pass::forward_on(isa, act, &mut z, None, width, nm, mk);
                        same(&z, &want, &what);
                        let (mut z, mut pre) = (z0.clone(), vec![f32::NAN; n]);
                        pass::forward_on(isa, act, &mut z, Some(&mut pre), width, nm, mk);
                        same(&z, &want, &what);
                        same(&pre, &want_pre, &what);
                        let mut d = z0.clone();
                        pass::backward_on(isa, act, &mut d, &want_pre, width, nm, mk);
                        same(&d, &want_d, &format!("backward {what}"));
                    }
                }
            }
        }
    }

    #[test]
    fn parse_names_the_setting() {
        assert_eq!(Activation::parse("gelu", None).unwrap(), Activation::Gelu);
        assert_eq!(Activation::parse("leaky-relu", None).unwrap(), Activation::LeakyRelu { slope: 0.01 });
        assert!(Activation::parse("tanh", None).unwrap_err().message.starts_with("activation must be"));
        assert!(Activation::parse("relu", Some(0.1)).unwrap_err().message.starts_with("leakySlope"));
        assert!(Activation::parse("leaky-relu", Some(-1.0)).unwrap_err().message.starts_with("leakySlope must be"));
    }
}

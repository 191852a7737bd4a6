//! Training-time data augmentation (issue F2): a random affine transform with bilinear sampling
//! and, optionally, Simard et al.'s (2003) elastic distortion, applied to the `u8` images of each
//! training mini-batch as they are gathered. Never applied to evaluation or prediction.
//!
//! The exact math (the TypeScript reference, `src/engine/augment.ts`, follows it line by line):
//!
//! ```text
//! Random numbers: a counter-based hash, like the dropout masks (dropout.rs), so they depend only
//! on (seed, step, r, k) — not on threads, chunking or a resume:
//!   key  = layer_key(seed, step, 0x61756731)        (the dropout key with "aug1" as its layer)
//!   kr   = mix32(key ^ r)                           (r: the sample's row in the mini-batch)
//!   u(k) = (2·mix32(kr ^ k) + 1) / 2³² − 1          (uniform in (−1, 1), exact in f64)
//! Parameters of sample r (ranges: rotate R°, scale S, shear H, shift T px):
//!   θ = R·u(0)·π/180,  s = 1 + S·u(1),  h = H·u(2),  tx = T·u(3),  ty = T·u(4)
//! Image side n (features = n², square images only), centre c = (n − 1)/2 (13.5 for 28×28).
//! Elastic (α, σ), off unless set: fields ex(y,x) = u(8 + y·n + x), ey(y,x) = u(8 + n² + y·n + x),
//!   each convolved with the normalised Gaussian g(i) = exp(−i²/2σ²) / Σ_{|j|≤ρ} exp(−j²/2σ²),
//!   |i| ≤ ρ = ceil(3σ), zero outside the image, first along rows (x) then columns (y), taps in
//!   increasing i; then multiplied by α (pixels).
//! Output pixel (row y, column x) is sampled at input point (X, Y), the inverse map:
//!   qx = x + α·ex − c − tx,   qy = y + α·ey − c − ty
//!   X  = m00·qx + m01·qy + c,    Y = m10·qx + m11·qy + c,   with, once per sample,
//!   m00 = (cos θ + h·sin θ)/s,  m01 = (sin θ − h·cos θ)/s,  m10 = −sin θ/s,  m11 = cos θ/s
//!   (that is: rotation by −θ, then the inverse shear and the inverse scale: X − c = (u − h·v)/s,
//!   Y − c = v/s with u = cos θ·qx + sin θ·qy, v = −sin θ·qx + cos θ·qy)
//! i.e. the forward map is p_out = c + t + s·R(θ)·[[1, h], [0, 1]]·(p_in − c) (before the elastic
//! displacement), R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]] in (x right, y down) coordinates.
//! Bilinear: x0 = floor(X), fx = X − x0 (same for y); pixels outside the image are 0;
//!   v = (1−fy)·((1−fx)·p(y0,x0) + fx·p(y0,x0+1)) + fy·((1−fx)·p(y0+1,x0) + fx·p(y0+1,x0+1))
//! The result stays a float (no rounding back to u8, as PyTorch's grid_sample on float images):
//! the engine writes (v as f32) / 255 (so an integer v gives exactly the un-augmented p/255), the
//! reference v / 255 in f64. All geometry is in f64 in both, so they agree to f32 rounding.
//! ```
//! With every range 0 (and no elastic, or α = 0) each X, Y is an integer and the output is the
//! input, bit for bit.

use crate::dropout::{layer_key, mix32};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// The hash "layer" of the augmentation key (distinct from the dropout layers 1, 2, …).
const AUG_TAG: usize = 0x6175_6731;
/// Index of the first elastic field value in a sample's stream.
const FIELD0: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Elastic {
    /// Scale of the smoothed displacement field, in pixels (≥ 0).
    pub alpha: f64,
    /// Standard deviation of the Gaussian smoothing, in pixels (> 0).
    pub sigma: f64,
}

/// The ranges of the random transform; all 0 and no elastic is the identity.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Augment {
    /// Rotation uniform in ±rotate degrees, in [0, 180].
    pub rotate: f64,
    /// Scale factor uniform in 1 ± scale, scale in [0, 1).
    pub scale: f64,
    /// Horizontal shear coefficient uniform in ±shear, in [0, 1].
    pub shear: f64,
    /// Translation uniform in ±shift pixels along each axis, ≥ 0.
    pub shift: f64,
    pub elastic: Option<Elastic>,
}

impl Augment {
    pub fn validate(&self) -> Result<()> {
        let check = |ok: bool, name: &str, must: &str, v: f64| if ok { Ok(()) } else { Err(Error::range(format!("augment.{name} must be {must}, got {v}"))) };
        check((0.0..=180.0).contains(&self.rotate), "rotate", "in [0, 180] degrees", self.rotate)?;
        check((0.0..1.0).contains(&self.scale), "scale", "in [0, 1)", self.scale)?;
        check((0.0..=1.0).contains(&self.shear), "shear", "in [0, 1]", self.shear)?;
        check(self.shift >= 0.0 && self.shift <= 1e3, "shift", "a number of pixels in [0, 1000]", self.shift)?;
        if let Some(e) = self.elastic {
            check(e.alpha >= 0.0 && e.alpha <= 1e3, "elastic.alpha", "in [0, 1000] pixels", e.alpha)?;
            check(e.sigma > 0.0 && e.sigma <= 100.0, "elastic.sigma", "in (0, 100] pixels", e.sigma)?;
        }
        Ok(())
    }

    /// The image side for `features` pixels per sample (square images only).
    pub fn side(features: usize) -> Result<usize> {
        let n = (features as f64).sqrt().round() as usize;
        if n * n != features {
            return Err(Error::range(format!("augmentation needs square images, but a sample has {features} features (not n×n)")));
        }
        Ok(n)
    }
}

/// u(k) of a sample's stream: uniform in (−1, 1).
#[inline(always)]
fn uniform(kr: u32, k: u32) -> f64 {
    (2.0 * mix32(kr ^ k) as f64 + 1.0) / 4_294_967_296.0 - 1.0
}

/// The normalised Gaussian taps g(−ρ..=ρ).
fn gaussian(sigma: f64) -> Vec<f64> {
    let rho = (3.0 * sigma).ceil() as i64;
    let raw: Vec<f64> = (-rho..=rho).map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|g| g / sum).collect()
}

/// Smooths the n×n field `f` in place (rows, then columns; zero outside), via `tmp`. Only the taps
/// that land inside are summed, in increasing order (the same sum as adding zeros for the others).
fn smooth(f: &mut [f64], tmp: &mut [f64], n: usize, g: &[f64]) {
    let rho = g.len() / 2;
    // taps t with 0 ≤ i + t − ρ < n
    let taps = |i: usize| (rho.saturating_sub(i), (n + rho - i).min(g.len()));
    for y in 0..n {
        let row = &f[y * n..(y + 1) * n];
        for x in 0..n {
            let (lo, hi) = taps(x);
            let mut s = 0.0;
            for t in lo..hi {
                s += g[t] * row[x + t - rho];
            }
            tmp[y * n + x] = s;
        }
    }
    for y in 0..n {
        let (lo, hi) = taps(y);
        for x in 0..n {
            let mut s = 0.0;
            for t in lo..hi {
                s += g[t] * tmp[(y + t - rho) * n + x];
            }
            f[y * n + x] = s;
        }
    }
}

/// Per-thread buffers of the elastic fields.
#[derive(Default)]
struct Scratch {
    ex: Vec<f64>,
    ey: Vec<f64>,
    tmp: Vec<f64>,
}

/// One sample's affine parameters: angle (radians), scale, shear, shift.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub theta: f64,
    pub s: f64,
    pub h: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Params {
    /// Drawn from the stream of key `kr`.
    fn draw(aug: &Augment, kr: u32) -> Self {
        Params {
            theta: aug.rotate * uniform(kr, 0) * std::f64::consts::PI / 180.0,
            s: 1.0 + aug.scale * uniform(kr, 1),
            h: aug.shear * uniform(kr, 2),
            tx: aug.shift * uniform(kr, 3),
            ty: aug.shift * uniform(kr, 4),
        }
    }
}

/// One sample: `src` (n×n u8) transformed into `dst` (n×n f32, ÷255) with the parameters of row `r`.
fn transform(src: &[u8], dst: &mut [f32], n: usize, aug: &Augment, key: u32, r: u32, kernel: Option<&[f64]>, scratch: &mut Scratch) {
    let kr = mix32(key ^ r);
    let p = n * n;
    let field = match (aug.elastic, kernel) {
        (Some(e), Some(g)) => {
            let Scratch { ex, ey, tmp } = scratch;
            for (buf, base) in [(&mut *ex, FIELD0), (&mut *ey, FIELD0 + p as u32)] {
                buf.clear();
                buf.extend((0..p as u32).map(|j| uniform(kr, base + j)));
            }
            tmp.resize(p, 0.0);
            smooth(ex, tmp, n, g);
            smooth(ey, tmp, n, g);
            Some((&scratch.ex[..], &scratch.ey[..], e.alpha))
        }
        _ => None,
    };
    sample(src, dst, n, &Params::draw(aug, kr), field);
}

/// The inverse map and bilinear sampling of the file comment, with given parameters and
/// (optionally) elastic fields (ex, ey, α).
pub fn sample(src: &[u8], dst: &mut [f32], n: usize, p: &Params, field: Option<(&[f64], &[f64], f64)>) {
    let (sin, cos) = (p.theta.sin(), p.theta.cos());
    let (m00, m01, m10, m11) = ((cos + p.h * sin) / p.s, (sin - p.h * cos) / p.s, -sin / p.s, cos / p.s);
    let c = (n as f64 - 1.0) / 2.0;
    let field = field.filter(|f| f.2 != 0.0);
    let last = n as i64 - 1;
    let pixel = |yy: i64, xx: i64| -> f64 {
        if yy >= 0 && xx >= 0 && yy <= last && xx <= last { src[yy as usize * n + xx as usize] as f64 } else { 0.0 }
    };
    for y in 0..n {
        for x in 0..n {
            let (dx, dy) = match field {
                Some((ex, ey, alpha)) => (alpha * ex[y * n + x], alpha * ey[y * n + x]),
                None => (0.0, 0.0),
            };
            let qx = x as f64 + dx - c - p.tx;
            let qy = y as f64 + dy - c - p.ty;
            let sx = m00 * qx + m01 * qy + c;
            let sy = m10 * qx + m11 * qy + c;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let (p00, p01, p10, p11) = if x0 >= 0 && y0 >= 0 && x0 < last && y0 < last {
                // all four inside (the common case): no per-pixel bounds tests
                let i = y0 as usize * n + x0 as usize;
                (src[i] as f64, src[i + 1] as f64, src[i + n] as f64, src[i + n + 1] as f64)
            } else {
                (pixel(y0, x0), pixel(y0, x0 + 1), pixel(y0 + 1, x0), pixel(y0 + 1, x0 + 1))
            };
            let top = (1.0 - fx) * p00 + fx * p01;
            let bottom = (1.0 - fx) * p10 + fx * p11;
            let val = (1.0 - fy) * top + fy * bottom;
            dst[y * n + x] = val as f32 / 255.0;
        }
    }
}

/// Rows `idx` of `pixels` (`features` u8 per sample), augmented, normalised to [0, 1], into the
/// first `idx.len()` rows of `out`; row i of the batch is row `row0 + i` of its mini-batch (what
/// its random parameters depend on, with `seed` and `step`). Rows are spread over the current
/// rayon pool; the result does not depend on it.
#[allow(clippy::too_many_arguments)]
pub fn gather(pixels: &[u8], features: usize, idx: &[u32], row0: usize, aug: &Augment, seed: u64, step: u64, out: &mut [f32]) -> Result<()> {
    let n = Augment::side(features)?;
    let key = layer_key(seed, step, AUG_TAG);
    let kernel = aug.elastic.map(|e| gaussian(e.sigma));
    let kernel = kernel.as_deref();
    let one = |scratch: &mut Scratch, (i, (row, &src)): (usize, (&mut [f32], &u32))| {
        let s = src as usize * features;
        transform(&pixels[s..s + features], row, n, aug, key, (row0 + i) as u32, kernel, scratch);
    };
    let rows = &mut out[..idx.len() * features];
    if rayon::current_num_threads() > 1 {
        rows.par_chunks_mut(features).zip(idx.par_iter()).enumerate().for_each_init(Scratch::default, |sc, item| one(sc, item));
    } else {
        let mut sc = Scratch::default();
        rows.chunks_mut(features).zip(idx.iter()).enumerate().for_each(|item| one(&mut sc, item));
    }
    Ok(())
}

/// The whole batch `images` (n samples) augmented as training step `step` would see it.
pub fn augment_batch(images: &[u8], samples: usize, aug: &Augment, seed: u64, step: u64) -> Result<Vec<f32>> {
    aug.validate()?;
    if samples == 0 || images.len() % samples != 0 {
        return Err(Error::range(format!("images has {} bytes, not n = {samples} samples of equal size", images.len())));
    }
    let features = images.len() / samples;
    let idx: Vec<u32> = (0..samples as u32).collect();
    let mut out = vec![0f32; images.len()];
    gather(images, features, &idx, 0, aug, seed, step, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(seed: u32) -> Vec<u8> {
        (0..784u32).map(|i| (mix32(i ^ seed.wrapping_mul(0x9e37_79b9)) % 256) as u8).collect()
    }
    const FULL: Augment = Augment { rotate: 12.0, scale: 0.1, shear: 0.15, shift: 1.7, elastic: Some(Elastic { alpha: 8.0, sigma: 3.0 }) };

    #[test]
    fn the_identity_is_bit_exact() {
        let img = [image(1), image(2)].concat();
        let unit: Vec<f32> = img.iter().map(|&p| p as f32 / 255.0).collect();
        let id = Augment::default();
        assert_eq!(augment_batch(&img, 2, &id, 7, 3).unwrap(), unit);
        let zero = Augment { elastic: Some(Elastic { alpha: 0.0, sigma: 4.0 }), ..id };
        assert_eq!(augment_batch(&img, 2, &zero, 7, 3).unwrap(), unit);
    }

    #[test]
    fn a_quarter_turn_and_an_integer_shift_match_the_hand_computed_images() {
        let img = image(5);
        let mut out = vec![0f32; 784];
        let id = Params { theta: 0.0, s: 1.0, h: 0.0, tx: 0.0, ty: 0.0 };
        // θ = 90°: u = qy, v = −qx ⇒ X = y, Y = 27 − x: out(y, x) = in(27 − x, y)
        sample(&img, &mut out, 28, &Params { theta: std::f64::consts::FRAC_PI_2, ..id }, None);
        for y in 0..28 {
            for x in 0..28 {
                let want = img[(27 - x) * 28 + y] as f32 / 255.0;
                assert!((out[y * 28 + x] - want).abs() < 1e-6, "({y},{x}) {} vs {want}", out[y * 28 + x]);
            }
        }
        // shift (2, −3): out(y, x) = in(y + 3, x − 2), zero where that is outside
        sample(&img, &mut out, 28, &Params { tx: 2.0, ty: -3.0, ..id }, None);
        for y in 0..28 {
            for x in 0..28 {
                let want = if x >= 2 && y + 3 < 28 { img[(y + 3) * 28 + x - 2] as f32 / 255.0 } else { 0.0 };
                assert_eq!(out[y * 28 + x], want, "({y},{x})");
            }
        }
    }

    #[test]
    fn seeds_steps_and_rows_give_different_images_and_threads_do_not() {
        let img: Vec<u8> = (0..8).flat_map(image).collect();
        let a = augment_batch(&img, 8, &FULL, 1, 0).unwrap();
        assert_eq!(a, augment_batch(&img, 8, &FULL, 1, 0).unwrap());
        assert_ne!(a, augment_batch(&img, 8, &FULL, 2, 0).unwrap());
        assert_ne!(a, augment_batch(&img, 8, &FULL, 1, 1).unwrap());
        let same: Vec<u8> = (0..2).flat_map(|_| image(3)).collect();
        let b = augment_batch(&same, 2, &FULL, 1, 0).unwrap();
        assert_ne!(b[..784], b[784..], "two rows of one batch get different transforms");
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            assert_eq!(pool.install(|| augment_batch(&img, 8, &FULL, 1, 0).unwrap()), a, "{threads} threads");
        }
        // values stay in [0, 1]
        assert!(a.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = |a: Augment| a.validate().unwrap_err().message;
        assert_eq!(bad(Augment { scale: 1.0, ..Default::default() }), "augment.scale must be in [0, 1), got 1");
        assert!(bad(Augment { rotate: -1.0, ..Default::default() }).starts_with("augment.rotate"));
        assert!(bad(Augment { shift: f64::NAN, ..Default::default() }).starts_with("augment.shift"));
        assert!(bad(Augment { elastic: Some(Elastic { alpha: 1.0, sigma: 0.0 }), ..Default::default() }).starts_with("augment.elastic.sigma"));
        assert!(Augment::side(780).unwrap_err().message.contains("square"));
    }

    #[test]
    fn training_with_the_identity_is_training_without_and_threads_do_not_matter() {
        use crate::{Dataset, EpochOptions, Optimizer, Trainer, train::Control};
        let pixels: Vec<u8> = (0..40).flat_map(image).collect();
        let labels: Vec<u32> = (0..40).map(|i| i % 3).collect();
        let data = Dataset::new(pixels, Some(labels), 784).unwrap();
        let run = |augment: Option<Augment>, threads: usize| {
            let mut t = Trainer::new(&[784, 16, 3], 9, threads).unwrap();
            let o = EpochOptions { optimizer: Optimizer::ADAM_DEFAULT, lr: 1e-3, batch_size: 16, augment, ..Default::default() };
            for _ in 0..2 {
                t.epoch(&data, &o, &Control::default()).unwrap();
            }
            t.params().into_iter().flat_map(|p| p.to_vec()).collect::<Vec<f32>>()
        };
        let plain = run(None, 1);
        assert_eq!(run(Some(Augment::default()), 2), plain);
        let full = run(Some(FULL), 1);
        assert_ne!(full, plain);
        assert_eq!(run(Some(FULL), 2), full);
    }
}

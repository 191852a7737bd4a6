//! Inverted dropout's mask, a pure function of (model seed, optimiser step, layer, row, unit), so
//! it does not depend on the thread count or on how a batch is cut into chunks, and the TypeScript
//! reference reproduces it bit for bit:
//!
//! ```text
//! mix32(h): h ^= h >> 16; h *= 0x7feb352d; h ^= h >> 15; h *= 0x846ca68b; h ^= h >> 16   (u32, wrapping)
//! key  = mix32(mix32(seedHi ^ 0x9e3779b9) ^ seedLo);  key = mix32(key ^ step);  key = mix32(key ^ l)
//! keep unit j of row r  ⇔  mix32(key ^ (r·width + j)) ≥ floor(p·2³²)
//! ```
//! `step` is the optimiser's step count before the step (low 32 bits), `l` the 1-based hidden layer.
//! Kept units are scaled by `1/(1 − p)`, computed in f64 and rounded to f32.

use crate::error::{Error, Result};

#[inline(always)]
pub fn mix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// The key of hidden layer `layer` (1-based) at optimiser step `step`.
pub fn layer_key(seed: u64, step: u64, layer: usize) -> u32 {
    let (lo, hi) = (seed as u32, (seed >> 32) as u32);
    let key = mix32(mix32(hi ^ 0x9e37_79b9) ^ lo);
    let key = mix32(key ^ step as u32);
    mix32(key ^ layer as u32)
}

/// One layer's dropout at one step: the key, the keep threshold and the scale of kept units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mask {
    pub key: u32,
    pub threshold: u32,
    pub scale: f32,
}

impl Mask {
    pub fn new(seed: u64, step: u64, layer: usize, rate: f64) -> Self {
        Mask { key: layer_key(seed, step, layer), threshold: threshold(rate), scale: (1.0 / (1.0 - rate)) as f32 }
    }

    /// Whether element `index = r·width + j` of the layer's batch is kept.
    #[inline(always)]
    pub fn keep(&self, index: usize) -> bool {
        mix32(self.key ^ index as u32) >= self.threshold
    }

    /// The factor element `index` is multiplied by: `scale` when kept, 0 when dropped.
    #[inline(always)]
    pub fn factor(&self, index: usize) -> f32 {
        if self.keep(index) { self.scale } else { 0.0 }
    }
}

/// `floor(p·2³²)` for `p ∈ [0, 1)` (exact in f64: p has 53 bits, the product only shifts them).
pub fn threshold(rate: f64) -> u32 {
    (rate * 4_294_967_296.0).floor() as u32
}

/// A dropout rate: finite and in [0, 1).
pub fn check_rate(rate: f64, name: &str) -> Result<()> {
    if !(0.0..1.0).contains(&rate) {
        return Err(Error::range(format!("{name} must be in [0, 1), got {rate}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix32_key_and_mask_match_values_computed_independently() {
        // computed with Python's arbitrary-precision integers from the definition in CONVENTIONS.md
        assert_eq!(mix32(0), 0);
        assert_eq!(mix32(1), 0x688990c0);
        assert_eq!(mix32(2), 0xd1132181);
        assert_eq!(mix32(0xdeadbeef), 0xe628c683);
        assert_eq!(mix32(0xffffffff), 0x6768824a);
        let seed = 0x1234_5678_9abc;
        assert_eq!(layer_key(seed, 5, 2), 0x06415c8d);
        let m = Mask::new(seed, 5, 2, 0.3);
        let kept: Vec<u8> = (0..16).map(|i| m.keep(i) as u8).collect();
        assert_eq!(kept, [1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0]);
    }

    #[test]
    fn threshold_and_scale() {
        assert_eq!(threshold(0.0), 0);
        assert_eq!(threshold(0.5), 1 << 31);
        assert_eq!(threshold(0.25), 1 << 30);
        assert_eq!(threshold(0.999_999_999_9), u32::MAX);
        let m = Mask::new(1, 0, 1, 0.2);
        assert_eq!(m.scale, 1.25);
        // rate 0 keeps everything
        let all = Mask::new(7, 3, 2, 0.0);
        assert!((0..10_000).all(|i| all.keep(i)));
    }

    #[test]
    fn kept_fraction_is_one_minus_the_rate() {
        for rate in [0.1, 0.5, 0.9] {
            let m = Mask::new(42, 5, 1, rate);
            let n = 200_000;
            let kept = (0..n).filter(|&i| m.keep(i)).count() as f64 / n as f64;
            // binomial standard deviation is at most 0.0012 here: 5σ
            assert!((kept - (1.0 - rate)).abs() < 0.006, "rate {rate}: kept {kept}");
        }
    }

    #[test]
    fn masks_differ_between_steps_layers_and_seeds() {
        let base = Mask::new(42, 5, 1, 0.5);
        let pattern = |m: &Mask| (0..256).map(|i| m.keep(i)).collect::<Vec<_>>();
        let p = pattern(&base);
        assert_eq!(p, pattern(&Mask::new(42, 5, 1, 0.5)));
        assert_ne!(p, pattern(&Mask::new(42, 6, 1, 0.5)));
        assert_ne!(p, pattern(&Mask::new(42, 5, 2, 0.5)));
        assert_ne!(p, pattern(&Mask::new(43, 5, 1, 0.5)));
        assert_ne!(p, pattern(&Mask::new(42 + (1 << 32), 5, 1, 0.5)), "the seed's high word matters");
    }

    #[test]
    fn rates_are_checked() {
        assert!(check_rate(0.0, "dropout").is_ok());
        assert_eq!(check_rate(1.0, "dropout").unwrap_err().message, "dropout must be in [0, 1), got 1");
        assert!(check_rate(-0.1, "dropout[1]").unwrap_err().message.starts_with("dropout[1] must be in [0, 1)"));
        assert!(check_rate(f64::NAN, "dropout").is_err());
    }
}

//! The data set, held once as `u8` pixels (a quarter of f32's memory) and normalised per batch.

use crate::error::{Error, Result};
use ndarray::ArrayViewMut2;
use rayon::prelude::*;

/// Below this many rows a batch is normalised on one thread.
const PARALLEL_MIN_ROWS: usize = 256;

#[derive(Debug)]
pub struct Dataset {
    pixels: Vec<u8>,
    labels: Option<Vec<u32>>,
    features: usize,
    len: usize,
}

/// `p / 255` for every byte, so normalising is a table look-up with the exactly rounded quotient.
const fn unit_table() -> [f32; 256] {
    let mut t = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as f32 / 255.0;
        i += 1;
    }
    t
}
static UNIT: [f32; 256] = unit_table();

impl Dataset {
    /// `pixels`: `n × features` row-major; `labels`: `n` class indices, or none (prediction only).
    /// The vector is adopted as it is (no copy): a caller that filled it chunk by chunk from a file
    /// never holds the images twice.
    pub fn new(pixels: Vec<u8>, labels: Option<Vec<u32>>, features: usize) -> Result<Self> {
        let len = Self::check_shape(pixels.len(), labels.as_ref().map(|l| l.len()), features)?;
        Ok(Dataset { pixels, labels, features, len })
    }

    /// The number of samples `bytes` pixels and `labels` labels make, or the error [`Dataset::new`]
    /// would return: lets a caller check before it gives up a buffer it could otherwise keep.
    pub fn check_shape(bytes: usize, labels: Option<usize>, features: usize) -> Result<usize> {
        if features == 0 {
            return Err(Error::range("features must be at least 1"));
        }
        if bytes % features != 0 {
            return Err(Error::range(format!("images has {bytes} bytes, not a multiple of {features} features per sample")));
        }
        let len = bytes / features;
        if let Some(l) = labels {
            if l != len {
                return Err(Error::range(format!("labels has {l} entries but images holds {len} samples")));
            }
        }
        Ok(len)
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn features(&self) -> usize {
        self.features
    }
    pub fn labels(&self) -> Option<&[u32]> {
        self.labels.as_deref()
    }
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Labels, checked to lie in `0..classes` (the first offender is named).
    pub fn labels_for(&self, classes: usize) -> Result<&[u32]> {
        let labels = self.labels().ok_or_else(|| Error::type_("this data set has no labels"))?;
        if let Some(i) = labels.iter().position(|&y| y as usize >= classes) {
            return Err(Error::range(format!("labels[{i}] = {} is not a class index in 0..{classes}", labels[i])));
        }
        Ok(labels)
    }

    /// Rows `idx` of the data, normalised to [0, 1], into the first `idx.len()` rows of `out`.
    /// Large batches are spread over the current rayon pool (rows are independent).
    pub fn gather(&self, idx: &[u32], mut out: ArrayViewMut2<f32>) {
        let f = self.features;
        let copy = |i: u32, dst: &mut [f32]| {
            let src = &self.pixels[i as usize * f..(i as usize + 1) * f];
            for (d, &p) in dst.iter_mut().zip(src) {
                *d = UNIT[p as usize];
            }
        };
        let dst = out.as_slice_mut().expect("workspace is contiguous");
        if idx.len() >= PARALLEL_MIN_ROWS && rayon::current_num_threads() > 1 {
            dst.par_chunks_mut(f).zip(idx.par_iter()).for_each(|(row, &i)| copy(i, row));
        } else {
            dst.chunks_mut(f).zip(idx).for_each(|(row, &i)| copy(i, row));
        }
    }

    /// Rows `start..start+rows`, normalised, into `out` (no index list needed for in-order passes).
    pub fn gather_range(&self, start: usize, rows: usize, mut out: ArrayViewMut2<f32>) {
        let f = self.features;
        let src = &self.pixels[start * f..(start + rows) * f];
        let dst = &mut out.as_slice_mut().expect("workspace is contiguous")[..rows * f];
        let copy = |d: &mut [f32], s: &[u8]| d.iter_mut().zip(s).for_each(|(d, &p)| *d = UNIT[p as usize]);
        // by blocks of rows on the pool (inference would otherwise wait on this one thread)
        if rows >= PARALLEL_MIN_ROWS && rayon::current_num_threads() > 1 {
            let block = rows.div_ceil(rayon::current_num_threads() * 4) * f;
            dst.par_chunks_mut(block).zip(src.par_chunks(block)).for_each(|(d, s)| copy(d, s));
        } else {
            copy(dst, src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_adopts_the_pixels_without_a_copy_and_check_shape_refuses_what_new_would() {
        let pixels = vec![7u8; 12];
        let at = pixels.as_ptr();
        let d = Dataset::new(pixels, Some(vec![0, 1, 2]), 4).unwrap();
        assert_eq!(d.pixels().as_ptr(), at, "the vector is adopted, not copied");
        assert_eq!((d.len(), d.features()), (3, 4));
        assert_eq!(Dataset::check_shape(12, None, 4).unwrap(), 3);
        for (bytes, labels, features) in [(12, Some(2), 4), (12, None, 5), (12, None, 0)] {
            let e = Dataset::check_shape(bytes, labels, features).unwrap_err();
            let n = Dataset::new(vec![0; bytes], labels.map(|l| vec![0; l]), features).unwrap_err();
            assert_eq!(e.message, n.message);
        }
    }
}

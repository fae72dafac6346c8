//! The dataset abstraction: indexable labelled images.

use std::sync::Arc;

use image::{DynamicImage, GrayImage};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::error::DataError;
use crate::transform::Preprocess;

/// Labelled images, addressable by index. Implementations must be cheap to share across
/// worker threads.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Class names in label order.
    fn classes(&self) -> &[String];
    /// Label of sample `index`.
    fn label(&self, index: usize) -> usize;
    /// Where sample `index` comes from (a path, or `name[index]`), for messages.
    fn describe(&self, index: usize) -> String;
    /// Decodes sample `index`.
    fn image(&self, index: usize) -> Result<DynamicImage, DataError>;
    /// Writes sample `index`, preprocessed, into `out`.
    fn load_into(&self, index: usize, pre: &Preprocess, out: &mut [f32]) -> Result<(), DataError> {
        pre.apply(&self.image(index)?, out);
        Ok(())
    }
}

/// 8-bit grayscale images held in memory (IDX files).
pub struct InMemory {
    pixels: Vec<u8>,
    size: [usize; 2],
    labels: Vec<usize>,
    classes: Vec<String>,
}

impl InMemory {
    /// `pixels` holds `labels.len()` images of `size` (`[H, W]`), row-major.
    pub fn gray(
        pixels: Vec<u8>,
        size: [usize; 2],
        labels: Vec<usize>,
        classes: Vec<String>,
    ) -> Self {
        assert_eq!(pixels.len(), labels.len() * size[0] * size[1]);
        Self {
            pixels,
            size,
            labels,
            classes,
        }
    }

    fn raw(&self, index: usize) -> &[u8] {
        let n = self.size[0] * self.size[1];
        &self.pixels[index * n..(index + 1) * n]
    }
}

impl Dataset for InMemory {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn label(&self, index: usize) -> usize {
        self.labels[index]
    }
    fn describe(&self, index: usize) -> String {
        format!("image #{index}")
    }
    fn image(&self, index: usize) -> Result<DynamicImage, DataError> {
        let [h, w] = self.size;
        let img = GrayImage::from_raw(w as u32, h as u32, self.raw(index).to_vec())
            .expect("buffer size checked at construction");
        Ok(DynamicImage::ImageLuma8(img))
    }
    fn load_into(&self, index: usize, pre: &Preprocess, out: &mut [f32]) -> Result<(), DataError> {
        if pre.channels == 1 && pre.size == self.size {
            pre.write_planar(self.raw(index), 1, out);
            Ok(())
        } else {
            pre.apply(&self.image(index)?, out);
            Ok(())
        }
    }
}

/// A view of some samples of another dataset (a split).
pub struct Subset {
    inner: Arc<dyn Dataset>,
    indices: Vec<usize>,
}

impl Subset {
    /// The samples of `inner` at `indices`, in that order.
    pub fn new(inner: Arc<dyn Dataset>, indices: Vec<usize>) -> Self {
        Self { inner, indices }
    }
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn classes(&self) -> &[String] {
        self.inner.classes()
    }
    fn label(&self, index: usize) -> usize {
        self.inner.label(self.indices[index])
    }
    fn describe(&self, index: usize) -> String {
        self.inner.describe(self.indices[index])
    }
    fn image(&self, index: usize) -> Result<DynamicImage, DataError> {
        self.inner.image(self.indices[index])
    }
    fn load_into(&self, index: usize, pre: &Preprocess, out: &mut [f32]) -> Result<(), DataError> {
        self.inner.load_into(self.indices[index], pre, out)
    }
}

/// Splits `0..n` into `(train, val)` with a seeded shuffle; `val_fraction` of the samples
/// (rounded) go to validation. The same seed always gives the same split.
pub fn split_indices(n: usize, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let n_val = ((n as f64) * val_fraction.clamp(0.0, 1.0)).round() as usize;
    let val = idx.split_off(n - n_val);
    (idx, val)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let (a, b) = split_indices(100, 0.1, 7);
        assert_eq!((a.len(), b.len()), (90, 10));
        let mut all: Vec<_> = a.iter().chain(&b).copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(split_indices(100, 0.1, 7), (a.clone(), b));
        assert_ne!(split_indices(100, 0.1, 8).0, a);
    }
}

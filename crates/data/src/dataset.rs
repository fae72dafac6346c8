//! The dataset abstraction: indexable labelled images.

use std::path::Path;
use std::sync::Arc;

use image::{DynamicImage, GrayImage, RgbImage};
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
    /// The file sample `index` is read from, when it is a file (not for in-memory sets).
    fn path(&self, _index: usize) -> Option<&Path> {
        None
    }
    /// Decodes sample `index`.
    fn image(&self, index: usize) -> Result<DynamicImage, DataError>;
    /// Writes sample `index`, preprocessed, into `out`.
    fn load_into(&self, index: usize, pre: &Preprocess, out: &mut [f32]) -> Result<(), DataError> {
        pre.apply(&self.image(index)?, out);
        Ok(())
    }
}

/// 8-bit images held in memory (IDX files: grayscale; CIFAR batches: RGB), stored
/// interleaved (`HWC`) so that a sample at the model's size is copied without decoding.
pub struct InMemory {
    pixels: Vec<u8>,
    size: [usize; 2],
    channels: usize,
    labels: Vec<usize>,
    classes: Vec<String>,
}

impl InMemory {
    /// `pixels` holds `labels.len()` grayscale images of `size` (`[H, W]`), row-major.
    pub fn gray(
        pixels: Vec<u8>,
        size: [usize; 2],
        labels: Vec<usize>,
        classes: Vec<String>,
    ) -> Self {
        Self::new(pixels, size, 1, labels, classes)
    }

    /// `pixels` holds `labels.len()` RGB images of `size` (`[H, W]`), row-major, interleaved.
    pub fn rgb(
        pixels: Vec<u8>,
        size: [usize; 2],
        labels: Vec<usize>,
        classes: Vec<String>,
    ) -> Self {
        Self::new(pixels, size, 3, labels, classes)
    }

    fn new(
        pixels: Vec<u8>,
        size: [usize; 2],
        channels: usize,
        labels: Vec<usize>,
        classes: Vec<String>,
    ) -> Self {
        assert_eq!(pixels.len(), labels.len() * size[0] * size[1] * channels);
        Self {
            pixels,
            size,
            channels,
            labels,
            classes,
        }
    }

    /// Channels per pixel: 1 (gray) or 3 (RGB).
    pub fn channels(&self) -> usize {
        self.channels
    }

    fn raw(&self, index: usize) -> &[u8] {
        let n = self.size[0] * self.size[1] * self.channels;
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
        let raw = self.raw(index).to_vec();
        Ok(if self.channels == 1 {
            DynamicImage::ImageLuma8(
                GrayImage::from_raw(w as u32, h as u32, raw).expect("size checked at construction"),
            )
        } else {
            DynamicImage::ImageRgb8(
                RgbImage::from_raw(w as u32, h as u32, raw).expect("size checked at construction"),
            )
        })
    }
    fn load_into(&self, index: usize, pre: &Preprocess, out: &mut [f32]) -> Result<(), DataError> {
        if pre.channels == self.channels && pre.size == self.size {
            pre.write_planar(self.raw(index), self.channels, out);
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
    fn path(&self, index: usize) -> Option<&Path> {
        self.inner.path(self.indices[index])
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

/// At most `per_class` samples of each class of `ds`, chosen by a seeded shuffle within each
/// class (a class-balanced subset, as seed 001's 1000 cats + 1000 dogs); returned in dataset
/// order. Classes with fewer samples keep them all.
pub fn per_class_indices(ds: &dyn Dataset, per_class: usize, seed: u64) -> Vec<usize> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); ds.classes().len()];
    for i in 0..ds.len() {
        let l = ds.label(i);
        if l >= by_class.len() {
            by_class.resize(l + 1, Vec::new());
        }
        by_class[l].push(i);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for mut idx in by_class {
        idx.shuffle(&mut rng);
        idx.truncate(per_class);
        out.extend(idx);
    }
    out.sort_unstable();
    out
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

    #[test]
    fn per_class_subset_is_balanced_seeded_and_sorted() {
        let labels: Vec<usize> = (0..50)
            .map(|i| if i < 40 { 0 } else { 1 + i % 2 })
            .collect();
        let ds = InMemory::gray(
            vec![0; 50],
            [1, 1],
            labels.clone(),
            vec!["a".into(), "b".into(), "c".into()],
        );
        let sub = per_class_indices(&ds, 7, 3);
        let count = |c| sub.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!((count(0), count(1), count(2)), (7, 5, 5));
        assert!(sub.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(per_class_indices(&ds, 7, 3), sub);
        assert_ne!(per_class_indices(&ds, 7, 4), sub);
    }

    #[test]
    fn rgb_in_memory_round_trips_pixels() {
        let px: Vec<u8> = (0..2 * 2 * 3 * 2).map(|v| v as u8).collect();
        let ds = InMemory::rgb(px.clone(), [2, 2], vec![0, 1], vec!["a".into(), "b".into()]);
        let img = ds.image(1).unwrap().into_rgb8();
        assert_eq!(img.as_raw().as_slice(), &px[12..]);
        let pre = Preprocess {
            channels: 3,
            size: [2, 2],
            mean: vec![0.0; 3],
            std: vec![1.0 / 255.0; 3],
        };
        let mut out = vec![0.0; 12];
        ds.load_into(1, &pre, &mut out).unwrap();
        // Channel-first: red plane is every third interleaved byte.
        assert_eq!(&out[..4], &[12.0, 15.0, 18.0, 21.0]);
    }
}

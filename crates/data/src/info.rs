//! `convnet data info`: what a dataset holds — class counts, image sizes, file formats,
//! colour types, and the files that cannot be read.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::dataset::Dataset;
use crate::folder::{decode_bytes, header};

/// Summary of one split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitInfo {
    /// `train`, `val`, `test` or `all`.
    pub split: String,
    /// Number of samples.
    pub images: usize,
    /// `(class, samples)` in label order.
    pub classes: Vec<(String, usize)>,
    /// Smallest width and height seen (each on its own), `[W, H]`.
    pub min_size: [u32; 2],
    /// Median width and height.
    pub median_size: [u32; 2],
    /// Largest width and height.
    pub max_size: [u32; 2],
    /// Samples per file format (by content), e.g. `Png`, `Jpeg`; `memory` for in-memory sets.
    pub formats: BTreeMap<String, usize>,
    /// Samples per stored colour type, e.g. `Rgb8`, `L16`, `Cmyk8`.
    pub colors: BTreeMap<String, usize>,
    /// `(file, reason)` of each sample that cannot be read.
    pub broken: Vec<(String, String)>,
}

/// One sample's facts, or why it is broken.
type Facts = Result<(String, String, (u32, u32)), String>;

fn facts(ds: &dyn Dataset, i: usize, full: bool) -> Facts {
    match ds.path(i) {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
            let h = header(&bytes)?;
            if full {
                decode_bytes(&bytes)?;
            }
            Ok((format!("{:?}", h.format), h.color, h.size))
        }
        None => {
            let img = ds.image(i).map_err(|e| e.to_string())?;
            Ok((
                "memory".into(),
                format!("{:?}", img.color()),
                (img.width(), img.height()),
            ))
        }
    }
}

/// Summarises `ds`. With `full`, every image is decoded, which finds truncated files too;
/// otherwise only headers are read.
pub fn summarize(split: &str, ds: &dyn Dataset, full: bool) -> SplitInfo {
    let all: Vec<Facts> = (0..ds.len())
        .into_par_iter()
        .map(|i| facts(ds, i, full))
        .collect();
    let mut counts = vec![0usize; ds.classes().len()];
    let (mut ws, mut hs) = (Vec::new(), Vec::new());
    let (mut formats, mut colors) = (BTreeMap::new(), BTreeMap::new());
    let mut broken = Vec::new();
    for (i, f) in all.into_iter().enumerate() {
        if let Some(c) = counts.get_mut(ds.label(i)) {
            *c += 1;
        }
        match f {
            Ok((format, color, (w, h))) => {
                *formats.entry(format).or_insert(0) += 1;
                *colors.entry(color).or_insert(0) += 1;
                ws.push(w);
                hs.push(h);
            }
            Err(why) => broken.push((ds.describe(i), why)),
        }
    }
    ws.sort_unstable();
    hs.sort_unstable();
    let pick = |v: &[u32], at: usize| v.get(at).copied().unwrap_or(0);
    let n = ws.len();
    SplitInfo {
        split: split.into(),
        images: ds.len(),
        classes: ds.classes().iter().cloned().zip(counts).collect(),
        min_size: [pick(&ws, 0), pick(&hs, 0)],
        median_size: [pick(&ws, n / 2), pick(&hs, n / 2)],
        max_size: [
            pick(&ws, n.saturating_sub(1)),
            pick(&hs, n.saturating_sub(1)),
        ],
        formats,
        colors,
        broken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::ImageFolder;
    use image::{GrayImage, RgbImage};

    #[test]
    fn counts_classes_sizes_formats_and_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        RgbImage::new(10, 20).save(a.join("1.png")).unwrap();
        RgbImage::new(30, 5).save(a.join("2.jpg")).unwrap();
        GrayImage::new(4, 8).save(b.join("3.bmp")).unwrap();
        let jpg = std::fs::read(a.join("2.jpg")).unwrap();
        std::fs::write(b.join("cut.jpg"), &jpg[..jpg.len() - 40]).unwrap();
        let ds = ImageFolder::open(dir.path()).unwrap();
        let s = summarize("all", &ds, true);
        assert_eq!(s.images, 4);
        assert_eq!(s.classes, [("a".to_string(), 2), ("b".to_string(), 2)]);
        assert_eq!(
            (s.min_size, s.median_size, s.max_size),
            ([4, 5], [10, 8], [30, 20])
        );
        assert_eq!(s.formats["Png"], 1);
        assert_eq!(s.formats["Jpeg"], 1);
        assert_eq!(s.formats["Bmp"], 1);
        // (BMP stores gray as an 8-bit palette, read back as RGB.)
        assert_eq!(s.colors.values().sum::<usize>(), 3);
        assert!(s.colors["Rgb8"] >= 2, "{:?}", s.colors);
        assert_eq!(s.broken.len(), 1);
        assert!(s.broken[0].0.ends_with("cut.jpg"), "{:?}", s.broken);
        // Headers only: sizes and formats still come out.
        assert_eq!(summarize("all", &ds, false).max_size, [30, 20]);
    }
}

//! Test-time augmentation and ensembles: several views of each test image (flips, crops,
//! scales, or the whole enlarged image through a fully-convolutional network), and several
//! models, whose softmax probabilities are averaged.
//!
//! Views are made from the decoded image, before the model's fixed [`Preprocess`]. Crops are
//! taken from the image resized to `size * 256 / 224` (ImageNet's 256 → 224 ratio), at the
//! model's input size.

use burn::tensor::{Device, Tensor, TensorData};
use convnet_data::augment::crop::centre_crop;
use convnet_data::augment::{Img, five_crop, ten_crop};
use convnet_data::{Dataset, Preprocess};
use convnet_nn::Network;
use image::DynamicImage;
use image::imageops::FilterType;
use rayon::prelude::*;

use crate::metrics::{Metrics, softmax};

/// A test-time augmentation mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tta {
    /// One view: the whole image resized to the model's input (what training saw).
    Center,
    /// The image and its horizontal mirror.
    Hflip,
    /// Four corner crops and the centre crop of the enlarged image.
    FiveCrop,
    /// [`Tta::FiveCrop`] of the image and of its mirror.
    TenCrop,
    /// For each size S (the shorter side, in pixels), the image resized to S and centre-cropped
    /// at the model's input.
    MultiScale(Vec<u32>),
    /// The enlarged whole image through the network as it is: for models whose head is global
    /// average pooling + linear, this applies the classifier as a convolution at every position
    /// and averages the scores.
    Dense,
}

impl Tta {
    /// Parses `center`, `hflip`, `five-crop`, `ten-crop`, `multi-scale=28,32,36` or `dense`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "unknown --tta '{s}'; use center, hflip, five-crop, ten-crop, \
                 multi-scale=S1,S2,… (sizes in pixels) or dense"
            )
        };
        Ok(match s {
            "center" | "centre" | "single" => Tta::Center,
            "hflip" => Tta::Hflip,
            "five-crop" => Tta::FiveCrop,
            "ten-crop" => Tta::TenCrop,
            "dense" => Tta::Dense,
            _ => {
                let list = s.strip_prefix("multi-scale=").ok_or_else(bad)?;
                let sizes = list
                    .split(',')
                    .map(|v| v.trim().parse::<u32>().ok().filter(|&v| v > 0))
                    .collect::<Option<Vec<u32>>>()
                    .ok_or_else(|| {
                        format!(
                            "--tta {s}: sizes must be positive integers, e.g. multi-scale=28,32,36"
                        )
                    })?;
                if sizes.is_empty() {
                    return Err(bad());
                }
                Tta::MultiScale(sizes)
            }
        })
    }

    /// The name as given on the command line.
    pub fn name(&self) -> String {
        match self {
            Tta::Center => "center".into(),
            Tta::Hflip => "hflip".into(),
            Tta::FiveCrop => "five-crop".into(),
            Tta::TenCrop => "ten-crop".into(),
            Tta::Dense => "dense".into(),
            Tta::MultiScale(s) => format!(
                "multi-scale={}",
                s.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
            ),
        }
    }

    /// Views per image.
    pub fn num_views(&self) -> usize {
        match self {
            Tta::Center | Tta::Dense => 1,
            Tta::Hflip => 2,
            Tta::FiveCrop => 5,
            Tta::TenCrop => 10,
            Tta::MultiScale(s) => s.len(),
        }
    }

    /// The preprocessing the views go through: the model's, except for `dense`, whose single
    /// view is the enlarged image.
    pub fn preprocess(&self, pre: &Preprocess) -> Preprocess {
        match self {
            Tta::Dense => Preprocess {
                size: enlarged(pre.size).map(|v| v as usize),
                ..pre.clone()
            },
            _ => pre.clone(),
        }
    }

    /// Checks the mode against a model input: multi-scale sizes must not be smaller than it.
    pub fn check(&self, pre: &Preprocess) -> Result<(), String> {
        if let Tta::MultiScale(s) = self {
            let min = pre.size[0].min(pre.size[1]) as u32;
            if let Some(bad) = s.iter().find(|&&v| v < min) {
                return Err(format!(
                    "--tta {}: size {bad} is smaller than the model's input {}x{}; use sizes of at least {min}",
                    self.name(),
                    pre.size[0],
                    pre.size[1]
                ));
            }
        }
        Ok(())
    }

    /// The views of one decoded image, each to be passed through [`Self::preprocess`].
    pub fn views(&self, img: &DynamicImage, pre: &Preprocess) -> Vec<DynamicImage> {
        let size = [pre.size[0] as u32, pre.size[1] as u32];
        let big = || {
            let [h, w] = enlarged(pre.size);
            img.resize_exact(w, h, FilterType::Triangle)
        };
        match self {
            Tta::Center => vec![img.clone()],
            Tta::Hflip => vec![img.clone(), img.fliph()],
            Tta::FiveCrop => five_crop(&big(), size).to_vec(),
            Tta::TenCrop => ten_crop(&big(), size).to_vec(),
            Tta::Dense => vec![big()],
            Tta::MultiScale(scales) => scales
                .iter()
                .map(|&s| {
                    // Shorter side of the model input scaled to s, aspect kept.
                    let f = s as f64 / size[0].min(size[1]) as f64;
                    let (h, w) = (
                        (size[0] as f64 * f).round() as u32,
                        (size[1] as f64 * f).round() as u32,
                    );
                    let r = img.resize_exact(w, h, FilterType::Triangle);
                    centre_crop(&Img::from_dynamic(r), size).into_dynamic()
                })
                .collect(),
        }
    }
}

/// The size crops are taken from: `size * 256 / 224`, rounded (28 → 32, 224 → 256).
pub fn enlarged(size: [usize; 2]) -> [u32; 2] {
    size.map(|v| ((v as f64) * 256.0 / 224.0).round() as u32)
}

/// Whether `model` can be evaluated densely: its head must be global average pooling (to
/// 1x1) followed by one linear layer (dropout and flatten allowed), so that a larger input
/// gives a score map that the pooling averages. Returns why not otherwise.
pub fn dense_supported(model: &Network, pre: &Preprocess, device: &Device) -> Result<(), String> {
    let [h, w] = pre.size;
    let x = Tensor::<4>::zeros([1, pre.channels, h, w], device);
    let features = model.forward_features(x);
    let (_, layers) = convnet_nn::trace::trace(|| model.forward_head(features));
    let gap = layers
        .iter()
        .rposition(|l| l.kind == "AdaptiveAvgPool2d" && l.output.iter().skip(2).all(|&d| d == 1));
    let after: Vec<&str> = match gap {
        Some(g) => layers[g + 1..].iter().map(|l| l.kind).collect(),
        None => Vec::new(),
    };
    let linears = after.iter().filter(|k| **k == "Linear").count();
    let only_head = after
        .iter()
        .all(|k| matches!(*k, "Flatten" | "Dropout" | "Linear"));
    let before_ok = gap.is_some_and(|g| {
        layers[..g]
            .iter()
            .all(|l| matches!(l.kind, "Conv2d" | "ReLU" | "Dropout" | "BatchNorm"))
    });
    if gap.is_some() && linears <= 1 && only_head && before_ok {
        Ok(())
    } else {
        let kinds: Vec<&str> = layers.iter().map(|l| l.kind).collect();
        Err(format!(
            "dense evaluation needs a head of global average pooling + linear, but this model's head is {}; use --tta ten-crop or multi-scale instead",
            kinds.join(" → ")
        ))
    }
}

/// Class probabilities of every sample of a dataset under one TTA mode.
#[derive(Debug, Clone)]
pub struct Predictions {
    /// Classes per row.
    pub num_classes: usize,
    /// Dataset indices of the rows (unreadable samples are left out).
    pub indices: Vec<usize>,
    /// True labels of the rows.
    pub labels: Vec<usize>,
    /// `rows * num_classes` probabilities, each row averaged over the views.
    pub probs: Vec<f32>,
    /// Samples that could not be read: `(description, error)`.
    pub skipped: Vec<(String, String)>,
}

impl Predictions {
    /// Metrics of these probabilities against the labels.
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::new(self.num_classes);
        m.update_probs(&self.probs, &self.labels);
        m
    }

    /// The mean of several models' (or modes') probabilities over the samples all of them
    /// read; `None` when `parts` is empty.
    pub fn average(parts: &[&Predictions]) -> Option<Predictions> {
        let first = parts.first()?;
        let k = first.num_classes;
        let common: Vec<(usize, usize)> = first
            .indices
            .iter()
            .enumerate()
            .filter(|(_, i)| parts.iter().all(|p| p.indices.binary_search(i).is_ok()))
            .map(|(r, &i)| (r, i))
            .collect();
        let mut probs = vec![0f32; common.len() * k];
        for p in parts {
            for (row, &(_, i)) in common.iter().enumerate() {
                let r = p.indices.binary_search(&i).expect("checked above");
                for c in 0..k {
                    probs[row * k + c] += p.probs[r * k + c] / parts.len() as f32;
                }
            }
        }
        Some(Predictions {
            num_classes: k,
            indices: common.iter().map(|&(_, i)| i).collect(),
            labels: common.iter().map(|&(r, _)| first.labels[r]).collect(),
            probs,
            skipped: first.skipped.clone(),
        })
    }
}

/// Runs `model` (inference mode) over `ds` with the views of `tta`, `batch` images at a time
/// (decoded in parallel), averaging the softmax of each image's views. `on_batch(done, total)`
/// reports progress.
pub fn predict_dataset(
    model: &Network,
    device: &Device,
    ds: &dyn Dataset,
    pre: &Preprocess,
    tta: &Tta,
    batch: usize,
    mut on_batch: impl FnMut(usize, usize),
) -> Predictions {
    let k = ds.classes().len();
    let vpre = tta.preprocess(pre);
    let views = tta.num_views();
    let len = vpre.sample_len();
    let mut out = Predictions {
        num_classes: k,
        indices: Vec::new(),
        labels: Vec::new(),
        probs: Vec::new(),
        skipped: Vec::new(),
    };
    let n = ds.len();
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch.max(1)).min(n);
        let loaded: Vec<(usize, Result<Vec<f32>, String>)> = (start..end)
            .into_par_iter()
            .map(|i| {
                let mut buf = vec![0f32; len * views];
                let r = if *tta == Tta::Center {
                    ds.load_into(i, &vpre, &mut buf).map_err(|e| e.to_string())
                } else {
                    ds.image(i).map_err(|e| e.to_string()).map(|img| {
                        for (v, view) in tta.views(&img, pre).iter().enumerate() {
                            vpre.apply(view, &mut buf[v * len..(v + 1) * len]);
                        }
                    })
                };
                (i, r.map(|_| buf))
            })
            .collect();
        let mut pixels = Vec::new();
        let mut rows = Vec::new();
        for (i, r) in loaded {
            match r {
                Ok(buf) => {
                    pixels.extend_from_slice(&buf);
                    rows.push(i);
                }
                Err(e) => out.skipped.push((ds.describe(i), e)),
            }
        }
        if !rows.is_empty() {
            let shape = [
                rows.len() * views,
                vpre.channels,
                vpre.size[0],
                vpre.size[1],
            ];
            let x = Tensor::<4>::from_data(TensorData::new(pixels, shape), device);
            let logits: Vec<f32> = model
                .forward(x)
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32 logits");
            for (r, &i) in rows.iter().enumerate() {
                let mut mean = vec![0f32; k];
                for v in 0..views {
                    let row = &logits[(r * views + v) * k..(r * views + v + 1) * k];
                    for (m, p) in mean.iter_mut().zip(softmax(row)) {
                        *m += p / views as f32;
                    }
                }
                out.probs.extend_from_slice(&mean);
                out.indices.push(i);
                out.labels.push(ds.label(i));
            }
        }
        on_batch(end, n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::GrayImage;

    fn pre(size: usize) -> Preprocess {
        Preprocess {
            channels: 1,
            size: [size, size],
            mean: vec![0.0],
            std: vec![1.0],
        }
    }

    #[test]
    fn parses_every_mode_and_refuses_bad_ones() {
        assert_eq!(Tta::parse("ten-crop").unwrap(), Tta::TenCrop);
        assert_eq!(
            Tta::parse("multi-scale=28,32").unwrap(),
            Tta::MultiScale(vec![28, 32])
        );
        assert_eq!(
            Tta::parse("multi-scale=28,32").unwrap().name(),
            "multi-scale=28,32"
        );
        assert!(
            Tta::parse("multi-scale=a")
                .unwrap_err()
                .contains("positive")
        );
        assert!(Tta::parse("twelve-crop").unwrap_err().contains("ten-crop"));
        assert!(
            Tta::MultiScale(vec![20])
                .check(&pre(28))
                .unwrap_err()
                .contains("20")
        );
        assert_eq!(enlarged([28, 28]), [32, 32]);
        assert_eq!(enlarged([224, 224]), [256, 256]);
    }

    #[test]
    fn views_have_the_model_size_and_the_right_count() {
        // A gradient image so that the crops differ.
        let img = DynamicImage::ImageLuma8(GrayImage::from_fn(40, 30, |x, y| {
            image::Luma([(x * 6 + y) as u8])
        }));
        let p = pre(28);
        for (mode, n) in [
            (Tta::Center, 1),
            (Tta::Hflip, 2),
            (Tta::FiveCrop, 5),
            (Tta::TenCrop, 10),
            (Tta::MultiScale(vec![28, 32, 36]), 3),
        ] {
            let v = mode.views(&img, &p);
            assert_eq!(v.len(), n, "{mode:?}");
            assert_eq!(v.len(), mode.num_views());
            if !matches!(mode, Tta::Center | Tta::Hflip) {
                assert!(
                    v.iter().all(|i| (i.width(), i.height()) == (28, 28)),
                    "{mode:?}"
                );
            }
        }
        let ten = Tta::TenCrop.views(&img, &p);
        assert_ne!(ten[0].to_luma8(), ten[1].to_luma8(), "corners differ");
        assert_eq!(
            ten[5].to_luma8(),
            image::imageops::flip_horizontal(&ten[1].to_luma8()),
            "the mirror's top-left is the flipped top-right"
        );
        let dense = Tta::Dense.views(&img, &p);
        assert_eq!((dense[0].width(), dense[0].height()), (32, 32));
        assert_eq!(Tta::Dense.preprocess(&p).size, [32, 32]);
    }

    #[test]
    fn dense_is_allowed_for_pooling_heads_only() {
        let dev = Device::flex();
        let model = |name: &str| {
            let spec = convnet_nn::registry::native_spec(convnet_nn::find(name).unwrap());
            let pre = Preprocess {
                channels: spec.in_channels,
                size: spec.input_size,
                mean: vec![0.0; spec.in_channels],
                std: vec![1.0; spec.in_channels],
            };
            (convnet_nn::build(&spec, &dev).unwrap(), pre)
        };
        let (m, p) = model("resnet20");
        dense_supported(&m, &p, &dev).unwrap();
        // The enlarged input goes through and gives one row of class scores.
        let big = Tta::Dense.preprocess(&p);
        let y = m.forward(Tensor::<4>::zeros([2, 3, big.size[0], big.size[1]], &dev));
        assert_eq!(y.dims(), [2, 10]);
        let (m, p) = model("small-cnn");
        let why = dense_supported(&m, &p, &dev).unwrap_err();
        assert!(why.contains("Flatten"), "{why}");
    }

    #[test]
    fn averaging_predictions_keeps_common_rows() {
        let a = Predictions {
            num_classes: 2,
            indices: vec![0, 1, 2],
            labels: vec![0, 1, 0],
            probs: vec![1.0, 0.0, 0.2, 0.8, 0.6, 0.4],
            skipped: vec![],
        };
        let b = Predictions {
            indices: vec![0, 2],
            labels: vec![0, 0],
            probs: vec![0.0, 1.0, 0.2, 0.8],
            ..a.clone()
        };
        let m = Predictions::average(&[&a, &b]).unwrap();
        assert_eq!(m.indices, vec![0, 2]);
        assert_eq!(m.probs, vec![0.5, 0.5, 0.4, 0.6]);
        assert_eq!(m.metrics().count, 2);
    }
}

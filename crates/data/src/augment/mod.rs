//! Data augmentation: random transforms on decoded 8-bit images, composed into a pipeline
//! ([`Augment`]) that runs before the fixed [`crate::Preprocess`] in the training loader,
//! plus batch-level MixUp / CutMix ([`mix`]).
//!
//! A pipeline is written as a short spec, comma-separated `key` or `key=value` items in the
//! order they apply (`rotate=30,hflip,shift=0.2,zoom=0.2,fill=nearest`), or a preset name
//! ([`PRESETS`]); it (de)serialises as that string, so it can live in a TOML/JSON config.
//! Normalisation (rescale 1/255, mean/std) is not an augmentation: `Preprocess` does it.

pub mod auto;
pub mod color;
pub mod crop;
pub mod geometry;
pub mod mix;

pub use crop::{Interp, five_crop, ten_crop};
pub use mix::{Mix, mix_batch};

use std::sync::Arc;

use image::DynamicImage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use color::{Blur, ColorJitter, Erase, Lighting, RandomGray};
use crop::{CentreCrop, Pad, RandomCrop, RandomResizedCrop, Resize, ScaleJitter};
use geometry::{Affine, Fill, Flip};

/// An interleaved 8-bit image (`c` = 1 gray or 3 RGB), the working format of every transform.
#[derive(Debug, Clone, PartialEq)]
pub struct Img {
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
    /// Channels: 1 or 3.
    pub c: usize,
    /// `h * w * c` bytes, row-major.
    pub px: Vec<u8>,
}

impl Img {
    /// Takes the pixels of `img` without copying when it is already 8-bit gray or RGB;
    /// anything else is converted (gray with alpha to gray, the rest to RGB).
    pub fn from_dynamic(img: DynamicImage) -> Self {
        let (w, h) = (img.width(), img.height());
        match img {
            DynamicImage::ImageLuma8(g) => Img {
                w,
                h,
                c: 1,
                px: g.into_raw(),
            },
            DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_) => Img {
                w,
                h,
                c: 1,
                px: img.into_luma8().into_raw(),
            },
            other => Img {
                w,
                h,
                c: 3,
                px: other.into_rgb8().into_raw(),
            },
        }
    }

    /// The pixels as a [`DynamicImage`] (gray or RGB), without copying.
    pub fn into_dynamic(self) -> DynamicImage {
        if self.c == 1 {
            DynamicImage::ImageLuma8(
                image::GrayImage::from_raw(self.w, self.h, self.px)
                    .expect("size kept by transforms"),
            )
        } else {
            DynamicImage::ImageRgb8(
                image::RgbImage::from_raw(self.w, self.h, self.px)
                    .expect("size kept by transforms"),
            )
        }
    }

    /// The channel values of pixel `(x, y)`.
    pub fn get(&self, x: u32, y: u32) -> &[u8] {
        let p = (y as usize * self.w as usize + x as usize) * self.c;
        &self.px[p..p + self.c]
    }
}

/// One random (or fixed) image transform; its randomness comes only from `rng`, so a seeded
/// RNG gives reproducible output.
pub trait Transform: Send + Sync + std::fmt::Debug {
    /// Transforms `img`.
    fn apply(&self, img: Img, rng: &mut StdRng) -> Img;
}

/// The keys of the spec grammar, with their values, for help and error messages.
pub const KEYS: &str = "rotate=DEG, shift=F, wshift=F, hshift=F, shear=DEG, zoom=F|LO:HI, \
fill=nearest|constant|reflect|wrap, cval=0..255, hflip[=P], vflip[=P], resize=S|HxW, \
interp=bilinear|bicubic|nearest, center=S|HxW, pad=P, crop=S|HxW, rrc=S|HxW, \
scale-jitter=LO:HI, jitter=F, brightness=F, contrast=F, saturation=F, hue=F, gray=P, \
blur=SIGMA, pca=STD, erase=P, randaugment[=N:M], trivialaugment, mixup=ALPHA, cutmix=ALPHA";

/// Named pipelines: `(name, spec, what it reproduces)`.
pub const PRESETS: &[(&str, &str, &str)] = &[
    (
        "keras-seed001",
        "rotate=40,shift=0.2,shear=0.2,zoom=0.2,hflip,fill=nearest",
        "seed 001 Keras ImageDataGenerator (dogs vs cats)",
    ),
    (
        "torchvision-flowers",
        "rotate=30,fill=constant,rrc=224,hflip",
        "seed 002/003 flowers: RandomRotation(30), RandomResizedCrop(224), RandomHorizontalFlip",
    ),
    (
        "imagenet-train",
        "rrc=224,hflip,jitter=0.4,pca=0.1",
        "ImageNet training: random resized crop, flip, colour jitter, AlexNet lighting",
    ),
    (
        "imagenet-eval",
        "resize=256,center=224",
        "ImageNet evaluation: shorter side 256, centre crop 224",
    ),
    (
        "vgg-train",
        "scale-jitter=256:512,crop=224,hflip",
        "VGG scale jittering: shorter side in [256, 512], random 224 crop, flip",
    ),
    (
        "cifar-train",
        "pad=4,crop=32,hflip",
        "CIFAR: 4-pixel zero padding, random 32 crop, flip",
    ),
];

/// A spec item that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("augmentation spec: `{item}`: {why}; valid keys: {KEYS}; presets: {presets}", presets = preset_names())]
pub struct SpecError {
    /// The offending item.
    pub item: String,
    /// What is wrong with it.
    pub why: String,
}

/// The preset names, comma-separated (for help and error messages).
pub fn preset_names() -> String {
    PRESETS.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
}

fn err(item: &str, why: impl Into<String>) -> SpecError {
    SpecError {
        item: item.to_string(),
        why: why.into(),
    }
}

/// A parsed augmentation pipeline: per-image transforms in order, then optional batch mixing.
#[derive(Debug, Clone)]
pub struct Augment {
    spec: String,
    ops: Vec<Arc<dyn Transform>>,
    /// MixUp alpha, if enabled.
    pub mixup: Option<f64>,
    /// CutMix alpha, if enabled (with both, each batch picks one at random).
    pub cutmix: Option<f64>,
}

impl PartialEq for Augment {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Serialize for Augment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.spec)
    }
}

impl<'de> Deserialize<'de> for Augment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Augment::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Augment {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        Augment::parse(s)
    }
}

impl std::fmt::Display for Augment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.spec)
    }
}

enum Step {
    Affine,
    Jitter,
    Resize([u32; 2]),
    ScaleJitter(u32, u32),
    Centre([u32; 2]),
    Pad(u32),
    Crop([u32; 2]),
    Rrc([u32; 2]),
    Other(Arc<dyn Transform>),
}

fn num(item: &str, v: Option<&str>, lo: f64, hi: f64) -> Result<f64, SpecError> {
    let v = v.ok_or_else(|| err(item, "needs a value (key=value)"))?;
    let x: f64 = v
        .trim()
        .parse()
        .map_err(|_| err(item, format!("`{v}` is not a number")))?;
    if !(lo..=hi).contains(&x) {
        return Err(err(item, format!("{x} is outside [{lo}, {hi}]")));
    }
    Ok(x)
}

fn range(item: &str, v: Option<&str>, lo: f64, hi: f64) -> Result<(f64, f64), SpecError> {
    let v = v.ok_or_else(|| err(item, "needs a value LO:HI"))?;
    let (a, b) = v
        .split_once(':')
        .ok_or_else(|| err(item, "expected LO:HI"))?;
    let (a, b) = (num(item, Some(a), lo, hi)?, num(item, Some(b), lo, hi)?);
    if a > b {
        return Err(err(item, "LO is greater than HI"));
    }
    Ok((a, b))
}

/// RandAugment's `N:M`: operations per image (1..=10) and magnitude bin (0..=30).
fn range_pair(item: &str, v: Option<&str>) -> Result<(f64, f64), SpecError> {
    let (n, m) = v
        .and_then(|v| v.split_once(':'))
        .ok_or_else(|| err(item, "expected N:M (operations:magnitude), e.g. 2:9"))?;
    let n = num(item, Some(n), 1.0, 10.0)?;
    let m = num(item, Some(m), 0.0, 30.0)?;
    Ok((n.round(), m.round()))
}

/// `S` → `[S, S]`, `HxW` → `[H, W]`.
fn size(item: &str, v: Option<&str>) -> Result<[u32; 2], SpecError> {
    let v = v.ok_or_else(|| err(item, "needs a size (S or HxW)"))?;
    let one = |s: &str| -> Result<u32, SpecError> {
        match s.trim().parse::<u32>() {
            Ok(n) if (1..=16384).contains(&n) => Ok(n),
            _ => Err(err(item, format!("`{s}` is not a size in 1..=16384"))),
        }
    };
    match v.split_once('x') {
        Some((h, w)) => Ok([one(h)?, one(w)?]),
        None => {
            let s = one(v)?;
            Ok([s, s])
        }
    }
}

fn prob(item: &str, v: Option<&str>, default: f64) -> Result<f64, SpecError> {
    match v {
        None => Ok(default),
        Some(_) => num(item, v, 0.0, 1.0),
    }
}

impl Augment {
    /// Parses a spec string or preset name (presets may be combined with more items:
    /// `imagenet-train,erase=0.25`). Errors name the item and list the valid keys.
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let mut items: Vec<String> = Vec::new();
        for raw in spec.split(',') {
            let item = raw.trim();
            if item.is_empty() {
                return Err(err(raw, "empty item (stray comma?)"));
            }
            match PRESETS.iter().find(|p| p.0 == item) {
                Some(p) => items.extend(p.1.split(',').map(String::from)),
                None => items.push(item.to_string()),
            }
        }
        let mut steps: Vec<Step> = Vec::new();
        let mut affine = Affine {
            rotate: 0.0,
            shift_w: 0.0,
            shift_h: 0.0,
            shear: 0.0,
            zoom: [1.0, 1.0],
            fill: Fill::Nearest,
        };
        let mut fill = None;
        let mut cval = 0u8;
        let mut jitter = ColorJitter::default();
        let mut interp = Interp::Bilinear;
        let (mut mixup, mut cutmix) = (None, None);
        for item in &items {
            let (key, val) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item.as_str(), None),
            };
            let affine_step = |steps: &mut Vec<Step>| {
                if !steps.iter().any(|s| matches!(s, Step::Affine)) {
                    steps.push(Step::Affine);
                }
            };
            let jitter_step = |steps: &mut Vec<Step>| {
                if !steps.iter().any(|s| matches!(s, Step::Jitter)) {
                    steps.push(Step::Jitter);
                }
            };
            match key {
                "rotate" => {
                    affine.rotate = num(item, val, 0.0, 180.0)?;
                    affine_step(&mut steps);
                }
                "shift" | "wshift" | "hshift" => {
                    let f = num(item, val, 0.0, 1.0)?;
                    if key != "hshift" {
                        affine.shift_w = f;
                    }
                    if key != "wshift" {
                        affine.shift_h = f;
                    }
                    affine_step(&mut steps);
                }
                "shear" => {
                    affine.shear = num(item, val, 0.0, 89.0)?;
                    affine_step(&mut steps);
                }
                "zoom" => {
                    affine.zoom = if val.is_some_and(|v| v.contains(':')) {
                        let (a, b) = range(item, val, 0.01, 100.0)?;
                        [a, b]
                    } else {
                        let z = num(item, val, 0.0, 0.99)?;
                        [1.0 - z, 1.0 + z]
                    };
                    affine_step(&mut steps);
                }
                "fill" => {
                    fill = Some(match val {
                        Some("nearest") => Fill::Nearest,
                        Some("constant") => Fill::Constant(0),
                        Some("reflect") => Fill::Reflect,
                        Some("wrap") => Fill::Wrap,
                        _ => {
                            return Err(err(item, "expected nearest, constant, reflect or wrap"));
                        }
                    })
                }
                "cval" => cval = num(item, val, 0.0, 255.0)? as u8,
                "hflip" | "vflip" => steps.push(Step::Other(Arc::new(Flip {
                    vertical: key == "vflip",
                    p: prob(item, val, 0.5)?,
                }))),
                "resize" => {
                    let s = size(item, val)?;
                    let exact = val.is_some_and(|v| v.contains('x'));
                    steps.push(Step::Resize(if exact { s } else { [s[0], 0] }));
                }
                "interp" => {
                    interp = val
                        .and_then(Interp::parse)
                        .ok_or_else(|| err(item, "expected bilinear, bicubic or nearest"))?
                }
                "center" | "centre" => steps.push(Step::Centre(size(item, val)?)),
                "pad" => steps.push(Step::Pad(num(item, val, 0.0, 4096.0)? as u32)),
                "crop" => steps.push(Step::Crop(size(item, val)?)),
                "rrc" => steps.push(Step::Rrc(size(item, val)?)),
                "scale-jitter" => {
                    let (a, b) = range(item, val, 1.0, 16384.0)?;
                    steps.push(Step::ScaleJitter(a as u32, b as u32));
                }
                "jitter" | "brightness" | "contrast" | "saturation" => {
                    let f = num(item, val, 0.0, 10.0)? as f32;
                    match key {
                        "brightness" => jitter.brightness = f,
                        "contrast" => jitter.contrast = f,
                        "saturation" => jitter.saturation = f,
                        _ => {
                            jitter.brightness = f;
                            jitter.contrast = f;
                            jitter.saturation = f;
                        }
                    }
                    jitter_step(&mut steps);
                }
                "hue" => {
                    jitter.hue = num(item, val, 0.0, 0.5)? as f32;
                    jitter_step(&mut steps);
                }
                "gray" | "grayscale" => steps.push(Step::Other(Arc::new(RandomGray {
                    p: prob(item, val, 0.1)?,
                }))),
                "blur" => steps.push(Step::Other(Arc::new(Blur {
                    sigma: num(item, val, 0.1, 50.0)? as f32,
                }))),
                "pca" | "lighting" => steps.push(Step::Other(Arc::new(Lighting {
                    std: num(item, val, 0.0, 10.0)? as f32,
                }))),
                "erase" => steps.push(Step::Other(Arc::new(Erase {
                    p: prob(item, val, 0.5)?,
                }))),
                "randaugment" => {
                    let (n, m) = match val {
                        None => (2.0, 9.0),
                        Some(_) => range_pair(item, val)?,
                    };
                    steps.push(Step::Other(Arc::new(auto::RandAugment {
                        n: n as usize,
                        m: m as usize,
                    })))
                }
                "trivialaugment" => steps.push(Step::Other(Arc::new(auto::TrivialAugment))),
                "mixup" => mixup = Some(num(item, val, 1e-3, 100.0)?),
                "cutmix" => cutmix = Some(num(item, val, 1e-3, 100.0)?),
                _ => return Err(err(item, format!("unknown key `{key}`"))),
            }
        }
        affine.fill = match fill {
            Some(Fill::Constant(_)) => Fill::Constant(cval),
            Some(f) => f,
            None if cval != 0 => Fill::Constant(cval),
            None => Fill::Nearest,
        };
        let ops = steps
            .into_iter()
            .map(|s| -> Arc<dyn Transform> {
                match s {
                    Step::Affine => Arc::new(affine.clone()),
                    Step::Jitter => Arc::new(jitter.clone()),
                    Step::Resize(size) => Arc::new(Resize { size, interp }),
                    Step::ScaleJitter(lo, hi) => Arc::new(ScaleJitter { lo, hi, interp }),
                    Step::Centre(size) => Arc::new(CentreCrop { size }),
                    Step::Pad(pad) => Arc::new(Pad { pad }),
                    Step::Crop(size) => Arc::new(RandomCrop { size }),
                    Step::Rrc(size) => Arc::new(RandomResizedCrop {
                        size,
                        scale: [0.08, 1.0],
                        ratio: [0.75, 4.0 / 3.0],
                        interp,
                    }),
                    Step::Other(t) => t,
                }
            })
            .collect();
        Ok(Augment {
            spec: spec.trim().to_string(),
            ops,
            mixup,
            cutmix,
        })
    }

    /// The spec this pipeline was parsed from.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Number of per-image transforms.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no per-image transforms.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Runs the per-image transforms on `img` (converted to 8-bit gray or RGB).
    pub fn apply_img(&self, mut img: Img, rng: &mut StdRng) -> Img {
        for op in &self.ops {
            img = op.apply(img, rng);
        }
        img
    }

    /// Runs the per-image transforms on a decoded image.
    pub fn apply(&self, img: DynamicImage, rng: &mut StdRng) -> DynamicImage {
        if self.ops.is_empty() {
            return img;
        }
        self.apply_img(Img::from_dynamic(img), rng).into_dynamic()
    }

    /// The batch mix to apply to one batch, if any (a fair choice when both are enabled).
    pub fn batch_mix(&self, rng: &mut StdRng) -> Option<Mix> {
        match (self.mixup, self.cutmix) {
            (Some(a), Some(b)) => Some(if rng.random::<bool>() {
                Mix::MixUp(a)
            } else {
                Mix::CutMix(b)
            }),
            (Some(a), None) => Some(Mix::MixUp(a)),
            (None, Some(b)) => Some(Mix::CutMix(b)),
            (None, None) => None,
        }
    }
}

/// The RNG of one sample (or batch) `index` in `epoch`: a hash of the three, so results do
/// not depend on the worker that draws them and differ across epochs.
pub fn sample_rng(seed: u64, epoch: usize, index: usize) -> StdRng {
    let mix = |mut z: u64| {
        // splitmix64 finaliser.
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let h = mix(
        mix(mix(seed ^ 0x5EED_A06E_17A7_1011).wrapping_add(epoch as u64))
            .wrapping_add(index as u64),
    );
    StdRng::seed_from_u64(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_presets_parse_and_bad_items_are_named() {
        let a = Augment::parse("rotate=30,hflip,shift=0.2,zoom=0.2,fill=nearest").unwrap();
        // rotate/shift/zoom fold into one warp, then the flip.
        assert_eq!(a.len(), 2);
        for (name, _, _) in PRESETS {
            let p = Augment::parse(name).unwrap();
            assert!(!p.is_empty(), "{name}");
        }
        assert_eq!(
            Augment::parse("randaugment=2:9,trivialaugment")
                .unwrap()
                .len(),
            2
        );
        assert!(Augment::parse("randaugment=2:40").is_err());
        let m = Augment::parse("imagenet-train,mixup=0.2,cutmix=1").unwrap();
        assert_eq!((m.mixup, m.cutmix), (Some(0.2), Some(1.0)));
        for (bad, word) in [
            ("rotate=abc", "rotate=abc"),
            ("hflip,spin=3", "spin"),
            ("rotate=30,,hflip", "empty"),
            ("fill=mirror", "fill=mirror"),
            ("rrc=0", "rrc=0"),
            ("hflip=2", "hflip=2"),
        ] {
            let e = Augment::parse(bad).unwrap_err().to_string();
            assert!(e.contains(word) && e.contains("valid keys"), "{bad}: {e}");
        }
        // Serialises as its spec string.
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"rotate=30,hflip,shift=0.2,zoom=0.2,fill=nearest\"");
        let back: Augment = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        assert!(serde_json::from_str::<Augment>("\"bogus\"").is_err());
    }

    #[test]
    fn pipelines_are_deterministic_per_sample_seed() {
        let a = Augment::parse("imagenet-train,erase=0.5,blur=1").unwrap();
        let mut px = vec![0u8; 300 * 200 * 3];
        sample_rng(0, 0, 0).fill(&mut px[..]);
        let img = Img {
            w: 300,
            h: 200,
            c: 3,
            px,
        };
        let run = |s, e, i| a.apply_img(img.clone(), &mut sample_rng(s, e, i));
        let x = run(1, 0, 5);
        assert_eq!((x.w, x.h), (224, 224));
        assert_eq!(x, run(1, 0, 5));
        assert_ne!(x, run(1, 1, 5));
        assert_ne!(x, run(1, 0, 6));
        assert_ne!(x, run(2, 0, 5));
        let gray = Img {
            w: 28,
            h: 28,
            c: 1,
            px: vec![9; 784],
        };
        let g = Augment::parse("hflip,shift=0.1").unwrap();
        assert_eq!(g.apply_img(gray.clone(), &mut sample_rng(0, 0, 0)), gray);
    }
}

/// Per-stage timings of the ImageNet training pipeline on a JPEG (`CONVNET_TIMING_JPEG`),
/// for tuning: `cargo test --release -p convnet-data --lib stage_timing -- --ignored --nocapture`.
#[cfg(test)]
mod timing {
    use super::*;
    use std::time::Instant;

    #[test]
    #[ignore = "timing, not a check"]
    fn stage_timing() {
        let path = std::env::var("CONVNET_TIMING_JPEG").expect("set CONVNET_TIMING_JPEG");
        let bytes = std::fs::read(path).unwrap();
        let n = 200;
        let time = |label: &str, f: &mut dyn FnMut(&mut StdRng)| {
            let mut rng = sample_rng(0, 0, 0);
            let t = Instant::now();
            for _ in 0..n {
                f(&mut rng);
            }
            eprintln!(
                "{label:28} {:.3} ms",
                t.elapsed().as_secs_f64() * 1e3 / n as f64
            );
        };
        let img = Img::from_dynamic(crate::folder::decode_bytes(&bytes).unwrap());
        time("decode", &mut |_| {
            crate::folder::decode_bytes(&bytes).unwrap();
        });
        let rrc = Augment::parse("rrc=224").unwrap();
        time("rrc", &mut |r| {
            rrc.apply_img(img.clone(), r);
        });
        let small = rrc.apply_img(img.clone(), &mut sample_rng(0, 0, 0));
        for spec in [
            "hflip=1",
            "brightness=0.4",
            "contrast=0.4",
            "saturation=0.4",
            "hue=0.1",
            "jitter=0.4",
            "pca=0.1",
        ] {
            let a = Augment::parse(spec).unwrap();
            time(spec, &mut |r| {
                a.apply_img(small.clone(), r);
            });
        }
        let pre = crate::Preprocess {
            channels: 3,
            size: [224, 224],
            mean: vec![0.5; 3],
            std: vec![0.25; 3],
        };
        let mut out = vec![0f32; pre.sample_len()];
        let d = small.clone().into_dynamic();
        time("preprocess", &mut |_| pre.apply(&d, &mut out));
    }
}
